//! Tests of the crypto module, one file per submodule, plus the no-panic
//! property tests. External tools (`ssh-keygen`, `openssl`) cross-check what
//! we write; see [`tool`] for what happens when one is missing.

mod jwt;
mod no_panic;
mod secret;
mod ssh;
mod tls;

use base64::Engine;

/// The first cert_authority document (type host, cluster me.localhost) of
/// /work/shared/reference/upstream-export-sample.yaml, as upstream exports it:
/// base64 of the stored bytes.
pub(super) mod sample {
    /// `spec.active_keys.ssh[0].private_key`: a PKCS#8 Ed25519 PEM.
    pub const SSH_PRIVATE_KEY_B64: &str = concat!(
        "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1DNENBUUF3QlFZREsyVndCQ0lFSU5WTzBiNUxSOXk2Nm5SRGJHN3JJUzFR",
        "Z3dBcUVpSWtMZS9WVmFrd3pJZ2oKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo=",
    );
    /// `spec.active_keys.ssh[0].public_key`: an authorized_keys line.
    pub const SSH_PUBLIC_KEY_B64: &str = concat!(
        "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUw2ZWtVSTg3U3VOYkFiWnhPbGxRUEJJWGdPVjFNcEt4UWVN",
        "QXB0MklpVlYK",
    );
    /// What `ssh-keygen -l` prints for that public key.
    pub const SSH_FINGERPRINT: &str = "SHA256:ySpQedzWCpGZTK5E1fwCX++d9yDf6BlL/UozbOxkrig";
    /// `spec.active_keys.tls[0].cert`: the CA certificate PEM.
    pub const TLS_CERT_B64: &str = concat!(
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNBakNDQWFlZ0F3SUJBZ0lSQUpKYkRNWGtYN3ZOR0EreFRQeGlzYzR3",
        "Q2dZSUtvWkl6ajBFQXdJd1lERVYKTUJNR0ExVUVDaE1NYldVdWJHOWpZV3hvYjNOME1SVXdFd1lEVlFRREV3eHRaUzVzYjJO",
        "aGJHaHZjM1F4TURBdQpCZ05WQkFVVEp6RTVORFUwTURBME5UUTJOakkyTlRrMk1qazBOakkxTURNNU5UYzJNamM1TkRBNE1q",
        "YzJOakFlCkZ3MHlOREV5TXpFeE5ESTJNRFphRncwek5ERXlNamt4TkRJMk1EWmFNR0F4RlRBVEJnTlZCQW9UREcxbExteHYK",
        "WTJGc2FHOXpkREVWTUJNR0ExVUVBeE1NYldVdWJHOWpZV3hvYjNOME1UQXdMZ1lEVlFRRkV5Y3hPVFExTkRBdwpORFUwTmpZ",
        "eU5qVTVOakk1TkRZeU5UQXpPVFUzTmpJM09UUXdPREkzTmpZd1dUQVRCZ2NxaGtqT1BRSUJCZ2dxCmhrak9QUU1CQndOQ0FB",
        "UzZTZE92WEdZV2wyY2FCRHFPcXRRN3RyNW1JWkdKR0JFYXJWUnMvSFFvYXpiZExKK0IKMExMUFhHemQvOTNxZ04wNXJVWGhy",
        "NHVXb3pEeTMxR2V4ZDZmbzBJd1FEQU9CZ05WSFE4QkFmOEVCQU1DQVlZdwpEd1lEVlIwVEFRSC9CQVV3QXdFQi96QWRCZ05W",
        "SFE0RUZnUVVLWmhpWVRwc3Z0NTkwTXc1OGhPY2xNcTBVYmN3CkNnWUlLb1pJemowRUF3SURTUUF3UmdJaEFLcFExNWt6MFZl",
        "QThmOEE5S3RKRS9LLytxVkkyNGFpMnM5dytmYTQKVFNFdkFpRUEwWWtNZGNFc1dqTjBFeFpzVmVsRU5EdS9hcWhtUkpua2Fp",
        "akJDNjFBY0Q0PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",
    );
    /// `spec.active_keys.tls[0].key`: the CA's PKCS#8 EC P-256 key PEM.
    pub const TLS_KEY_B64: &str = concat!(
        "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lC",
        "QVFRZ3RTcVllSWhXeTZ3S3QxVDYKUVdVSitTVkF0SjRpNkppajhac0hmWkw2YzJXaFJBTkNBQVM2U2RPdlhHWVdsMmNhQkRx",
        "T3F0UTd0cjVtSVpHSgpHQkVhclZScy9IUW9hemJkTEorQjBMTFBYR3pkLzkzcWdOMDVyVVhocjR1V296RHkzMUdleGQ2Zgot",
        "LS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==",
    );
    /// The CA pin of that certificate, computed with
    /// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
    pub const TLS_CA_PIN: &str = "sha256:cab41246f045343eda9dda05f6963414e08bc522a1e383da0d23be50c2fb8153";
}

/// Decodes one of the [`sample`] constants.
pub(super) fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).expect("sample constants are valid base64")
}

/// Finds an external tool for a cross-check. When it is missing the test is
/// skipped with a message saying how to install it, unless CI or
/// TELEPORT_TEST_REQUIRE_SERVICES is set: then a missing tool fails the test.
pub(super) fn tool(name: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    if found.is_none() {
        let required = ["CI", "TELEPORT_TEST_REQUIRE_SERVICES"]
            .iter()
            .any(|v| std::env::var(v).map(|v| !v.is_empty() && v != "0").unwrap_or(false));
        let msg = format!("{name} is not installed; install it with `apt-get install {package}`");
        assert!(!required, "{msg} (a missing tool is a failure because CI or TELEPORT_TEST_REQUIRE_SERVICES is set)");
        eprintln!("SKIPPED: {msg}");
    }
    found
}

#[test]
fn install_default_provider_is_idempotent() {
    crate::crypto::install_default_provider();
    crate::crypto::install_default_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
