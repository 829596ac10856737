//! Identity files: a private key with the certificates issued for it and
//! the CA certificates to trust, in one PEM file, laid out as upstream's
//! `tctl auth sign --format=file`: the private key, then the SSH
//! certificate line (if any), then the TLS certificate, then the TLS CA
//! certificates, then `@cert-authority` lines for the SSH host CA. The local
//! admin identity in the data dir uses the same format. Written 0600,
//! atomically.

use std::path::Path;

use super::auth::service::Credentials;

/// A parsed identity file.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
    /// SSH certificate line, if any.
    pub ssh_cert: String,
    /// TLS certificate (PEM).
    pub tls_cert: String,
    /// Trusted TLS CA certificates (PEM each).
    pub tls_ca_certs: Vec<String>,
    /// Trusted SSH host CA keys (authorized_keys lines).
    pub ssh_host_ca_keys: Vec<String>,
}

/// Errors reading or writing identity files.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read or written.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file's content is not an identity.
    #[error("identity file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Identity {
    /// An identity from a private key and the credentials issued for it.
    pub fn from_credentials(key_pem: &str, creds: &Credentials) -> Identity {
        Identity {
            key_pem: key_pem.to_string(),
            ssh_cert: creds.ssh_cert.clone(),
            tls_cert: creds.tls_cert.clone(),
            tls_ca_certs: creds.tls_ca_certs.clone(),
            ssh_host_ca_keys: creds.ssh_host_ca_keys.clone(),
        }
    }

    /// The file's text.
    pub fn to_text(&self, cluster: &str) -> String {
        let mut out = String::new();
        let mut push = |s: &str| {
            out.push_str(s.trim_end());
            out.push('\n');
        };
        push(&self.key_pem);
        if !self.ssh_cert.is_empty() {
            push(&self.ssh_cert);
        }
        push(&self.tls_cert);
        for ca in &self.tls_ca_certs {
            push(ca);
        }
        for k in &self.ssh_host_ca_keys {
            push(&format!("@cert-authority {cluster},*.{cluster} {} type=host", k.trim()));
        }
        out
    }

    /// Parses an identity file's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Identity, IdentityError> {
        let invalid = |m: &str| IdentityError::Invalid { path: path.to_string(), message: m.to_string() };
        let mut id = Identity::default();
        let mut block: Option<(String, String)> = None;
        let mut certs = Vec::new();
        for line in text.lines() {
            if let Some((label, body)) = block.as_mut() {
                body.push_str(line);
                body.push('\n');
                if line.starts_with("-----END ") {
                    let label = std::mem::take(label);
                    let body = std::mem::take(body);
                    block = None;
                    if label.contains("PRIVATE KEY") {
                        if id.key_pem.is_empty() {
                            id.key_pem = body;
                        }
                    } else if label == "CERTIFICATE" {
                        certs.push(body);
                    }
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("-----BEGIN ") {
                let label = rest.trim_end_matches('-').to_string();
                block = Some((label, format!("{line}\n")));
            } else if line.contains("-cert-v01@openssh.com ") && !line.starts_with('@') {
                id.ssh_cert = line.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("@cert-authority ") {
                let key: Vec<&str> = rest.split_whitespace().skip(1).take(2).collect();
                if key.len() == 2 {
                    id.ssh_host_ca_keys.push(key.join(" "));
                }
            }
        }
        if block.is_some() {
            return Err(invalid("a PEM block is not terminated"));
        }
        if id.key_pem.is_empty() {
            return Err(invalid("no private key found"));
        }
        let mut certs = certs.into_iter();
        id.tls_cert = certs.next().ok_or_else(|| invalid("no TLS certificate found"))?;
        id.tls_ca_certs = certs.collect();
        if id.tls_ca_certs.is_empty() {
            return Err(invalid("no CA certificate found"));
        }
        Ok(id)
    }

    /// Reads an identity file.
    pub fn load(path: &Path) -> Result<Identity, IdentityError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| IdentityError::Io { path: path.display().to_string(), source })?;
        Identity::parse(&path.display().to_string(), &text)
    }

    /// Writes the identity to `path`, 0600, atomically (a temporary file in
    /// the same directory, renamed over).
    pub fn save(&self, path: &Path, cluster: &str) -> Result<(), IdentityError> {
        write_secret_file(path, self.to_text(cluster).as_bytes())
            .map_err(|source| IdentityError::Io { path: path.display().to_string(), source })
    }
}

/// Writes a secret file: 0600, through a temporary file renamed over the
/// target, so a reader never sees half of it.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let id = Identity {
            key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ssh_cert: "ssh-ed25519-cert-v01@openssh.com AAAAB3 alice".into(),
            tls_cert: "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n".into(),
            tls_ca_certs: vec!["-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----\n".into()],
            ssh_host_ca_keys: vec!["ssh-ed25519 AAAAC3".into()],
        };
        let text = id.to_text("example.com");
        assert!(text.contains("@cert-authority example.com,*.example.com ssh-ed25519 AAAAC3 type=host"));
        let back = Identity::parse("f", &text).unwrap();
        assert_eq!(back.key_pem, id.key_pem);
        assert_eq!(back.ssh_cert, id.ssh_cert);
        assert_eq!(back.tls_cert, id.tls_cert);
        assert_eq!(back.tls_ca_certs, id.tls_ca_certs);
        assert_eq!(back.ssh_host_ca_keys, id.ssh_host_ca_keys);
        assert!(Identity::parse("f", "").unwrap_err().to_string().contains("identity file f: no private key"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("id.pem");
        id.save(&p, "example.com").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Identity::load(&p).unwrap().tls_cert, id.tls_cert);
    }
}
