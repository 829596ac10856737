//! No input makes the readers panic: random bytes and strings, and
//! well-formed inputs with random damage, give errors (or `false`).

use proptest::prelude::*;

use super::{b64, sample};
use crate::crypto::{SshSigner, TlsIssuer, identity_from_cert_der, parse_cert, verify_password};

/// Valid inputs to damage: upstream's keys and certificate, and an SSH cert
/// (made once: key generation is slow in debug builds).
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(make_seeds)
}

fn make_seeds() -> Vec<Vec<u8>> {
    let ssh_key = b64(sample::SSH_PRIVATE_KEY_B64);
    let signer = SshSigner::from_pem(&ssh_key).expect("sample key loads");
    let user = crate::crypto::generate_ssh_keypair().expect("keygen");
    let req = crate::crypto::UserCertRequest::new(
        String::from_utf8_lossy(&user.public_line),
        "alice",
        vec!["alice".into()],
        std::time::UNIX_EPOCH,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(3600),
    );
    let cert = signer.sign_user_cert(&req).expect("sign");
    vec![ssh_key, b64(sample::TLS_CERT_B64), b64(sample::TLS_KEY_B64), cert.into_bytes()]
}

/// A seed with `flips` bytes replaced and a random cut.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        0..4usize,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(which, flips, cut)| {
            let mut bytes = seeds()[which].clone();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
            bytes.truncate(keep);
            bytes
        })
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        ".{0,300}".prop_map(String::into_bytes),
        "-----BEGIN (PRIVATE KEY|OPENSSH PRIVATE KEY|CERTIFICATE|EC PRIVATE KEY)-----\n[A-Za-z0-9+/=\n]{0,400}-----END (PRIVATE KEY|CERTIFICATE)-----\n"
            .prop_map(String::into_bytes),
        damaged(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn ssh_signer_from_pem_never_panics(input in inputs()) {
        let _ = SshSigner::from_pem(&input);
    }

    #[test]
    fn tls_issuer_from_pem_never_panics(cert in inputs(), key in inputs()) {
        let _ = TlsIssuer::from_pem(&cert, &key);
        let _ = TlsIssuer::from_pem(&b64(sample::TLS_CERT_B64), &key);
        let _ = TlsIssuer::from_pem(&cert, &b64(sample::TLS_KEY_B64));
    }

    #[test]
    fn parse_cert_never_panics(input in inputs()) {
        let text = String::from_utf8_lossy(&input);
        let _ = parse_cert(&text);
        let _ = crate::crypto::fingerprint(&text);
        let _ = crate::crypto::verify_cert(&text, &[&text], std::time::SystemTime::now());
    }

    #[test]
    fn identity_from_cert_der_never_panics(input in inputs()) {
        let _ = identity_from_cert_der(&input);
        let _ = crate::crypto::ca_pin(&input);
    }

    #[test]
    fn verify_password_never_panics(password in ".{0,80}", hash in inputs()) {
        prop_assert!(!verify_password(&password, &hash) || hash.starts_with(b"$2"));
    }
}

/// A damaged DER certificate (not PEM) goes to identity_from_cert_der too.
#[test]
fn damaged_der_certificates_are_errors() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(&b64(sample::TLS_CERT_B64)).expect("sample cert").to_vec();
    for cut in 0..der.len() {
        assert!(identity_from_cert_der(&der[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..der.len() {
        let mut bytes = der.clone();
        bytes[i] ^= 0xff;
        let _ = identity_from_cert_der(&bytes);
    }
    assert!(identity_from_cert_der(&der).is_ok());
}
