//! `teleport backend ls|get|rm|edit`: upstream's debugging commands, working
//! directly on any store in the registry. `-c` takes a teleport.yaml (its
//! `teleport.storage` section) or a bare storage block. These commands never
//! create a store: a wrong path is an error.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures::StreamExt;

use super::output::{Format, ItemView, rfc3339_millis, write_yaml};
use crate::backend::registry::{self, OpenOptions};
use crate::backend::{Backend, Item, ItemsParams, Key};
use crate::config;

/// Arguments of `teleport backend`.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// A teleport.yaml (its `teleport.storage` section is used) or a bare
    /// storage block (`type: sqlite` and `path: ...`). Default /etc/teleport.yaml.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: BackendCommand,
}

#[derive(Debug, Subcommand)]
enum BackendCommand {
    /// List items, optionally under a prefix (all keys, internal ones too, by default).
    Ls {
        /// Key prefix such as /web/users; `/web/users` lists that key and
        /// everything under `/web/users/`.
        prefix: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print one item.
    Get {
        /// The item's key, e.g. /web/users/alice/params.
        key: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete one item (asks for confirmation unless --yes).
    Rm {
        /// The item's key.
        key: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Edit one item's value in $TELEPORT_EDITOR, $VISUAL or $EDITOR (default
    /// vi) and write it back only if nobody changed it meanwhile.
    Edit {
        /// The item's key.
        key: String,
    },
    /// Copy cluster state between two stores, as described by a clone file
    /// (-c clone.yaml with `src`, `dst`, `parallel`, `force`).
    Clone(super::clone_cmd::CloneArgs),
    /// Compare the two stores of a clone file item by item (exit code 3 when they differ).
    Verify(super::clone_cmd::VerifyArgs),
}

/// Runs a `teleport backend` command.
pub async fn run(args: BackendArgs) -> anyhow::Result<std::process::ExitCode> {
    match args.command {
        BackendCommand::Clone(a) => return super::clone_cmd::clone(&clone_file(args.config)?, a).await,
        BackendCommand::Verify(a) => return super::clone_cmd::verify_cmd(&clone_file(args.config)?, a).await,
        _ => {}
    }
    let path = super::teleport::config_path(args.config)?;
    let source = config::load_storage_source(&path)?;
    let storage = source.storage();
    let backend = registry::open(&storage, OpenOptions::existing())
        .await
        .with_context(|| format!("open {} storage from {}", storage.type_name(), path.display()))?;
    let out = match args.command {
        BackendCommand::Ls { prefix, format } => ls(backend.as_ref(), prefix.as_deref(), format).await,
        BackendCommand::Get { key, format } => get(backend.as_ref(), &key, format).await,
        BackendCommand::Rm { key, yes } => rm(backend.as_ref(), &key, yes).await,
        BackendCommand::Edit { key } => edit(backend.clone(), &key).await,
        BackendCommand::Clone(_) | BackendCommand::Verify(_) => Ok(()),
    };
    let _ = backend.close().await;
    out.map(|()| std::process::ExitCode::SUCCESS)
}

/// The clone file `-c` names; upstream's message when it is missing.
fn clone_file(config: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    config.ok_or_else(|| {
        anyhow::anyhow!("required flag --config/-c not provided: give the clone file (src, dst, parallel, force)")
    })
}

/// The range `ls` covers: everything, or the exact prefix.
fn ls_params(prefix: Option<&str>) -> (ItemsParams, Option<Key>) {
    match prefix {
        None | Some("") => (ItemsParams::range(Key::from(vec![0u8]), Key::no_end()), None),
        Some(p) => {
            let key = Key::from(p);
            let exact = if p.ends_with('/') { key.clone() } else { key.join_raw(b"/") };
            (
                ItemsParams { end_exclusive: true, ..ItemsParams::range(key.clone(), exact.range_end()) },
                (!p.ends_with('/')).then_some(key),
            )
        }
    }
}

async fn ls(b: &dyn Backend, prefix: Option<&str>, format: Format) -> anyhow::Result<()> {
    let (params, exact) = ls_params(prefix);
    // `/a` lists `/a` and `/a/...`, not `/a+` (which sorts between them).
    let keep = |k: &Key| match &exact {
        None => true,
        Some(p) => k == p || k.has_prefix(&p.join_raw(b"/")),
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut items = b.items(params);
    let mut n = 0usize;
    if format == Format::Text {
        writeln!(w, "{:<25} {:<36} KEY", "EXPIRES", "REVISION")?;
    } else if format == Format::Json {
        write!(w, "[")?;
    }
    while let Some(item) = items.next().await {
        let item = item.with_context(|| format!("list items in {}", b.describe()))?;
        if !keep(&item.key) {
            continue;
        }
        match format {
            Format::Text => writeln!(
                w,
                "{:<25} {:<36} {}",
                item.expires.map(rfc3339_millis).unwrap_or_else(|| "never".into()),
                item.revision,
                item.key
            )?,
            Format::Json => {
                if n > 0 {
                    write!(w, ",")?;
                }
                write!(w, "\n  {}", serde_json::to_string(&ItemView::of(&item, false))?)?;
            }
            Format::Yaml => write_yaml(&mut w, &[ItemView::of(&item, false)])?,
        }
        n += 1;
    }
    match format {
        Format::Json => writeln!(w, "{}]", if n > 0 { "\n" } else { "" })?,
        Format::Yaml if n == 0 => writeln!(w, "[]")?,
        _ => {}
    }
    w.flush()?;
    if format == Format::Text {
        eprintln!("{n} item(s) in {}", b.describe());
    }
    Ok(())
}

async fn fetch(b: &dyn Backend, key: &str) -> anyhow::Result<Item> {
    let key = Key::from(key);
    b.get(&key).await.with_context(|| format!("get {key} from {}", b.describe()))
}

async fn get(b: &dyn Backend, key: &str, format: Format) -> anyhow::Result<()> {
    let item = fetch(b, key).await?;
    let mut w = std::io::stdout().lock();
    match format {
        Format::Text => {
            let view = ItemView::of(&item, true);
            writeln!(w, "Key:      {}", view.key)?;
            writeln!(w, "Expires:  {}", view.expires.as_deref().unwrap_or("never"))?;
            writeln!(w, "Revision: {}", view.revision)?;
            writeln!(w, "Size:     {} bytes", view.size)?;
            writeln!(w, "Value ({}):", view.value_encoding.unwrap_or("utf8"))?;
            writeln!(w, "{}", view.value.unwrap_or_default())?;
        }
        Format::Json => writeln!(w, "{}", serde_json::to_string_pretty(&ItemView::of(&item, true))?)?,
        Format::Yaml => write_yaml(&mut w, &ItemView::of(&item, true))?,
    }
    Ok(())
}

async fn rm(b: &dyn Backend, key: &str, yes: bool) -> anyhow::Result<()> {
    let item = fetch(b, key).await?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to delete {key} without confirmation: stdin is not a terminal; pass --yes");
        }
        eprint!("Delete {key} ({} bytes) from {}? [y/N] ", item.value.len(), b.describe());
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            bail!("not deleted");
        }
    }
    b.conditional_delete(&item.key, &item.revision)
        .await
        .with_context(|| format!("delete {key} from {}", b.describe()))?;
    eprintln!("deleted {key}");
    Ok(())
}

fn editor() -> String {
    ["TELEPORT_EDITOR", "VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "vi".into())
}

async fn edit(b: Arc<dyn Backend>, key: &str) -> anyhow::Result<()> {
    let item = fetch(b.as_ref(), key).await?;
    // JSON values (every resource) are edited pretty-printed and stored
    // compact, as upstream writes them.
    let json: Option<serde_json::Value> = serde_json::from_slice(&item.value).ok();
    let text = match &json {
        Some(v) => serde_json::to_vec_pretty(v)?,
        None => item.value.clone(),
    };
    let dir = tempfile::Builder::new().prefix("teleport-edit-").tempdir()?;
    let file = dir.path().join("item");
    write_private(&file, &text)?;
    let ed = editor();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ed} \"$1\""))
        .arg("sh")
        .arg(&file)
        .status()
        .await
        .with_context(|| format!("run editor {ed:?}"))?;
    if !status.success() {
        bail!("editor {ed:?} exited with {status}; nothing was written");
    }
    let edited = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    if edited == text {
        eprintln!("no changes to {key}");
        return Ok(());
    }
    let value = if json.is_some() {
        let v: serde_json::Value = serde_json::from_slice(&edited).with_context(|| {
            format!("the edited value of {key} is not valid JSON (the original was); nothing was written")
        })?;
        serde_json::to_vec(&v)?
    } else {
        edited
    };
    let updated = Item { value, ..item.clone() };
    b.conditional_update(updated).await.with_context(|| format!("write {key} back to {}", b.describe()))?;
    eprintln!("updated {key}");
    Ok(())
}

fn write_private(path: &std::path::Path, data: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("create {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_exact_prefix_range() {
        let (p, exact) = ls_params(Some("/web/users"));
        assert_eq!(p.start, Key::from("/web/users"));
        assert_eq!(p.end, Key::from("/web/users0"));
        assert!(p.end_exclusive);
        assert_eq!(exact, Some(Key::from("/web/users")));
        let (p, exact) = ls_params(Some("/web/"));
        assert_eq!(p.end, Key::from("/web0"));
        assert!(exact.is_none());
        let (p, _) = ls_params(None);
        assert!(p.end.is_no_end());
    }
}
