//! The unknown-field policy of teleport.yaml, and the small value parsers its
//! sections share. Part of the config leaf; touches nothing else in the crate.
//!
//! A section ([`Section`]) is a serde struct with `deny_unknown_fields`
//! read through [`section`], which looks at every key before the struct
//! does:
//! - a field the struct has is handed to it (errors keep their line);
//! - a field upstream defines but this build does not implement (listed in
//!   [`Section::UPSTREAM_ONLY`]) is skipped and recorded, so the loader can
//!   warn about it once;
//! - any other key is an error naming the dotted path and, when a known
//!   field is close (edit distance) or the key belongs to another section,
//!   what was probably meant.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};

/// A teleport.yaml section read with the unknown-field policy.
pub trait Section: for<'de> Deserialize<'de> + Default {
    /// The section's dotted path (`auth_service`, `teleport.log`); empty at the top.
    const PATH: &'static str;
    /// Fields upstream defines in this section that this build accepts and ignores.
    const UPSTREAM_ONLY: &'static [&'static str];
    /// Where the skipped upstream fields are recorded (dotted paths).
    fn ignored_mut(&mut self) -> &mut Vec<String>;
    /// For a key that is not a field here: the section it belongs to, if any.
    fn belongs_elsewhere(_key: &str) -> Option<&'static str> {
        None
    }
}

/// Deserializes a section (a mapping, or null for all defaults) with the
/// unknown-field policy. Use as `#[serde(deserialize_with = "section")]`.
pub fn section<'de, D: Deserializer<'de>, T: Section>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(SectionVisitor::<T>(std::marker::PhantomData))
}

struct SectionVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Section> Visitor<'de> for SectionVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if T::PATH.is_empty() { f.write_str("a mapping of sections") } else { write!(f, "the `{}` mapping", T::PATH) }
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let fields = struct_fields::<T>();
        let mut ignored = Vec::new();
        let checked = Checked::<A, T> { inner: map, fields, ignored: &mut ignored, _t: std::marker::PhantomData };
        let mut out = T::deserialize(de::value::MapAccessDeserializer::new(checked))?;
        out.ignored_mut().extend(ignored);
        Ok(out)
    }
}

struct Checked<'a, A, T> {
    inner: A,
    fields: &'static [&'static str],
    ignored: &'a mut Vec<String>,
    _t: std::marker::PhantomData<T>,
}

enum KeyOut<V> {
    Field(V),
    Upstream(&'static str),
}

struct KeySeed<'a, K, T> {
    seed: &'a mut Option<K>,
    fields: &'static [&'static str],
    _t: std::marker::PhantomData<T>,
}

impl<'de, K: DeserializeSeed<'de>, T: Section> DeserializeSeed<'de> for KeySeed<'_, K, T> {
    type Value = KeyOut<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>, T: Section> Visitor<'de> for KeySeed<'_, K, T> {
    type Value = KeyOut<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if self.fields.contains(&v) {
            let seed = self.seed.take().ok_or_else(|| E::custom("internal error: field seed used twice"))?;
            return seed.deserialize(v.into_deserializer()).map(KeyOut::Field);
        }
        if let Some(name) = T::UPSTREAM_ONLY.iter().find(|f| **f == v) {
            return Ok(KeyOut::Upstream(name));
        }
        Err(E::custom(unknown_field_message::<T>(self.fields, v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.visit_str(if v { "true" } else { "false" })
    }
}

impl<'de, A: MapAccess<'de>, T: Section> MapAccess<'de> for Checked<'_, A, T> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            let key = KeySeed::<K, T> { seed: &mut seed, fields: self.fields, _t: std::marker::PhantomData };
            match self.inner.next_key_seed(key)? {
                None => return Ok(None),
                Some(KeyOut::Field(v)) => return Ok(Some(v)),
                Some(KeyOut::Upstream(name)) => {
                    self.inner.next_value::<IgnoredAny>()?;
                    self.ignored.push(join(T::PATH, name));
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// "unknown field `auth_service.listn_addr` (did you mean `listen_addr`?)".
fn unknown_field_message<T: Section>(fields: &[&str], key: &str) -> String {
    let full = join(T::PATH, key);
    let hint = if let Some(best) = closest(key, fields.iter().chain(T::UPSTREAM_ONLY).copied()) {
        format!(" (did you mean `{best}`?)")
    } else if let Some(other) = T::belongs_elsewhere(key) {
        format!(" (`{key}` belongs in `{other}`, not here)")
    } else {
        let here = if T::PATH.is_empty() { "at the top level".to_string() } else { format!("in `{}`", T::PATH) };
        format!("; the fields {here} are: {}", fields.join(", "))
    };
    format!("unknown field `{full}`{hint}")
}

/// The candidate closest to `key` by edit distance, if it is close enough
/// to be a typo (at most 1 edit for short names, a third of the length for
/// long ones, never more than 3), or differs only in case.
pub fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    let lower = key.to_ascii_lowercase();
    candidates
        .map(|c| (if c.eq_ignore_ascii_case(key) { 0 } else { edit_distance(&lower, c) }, c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The serialized field names of a derived struct, read from what its
/// `Deserialize` impl passes to `deserialize_struct`.
pub(crate) fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field probe")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Stop {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A scalar read as text: strings, numbers and booleans (YAML writes
/// `port: 3025` and `env: 1` without quotes; upstream reads them as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        parse_scalar(d, "a string", |s| Ok(Scalar(s.to_string())))
    }
}

/// Reads a scalar as text and parses it with `parse`. The parse runs inside
/// the parser's callback, so its error carries the value's line and path.
pub fn parse_scalar<'de, D, T, F>(d: D, what: &'static str, parse: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct V<F>(F, &'static str);
    impl<'a, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'a> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            self.visit_str(if v { "true" } else { "false" })
        }
    }
    d.deserialize_any(V(parse, what))
}

/// One value or a list of values (`public_addr: a:3080` or `[a:3080, b:3080]`).
pub fn one_or_many<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    // Read by shape rather than with an untagged enum, which would lose the
    // element's own error message and line.
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a value or a list of values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            T::deserialize(v.into_deserializer()).map(|t| vec![t])
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
            self.visit_str(&v.to_string())
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// Parses upstream's boolean words: true/false, yes/no, on/off, y/n, 1/0.
pub fn parse_bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `enabled: yes` / `enabled: true` / `enabled: "no"`: a YAML boolean or one
/// of upstream's boolean words. Null means "not set".
pub fn bool_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("yes, no, true or false")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<bool>, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<bool>, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<bool>, E> {
            parse_bool_word(v)
                .map(Some)
                .ok_or_else(|| E::custom(format!("{v:?} is not a boolean; use yes, no, true or false")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestions() {
        assert_eq!(edit_distance("listn_addr", "listen_addr"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        let fields = ["listen_addr", "public_addr", "enabled"];
        assert_eq!(closest("listn_addr", fields.iter().copied()), Some("listen_addr"));
        assert_eq!(closest("ENABLED", fields.iter().copied()), Some("enabled"));
        assert_eq!(closest("storage", fields.iter().copied()), None);
        assert_eq!(closest("ab", ["cd"].iter().copied()), None);
    }

    #[test]
    fn bool_words() {
        for (w, b) in [("yes", true), ("No", false), ("true", true), ("off", false), ("1", true)] {
            assert_eq!(parse_bool_word(w), Some(b), "{w}");
        }
        assert_eq!(parse_bool_word("maybe"), None);
    }
}
