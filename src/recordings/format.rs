//! The recording format, byte for byte upstream's "proto stream" v1
//! (`lib/events/stream.go`): a recording is a sequence of parts; each part is
//! a 24-byte header of three big-endian u64 (version 1, gzip length, padding
//! length), one gzip member holding records, then that many zero bytes.
//! Each record is a big-endian u32 length and a protobuf `events.OneOf` of at
//! most 64 KiB. Readers drop events whose index does not exceed the last one
//! (a resumed upload may repeat events).
//!
//! We write parts without padding (our object stores assemble multipart
//! uploads themselves); upstream's reader and ours read both.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::proto::{Event, OneOf};
use super::{RecordingError, Result};

/// The part format we write (upstream's `ProtoStreamV1`).
pub const PROTO_STREAM_V1: u64 = 1;
/// The format with a flags word (upstream's `ProtoStreamV2`, used only for
/// encrypted recordings).
pub const PROTO_STREAM_V2: u64 = 2;
/// Bytes of a v1 part header.
pub const PART_HEADER_SIZE: usize = 24;
/// Largest record (upstream's `MaxProtoMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Largest part a reader accepts (compressed); upstream's parts are about
/// 5 MiB, ours 1 MiB. A larger claim is a corrupt header.
pub const MAX_PART_SIZE: u64 = 512 << 20;
/// Largest padding a reader skips.
pub const MAX_PADDING: u64 = 512 << 20;

/// Builds one part: records go into a gzip member as they come.
pub struct PartEncoder {
    gz: GzEncoder<Vec<u8>>,
    records: usize,
}

impl std::fmt::Debug for PartEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartEncoder")
            .field("records", &self.records)
            .field("compressed", &self.compressed_len())
            .finish()
    }
}

impl Default for PartEncoder {
    fn default() -> Self {
        PartEncoder::new()
    }
}

impl PartEncoder {
    /// An empty part (gzip at upstream's level, BestSpeed).
    pub fn new() -> PartEncoder {
        PartEncoder { gz: GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::fast()), records: 0 }
    }

    /// Appends a record; refuses one over [`MAX_MESSAGE_SIZE`].
    pub fn push(&mut self, record: &OneOf) -> Result<()> {
        let bytes = record.encode_to_vec();
        if bytes.is_empty() || bytes.len() > MAX_MESSAGE_SIZE {
            return Err(RecordingError::bad(format!(
                "a recording event of {} bytes is outside 1..={MAX_MESSAGE_SIZE} bytes",
                bytes.len()
            )));
        }
        let len = u32::try_from(bytes.len()).map_err(|_| RecordingError::bad("event too large"))?;
        self.gz.write_all(&len.to_be_bytes()).and_then(|()| self.gz.write_all(&bytes)).map_err(compress_err)?;
        self.records += 1;
        Ok(())
    }

    /// Records in this part.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Compressed bytes so far (lags the input by the compressor's window).
    pub fn compressed_len(&self) -> usize {
        self.gz.get_ref().len()
    }

    /// The finished part: header, gzip member, no padding.
    pub fn finish(self) -> Result<Vec<u8>> {
        let gz = self.gz.finish().map_err(compress_err)?;
        let mut part = Vec::with_capacity(PART_HEADER_SIZE + gz.len());
        part.extend_from_slice(&PROTO_STREAM_V1.to_be_bytes());
        part.extend_from_slice(&(gz.len() as u64).to_be_bytes());
        part.extend_from_slice(&0u64.to_be_bytes());
        part.extend_from_slice(&gz);
        Ok(part)
    }
}

fn compress_err(e: std::io::Error) -> RecordingError {
    RecordingError::internal(format!("compressing a recording part: {e}"))
}

/// What a reader saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Parts read (padding-only parts included).
    pub parts: u64,
    /// Events returned.
    pub events: u64,
    /// Events dropped because their index did not exceed the previous one.
    pub duplicates: u64,
    /// Events of types playback does not use (skipped).
    pub other_types: u64,
    /// Events whose index skipped ahead (still returned).
    pub out_of_order: u64,
}

/// Reads the events of a recording from a byte stream, part after part,
/// holding one compressed part in memory at a time.
pub struct RecordingReader<R> {
    input: R,
    what: String,
    part: Option<MultiGzDecoder<std::io::Cursor<Vec<u8>>>>,
    part_no: u64,
    last_index: i64,
    stats: ReadStats,
}

impl<R> std::fmt::Debug for RecordingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReader").field("what", &self.what).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> RecordingReader<R> {
    /// A reader of `input`; `what` names the recording in errors.
    pub fn new(input: R, what: impl Into<String>) -> RecordingReader<R> {
        RecordingReader {
            input,
            what: what.into(),
            part: None,
            part_no: 0,
            last_index: -1,
            stats: ReadStats::default(),
        }
    }

    /// What was read so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    fn corrupt(&self, why: impl std::fmt::Display) -> RecordingError {
        RecordingError::corrupt(format!("{}: part {}: {why}", self.what, self.part_no))
    }

    /// The next event playback uses, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            let Some(record) = self.next_record().await? else { return Ok(None) };
            let one = OneOf::decode(record.as_slice()).map_err(|e| self.corrupt(format!("undecodable event: {e}")))?;
            let Some(event) = one.event else {
                self.stats.other_types += 1;
                continue;
            };
            let index = event.metadata().map_or(0, |m| m.index);
            if index <= self.last_index {
                self.stats.duplicates += 1;
                continue;
            }
            if self.last_index > 0 && index != self.last_index + 1 {
                self.stats.out_of_order += 1;
            }
            self.last_index = index;
            self.stats.events += 1;
            return Ok(Some(event));
        }
    }

    /// The next record's bytes, crossing part boundaries.
    async fn next_record(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(gz) = self.part.as_mut() {
                let mut len = [0u8; 4];
                match read_full(gz, &mut len) {
                    Ok(0) => {
                        self.part = None;
                        continue;
                    }
                    Ok(4) => {}
                    Ok(n) => return Err(self.corrupt(format!("record length cut after {n} of 4 bytes"))),
                    Err(e) => return Err(self.corrupt(format!("decompressing: {e}"))),
                }
                let len = u32::from_be_bytes(len) as usize;
                if len == 0 || len > MAX_MESSAGE_SIZE {
                    return Err(self.corrupt(format!("record of {len} bytes (must be 1..={MAX_MESSAGE_SIZE})")));
                }
                let mut record = vec![0u8; len];
                match read_full(gz, &mut record) {
                    Ok(n) if n == len => return Ok(Some(record)),
                    Ok(n) => return Err(self.corrupt(format!("record cut after {n} of {len} bytes"))),
                    Err(e) => return Err(self.corrupt(format!("decompressing: {e}"))),
                }
            }
            if !self.next_part().await? {
                return Ok(None);
            }
        }
    }

    /// Loads the next part; false at the clean end of the recording.
    async fn next_part(&mut self) -> Result<bool> {
        let mut header = [0u8; PART_HEADER_SIZE];
        let got = read_full_async(&mut self.input, &mut header).await.map_err(|e| self.corrupt(e))?;
        if got == 0 {
            return Ok(false);
        }
        self.part_no += 1;
        if got < PART_HEADER_SIZE {
            return Err(self.corrupt(format!("header cut after {got} of {PART_HEADER_SIZE} bytes")));
        }
        let word = |i: usize| u64::from_be_bytes(header[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (version, size, padding) = (word(0), word(1), word(2));
        match version {
            PROTO_STREAM_V1 => {}
            PROTO_STREAM_V2 => {
                let mut flags = [0u8; 8];
                let n = read_full_async(&mut self.input, &mut flags).await.map_err(|e| self.corrupt(e))?;
                if n < 8 {
                    return Err(self.corrupt("v2 header cut in its flags"));
                }
                if flags[0] & 1 != 0 {
                    return Err(self.corrupt(
                        "the part is encrypted (upstream's encrypted recordings); decrypt it with upstream tools first",
                    ));
                }
            }
            v => return Err(self.corrupt(format!("unknown format version {v} (this reader knows 1 and 2)"))),
        }
        if size > MAX_PART_SIZE || padding > MAX_PADDING {
            return Err(self.corrupt(format!("header claims {size} bytes and {padding} of padding: corrupt")));
        }
        self.stats.parts += 1;
        let mut body = vec![0u8; usize::try_from(size).map_err(|_| self.corrupt("part too large"))?];
        let n = read_full_async(&mut self.input, &mut body).await.map_err(|e| self.corrupt(e))?;
        if n < body.len() {
            return Err(self.corrupt(format!("cut after {n} of {size} bytes")));
        }
        let skipped = tokio::io::copy(&mut (&mut self.input).take(padding), &mut tokio::io::sink())
            .await
            .map_err(|e| self.corrupt(e))?;
        if skipped < padding {
            return Err(self.corrupt(format!("padding cut after {skipped} of {padding} bytes")));
        }
        if size > 0 {
            self.part = Some(MultiGzDecoder::new(std::io::Cursor::new(body)));
        }
        Ok(true)
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

async fn read_full_async(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}
