//! JSON <-> DynamoDB attribute values for the `FieldsMap` attribute (the
//! whole event as a map, as upstream's `dynamodbattribute.MarshalMap`
//! writes it), and the size DynamoDB charges for an item (to trim events
//! that would pass the 400 KB item limit). Pure functions; no I/O.
//!
//! Mapping: object <-> M, array <-> L, string <-> S (empty strings too),
//! number <-> N (its decimal text), bool <-> BOOL, null <-> NULL. Reading
//! is liberal: sets (SS, NS, BS) read as arrays and binary (B) as base64
//! text. DynamoDB normalises numbers, so `1.0` may read back as `1`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde_json::{Map, Number, Value};

/// A JSON value as an attribute value.
pub fn to_attr(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attr).collect()),
        Value::Object(o) => AttributeValue::M(to_map(o)),
    }
}

/// A JSON object as an attribute map.
pub fn to_map(o: &Map<String, Value>) -> HashMap<String, AttributeValue> {
    o.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()
}

/// The decimal text of an N attribute as a JSON number: an integer when it
/// is one, else a float; text that is neither stays a string.
pub fn number(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = text.parse::<u64>() {
        return Value::Number(u.into());
    }
    match text.parse::<f64>().ok().and_then(Number::from_f64) {
        Some(n) => Value::Number(n),
        None => Value::String(text.to_string()),
    }
}

/// An attribute value as JSON.
pub fn from_attr(a: &AttributeValue) -> Value {
    match a {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::N(n) => number(n),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::L(l) => Value::Array(l.iter().map(from_attr).collect()),
        AttributeValue::M(m) => Value::Object(from_map(m)),
        AttributeValue::Ss(ss) => Value::Array(ss.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(ns) => Value::Array(ns.iter().map(|n| number(n)).collect()),
        AttributeValue::B(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref())),
        AttributeValue::Bs(bs) => Value::Array(
            bs.iter().map(|b| Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))).collect(),
        ),
        _ => Value::Null,
    }
}

/// An attribute map as a JSON object (keys sorted, as `serde_json::Map`).
pub fn from_map(m: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), from_attr(v))).collect()
}

/// Bytes DynamoDB counts for a value (rules from "Item sizes and formats"
/// in the DynamoDB developer guide; numbers are counted generously).
pub fn value_size(a: &AttributeValue) -> usize {
    match a {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len() / 2 + 2,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len() / 2 + 2).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Bytes DynamoDB counts for an item: names plus values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trips() {
        let v = json!({
            "event": "exec", "ei": 7, "big": 18_446_744_073_709_551_615u64, "neg": -3, "f": 1.5,
            "ok": true, "none": null, "empty": "", "list": [1, "a", [], {}, null],
            "nested": {"addr.remote": "10.0.0.1:22", "deep": {"x": [false, {"y": ""}]}}, "obj": {}
        });
        let Value::Object(o) = &v else { unreachable!() };
        let back = Value::Object(from_map(&to_map(o)));
        assert_eq!(back, v);
        assert_eq!(number("1e3"), json!(1000.0));
        assert_eq!(number("12345678901234567890123"), json!(1.2345678901234568e22));
    }

    #[test]
    fn sizes_count_names_and_values() {
        let item = HashMap::from([
            ("S".to_string(), AttributeValue::S("abcd".into())),
            ("M".to_string(), AttributeValue::M(HashMap::from([("k".to_string(), AttributeValue::Bool(true))]))),
        ]);
        assert_eq!(item_size(&item), (1 + 4) + (1 + 3 + 1 + 1 + 1));
    }
}
