//! teleport.yaml: every default, every error, an upstream-style file, and
//! property tests that no input makes the loader panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn load(text: &str) -> FileConfig {
    FileConfig::from_str_named(text, "/etc/teleport.yaml").unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn err(text: &str) -> String {
    match FileConfig::from_str_named(text, "/etc/teleport.yaml") {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn has_all(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} should contain {p:?}");
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Modeled on the admin manual's sample (the output of upstream's
/// `teleport configure`, expanded), with settings we do not implement.
const UPSTREAM_STYLE: &str = r#"
# Sample Teleport configuration file
version: v1
teleport:
  nodename: NODE_NAME
  data_dir: /var/lib/teleport
  pid_file: /run/teleport.pid
  auth_token: xxxx-token-xxxx
  ca_pin: "sha256:ca-pin-hash-goes-here"
  auth_servers:
    - 10.1.0.5:3025
    - auth.example.com
  advertise_ip: 10.1.0.5
  connection_limits:
    max_connections: 65000
    max_users: 1000
  cache:
    type: in-memory
  log:
    output: stderr
    severity: INFO
    format:
      output: text
      extra_fields: [timestamp, level, component, caller]
  storage:
    type: dir
    path: /var/lib/teleport/backend
    audit_events_uri: ['file:///var/lib/teleport/audit/events', 'stdout://']
    audit_sessions_uri: 'file:///var/lib/teleport/audit/sessions'

auth_service:
  enabled: "yes"
  cluster_name: "teleport-aws-us-east-1"
  listen_addr: 0.0.0.0:3025
  public_addr: [auth.example.com:3025, 10.1.0.5]
  tokens:
  - proxy,node:xxxx-token-xxxx
  - "Auth,Trusted_Cluster:yyyy"
  license_file: /var/lib/teleport/license.pem
  message_of_the_day: "Welcome"
  authentication:
    type: local
    second_factor: otp
    webauthn:
      rp_id: example.com
  session_recording: proxy-sync
  proxy_listener_mode: multiplex
  client_idle_timeout: 30m

ssh_service:
  enabled: "yes"
  listen_addr: 0.0.0.0:3022
  labels:
    db_role: master
    teleport: static-label-example
    rack: 12
  commands:
  - name: hostname
    command: [/usr/bin/hostname]
    period: 1m0s
  - name: arch
    command: [/usr/bin/uname, -p]
    period: 1h0m0s
  pam:
    enabled: no

proxy_service:
  enabled: "yes"
  listen_addr: 0.0.0.0:3023
  web_listen_addr: 0.0.0.0:3080
  tunnel_listen_addr: 0.0.0.0:3024
  kube_listen_addr: 0.0.0.0:3026
  public_addr: TELEPORT_PUBLIC_DNS_NAME:3080
  https_keypairs:
    - key_file: /var/lib/teleport/webproxy_key.pem
      cert_file: /var/lib/teleport/webproxy_cert.pem

kubernetes_service:
  enabled: "no"
"#;

#[test]
fn upstream_style_file_loads() {
    let c = load(UPSTREAM_STYLE);
    assert_eq!(c.version(), "v1");
    assert_eq!(c.nodename(), "NODE_NAME");
    assert_eq!(c.cluster_name(), "teleport-aws-us-east-1");
    assert_eq!(c.teleport.auth_token.as_ref().map(Secret::expose), Some("xxxx-token-xxxx"));
    assert_eq!(c.auth_servers(), ["10.1.0.5:3025", "auth.example.com:3025"]);
    assert_eq!(c.ca_pins(), ["sha256:ca-pin-hash-goes-here"]);
    assert_eq!(c.teleport.pid_file.as_deref(), Some(Path::new("/run/teleport.pid")));
    assert_eq!(c.storage().type_name(), "sqlite");
    assert_eq!(c.storage().audit().audit_events_uri.to_vec().len(), 2);
    assert_eq!(c.teleport.log.format.extra_fields.len(), 4);
    let tokens = &c.auth_service.tokens;
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].roles, ["proxy", "node"]);
    assert_eq!(tokens[0].token, "xxxx-token-xxxx");
    assert_eq!(tokens[1].roles, ["auth", "trusted_cluster"]);
    assert_eq!(c.auth_service.public_addr[1].with_default_port(DEFAULT_AUTH_PORT), "10.1.0.5:3025");
    assert_eq!(c.auth_service.session_recording(), SessionRecording::ProxySync);
    assert_eq!(c.auth_service.proxy_listener_mode(), ProxyListenerMode::Multiplex);
    assert_eq!(c.ssh_service.labels["rack"], "12");
    assert_eq!(c.ssh_service.commands[1].command, ["/usr/bin/uname", "-p"]);
    assert_eq!(c.ssh_service.commands[1].period, Some(Duration::from_secs(3600)));
    assert_eq!(c.proxy_service.https_keypairs.len(), 1);
    assert_eq!(c.proxy_web_listen_addr().unwrap(), sock("0.0.0.0:3080"));
    let mut ignored = c.ignored_fields();
    ignored.sort();
    assert_eq!(
        ignored,
        [
            "auth_service.authentication.webauthn",
            "auth_service.client_idle_timeout",
            "auth_service.license_file",
            "auth_service.message_of_the_day",
            "kubernetes_service",
            "proxy_service.kube_listen_addr",
            "ssh_service.pam",
            "teleport.cache",
            "teleport.connection_limits",
        ]
    );
}

#[test]
fn upstream_lists_do_not_shadow_implemented_fields() {
    use crate::config::fields::{Section, struct_fields};
    fn check<T: Section>() {
        let fields = struct_fields::<T>();
        assert!(!fields.is_empty(), "{}", T::PATH);
        for u in T::UPSTREAM_ONLY {
            assert!(!fields.contains(u), "{}.{u} is implemented and listed as upstream-only", T::PATH);
        }
    }
    check::<FileConfig>();
    check::<TeleportSection>();
    check::<LogSection>();
    check::<LogFormat>();
    check::<AuthServiceSection>();
    check::<AuthenticationSection>();
    check::<ProxyServiceSection>();
    check::<SshServiceSection>();
}

#[test]
fn defaults() {
    let c = load("teleport:\n  nodename: n1\n");
    assert_eq!(c.version(), "v1");
    assert_eq!(c.data_dir(), PathBuf::from("/var/lib/teleport"));
    assert_eq!(c.storage(), StorageConfig::default_for(Path::new("/var/lib/teleport")));
    assert_eq!(c.cluster_name(), "n1", "cluster name defaults to the nodename");
    assert!(c.auth_service.is_enabled() && c.proxy_service.is_enabled() && c.ssh_service.is_enabled());
    assert_eq!(c.auth_listen_addr().unwrap(), sock("0.0.0.0:3025"));
    assert_eq!(c.ssh_listen_addr().unwrap(), sock("0.0.0.0:3022"));
    assert_eq!(c.proxy_ssh_listen_addr().unwrap(), sock("0.0.0.0:3023"));
    assert_eq!(c.proxy_tunnel_listen_addr().unwrap(), sock("0.0.0.0:3024"));
    assert_eq!(c.proxy_web_listen_addr().unwrap(), sock("0.0.0.0:3080"));
    assert_eq!(c.diag_addr().unwrap(), None);
    assert_eq!(c.second_factor(), SecondFactor::Otp);
    assert_eq!(c.auth_service.authentication.kind, AuthType::Local);
    assert_eq!(c.auth_service.session_recording(), SessionRecording::Node);
    assert_eq!(c.auth_service.proxy_listener_mode(), ProxyListenerMode::Separate);
    assert_eq!(c.log_severity(), LogSeverity::Info);
    assert_eq!(c.teleport.log.output, LogOutput::Stderr);
    assert!(c.auth_servers().is_empty() && c.auth_service.tokens.is_empty());
    assert!(c.ignored_fields().is_empty());
    assert_eq!(c.source(), Path::new("/etc/teleport.yaml"));

    // Empty sections are allowed and mean "all defaults".
    let c = load("teleport:\nauth_service:\nproxy_service:\nssh_service:\n");
    assert!(!c.nodename().is_empty(), "the nodename defaults to the hostname");
    assert_eq!(c.cluster_name(), c.nodename());

    // data_dir moves the storage default.
    let c = load("teleport:\n  data_dir: /srv/t\n");
    assert_eq!(c.storage(), StorageConfig::default_for(Path::new("/srv/t")));
}

#[test]
fn listen_addr_forms() {
    let c = load(
        "teleport:\n  diag_addr: 127.0.0.1\nauth_service:\n  listen_addr: :4025\nssh_service:\n  listen_addr: 10.0.0.1\nproxy_service:\n  web_listen_addr: '[::1]:443'\n",
    );
    assert_eq!(c.auth_listen_addr().unwrap(), sock("0.0.0.0:4025"));
    assert_eq!(c.ssh_listen_addr().unwrap(), sock("10.0.0.1:3022"));
    assert_eq!(c.proxy_web_listen_addr().unwrap(), sock("[::1]:443"));
    assert_eq!(c.diag_addr().unwrap(), Some(sock("127.0.0.1:3000")));
    let c = load("auth_service:\n  listen_addr: localhost:0\n");
    assert!(c.auth_listen_addr().unwrap().ip().is_loopback());
}

#[test]
fn enabled_takes_words_and_booleans() {
    for (word, want) in
        [("\"yes\"", true), ("yes", true), ("\"no\"", false), ("true", true), ("false", false), ("off", false)]
    {
        let c = load(&format!("auth_service:\n  enabled: {word}\nssh_service:\n  enabled: {word}\n"));
        assert_eq!(c.auth_service.is_enabled(), want, "{word}");
        assert_eq!(c.ssh_service.is_enabled(), want, "{word}");
    }
    let e = err("proxy_service:\n  enabled: maybe\n");
    has_all(&e, &["/etc/teleport.yaml", "proxy_service.enabled", "\"maybe\" is not a boolean", "line 2"]);
}

#[test]
fn typo_names_path_line_and_suggestion() {
    let e = err("auth_service:\n  enabled: yes\n  listn_addr: 0.0.0.0:3025\n");
    has_all(&e, &["/etc/teleport.yaml", "`auth_service.listn_addr`", "did you mean `listen_addr`?", "line 3"]);
    let e = err("auth_servce:\n  enabled: yes\n");
    has_all(&e, &["/etc/teleport.yaml", "`auth_servce`", "did you mean `auth_service`?", "line 1"]);
    let e = err("teleport:\n  log:\n    severty: INFO\n");
    has_all(&e, &["`teleport.log.severty`", "did you mean `severity`?", "line 3"]);
    let e = err("teleport:\n  log:\n    format:\n      outptu: json\n");
    has_all(&e, &["`teleport.log.format.outptu`", "did you mean `output`?", "line 4"]);
    // A field that belongs in another section says where.
    let e = err("teleport:\n  cluster_name: x\n");
    has_all(&e, &["`teleport.cluster_name`", "belongs in `auth_service`", "line 2"]);
    let e = err("storage:\n  type: memory\n");
    has_all(&e, &["`storage`", "belongs in `teleport`"]);
    // Nothing close: the valid fields are listed.
    let e = err("ssh_service:\n  frobnicate: 1\n");
    has_all(&e, &["`ssh_service.frobnicate`", "listen_addr", "labels"]);
    // Nested plain structs are strict too.
    let e = err("ssh_service:\n  commands:\n    - name: a\n      command: [b]\n      perod: 1m\n");
    has_all(&e, &["ssh_service.commands[0]", "unknown field `perod`", "line 5"]);
}

#[test]
fn bad_values_are_named() {
    let e = err("auth_service:\n  listen_addr: 0.0.0.0:30x5\n");
    has_all(&e, &["/etc/teleport.yaml", "auth_service.listen_addr", "\"30x5\" is not a number", "line 2"]);
    let e = err("proxy_service:\n  public_addr: [ok.example.com, 'https://bad:3080']\n");
    has_all(&e, &["proxy_service.public_addr", "URL"]);
    let e = err("auth_service:\n  authentication:\n    second_factor: u2f\n");
    has_all(&e, &["auth_service.authentication.second_factor", "\"u2f\"", "webauthn", "line 3"]);
    let e = err("auth_service:\n  authentication:\n    type: ldap\n");
    has_all(&e, &["auth_service.authentication.type", "local, github, oidc, saml"]);
    let e = err("auth_service:\n  session_recording: prxy\n");
    has_all(&e, &["did you mean proxy?"]);
    let e = err("auth_service:\n  proxy_listener_mode: multi\n");
    has_all(&e, &["separate, multiplex"]);
    let e = err("teleport:\n  log:\n    output: sterr\n");
    has_all(&e, &["teleport.log.output", "did you mean stderr?"]);
    let e = err("teleport:\n  log:\n    format:\n      extra_fields: [time]\n");
    has_all(&e, &["teleport.log.format.extra_fields[0]", "timestamp"]);
    let e = err("version: v9\n");
    has_all(&e, &["unknown config version \"v9\"", "v1, v2, v3"]);
    let e = err("teleport:\n  storage:\n    type: sqlite\n    path: /x\n    journal: fast\n");
    has_all(&e, &["teleport.storage.journal", "WAL"]);
    let e = err("teleport:\n  storage:\n    type: sqlite\n    path: /x\n    jornal: WAL\n");
    has_all(&e, &["unknown field `jornal`", "line 5"]);
    let e = err("auth_service:\n  cluster_name: ''\n");
    has_all(&e, &["auth_service.cluster_name", "must not be empty"]);
    let e = err("proxy_service:\n  https_key_file: /k.pem\n");
    has_all(&e, &["proxy_service.https_cert_file", "go together"]);
    let e = err("ssh_service:\n  commands:\n    - name: a\n      command: []\n");
    has_all(&e, &["ssh_service.commands[0].command"]);
    let e = err("teleport: [a, b]\n");
    has_all(&e, &["teleport", "the `teleport` mapping"]);
    has_all(&err(""), &["/etc/teleport.yaml", "empty", "teleport configure"]);
    has_all(&err("- a\n"), &["/etc/teleport.yaml", "mapping"]);
}

#[test]
fn second_factor_off_as_boolean() {
    let c = load("auth_service:\n  authentication:\n    second_factor: false\n");
    assert_eq!(c.second_factor(), SecondFactor::Off);
    let c = load("auth_service:\n  authentication:\n    second_factor: off\n");
    assert_eq!(c.second_factor(), SecondFactor::Off);
    let c = load("auth_service:\n  authentication:\n    second_factor: WebAuthn\n");
    assert_eq!(c.second_factor(), SecondFactor::Webauthn);
}

#[test]
fn auth_server_rules() {
    let c = load("version: v3\nteleport:\n  auth_server: auth.example.com\n");
    assert_eq!(c.auth_servers(), ["auth.example.com:3025"]);
    let c = load("teleport:\n  auth_servers: 10.0.0.1:4025\n");
    assert_eq!(c.auth_servers(), ["10.0.0.1:4025"], "a single value is a list of one");
    let e = err("version: v3\nteleport:\n  auth_servers: [a:3025]\n");
    has_all(&e, &["teleport.auth_servers", "v3", "auth_server"]);
    let e = err("teleport:\n  auth_server: a\n  auth_servers: [b]\n");
    has_all(&e, &["not both"]);
    let e = err("version: v3\nteleport:\n  auth_server: a\n  proxy_server: b\n");
    has_all(&e, &["teleport.proxy_server", "not both"]);
}

#[test]
fn static_token_errors_never_show_the_secret() {
    let e = err("auth_service:\n  tokens:\n    - nod,proxy:s3cr3t-value\n");
    has_all(&e, &["auth_service.tokens[0]", "\"nod\" is not a valid role", "did you mean node?", "line 3"]);
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = err("auth_service:\n  tokens: [\"s3cr3t-without-roles\"]\n");
    has_all(&e, &["auth_service.tokens[0]", "<roles>:<token>", "not shown"]);
    assert!(!e.contains("s3cr3t"), "{e}");
    let e = err("auth_service:\n  tokens: [\"node:\"]\n");
    has_all(&e, &["is empty"]);
    let e = err("auth_service:\n  tokens: [\",node:x\"]\n");
    has_all(&e, &["empty role"]);
}

#[test]
fn static_tokens_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tokens");
    std::fs::write(&f, "first-token\n\n  second-token  \n").unwrap();
    let c = load(&format!("auth_service:\n  tokens:\n    - \"node,NODE:{}\"\n    - proxy:inline\n", f.display()));
    let t: Vec<_> = c.auth_service.tokens.iter().map(|t| (t.roles.join(","), t.token.as_str())).collect();
    assert_eq!(t, [("node".into(), "first-token"), ("node".into(), "second-token"), ("proxy".into(), "inline")]);
    let missing = dir.path().join("missing");
    let e = err(&format!("auth_service:\n  tokens: [\"auth:{}\"]\n", missing.display()));
    has_all(&e, &["auth_service.tokens[0]", "cannot read the token file", "missing"]);
    std::fs::write(&f, "\n \n").unwrap();
    let e = err(&format!("auth_service:\n  tokens: [\"auth:{}\"]\n", f.display()));
    has_all(&e, &["holds no token"]);
}

#[test]
fn join_token_inline_or_from_a_file() {
    let c = load("teleport:\n  auth_token: abc\n");
    assert_eq!(c.join_token().unwrap().unwrap().expose(), "abc");
    assert!(load("teleport:\n  nodename: n\n").join_token().unwrap().is_none());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    let c = load(&format!("teleport:\n  auth_token: {}\n", f.display()));
    let e = c.join_token().unwrap_err().to_string();
    has_all(&e, &["/etc/teleport.yaml", "teleport.auth_token", "cannot read the token file"]);
    std::fs::write(&f, "\nfrom-file\n").unwrap();
    assert_eq!(c.join_token().unwrap().unwrap().expose(), "from-file");
}

#[test]
fn debug_hides_secrets() {
    let c = load("teleport:\n  auth_token: join-s3cr3t\nauth_service:\n  tokens: ['node:tok-s3cr3t']\n");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}

#[test]
fn legacy_log_format_list() {
    let c = load("teleport:\n  log:\n    format: [timestamp, level]\n");
    assert_eq!(c.teleport.log.format.output, Some(LogFormatOutput::Text));
    assert_eq!(c.teleport.log.format.extra_fields, ["timestamp", "level"]);
    let c = load(
        "teleport:\n  log:\n    output: /var/log/teleport.log\n    severity: debug\n    format:\n      output: JSON\n",
    );
    assert_eq!(c.teleport.log.output, LogOutput::File("/var/log/teleport.log".into()));
    assert_eq!(c.log_severity(), LogSeverity::Debug);
    assert_eq!(c.teleport.log.format.output, Some(LogFormatOutput::Json));
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("teleport.yaml");
    std::fs::write(&p, "auth_service:\n  listn_addr: x\n").unwrap();
    let e = FileConfig::load(&p).unwrap_err().to_string();
    has_all(&e, &[p.to_str().unwrap(), "auth_service.listn_addr", "line 2"]);
    std::fs::write(&p, [0xff, 0xfe, 0]).unwrap();
    has_all(&FileConfig::load(&p).unwrap_err().to_string(), &["not UTF-8"]);
    let e = FileConfig::load(&dir.path().join("nope.yaml")).unwrap_err().to_string();
    has_all(&e, &["nope.yaml", "cannot read"]);
}

/// Text built from the tokens teleport.yaml is made of.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("teleport:".to_string()),
        Just("auth_service:".to_string()),
        Just("proxy_service:".to_string()),
        Just("ssh_service:".to_string()),
        Just("enabled: ".to_string()),
        Just("listen_addr: ".to_string()),
        Just("tokens: ".to_string()),
        Just("storage:".to_string()),
        Just("type: sqlite".to_string()),
        Just("authentication:".to_string()),
        Just("second_factor: ".to_string()),
        Just("log:".to_string()),
        Just("format: ".to_string()),
        Just("labels:".to_string()),
        Just("commands:".to_string()),
        Just("version: v3".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\n    ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("~".to_string()),
        "[a-z0-9_/:.,\\[\\]-]{0,10}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(token, 0..48).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    SwapLines(usize, usize),
    Indent(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just(":".to_string()),
                Just("\n".to_string()),
                Just(" ".to_string()),
                Just("- ".to_string()),
                "\\PC{1,6}"
            ]
        )
            .prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0..6usize).prop_map(|(a, n)| Mutation::Indent(a, n)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| if chars.is_empty() { 0 } else { i % (chars.len() + 1) };
    match m {
        Mutation::Delete(a, n) => {
            let s = at(*a);
            let e = (s + n).min(chars.len());
            chars[..s].iter().chain(&chars[e..]).collect()
        }
        Mutation::Insert(a, ins) => {
            let s = at(*a);
            chars[..s].iter().collect::<String>() + ins + &chars[s..].iter().collect::<String>()
        }
        Mutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let (i, j) = (a % lines.len(), b % lines.len());
                lines.swap(i, j);
            }
            lines.join("\n")
        }
        Mutation::Indent(a, n) => {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if !lines.is_empty() {
                let i = a % lines.len();
                lines[i] = " ".repeat(*n) + lines[i].trim_start();
            }
            lines.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn no_panic_on_yamlish_input(text in yamlish()) {
        if let Ok(c) = FileConfig::from_str_named(&text, "fuzz.yaml") {
            // The accessors must not panic either (those that resolve names
            // are left out: random host names would wait on DNS).
            let _ = (c.cluster_name(), c.storage(), c.auth_servers(), c.ca_pins(), c.second_factor());
        }
    }

    #[test]
    fn no_panic_on_mutated_config(muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut text = UPSTREAM_STYLE.to_string();
        for m in &muts {
            text = apply(&text, m);
        }
        if let Ok(c) = FileConfig::from_str_named(&text, "fuzz.yaml") {
            let _ = (c.ignored_fields(), format!("{c:?}"), c.log_severity(), c.data_dir());
        }
    }

    #[test]
    fn no_panic_on_any_text(text in "\\PC{0,300}") {
        let _ = FileConfig::from_str_named(&text, "fuzz.yaml");
    }
}
