//! X.509 CAs and mutual TLS: handshakes over real TCP sockets with
//! tokio-rustls, upstream's stored CA, and `openssl` reading what we issue.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::prelude::FromDer;

use super::{b64, sample, tool};
use crate::crypto::tls::PROTOCOL_VERSIONS;
use crate::crypto::{
    CryptoError, TlsIdentity, TlsIssuer, ca_pin, client_config, generate_private_key, generate_tls_ca,
    identity_from_cert_der, server_config,
};

const HOUR: Duration = Duration::from_secs(3600);

fn new_ca(cluster: &str) -> (TlsIssuer, Vec<u8>) {
    let pair = generate_tls_ca(cluster, 24 * HOUR).unwrap();
    (TlsIssuer::from_pem(&pair.cert_pem, &pair.key_pem).unwrap(), pair.cert_pem)
}

fn alice() -> TlsIdentity {
    TlsIdentity {
        username: "alice".into(),
        groups: vec!["access".into(), "editor".into()],
        cluster: "example.com".into(),
        logins: vec!["root".into(), "alice".into()],
    }
}

/// A key and a certificate for it from `ca`: (cert PEM, key PEM).
fn credentials(ca: &TlsIssuer, id: &TlsIdentity, server: bool) -> (Vec<u8>, Vec<u8>) {
    let (key_pem, public_pem) = generate_private_key().unwrap();
    let (dns, ips) =
        if server { (vec!["localhost".to_string()], vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]) } else { (vec![], vec![]) };
    (ca.issue(&public_pem, id, &dns, &ips, HOUR).unwrap(), key_pem)
}

fn auth_server(ca: &TlsIssuer) -> Arc<ServerConfig> {
    let id = TlsIdentity { username: "auth".into(), groups: vec!["Auth".into()], ..TlsIdentity::default() };
    let (cert, key) = credentials(ca, &id, true);
    server_config(&cert, &key, &[ca.cert_pem()]).unwrap()
}

/// What each side saw of one handshake.
struct Outcome {
    /// The client identity the server read, and the TLS version.
    server: Result<(TlsIdentity, ProtocolVersion), String>,
    /// What the client read after the handshake ("ok" when accepted).
    client: Result<Vec<u8>, String>,
}

async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version().ok_or("no protocol version")?;
        let peer = conn.peer_certificates().and_then(|c| c.first()).ok_or("no client certificate")?.clone();
        let (id, _) = identity_from_cert_der(&peer).map_err(|e| e.to_string())?;
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((id, version))
    });
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(got)
    };
    let run = async {
        let client = client_side.await;
        let server = server_side.await.unwrap_or_else(|e| Err(e.to_string()));
        Outcome { server, client }
    };
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("handshake timed out")
}

#[tokio::test]
async fn mutual_tls_passes_the_client_identity_to_the_server() {
    let (ca, _) = new_ca("example.com");
    let (cert, key) = credentials(&ca, &alice(), false);
    let client = client_config(&[ca.cert_pem()], &cert, &key).unwrap();
    let outcome = handshake(auth_server(&ca), client).await;
    let (id, version) = outcome.server.unwrap();
    assert_eq!(id, alice());
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(outcome.client.unwrap(), b"ok");
}

#[tokio::test]
async fn client_with_a_cert_from_another_ca_is_rejected() {
    let (ca, _) = new_ca("example.com");
    let (other, _) = new_ca("example.com");
    let (cert, key) = credentials(&other, &alice(), false);
    // The client trusts the real CA for the server; its own cert is foreign.
    let client = client_config(&[ca.cert_pem()], &cert, &key).unwrap();
    let outcome = handshake(auth_server(&ca), client).await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("invalid peer certificate"), "{err}");
    assert!(outcome.client.map(|got| got.is_empty()).unwrap_or(true), "the client must not get data");
}

#[tokio::test]
async fn client_without_a_cert_is_rejected() {
    let (ca, _) = new_ca("example.com");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.cert_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let outcome = handshake(auth_server(&ca), Arc::new(client)).await;
    let err = outcome.server.unwrap_err();
    assert!(err.contains("NoCertificatesPresented") || err.contains("certificate"), "{err}");
    assert!(outcome.client.map(|got| got.is_empty()).unwrap_or(true));
}

#[tokio::test]
async fn server_with_a_cert_from_another_ca_or_name_is_rejected_by_the_client() {
    let (ca, _) = new_ca("example.com");
    let (other, _) = new_ca("example.com");
    let (cert, key) = credentials(&ca, &alice(), false);
    let client = client_config(&[ca.cert_pem()], &cert, &key).unwrap();
    let outcome = handshake(auth_server(&other), client.clone()).await;
    let err = outcome.client.unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("invalid peer certificate"), "{err}");

    // A server certificate without the name the client dials.
    let (server_cert, server_key) = credentials(&ca, &alice(), false);
    let server = server_config(&server_cert, &server_key, &[ca.cert_pem()]).unwrap();
    let err = handshake(server, client).await.client.unwrap_err();
    assert!(err.contains("NotValidForName") || err.contains("not valid for"), "{err}");
}

#[tokio::test]
async fn tls12_only_client_connects_and_versions_are_12_and_13() {
    assert_eq!(PROTOCOL_VERSIONS.len(), 2);
    assert!(PROTOCOL_VERSIONS.iter().any(|v| v.version == ProtocolVersion::TLSv1_3));
    assert!(PROTOCOL_VERSIONS.iter().any(|v| v.version == ProtocolVersion::TLSv1_2));

    let (ca, _) = new_ca("example.com");
    let (cert, key) = credentials(&ca, &alice(), false);
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert_pem()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert).map(Result::unwrap).collect();
    let client = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(&key).unwrap())
        .unwrap();
    let outcome = handshake(auth_server(&ca), Arc::new(client)).await;
    let (id, version) = outcome.server.unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert_eq!(id.username, "alice");
}

#[tokio::test]
async fn upstream_ca_loads_and_issues_certificates_that_handshake() {
    let cert_pem = b64(sample::TLS_CERT_B64);
    let issuer = TlsIssuer::from_pem(&cert_pem, &b64(sample::TLS_KEY_B64)).unwrap();
    assert_eq!(issuer.cluster_name(), "me.localhost");
    assert!(issuer.not_after() > SystemTime::now());
    let (cert, key) = credentials(&issuer, &alice(), false);
    let client = client_config(&[&cert_pem], &cert, &key).unwrap();
    let outcome = handshake(auth_server(&issuer), client).await;
    assert_eq!(outcome.server.unwrap().0, alice());

    if let Some(openssl) = tool("openssl", "openssl") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &cert).unwrap();
        let out = Command::new(openssl)
            .current_dir(dir.path())
            .args(["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "leaf.pem"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn generated_ca_has_upstream_layout() {
    let pair = generate_tls_ca("me.localhost", 10 * 365 * 24 * HOUR).unwrap();
    assert!(pair.key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert!(!format!("{pair:?}").contains("PRIVATE KEY"), "Debug must not show the key");
    let der = CertificateDer::from_pem_slice(&pair.cert_pem).unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    assert!(cert.is_ca());
    let subject: Vec<(String, String)> = cert
        .subject()
        .iter_attributes()
        .map(|a| (a.attr_type().to_id_string(), a.as_str().unwrap().to_string()))
        .collect();
    let serial = cert.tbs_certificate.serial.to_string();
    assert_eq!(
        subject,
        [
            ("2.5.4.10".to_string(), "me.localhost".to_string()),
            ("2.5.4.3".to_string(), "me.localhost".to_string()),
            ("2.5.4.5".to_string(), serial),
        ]
    );
    assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
    let usage = cert.key_usage().unwrap().unwrap();
    assert!(usage.critical && usage.value.key_cert_sign() && usage.value.crl_sign() && usage.value.digital_signature());
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!((lifetime - 10 * 365 * 24 * 3600 - 60).abs() <= 2, "{lifetime}");
    assert_eq!(cert.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");

    // The CA pin is over its SubjectPublicKeyInfo, as openssl computes it.
    let pin = ca_pin(&pair.cert_pem).unwrap();
    assert!(pin.starts_with("sha256:") && pin.len() == 7 + 64, "{pin}");
    assert_eq!(ca_pin(&b64(sample::TLS_CERT_B64)).unwrap(), sample::TLS_CA_PIN);
}

#[test]
fn issued_certs_carry_the_identity_and_names() {
    let (issuer, ca_pem) = new_ca("example.com");
    let (_, public_pem) = generate_private_key().unwrap();
    let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST), "::1".parse().unwrap()];
    let cert = issuer.issue(&public_pem, &alice(), &["localhost".into(), "*.example.com".into()], &ips, HOUR).unwrap();
    let der = CertificateDer::from_pem_slice(&cert).unwrap();
    let (id, not_after) = identity_from_cert_der(&der).unwrap();
    assert_eq!(id, alice());
    let ttl = not_after.duration_since(SystemTime::now()).unwrap();
    assert!(ttl <= HOUR && ttl > HOUR - Duration::from_secs(60), "{ttl:?}");

    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san.value.general_names.iter().map(|n| n.to_string()).collect();
    let ipv6_loopback = format!("IPAddress({}01)", "00:".repeat(15));
    assert_eq!(names, ["DNSName(localhost)", "DNSName(*.example.com)", "IPAddress(7f:00:00:01)", &ipv6_loopback]);
    let eku = parsed.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && eku.value.client_auth);
    assert!(!parsed.is_ca());

    // The cluster comes from the issuer's CN when the attribute is missing.
    let no_cluster = TlsIdentity { cluster: String::new(), ..alice() };
    let cert = issuer.issue(&public_pem, &no_cluster, &[], &[], HOUR).unwrap();
    let (id, _) = identity_from_cert_der(&CertificateDer::from_pem_slice(&cert).unwrap()).unwrap();
    assert_eq!(id.cluster, "example.com");

    if let Some(openssl) = tool("openssl", "openssl") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &cert).unwrap();
        let out = Command::new(&openssl)
            .current_dir(dir.path())
            .args(["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "leaf.pem"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&openssl)
            .current_dir(dir.path())
            .args(["x509", "-noout", "-subject", "-nameopt", "oneline", "-in", "leaf.pem"])
            .output()
            .unwrap();
        let subject = String::from_utf8_lossy(&out.stdout);
        assert!(subject.contains("L = root, L = alice, O = access, O = editor, CN = alice"), "{subject}");
    }
}

#[test]
fn certificates_never_outlive_their_ca() {
    let pair = generate_tls_ca("short.example", HOUR).unwrap();
    let issuer = TlsIssuer::from_pem(&pair.cert_pem, &pair.key_pem).unwrap();
    let (_, public_pem) = generate_private_key().unwrap();
    let cert = issuer.issue(&public_pem, &alice(), &[], &[], 100 * HOUR).unwrap();
    let (_, not_after) = identity_from_cert_der(&CertificateDer::from_pem_slice(&cert).unwrap()).unwrap();
    assert_eq!(not_after, issuer.not_after());
}

#[test]
fn bad_inputs_are_named() {
    let (issuer, _) = new_ca("example.com");
    let (_, public_pem) = generate_private_key().unwrap();
    let other = generate_tls_ca("example.com", HOUR).unwrap();

    let err = TlsIssuer::from_pem(issuer.cert_pem(), &other.key_pem).unwrap_err();
    assert!(err.to_string().contains("TLS CA private key: does not belong to the CA certificate"), "{err}");
    let err = TlsIssuer::from_pem(b"", &other.key_pem).unwrap_err();
    assert!(err.to_string().contains("TLS CA certificate: the input is empty"), "{err}");
    let err = TlsIssuer::from_pem(issuer.cert_pem(), b"junk").unwrap_err();
    assert!(err.to_string().contains("TLS CA private key") && err.to_string().contains("no PEM block"), "{err}");
    let leaf = issuer.issue(&public_pem, &alice(), &[], &[], HOUR).unwrap();
    let err = TlsIssuer::from_pem(&leaf, &other.key_pem).unwrap_err();
    assert!(err.to_string().contains("not a CA certificate"), "{err}");

    let err = issuer.issue(b"-----BEGIN PRIVATE KEY-----\n", &alice(), &[], &[], HOUR).unwrap_err();
    assert!(err.to_string().contains("expected a PEM PUBLIC KEY block"), "{err}");
    let err = issuer.issue(&public_pem, &TlsIdentity::default(), &[], &[], HOUR).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidInput { .. }), "{err}");
    let err = issuer.issue(&public_pem, &alice(), &["bad name!".into()], &[], HOUR).unwrap_err();
    assert!(err.to_string().contains("\"bad name!\" is not a DNS name"), "{err}");
    let err = generate_tls_ca("", HOUR).unwrap_err();
    assert!(err.to_string().contains("cluster name"), "{err}");

    let err = identity_from_cert_der(b"\x30\x03\x02\x01\x00").unwrap_err();
    assert!(err.to_string().starts_with("TLS certificate: not a DER X.509 certificate"), "{err}");
    let err = server_config(&leaf, b"", &[issuer.cert_pem()]).unwrap_err();
    assert!(err.to_string().contains("server private key"), "{err}");
    let err = client_config(&[], &leaf, b"").unwrap_err();
    assert!(err.to_string().contains("server CA certificates: none given"), "{err}");
}
