//! Session recordings on the local directory store: the synthetic 20 MB
//! session (10,000 writes) recorded, downloaded and played back; the reader
//! against upstream's framing (padding, v2 headers, repeated events after a
//! resume, event types it does not play); corrupt input never panics.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use prost::Message;
use teleport::blob::fs::FsStore;
use teleport::recordings::format::{PartEncoder, RecordingReader};
use teleport::recordings::proto::{Event, Metadata, OneOf, SessionPrint};
use teleport::recordings::{Layout, RecordingErrorKind, RecordingStore, suite};

fn store(dir: &std::path::Path) -> RecordingStore {
    RecordingStore::new(Arc::new(FsStore::open(dir).unwrap()), Layout::Tar)
}

const SID: &str = "9b3c1a52-7c1e-4d2a-a5a0-3f1a2b3c4d5e";

#[tokio::test]
async fn a_20_mb_session_plays_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("records"));
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 6, 0, 0).unwrap();
    let written = suite::record(&store, SID, 10_000, 2_000, 7, start).await.unwrap();
    assert_eq!(written.output.len(), 20_000_000);
    // Upstream's name and layout.
    let path = dir.path().join("records").join(format!("{SID}.tar"));
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[..8], &1u64.to_be_bytes(), "v1 part header");
    assert_eq!(written.object.size, on_disk.len() as u64);
    let took = suite::check_playback(&store, &written, 100.0).await;
    eprintln!("recording {} bytes for 20,000,000 bytes of output; timed playback at 100x took {took:?}", on_disk.len());

    // Listing and download.
    use futures::TryStreamExt;
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid, SID);
    let out = dir.path().join("copy.tar");
    assert_eq!(store.download(SID, &out).await.unwrap(), on_disk.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), on_disk);
}

#[tokio::test]
async fn nothing_is_visible_until_the_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let info = teleport::recordings::SessionInfo { cluster: "c".into(), user: "u".into(), ..Default::default() };
    let mut rec = teleport::recordings::SessionRecorder::create(&store, SID, info).await.unwrap();
    rec.start(Utc::now()).await.unwrap();
    // More than one part's worth of incompressible output.
    let noise: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    rec.print(Utc::now(), &noise).await.unwrap();
    assert!(store.head(SID).await.is_err());
    rec.abort().await.unwrap();
    let e = store.head(SID).await.unwrap_err();
    assert_eq!(e.kind, RecordingErrorKind::NotFound);
    assert!(e.message.contains(SID), "{e}");
    let e = store.open_events("not/a/sid").await.unwrap_err();
    assert_eq!(e.kind, RecordingErrorKind::BadParameter);
}

fn print(index: i64, data: &[u8], delay: i64) -> OneOf {
    OneOf {
        event: Some(Event::SessionPrint(SessionPrint {
            metadata: Some(Metadata { index, r#type: "print".into(), ..Default::default() }),
            data: data.to_vec(),
            bytes: data.len() as i64,
            delay_milliseconds: delay,
            ..Default::default()
        })),
    }
}

/// A part as upstream writes it: version, gzip length, padding, then zeros.
fn upstream_part(version: u64, records: &[Vec<u8>], padding: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    for r in records {
        std::io::Write::write_all(&mut gz, &(r.len() as u32).to_be_bytes()).unwrap();
        std::io::Write::write_all(&mut gz, r).unwrap();
    }
    let body = gz.finish().unwrap();
    let mut part = Vec::new();
    part.extend_from_slice(&version.to_be_bytes());
    part.extend_from_slice(&(body.len() as u64).to_be_bytes());
    part.extend_from_slice(&(padding as u64).to_be_bytes());
    if version == 2 {
        part.extend_from_slice(&[0u8; 8]);
    }
    part.extend_from_slice(&body);
    part.extend(std::iter::repeat_n(0u8, padding));
    part
}

async fn read_all(bytes: Vec<u8>) -> (Vec<Event>, teleport::recordings::ReadStats) {
    let mut r = RecordingReader::new(std::io::Cursor::new(bytes), "test");
    let mut events = Vec::new();
    while let Some(e) = r.next().await.unwrap() {
        events.push(e);
    }
    (events, r.stats())
}

#[tokio::test]
async fn reads_upstream_framing() {
    // A UserLogin (OneOf field 1), which playback does not use.
    let mut login = Vec::new();
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut login);
    prost::encoding::encode_varint(0, &mut login);
    let mut bytes =
        upstream_part(1, &[print(0, b"a", 0).encode_to_vec(), login, print(1, b"b", 5).encode_to_vec()], 5000);
    // An empty padding-only part, then a resumed part repeating index 1.
    for word in [1u64, 0, 8] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(&[0u8; 8]);
    bytes.extend(upstream_part(2, &[print(1, b"b", 5).encode_to_vec(), print(2, b"c", 9).encode_to_vec()], 17));
    let (events, stats) = read_all(bytes).await;
    let data: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::SessionPrint(p) => Some(p.data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(data, b"abc");
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.other_types, 1);
    assert_eq!(stats.parts, 3);

    // Our own parts, concatenated, read the same way.
    let mut ours = Vec::new();
    for i in 0..3 {
        let mut p = PartEncoder::new();
        p.push(&print(i, &[b'x' + i as u8], i * 10)).unwrap();
        ours.extend(p.finish().unwrap());
    }
    let (events, _) = read_all(ours).await;
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn corrupt_recordings_are_errors_naming_the_part() {
    let good = upstream_part(1, &[print(0, b"a", 0).encode_to_vec()], 0);
    for (what, bytes, needle) in [
        ("cut header", good[..10].to_vec(), "header cut"),
        ("cut body", good[..good.len() - 3].to_vec(), "cut after"),
        ("bad version", [&9u64.to_be_bytes()[..], &good[8..]].concat(), "unknown format version 9"),
        (
            "encrypted",
            {
                let mut p = upstream_part(2, &[print(0, b"a", 0).encode_to_vec()], 0);
                p[24] = 1;
                p
            },
            "encrypted",
        ),
        ("huge claim", [&1u64.to_be_bytes()[..], &u64::MAX.to_be_bytes()[..], &[0u8; 8][..]].concat(), "claims"),
    ] {
        let mut r = RecordingReader::new(std::io::Cursor::new(bytes), "rec.tar");
        let e = loop {
            match r.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{what}: read to the end"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind, RecordingErrorKind::Corrupt, "{what}: {e}");
        assert!(e.message.contains("rec.tar: part 1") && e.message.contains(needle), "{what}: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn any_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096), flip in 0usize..4096) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let _ = read_until_error(bytes).await;
            // A valid recording with one byte flipped.
            let mut valid = upstream_part(1, &[print(0, b"hello", 0).encode_to_vec(), print(1, b"world", 3).encode_to_vec()], 4);
            let i = flip % valid.len();
            valid[i] ^= 0x5a;
            let _ = read_until_error(valid).await;
        });
    }
}

async fn read_until_error(bytes: Vec<u8>) -> Result<usize, teleport::recordings::RecordingError> {
    let mut r = RecordingReader::new(std::io::Cursor::new(bytes), "fuzz");
    let mut n = 0;
    while r.next().await?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[tokio::test]
async fn transfer_copies_once_and_maps_names() {
    use teleport::recordings::transfer::{Selection, transfer};
    let dir = tempfile::tempdir().unwrap();
    let a = store(&dir.path().join("a"));
    let b = RecordingStore::new(Arc::new(FsStore::open(&dir.path().join("b")).unwrap()), Layout::Bare);
    let start = Utc::now();
    for i in 0..5 {
        suite::record(&a, &format!("{SID}{i}"), 20, 100, 3, start).await.unwrap();
    }
    // A stray object that is not a recording is not copied.
    teleport::blob::put_bytes(a.blob().as_ref(), "notes.txt", Bytes::from_static(b"x")).await.unwrap();
    let r = transfer(&a, &b, &Selection::default(), 3, &|_| {}).await.unwrap();
    assert_eq!((r.copied, r.identical, r.failed.len()), (5, 0, 0));
    assert!(dir.path().join("b").join(format!("{SID}0")).is_file(), "Azure-style name at the destination");
    let again = transfer(&a, &b, &Selection::default(), 3, &|_| {}).await.unwrap();
    assert_eq!((again.copied, again.identical), (0, 5));
    let some = Selection { sids: [format!("{SID}1"), "missing".into()].into_iter().collect(), ..Default::default() };
    let r = transfer(&b, &a, &some, 2, &|_| {}).await.unwrap();
    assert_eq!((r.copied, r.identical), (0, 1));
    assert_eq!(r.missing, vec!["missing".to_string()]);
}
