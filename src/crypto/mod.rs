//! CRYPTO: the cluster's keys, certificates and secrets. This module is a
//! leaf: it depends on nothing else in the crate, and any layer may use it
//! (the auth service signs with it, the proxy and node verify with it, `tctl`
//! exports with it). It touches no storage and no network; it reads the
//! system clock and the system random number generator, and the tests run
//! `ssh-keygen` and `openssl` when they are installed.
//!
//! - [`ssh`]: SSH certificate authorities and certificates (OpenSSH format,
//!   read and written as upstream stores them: PKCS#8 Ed25519 private keys,
//!   `authorized_keys` public key lines).
//! - [`tls`]: X.509 certificate authorities, certificates that carry a
//!   [`TlsIdentity`], and rustls configurations for mutual TLS.
//! - [`jwt`]: the key pair of the `jwt` certificate authority.
//! - [`secret`]: bcrypt password hashes, tokens, TOTP, constant-time compare.
//!
//! One crypto provider is used throughout: aws-lc-rs (through rustls for TLS
//! and X.509 signatures, directly for random bytes and HMAC). The SSH side
//! uses the RustCrypto key types of `ssh-key`, the crate russh builds on.
//! No function here logs a key, a password or a token.

pub mod jwt;
mod pem;
pub mod secret;
pub mod ssh;
pub mod tls;
mod x509;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use jwt::generate_jwt_keypair;
pub use secret::{
    constant_time_eq, hash_password, hash_password_with_cost, random_token, totp_code, totp_generate_secret,
    totp_verify, verify_password,
};
pub use ssh::{
    SshCertInfo, SshCertType, SshKeyPair, SshSigner, UserCertRequest, authorized_keys_ca_line, fingerprint,
    generate_ssh_keypair, known_hosts_ca_line, parse_cert, verify_cert,
};
pub use tls::{
    TlsIdentity, TlsIssuer, TlsKeyPair, ca_pin, client_config, generate_private_key, generate_tls_ca,
    identity_from_cert_der, server_config,
};

/// An error from this module. Each variant names `what` was being read or
/// made (which key, which certificate, which field) and the `reason`, with
/// the expected format where there is one. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A private or public key could not be read, or is of a kind that is
    /// not supported.
    #[error("{what}: {reason}")]
    InvalidKey {
        /// The key, e.g. "SSH CA private key".
        what: String,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// A certificate could not be read.
    #[error("{what}: {reason}")]
    InvalidCert {
        /// The certificate, e.g. "SSH certificate".
        what: String,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// A well-formed certificate failed verification: untrusted signer,
    /// expired, not yet valid or a bad signature.
    #[error("{what}: rejected: {reason}")]
    CertRejected {
        /// The certificate.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A request field or argument is invalid (empty principals, an empty
    /// password, a validity window that ends before it starts, ...).
    #[error("{what}: {reason}")]
    InvalidInput {
        /// The field or argument.
        what: String,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// Signing failed (a key that cannot sign, an internal library error).
    #[error("{what}: signing failed: {reason}")]
    Sign {
        /// What was being signed.
        what: String,
        /// The underlying error.
        reason: String,
    },
    /// A TLS configuration could not be built.
    #[error("{what}: {reason}")]
    Tls {
        /// The configuration, e.g. "server TLS config".
        what: String,
        /// The underlying error.
        reason: String,
    },
    /// The system random number generator failed.
    #[error("{what}: the system random number generator failed")]
    Random {
        /// What the random bytes were for.
        what: String,
    },
}

impl CryptoError {
    pub(crate) fn key(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::InvalidKey { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn cert(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::InvalidCert { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn rejected(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::CertRejected { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn input(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::InvalidInput { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn sign(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::Sign { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn tls(what: impl Into<String>, reason: impl ToString) -> Self {
        CryptoError::Tls { what: what.into(), reason: reason.to_string() }
    }
}

/// Installs aws-lc-rs as the process-wide default rustls crypto provider.
///
/// Both the aws-lc-rs and ring features of rustls end up enabled in this
/// dependency tree, so rustls cannot pick a default by itself and panics on
/// the first TLS use of a library that relies on the default. Call this first
/// thing in `main` (and in test harnesses). It is idempotent: when a provider
/// is already installed (by an earlier call or by someone else), it does
/// nothing. The configurations built by [`tls`] do not need it: they name
/// their provider explicitly.
pub fn install_default_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// The provider every configuration and signature in this module uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Fills `buf` from the system random number generator.
pub(crate) fn fill_random(what: &str, buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random { what: what.to_string() })
}
