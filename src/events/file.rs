//! The FILE AUDIT LOG (`file:///path`, and the default `<data_dir>/log`),
//! upstream's layout: one JSON line per event, one file per UTC day named
//! `YYYY-MM-DD.00:00:00.log` under `<dir>/<host-uuid>/` (files 0640, dirs
//! 0750), and an `events.log` symlink in `<dir>` to the newest day file.
//!
//! An event goes to the file of its own `time`'s day, so imported old events
//! are found where a search looks. Searches read only the day files that
//! overlap the range, in every host directory (skipping `playbacks`,
//! `upload`, `records`), streaming line by line and keeping at most one
//! page in memory; the cursor is the last event's (time, `ei`, uid). Emits
//! skip a uid already in that day's file of this host (a per-day uid set,
//! loaded lazily, for the few most recent days). This room touches only the
//! filesystem under `dir`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use chrono::NaiveDate;
use serde::Deserialize;

use super::{AuditLog, Event, EventsError, FILE_MAX_EVENT_SIZE, Order, Result, SearchPage, SearchParams, parse_time};

/// Directories under the log directory that hold no events.
const NOT_HOSTS: [&str; 3] = ["playbacks", "upload", "records"];
/// The symlink to the newest day file.
pub const SYMLINK: &str = "events.log";
/// Day files whose uid sets (and handles) are kept for idempotent emits.
const CACHED_DAYS: usize = 4;

/// The name of the day file for `day`.
pub fn day_file_name(day: NaiveDate) -> String {
    format!("{}.00:00:00.log", day.format("%Y-%m-%d"))
}

fn parse_day_file_name(name: &str) -> Option<NaiveDate> {
    if !name.ends_with(".log") || name.len() < 10 {
        return None;
    }
    NaiveDate::parse_from_str(name.get(..10)?, "%Y-%m-%d").ok()
}

fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn day_of_nanos(n: i128) -> NaiveDate {
    let secs = n.div_euclid(1_000_000_000) as i64;
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.date_naive()).unwrap_or_default()
}

fn day_start_nanos(d: NaiveDate) -> i128 {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp() as i128 * 1_000_000_000).unwrap_or(0)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> EventsError {
    EventsError::internal(format!("file audit log: {what} {}: {e}", path.display()))
}

/// The sort key of an event: time in ns since the epoch, `ei`, uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key(i128, i64, String);

impl Key {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("f1:{}:{}:{}", self.0, self.1, self.2))
    }

    fn decode(s: &str) -> Result<Key> {
        let bad = || EventsError::bad(format!("file audit log: invalid search cursor {s:?}"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut it = raw.splitn(4, ':');
        if it.next() != Some("f1") {
            return Err(bad());
        }
        let t = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let ei = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        Ok(Key(t, ei, it.next().ok_or_else(bad)?.to_string()))
    }
}

/// The fields a search looks at, parsed without building the whole event.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(default)]
    ei: Option<serde_json::Number>,
    #[serde(borrow, default)]
    sid: Option<Cow<'a, str>>,
}

impl Head<'_> {
    fn key(&self, line: &str) -> Option<Key> {
        let t = self.time.as_deref().and_then(parse_time)?;
        let ei = self.ei.as_ref().and_then(|n| n.as_i64()).unwrap_or(0);
        let uid = match self.uid.as_deref() {
            Some(u) if !u.is_empty() => u.to_string(),
            // Upstream's cursor for an event without a uid: the JSON's sha256.
            _ => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(line.as_bytes()))
            }
        };
        Some(Key(nanos(t), ei, uid))
    }
}

/// Reads `path` line by line, calling `f(line)` for each non-empty line;
/// `f` returns false to stop early.
fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str) -> bool) -> Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("open", path, e)),
    };
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        buf.clear();
        let read = r.read_until(b'\n', &mut buf).map_err(|e| io_err("read", path, e))?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        if !f(n, line) {
            return Ok(());
        }
    }
}

fn parse_head<'a>(path: &Path, n: usize, line: &'a str) -> Option<Head<'a>> {
    match serde_json::from_str::<Head>(line) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(file = %path.display(), line = n, error = %e, "skipping a corrupt audit log line");
            None
        }
    }
}

fn parse_event(path: &Path, n: usize, line: &str) -> Option<Event> {
    match serde_json::from_str::<Event>(line) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(file = %path.display(), line = n, error = %e, "skipping a corrupt audit log line");
            None
        }
    }
}

/// A compact form of a uid for the per-day sets.
fn uid_key(uid: &str) -> u128 {
    match uuid::Uuid::parse_str(uid) {
        Ok(u) => u.as_u128(),
        Err(_) => {
            use sha2::Digest;
            let d = sha2::Sha256::digest(uid.as_bytes());
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[..16]);
            u128::from_be_bytes(b)
        }
    }
}

struct DayFile {
    day: NaiveDate,
    file: File,
    uids: HashSet<u128>,
}

#[derive(Default)]
struct Writer {
    /// Most recently used last.
    days: VecDeque<DayFile>,
    newest: Option<NaiveDate>,
}

/// The file audit log.
#[derive(Clone)]
pub struct FileLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    host_dir: PathBuf,
    writer: Mutex<Writer>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog").field("dir", &self.inner.dir).field("host_dir", &self.inner.host_dir).finish()
    }
}

fn make_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o750).create(path).map_err(|e| io_err("create directory", path, e))
}

impl FileLog {
    /// Opens the log in `dir`, writing as host `host_uuid`. Directories are
    /// made on the first emit, so a handle that only searches writes nothing.
    pub fn open(dir: &Path, host_uuid: &str) -> Result<FileLog> {
        if host_uuid.is_empty() || host_uuid.contains('/') || host_uuid.starts_with('.') {
            return Err(EventsError::bad(format!("file audit log: invalid host uuid {host_uuid:?}")));
        }
        let host_dir = dir.join(host_uuid);
        Ok(FileLog {
            inner: Arc::new(Inner { dir: dir.to_path_buf(), host_dir, writer: Mutex::new(Writer::default()) }),
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// This host's directory (`<dir>/<host-uuid>`).
    pub fn host_dir(&self) -> &Path {
        &self.inner.host_dir
    }
}

impl Inner {
    fn open_day(&self, day: NaiveDate) -> Result<DayFile> {
        make_dir(&self.dir)?;
        make_dir(&self.host_dir)?;
        let path = self.host_dir.join(day_file_name(day));
        let mut uids = HashSet::new();
        for_each_line(&path, |n, line| {
            if let Some(h) = parse_head(&path, n, line)
                && let Some(u) = h.uid.as_deref()
            {
                uids.insert(uid_key(u));
            }
            true
        })?;
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        Ok(DayFile { day, file, uids })
    }

    fn update_symlink(&self, day: NaiveDate) {
        let target = Path::new(self.host_dir.file_name().unwrap_or_default()).join(day_file_name(day));
        let link = self.dir.join(SYMLINK);
        let tmp = self.dir.join(format!(".{SYMLINK}.{}", uuid::Uuid::new_v4()));
        let res = std::os::unix::fs::symlink(&target, &tmp).and_then(|_| fs::rename(&tmp, &link));
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            tracing::warn!(link = %link.display(), error = %e, "could not update the events.log symlink");
        }
    }

    fn emit(&self, event: &Event) -> Result<()> {
        let t = event.time().ok_or_else(|| EventsError::bad("event has no time"))?;
        let day = day_of_nanos(nanos(t));
        let mut line = event.to_json();
        line.push('\n');
        let uid = uid_key(event.uid());
        let mut w = self.writer.lock().map_err(|_| EventsError::internal("file audit log: writer lock poisoned"))?;
        let idx = match w.days.iter().position(|d| d.day == day) {
            Some(i) => i,
            None => {
                let df = self.open_day(day)?;
                if w.days.len() >= CACHED_DAYS {
                    w.days.pop_front();
                }
                w.days.push_back(df);
                if w.newest.is_none_or(|n| day > n) {
                    w.newest = Some(day);
                    self.update_symlink(day);
                }
                w.days.len() - 1
            }
        };
        if let Some(df) = w.days.remove(idx) {
            let mut df = df;
            let res = if df.uids.contains(&uid) {
                Ok(())
            } else {
                df.file.write_all(line.as_bytes()).map(|_| {
                    df.uids.insert(uid);
                })
            };
            w.days.push_back(df);
            res.map_err(|e| io_err("append to", &self.host_dir.join(day_file_name(day)), e))?;
        }
        Ok(())
    }

    /// Day files of every host directory, by day.
    fn day_files(&self) -> Result<BTreeMap<NaiveDate, Vec<PathBuf>>> {
        let mut out: BTreeMap<NaiveDate, Vec<PathBuf>> = BTreeMap::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list", &self.dir, e)),
        };
        for host in rd.flatten() {
            let name = host.file_name().to_string_lossy().to_string();
            if NOT_HOSTS.contains(&name.as_str()) || name.starts_with('.') || !host.path().is_dir() {
                continue;
            }
            let Ok(files) = fs::read_dir(host.path()) else { continue };
            for f in files.flatten() {
                if let Some(day) = parse_day_file_name(&f.file_name().to_string_lossy()) {
                    out.entry(day).or_default().push(f.path());
                }
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        Ok(out)
    }

    fn search(&self, p: &SearchParams) -> Result<SearchPage> {
        if p.limit == 0 {
            return Err(EventsError::bad("search limit must be > 0"));
        }
        let (from, to) = (nanos(p.from), nanos(p.to));
        if from >= to {
            return Ok(SearchPage::default());
        }
        let cursor = p.cursor.as_deref().map(Key::decode).transpose()?;
        let asc = p.order == Order::Ascending;
        // An event lies in the file of its day, or (upstream files written by
        // wall clock) of the day after.
        let mut first = day_of_nanos(from);
        let mut last = day_of_nanos(to - 1).succ_opt().unwrap_or(NaiveDate::MAX);
        if let Some(c) = &cursor {
            if asc {
                first = first.max(day_of_nanos(c.0));
            } else {
                last = last.min(day_of_nanos(c.0).succ_opt().unwrap_or(NaiveDate::MAX));
            }
        }
        let all = self.day_files()?;
        let days: Vec<(&NaiveDate, &Vec<PathBuf>)> = all.range(first..=last).collect();
        let want = p.limit + 1;
        let mut page: BTreeMap<Key, String> = BTreeMap::new();
        let ordered: Box<dyn Iterator<Item = &(&NaiveDate, &Vec<PathBuf>)>> =
            if asc { Box::new(days.iter()) } else { Box::new(days.iter().rev()) };
        for (day, files) in ordered {
            // Ascending: the files left hold events at or after the start of
            // the day before theirs; descending: before the end of their day.
            let bound = day_start_nanos(**day);
            if page.len() >= want {
                let done = if asc {
                    page.keys().next_back().is_some_and(|k| k.0 < bound - 86_400 * 1_000_000_000)
                } else {
                    page.keys().next().is_some_and(|k| k.0 >= bound + 86_400 * 1_000_000_000)
                };
                if done {
                    break;
                }
            }
            for path in files.iter() {
                for_each_line(path, |n, line| {
                    let Some(h) = parse_head(path, n, line) else { return true };
                    let Some(k) = h.key(line) else { return true };
                    if k.0 < from || k.0 >= to {
                        return true;
                    }
                    if !p.event_types.is_empty()
                        && !p.event_types.iter().any(|t| Some(t.as_str()) == h.event.as_deref())
                    {
                        return true;
                    }
                    if let Some(c) = &cursor
                        && (if asc { k <= *c } else { k >= *c })
                    {
                        return true;
                    }
                    if page.len() >= want {
                        let worst = if asc { page.keys().next_back() } else { page.keys().next() };
                        if worst.is_some_and(|w| if asc { k >= *w } else { k <= *w }) {
                            return true;
                        }
                    }
                    page.insert(k, line.to_string());
                    if page.len() > want {
                        if asc {
                            page.pop_last();
                        } else {
                            page.pop_first();
                        }
                    }
                    true
                })?;
            }
        }
        let more = page.len() > p.limit;
        let mut entries: Vec<(Key, String)> = page.into_iter().collect();
        if !asc {
            entries.reverse();
        }
        entries.truncate(p.limit);
        let next = if more { entries.last().map(|(k, _)| k.encode()) } else { None };
        let events = entries.into_iter().filter_map(|(_, line)| serde_json::from_str::<Event>(&line).ok()).collect();
        Ok(SearchPage { events, next })
    }

    fn session_events(&self, sid: &str) -> Result<Vec<Event>> {
        let mut found: BTreeMap<(i64, i128, String), Event> = BTreeMap::new();
        for files in self.day_files()?.values() {
            for path in files {
                for_each_line(path, |n, line| {
                    if !line.contains(sid) {
                        return true;
                    }
                    let Some(h) = parse_head(path, n, line) else { return true };
                    if h.sid.as_deref() != Some(sid) {
                        return true;
                    }
                    if let (Some(k), Some(e)) = (h.key(line), parse_event(path, n, line)) {
                        found.insert((k.1, k.0, k.2), e);
                    }
                    true
                })?;
            }
        }
        Ok(found.into_values().collect())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EventsError::internal(format!("file audit log: task failed: {e}")))?
}

#[async_trait]
impl AuditLog for FileLog {
    fn name(&self) -> &'static str {
        "file"
    }

    fn describe(&self) -> String {
        format!("file://{}", self.inner.dir.display())
    }

    /// 64 KiB including the newline, so upstream's scanner reads every line.
    fn max_event_size(&self) -> usize {
        FILE_MAX_EVENT_SIZE - 1
    }

    async fn emit(&self, event: Event) -> Result<()> {
        event.check()?;
        let event = event.trimmed(self.max_event_size());
        // One short append; the first event of a day also reads that day's
        // uids, which is rare enough to do in place.
        self.inner.emit(&event)
    }

    async fn search(&self, params: &SearchParams) -> Result<SearchPage> {
        let inner = self.inner.clone();
        let params = params.clone();
        blocking(move || inner.search(&params)).await
    }

    async fn session_events(&self, sid: &str) -> Result<Vec<Event>> {
        if sid.is_empty() {
            return Err(EventsError::bad("session id is empty"));
        }
        let inner = self.inner.clone();
        let sid = sid.to_string();
        blocking(move || inner.session_events(&sid)).await
    }
}
