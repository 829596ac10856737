//! SSH CAs and certificates: our own keys, upstream's stored keys, and
//! `ssh-keygen` reading what we sign.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{b64, sample, tool};
use crate::crypto::ssh::DEFAULT_USER_EXTENSIONS;
use crate::crypto::{
    CryptoError, SshCertType, SshSigner, UserCertRequest, authorized_keys_ca_line, fingerprint, generate_ssh_keypair,
    known_hosts_ca_line, parse_cert, verify_cert,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A user's public key line (a fresh Ed25519 key).
fn user_key() -> String {
    let pair = generate_ssh_keypair().unwrap();
    String::from_utf8(pair.public_line).unwrap()
}

fn request(public_key: &str, principals: &[&str]) -> UserCertRequest {
    let now = SystemTime::now();
    UserCertRequest::new(
        public_key,
        "alice",
        principals.iter().map(|p| p.to_string()).collect(),
        now - Duration::from_secs(60),
        now + HOUR,
    )
}

#[test]
fn generated_keypair_has_upstream_layout() {
    let pair = generate_ssh_keypair().unwrap();
    let pem = String::from_utf8(pair.private_pem.clone()).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"), "{pem}");
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    let line = String::from_utf8(pair.public_line.clone()).unwrap();
    assert!(line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"), "{line}");
    assert!(line.ends_with('\n'));
    assert_eq!(line.split_whitespace().count(), 2, "no comment: {line:?}");

    let signer = SshSigner::from_pem(&pair.private_pem).unwrap();
    assert_eq!(format!("{}\n", signer.public_line()), line);
    assert_eq!(signer.fingerprint(), fingerprint(&line).unwrap());
    // Debug never shows the private key.
    assert!(!format!("{pair:?}").contains("MC4CAQ"));
    assert!(!format!("{signer:?}").contains("PRIVATE"));
}

#[test]
fn upstream_pkcs8_key_loads_and_matches_its_stored_public_key() {
    let signer = SshSigner::from_pem(&b64(sample::SSH_PRIVATE_KEY_B64)).unwrap();
    let stored = String::from_utf8(b64(sample::SSH_PUBLIC_KEY_B64)).unwrap();
    assert_eq!(format!("{}\n", signer.public_line()), stored);
    assert_eq!(signer.fingerprint(), sample::SSH_FINGERPRINT);
    assert_eq!(fingerprint(&stored).unwrap(), sample::SSH_FINGERPRINT);
}

#[test]
fn signs_user_cert_that_ssh_keygen_reads() {
    let Some(ssh_keygen) = tool("ssh-keygen", "openssh-client") else { return };
    let signer = SshSigner::from_pem(&b64(sample::SSH_PRIVATE_KEY_B64)).unwrap();
    let mut req = request(&user_key(), &["root", "alice"]);
    req.serial = 42;
    req.extensions.insert("teleport-roles".into(), r#"{"version":"v1","roles":["admin"]}"#.into());
    req.critical_options.insert("source-address".into(), "10.0.0.0/8".into());
    let cert = signer.sign_user_cert(&req).unwrap();
    assert!(cert.starts_with("ssh-ed25519-cert-v01@openssh.com AAAA"), "{cert}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id_ed25519-cert.pub");
    std::fs::write(&path, format!("{cert}\n")).unwrap();
    let out = Command::new(ssh_keygen).arg("-L").arg("-f").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ssh-keygen -L failed: {}{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"), "{text}");
    assert!(text.contains("Key ID: \"alice\""), "{text}");
    assert!(text.contains("Serial: 42"), "{text}");
    assert!(text.contains(&format!("Signing CA: ED25519 {} (using ssh-ed25519)", sample::SSH_FINGERPRINT)), "{text}");
    let principals: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim().starts_with("Principals:"))
        .skip(1)
        .take_while(|l| !l.trim().ends_with(':'))
        .map(str::trim)
        .collect();
    assert_eq!(principals, ["root", "alice"], "{text}");
    for ext in DEFAULT_USER_EXTENSIONS {
        assert!(text.contains(ext), "{ext} missing: {text}");
    }
    assert!(text.contains("teleport-roles"), "{text}");
    assert!(text.contains("source-address 10.0.0.0/8"), "{text}");

    // And we read back what we wrote.
    let info = parse_cert(&cert).unwrap();
    assert_eq!(info.key_id, "alice");
    assert_eq!(info.principals, ["root", "alice"]);
    assert_eq!(info.cert_type, SshCertType::User);
    assert_eq!(info.serial, 42);
    assert_eq!(info.signature_key_fingerprint, sample::SSH_FINGERPRINT);
    assert_eq!(info.public_key_fingerprint, fingerprint(&req.public_key).unwrap());
    assert_eq!(
        info.extensions.get("teleport-roles").map(String::as_str),
        Some(r#"{"version":"v1","roles":["admin"]}"#)
    );
    assert_eq!(info.critical_options.get("source-address").map(String::as_str), Some("10.0.0.0/8"));
}

#[test]
fn signs_host_cert_that_ssh_keygen_reads() {
    let Some(ssh_keygen) = tool("ssh-keygen", "openssh-client") else { return };
    let ca = generate_ssh_keypair().unwrap();
    let signer = SshSigner::from_pem(&ca.private_pem).unwrap();
    let host_key = user_key();
    let principals = vec!["node-1".to_string(), "node-1.example.com".to_string()];
    let cert = signer.sign_host_cert(&host_key, "5a1c1b9e-host", &principals, SystemTime::now() + HOUR).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host-cert.pub");
    std::fs::write(&path, &cert).unwrap();
    let out = Command::new(ssh_keygen).arg("-L").arg("-f").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("host certificate"), "{text}");
    assert!(text.contains("Key ID: \"5a1c1b9e-host\""), "{text}");
    assert!(text.contains("node-1.example.com"), "{text}");

    let ca_line = String::from_utf8(ca.public_line).unwrap();
    let info = verify_cert(&cert, &[&ca_line], SystemTime::now()).unwrap();
    assert_eq!(info.cert_type, SshCertType::Host);
    assert_eq!(info.principals, principals);
}

#[test]
fn verify_accepts_trusted_and_rejects_other_ca_and_expired() {
    let ca = generate_ssh_keypair().unwrap();
    let other = generate_ssh_keypair().unwrap();
    let ca_line = String::from_utf8(ca.public_line.clone()).unwrap();
    let other_line = String::from_utf8(other.public_line.clone()).unwrap();
    let signer = SshSigner::from_pem(&ca.private_pem).unwrap();
    let cert = signer.sign_user_cert(&request(&user_key(), &["alice"])).unwrap();
    let now = SystemTime::now();

    let info = verify_cert(&cert, &[&other_line, &ca_line], now).unwrap();
    assert_eq!(info.principals, ["alice"]);

    let err = verify_cert(&cert, &[&other_line], now).unwrap_err();
    assert!(matches!(err, CryptoError::CertRejected { .. }), "{err}");
    assert!(err.to_string().contains("not one of the 1 trusted CA keys"), "{err}");

    let err = verify_cert(&cert, &[&ca_line], now + 2 * HOUR).unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let err = verify_cert(&cert, &[&ca_line], now - HOUR).unwrap_err();
    assert!(err.to_string().contains("not valid before"), "{err}");

    let err = verify_cert(&cert, &[], now).unwrap_err();
    assert!(matches!(err, CryptoError::CertRejected { .. }), "{err}");
    let err = verify_cert(&cert, &["not a key"], now).unwrap_err();
    assert!(err.to_string().contains("trusted SSH CA #1"), "{err}");
}

#[test]
fn verify_rejects_a_tampered_certificate() {
    use base64::Engine;
    let ca = generate_ssh_keypair().unwrap();
    let ca_line = String::from_utf8(ca.public_line.clone()).unwrap();
    let signer = SshSigner::from_pem(&ca.private_pem).unwrap();
    let cert = signer.sign_user_cert(&request(&user_key(), &["bob"])).unwrap();
    let (kind, body) = cert.split_once(' ').unwrap();
    let mut blob = base64::engine::general_purpose::STANDARD.decode(body.trim()).unwrap();
    // Change the principal "bob" inside the signed body.
    let at = blob.windows(3).position(|w| w == b"bob").unwrap();
    blob[at] = b'B';
    let forged = format!("{kind} {}", base64::engine::general_purpose::STANDARD.encode(&blob));
    assert_eq!(parse_cert(&forged).unwrap().principals, ["Bob"]);
    let err = verify_cert(&forged, &[&ca_line], SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("signature does not verify"), "{err}");
}

#[test]
fn user_cert_requests_are_checked() {
    let signer = SshSigner::from_pem(&generate_ssh_keypair().unwrap().private_pem).unwrap();
    let key = user_key();

    let err = signer.sign_user_cert(&request(&key, &[])).unwrap_err();
    assert!(err.to_string().contains("principals: none given"), "{err}");

    let mut req = request(&key, &["alice"]);
    req.valid_before = req.valid_after;
    let err = signer.sign_user_cert(&req).unwrap_err();
    assert!(err.to_string().contains("valid_before"), "{err}");

    let err = signer.sign_user_cert(&request("ssh-ed25519 !!!", &["alice"])).unwrap_err();
    assert!(matches!(&err, CryptoError::InvalidKey { what, .. } if what == "user public key"), "{err}");

    let cert = signer.sign_user_cert(&request(&key, &["alice"])).unwrap();
    let err = signer.sign_user_cert(&request(&cert, &["alice"])).unwrap_err();
    assert!(err.to_string().contains("this is a certificate, expected a public key"), "{err}");

    let info = parse_cert(&cert).unwrap();
    let expected: BTreeMap<String, String> =
        DEFAULT_USER_EXTENSIONS.iter().map(|e| (e.to_string(), String::new())).collect();
    assert_eq!(info.extensions, expected);
    assert!(info.critical_options.is_empty());
}

#[test]
fn openssh_private_keys_load() {
    let Some(ssh_keygen) = tool("ssh-keygen", "openssh-client") else { return };
    let dir = tempfile::tempdir().unwrap();
    for (kind, bits) in [("ed25519", None), ("ecdsa", Some("256")), ("rsa", Some("2048"))] {
        let path = dir.path().join(format!("ca_{kind}"));
        let mut cmd = Command::new(&ssh_keygen);
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "test ca", "-f"]).arg(&path);
        if let Some(bits) = bits {
            cmd.args(["-b", bits]);
        }
        assert!(cmd.status().unwrap().success());
        let signer = SshSigner::from_pem(&std::fs::read(&path).unwrap()).unwrap();
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert_eq!(signer.fingerprint(), fingerprint(&public).unwrap(), "{kind}");
        let cert = signer.sign_user_cert(&request(&user_key(), &["alice"])).unwrap();
        verify_cert(&cert, &[&public], SystemTime::now()).unwrap();

        // ssh-keygen also writes PKCS#8 (-m PKCS8) for ECDSA and RSA, and
        // PKCS#1 / SEC1 (-m PEM).
        if kind != "ed25519" {
            for format in ["PKCS8", "PEM"] {
                let copy = dir.path().join(format!("ca_{kind}_{format}"));
                std::fs::copy(&path, &copy).unwrap();
                let out = Command::new(&ssh_keygen)
                    .args(["-q", "-p", "-N", "", "-P", "", "-m", format, "-f"])
                    .arg(&copy)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let pem = std::fs::read(&copy).unwrap();
                let signer = SshSigner::from_pem(&pem)
                    .unwrap_or_else(|e| panic!("{kind} {format}: {e}\n{}", String::from_utf8_lossy(&pem)));
                assert_eq!(signer.fingerprint(), fingerprint(&public).unwrap(), "{kind} {format}");
            }
        }
    }
}

#[test]
fn encrypted_and_unknown_keys_are_refused_clearly() {
    let err = SshSigner::from_pem(b"").unwrap_err();
    assert!(err.to_string().contains("SSH CA private key: the input is empty"), "{err}");
    let err = SshSigner::from_pem(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap_err();
    assert!(err.to_string().contains("labelled CERTIFICATE"), "{err}");
    let err = SshSigner::from_pem(&b64(sample::TLS_CERT_B64)).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidKey { .. }), "{err}");

    // An ECDSA P-256 PKCS#8 key works; the TLS CA key of the sample is one.
    let signer = SshSigner::from_pem(&b64(sample::TLS_KEY_B64)).unwrap();
    assert!(signer.public_line().starts_with("ecdsa-sha2-nistp256 "), "{}", signer.public_line());

    let Some(ssh_keygen) = tool("ssh-keygen", "openssh-client") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc");
    let ok = Command::new(ssh_keygen).args(["-q", "-t", "ed25519", "-N", "secret", "-f"]).arg(&path).status().unwrap();
    assert!(ok.success());
    let err = SshSigner::from_pem(&std::fs::read(&path).unwrap()).unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[test]
fn export_lines_match_upstream_formats() {
    let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6ekUI87SuNbAbZxOllQPBIXgOV1MpKxQeMApt2IiVV\n";
    assert_eq!(
        authorized_keys_ca_line(line, "me.localhost"),
        "cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6ekUI87SuNbAbZxOllQPBIXgOV1MpKxQeMApt2IiVV \
         clustername=me.localhost&type=user\n"
    );
    assert_eq!(
        known_hosts_ca_line(line, "me.localhost"),
        "@cert-authority me.localhost,*.me.localhost ssh-ed25519 \
         AAAAC3NzaC1lZDI1NTE5AAAAIL6ekUI87SuNbAbZxOllQPBIXgOV1MpKxQeMApt2IiVV type=host\n"
    );
    // A comment on the key is dropped; the cluster name is query-escaped.
    let with_comment = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6ekUI87SuNbAbZxOllQPBIXgOV1MpKxQeMApt2IiVV ca@x";
    assert!(authorized_keys_ca_line(with_comment, "a b&c").ends_with("IiVV clustername=a+b%26c&type=user\n"));
}

#[test]
fn fingerprint_and_parse_errors_name_the_input() {
    let err = fingerprint("").unwrap_err();
    assert!(err.to_string().contains("SSH public key: empty"), "{err}");
    let err = fingerprint("cert-authority ssh-ed25519 AAAA").unwrap_err();
    assert!(err.to_string().contains("remove the cert-authority marker"), "{err}");
    let err =
        parse_cert("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6ekUI87SuNbAbZxOllQPBIXgOV1MpKxQeMApt2IiVV").unwrap_err();
    assert!(err.to_string().contains("a public key, not a certificate?"), "{err}");
    let err = parse_cert("   ").unwrap_err();
    assert!(matches!(err, CryptoError::InvalidCert { .. }), "{err}");
}
