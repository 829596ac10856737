//! GOOGLE CLOUD connections shared by the stores that talk to Google Cloud
//! (a leaf: it may be used by `backend`, `events` and `blob`, and uses
//! nothing of the project but its own dependencies). Today: the Firestore
//! connection ([`firestore`]), used by `backend::firestore` and
//! `events::firestore`, and the credentials of the Cloud Storage JSON API
//! client ([`auth`]), used by `blob::gcs`.

#[cfg(feature = "gcs")]
pub mod auth;
#[cfg(feature = "firestore")]
pub mod firestore;

/// Percent-encodes everything but unreserved characters (RFC 3986): the
/// form Google's APIs want for a path segment (an object name, `/`
/// included) or a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_encoding() {
        assert_eq!(super::url_encode("a/b c+d%é"), "a%2Fb%20c%2Bd%25%C3%A9");
        assert_eq!(super::url_encode("my-project_1.x~"), "my-project_1.x~");
    }
}
