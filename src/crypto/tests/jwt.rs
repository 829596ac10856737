//! The JWT key pair: the private key signs what the public key verifies.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use x509_parser::prelude::FromDer;

use super::{b64, sample};
use crate::crypto::generate_jwt_keypair;

#[test]
fn jwt_keypair_signs_and_verifies() {
    let (private_pem, public_pem) = generate_jwt_keypair().unwrap();
    assert!(private_pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));

    let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(&private_pem).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.secret_pkcs8_der()).unwrap();
    let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
    let signature = key.sign(&aws_lc_rs::rand::SystemRandom::new(), message).unwrap();

    let spki = SubjectPublicKeyInfoDer::from_pem_slice(&public_pem).unwrap();
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).unwrap();
    assert_eq!(info.algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
    let point = info.subject_public_key.data.to_vec();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point);
    public.verify(message, signature.as_ref()).unwrap();
    assert!(public.verify(b"another message", signature.as_ref()).is_err());

    // A different pair does not verify it.
    let (_, other_pem) = generate_jwt_keypair().unwrap();
    let other = SubjectPublicKeyInfoDer::from_pem_slice(&other_pem).unwrap();
    let (_, other) = x509_parser::x509::SubjectPublicKeyInfo::from_der(other.as_ref()).unwrap();
    let other = other.subject_public_key.data.to_vec();
    assert!(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &other).verify(message, signature.as_ref()).is_err());
}

#[test]
fn jwt_keys_have_the_shape_of_upstream_ones() {
    // Upstream's sample jwt CA is EC P-256 too: our PEM labels and curve
    // match its (base64 of PEM) private_key and public_key fields. The TLS
    // key of the sample is the same kind of PKCS#8 document.
    let upstream_key = b64(sample::TLS_KEY_B64);
    let ours = generate_jwt_keypair().unwrap().0;
    let der = |pem: &[u8]| PrivatePkcs8KeyDer::from_pem_slice(pem).unwrap().secret_pkcs8_der().to_vec();
    // Same algorithm identifier (id-ecPublicKey, prime256v1) at the same place.
    assert_eq!(der(&upstream_key)[..26], der(&ours)[..26]);
}
