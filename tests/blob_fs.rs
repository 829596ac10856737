//! The BlobStore suite on the local directory store, plus what only a local
//! directory can show: staging files, permissions, a corrupted file caught
//! by its checksum.

use std::sync::Arc;

use bytes::Bytes;
use teleport::blob::suite::{self, SuiteOptions};
use teleport::blob::{self, BlobErrorKind, BlobStore, fs::FsStore};

#[tokio::test]
async fn suite_passes_on_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(&dir.path().join("objects")).unwrap();
    // Whether this file system keeps user xattrs decides whether head returns checksums.
    let probe = blob::put_bytes(&store, "probe", Bytes::from_static(b"p")).await.unwrap();
    assert!(probe.sha256.is_some());
    let stores_checksums = store.head("probe").await.unwrap().unwrap().sha256.is_some();
    store.delete("probe").await.unwrap();
    let options = SuiteOptions { stores_checksums, ..SuiteOptions::full("run") };
    suite::run_all(Arc::new(store.clone()), &options).await;
    // Nothing left behind: no objects, no staged uploads, no empty directories.
    let left: Vec<_> = walk(store.root());
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            let inner = walk(&p);
            if inner.is_empty() && p.file_name().is_some_and(|n| n == ".staging") {
                continue;
            }
            out.push(p);
            out.extend(inner);
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn files_are_private_and_published_whole() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(&dir.path().join("recs")).unwrap();
    let mut w = store.put("a/b.tar", Default::default()).await.unwrap();
    w.write(Bytes::from_static(b"hello ")).await.unwrap();
    // While writing, the final name does not exist; the staged file does.
    assert!(!store.path_of("a/b.tar").exists());
    let staged: Vec<_> = std::fs::read_dir(store.root().join(".staging")).unwrap().collect();
    assert_eq!(staged.len(), 1);
    w.write(Bytes::from_static(b"world")).await.unwrap();
    let info = w.finish().await.unwrap();
    assert_eq!(info.size, 11);
    let mode = std::fs::metadata(store.path_of("a/b.tar")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(store.root().join("a")).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
    assert_eq!(std::fs::read_dir(store.root().join(".staging")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_corrupted_file_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    blob::put_bytes(&store, "rec.tar", Bytes::from(vec![7u8; 100_000])).await.unwrap();
    if store.head("rec.tar").await.unwrap().unwrap().sha256.is_none() {
        eprintln!("skipped: this file system keeps no user extended attributes, so no checksum is stored");
        return;
    }
    // Flip one byte in place (the xattr stays).
    let path = store.path_of("rec.tar");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[50_000] ^= 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
        .unwrap();
    let e = blob::get_bytes(&store, "rec.tar").await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch);
    assert!(e.message.contains("rec.tar"), "{e}");
}

#[tokio::test]
async fn uris_open_the_right_store() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("file://{}", dir.path().join("x").display());
    let store = blob::open(&uri, "audit_sessions_uri").await.unwrap();
    assert!(store.describe().starts_with("file:///"));
    let e = blob::open("file://host/x", "audit_sessions_uri").await.unwrap_err();
    assert!(e.message.contains("takes no host"), "{e}");
    let e = blob::open("ftp://x/y", "--to").await.unwrap_err();
    assert!(e.message.contains("--to") && e.message.contains("unsupported scheme"), "{e}");
}

#[tokio::test]
async fn an_unexpected_checksum_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let options = blob::PutOptions { expected_sha256: Some("00".repeat(32)), ..Default::default() };
    let mut w = store.put("x.tar", options).await.unwrap();
    w.write(Bytes::from_static(b"data")).await.unwrap();
    let e = w.finish().await.unwrap_err();
    assert_eq!(e.kind, BlobErrorKind::ChecksumMismatch, "{e}");
    assert!(store.head("x.tar").await.unwrap().is_none());
    assert_eq!(std::fs::read_dir(store.root().join(".staging")).unwrap().count(), 0);
}

#[tokio::test]
async fn copy_skips_identical_objects() {
    let dir = tempfile::tempdir().unwrap();
    let a = FsStore::open(&dir.path().join("a")).unwrap();
    let b = FsStore::open(&dir.path().join("b")).unwrap();
    blob::put_bytes(&a, "k/1.tar", Bytes::from(vec![1u8; 3000])).await.unwrap();
    assert!(matches!(blob::copy(&a, "k/1.tar", &b, "k/1.tar").await.unwrap(), blob::CopyOutcome::Copied(_)));
    assert_eq!(blob::copy(&a, "k/1.tar", &b, "k/1.tar").await.unwrap(), blob::CopyOutcome::Identical);
    blob::put_bytes(&a, "k/1.tar", Bytes::from(vec![2u8; 3000])).await.unwrap();
    assert!(matches!(blob::copy(&a, "k/1.tar", &b, "k/1.tar").await.unwrap(), blob::CopyOutcome::Copied(_)));
    assert_eq!(blob::get_bytes(&b, "k/1.tar").await.unwrap(), vec![2u8; 3000]);
}
