//! The one-word settings of teleport.yaml (`second_factor: otp`,
//! `session_recording: node`, `log.severity: INFO`, ...), each a small enum
//! read case-insensitively, with an error that lists the accepted words and
//! suggests the closest one. Part of the config leaf; touches nothing else.

use std::fmt;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};

use super::fields::{closest, parse_scalar};

macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// The accepted words, canonical spelling.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The canonical word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word ),+
                }
            }

            /// Parses a word (case-insensitive; aliases accepted).
            pub fn parse(s: &str) -> Result<$name, String> {
                let l = s.trim().to_ascii_lowercase();
                $( if l == $word $(|| l == $alias)* { return Ok($name::$variant); } )+
                Err(bad_word($what, s, Self::WORDS))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                parse_scalar(d, $what, $name::parse)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

fn bad_word(what: &str, got: &str, words: &[&str]) -> String {
    let hint = match closest(&got.trim().to_ascii_lowercase(), words.iter().copied()) {
        Some(w) => format!(" (did you mean {w}?)"),
        None => String::new(),
    };
    format!("{got:?} is not a valid {what}; use one of: {}{hint}", words.join(", "))
}

word_enum! {
    /// `auth_service.authentication.type`.
    #[derive(Default)]
    AuthType, "authentication type" {
        /// Local users (the default).
        #[default]
        Local = "local",
        /// GitHub SSO.
        Github = "github",
        /// OpenID Connect SSO.
        Oidc = "oidc",
        /// SAML SSO.
        Saml = "saml",
    }
}

word_enum! {
    /// `auth_service.authentication.second_factor`. YAML 1.1 readers turn
    /// `off`/`on` into booleans; `false`/`true` are accepted for them.
    SecondFactor, "second factor (u2f was replaced by webauthn)" {
        /// No second factor.
        Off = "off" | "false",
        /// TOTP (upstream's default).
        Otp = "otp",
        /// TOTP or WebAuthn, optional per user.
        Optional = "optional",
        /// TOTP or WebAuthn, required.
        On = "on" | "true",
        /// WebAuthn (hardware keys) only.
        Webauthn = "webauthn",
    }
}

word_enum! {
    /// `auth_service.session_recording`: where sessions are recorded.
    SessionRecording, "session recording mode" {
        /// On the node, uploaded asynchronously (the default).
        Node = "node",
        /// On the node, streamed synchronously.
        NodeSync = "node-sync",
        /// At the proxy, uploaded asynchronously.
        Proxy = "proxy",
        /// At the proxy, streamed synchronously.
        ProxySync = "proxy-sync",
        /// Not recorded.
        Off = "off" | "false",
    }
}

word_enum! {
    /// `auth_service.proxy_listener_mode`.
    ProxyListenerMode, "proxy listener mode" {
        /// One port per protocol (the default).
        Separate = "separate",
        /// Every protocol on the web port (TLS routing).
        Multiplex = "multiplex",
    }
}

word_enum! {
    /// `teleport.log.severity`.
    LogSeverity, "log severity" {
        /// Everything.
        Trace = "trace",
        /// Debug and above.
        Debug = "debug",
        /// Info and above (the default).
        Info = "info",
        /// Warnings and errors.
        Warn = "warn" | "warning",
        /// Errors only.
        Error = "error" | "err",
    }
}

word_enum! {
    /// `teleport.log.format.output`.
    LogFormatOutput, "log format" {
        /// Human-readable lines (the default).
        Text = "text",
        /// One JSON object per line.
        Json = "json",
    }
}

word_enum! {
    /// A service role, as static tokens and `--roles` name them.
    Role, "role" {
        /// An SSH node.
        Node = "node",
        /// A proxy.
        Proxy = "proxy",
        /// An auth server.
        Auth = "auth",
        /// An application service.
        App = "app",
        /// A database service.
        Db = "db",
        /// A Kubernetes service.
        Kube = "kube",
        /// A Windows desktop service.
        WindowsDesktop = "windowsdesktop" | "windows_desktop",
        /// A discovery service.
        Discovery = "discovery",
        /// A machine-ID bot.
        Bot = "bot",
        /// A trusted (leaf) cluster joining this one.
        TrustedCluster = "trusted_cluster" | "trustedcluster",
    }
}

/// `teleport.log.output`: where logs go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogOutput {
    /// Standard error (the default; also `error`, `2`).
    #[default]
    Stderr,
    /// Standard output (also `out`, `1`).
    Stdout,
    /// The system log.
    Syslog,
    /// A file (any value with a `/`).
    File(std::path::PathBuf),
}

impl LogOutput {
    /// Parses `stderr`, `stdout`, `syslog` or a file path.
    pub fn parse(s: &str) -> Result<LogOutput, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "" | "stderr" | "error" | "2" => return Ok(LogOutput::Stderr),
            "stdout" | "out" | "1" => return Ok(LogOutput::Stdout),
            "syslog" => return Ok(LogOutput::Syslog),
            _ => {}
        }
        if t.contains('/') {
            return Ok(LogOutput::File(t.into()));
        }
        let words = ["stderr", "stdout", "syslog"];
        let hint = match closest(&t.to_ascii_lowercase(), words.iter().copied()) {
            Some(w) => format!(" (did you mean {w}?)"),
            None => format!(" (for a file in the current directory write ./{t})"),
        };
        Err(format!("{t:?} is not stderr, stdout, syslog or a file path{hint}"))
    }
}

impl fmt::Display for LogOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogOutput::Stderr => f.write_str("stderr"),
            LogOutput::Stdout => f.write_str("stdout"),
            LogOutput::Syslog => f.write_str("syslog"),
            LogOutput::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for LogOutput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LogOutput, D::Error> {
        parse_scalar(d, "stderr, stdout, syslog or a file path", LogOutput::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_aliases() {
        assert_eq!(SecondFactor::parse("OFF").unwrap(), SecondFactor::Off);
        assert_eq!(SecondFactor::parse("false").unwrap(), SecondFactor::Off);
        assert_eq!(LogSeverity::parse("WARNING").unwrap(), LogSeverity::Warn);
        assert_eq!(Role::parse("Trusted_Cluster").unwrap(), Role::TrustedCluster);
        let e = SecondFactor::parse("u2f").unwrap_err();
        assert!(e.contains("webauthn") && e.contains("otp"), "{e}");
        let e = SessionRecording::parse("prxy").unwrap_err();
        assert!(e.contains("did you mean proxy?"), "{e}");
    }

    #[test]
    fn log_outputs() {
        assert_eq!(LogOutput::parse("").unwrap(), LogOutput::Stderr);
        assert_eq!(LogOutput::parse("SYSLOG").unwrap(), LogOutput::Syslog);
        assert_eq!(
            LogOutput::parse("/var/lib/teleport/teleport.log").unwrap().to_string(),
            "/var/lib/teleport/teleport.log"
        );
        let e = LogOutput::parse("sterr").unwrap_err();
        assert!(e.contains("did you mean stderr?"), "{e}");
    }
}
