//! Tests of the crypto module.
