//! X.509 certificate writing for [`super::tls`]: the DER of a certificate
//! (RFC 5280, section 4.1) written field by field with yasna and signed by a
//! CA key through rustls' aws-lc-rs signing keys.
//!
//! Why not rcgen: its distinguished names hold one value per attribute type,
//! and an identity needs several `O` (one per role) and `L` (one per login)
//! attributes, as upstream writes them. Writing the DER here also lets an
//! issued certificate copy its CA's subject byte for byte into its issuer
//! field, which chain building compares, whatever string types the CA used.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use yasna::models::ObjectIdentifier;
use yasna::tags::{TAG_GENERALIZEDTIME, TAG_PRINTABLESTRING, TAG_UTCTIME};
use yasna::{DERWriter, Tag};

use super::CryptoError;

/// Attribute type `commonName` (2.5.4.3).
pub(crate) const OID_CN: &[u64] = &[2, 5, 4, 3];
/// Attribute type `organizationName` (2.5.4.10).
pub(crate) const OID_O: &[u64] = &[2, 5, 4, 10];
/// Attribute type `localityName` (2.5.4.7).
pub(crate) const OID_L: &[u64] = &[2, 5, 4, 7];
/// Attribute type `serialNumber` (2.5.4.5).
pub(crate) const OID_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];

const OID_EXT_SKI: &[u64] = &[2, 5, 29, 14];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_EXT_SAN: &[u64] = &[2, 5, 29, 17];
const OID_EXT_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_EXT_AKI: &[u64] = &[2, 5, 29, 35];
const OID_EXT_EKU: &[u64] = &[2, 5, 29, 37];
const OID_KP_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const OID_KP_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];

const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
const OID_ED25519: &[u64] = &[1, 3, 101, 112];
const OID_RSA_SHA256: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];

/// Key usage bits (RFC 5280, 4.2.1.3), numbered from the most significant
/// bit of the first byte.
pub(crate) const KU_DIGITAL_SIGNATURE: u8 = 0x80;
pub(crate) const KU_KEY_ENCIPHERMENT: u8 = 0x20;
pub(crate) const KU_KEY_CERT_SIGN: u8 = 0x04;
pub(crate) const KU_CRL_SIGN: u8 = 0x02;

/// The schemes a CA key may sign certificates with, in order of preference.
const CA_SCHEMES: [SignatureScheme; 4] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PKCS1_SHA256,
];

/// A private key that signs certificates.
pub(crate) struct CertSigner {
    key: Arc<dyn SigningKey>,
    scheme: SignatureScheme,
}

impl CertSigner {
    /// Loads a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub(crate) fn new(what: &str, key: &PrivateKeyDer<'_>) -> Result<Self, CryptoError> {
        let key = super::provider().key_provider.load_private_key(key.clone_key()).map_err(|_| {
            CryptoError::key(what, "not a supported private key; expected EC P-256/P-384, Ed25519 or RSA")
        })?;
        let scheme = CA_SCHEMES
            .iter()
            .find_map(|s| key.choose_scheme(&[*s]).map(|signer| signer.scheme()))
            .ok_or_else(|| CryptoError::key(what, "this key type cannot sign X.509 certificates"))?;
        Ok(CertSigner { key, scheme })
    }

    /// The DER SubjectPublicKeyInfo of the key, when the provider can tell.
    pub(crate) fn public_key_der(&self) -> Option<Vec<u8>> {
        self.key.public_key().map(|spki| spki.as_ref().to_vec())
    }

    fn write_algorithm(&self, w: DERWriter<'_>) {
        w.write_sequence(|w| match self.scheme {
            SignatureScheme::ECDSA_NISTP384_SHA384 => w.next().write_oid(&oid(OID_ECDSA_SHA384)),
            SignatureScheme::ED25519 => w.next().write_oid(&oid(OID_ED25519)),
            SignatureScheme::RSA_PKCS1_SHA256 => {
                w.next().write_oid(&oid(OID_RSA_SHA256));
                w.next().write_null();
            }
            _ => w.next().write_oid(&oid(OID_ECDSA_SHA256)),
        })
    }

    /// Writes and signs a certificate; returns its DER.
    pub(crate) fn sign(&self, what: &str, tbs: &Tbs<'_>) -> Result<Vec<u8>, CryptoError> {
        let tbs_der = yasna::construct_der(|w| self.write_tbs(w, tbs));
        let signer = self
            .key
            .choose_scheme(&[self.scheme])
            .ok_or_else(|| CryptoError::sign(what, "the CA key no longer offers its signature scheme"))?;
        let signature = signer.sign(&tbs_der).map_err(|e| CryptoError::sign(what, e))?;
        Ok(yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs_der);
                self.write_algorithm(w.next());
                w.next().write_bitvec_bytes(&signature, signature.len() * 8);
            })
        }))
    }

    fn write_tbs(&self, w: DERWriter<'_>, tbs: &Tbs<'_>) {
        w.write_sequence(|w| {
            // version v3 (2), explicitly tagged [0]
            w.next().write_tagged(Tag::context(0), |w| w.write_u8(2));
            w.next().write_bigint_bytes(&tbs.serial.to_be_bytes(), true);
            self.write_algorithm(w.next());
            w.next().write_der(tbs.issuer);
            w.next().write_sequence(|w| {
                write_time(w.next(), tbs.not_before);
                write_time(w.next(), tbs.not_after);
            });
            w.next().write_der(tbs.subject);
            w.next().write_der(tbs.spki);
            w.next().write_tagged(Tag::context(3), |w| {
                w.write_sequence(|w| {
                    for ext in &tbs.extensions {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(ext.oid));
                            if ext.critical {
                                w.next().write_bool(true);
                            }
                            w.next().write_bytes(&ext.value);
                        })
                    }
                })
            });
        })
    }
}

/// The fields of a certificate to sign.
pub(crate) struct Tbs<'a> {
    /// A positive serial number (the caller keeps it below 2^127).
    pub serial: u128,
    /// DER Name of the issuer (the CA's subject, byte for byte).
    pub issuer: &'a [u8],
    /// DER Name of the subject.
    pub subject: &'a [u8],
    /// Validity, in Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// DER SubjectPublicKeyInfo of the certified key.
    pub spki: &'a [u8],
    pub extensions: Vec<Extension>,
}

/// One certificate extension: its OID, criticality and DER value.
pub(crate) struct Extension {
    oid: &'static [u64],
    critical: bool,
    value: Vec<u8>,
}

impl Extension {
    /// keyUsage (critical) with the given `KU_*` bits.
    pub(crate) fn key_usage(bits: u8) -> Self {
        let len = 8 - bits.trailing_zeros() as usize;
        let value = yasna::construct_der(|w| w.write_bitvec_bytes(&[bits], len));
        Extension { oid: OID_EXT_KEY_USAGE, critical: true, value }
    }

    /// basicConstraints (critical): CA or end entity.
    pub(crate) fn basic_constraints(ca: bool) -> Self {
        let value = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                if ca {
                    w.next().write_bool(true);
                }
            })
        });
        Extension { oid: OID_EXT_BASIC_CONSTRAINTS, critical: true, value }
    }

    /// subjectKeyIdentifier.
    pub(crate) fn subject_key_id(id: &[u8]) -> Self {
        Extension { oid: OID_EXT_SKI, critical: false, value: yasna::construct_der(|w| w.write_bytes(id)) }
    }

    /// authorityKeyIdentifier with the issuer's key identifier.
    pub(crate) fn authority_key_id(id: &[u8]) -> Self {
        let value = yasna::construct_der(|w| {
            w.write_sequence(|w| w.next().write_tagged_implicit(Tag::context(0), |w| w.write_bytes(id)))
        });
        Extension { oid: OID_EXT_AKI, critical: false, value }
    }

    /// extKeyUsage: TLS server and client authentication.
    pub(crate) fn server_and_client_auth() -> Self {
        let value = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&oid(OID_KP_SERVER_AUTH));
                w.next().write_oid(&oid(OID_KP_CLIENT_AUTH));
            })
        });
        Extension { oid: OID_EXT_EKU, critical: false, value }
    }

    /// subjectAltName with DNS names (already checked to be ASCII; a dNSName
    /// is an implicitly tagged IA5String, written as its bytes) and IPs.
    pub(crate) fn subject_alt_names(dns_names: &[String], ips: &[IpAddr]) -> Self {
        let value = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                for name in dns_names {
                    w.next().write_tagged_implicit(Tag::context(2), |w| w.write_bytes(name.as_bytes()));
                }
                for ip in ips {
                    let octets = match ip {
                        IpAddr::V4(v4) => v4.octets().to_vec(),
                        IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    w.next().write_tagged_implicit(Tag::context(7), |w| w.write_bytes(&octets));
                }
            })
        });
        Extension { oid: OID_EXT_SAN, critical: false, value }
    }
}

/// Encodes a distinguished name, one attribute per RDN, in the order given.
/// Values are PrintableStrings when they fit (as Go writes them), UTF8Strings
/// otherwise.
pub(crate) fn encode_name(attributes: &[(&'static [u64], &str)]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (type_oid, value) in attributes {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(type_oid));
                        if is_printable(value) {
                            w.next().write_tagged_implicit(TAG_PRINTABLESTRING, |w| w.write_bytes(value.as_bytes()));
                        } else {
                            w.next().write_utf8_string(value);
                        }
                    })
                })
            }
        })
    })
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits
/// (RFC 5280, 4.2.1.2, method 1; what Go and OpenSSL compute).
pub(crate) fn key_identifier(subject_public_key: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, subject_public_key).as_ref().to_vec()
}

/// True when `s` is an ASN.1 PrintableString.
fn is_printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
}

fn oid(components: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(components)
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280, 4.1.2.5).
/// The caller keeps `secs` within years 0000-9999.
fn write_time(w: DERWriter<'_>, secs: i64) {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let year = chrono::Datelike::year(&t);
    if (1950..2050).contains(&year) {
        let s = t.format("%y%m%d%H%M%SZ").to_string();
        w.write_tagged_implicit(TAG_UTCTIME, |w| w.write_bytes(s.as_bytes()));
    } else {
        let s = t.format("%Y%m%d%H%M%SZ").to_string();
        w.write_tagged_implicit(TAG_GENERALIZEDTIME, |w| w.write_bytes(s.as_bytes()));
    }
}

/// The latest time a certificate may carry: 9999-12-31T23:59:59Z.
pub(crate) const MAX_CERT_TIME: i64 = 253_402_300_799;

/// Checks a DNS name for a subjectAltName: ASCII letters, digits, `-`, `.`
/// and a leading `*.` wildcard label.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.is_empty() || rest.len() > 253 {
        return Err(format!("{name:?} is not a DNS name (empty, or longer than 253 bytes)"));
    }
    for label in rest.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "{name:?} is not a DNS name (labels of 1 to 63 ASCII letters, digits, '-' or '_', separated by dots)"
            ));
        }
    }
    Ok(())
}
