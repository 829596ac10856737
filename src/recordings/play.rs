//! Playback: a recording's output written to a terminal with its original
//! timing (scaled by `speed`, long pauses optionally cut), or dumped as
//! text, or its events listed as JSON lines. Timing follows each print's
//! `DelayMilliseconds` (milliseconds since the first print), so playback
//! does not drift however long the recording.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::format::RecordingReader;
use super::proto::Event;
use super::{RecordingError, Result};

/// How to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlayFormat {
    /// Output with its timing; resizes as xterm escape sequences.
    #[default]
    Tty,
    /// Output only, at once.
    Text,
    /// One JSON object per event (type, index, time, delay, sizes).
    Json,
}

/// Playback options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayOptions {
    /// How to play.
    pub format: PlayFormat,
    /// Speed factor (2.0 plays twice as fast).
    pub speed: f64,
    /// Pauses longer than this (in recording time) are cut to it.
    pub max_idle: Option<Duration>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions { format: PlayFormat::Tty, speed: 1.0, max_idle: None }
    }
}

/// What playback did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayStats {
    /// Print events played.
    pub prints: u64,
    /// Output bytes written.
    pub bytes: u64,
    /// The recording's length: the last print's delay, in milliseconds.
    pub recorded_ms: i64,
    /// Resizes seen.
    pub resizes: u64,
}

fn write_err(e: std::io::Error) -> RecordingError {
    RecordingError::internal(format!("writing playback output: {e}"))
}

/// Plays the recording `reader` reads into `out`.
pub async fn play<R, W>(reader: &mut RecordingReader<R>, out: &mut W, options: PlayOptions) -> Result<PlayStats>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !(options.speed.is_finite() && options.speed > 0.0) {
        return Err(RecordingError::bad(format!("playback speed {} must be a positive number", options.speed)));
    }
    let mut stats = PlayStats::default();
    let begin = Instant::now();
    // Recording time already played, and how much of it idle cuts removed.
    let mut last_delay = 0i64;
    let mut cut_ms = 0i64;
    while let Some(event) = reader.next().await? {
        match (&event, options.format) {
            (Event::SessionPrint(p), PlayFormat::Tty | PlayFormat::Text) => {
                if options.format == PlayFormat::Tty {
                    let gap = p.delay_milliseconds - last_delay;
                    if let Some(max) = options.max_idle {
                        let max = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
                        if gap > max {
                            cut_ms += gap - max;
                        }
                    }
                    let due_ms = (p.delay_milliseconds - cut_ms).max(0) as f64 / options.speed;
                    tokio::time::sleep_until(begin + Duration::from_secs_f64(due_ms / 1000.0)).await;
                }
                last_delay = last_delay.max(p.delay_milliseconds);
                out.write_all(&p.data).await.map_err(write_err)?;
                if options.format == PlayFormat::Tty {
                    out.flush().await.map_err(write_err)?;
                }
                stats.prints += 1;
                stats.bytes += p.data.len() as u64;
                stats.recorded_ms = stats.recorded_ms.max(p.delay_milliseconds);
            }
            (Event::Resize(r), PlayFormat::Tty) => {
                stats.resizes += 1;
                if let Some((w, h)) = parse_size(&r.terminal_size) {
                    out.write_all(format!("\x1b[8;{h};{w}t").as_bytes()).await.map_err(write_err)?;
                }
            }
            (Event::Resize(_), _) => stats.resizes += 1,
            (e, PlayFormat::Json) => {
                if let Event::SessionPrint(p) = e {
                    stats.prints += 1;
                    stats.bytes += p.data.len() as u64;
                    stats.recorded_ms = stats.recorded_ms.max(p.delay_milliseconds);
                }
                let mut line =
                    serde_json::to_vec(&event_json(e)).map_err(|e| RecordingError::internal(e.to_string()))?;
                line.push(b'\n');
                out.write_all(&line).await.map_err(write_err)?;
            }
            _ => {}
        }
    }
    out.flush().await.map_err(write_err)?;
    Ok(stats)
}

/// `W:H` as numbers.
pub fn parse_size(s: &str) -> Option<(u16, u16)> {
    let (w, h) = s.split_once(':')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// An event as upstream's JSON names its fields (print data as its size).
pub fn event_json(e: &Event) -> serde_json::Value {
    use serde_json::json;
    let m = e.metadata();
    let time = m.and_then(|m| m.time).and_then(|t| t.to_datetime()).map(|t| t.to_rfc3339());
    let mut v = json!({
        "event": m.map(|m| m.r#type.clone()).unwrap_or_default(),
        "ei": m.map_or(0, |m| m.index),
        "time": time,
    });
    if let Some(m) = m.filter(|m| !m.code.is_empty()) {
        v["code"] = json!(m.code);
    }
    match e {
        Event::SessionPrint(p) => {
            v["ci"] = json!(p.chunk_index);
            v["bytes"] = json!(p.bytes);
            v["ms"] = json!(p.delay_milliseconds);
            v["offset"] = json!(p.offset);
        }
        Event::SessionStart(s) => {
            v["sid"] = json!(s.session.as_ref().map(|s| s.session_id.clone()));
            v["user"] = json!(s.user.as_ref().map(|u| u.user.clone()));
            v["login"] = json!(s.user.as_ref().map(|u| u.login.clone()));
            v["size"] = json!(s.terminal_size);
        }
        Event::Resize(r) => v["size"] = json!(r.terminal_size),
        Event::SessionEnd(s) => {
            v["sid"] = json!(s.session.as_ref().map(|s| s.session_id.clone()));
            v["participants"] = json!(s.participants);
        }
        Event::SessionJoin(j) | Event::SessionLeave(j) => {
            v["user"] = json!(j.user.as_ref().map(|u| u.user.clone()));
        }
    }
    v
}
