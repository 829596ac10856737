//! The sample teleport.yaml that `teleport configure` prints: auth, proxy
//! and SSH services on one host, SQLite storage under the data dir, every
//! setting commented. Part of the config leaf; touches nothing else. The
//! text is built by hand (serde would drop the comments), and a test loads
//! it back through [`FileConfig`](super::FileConfig).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::DEFAULT_DATA_DIR;
use super::addr::Addr;
use super::file::{DEFAULT_AUTH_PORT, DEFAULT_PROXY_SSH_PORT, DEFAULT_SSH_PORT, DEFAULT_TUNNEL_PORT, DEFAULT_WEB_PORT};

/// What `teleport configure` was told (upstream's flag names).
#[derive(Debug, Clone, Default)]
pub struct SampleOptions {
    /// `--cluster-name` (default: left out, so the nodename is used).
    pub cluster_name: Option<String>,
    /// `--nodename` (default: the system hostname).
    pub nodename: Option<String>,
    /// `--data-dir` (default /var/lib/teleport).
    pub data_dir: Option<PathBuf>,
    /// `--public-addr`: the proxy's public web address.
    pub public_addr: Option<Addr>,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.escape_default()))
}

/// Renders the sample config.
pub fn sample_config(o: &SampleOptions) -> String {
    let data_dir = o.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let data_dir_s = data_dir.to_string_lossy().into_owned();
    let backend = data_dir.join("backend").to_string_lossy().into_owned();
    let nodename = o.nodename.clone().unwrap_or_else(super::file::system_hostname);

    let mut y = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        y,
        "# teleport.yaml: a sample written by `teleport configure`.\n\
         # Runs the auth, proxy and SSH services on this host. The reference for\n\
         # every field is docs/config.md. Check an edited copy with\n\
         # `teleport configure --test <file>`, then run `teleport start -c <file>`.\n\
         version: v3\n\
         \n\
         teleport:\n  \
           # This host's name in the cluster (default: the hostname).\n  \
           nodename: {nodename}\n  \
           # Keys, certificates, the cluster state and the lock file live here.\n  \
           # Keep it private to the user teleport runs as (0700).\n  \
           data_dir: {data_dir}\n  \
           # Cluster state: SQLite under <data_dir>/backend. For high availability\n  \
           # use etcd, dynamodb, firestore or postgres (docs/backends.md).\n  \
           storage:\n    \
             type: sqlite\n    \
             path: {backend}\n  \
           log:\n    \
             # stderr, stdout, syslog or a file path.\n    \
             output: stderr\n    \
             # TRACE, DEBUG, INFO, WARN or ERROR.\n    \
             severity: INFO\n    \
             format:\n      \
               # text or json.\n      \
               output: text\n  \
           # Diagnostics HTTP endpoint: /healthz, /readyz and /metrics (off unless\n  \
           # set here or with --diag-addr).\n  \
           # diag_addr: 127.0.0.1:3000\n",
        nodename = quoted(&nodename),
        data_dir = quoted(&data_dir_s),
        backend = quoted(&backend),
    );

    let cluster = match &o.cluster_name {
        Some(c) => format!("cluster_name: {}", quoted(c)),
        None => "# cluster_name: teleport.example.com".to_string(),
    };
    let _ = writeln!(
        y,
        "auth_service:\n  \
           enabled: \"yes\"\n  \
           # Other Teleport services connect here (the cluster API).\n  \
           listen_addr: 0.0.0.0:{DEFAULT_AUTH_PORT}\n  \
           # The cluster name is part of every certificate the cluster signs;\n  \
           # changing it later invalidates them all. Default: the nodename.\n  \
           {cluster}\n  \
           # Static join tokens, \"<roles>:<token>\" (roles: node, proxy, auth, app,\n  \
           # db, kube, windowsdesktop, discovery, bot). A token that is an\n  \
           # absolute path is read from that file. Short-lived tokens are safer.\n  \
           # tokens:\n  \
           #   - \"node:/var/lib/teleport/node-join-token\"\n  \
           authentication:\n    \
             # local, github, oidc or saml.\n    \
             type: local\n    \
             # off, otp, optional, on or webauthn.\n    \
             second_factor: otp\n  \
           # Where sessions are recorded: node, node-sync, proxy, proxy-sync or off.\n  \
           session_recording: node\n"
    );

    let public = match &o.public_addr {
        Some(a) => format!("public_addr: {}", quoted(&a.with_default_port(DEFAULT_WEB_PORT))),
        None => format!("# public_addr: proxy.example.com:{DEFAULT_WEB_PORT}"),
    };
    let _ = writeln!(
        y,
        "proxy_service:\n  \
           enabled: \"yes\"\n  \
           # SSH clients (tsh ssh) connect here.\n  \
           listen_addr: 0.0.0.0:{DEFAULT_PROXY_SSH_PORT}\n  \
           # HTTPS for tsh login and the web UI.\n  \
           web_listen_addr: 0.0.0.0:{DEFAULT_WEB_PORT}\n  \
           # Reverse tunnels from nodes behind firewalls.\n  \
           tunnel_listen_addr: 0.0.0.0:{DEFAULT_TUNNEL_PORT}\n  \
           # The address users reach the proxy at (behind a load balancer: its name).\n  \
           {public}\n  \
           # TLS certificate and key for the web port.\n  \
           # https_keypairs:\n  \
           #   - key_file: /var/lib/teleport/webproxy_key.pem\n  \
           #     cert_file: /var/lib/teleport/webproxy_cert.pem\n"
    );

    let _ = write!(
        y,
        "ssh_service:\n  \
           enabled: \"yes\"\n  \
           listen_addr: 0.0.0.0:{DEFAULT_SSH_PORT}\n  \
           # Static labels, used by roles to select nodes.\n  \
           labels:\n    \
             env: example\n  \
           # Dynamic labels: a command's output, refreshed every period.\n  \
           commands:\n    \
             - name: hostname\n      \
               command: [hostname]\n      \
               period: 1m0s\n"
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    #[test]
    fn sample_loads_and_names_the_cluster() {
        let o = SampleOptions {
            cluster_name: Some("dr.example.com".into()),
            nodename: Some("node-1".into()),
            data_dir: Some("/srv/tele port".into()),
            public_addr: Some(Addr::parse("proxy.example.com").unwrap()),
        };
        let text = sample_config(&o);
        let cfg = FileConfig::from_str_named(&text, "sample.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.cluster_name(), "dr.example.com");
        assert_eq!(cfg.nodename(), "node-1");
        assert_eq!(cfg.data_dir(), PathBuf::from("/srv/tele port"));
        assert_eq!(cfg.storage(), crate::config::StorageConfig::default_for(Path::new("/srv/tele port")));
        assert!(cfg.auth_service.is_enabled() && cfg.proxy_service.is_enabled() && cfg.ssh_service.is_enabled());
        assert_eq!(cfg.proxy_service.public_addr[0].to_string(), "proxy.example.com:3080");
        assert!(cfg.ignored_fields().is_empty(), "{:?}", cfg.ignored_fields());
        assert_eq!(cfg.auth_listen_addr().unwrap().port(), 3025);

        // Defaults: no cluster name means the nodename.
        let text = sample_config(&SampleOptions { nodename: Some("n2".into()), ..Default::default() });
        let cfg = FileConfig::from_str_named(&text, "sample.yaml").unwrap();
        assert_eq!(cfg.cluster_name(), "n2");
        assert_eq!(cfg.data_dir(), PathBuf::from("/var/lib/teleport"));
    }

    #[test]
    fn odd_names_are_quoted() {
        let o = SampleOptions { cluster_name: Some("a: \"b\" #c".into()), ..Default::default() };
        let cfg = FileConfig::from_str_named(&sample_config(&o), "s.yaml").unwrap();
        assert_eq!(cfg.cluster_name(), "a: \"b\" #c");
    }

    use std::path::Path;
}
