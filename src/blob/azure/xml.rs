//! The Blob service's XML: List Blobs results and error bodies read into a
//! small element tree (tokenized by `xmlparser`, entities decoded here),
//! and the Put Block List body written.

use chrono::{DateTime, Utc};

/// An element: its name (without namespace prefix), attributes, child
/// elements and text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Attributes (local name, decoded value).
    pub attrs: Vec<(String, String)>,
    /// Child elements in order.
    pub children: Vec<Element>,
    /// Text and CDATA directly inside, decoded.
    pub text: String,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Decodes `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and `&#N;`/`&#xN;`.
pub fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or_else(|| format!("unterminated entity in {s:?}"))?;
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x").or_else(|| entity.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or_else(|| format!("unknown entity &{entity};"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a document into its root element.
pub fn parse(doc: &str) -> Result<Element, String> {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    // Azure's error bodies start with a byte order mark.
    for token in Tokenizer::from(doc.trim_start_matches('\u{feff}')) {
        let token = token.map_err(|e| format!("malformed XML: {e}"))?;
        match token {
            Token::ElementStart { local, .. } => {
                stack.push(Element { name: local.as_str().to_string(), ..Element::default() });
            }
            Token::Attribute { local, value, .. } => {
                if let Some(el) = stack.last_mut() {
                    el.attrs.push((local.as_str().to_string(), unescape(value.as_str())?));
                }
            }
            Token::ElementEnd { end: ElementEnd::Open, .. } => {}
            Token::ElementEnd { end: ElementEnd::Close(..) | ElementEnd::Empty, .. } => {
                let done = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Token::Text { text } => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&unescape(text.as_str())?);
                }
            }
            Token::Cdata { text, .. } => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(text.as_str());
                }
            }
            _ => {}
        }
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// One blob of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Full blob name.
    pub name: String,
    /// Content-Length.
    pub size: u64,
    /// Etag.
    pub etag: Option<String>,
    /// Last-Modified.
    pub modified: Option<DateTime<Utc>>,
    /// Metadata `sha256`.
    pub sha256: Option<String>,
}

/// A List Blobs page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Blobs in the service's order.
    pub blobs: Vec<ListedBlob>,
    /// `NextMarker`, when there are more.
    pub next_marker: Option<String>,
}

/// Parses an HTTP date (`Mon, 01 Jan 2024 00:00:00 GMT`).
pub fn http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s.trim()).ok().map(|d| d.with_timezone(&Utc))
}

/// Parses a List Blobs answer (`EnumerationResults`).
pub fn parse_list(doc: &str) -> Result<ListResult, String> {
    let root = parse(doc)?;
    if root.name != "EnumerationResults" {
        return Err(format!("expected EnumerationResults, got {}", root.name));
    }
    let mut out = ListResult {
        next_marker: root.text_of("NextMarker").map(str::trim).filter(|m| !m.is_empty()).map(str::to_string),
        ..ListResult::default()
    };
    let Some(blobs) = root.child("Blobs") else { return Ok(out) };
    for b in blobs.children.iter().filter(|c| c.name == "Blob") {
        let name_el = b.child("Name").ok_or("a Blob without a Name")?;
        // Names with characters XML cannot carry come percent-encoded.
        let name = if name_el.attr("Encoded") == Some("true") {
            crate::blob::uri::percent_decode(&name_el.text, false)
        } else {
            name_el.text.clone()
        };
        let props = b.child("Properties");
        let prop = |k: &str| props.and_then(|p| p.text_of(k)).map(str::trim).filter(|v| !v.is_empty());
        let size = match prop("Content-Length") {
            Some(v) => v.parse().map_err(|_| format!("{name}: Content-Length {v:?} is not a number"))?,
            None => 0,
        };
        out.blobs.push(ListedBlob {
            etag: prop("Etag").map(str::to_string),
            modified: prop("Last-Modified").and_then(http_date),
            sha256: b
                .child("Metadata")
                .and_then(|m| m.text_of(crate::blob::SHA256_METADATA))
                .map(|s| s.trim().to_string()),
            size,
            name,
        });
    }
    Ok(out)
}

/// An error body's `Code` and first line of `Message`.
pub fn parse_error(doc: &str) -> Option<(String, String)> {
    let root = parse(doc).ok()?;
    let code = root.text_of("Code").unwrap_or_default().trim().to_string();
    let message = root.text_of("Message").unwrap_or_default().lines().next().unwrap_or_default().trim().to_string();
    Some((code, message))
}

/// The Put Block List body committing `ids` (base64, XML-safe) in order.
pub fn block_list(ids: &[String]) -> String {
    let mut s = String::with_capacity(64 + ids.len() * 80);
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        s.push_str("<Latest>");
        s.push_str(id);
        s.push_str("</Latest>");
    }
    s.push_str("</BlockList>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="session">
  <Prefix>run/</Prefix><MaxResults>2</MaxResults>
  <Blobs>
    <Blob><Name>run/a &amp; b/日本.tar</Name>
      <Properties><Last-Modified>Mon, 01 Jan 2024 00:00:00 GMT</Last-Modified><Etag>0x8DC</Etag>
        <Content-Length>12</Content-Length><BlobType>BlockBlob</BlobType></Properties>
      <Metadata><sha256>abc</sha256></Metadata></Blob>
    <Blob><Name Encoded="true">run/%01x</Name><Properties><Content-Length>0</Content-Length></Properties><Metadata/></Blob>
  </Blobs>
  <NextMarker>2!88!MDAwMDI</NextMarker>
</EnumerationResults>"#;
        let r = parse_list(doc).unwrap();
        assert_eq!(r.blobs.len(), 2);
        assert_eq!(r.blobs[0].name, "run/a & b/日本.tar");
        assert_eq!((r.blobs[0].size, r.blobs[0].sha256.as_deref()), (12, Some("abc")));
        assert_eq!(r.blobs[0].modified.unwrap().to_rfc3339(), "2024-01-01T00:00:00+00:00");
        assert_eq!(r.blobs[1].name, "run/\u{1}x");
        assert_eq!(r.blobs[1].sha256, None);
        assert_eq!(r.next_marker.as_deref(), Some("2!88!MDAwMDI"));
        let last = parse_list("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").unwrap();
        assert!(last.blobs.is_empty() && last.next_marker.is_none());
        assert!(parse_list("<Error/>").is_err());
        assert!(parse_list("<EnumerationResults><Blobs>").is_err() || parse_list("<x").is_err());
    }

    #[test]
    fn errors_and_entities() {
        let e = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:1\nTime:2024</Message></Error>";
        assert_eq!(parse_error(e), Some(("BlobNotFound".into(), "The specified blob does not exist.".into())));
        assert_eq!(unescape("a&#x41;&#66;&lt;&gt;&quot;&apos;").unwrap(), "aAB<>\"'");
        assert!(unescape("&bogus;").is_err());
        assert_eq!(
            block_list(&["QQ==".into()]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QQ==</Latest></BlockList>"
        );
    }
}
