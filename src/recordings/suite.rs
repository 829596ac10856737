//! A synthetic session for tests on every store: `chunks` outputs of
//! terminal-like bytes with known timing and two resizes, recorded with the
//! streaming writer; then checks that the stored recording plays back the
//! same bytes with the same relative timing.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::play::{PlayFormat, PlayOptions, play};
use super::proto::Event;
use super::{RecordingStore, SessionInfo, SessionRecorder};
use crate::blob::BlobInfo;

/// What a synthetic session wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The session id.
    pub sid: String,
    /// Every output byte, in order.
    pub output: Vec<u8>,
    /// (delay from the first print in ms, bytes) of each write.
    pub timeline: Vec<(i64, usize)>,
    /// The object written.
    pub object: BlobInfo,
}

/// Terminal-like bytes for write `i`: text lines, escape sequences and some
/// noise, so compression behaves as on real output.
pub fn output_chunk(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 => {
                out.extend_from_slice(format!("\x1b[32muser@node\x1b[0m:~$ ls -la /var/log/{}\r\n", x % 977).as_bytes())
            }
            1 => out.extend_from_slice(
                format!(
                    "-rw-r--r-- 1 root root {:>8} Nov 22 {:02}:{:02} file{}.log\r\n",
                    x % 99_999,
                    x % 24,
                    x % 60,
                    x % 313
                )
                .as_bytes(),
            ),
            2 => out.extend((0..64).map(|k| ((x >> (k % 56)) as u8) | 0x20)),
            _ => out.extend_from_slice(b"\x1b[2K\r"),
        }
    }
    out.truncate(len);
    out
}

/// Records a session of `chunks` writes of `chunk_len` bytes, `step_ms`
/// apart (every 1000th write after a 2 s pause), starting at `start`.
pub async fn record(
    store: &RecordingStore,
    sid: &str,
    chunks: usize,
    chunk_len: usize,
    step_ms: i64,
    start: DateTime<Utc>,
) -> super::Result<Written> {
    let info = SessionInfo {
        cluster: "example.com".into(),
        user: "alice".into(),
        login: "root".into(),
        server_id: "5a0e1c2d-0000-4000-8000-000000000001".into(),
        server_hostname: "node-1".into(),
        server_addr: "10.0.0.5:3022".into(),
        remote_addr: "203.0.113.7:51234".into(),
        terminal: (120, 40),
    };
    let mut rec = SessionRecorder::create(store, sid, info).await?;
    rec.start(start).await?;
    let mut output = Vec::with_capacity(chunks * chunk_len);
    let mut timeline = Vec::with_capacity(chunks);
    let mut at_ms = 0i64;
    for i in 0..chunks {
        if i > 0 {
            at_ms += if i % 1000 == 0 { 2000 } else { step_ms };
        }
        if i == chunks / 4 || i == chunks / 2 {
            rec.resize(start + TimeDelta::milliseconds(at_ms), 80 + (i % 7) as u16, 24).await?;
        }
        let data = output_chunk(i, chunk_len);
        rec.print(start + TimeDelta::milliseconds(at_ms), &data).await?;
        output.extend_from_slice(&data);
        timeline.push((at_ms, data.len()));
    }
    let object = rec.end(start + TimeDelta::milliseconds(at_ms + 5)).await?;
    Ok(Written { sid: sid.to_string(), output, timeline, object })
}

/// Checks the stored recording against what was written: the bytes played
/// as text are identical, each write's delay is as recorded, and a timed
/// playback at `speed` takes the recording's length divided by `speed`.
/// Returns the timed playback's wall time.
pub async fn check_playback(store: &RecordingStore, written: &Written, speed: f64) -> Duration {
    let d = store.describe();
    let sid = &written.sid;
    // Bytes.
    let mut reader = store.open_events(sid).await.unwrap_or_else(|e| panic!("{d}: open {sid}: {e}"));
    let mut out = Vec::with_capacity(written.output.len());
    let options = PlayOptions { format: PlayFormat::Text, ..PlayOptions::default() };
    let stats = play(&mut reader, &mut out, options).await.unwrap_or_else(|e| panic!("{d}: play {sid}: {e}"));
    assert!(out == written.output, "{d}: {sid}: played {} bytes, wrote {}", out.len(), written.output.len());
    assert_eq!(stats.resizes, 2, "{d}: resizes");
    assert_eq!(reader.stats().duplicates, 0);

    // Timeline: the prints of each write carry its delay; offsets are cumulative.
    let mut reader = store.open_events(sid).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    let mut got: Vec<(i64, usize)> = Vec::new();
    let mut offset = 0i64;
    while let Some(e) = reader.next().await.unwrap_or_else(|e| panic!("{d}: {e}")) {
        if let Event::SessionPrint(p) = e {
            assert_eq!(p.offset, offset, "{d}: offset of print {}", p.chunk_index);
            offset += p.bytes;
            match got.last_mut() {
                Some((delay, len)) if *delay == p.delay_milliseconds => *len += p.data.len(),
                _ => got.push((p.delay_milliseconds, p.data.len())),
            }
        }
    }
    assert_eq!(got, written.timeline, "{d}: {sid}: print timing");

    // Real time.
    let recorded_ms = written.timeline.last().map_or(0, |t| t.0);
    let mut reader = store.open_events(sid).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    let began = Instant::now();
    let options = PlayOptions { format: PlayFormat::Tty, speed, max_idle: None };
    play(&mut reader, &mut tokio::io::sink(), options).await.unwrap_or_else(|e| panic!("{d}: {e}"));
    let took = began.elapsed();
    let expected = Duration::from_secs_f64(recorded_ms as f64 / 1000.0 / speed);
    assert!(took >= expected, "{d}: timed playback took {took:?}, less than the {expected:?} recorded");
    assert!(took < expected + Duration::from_secs(5), "{d}: timed playback took {took:?}, recorded {expected:?}");
    took
}
