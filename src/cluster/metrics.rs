//! A small metrics registry rendered in the Prometheus text exposition
//! format 0.0.4, served at `/metrics` by the diagnostics server. Part of the
//! runtime room; touches nothing outside it.
//!
//! Components register counters and gauges with fixed label names
//! (`teleport_auth_api_requests_total{method,code}`) and keep the handle;
//! updating a sample takes one short lock. Every rendering also carries
//! `teleport_build_info{version="..."} 1`, `process_start_time_seconds`
//! (when this registry was created, i.e. at process start) and
//! `process_uptime_seconds`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::ClusterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    samples: Mutex<BTreeMap<Vec<String>, f64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain numbers behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Family {
    fn update(&self, labels: &[&str], f: impl FnOnce(&mut f64)) {
        if labels.len() != self.labels.len() {
            tracing::warn!(
                metric = %self.name,
                "metric {} takes {} label value(s) ({}), got {}; sample dropped",
                self.name,
                self.labels.len(),
                self.labels.join(", "),
                labels.len()
            );
            return;
        }
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        f(lock(&self.samples).entry(key).or_insert(0.0));
    }

    fn get(&self, labels: &[&str]) -> f64 {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        lock(&self.samples).get(&key).copied().unwrap_or(0.0)
    }
}

/// A monotonically increasing count, per label values.
#[derive(Debug, Clone)]
pub struct Counter(Arc<Family>);

impl Counter {
    /// Adds 1 to the sample with these label values (in registration order).
    pub fn inc(&self, labels: &[&str]) {
        self.inc_by(labels, 1.0);
    }

    /// Adds `v` (negative or NaN values are ignored: counters only go up).
    pub fn inc_by(&self, labels: &[&str], v: f64) {
        if v >= 0.0 {
            self.0.update(labels, |x| *x += v);
        }
    }

    /// The current value (0 if never set).
    pub fn get(&self, labels: &[&str]) -> f64 {
        self.0.get(labels)
    }
}

/// A value that goes up and down, per label values.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Family>);

impl Gauge {
    /// Sets the sample.
    pub fn set(&self, labels: &[&str], v: f64) {
        self.0.update(labels, |x| *x = v);
    }

    /// Adds `v` (may be negative).
    pub fn add(&self, labels: &[&str], v: f64) {
        self.0.update(labels, |x| *x += v);
    }

    /// Adds 1.
    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    /// Subtracts 1.
    pub fn dec(&self, labels: &[&str]) {
        self.add(labels, -1.0);
    }

    /// The current value (0 if never set).
    pub fn get(&self, labels: &[&str]) -> f64 {
        self.0.get(labels)
    }
}

/// The registry.
#[derive(Debug)]
pub struct Metrics {
    version: String,
    started: SystemTime,
    started_instant: Instant,
    families: Mutex<BTreeMap<String, Arc<Family>>>,
}

/// Names the registry renders itself.
const BUILT_IN: &[&str] = &["teleport_build_info", "process_start_time_seconds", "process_uptime_seconds"];

impl Metrics {
    /// A registry for a process of this version, started now.
    pub fn new(version: &str) -> Metrics {
        Metrics {
            version: version.to_string(),
            started: SystemTime::now(),
            started_instant: Instant::now(),
            families: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers (or returns the already registered) counter `name` with
    /// these label names. Registering a name again with another kind or
    /// other labels is an error.
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Result<Counter, ClusterError> {
        self.register(name, help, Kind::Counter, labels).map(Counter)
    }

    /// Registers (or returns) gauge `name`; see [`Metrics::counter`].
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<Gauge, ClusterError> {
        self.register(name, help, Kind::Gauge, labels).map(Gauge)
    }

    fn register(&self, name: &str, help: &str, kind: Kind, labels: &[&str]) -> Result<Arc<Family>, ClusterError> {
        let bad = |message: String| ClusterError::Metric { name: name.to_string(), message };
        if !valid_metric_name(name) {
            return Err(bad("a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*".into()));
        }
        if BUILT_IN.contains(&name) {
            return Err(bad("this name is reserved for the registry's own metrics".into()));
        }
        for (i, l) in labels.iter().enumerate() {
            if !valid_label_name(l) || l.starts_with("__") {
                return Err(bad(format!(
                    "label {l:?}: a label name matches [a-zA-Z_][a-zA-Z0-9_]* without a leading __"
                )));
            }
            if labels[..i].contains(l) {
                return Err(bad(format!("label {l:?} is listed twice")));
            }
        }
        let mut families = lock(&self.families);
        if let Some(f) = families.get(name) {
            if f.kind != kind || f.labels != labels {
                return Err(bad(format!(
                    "already registered as a {} with labels [{}]",
                    f.kind.as_str(),
                    f.labels.join(", ")
                )));
            }
            return Ok(f.clone());
        }
        let f = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            samples: Mutex::new(BTreeMap::new()),
        });
        families.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// When the process (this registry) started.
    pub fn started_at(&self) -> SystemTime {
        self.started
    }

    /// Renders every metric in the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let start = self.started.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let uptime = self.started_instant.elapsed().as_secs_f64();
        header(&mut out, "teleport_build_info", "Build information of this teleport process.", Kind::Gauge);
        let _ = writeln!(out, "teleport_build_info{{version=\"{}\"}} 1", escape_label(&self.version));
        header(
            &mut out,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            Kind::Gauge,
        );
        let _ = writeln!(out, "process_start_time_seconds {}", value(start));
        header(&mut out, "process_uptime_seconds", "Seconds since the process started.", Kind::Gauge);
        let _ = writeln!(out, "process_uptime_seconds {}", value(uptime));

        let families: Vec<Arc<Family>> = lock(&self.families).values().cloned().collect();
        for f in families {
            header(&mut out, &f.name, &f.help, f.kind);
            for (values, v) in lock(&f.samples).iter() {
                out.push_str(&f.name);
                if !values.is_empty() {
                    out.push('{');
                    for (i, (name, val)) in f.labels.iter().zip(values).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{name}=\"{}\"", escape_label(val));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", value(*v));
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN`).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// Label values escape `\`, `"` and newline.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// HELP text escapes `\` and newline.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One parsed sample: name, labels in order, value.
    pub(crate) type Sample = (String, Vec<(String, String)>, f64);

    /// Checks `text` line by line against the exposition format: HELP and
    /// TYPE lines, then samples of declared families with valid names,
    /// properly escaped label values and parseable values. Returns the
    /// samples as (name, labels, value).
    pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        assert!(text.ends_with('\n'), "the text ends with a newline");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kw, name) = (parts.next().unwrap(), parts.next().unwrap());
                assert!(valid_metric_name(name), "bad name in {line:?}");
                match kw {
                    "HELP" => {}
                    "TYPE" => {
                        let t = parts.next().unwrap();
                        assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&t), "{line:?}");
                        assert!(types.insert(name.to_string(), t.to_string()).is_none(), "TYPE twice: {line:?}");
                    }
                    _ => panic!("unknown comment {line:?}"),
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value in {line:?}"));
            let name = &line[..name_end];
            assert!(valid_metric_name(name), "bad name in {line:?}");
            assert!(types.contains_key(name), "sample before its TYPE: {line:?}");
            let mut rest = &line[name_end..];
            let mut labels = Vec::new();
            if let Some(body) = rest.strip_prefix('{') {
                let mut pos = 0;
                loop {
                    let eq = pos + body[pos..].find('=').unwrap_or_else(|| panic!("no `=` in {line:?}"));
                    let lname = &body[pos..eq];
                    assert!(valid_label_name(lname), "bad label name {lname:?} in {line:?}");
                    assert!(body[eq + 1..].starts_with('"'), "unquoted value in {line:?}");
                    let mut val = String::new();
                    let mut it = body[eq + 2..].char_indices();
                    let end = loop {
                        let (i, c) = it.next().unwrap_or_else(|| panic!("unterminated value in {line:?}"));
                        match c {
                            '\\' => match it.next().map(|(_, c)| c) {
                                Some('\\') => val.push('\\'),
                                Some('"') => val.push('"'),
                                Some('n') => val.push('\n'),
                                o => panic!("bad escape {o:?} in {line:?}"),
                            },
                            '"' => break eq + 2 + i + 1,
                            c => val.push(c),
                        }
                    };
                    labels.push((lname.to_string(), val));
                    match body[end..].chars().next() {
                        Some(',') => pos = end + 1,
                        Some('}') => {
                            rest = &body[end + 1..];
                            break;
                        }
                        o => panic!("unexpected {o:?} in {line:?}"),
                    }
                }
            }
            let v = rest.strip_prefix(' ').unwrap_or_else(|| panic!("no space before the value in {line:?}"));
            let v: f64 = match v {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            samples.push((name.to_string(), labels, v));
        }
        samples
    }

    #[test]
    fn renders_valid_exposition_format() {
        let m = Metrics::new("1.2.3-\"odd\"");
        let c = m
            .counter(
                "teleport_auth_api_requests_total",
                "Auth API requests\nby method and code \\ result.",
                &["method", "code"],
            )
            .unwrap();
        c.inc(&["GET", "200"]);
        c.inc(&["GET", "200"]);
        c.inc_by(&["POST", "500"], 2.5);
        c.inc_by(&["POST", "500"], -1.0);
        c.inc(&["a\"b\\c\nd", ""]);
        c.inc(&["too", "many", "labels"]);
        let g = m.gauge("teleport_connected_nodes", "Nodes connected.", &[]).unwrap();
        g.set(&[], 3.0);
        g.dec(&[]);
        let odd = m.gauge("odd_values", "Special values.", &["k"]).unwrap();
        odd.set(&["nan"], f64::NAN);
        odd.set(&["inf"], f64::INFINITY);
        odd.set(&["-inf"], f64::NEG_INFINITY);

        let text = m.render();
        let samples = parse_exposition(&text);
        let find = |name: &str, labels: &[(&str, &str)]| {
            samples
                .iter()
                .find(|(n, l, _)| {
                    n == name && l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>() == labels
                })
                .map(|s| s.2)
                .unwrap_or_else(|| panic!("{name} {labels:?} not in\n{text}"))
        };
        assert_eq!(find("teleport_build_info", &[("version", "1.2.3-\"odd\"")]), 1.0);
        assert!(find("process_start_time_seconds", &[]) > 1.6e9);
        assert!(find("process_uptime_seconds", &[]) >= 0.0);
        assert_eq!(find("teleport_auth_api_requests_total", &[("method", "GET"), ("code", "200")]), 2.0);
        assert_eq!(find("teleport_auth_api_requests_total", &[("method", "POST"), ("code", "500")]), 2.5);
        assert_eq!(find("teleport_auth_api_requests_total", &[("method", "a\"b\\c\nd"), ("code", "")]), 1.0);
        assert_eq!(find("teleport_connected_nodes", &[]), 2.0);
        assert!(find("odd_values", &[("k", "nan")]).is_nan());
        assert_eq!(find("odd_values", &[("k", "-inf")]), f64::NEG_INFINITY);
        assert!(
            text.contains(
                "# HELP teleport_auth_api_requests_total Auth API requests\\nby method and code \\\\ result.\n"
            )
        );
        assert!(text.contains("# TYPE teleport_auth_api_requests_total counter\n"));
        assert_eq!(samples.iter().filter(|s| s.0 == "teleport_auth_api_requests_total").count(), 3, "{text}");
        assert_eq!(c.get(&["GET", "200"]), 2.0);
    }

    #[test]
    fn registration_rules() {
        let m = Metrics::new("v");
        let a = m.counter("x_total", "X.", &["a"]).unwrap();
        let b = m.counter("x_total", "X.", &["a"]).unwrap();
        a.inc(&["1"]);
        assert_eq!(b.get(&["1"]), 1.0, "registering again returns the same family");
        for (name, labels) in [
            ("x_total", &["b"][..]),
            ("1bad", &[][..]),
            ("bad-name", &[][..]),
            ("ok", &["__reserved"][..]),
            ("ok", &["a", "a"][..]),
            ("ok", &["bad-label"][..]),
            ("teleport_build_info", &[][..]),
        ] {
            let e = m.counter(name, "", labels).unwrap_err().to_string();
            assert!(e.starts_with(&format!("metric {name}:")), "{e}");
        }
        assert!(m.gauge("x_total", "", &["a"]).unwrap_err().to_string().contains("already registered as a counter"));
        assert!(valid_metric_name("a:b_c9") && !valid_metric_name("") && !valid_metric_name("é"));
    }
}
