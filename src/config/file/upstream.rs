//! The upstream teleport.yaml fields this build accepts without
//! implementing them, section by section (the middle case of the
//! unknown-field policy in file.rs), and the section map behind "`x`
//! belongs in `auth_service`" hints. Data only; add a field here when an
//! upstream config that should load is refused.

use super::super::fields::{Section, struct_fields};
use super::{
    AuthServiceSection, AuthenticationSection, FileConfig, LogFormat, LogSection, ProxyServiceSection,
    SshServiceSection, TeleportSection,
};

/// The known sections and their fields, for "belongs in ..." hints.
fn section_of(key: &str, here: &str) -> Option<&'static str> {
    let all: [(&'static str, &'static [&'static str], &'static [&'static str]); 5] = [
        ("teleport", struct_fields::<TeleportSection>(), TeleportSection::UPSTREAM_ONLY),
        ("auth_service", struct_fields::<AuthServiceSection>(), AuthServiceSection::UPSTREAM_ONLY),
        ("proxy_service", struct_fields::<ProxyServiceSection>(), ProxyServiceSection::UPSTREAM_ONLY),
        ("ssh_service", struct_fields::<SshServiceSection>(), SshServiceSection::UPSTREAM_ONLY),
        ("auth_service.authentication", struct_fields::<AuthenticationSection>(), &[]),
    ];
    let mut found = all.iter().filter(|(p, f, u)| *p != here && (f.contains(&key) || u.contains(&key)));
    match (found.next(), found.next()) {
        (Some((p, _, _)), None) => Some(p),
        _ => None,
    }
}

macro_rules! section_impl {
    ($t:ty, $path:literal, [$($up:literal),* $(,)?]) => {
        impl Section for $t {
            const PATH: &'static str = $path;
            const UPSTREAM_ONLY: &'static [&'static str] = &[$($up),*];
            fn ignored_mut(&mut self) -> &mut Vec<String> {
                &mut self.ignored
            }
            fn belongs_elsewhere(key: &str) -> Option<&'static str> {
                section_of(key, $path)
            }
        }
    };
}

section_impl!(
    FileConfig,
    "",
    [
        "kubernetes_service",
        "app_service",
        "db_service",
        "metrics_service",
        "windows_desktop_service",
        "tracing_service",
        "discovery_service",
        "okta_service",
        "jamf_service",
        "debug_service",
    ]
);
section_impl!(
    TeleportSection,
    "teleport",
    [
        "join_params",
        "connection_limits",
        "cache",
        "seed_config",
        "ciphersuites",
        "ciphers",
        "kex_algos",
        "mac_algos",
        "ca_signature_algo",
    ]
);
section_impl!(LogSection, "teleport.log", []);
section_impl!(LogFormat, "teleport.log.format", []);
section_impl!(
    AuthServiceSection,
    "auth_service",
    [
        "proxy_protocol",
        "proxy_checks_host_keys",
        "license_file",
        "reverse_tunnels",
        "trusted_clusters",
        "oidc_connectors",
        "client_idle_timeout",
        "client_idle_timeout_message",
        "disconnect_expired_cert",
        "session_control_timeout",
        "kubeconfig_file",
        "keep_alive_interval",
        "keep_alive_count_max",
        "message_of_the_day",
        "web_idle_timeout",
        "ca_key_params",
        "routing_strategy",
        "tunnel_strategy",
        "case_insensitive_routing",
        "load_all_cas",
    ]
);
section_impl!(
    AuthenticationSection,
    "auth_service.authentication",
    [
        "u2f",
        "webauthn",
        "require_session_mfa",
        "locking_mode",
        "local_auth",
        "passwordless",
        "headless",
        "private_key_policy",
        "device_trust",
        "hardware_key",
    ]
);
section_impl!(
    ProxyServiceSection,
    "proxy_service",
    [
        "peer_listen_addr",
        "peer_public_addr",
        "proxy_protocol",
        "proxy_protocol_allow_downgrade",
        "kubernetes",
        "kube_listen_addr",
        "kube_public_addr",
        "acme",
        "mysql_listen_addr",
        "mysql_public_addr",
        "mysql_server_version",
        "postgres_listen_addr",
        "postgres_public_addr",
        "mongo_listen_addr",
        "mongo_public_addr",
        "https_keypairs_reload_interval",
        "trust_x_forwarded_for",
        "ui",
        "idp",
    ]
);
section_impl!(
    SshServiceSection,
    "ssh_service",
    [
        "namespace",
        "permit_user_env",
        "pam",
        "enhanced_recording",
        "restricted_session",
        "port_forwarding",
        "x11",
        "ssh_file_copy",
        "disable_create_host_user",
        "aws",
    ]
);
