//! The clone checkpoint: a small JSON file recording the key below which
//! every item of the source has been committed to the destination, so that
//! `--resume` continues from there after a crash or Ctrl-C.
//!
//! It is written atomically (temporary file, fsync, rename) with mode 0600
//! (it names keys), and it records a fingerprint of the source, destination
//! and selection so a checkpoint cannot be resumed against other stores.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::CloneError;
use crate::backend::Key;

/// The checkpoint format version.
pub const VERSION: u32 = 1;

/// Where a clone stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The initial copy is under way; `last_key` is its watermark.
    Copying,
    /// The initial copy finished.
    Copied,
    /// Following the source's changes (`--follow`).
    Following,
}

/// The on-disk checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Fingerprint of the source, destination and selection.
    pub fingerprint: String,
    /// Where the clone stands.
    pub phase: Phase,
    /// Every source item with a key at or below this one (base64 of the
    /// key bytes) is committed to the destination. `None`: nothing yet.
    pub last_key: Option<String>,
    /// Items committed so far.
    pub items: u64,
    /// Bytes (keys and values) committed so far.
    pub bytes: u64,
    /// When the clone started (RFC 3339).
    pub started: String,
    /// When this checkpoint was written (RFC 3339).
    pub updated: String,
}

impl Checkpoint {
    /// A fresh checkpoint.
    pub fn new(fingerprint: String) -> Checkpoint {
        let now = now_rfc3339();
        Checkpoint {
            version: VERSION,
            fingerprint,
            phase: Phase::Copying,
            last_key: None,
            items: 0,
            bytes: 0,
            started: now.clone(),
            updated: now,
        }
    }

    /// The watermark key.
    pub fn last_key(&self) -> Result<Option<Key>, String> {
        match &self.last_key {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| Some(Key::from(b)))
                .map_err(|e| format!("last_key is not base64: {e}")),
        }
    }

    /// Sets the watermark key.
    pub fn set_last_key(&mut self, key: &Key) {
        self.last_key = Some(base64::engine::general_purpose::STANDARD.encode(key.as_bytes()));
    }

    /// Reads a checkpoint; `Ok(None)` if there is no file.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CloneError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CloneError::Checkpoint { path: path.to_path_buf(), message: e.to_string() }),
        };
        let cp: Checkpoint = serde_json::from_slice(&text).map_err(|e| CloneError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("not a checkpoint: {e}"),
        })?;
        if cp.version != VERSION {
            return Err(CloneError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("checkpoint version {} is not supported (this tool writes {VERSION})", cp.version),
            });
        }
        cp.last_key().map_err(|message| CloneError::Checkpoint { path: path.to_path_buf(), message })?;
        Ok(Some(cp))
    }

    /// Writes the checkpoint atomically, mode 0600.
    pub fn save(&mut self, path: &Path) -> Result<(), CloneError> {
        self.updated = now_rfc3339();
        let err = |e: std::io::Error| CloneError::Checkpoint { path: path.to_path_buf(), message: e.to_string() };
        let tmp = tmp_path(path);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| CloneError::Checkpoint { path: path.to_path_buf(), message: e.to_string() })?;
        f.write_all(&body).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }

    /// Removes a checkpoint file (after a finished clone without --follow).
    pub fn remove(path: &Path) -> Result<(), CloneError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CloneError::Checkpoint { path: path.to_path_buf(), message: e.to_string() }),
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The default checkpoint path for a clone file: `<config>.checkpoint`.
pub fn default_path(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".checkpoint");
    config.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("clone.yaml.checkpoint");
        assert!(Checkpoint::load(&p).unwrap().is_none());
        let mut cp = Checkpoint::new("fp".into());
        cp.set_last_key(&Key::from(vec![b'/', 0xff, 0]));
        cp.items = 7;
        cp.save(&p).unwrap();
        let back = Checkpoint::load(&p).unwrap().unwrap();
        assert_eq!(back.last_key().unwrap(), Some(Key::from(vec![b'/', 0xff, 0])));
        assert_eq!(back.items, 7);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&p, "{garbage").unwrap();
        assert!(Checkpoint::load(&p).unwrap_err().to_string().contains("not a checkpoint"));
        assert_eq!(default_path(Path::new("/etc/clone.yaml")), Path::new("/etc/clone.yaml.checkpoint"));
    }
}
