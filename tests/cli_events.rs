//! `tctl events import|export|search` against real file logs, with no auth
//! service running: the store comes from `--uri` or from teleport.yaml.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use teleport::events::Event;

fn tctl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tctl"))
        .args(args)
        .env_remove("TELEPORT_CONFIG_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn write_config(dir: &Path, uris: &str) -> String {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("host_uuid"), "auth-1\n").unwrap();
    let cfg = dir.join("teleport.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: v3\nteleport:\n  data_dir: {}\n  storage:\n    type: sqlite\n    audit_events_uri: {uris}\n",
            data.display()
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn import_search_export_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[]");
    let evs: Vec<Event> = (0..5)
        .map(|i| {
            Event::at("user.login", "T1000I", teleport::events::parse_time(&format!("2024-05-01T10:00:0{i}Z")).unwrap())
                .with("user", format!("u{i}"))
        })
        .collect();
    let lines: String = evs.iter().map(|e| e.to_json() + "\n").collect();
    // Default store: <data_dir>/log, as host_uuid.
    let (ok, _, err) = tctl(&["-c", &cfg, "events", "import", "-"], Some(&lines));
    assert!(ok, "{err}");
    assert!(err.contains("imported 5 events"), "{err}");
    assert!(dir.path().join("data/log/auth-1/2024-05-01.00:00:00.log").exists());
    let (ok, _, _) = tctl(&["-c", &cfg, "events", "import"], Some(&lines));
    assert!(ok);

    let (ok, out, err) =
        tctl(&["-c", &cfg, "events", "search", "--from", "2024-05-01", "--to", "2024-05-02", "--limit", "3"], None);
    assert!(ok, "{err}");
    assert!(out.starts_with("Time") && out.contains("T1000I") && out.contains("u2") && !out.contains("u3"), "{out}");
    let (ok, out, _) = tctl(
        &["-c", &cfg, "events", "search", "--from", "2024-05-01", "--to", "2024-05-02", "--format", "json", "--desc"],
        None,
    );
    assert!(ok);
    let got: Vec<Event> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), 5, "imported twice, stored once");
    assert_eq!(got[0].uid(), evs[4].uid());

    // Export from the configured store, import into another with --uri.
    let (ok, exported, err) =
        tctl(&["-c", &cfg, "events", "export", "--from", "2024-05-01", "--to", "2024-05-02"], None);
    assert!(ok, "{err}");
    assert_eq!(exported.lines().count(), 5);
    let other = format!("file://{}", dir.path().join("other").display());
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let (ok, _, err) = tctl(&["events", "import", "--uri", &other, file.to_str().unwrap()], None);
    assert!(ok, "{err}");
    let (ok, again, _) =
        tctl(&["events", "export", "--uri", &other, "--from", "2024-05-01", "--to", "2024-05-02T00:00:00Z"], None);
    assert!(ok);
    assert_eq!(again, exported, "the same stable JSON lines");

    // Errors: bad time, bad line, unknown scheme.
    let (ok, _, err) = tctl(&["-c", &cfg, "events", "search", "--from", "soon"], None);
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    let (ok, _, err) = tctl(&["-c", &cfg, "events", "import"], Some("{\"event\":\"x\"}\n"));
    assert!(!ok && err.contains("line 1"), "{err}");
    let (ok, _, err) = tctl(&["events", "search", "--uri", "gopher://x"], None);
    assert!(!ok && err.contains("supported"), "{err}");
}

#[test]
fn configured_list_searches_first() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let cfg = write_config(dir.path(), &format!("[\"file://{}\", \"file://{}\"]", a.display(), b.display()));
    let line = Event::at("user.create", "T1002I", teleport::events::parse_time("2024-05-01T10:00:00Z").unwrap())
        .to_json()
        + "\n";
    let (ok, _, err) = tctl(&["-c", &cfg, "events", "import"], Some(&line));
    assert!(ok, "{err}");
    assert!(a.join("auth-1/2024-05-01.00:00:00.log").exists() && b.join("auth-1/2024-05-01.00:00:00.log").exists());
}
