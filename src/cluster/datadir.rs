//! The data-dir lock: one teleport process per data directory. Part of the
//! runtime room; touches only the filesystem.
//!
//! `<data_dir>/teleport.lock` is held with an exclusive OS lock (`flock` on
//! Linux, through `File::try_lock`) for the life of the process, and holds
//! the holder's pid so a second process can say who is in the way. The lock
//! belongs to the open file, so it is released when the [`DataDirLock`] is
//! dropped or the process dies, even by SIGKILL; a stale file left behind
//! is harmless. A second `acquire` fails in another process and in the
//! same one (each `acquire` opens the file anew, and `flock` locks of two
//! open files exclude each other).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::ClusterError;

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "teleport.lock";

/// An exclusive hold on a data directory, released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    data_dir: PathBuf,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `data_dir` (0700) if missing, then takes its lock without
    /// waiting and writes this process's pid into it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, ClusterError> {
        let io = |path: &Path, action: &'static str| {
            let path = path.to_path_buf();
            move |source| ClusterError::DataDir { path, action, source }
        };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(io(data_dir, "create"))?;
        let path = data_dir.join(LOCK_FILE);
        // No truncation on open: until we hold the lock, the pid in the file
        // is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path, "open the lock file"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ClusterError::DataDirLocked { data_dir: data_dir.to_path_buf(), pid: read_pid(&path) });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, "lock")(e)),
        }
        file.set_len(0).map_err(io(&path, "truncate the lock file"))?;
        writeln!(file, "{}", std::process::id())
            .and_then(|_| file.sync_data())
            .map_err(io(&path, "write the pid into the lock file"))?;
        tracing::debug!(data_dir = %data_dir.display(), "data dir locked");
        Ok(DataDirLock { file, data_dir: data_dir.to_path_buf(), path })
    }

    /// The locked data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Clear the pid while still holding the lock, then let go.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The pid a holder wrote into the lock file, if readable.
fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    use super::*;

    #[test]
    fn creates_the_dir_and_excludes_a_second_holder_in_the_same_process() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let lock = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(lock.path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_pid(lock.path()), Some(std::process::id()));

        let e = DataDirLock::acquire(&dir).unwrap_err();
        assert!(matches!(&e, ClusterError::DataDirLocked { pid: Some(p), .. } if *p == std::process::id()), "{e:?}");
        let msg = e.to_string();
        let want = format!("another teleport process (pid {}) is using data dir {}", std::process::id(), dir.display());
        assert!(msg.starts_with(&want), "{msg}");
        assert!(msg.contains("--data-dir"), "{msg}");

        drop(lock);
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(), "", "the pid is cleared on release");
        let again = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(again.data_dir(), dir);
    }

    #[test]
    fn unusable_data_dir_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let e = DataDirLock::acquire(&file.join("sub")).unwrap_err().to_string();
        assert!(e.contains("plain-file") && e.contains("create"), "{e}");
    }

    const CHILD_ENV: &str = "TELEPORT_TEST_DATADIR_LOCK_CHILD";

    /// Not a test on its own: when started by `excludes_another_process`
    /// (with the env var set), takes the lock, says so, and holds it until
    /// its stdin closes.
    #[test]
    fn lock_holder_child() {
        let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
        let _lock = DataDirLock::acquire(Path::new(&dir)).unwrap();
        println!("LOCKED {}", std::process::id());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }

    #[test]
    fn excludes_another_process() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["cluster::datadir::tests::lock_holder_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let locked = lines.by_ref().map_while(Result::ok).find(|l| l.contains("LOCKED"));
        assert!(locked.is_some(), "the child did not take the lock");

        let e = DataDirLock::acquire(tmp.path()).unwrap_err();
        assert!(matches!(&e, ClusterError::DataDirLocked { pid: Some(p), .. } if *p == child.id()), "{e:?}");
        assert!(e.to_string().contains(&format!("pid {}", child.id())), "{e}");

        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        DataDirLock::acquire(tmp.path()).unwrap();
    }
}
