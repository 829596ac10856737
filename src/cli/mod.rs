//! The command-line front ends of `teleport`, `tctl` and `tsh`: clap command
//! trees, output formatting, and the glue that turns what the user typed into
//! calls on the layers below. No domain logic lives here.
//!
//! This is the binaries' edge, so errors are `anyhow` here and nowhere else.

mod backend_cmd;
mod clone_cmd;
mod configure_cmd;
mod output;
mod recordings_cmd;
mod start_cmd;
pub mod tctl;
pub mod teleport;
pub mod tsh;

use std::io::IsTerminal;
use std::process::ExitCode;

/// Sets up logging to stderr: warnings by default, debug with `-d`, or
/// whatever `RUST_LOG` asks for.
pub(crate) fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs an async command on a fresh runtime and maps its result to an exit
/// code, printing the error chain as one line prefixed by the program name.
pub(crate) fn run_async<F>(prog: &str, fut: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{prog}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(code) => code,
        Err(e) => report(prog, &e),
    }
}

/// Prints an error as `prog: error: <chain>` and returns failure. A broken
/// pipe (output piped into `head`) is not an error.
pub(crate) fn report(prog: &str, e: &anyhow::Error) -> ExitCode {
    if let Some(io) = e.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    eprintln!("{prog}: error: {msg}");
    ExitCode::FAILURE
}

/// The version line all three binaries print.
pub(crate) fn version_line(prog: &str) -> String {
    format!(
        "{prog} v{} (rust {}, storage: {})",
        crate::VERSION,
        env!("CARGO_PKG_RUST_VERSION"),
        crate::backend::registry::supported_types().join(", ")
    )
}

/// What tctl and tsh read from a host's teleport.yaml: only the fields they
/// need, so a config carrying fields of services they do not know still
/// works.
#[derive(Debug, Default)]
pub(crate) struct HostConfig {
    /// `teleport.data_dir`.
    pub data_dir: Option<std::path::PathBuf>,
    /// `auth_service.listen_addr`.
    pub auth_listen: Option<String>,
    /// `teleport.storage.audit_events_uri`, a string or a list.
    pub audit_events_uri: Vec<String>,
    /// `teleport.storage.audit_sessions_uri`.
    pub audit_sessions_uri: Option<String>,
}

impl HostConfig {
    /// Reads `config`, else /etc/teleport.yaml when it exists, else nothing.
    pub fn load(config: Option<&std::path::Path>) -> anyhow::Result<HostConfig> {
        use anyhow::Context;
        let default = std::path::Path::new(teleport::DEFAULT_CONFIG);
        let Some(path) = config.or_else(|| default.exists().then_some(default)) else {
            return Ok(HostConfig::default());
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value =
            serde_norway::from_str(&text).with_context(|| format!("{} is not valid YAML", path.display()))?;
        let storage = &v["teleport"]["storage"];
        Ok(HostConfig {
            data_dir: v["teleport"]["data_dir"].as_str().map(std::path::PathBuf::from),
            auth_listen: v["auth_service"]["listen_addr"].as_str().map(str::to_string),
            audit_events_uri: match &storage["audit_events_uri"] {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            },
            audit_sessions_uri: storage["audit_sessions_uri"].as_str().map(str::to_string),
        })
    }
}
