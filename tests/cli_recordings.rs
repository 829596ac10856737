//! `tctl recordings ls|download|export|import|play` and `tsh play` on real
//! directories, with no auth service: the store comes from `--from`/`--to`
//! or from teleport.yaml's `audit_sessions_uri` (default
//! `<data_dir>/log/records`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::Utc;
use teleport::blob::fs::FsStore;
use teleport::recordings::{Layout, RecordingStore, suite};

fn run(bin: &str, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(bin).args(args).env_remove("TELEPORT_CONFIG_FILE").output().unwrap();
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into())
}

fn tctl(args: &[&str]) -> (bool, Vec<u8>, String) {
    run(env!("CARGO_BIN_EXE_tctl"), args)
}

const SIDS: [&str; 3] = [
    "0d1e2f30-0000-4000-8000-00000000000a",
    "0d1e2f30-0000-4000-8000-00000000000b",
    "0d1e2f30-0000-4000-8000-00000000000c",
];

async fn record_three(dir: &Path) -> Vec<suite::Written> {
    let store = RecordingStore::new(Arc::new(FsStore::open(dir).unwrap()), Layout::Tar);
    let mut out = Vec::new();
    for (i, sid) in SIDS.iter().enumerate() {
        out.push(suite::record(&store, sid, 50 + i * 10, 300, 2, Utc::now()).await.unwrap());
    }
    out
}

#[tokio::test]
async fn list_download_copy_and_play() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The default store of a host whose teleport.yaml names no URI.
    let records = data.join("log").join("records");
    let written = record_three(&records).await;
    let cfg = tmp.path().join("teleport.yaml");
    std::fs::write(&cfg, format!("version: v3\nteleport:\n  data_dir: {}\n", data.display())).unwrap();
    let cfg = cfg.to_str().unwrap();

    let (ok, out, err) = tctl(&["-c", cfg, "recordings", "ls"]);
    assert!(ok, "{err}");
    let out = String::from_utf8(out).unwrap();
    for sid in SIDS {
        assert!(out.contains(sid), "{out}");
    }
    assert!(err.contains("3 recordings in file://"), "{err}");

    // Download: checked, refuses to overwrite.
    let file = tmp.path().join("one.tar");
    let (ok, _, err) = tctl(&["-c", cfg, "recordings", "download", SIDS[0], "-o", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(records.join(format!("{}.tar", SIDS[0]))).unwrap());
    let (ok, _, err) = tctl(&["-c", cfg, "recordings", "download", SIDS[0], "-o", file.to_str().unwrap()]);
    assert!(!ok && err.contains("--overwrite"), "{err}");
    let (ok, _, err) = tctl(&["-c", cfg, "recordings", "download", "nope-0000"]);
    assert!(!ok && err.contains("no recording of session nope-0000"), "{err}");

    // Export to another directory, twice: the second copies nothing.
    let other = format!("file://{}", tmp.path().join("backup").display());
    let (ok, _, err) = tctl(&["-c", cfg, "recordings", "export", "--to", &other]);
    assert!(ok, "{err}");
    assert!(err.contains("3 copied"), "{err}");
    let (ok, _, err) = tctl(&["-c", cfg, "recordings", "export", "--to", &other]);
    assert!(ok, "{err}");
    assert!(err.contains("0 copied") && err.contains("3 already identical"), "{err}");

    // Import one session into a third store, by id.
    let third = format!("file://{}", tmp.path().join("third").display());
    let (ok, _, err) =
        tctl(&["recordings", "import", "--from", &other, "--to", &third, "--session", SIDS[1], "--parallel", "2"]);
    assert!(ok, "{err}");
    assert!(err.contains("1 copied"), "{err}");
    let (ok, _, err) = tctl(&["recordings", "import", "--from", &other, "--to", &third, "--session", "absent-1"]);
    assert!(!ok && err.contains("not in the source: absent-1"), "{err}");

    // Play: text output is the session's bytes; tsh play reads the same store.
    let (ok, out, err) = tctl(&["recordings", "play", SIDS[1], "--from", &third, "--format", "text"]);
    assert!(ok, "{err}");
    assert!(out == written[1].output, "played {} bytes, recorded {}", out.len(), written[1].output.len());
    let (ok, out, err) = run(env!("CARGO_BIN_EXE_tsh"), &["-c", cfg, "play", SIDS[2], "--format", "json"]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.first().unwrap()["event"], "session.start");
    assert_eq!(lines.first().unwrap()["sid"], SIDS[2]);
    assert_eq!(lines.last().unwrap()["event"], "session.end");
    assert_eq!(lines.iter().filter(|l| l["event"] == "print").count(), 70);
    // Timed playback, fast.
    let (ok, out, err) = run(env!("CARGO_BIN_EXE_tsh"), &["-c", cfg, "play", SIDS[0], "--speed", "50"]);
    assert!(ok, "{err}");
    assert!(out.len() >= written[0].output.len());

    // Bad input: clear errors.
    let (ok, _, err) = tctl(&["recordings", "ls", "--from", "ftp://x"]);
    assert!(!ok && err.contains("unsupported scheme"), "{err}");
    let (ok, _, err) = tctl(&["recordings", "play", "../etc/passwd"]);
    assert!(!ok && err.contains("session id"), "{err}");
    let (ok, _, err) = tctl(&["recordings", "play", SIDS[0], "--from", &third, "--speed", "0"]);
    assert!(!ok && err.contains("speed"), "{err}");
}

#[tokio::test]
async fn audit_sessions_uri_from_teleport_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("recs");
    record_three(&elsewhere).await;
    let cfg = tmp.path().join("teleport.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: v3\nteleport:\n  data_dir: {}\n  storage:\n    type: sqlite\n    audit_sessions_uri: file://{}\n",
            tmp.path().join("data").display(),
            elsewhere.display()
        ),
    )
    .unwrap();
    let (ok, out, err) = tctl(&["-c", cfg.to_str().unwrap(), "recordings", "ls", "--format", "json"]);
    assert!(ok, "{err}");
    let n = String::from_utf8(out).unwrap().lines().filter(|l| l.contains("\"sha256\"")).count();
    assert_eq!(n, 3);
}
