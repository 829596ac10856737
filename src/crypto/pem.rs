//! PEM writing and EC P-256 key generation shared by [`super::tls`] and
//! [`super::jwt`]. Reading PEM goes through rustls' `pki_types` parsers.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use zeroize::Zeroizing;

use super::CryptoError;

/// PEM label of a PKCS#8 private key.
pub(crate) const PRIVATE_KEY: &str = "PRIVATE KEY";
/// PEM label of an X.509 SubjectPublicKeyInfo.
pub(crate) const PUBLIC_KEY: &str = "PUBLIC KEY";
/// PEM label of an X.509 certificate.
pub(crate) const CERTIFICATE: &str = "CERTIFICATE";

/// Encodes `der` as one PEM block with 64-character lines (as Go's
/// `encoding/pem`, so our files look like upstream's).
pub(crate) fn encode(label: &str, der: &[u8]) -> Vec<u8> {
    wrap(label, &base64::engine::general_purpose::STANDARD.encode(der))
}

/// Like [`encode`], for secrets: the intermediate base64 text is wiped.
pub(crate) fn encode_secret(label: &str, der: &[u8]) -> Vec<u8> {
    wrap(label, &Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der)))
}

fn wrap(label: &str, b64: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.extend_from_slice(format!("-----BEGIN {label}-----\n").as_bytes());
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
    out
}

/// A new EC P-256 key: (PKCS#8 DER private key, SubjectPublicKeyInfo DER).
pub(crate) fn generate_p256_der(what: &str) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), CryptoError> {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .map_err(|_| CryptoError::Random { what: what.to_string() })?;
    let pkcs8 = key.to_pkcs8v1().map_err(|_| CryptoError::key(what, "cannot encode the new key as PKCS#8"))?;
    let spki =
        key.public_key().as_der().map_err(|_| CryptoError::key(what, "cannot encode the new public key as X.509"))?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), spki.as_ref().to_vec()))
}

/// A new EC P-256 key: (PKCS#8 PEM private key, SubjectPublicKeyInfo PEM
/// public key), as upstream writes its TLS and JWT keys.
pub(crate) fn generate_p256(what: &str) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let (pkcs8, spki) = generate_p256_der(what)?;
    Ok((encode_secret(PRIVATE_KEY, &pkcs8), encode(PUBLIC_KEY, &spki)))
}

/// Describes PEM input for an error message without echoing it (it may be a
/// secret): "empty input", "not UTF-8 text", or the labels it contains.
pub(crate) fn describe(input: &[u8]) -> String {
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return "the input is empty".to_string();
    }
    let Ok(text) = std::str::from_utf8(input) else {
        return "the input is not text (binary data, or DER rather than PEM?)".to_string();
    };
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")))
        .map(|l| if l.len() > 40 || !l.is_ascii() { "(an unusual label)" } else { l })
        .collect();
    if labels.is_empty() {
        "the input has no PEM block (no -----BEGIN ...----- line)".to_string()
    } else {
        format!("the input has PEM blocks labelled {}", labels.join(", "))
    }
}
