//! Output formats shared by commands: `--format text|json|yaml`, and the
//! printable form of a backend item.

use std::io::Write;
use std::time::SystemTime;

use base64::Engine;
use serde::Serialize;

use crate::backend::Item;

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// An item as printed in JSON and YAML.
#[derive(Debug, Serialize)]
pub struct ItemView {
    /// The key.
    pub key: String,
    /// The value: UTF-8 text as is, anything else in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `utf8` or `base64`: how `value` is encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<&'static str>,
    /// Value size in bytes.
    pub size: usize,
    /// Expiry in RFC 3339, or null.
    pub expires: Option<String>,
    /// The opaque revision.
    pub revision: String,
}

impl ItemView {
    /// The view of `item`, with or without its value.
    pub fn of(item: &Item, with_value: bool) -> ItemView {
        let (value, value_encoding) = if with_value {
            match std::str::from_utf8(&item.value) {
                Ok(s) => (Some(s.to_string()), Some("utf8")),
                Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(&item.value)), Some("base64")),
            }
        } else {
            (None, None)
        };
        ItemView {
            key: item.key.to_string_lossy(),
            value,
            value_encoding,
            size: item.value.len(),
            expires: item.expires.map(rfc3339),
            revision: item.revision.clone(),
        }
    }
}

/// RFC 3339 in UTC, with the fraction when there is one.
pub fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// RFC 3339 in UTC with milliseconds: a fixed width for tables.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes one YAML document for `v`, starting with `---` when not first.
pub fn write_yaml<W: Write, T: Serialize>(w: &mut W, v: &T) -> anyhow::Result<()> {
    let s = serde_norway::to_string(v)?;
    w.write_all(s.as_bytes())?;
    Ok(())
}

/// A text table as upstream's tctl prints them: a header row, a row of
/// dashes, then the rows, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$} ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

#[cfg(test)]
mod table_tests {
    #[test]
    fn columns_align() {
        let t = super::table(
            &["User", "Roles"],
            &[vec!["alice".into(), "access,editor".into()], vec!["bo".into(), "x".into()]],
        );
        assert_eq!(t, "User  Roles\n----- -------------\nalice access,editor\nbo    x\n");
    }
}
