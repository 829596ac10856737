//! `teleport start`: loads teleport.yaml, sets up logging from its `log`
//! section, and runs the process (`cluster::process`) until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::cluster::process::{self, ServiceRole, StartOptions};
use crate::config::{FileConfig, LogFormatOutput, LogOutput};

/// `teleport start` flags.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// teleport.yaml (default /etc/teleport.yaml).
    #[arg(short = 'c', long = "config", env = "TELEPORT_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Services to run, comma-separated: auth, proxy, node (default: the
    /// services teleport.yaml enables).
    #[arg(long, value_delimiter = ',', value_parser = ServiceRole::parse)]
    roles: Option<Vec<ServiceRole>>,
    /// Data directory (overrides teleport.data_dir).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Serve /healthz, /readyz and /metrics on this address (host:port).
    #[arg(long = "diag-addr")]
    diag_addr: Option<SocketAddr>,
    /// Resources (`tctl get all --with-secrets`) to restore on the
    /// cluster's first start; ignored on later starts.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Resources (roles, users, tokens, configuration) to upsert on every start.
    #[arg(long = "apply-on-startup")]
    apply_on_startup: Option<PathBuf>,
}

fn init_logging(cfg: &FileConfig, debug: bool) -> anyhow::Result<()> {
    let severity = if debug { "debug".to_string() } else { cfg.log_severity().as_str().to_ascii_lowercase() };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(severity.replace("warning", "warn")));
    let json = cfg.teleport.log.format.output == Some(LogFormatOutput::Json);
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match &cfg.teleport.log.output {
        LogOutput::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("teleport.log.output: cannot open {}", path.display()))?;
            let file = std::sync::Mutex::new(file);
            if json {
                builder.json().with_writer(file).with_ansi(false).try_init()
            } else {
                builder.with_writer(file).with_ansi(false).try_init()
            }
        }
        LogOutput::Stdout => {
            let ansi = std::io::stdout().is_terminal();
            if json {
                builder.json().with_writer(std::io::stdout).try_init()
            } else {
                builder.with_writer(std::io::stdout).with_ansi(ansi).try_init()
            }
        }
        LogOutput::Stderr | LogOutput::Syslog => {
            let ansi = std::io::stderr().is_terminal();
            if json {
                builder.json().with_writer(std::io::stderr).try_init()
            } else {
                builder.with_writer(std::io::stderr).with_ansi(ansi).try_init()
            }
        }
    };
    // A subscriber installed earlier (tests) is fine.
    let _ = result;
    if cfg.teleport.log.output == LogOutput::Syslog {
        tracing::warn!(
            "teleport.log.output: syslog is not supported by this build; logging to stderr (journald captures it)"
        );
    }
    Ok(())
}

/// Runs `teleport start`.
pub fn run(args: StartArgs, debug: bool) -> ExitCode {
    let path = match super::teleport::config_path(args.config.clone()) {
        Ok(p) => p,
        Err(e) => {
            super::init_logging(debug);
            return super::report("teleport", &e);
        }
    };
    let cfg = match FileConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            super::init_logging(debug);
            return super::report("teleport", &anyhow::Error::new(e));
        }
    };
    if let Err(e) = init_logging(&cfg, debug) {
        super::init_logging(debug);
        return super::report("teleport", &e);
    }
    let opts = StartOptions {
        config: cfg,
        roles: args.roles,
        data_dir: args.data_dir,
        diag_addr: args.diag_addr,
        bootstrap: args.bootstrap,
        apply_on_startup: args.apply_on_startup,
        bcrypt_cost: crate::crypto::secret::DEFAULT_BCRYPT_COST,
    };
    super::run_async("teleport", async move {
        crate::crypto::install_default_provider();
        process::run(opts).await?;
        Ok(ExitCode::SUCCESS)
    })
}
