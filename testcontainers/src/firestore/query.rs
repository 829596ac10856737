//! Firestore values and structured queries as the test server evaluates
//! them: the cross-type value order, field paths, field/unary/composite
//! filters, implicit and explicit ordering, cursors, offset, limit and
//! projections. Pure functions over documents; no state.
//!
//! Semantics follow the public Firestore documentation
//! (<https://firebase.google.com/docs/firestore/manage-data/data-types#value_type_ordering>,
//! <https://firebase.google.com/docs/firestore/query-data/queries>):
//! values order null < booleans < numbers < timestamps < strings (UTF-8
//! bytes) < bytes < references < geo points < arrays < maps; a range or
//! equality filter only matches values of the operand's type class; a
//! filter or ordering on a field excludes documents without it; `!=` and
//! `NOT_IN` also exclude null; results are ordered by the explicit orders,
//! then by every inequality field not already ordered, then by the document
//! name in the direction of the last order.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::HashMap;

use fs::structured_query::{self as sq, composite_filter, field_filter, unary_filter};
use fs::value::ValueType;
use gcloud_sdk::google::firestore::v1 as fs;
use tonic::Status;

/// The pseudo-field naming the document itself.
pub(crate) const NAME_FIELD: &str = "__name__";

/// A stored document as queries see it: its full name and fields.
pub(crate) trait DocView<'a> {
    /// Full resource name (`projects/p/databases/d/documents/c/id`).
    fn name(&self) -> &'a str;
    /// Top-level fields.
    fn fields(&self) -> &'a HashMap<String, fs::Value>;
}

fn type_rank(v: &fs::Value) -> u8 {
    match &v.value_type {
        None | Some(ValueType::NullValue(_)) => 0,
        Some(ValueType::BooleanValue(_)) => 1,
        Some(ValueType::IntegerValue(_) | ValueType::DoubleValue(_)) => 2,
        Some(ValueType::TimestampValue(_)) => 3,
        Some(ValueType::StringValue(_)) => 4,
        Some(ValueType::BytesValue(_)) => 5,
        Some(ValueType::ReferenceValue(_)) => 6,
        Some(ValueType::GeoPointValue(_)) => 7,
        Some(ValueType::ArrayValue(_)) => 8,
        Some(ValueType::MapValue(_)) => 9,
        Some(_) => 10,
    }
}

fn is_null(v: &fs::Value) -> bool {
    type_rank(v) == 0
}

fn is_nan(v: &fs::Value) -> bool {
    matches!(v.value_type, Some(ValueType::DoubleValue(d)) if d.is_nan())
}

fn cmp_numbers(a: &ValueType, b: &ValueType) -> Ordering {
    match (a, b) {
        (ValueType::IntegerValue(x), ValueType::IntegerValue(y)) => x.cmp(y),
        _ => {
            let f = |v: &ValueType| match v {
                ValueType::IntegerValue(i) => *i as f64,
                ValueType::DoubleValue(d) => *d,
                _ => 0.0,
            };
            let (x, y) = (f(a), f(b));
            // NaN sorts before every other number.
            match (x.is_nan(), y.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            }
        }
    }
}

/// Firestore's total order over values (across types, then within a type).
pub(crate) fn cmp_values(a: &fs::Value, b: &fs::Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    let (Some(x), Some(y)) = (&a.value_type, &b.value_type) else {
        return Ordering::Equal;
    };
    match (x, y) {
        (ValueType::BooleanValue(p), ValueType::BooleanValue(q)) => p.cmp(q),
        (ValueType::TimestampValue(p), ValueType::TimestampValue(q)) => (p.seconds, p.nanos).cmp(&(q.seconds, q.nanos)),
        (ValueType::StringValue(p), ValueType::StringValue(q)) => p.as_bytes().cmp(q.as_bytes()),
        (ValueType::BytesValue(p), ValueType::BytesValue(q)) => p.cmp(q),
        (ValueType::ReferenceValue(p), ValueType::ReferenceValue(q)) => cmp_names(p, q),
        (ValueType::GeoPointValue(p), ValueType::GeoPointValue(q)) => p
            .latitude
            .partial_cmp(&q.latitude)
            .unwrap_or(Ordering::Equal)
            .then(p.longitude.partial_cmp(&q.longitude).unwrap_or(Ordering::Equal)),
        (ValueType::ArrayValue(p), ValueType::ArrayValue(q)) => {
            for (e, f) in p.values.iter().zip(&q.values) {
                let c = cmp_values(e, f);
                if c != Ordering::Equal {
                    return c;
                }
            }
            p.values.len().cmp(&q.values.len())
        }
        (ValueType::MapValue(p), ValueType::MapValue(q)) => {
            let mut pe: Vec<_> = p.fields.iter().collect();
            let mut qe: Vec<_> = q.fields.iter().collect();
            pe.sort_by(|l, r| l.0.cmp(r.0));
            qe.sort_by(|l, r| l.0.cmp(r.0));
            for ((pk, pv), (qk, qv)) in pe.iter().zip(&qe) {
                let c = pk.as_bytes().cmp(qk.as_bytes()).then_with(|| cmp_values(pv, qv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            pe.len().cmp(&qe.len())
        }
        _ if ra == 2 => cmp_numbers(x, y),
        _ => Ordering::Equal,
    }
}

/// Document names compare segment by segment.
pub(crate) fn cmp_names(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

fn equal(a: &fs::Value, b: &fs::Value) -> bool {
    type_rank(a) == type_rank(b) && !is_nan(a) && !is_nan(b) && cmp_values(a, b) == Ordering::Equal
}

/// Splits a field path into segments: `a.b` or `` `a.b`.c ``.
pub(crate) fn parse_field_path(path: &str) -> Result<Vec<String>, Status> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    if quoted || out.iter().any(String::is_empty) {
        return Err(Status::invalid_argument(format!("invalid field path {path:?}")));
    }
    Ok(out)
}

/// The value at `path` in a document (`__name__` is the document's name as
/// a reference value), or None when the field is missing.
pub(crate) fn lookup<'a>(doc: &dyn DocView<'a>, path: &str) -> Result<Option<Cow<'a, fs::Value>>, Status> {
    if path == NAME_FIELD {
        return Ok(Some(Cow::Owned(fs::Value { value_type: Some(ValueType::ReferenceValue(doc.name().to_string())) })));
    }
    if !path.contains(['.', '`']) {
        // A plain top-level field: no parsing, no copy.
        return Ok(doc.fields().get(path).map(Cow::Borrowed));
    }
    let segs = parse_field_path(path)?;
    let mut cur = doc.fields().get(&segs[0]);
    for seg in &segs[1..] {
        cur = match cur.and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::MapValue(m)) => m.fields.get(seg),
            _ => None,
        };
    }
    Ok(cur.map(Cow::Borrowed))
}

fn field_path(f: &Option<sq::FieldReference>) -> Result<&str, Status> {
    f.as_ref()
        .map(|f| f.field_path.as_str())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Status::invalid_argument("a filter or order names no field"))
}

/// Whether `doc` satisfies `filter`.
pub(crate) fn matches(filter: &sq::Filter, doc: &dyn DocView<'_>) -> Result<bool, Status> {
    use sq::filter::FilterType;
    match &filter.filter_type {
        None => Ok(true),
        Some(FilterType::CompositeFilter(c)) => {
            let op = composite_filter::Operator::try_from(c.op).unwrap_or(composite_filter::Operator::Unspecified);
            match op {
                composite_filter::Operator::And => {
                    for f in &c.filters {
                        if !matches(f, doc)? {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
                composite_filter::Operator::Or => {
                    for f in &c.filters {
                        if matches(f, doc)? {
                            return Ok(true);
                        }
                    }
                    Ok(c.filters.is_empty())
                }
                composite_filter::Operator::Unspecified => {
                    Err(Status::invalid_argument("composite filter without an operator"))
                }
            }
        }
        Some(FilterType::FieldFilter(f)) => field_matches(f, doc),
        Some(FilterType::UnaryFilter(u)) => {
            let Some(unary_filter::OperandType::Field(field)) = &u.operand_type else {
                return Err(Status::invalid_argument("unary filter without a field"));
            };
            let v = lookup(doc, &field.field_path)?;
            let v = v.as_deref();
            let op = unary_filter::Operator::try_from(u.op).unwrap_or(unary_filter::Operator::Unspecified);
            Ok(match op {
                unary_filter::Operator::IsNull => v.is_some_and(is_null),
                unary_filter::Operator::IsNotNull => v.is_some_and(|v| !is_null(v)),
                unary_filter::Operator::IsNan => v.is_some_and(is_nan),
                unary_filter::Operator::IsNotNan => v.is_some_and(|v| !is_nan(v) && !is_null(v)),
                unary_filter::Operator::Unspecified => {
                    return Err(Status::invalid_argument("unary filter without an operator"));
                }
            })
        }
    }
}

fn array_of(v: &fs::Value) -> Option<&[fs::Value]> {
    match &v.value_type {
        Some(ValueType::ArrayValue(a)) => Some(&a.values),
        _ => None,
    }
}

fn field_matches(f: &sq::FieldFilter, doc: &dyn DocView<'_>) -> Result<bool, Status> {
    use field_filter::Operator as Op;
    let operand = f.value.as_ref().ok_or_else(|| Status::invalid_argument("field filter without a value"))?;
    let op = Op::try_from(f.op).unwrap_or(Op::Unspecified);
    let Some(v) = lookup(doc, field_path(&f.field)?)? else {
        // A filter on a field excludes documents that lack it.
        return Ok(false);
    };
    let same_class = type_rank(&v) == type_rank(operand);
    let ordered = |want: &[Ordering]| same_class && !is_nan(&v) && want.contains(&cmp_values(&v, operand));
    Ok(match op {
        Op::LessThan => ordered(&[Ordering::Less]),
        Op::LessThanOrEqual => ordered(&[Ordering::Less, Ordering::Equal]),
        Op::GreaterThan => ordered(&[Ordering::Greater]),
        Op::GreaterThanOrEqual => ordered(&[Ordering::Greater, Ordering::Equal]),
        Op::Equal => equal(&v, operand),
        Op::NotEqual => !is_null(&v) && !equal(&v, operand),
        Op::In => {
            let list = array_of(operand).ok_or_else(|| Status::invalid_argument("IN needs an array value"))?;
            list.iter().any(|o| equal(&v, o))
        }
        Op::NotIn => {
            let list = array_of(operand).ok_or_else(|| Status::invalid_argument("NOT_IN needs an array value"))?;
            !is_null(&v) && !list.iter().any(|o| equal(&v, o))
        }
        Op::ArrayContains => array_of(&v).is_some_and(|a| a.iter().any(|e| equal(e, operand))),
        Op::ArrayContainsAny => {
            let list =
                array_of(operand).ok_or_else(|| Status::invalid_argument("ARRAY_CONTAINS_ANY needs an array value"))?;
            array_of(&v).is_some_and(|a| a.iter().any(|e| list.iter().any(|o| equal(e, o))))
        }
        Op::Unspecified => return Err(Status::invalid_argument("field filter without an operator")),
    })
}

fn inequality_fields(filter: &sq::Filter, out: &mut Vec<String>) {
    use field_filter::Operator as Op;
    use sq::filter::FilterType;
    match &filter.filter_type {
        Some(FilterType::CompositeFilter(c)) => c.filters.iter().for_each(|f| inequality_fields(f, out)),
        Some(FilterType::FieldFilter(f)) => {
            let op = Op::try_from(f.op).unwrap_or(Op::Unspecified);
            if matches!(
                op,
                Op::LessThan
                    | Op::LessThanOrEqual
                    | Op::GreaterThan
                    | Op::GreaterThanOrEqual
                    | Op::NotEqual
                    | Op::NotIn
            ) && let Some(r) = &f.field
                && !out.contains(&r.field_path)
            {
                out.push(r.field_path.clone());
            }
        }
        _ => {}
    }
}

/// The effective ordering: explicit orders, then inequality fields not yet
/// ordered (ascending, by name), then `__name__` in the last direction.
pub(crate) fn effective_orders(q: &fs::StructuredQuery) -> Result<Vec<(String, bool)>, Status> {
    let mut orders = Vec::new();
    for o in &q.order_by {
        let desc = match sq::Direction::try_from(o.direction).unwrap_or(sq::Direction::Unspecified) {
            sq::Direction::Descending => true,
            sq::Direction::Ascending | sq::Direction::Unspecified => false,
        };
        orders.push((field_path(&o.field)?.to_string(), desc));
    }
    let mut ineq = Vec::new();
    if let Some(w) = &q.r#where {
        inequality_fields(w, &mut ineq);
    }
    ineq.sort();
    for f in ineq {
        if !orders.iter().any(|(p, _)| *p == f) {
            orders.push((f, false));
        }
    }
    if !orders.iter().any(|(p, _)| p == NAME_FIELD) {
        let desc = orders.last().is_some_and(|(_, d)| *d);
        orders.push((NAME_FIELD.to_string(), desc));
    }
    Ok(orders)
}

/// A document's values for the ordered fields (borrowed where they can be);
/// None if it lacks one (such documents are not in the result).
pub(crate) type OrderKey<'a> = Vec<Cow<'a, fs::Value>>;

/// The order key of `doc` under `orders`.
pub(crate) fn order_key<'a>(doc: &dyn DocView<'a>, orders: &[(String, bool)]) -> Result<Option<OrderKey<'a>>, Status> {
    let mut out = Vec::with_capacity(orders.len());
    for (path, _) in orders {
        match lookup(doc, path)? {
            Some(v) => out.push(v),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Compares two order keys under the directions of `orders`.
pub(crate) fn cmp_keys<A: Borrow<fs::Value>, B: Borrow<fs::Value>>(
    a: &[A],
    b: &[B],
    orders: &[(String, bool)],
) -> Ordering {
    for ((x, y), (_, desc)) in a.iter().zip(b).zip(orders) {
        let c = cmp_values(x.borrow(), y.borrow());
        let c = if *desc { c.reverse() } else { c };
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

fn cursor_cmp(key: &[Cow<'_, fs::Value>], cursor: &fs::Cursor, orders: &[(String, bool)]) -> Ordering {
    let n = cursor.values.len().min(key.len());
    cmp_keys(&key[..n], &cursor.values[..n], &orders[..n])
}

/// Whether a document at `key` lies inside the query's cursors.
pub(crate) fn within_cursors(key: &[Cow<'_, fs::Value>], q: &fs::StructuredQuery, orders: &[(String, bool)]) -> bool {
    if let Some(start) = &q.start_at {
        let c = cursor_cmp(key, start, orders);
        // before=true: start AT the position (inclusive); false: AFTER it.
        if c == Ordering::Less || (c == Ordering::Equal && !start.before) {
            return false;
        }
    }
    if let Some(end) = &q.end_at {
        let c = cursor_cmp(key, end, orders);
        // before=true: end BEFORE the position (exclusive); false: AT it.
        if c == Ordering::Greater || (c == Ordering::Equal && end.before) {
            return false;
        }
    }
    true
}

/// Whether the document `name` is in the collection `sel` selects under
/// `parent` (a direct child, or any descendant with `all_descendants`).
pub(crate) fn in_collection(parent: &str, sel: &sq::CollectionSelector, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(parent).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    if sel.all_descendants {
        let segs: Vec<&str> = rest.split('/').collect();
        segs.len() >= 2 && segs[segs.len() - 2] == sel.collection_id
    } else {
        rest.strip_prefix(sel.collection_id.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    }
}

/// Checks the parts of a query this server does not evaluate.
pub(crate) fn check_supported(q: &fs::StructuredQuery) -> Result<(), Status> {
    if q.find_nearest.is_some() {
        return Err(Status::unimplemented("find_nearest (vector search) is not supported by this test server"));
    }
    if q.from.len() != 1 {
        return Err(Status::invalid_argument("a query selects exactly one collection"));
    }
    if q.offset < 0 || q.limit.is_some_and(|l| l < 0) {
        return Err(Status::invalid_argument("offset and limit must not be negative"));
    }
    Ok(())
}

/// Applies a projection to fields (`select`): only the listed top-level
/// fields are kept; an empty projection or only `__name__` keeps none.
pub(crate) fn project(
    fields: &HashMap<String, fs::Value>,
    select: &Option<sq::Projection>,
) -> HashMap<String, fs::Value> {
    match select {
        None => fields.clone(),
        Some(p) => fields
            .iter()
            .filter(|(k, _)| p.fields.iter().any(|f| f.field_path == **k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> fs::Value {
        fs::Value { value_type: Some(ValueType::IntegerValue(i)) }
    }
    fn s(x: &str) -> fs::Value {
        fs::Value { value_type: Some(ValueType::StringValue(x.into())) }
    }
    fn b(x: &[u8]) -> fs::Value {
        fs::Value { value_type: Some(ValueType::BytesValue(x.to_vec())) }
    }
    fn d(x: f64) -> fs::Value {
        fs::Value { value_type: Some(ValueType::DoubleValue(x)) }
    }

    #[test]
    fn cross_type_order_and_numbers() {
        assert_eq!(cmp_values(&int(5), &s("a")), Ordering::Less);
        assert_eq!(cmp_values(&s("zzz"), &b(b"a")), Ordering::Less);
        assert_eq!(cmp_values(&int(2), &d(2.5)), Ordering::Less);
        assert_eq!(cmp_values(&d(f64::NAN), &int(i64::MIN)), Ordering::Less);
        assert_eq!(cmp_values(&b(b"ab"), &b(b"b")), Ordering::Less);
        assert!(equal(&int(3), &d(3.0)));
        assert!(!equal(&d(f64::NAN), &d(f64::NAN)));
    }

    #[test]
    fn field_paths() {
        assert_eq!(parse_field_path("a.b").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_field_path("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert!(parse_field_path("a..b").is_err());
    }
}
