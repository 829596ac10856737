//! JWT: the key pair of the `jwt` certificate authority, which signs the
//! tokens applications receive. As upstream: an EC P-256 key, the private
//! key PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) and the public key an X.509
//! SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).

use super::{CryptoError, pem};

/// Generates a new JWT signing key pair: (PKCS#8 PEM private key,
/// SubjectPublicKeyInfo PEM public key), EC P-256 (ES256).
pub fn generate_jwt_keypair() -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    pem::generate_p256("new JWT key")
}
