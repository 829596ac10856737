//! Backend keys: byte strings compared in plain byte order, with the upstream
//! helpers `Key::new` (`/a/b`), `Key::exact` (`/a/b/`, a prefix that does not
//! match `/a/bc`) and `range_end` (the smallest key above every key with a
//! given prefix).
//!
//! Keys used by the cluster start with `/`. Internal keys such as
//! `.locks/<name>` do not, and so sort before every `/` key.

use std::fmt;

/// The separator between key components.
pub const SEPARATOR: u8 = b'/';

/// A backend key. Keys are arbitrary bytes; in practice they are ASCII paths
/// such as `/web/users/alice/params`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key(Vec<u8>);

impl Key {
    /// `/` followed by the components joined with `/`: `Key::new(["a", "b"])`
    /// is `/a/b`; `Key::new([""])` is `/`.
    pub fn new<I, S>(components: I) -> Key
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        for c in components {
            out.push(SEPARATOR);
            out.extend_from_slice(c.as_ref());
        }
        if out.is_empty() {
            out.push(SEPARATOR);
        }
        Key(out)
    }

    /// Like [`Key::new`] but ending with a separator, for use as an exact
    /// prefix: `/roles/foo/` does not match `/roles/foobar`.
    pub fn exact<I, S>(components: I) -> Key
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut k = Key::new(components);
        if k.0.last() != Some(&SEPARATOR) {
            k.0.push(SEPARATOR);
        }
        k
    }

    /// An internal key (no leading separator), such as `.locks/<name>`.
    pub fn internal<I, S>(prefix: &str, components: I) -> Key
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut out = prefix.as_bytes().to_vec();
        for c in components {
            out.push(SEPARATOR);
            out.extend_from_slice(c.as_ref());
        }
        Key(out)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the key, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// True for the empty key, which no operation accepts.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if this key starts with `prefix`.
    pub fn has_prefix(&self, prefix: &Key) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// True if this is an internal key (it does not start with `/`).
    pub fn is_internal(&self) -> bool {
        self.0.first() != Some(&SEPARATOR)
    }

    /// The key with `suffix` appended (no separator added).
    pub fn join_raw(&self, suffix: &[u8]) -> Key {
        let mut v = self.0.clone();
        v.extend_from_slice(suffix);
        Key(v)
    }

    /// The smallest key greater than every key that has `self` as a prefix:
    /// the last byte below 0xff is incremented and the rest dropped, so
    /// `range_end("/")` is `"0"`. A key made only of 0xff bytes (or the empty
    /// key) has no such bound; [`Key::no_end`] is returned, which every
    /// store treats as "no upper bound".
    pub fn range_end(&self) -> Key {
        let mut v = self.0.clone();
        while let Some(last) = v.pop() {
            if last < 0xff {
                v.push(last + 1);
                return Key(v);
            }
        }
        Key::no_end()
    }

    /// The sentinel "no upper bound" key (a single NUL byte), as upstream.
    pub fn no_end() -> Key {
        Key(vec![0])
    }

    /// True for the [`Key::no_end`] sentinel.
    pub fn is_no_end(&self) -> bool {
        self.0 == [0]
    }

    /// The immediate successor of this key in byte order (the key with a NUL
    /// byte appended): the first key strictly greater than `self`.
    pub fn successor(&self) -> Key {
        self.join_raw(&[0])
    }

    /// The key as text, with invalid UTF-8 replaced (for messages and tables).
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The first component after the leading separator (`/web/users/a` ->
    /// `web`), used to group keys per top-level prefix in reports.
    pub fn top_level(&self) -> &[u8] {
        let rest = self.0.strip_prefix(b"/").unwrap_or(&self.0);
        match rest.iter().position(|b| *b == SEPARATOR) {
            Some(i) => &rest[..i],
            None => rest,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key(s.as_bytes().to_vec())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key(s.into_bytes())
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        Key(v)
    }
}

impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Key {
        Key(v.to_vec())
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_exact() {
        assert_eq!(Key::new(["web", "users", "joe", "params"]).to_string(), "/web/users/joe/params");
        assert_eq!(Key::new([""]).to_string(), "/");
        assert_eq!(Key::new(Vec::<&str>::new()).to_string(), "/");
        assert_eq!(Key::exact(["roles", "foo"]).to_string(), "/roles/foo/");
        assert!(!Key::from("/roles/foobar").has_prefix(&Key::exact(["roles", "foo"])));
        assert_eq!(Key::internal(".locks", ["c1"]).to_string(), ".locks/c1");
        assert!(Key::internal(".locks", ["c1"]) < Key::from("/"));
    }

    #[test]
    fn range_end_semantics() {
        assert_eq!(Key::from("/").range_end(), Key::from("0"));
        assert_eq!(Key::from("/a/b").range_end(), Key::from("/a/c"));
        assert_eq!(Key::from(vec![b'a', 0xff, 0xff]).range_end(), Key::from("b"));
        assert!(Key::from(vec![0xff, 0xff]).range_end().is_no_end());
        assert!(Key::default().range_end().is_no_end());
        // Every key with the prefix sorts below the end.
        let p = Key::from("/p/");
        for k in ["/p/", "/p/a", "/p/\u{7f}", "/p/zzzz"] {
            assert!(Key::from(k) < p.range_end());
        }
        assert!(Key::from("/q") >= p.range_end());
    }

    #[test]
    fn successor_is_next_key() {
        let k = Key::from("/a");
        assert!(k < k.successor());
        assert!(k.successor() < Key::from("/a/"));
        assert!(k.successor() < Key::from("/a\u{1}"));
    }

    #[test]
    fn top_level() {
        assert_eq!(Key::from("/web/users/a").top_level(), b"web");
        assert_eq!(Key::from("/tokens").top_level(), b"tokens");
        assert_eq!(Key::from(".locks/x").top_level(), b".locks");
    }
}
