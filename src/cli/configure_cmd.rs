//! `teleport configure`: prints a sample teleport.yaml (auth, proxy and SSH
//! services on this host, SQLite storage) or writes it to a file created
//! 0600; `--test FILE` checks an existing file instead. The text itself comes
//! from `config::sample`; this file only handles flags and output.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::config::{self, Addr, FileConfig, SampleOptions};

/// Arguments of `teleport configure` (upstream's flag names; `--force` is ours).
#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// Name of the cluster (default: the nodename). It becomes part of every
    /// certificate the cluster signs.
    #[arg(long = "cluster-name", value_name = "NAME")]
    cluster_name: Option<String>,

    /// Name of this node in the cluster (default: the hostname).
    #[arg(long = "nodename", value_name = "NAME")]
    nodename: Option<String>,

    /// Data directory for keys, certificates and the cluster state.
    #[arg(long = "data-dir", value_name = "DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    /// The proxy's public address, host[:port] (port default 3080).
    #[arg(long = "public-addr", value_name = "HOST:PORT", value_parser = parse_addr)]
    public_addr: Option<Addr>,

    /// Where to write the config: `stdout`, `file` (/etc/teleport.yaml),
    /// `file:///path` or a path. Files are created 0600.
    #[arg(short = 'o', long = "output", value_name = "WHERE", default_value = "stdout")]
    output: String,

    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,

    /// Check this config file instead of writing one: print its errors, or
    /// the upstream settings it has that this build ignores.
    #[arg(long = "test", value_name = "FILE", conflicts_with_all = ["output", "force"])]
    test: Option<PathBuf>,
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    Addr::parse(s)
}

/// Runs `teleport configure`.
pub fn run(args: ConfigureArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.test {
        return test(path);
    }
    let text = config::sample_config(&SampleOptions {
        cluster_name: args.cluster_name,
        nodename: args.nodename,
        data_dir: Some(args.data_dir),
        public_addr: args.public_addr,
    });
    let Some(path) = output_path(&args.output)? else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    write_private(&path, text.as_bytes(), args.force)?;
    eprintln!(
        "A Teleport configuration file has been created at {}.\nTo start Teleport with it, run: teleport start --config={}",
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `None` for stdout, else the file to write.
fn output_path(output: &str) -> anyhow::Result<Option<PathBuf>> {
    match output.trim() {
        "" | "stdout" => Ok(None),
        "file" => Ok(Some(PathBuf::from(super::teleport::DEFAULT_CONFIG))),
        o => match o.strip_prefix("file://") {
            Some("") => bail!("-o file:// needs a path, e.g. -o file:///etc/teleport.yaml"),
            Some(p) => Ok(Some(PathBuf::from(p))),
            None if o.contains("://") => {
                bail!("-o {o}: unsupported output; use stdout, file, file:///path or a path")
            }
            None => Ok(Some(PathBuf::from(o))),
        },
    }
}

/// Writes `bytes` to a new file with mode 0600; an existing file is
/// refused unless `force`, and then its mode is set to 0600 too.
fn write_private(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} already exists; use --force to overwrite it, or -o stdout to print the sample", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
    };
    if force {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("set mode 0600 on {}", path.display()))?;
    }
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("write {}", path.display()))
}

fn test(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = FileConfig::load(path)?;
    let ignored = cfg.ignored_fields();
    if ignored.is_empty() {
        println!("{}: OK", path.display());
    } else {
        println!("{}: OK; these upstream settings are ignored by this build: {}", path.display(), ignored.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(output_path("stdout").unwrap(), None);
        assert_eq!(output_path("file").unwrap(), Some(PathBuf::from("/etc/teleport.yaml")));
        assert_eq!(output_path("file:///tmp/t.yaml").unwrap(), Some(PathBuf::from("/tmp/t.yaml")));
        assert_eq!(output_path("./t.yaml").unwrap(), Some(PathBuf::from("./t.yaml")));
        assert!(output_path("s3://b/k").is_err());
        assert!(output_path("file://").is_err());
    }

    #[test]
    fn writes_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        write_private(&p, b"a: 1\n", false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = write_private(&p, b"b: 2\n", false).unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a: 1\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"b: 2\n", true).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b: 2\n");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
