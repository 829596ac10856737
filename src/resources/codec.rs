//! Reading and writing resource documents: multi-document YAML (separated by
//! `---`, as `tctl get all` writes) or JSON (one object, a list, or one
//! object per line). Every error names the source, the document's number and
//! the line it starts on.

use serde::Deserialize;

use super::{Resource, ResourceError};

/// A parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The resource.
    pub resource: Resource,
    /// 1-based position among the documents of the source.
    pub index: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

impl Document {
    /// "document 3 (line 45)".
    pub fn position(&self) -> String {
        format!("document {} (line {})", self.index, self.line)
    }
}

fn err(source: &str, index: usize, line: usize, message: impl std::fmt::Display) -> ResourceError {
    ResourceError::Parse(format!("{source}: document {index} (line {line}): {message}"))
}

/// Splits YAML text into documents at `---` lines, with their first line.
fn split_yaml(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            if let Some(rest) = trimmed.strip_prefix("--- ") {
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs
}

/// Adds `offset` to every "line N" in a parser message.
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

fn is_blank_yaml(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

/// Parses every resource document in `text`; `source` names it in errors.
pub fn parse(source: &str, text: &str) -> Result<Vec<Document>, ResourceError> {
    let first = text.trim_start().chars().next();
    let docs =
        if matches!(first, Some('{') | Some('[')) { parse_json(source, text)? } else { parse_yaml(source, text)? };
    if docs.is_empty() {
        return Err(ResourceError::Parse(format!("{source}: no resources found, empty input?")));
    }
    Ok(docs)
}

fn parse_yaml(source: &str, text: &str) -> Result<Vec<Document>, ResourceError> {
    let mut out = Vec::new();
    for (line, doc) in split_yaml(text) {
        if is_blank_yaml(&doc) {
            continue;
        }
        let index = out.len() + 1;
        let value: serde_json::Value = serde_norway::from_str(&doc).map_err(|e| {
            // Make the parser's lines absolute in the file.
            let msg = shift_lines(&e.to_string(), line - 1);
            err(source, index, line, msg)
        })?;
        out.push(document(source, index, line, value)?);
    }
    Ok(out)
}

fn parse_json(source: &str, text: &str) -> Result<Vec<Document>, ResourceError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    loop {
        // The line of the next value: after the whitespace that precedes it.
        let at = stream.byte_offset();
        let rest = &text[at..];
        let skipped = rest.len() - rest.trim_start().len();
        let line = text[..at + skipped].matches('\n').count() + 1;
        let Some(value) = stream.next() else { break };
        let value = value.map_err(|e| err(source, out.len() + 1, line, e))?;
        match value {
            serde_json::Value::Array(list) => {
                for v in list {
                    let index = out.len() + 1;
                    out.push(document(source, index, line, v)?);
                }
            }
            v => {
                let index = out.len() + 1;
                out.push(document(source, index, line, v)?);
            }
        }
    }
    Ok(out)
}

fn document(source: &str, index: usize, line: usize, value: serde_json::Value) -> Result<Document, ResourceError> {
    if !value.is_object() {
        return Err(err(source, index, line, "expected a resource (a mapping with kind, metadata and spec)"));
    }
    if value.get("kind").and_then(|k| k.as_str()).is_none_or(str::is_empty) {
        return Err(err(source, index, line, "missing `kind`"));
    }
    let resource = Resource::deserialize(&value).map_err(|e| err(source, index, line, e))?;
    Ok(Document { resource, index, line })
}

/// Writes resources as YAML documents separated by `---`.
pub fn to_yaml(resources: &[Resource]) -> Result<String, ResourceError> {
    let mut out = String::new();
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_norway::to_string(r).map_err(|e| r.invalid(format!("encode YAML: {e}")))?;
        out.push_str(&text);
    }
    Ok(out)
}

/// Writes resources as a JSON list (or one object for a single resource
/// when `single` is set).
pub fn to_json(resources: &[Resource], single: bool) -> Result<String, ResourceError> {
    let out = if single && resources.len() == 1 {
        serde_json::to_string_pretty(&resources[0])
    } else {
        serde_json::to_string_pretty(resources)
    };
    out.map_err(|e| ResourceError::Parse(format!("encode JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_with_positions() {
        let text = "# header\nkind: role\nversion: v7\nmetadata:\n  name: a\nspec: {}\n---\nkind: user\nmetadata:\n  name: b\n---\n# only a comment\n";
        let docs = parse("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].index, docs[0].line), (1, 1));
        assert_eq!((docs[1].resource.kind.as_str(), docs[1].line), ("user", 8));
        let e =
            parse("f.yaml", "kind: role\nmetadata:\n  name: a\n---\nkind: user\nmetadata: [unclosed\n").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("f.yaml: document 2 (line 5)") && m.contains("line 6"), "{m}");
        assert!(parse("f.yaml", "   \n# nothing\n").unwrap_err().to_string().contains("no resources found"));
        assert!(parse("f.yaml", "metadata:\n  name: x\n").unwrap_err().to_string().contains("missing `kind`"));
        assert!(parse("f.yaml", "- a\n- b\n").unwrap_err().to_string().contains("expected a resource"));
    }

    #[test]
    fn json_forms() {
        let one = parse("f.json", r#"{"kind":"role","metadata":{"name":"a"}}"#).unwrap();
        assert_eq!(one.len(), 1);
        let list =
            parse("f.json", r#"[{"kind":"role","metadata":{"name":"a"}},{"kind":"lock","metadata":{"name":"l"}}]"#)
                .unwrap();
        assert_eq!(list[1].resource.kind, "lock");
        let lines = parse(
            "f.json",
            "{\"kind\":\"role\",\"metadata\":{\"name\":\"a\"}}\n{\"kind\":\"role\",\"metadata\":{\"name\":\"b\"}}\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert!(parse("f.json", "{\"kind\":").is_err());
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let text = "kind: role\nversion: v7\nmetadata:\n  name: a\n  id: 12345\nspec:\n  allow:\n    logins: [root]\n  future_field: {x: 1}\nstatus:\n  whatever: true\n";
        let docs = parse("f.yaml", text).unwrap();
        let out = to_yaml(&[docs[0].resource.clone()]).unwrap();
        let again = parse("out.yaml", &out).unwrap();
        assert_eq!(again[0].resource, docs[0].resource);
        assert!(out.contains("future_field") && out.contains("status") && out.contains("id: 12345"), "{out}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,400}") {
            let _ = parse("fuzz", &text);
        }

        #[test]
        fn never_panics_on_mutated_documents(cut in 0usize..400, insert in "[-:{}\\[\\]#'\" \n a-z0-9]{0,12}") {
            let base = include_str!("../../tests/data/upstream-export-sample.yaml");
            let at = base.char_indices().map(|(i, _)| i).nth(cut * 17 % base.len()).unwrap_or(0);
            let text = format!("{}{}{}", &base[..at], insert, &base[at..]);
            if let Ok(docs) = parse("fuzz", &text) {
                for d in docs {
                    let mut r = d.resource;
                    if let Ok(info) = r.info() {
                        let _ = info.validate(&mut r);
                        let _ = crate::resources::store::items_for(info, &r);
                    }
                }
            }
        }
    }
}
