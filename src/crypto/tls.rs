//! TLS: X.509 certificate authorities, certificates that carry who their
//! holder is ([`TlsIdentity`]), and rustls configurations for the mutual TLS
//! every service-to-service connection uses (TLS 1.2 and 1.3 only, aws-lc-rs).
//!
//! Formats follow upstream, so that an upstream cluster's CAs (cert_authority
//! `tls` key pairs: a PEM certificate and a PEM private key) load and issue
//! as they are:
//! - a CA certificate has subject `O=<cluster>, CN=<cluster>,
//!   serialNumber=<serial in decimal>`, basicConstraints CA:TRUE, key usages
//!   digitalSignature, keyCertSign and cRLSign, and an EC P-256 key (PKCS#8);
//! - an identity is written into the subject as upstream's `tlsca.Identity`
//!   writes it: `CN` = username, one `O` per group (roles, or a system role
//!   such as `Admin`, `Node`, `Proxy`), one `L` per login (upstream's
//!   "principals"), and the cluster name in attribute 1.3.9999.1.7
//!   (upstream's `TeleportClusterASN1ExtensionOID`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use super::x509::{self, CertSigner, Extension, Tbs};
use super::{CryptoError, pem};

/// The TLS versions every configuration here accepts: 1.3 and 1.2.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The subject attribute that holds the cluster an identity belongs to
/// (upstream's `TeleportClusterASN1ExtensionOID`).
pub const TELEPORT_CLUSTER_OID: &[u64] = &[1, 3, 9999, 1, 7];

/// How far back certificates are dated, to tolerate clock skew (as upstream).
const BACKDATE_SECS: i64 = 60;

/// A certificate and its private key, both PEM. `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsKeyPair {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: Vec<u8>,
    /// The PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsKeyPair")
            .field("cert_pem", &String::from_utf8_lossy(&self.cert_pem))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Who holds a certificate, as written in its subject (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The user or host name (`CN`).
    pub username: String,
    /// Roles, or a system role such as "Admin", "Node", "Proxy" (one `O` each).
    pub groups: Vec<String>,
    /// The cluster the identity belongs to (attribute 1.3.9999.1.7).
    pub cluster: String,
    /// Unix logins allowed (one `L` each).
    pub logins: Vec<String>,
}

/// Generates a new TLS certificate authority for `cluster_name`: an EC P-256
/// key and a self-signed CA certificate valid for `validity`, with a random
/// serial number.
pub fn generate_tls_ca(cluster_name: &str, validity: Duration) -> Result<TlsKeyPair, CryptoError> {
    const WHAT: &str = "new TLS CA";
    if cluster_name.is_empty() {
        return Err(CryptoError::input("cluster name", "is empty; a CA is named after its cluster"));
    }
    if validity.is_zero() {
        return Err(CryptoError::input("TLS CA validity", "is zero; give the CA a lifetime"));
    }
    let (key_der, spki) = pem::generate_p256_der("TLS CA key")?;
    let signer = CertSigner::new(WHAT, &PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.as_slice())))?;
    let serial = random_serial()?;
    let serial_text = serial.to_string();
    let name = x509::encode_name(&[
        (x509::OID_O, cluster_name),
        (x509::OID_CN, cluster_name),
        (x509::OID_SERIAL_NUMBER, &serial_text),
    ]);
    let now = now_secs()?;
    let not_after = now.saturating_add(duration_secs(validity)).min(x509::MAX_CERT_TIME);
    let key_id = x509::key_identifier(&spki_key_bits("new TLS CA public key", &spki)?);
    let tbs = Tbs {
        serial,
        issuer: &name,
        subject: &name,
        not_before: now - BACKDATE_SECS,
        not_after,
        spki: &spki,
        extensions: vec![
            Extension::key_usage(x509::KU_DIGITAL_SIGNATURE | x509::KU_KEY_CERT_SIGN | x509::KU_CRL_SIGN),
            Extension::basic_constraints(true),
            Extension::subject_key_id(&key_id),
        ],
    };
    let cert_der = signer.sign(WHAT, &tbs)?;
    Ok(TlsKeyPair {
        cert_pem: pem::encode(pem::CERTIFICATE, &cert_der),
        key_pem: pem::encode_secret(pem::PRIVATE_KEY, &key_der),
    })
}

/// Generates an EC P-256 key for a client or host: (PKCS#8 PEM private key,
/// SubjectPublicKeyInfo PEM public key). The public key is what
/// [`TlsIssuer::issue`] certifies; the private key never leaves its owner.
pub fn generate_private_key() -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    pem::generate_p256("new TLS key")
}

/// A TLS certificate authority that can issue certificates: its certificate
/// and its private key. `Debug` leaves the key out.
pub struct TlsIssuer {
    cert_pem: Vec<u8>,
    subject: Vec<u8>,
    key_id: Vec<u8>,
    not_after: i64,
    cluster: String,
    signer: CertSigner,
}

impl std::fmt::Debug for TlsIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIssuer").field("cluster", &self.cluster).field("not_after", &self.not_after).finish()
    }
}

impl TlsIssuer {
    /// Loads a CA from its PEM certificate (the first CERTIFICATE block) and
    /// PEM private key (PKCS#8, or PKCS#1 RSA, or SEC1 EC), as upstream
    /// stores them in a cert_authority's `tls` key pairs. Checks that the
    /// certificate is a CA and that the key belongs to it.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsIssuer, CryptoError> {
        const CERT: &str = "TLS CA certificate";
        const KEY: &str = "TLS CA private key";
        let certs = parse_certs(CERT, cert_pem)?;
        let Some(ca_der) = certs.first() else {
            return Err(CryptoError::cert(CERT, "no certificate found"));
        };
        let ca = parse_der(CERT, ca_der)?;
        if !ca.is_ca() {
            return Err(CryptoError::cert(CERT, "is not a CA certificate (basicConstraints CA:TRUE is missing)"));
        }
        let key = parse_private_key(KEY, key_pem)?;
        let signer = CertSigner::new(KEY, &key)?;
        let ca_key_bits = ca.public_key().subject_public_key.data.to_vec();
        if let Some(spki) = signer.public_key_der()
            && spki_key_bits(KEY, &spki)? != ca_key_bits
        {
            return Err(CryptoError::key(KEY, "does not belong to the CA certificate (their public keys differ)"));
        }
        let key_id = ca
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| x509::key_identifier(&ca_key_bits));
        Ok(TlsIssuer {
            cert_pem: pem::encode(pem::CERTIFICATE, ca_der),
            subject: ca.subject().as_raw().to_vec(),
            key_id,
            not_after: ca.validity().not_after.timestamp(),
            cluster: common_name(ca.subject()).unwrap_or_default().to_string(),
            signer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The CA's common name: the cluster name for upstream's and our CAs.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        system_time(self.not_after)
    }

    /// Issues a certificate for `public_key_pem` (a SubjectPublicKeyInfo PEM,
    /// `-----BEGIN PUBLIC KEY-----`, whose private key stays with its owner)
    /// naming `id`, valid from a minute ago for `ttl` but never past the CA's
    /// own expiry. `dns_names` and `ips` become subjectAltNames: a server
    /// certificate needs the names clients dial (e.g. `localhost` and
    /// `127.0.0.1`). Every certificate may serve as client and server
    /// (extended key usages clientAuth and serverAuth). Returns the PEM.
    pub fn issue(
        &self,
        public_key_pem: &[u8],
        id: &TlsIdentity,
        dns_names: &[String],
        ips: &[IpAddr],
        ttl: Duration,
    ) -> Result<Vec<u8>, CryptoError> {
        const WHAT: &str = "TLS certificate";
        if id.username.is_empty() {
            return Err(CryptoError::input("TLS identity username", "is empty; it becomes the certificate's CN"));
        }
        if ttl.is_zero() {
            return Err(CryptoError::input("TLS certificate TTL", "is zero"));
        }
        for name in dns_names {
            x509::check_dns_name(name).map_err(|reason| CryptoError::input("TLS certificate DNS name", reason))?;
        }
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(public_key_pem).map_err(|_| {
            CryptoError::key(
                "public key to certify",
                format!(
                    "{}; expected a PEM PUBLIC KEY block (X.509 SubjectPublicKeyInfo)",
                    pem::describe(public_key_pem)
                ),
            )
        })?;
        let key_bits = spki_key_bits("public key to certify", spki.as_ref())?;

        let mut attributes: Vec<(&'static [u64], &str)> = Vec::new();
        attributes.extend(id.logins.iter().map(|l| (x509::OID_L, l.as_str())));
        attributes.extend(id.groups.iter().map(|g| (x509::OID_O, g.as_str())));
        attributes.push((x509::OID_CN, id.username.as_str()));
        if !id.cluster.is_empty() {
            attributes.push((TELEPORT_CLUSTER_OID, id.cluster.as_str()));
        }
        let subject = x509::encode_name(&attributes);

        let now = now_secs()?;
        let not_after = now.saturating_add(duration_secs(ttl)).min(self.not_after).min(x509::MAX_CERT_TIME);
        if not_after <= now {
            return Err(CryptoError::rejected("TLS CA", "has expired; rotate the CA before issuing"));
        }
        let mut usage = x509::KU_DIGITAL_SIGNATURE;
        if is_rsa_spki(spki.as_ref()) {
            usage |= x509::KU_KEY_ENCIPHERMENT;
        }
        let mut extensions = vec![
            Extension::key_usage(usage),
            Extension::server_and_client_auth(),
            Extension::basic_constraints(false),
            Extension::authority_key_id(&self.key_id),
            Extension::subject_key_id(&x509::key_identifier(&key_bits)),
        ];
        if !dns_names.is_empty() || !ips.is_empty() {
            extensions.push(Extension::subject_alt_names(dns_names, ips));
        }
        let tbs = Tbs {
            serial: random_serial()?,
            issuer: &self.subject,
            subject: &subject,
            not_before: now - BACKDATE_SECS,
            not_after,
            spki: spki.as_ref(),
            extensions,
        };
        let der = self.signer.sign(WHAT, &tbs)?;
        Ok(pem::encode(pem::CERTIFICATE, &der))
    }
}

/// Reads the identity a certificate carries (see the module doc) and when
/// it expires. Does not verify the certificate: use it on a peer certificate
/// that the TLS handshake has already verified. When the cluster attribute is
/// missing, the cluster is the issuer's common name (the CA is named after
/// its cluster).
pub fn identity_from_cert_der(der: &[u8]) -> Result<(TlsIdentity, SystemTime), CryptoError> {
    const WHAT: &str = "TLS certificate";
    let cert = parse_der(WHAT, der)?;
    let subject = cert.subject();
    let strings = |oid: &[u64]| -> Result<Vec<String>, CryptoError> {
        attribute_values(subject, oid)
            .map(|v| v.map(str::to_string))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| CryptoError::cert(WHAT, reason))
    };
    let username = strings(x509::OID_CN)?.into_iter().next().ok_or_else(|| {
        CryptoError::cert(WHAT, "the subject has no common name (CN); expected the user or host name")
    })?;
    let cluster = match strings(TELEPORT_CLUSTER_OID)?.into_iter().next() {
        Some(cluster) => cluster,
        None => common_name(cert.issuer()).unwrap_or_default().to_string(),
    };
    let identity = TlsIdentity { username, groups: strings(x509::OID_O)?, cluster, logins: strings(x509::OID_L)? };
    Ok((identity, system_time(cert.validity().not_after.timestamp())))
}

/// The CA pin of a CA certificate, as upstream prints and checks it
/// (`--ca-pin`): `sha256:` and the hex SHA-256 of the DER
/// SubjectPublicKeyInfo.
pub fn ca_pin(ca_cert_pem: &[u8]) -> Result<String, CryptoError> {
    const WHAT: &str = "CA certificate";
    let certs = parse_certs(WHAT, ca_cert_pem)?;
    let Some(der) = certs.first() else {
        return Err(CryptoError::cert(WHAT, "no certificate found"));
    };
    let cert = parse_der(WHAT, der)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
    Ok(format!("sha256:{}", hex::encode(digest.as_ref())))
}

/// A server configuration for mutual TLS: presents `cert_chain_pem` (leaf
/// first) with `key_pem`, and requires every client to present a
/// certificate signed by one of `client_ca_pems` (each PEM may hold several
/// CA certificates, e.g. during a rotation). TLS 1.3 and 1.2, aws-lc-rs.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pems: &[&[u8]],
) -> Result<Arc<ServerConfig>, CryptoError> {
    const WHAT: &str = "server TLS config";
    let chain = parse_certs("server certificate chain", cert_chain_pem)?;
    let key = parse_private_key("server private key", key_pem)?;
    let roots = root_store("client CA certificates", client_ca_pems)?;
    let provider = super::provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| CryptoError::tls(WHAT, e))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| CryptoError::tls(WHAT, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| CryptoError::tls(WHAT, format!("server certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

/// A client configuration for mutual TLS: trusts servers whose certificate
/// is signed by one of `root_ca_pems` and presents `cert_pem` (leaf first)
/// with `key_pem`. TLS 1.3 and 1.2, aws-lc-rs. The server name to check is
/// given when connecting.
pub fn client_config(
    root_ca_pems: &[&[u8]],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ClientConfig>, CryptoError> {
    const WHAT: &str = "client TLS config";
    let roots = root_store("server CA certificates", root_ca_pems)?;
    let chain = parse_certs("client certificate", cert_pem)?;
    let key = parse_private_key("client private key", key_pem)?;
    let config = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| CryptoError::tls(WHAT, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| CryptoError::tls(WHAT, format!("client certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

/// Every CERTIFICATE block of a PEM text, as DER (at least one).
pub fn certs_from_pem(input: &[u8]) -> Result<Vec<CertificateDer<'static>>, CryptoError> {
    parse_certs("certificate", input)
}

/// A private key (PKCS#8, PKCS#1 or SEC1 PEM), for rustls.
pub fn private_key_from_pem(input: &[u8]) -> Result<PrivateKeyDer<'static>, CryptoError> {
    parse_private_key("private key", input)
}

/// All CERTIFICATE blocks of `input`; at least one.
fn parse_certs(what: &str, input: &[u8]) -> Result<Vec<CertificateDer<'static>>, CryptoError> {
    let certs = CertificateDer::pem_slice_iter(input)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CryptoError::cert(what, format!("cannot read PEM: {e}")))?;
    if certs.is_empty() {
        return Err(CryptoError::cert(what, format!("{}; expected a PEM CERTIFICATE block", pem::describe(input))));
    }
    Ok(certs)
}

fn parse_private_key(what: &str, input: &[u8]) -> Result<PrivateKeyDer<'static>, CryptoError> {
    PrivateKeyDer::from_pem_slice(input).map_err(|_| {
        CryptoError::key(
            what,
            format!(
                "{}; expected a PEM PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY block",
                pem::describe(input)
            ),
        )
    })
}

fn root_store(what: &str, pems: &[&[u8]]) -> Result<RootCertStore, CryptoError> {
    if pems.is_empty() {
        return Err(CryptoError::cert(what, "none given; at least one CA certificate is needed"));
    }
    let mut roots = RootCertStore::empty();
    for (i, input) in pems.iter().enumerate() {
        let which = format!("{what} #{}", i + 1);
        for cert in parse_certs(&which, input)? {
            roots.add(cert).map_err(|e| CryptoError::cert(&which, e))?;
        }
    }
    Ok(roots)
}

fn parse_der<'a>(what: &str, der: &'a [u8]) -> Result<X509Certificate<'a>, CryptoError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| CryptoError::cert(what, format!("not a DER X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(CryptoError::cert(what, format!("{} unexpected bytes after the certificate", rest.len())));
    }
    Ok(cert)
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo.
fn spki_key_bits(what: &str, spki: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match SubjectPublicKeyInfo::from_der(spki) {
        Ok(([], info)) => Ok(info.subject_public_key.data.to_vec()),
        Ok(_) => Err(CryptoError::key(what, "unexpected bytes after the SubjectPublicKeyInfo")),
        Err(e) => Err(CryptoError::key(what, format!("not an X.509 SubjectPublicKeyInfo: {e}"))),
    }
}

fn is_rsa_spki(spki: &[u8]) -> bool {
    SubjectPublicKeyInfo::from_der(spki)
        .map(|(_, info)| info.algorithm.algorithm.to_id_string() == "1.2.840.113549.1.1.1")
        .unwrap_or(false)
}

/// The string values of the attributes of type `oid` in `name`, in order.
fn attribute_values<'a>(name: &'a X509Name<'a>, oid: &'a [u64]) -> impl Iterator<Item = Result<&'a str, String>> + 'a {
    let wanted = oid.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
    name.iter_attributes().filter(move |attr| attr.attr_type().to_id_string() == wanted).map(|attr| {
        attr.as_str().map_err(|_| format!("subject attribute {} is not a string", attr.attr_type().to_id_string()))
    })
}

fn common_name<'a>(name: &'a X509Name<'a>) -> Option<&'a str> {
    name.iter_common_name().next().and_then(|attr| attr.as_str().ok())
}

fn random_serial() -> Result<u128, CryptoError> {
    let mut bytes = [0u8; 16];
    super::fill_random("certificate serial number", &mut bytes)?;
    // 127 random bits: positive as a DER INTEGER of at most 16 bytes.
    Ok((u128::from_be_bytes(bytes) >> 1).max(1))
}

fn now_secs() -> Result<i64, CryptoError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CryptoError::input("system clock", "is set before 1970"))?;
    Ok(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn system_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs())).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())).unwrap_or(UNIX_EPOCH)
    }
}

/// Accepts any server certificate (neither chain nor name is checked) but
/// still checks that the handshake is signed by the key of the certificate
/// presented: libpq's `sslmode=prefer/require` and S3's `insecure=true`. The
/// connection is encrypted; the server is not authenticated.
#[derive(Debug)]
pub struct AnyServerCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl AnyServerCertificate {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> AnyServerCertificate {
        AnyServerCertificate(provider.signature_verification_algorithms)
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
