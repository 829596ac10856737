//! SSH: certificate authorities and OpenSSH certificates, in upstream's
//! formats so that an upstream cluster's CAs load and sign as they are:
//! - a CA private key is stored as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`,
//!   Ed25519 for new CAs); OpenSSH private keys, PKCS#8 ECDSA P-256 and RSA,
//!   PKCS#1 RSA and SEC1 EC keys are read as well;
//! - a public key is stored as an `authorized_keys` line without comment,
//!   ending in a newline (`ssh-ed25519 AAAA...\n`);
//! - certificates are OpenSSH certificates (PROTOCOL.certkeys), written as one
//!   line (`ssh-ed25519-cert-v01@openssh.com AAAA...`), as `ssh-keygen -L`
//!   and OpenSSH's sshd read them.
//!
//! Keys and certificates go through `ssh-key`, the crate russh builds on, so
//! the node service can hand them to russh unchanged.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pkcs8::der::Decode;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use super::{CryptoError, pem};

/// The extensions every user certificate gets unless the caller removes them
/// (see [`UserCertRequest::new`]).
pub const DEFAULT_USER_EXTENSIONS: [&str; 3] = ["permit-agent-forwarding", "permit-port-forwarding", "permit-pty"];

/// How far back host certificates are dated, to tolerate clock skew.
const HOST_CERT_BACKDATE: Duration = Duration::from_secs(60);

/// The DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410): what Go's
/// `x509.MarshalPKCS8PrivateKey` writes and upstream stores; the 32-byte seed
/// follows.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A new SSH CA key pair, as upstream stores it. `Debug` leaves the private
/// key out.
#[derive(Clone, PartialEq, Eq)]
pub struct SshKeyPair {
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_pem: Vec<u8>,
    /// The public key, an `authorized_keys` line without comment, ending in
    /// `\n`.
    pub public_line: Vec<u8>,
}

impl std::fmt::Debug for SshKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshKeyPair")
            .field("private_pem", &"<redacted>")
            .field("public_line", &String::from_utf8_lossy(&self.public_line))
            .finish()
    }
}

/// Generates a new Ed25519 SSH CA key pair (see [`SshKeyPair`]).
pub fn generate_ssh_keypair() -> Result<SshKeyPair, CryptoError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    super::fill_random("new SSH CA key", seed.as_mut())?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(seed.as_ref());
    let public = PublicKey::from(KeyData::from(keypair.public));
    let mut line = public_line_of(&public, "new SSH CA public key")?;
    line.push('\n');
    Ok(SshKeyPair { private_pem: pem::encode_secret(pem::PRIVATE_KEY, &der), public_line: line.into_bytes() })
}

/// A user's SSH key pair in OpenSSH's own formats, for `ssh -i`: the
/// private key as `-----BEGIN OPENSSH PRIVATE KEY-----` and the public key
/// as an authorized_keys line. `Debug` leaves the private key out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OpenSshKeyPair {
    /// The private key (OpenSSH format, unencrypted).
    pub private_openssh: String,
    /// The public key line (`ssh-ed25519 AAAA...`), no newline.
    pub public_line: String,
}

impl std::fmt::Debug for OpenSshKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSshKeyPair").field("public_line", &self.public_line).finish_non_exhaustive()
    }
}

/// Generates an Ed25519 key pair for a user or host (see [`OpenSshKeyPair`]).
pub fn generate_openssh_keypair() -> Result<OpenSshKeyPair, CryptoError> {
    const WHAT: &str = "new SSH key";
    let mut seed = Zeroizing::new([0u8; 32]);
    super::fill_random(WHAT, seed.as_mut())?;
    let private = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = private.to_openssh(ssh_key::LineEnding::LF).map_err(|e| CryptoError::key(WHAT, e))?;
    let public_line = public_line_of(private.public_key(), WHAT)?;
    Ok(OpenSshKeyPair { private_openssh: text.to_string(), public_line })
}

/// What a user certificate says. Build it with [`UserCertRequest::new`],
/// which sets the default extensions, then adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCertRequest {
    /// The user's public key, an `authorized_keys` line.
    pub public_key: String,
    /// The key ID (upstream: the user name).
    pub key_id: String,
    /// The logins the certificate allows; at least one.
    pub principals: Vec<String>,
    /// Start of validity.
    pub valid_after: SystemTime,
    /// End of validity (exclusive).
    pub valid_before: SystemTime,
    /// Extensions (name to value; flags have an empty value).
    pub extensions: BTreeMap<String, String>,
    /// Critical options (e.g. `force-command`, `source-address`).
    pub critical_options: BTreeMap<String, String>,
    /// The serial number.
    pub serial: u64,
}

impl UserCertRequest {
    /// A request with [`DEFAULT_USER_EXTENSIONS`], no critical options and
    /// serial 0.
    pub fn new(
        public_key: impl Into<String>,
        key_id: impl Into<String>,
        principals: Vec<String>,
        valid_after: SystemTime,
        valid_before: SystemTime,
    ) -> Self {
        UserCertRequest {
            public_key: public_key.into(),
            key_id: key_id.into(),
            principals,
            valid_after,
            valid_before,
            extensions: DEFAULT_USER_EXTENSIONS.iter().map(|e| (e.to_string(), String::new())).collect(),
            critical_options: BTreeMap::new(),
            serial: 0,
        }
    }
}

/// Whether a certificate is for a user or a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshCertType {
    /// A user certificate (sshd checks it against `TrustedUserCAKeys`).
    User,
    /// A host certificate (clients check it against `@cert-authority`).
    Host,
}

/// What a certificate says, as read by [`parse_cert`] or [`verify_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCertInfo {
    /// The key ID.
    pub key_id: String,
    /// The principals (logins for a user, host names for a host).
    pub principals: Vec<String>,
    /// User or host.
    pub cert_type: SshCertType,
    /// The serial number.
    pub serial: u64,
    /// Start of validity.
    pub valid_after: SystemTime,
    /// End of validity (exclusive).
    pub valid_before: SystemTime,
    /// The certified key's fingerprint (`SHA256:...`).
    pub public_key_fingerprint: String,
    /// The signing CA key's fingerprint (`SHA256:...`, as `ssh-keygen -L`
    /// prints after "Signing CA").
    pub signature_key_fingerprint: String,
    /// Extensions.
    pub extensions: BTreeMap<String, String>,
    /// Critical options.
    pub critical_options: BTreeMap<String, String>,
}

/// An SSH certificate authority that can sign: its private key. `Debug`
/// shows only the public key's fingerprint.
pub struct SshSigner {
    key: PrivateKey,
    public_line: String,
    fingerprint: String,
}

impl std::fmt::Debug for SshSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSigner").field("fingerprint", &self.fingerprint).finish()
    }
}

impl SshSigner {
    /// Loads a CA private key: PKCS#8 PEM (Ed25519 as upstream stores it,
    /// ECDSA P-256 or RSA), an OpenSSH private key (unencrypted), PKCS#1 RSA
    /// or SEC1 EC P-256 PEM.
    pub fn from_pem(private_pem: &[u8]) -> Result<SshSigner, CryptoError> {
        const WHAT: &str = "SSH CA private key";
        let key = if contains(private_pem, b"-----BEGIN OPENSSH PRIVATE KEY-----") {
            let key = PrivateKey::from_openssh(private_pem)
                .map_err(|e| CryptoError::key(WHAT, format!("cannot read the OpenSSH private key: {e}")))?;
            if key.is_encrypted() {
                return Err(CryptoError::key(
                    WHAT,
                    "the OpenSSH private key is encrypted; remove the passphrase first (ssh-keygen -p)",
                ));
            }
            key
        } else {
            let der = PrivateKeyDer::from_pem_slice(private_pem).map_err(|_| {
                CryptoError::key(
                    WHAT,
                    format!(
                        "{}; expected a PEM PRIVATE KEY (PKCS#8), OPENSSH PRIVATE KEY, RSA PRIVATE KEY or \
                         EC PRIVATE KEY block",
                        pem::describe(private_pem)
                    ),
                )
            })?;
            PrivateKey::new(keypair_from_der(WHAT, &der)?, "")
                .map_err(|e| CryptoError::key(WHAT, format!("unusable key: {e}")))?
        };
        let public = PublicKey::from(key.public_key().key_data().clone());
        let public_line = public_line_of(&public, WHAT)?;
        let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
        Ok(SshSigner { key, public_line, fingerprint })
    }

    /// The CA's public key as an `authorized_keys` line without comment and
    /// without the trailing newline upstream stores (`ssh-ed25519 AAAA...`).
    pub fn public_line(&self) -> &str {
        &self.public_line
    }

    /// The CA's public key fingerprint (`SHA256:...`).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Signs a user certificate; returns it as an OpenSSH line
    /// (`ssh-ed25519-cert-v01@openssh.com AAAA...`). The nonce is random.
    pub fn sign_user_cert(&self, req: &UserCertRequest) -> Result<String, CryptoError> {
        const WHAT: &str = "SSH user certificate";
        let public = parse_public_key("user public key", &req.public_key)?;
        let valid_after = unix_secs("valid_after", req.valid_after)?;
        let valid_before = unix_secs("valid_before", req.valid_before)?;
        let mut builder = self.builder(WHAT, public, &req.principals, valid_after, valid_before)?;
        let field = |e: ssh_key::Error| CryptoError::input(WHAT, e);
        builder.cert_type(CertType::User).map_err(field)?;
        builder.serial(req.serial).map_err(field)?;
        builder.key_id(req.key_id.as_str()).map_err(field)?;
        for (name, value) in &req.extensions {
            builder.extension(name.as_str(), value.as_str()).map_err(field)?;
        }
        for (name, value) in &req.critical_options {
            builder.critical_option(name.as_str(), value.as_str()).map_err(field)?;
        }
        self.finish(WHAT, builder)
    }

    /// Signs a host certificate for `public_key` (an `authorized_keys` line)
    /// with key ID `host_id` and the host names it answers to as principals,
    /// valid from a minute ago until `valid_before`.
    pub fn sign_host_cert(
        &self,
        public_key: &str,
        host_id: &str,
        principals: &[String],
        valid_before: SystemTime,
    ) -> Result<String, CryptoError> {
        const WHAT: &str = "SSH host certificate";
        let public = parse_public_key("host public key", public_key)?;
        let valid_after = SystemTime::now().checked_sub(HOST_CERT_BACKDATE).unwrap_or(UNIX_EPOCH);
        let valid_after = unix_secs("valid_after", valid_after)?;
        let valid_before = unix_secs("valid_before", valid_before)?;
        let mut builder = self.builder(WHAT, public, principals, valid_after, valid_before)?;
        let field = |e: ssh_key::Error| CryptoError::input(WHAT, e);
        builder.cert_type(CertType::Host).map_err(field)?;
        builder.key_id(host_id).map_err(field)?;
        self.finish(WHAT, builder)
    }

    fn builder(
        &self,
        what: &str,
        public: PublicKey,
        principals: &[String],
        valid_after: u64,
        valid_before: u64,
    ) -> Result<Builder, CryptoError> {
        if principals.is_empty() {
            // No principals would make the certificate valid for every login.
            return Err(CryptoError::input(format!("{what} principals"), "none given; at least one is required"));
        }
        if valid_before <= valid_after {
            return Err(CryptoError::input(
                format!("{what} validity"),
                format!("valid_before ({valid_before}) is not after valid_after ({valid_after})"),
            ));
        }
        let mut nonce = vec![0u8; 32];
        super::fill_random("SSH certificate nonce", &mut nonce)?;
        let mut builder = Builder::new(nonce, public.key_data().clone(), valid_after, valid_before)
            .map_err(|e| CryptoError::input(what, e))?;
        for principal in principals {
            builder
                .valid_principal(principal.as_str())
                .map_err(|e| CryptoError::input(format!("{what} principal"), e))?;
        }
        Ok(builder)
    }

    fn finish(&self, what: &str, builder: Builder) -> Result<String, CryptoError> {
        let cert = builder.sign(&self.key).map_err(|e| CryptoError::sign(what, e))?;
        cert.to_openssh().map_err(|e| CryptoError::sign(what, format!("cannot encode the certificate: {e}")))
    }
}

/// The fingerprint of a public key line (`SHA256:...`, as `ssh-keygen -l`
/// prints it).
pub fn fingerprint(public_line: &str) -> Result<String, CryptoError> {
    Ok(parse_public_key("SSH public key", public_line)?.fingerprint(HashAlg::Sha256).to_string())
}

/// Reads an OpenSSH certificate line without verifying it.
pub fn parse_cert(line: &str) -> Result<SshCertInfo, CryptoError> {
    info_of(&decode_cert(line)?)
}

/// Reads an OpenSSH certificate line and verifies it: signed by one of
/// `trusted_ca_public_lines` (`authorized_keys` lines), signature valid, and
/// `now` within its validity. Principals and critical options are the
/// caller's to check.
pub fn verify_cert(line: &str, trusted_ca_public_lines: &[&str], now: SystemTime) -> Result<SshCertInfo, CryptoError> {
    const WHAT: &str = "SSH certificate";
    let cert = decode_cert(line)?;
    let trusted = trusted_ca_public_lines
        .iter()
        .enumerate()
        .map(|(i, ca)| {
            parse_public_key(&format!("trusted SSH CA #{}", i + 1), ca).map(|k| k.fingerprint(HashAlg::Sha256))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let now_secs = unix_secs("now", now)?;
    if cert.validate_at(now_secs, &trusted).is_ok() {
        return info_of(&cert);
    }
    // Say why, most fundamental reason first.
    let signer = cert.signature_key().fingerprint(HashAlg::Sha256);
    let reason = if !trusted.contains(&signer) {
        format!("signed by CA {signer}, which is not one of the {} trusted CA keys", trusted.len())
    } else if cert.verify_signature().is_err() {
        "the signature does not verify".to_string()
    } else if now_secs < cert.valid_after() {
        format!("not valid before {} (Unix time), now is {now_secs}", cert.valid_after())
    } else {
        format!("expired at {} (Unix time), now is {now_secs}", cert.valid_before())
    };
    Err(CryptoError::rejected(WHAT, reason))
}

/// The `authorized_keys` line that trusts a user CA, as upstream's
/// `tctl auth export --type=user` prints it:
/// `cert-authority ssh-ed25519 AAAA... clustername=<cluster>&type=user\n`
/// (the cluster name URL-query-escaped).
pub fn authorized_keys_ca_line(public_line: &str, cluster: &str) -> String {
    format!("cert-authority {} clustername={}&type=user\n", key_part(public_line), query_escape(cluster))
}

/// The `known_hosts` line that trusts a host CA, as upstream's
/// `tctl auth export --type=host` prints it:
/// `@cert-authority <cluster>,*.<cluster> ssh-ed25519 AAAA... type=host\n`.
pub fn known_hosts_ca_line(public_line: &str, cluster: &str) -> String {
    format!("@cert-authority {cluster},*.{cluster} {} type=host\n", key_part(public_line))
}

/// The key type and base64 of a public key line, without comment or newline.
fn key_part(public_line: &str) -> String {
    public_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Go's `url.QueryEscape`: unreserved characters stay, space becomes `+`,
/// everything else `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn decode_cert(line: &str) -> Result<Certificate, CryptoError> {
    const WHAT: &str = "SSH certificate";
    let line = line.trim();
    if line.is_empty() {
        return Err(CryptoError::cert(
            WHAT,
            "empty; expected an OpenSSH certificate line (<type>-cert-v01@openssh.com AAAA...)",
        ));
    }
    Certificate::from_openssh(line).map_err(|e| {
        let hint = match line.split_whitespace().next() {
            Some(kind) if !kind.contains("-cert-v01@openssh.com") => {
                format!(
                    "; its type is {:?}, expected <type>-cert-v01@openssh.com (a public key, not a certificate?)",
                    clip(kind)
                )
            }
            _ => String::new(),
        };
        CryptoError::cert(WHAT, format!("cannot read the OpenSSH certificate: {e}{hint}"))
    })
}

fn info_of(cert: &Certificate) -> Result<SshCertInfo, CryptoError> {
    const WHAT: &str = "SSH certificate";
    let cert_type = match cert.cert_type() {
        CertType::User => SshCertType::User,
        CertType::Host => SshCertType::Host,
    };
    let valid_after = cert.valid_after_time().ok_or_else(|| CryptoError::cert(WHAT, "valid_after is out of range"))?;
    let valid_before =
        cert.valid_before_time().ok_or_else(|| CryptoError::cert(WHAT, "valid_before is out of range"))?;
    Ok(SshCertInfo {
        key_id: cert.key_id().to_string(),
        principals: cert.valid_principals().to_vec(),
        cert_type,
        serial: cert.serial(),
        valid_after,
        valid_before,
        public_key_fingerprint: cert.public_key().fingerprint(HashAlg::Sha256).to_string(),
        signature_key_fingerprint: cert.signature_key().fingerprint(HashAlg::Sha256).to_string(),
        extensions: cert.extensions().0.clone(),
        critical_options: cert.critical_options().0.clone(),
    })
}

/// Parses an `authorized_keys`-style public key line (comment allowed).
fn parse_public_key(what: &str, line: &str) -> Result<PublicKey, CryptoError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(CryptoError::key(what, "empty; expected an authorized_keys line (ssh-ed25519 AAAA...)"));
    }
    PublicKey::from_openssh(line).map_err(|e| {
        let kind = line.split_whitespace().next().unwrap_or_default();
        let hint = if kind.contains("-cert-v01@openssh.com") {
            "; this is a certificate, expected a public key".to_string()
        } else if kind == "cert-authority" || kind == "@cert-authority" {
            "; remove the cert-authority marker and host patterns, keep <type> <base64>".to_string()
        } else {
            format!("; expected an authorized_keys line (ssh-ed25519 AAAA...), got type {:?}", clip(kind))
        };
        CryptoError::key(what, format!("cannot read the public key: {e}{hint}"))
    })
}

fn public_line_of(public: &PublicKey, what: &str) -> Result<String, CryptoError> {
    let mut public = public.clone();
    public.set_comment("");
    public.to_openssh().map(|l| l.trim_end().to_string()).map_err(|e| CryptoError::key(what, e))
}

/// Reads a DER private key of a kind SSH can sign with.
fn keypair_from_der(what: &str, der: &PrivateKeyDer<'_>) -> Result<KeypairData, CryptoError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    match der {
        PrivateKeyDer::Pkcs8(pkcs8) => {
            let der = pkcs8.secret_pkcs8_der();
            let info = pkcs8::PrivateKeyInfoRef::from_der(der)
                .map_err(|e| CryptoError::key(what, format!("not a PKCS#8 private key: {e}")))?;
            let algorithm = info.algorithm.oid.to_string();
            match algorithm.as_str() {
                OID_ED25519 => {
                    let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
                        .map_err(|e| CryptoError::key(what, format!("bad PKCS#8 Ed25519 key: {e}")))?;
                    Ok(KeypairData::Ed25519(Ed25519Keypair::from(key)))
                }
                OID_EC_PUBLIC_KEY => {
                    let key = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(der).map_err(|e| {
                        CryptoError::key(
                            what,
                            format!("not a PKCS#8 EC P-256 key (other curves are not supported): {e}"),
                        )
                    })?;
                    Ok(p256_keypair(key))
                }
                OID_RSA => {
                    let key = <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der)
                        .map_err(|e| CryptoError::key(what, format!("bad PKCS#8 RSA key: {e}")))?;
                    rsa_keypair(what, key)
                }
                other => Err(CryptoError::key(
                    what,
                    format!("PKCS#8 key of algorithm {other} is not supported; expected Ed25519, EC P-256 or RSA"),
                )),
            }
        }
        PrivateKeyDer::Pkcs1(pkcs1) => {
            let key = rsa::RsaPrivateKey::from_pkcs1_der(pkcs1.secret_pkcs1_der())
                .map_err(|e| CryptoError::key(what, format!("bad PKCS#1 RSA key: {e}")))?;
            rsa_keypair(what, key)
        }
        PrivateKeyDer::Sec1(sec1) => {
            let key = p256::SecretKey::from_sec1_der(sec1.secret_sec1_der()).map_err(|e| {
                CryptoError::key(what, format!("not a SEC1 EC P-256 key (other curves are not supported): {e}"))
            })?;
            Ok(p256_keypair(key))
        }
        _ => Err(CryptoError::key(what, "unsupported private key encoding")),
    }
}

fn p256_keypair(key: p256::SecretKey) -> KeypairData {
    let public = key.public_key();
    KeypairData::Ecdsa(EcdsaKeypair::NistP256 { public: public.into(), private: key.into() })
}

fn rsa_keypair(what: &str, key: rsa::RsaPrivateKey) -> Result<KeypairData, CryptoError> {
    RsaKeypair::try_from(key)
        .map(KeypairData::Rsa)
        .map_err(|e| CryptoError::key(what, format!("unusable RSA key (2048 bits or more, two primes): {e}")))
}

fn unix_secs(what: &str, t: SystemTime) -> Result<u64, CryptoError> {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).map_err(|_| CryptoError::input(what, "is before 1970"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// At most 40 characters of untrusted text for an error message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}
