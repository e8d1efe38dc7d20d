//! Chroma-compatible `where` (metadata) and `where_document` filters: parsing from JSON with
//! validation, and evaluation against one record. See docs/api-v1.md, "Filters".

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::types::{MetaValue, Metadata, Scalar};

/// Deepest `$and`/`$or` nesting accepted. Parsing and evaluation recurse, so an unbounded
/// filter from a request could exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Longest string operand quoted verbatim in an error message.
const MAX_QUOTED_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("Invalid where clause: {0}")]
    Where(String),
    #[error("Invalid where_document clause: {0}")]
    WhereDocument(String),
    // "errror" is Chroma's own spelling; clients match on it.
    #[error("Regex syntax errror: {0}")]
    Regex(String),
}

/// A parsed metadata filter.
#[derive(Debug, Clone)]
pub enum Where {
    And(Vec<Where>),
    Or(Vec<Where>),
    Cmp { key: String, op: MetaOp },
}

/// A comparison of one metadata key against an operand.
#[derive(Debug, Clone)]
pub enum MetaOp {
    Eq(Scalar),
    Ne(Scalar),
    Gt(Scalar),
    Gte(Scalar),
    Lt(Scalar),
    Lte(Scalar),
    In(Vec<Scalar>),
    Nin(Vec<Scalar>),
    Contains(Scalar),
    NotContains(Scalar),
}

/// A parsed document filter.
#[derive(Debug, Clone)]
pub enum WhereDocument {
    And(Vec<WhereDocument>),
    Or(Vec<WhereDocument>),
    Contains(String),
    NotContains(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

impl Where {
    /// `null` or `{}` -> Ok(None).
    pub fn parse(v: &Value) -> Result<Option<Where>, FilterError> {
        match v {
            Value::Null => Ok(None),
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Object(m) => parse_where_object(m, 1).map(Some),
            other => Err(where_err(format!(
                "expected an object, got {}",
                describe(other)
            ))),
        }
    }

    /// Evaluate against one record's metadata (None = record has no metadata).
    pub fn matches(&self, md: Option<&Metadata>) -> bool {
        match self {
            Where::And(children) => children.iter().all(|c| c.matches(md)),
            Where::Or(children) => children.iter().any(|c| c.matches(md)),
            Where::Cmp { key, op } => op.eval(md.and_then(|m| m.get(key))),
        }
    }
}

impl MetaOp {
    /// true for $ne/$nin/$not_contains: they also match records lacking the key
    pub fn is_negative(&self) -> bool {
        matches!(
            self,
            MetaOp::Ne(_) | MetaOp::Nin(_) | MetaOp::NotContains(_)
        )
    }

    fn eval(&self, stored: Option<&MetaValue>) -> bool {
        let scalar = match stored {
            Some(MetaValue::Scalar(s)) => Some(s),
            _ => None,
        };
        let in_range = |operand: &Scalar, ok: fn(Ordering) -> bool| {
            scalar.and_then(|s| numeric_cmp(s, operand)).is_some_and(ok)
        };
        match self {
            MetaOp::Eq(x) => scalar.is_some_and(|s| scalar_eq(s, x)),
            MetaOp::Ne(x) => !scalar.is_some_and(|s| scalar_eq(s, x)),
            MetaOp::Gt(x) => in_range(x, Ordering::is_gt),
            MetaOp::Gte(x) => in_range(x, Ordering::is_ge),
            MetaOp::Lt(x) => in_range(x, Ordering::is_lt),
            MetaOp::Lte(x) => in_range(x, Ordering::is_le),
            MetaOp::In(xs) => scalar.is_some_and(|s| xs.iter().any(|x| scalar_eq(s, x))),
            MetaOp::Nin(xs) => !scalar.is_some_and(|s| xs.iter().any(|x| scalar_eq(s, x))),
            MetaOp::Contains(x) => list_contains(stored, x),
            MetaOp::NotContains(x) => !list_contains(stored, x),
        }
    }
}

impl WhereDocument {
    /// `null` or `{}` -> Ok(None).
    pub fn parse(v: &Value) -> Result<Option<WhereDocument>, FilterError> {
        match v {
            Value::Null => Ok(None),
            Value::Object(m) if m.is_empty() => Ok(None),
            other => parse_doc(other, 1).map(Some),
        }
    }

    /// Evaluate against one record's document (None = record has no document).
    pub fn matches(&self, doc: Option<&str>) -> bool {
        match self {
            WhereDocument::And(children) => children.iter().all(|c| c.matches(doc)),
            WhereDocument::Or(children) => children.iter().any(|c| c.matches(doc)),
            WhereDocument::Contains(s) => doc.is_some_and(|d| d.contains(s.as_str())),
            WhereDocument::NotContains(s) => !doc.is_some_and(|d| d.contains(s.as_str())),
            WhereDocument::Regex(re) => doc.is_some_and(|d| re.is_match(d)),
            WhereDocument::NotRegex(re) => !doc.is_some_and(|d| re.is_match(d)),
        }
    }
}

fn where_err(msg: String) -> FilterError {
    FilterError::Where(msg)
}

fn doc_err(msg: String) -> FilterError {
    FilterError::WhereDocument(msg)
}

fn parse_where_object(m: &Map<String, Value>, depth: usize) -> Result<Where, FilterError> {
    if depth > MAX_DEPTH {
        return Err(where_err(format!(
            "filter is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if m.is_empty() {
        return Err(where_err(
            "nested where objects must not be empty".to_string(),
        ));
    }
    let mut clauses = m
        .iter()
        .map(|(k, v)| parse_where_entry(k, v, depth))
        .collect::<Result<Vec<_>, _>>()?;
    if clauses.len() == 1 {
        // Non-empty was checked above, so pop always yields the single clause.
        if let Some(only) = clauses.pop() {
            return Ok(only);
        }
    }
    Ok(Where::And(clauses))
}

fn parse_where_entry(key: &str, v: &Value, depth: usize) -> Result<Where, FilterError> {
    match key {
        "$and" => parse_where_list(key, v, depth).map(Where::And),
        "$or" => parse_where_list(key, v, depth).map(Where::Or),
        "" => Err(where_err("metadata key must not be empty".to_string())),
        k if k.starts_with('$') => Err(where_err(format!(
            "unknown operator {k} (top-level keys must be $and, $or or a metadata key)"
        ))),
        k => Ok(Where::Cmp {
            key: k.to_string(),
            op: parse_meta_op(k, v)?,
        }),
    }
}

fn parse_where_list(op: &str, v: &Value, depth: usize) -> Result<Vec<Where>, FilterError> {
    let items = match v {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => {
            return Err(where_err(format!(
                "{op} expects a non-empty array of where objects, got an empty array"
            )))
        }
        other => {
            return Err(where_err(format!(
                "{op} expects a non-empty array of where objects, got {}",
                describe(other)
            )))
        }
    };
    items
        .iter()
        .map(|item| match item {
            Value::Object(m) => parse_where_object(m, depth + 1),
            other => Err(where_err(format!(
                "elements of {op} must be where objects, got {}",
                describe(other)
            ))),
        })
        .collect()
}

fn parse_meta_op(key: &str, v: &Value) -> Result<MetaOp, FilterError> {
    let ops = match v {
        Value::Object(ops) => ops,
        Value::Array(_) | Value::Null => {
            return Err(where_err(format!(
                "value for key \"{}\" must be a string, number, boolean or operator object, got {}",
                truncate(key),
                describe(v)
            )))
        }
        scalar => return scalar_operand("$eq", scalar).map(MetaOp::Eq),
    };
    let mut entries = ops.iter();
    let (op, operand) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => {
            return Err(where_err(format!(
                "operator object for key \"{}\" must have exactly one operator, got {}",
                truncate(key),
                ops.len()
            )))
        }
    };
    match op.as_str() {
        "$eq" => scalar_operand(op, operand).map(MetaOp::Eq),
        "$ne" => scalar_operand(op, operand).map(MetaOp::Ne),
        "$gt" => number_operand(op, operand).map(MetaOp::Gt),
        "$gte" => number_operand(op, operand).map(MetaOp::Gte),
        "$lt" => number_operand(op, operand).map(MetaOp::Lt),
        "$lte" => number_operand(op, operand).map(MetaOp::Lte),
        "$in" => list_operand(op, operand).map(MetaOp::In),
        "$nin" => list_operand(op, operand).map(MetaOp::Nin),
        "$contains" => scalar_operand(op, operand).map(MetaOp::Contains),
        "$not_contains" => scalar_operand(op, operand).map(MetaOp::NotContains),
        other => Err(where_err(format!("unknown operator {}", truncate(other)))),
    }
}

/// `None` for null, arrays and objects.
fn to_scalar(v: &Value) -> Option<Scalar> {
    match v {
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Scalar::Int(i)),
            // as_f64 can only fail with serde_json's arbitrary_precision feature.
            None => n.as_f64().map(Scalar::Float),
        },
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn scalar_operand(op: &str, v: &Value) -> Result<Scalar, FilterError> {
    to_scalar(v).ok_or_else(|| {
        where_err(format!(
            "operator {op} expects a string, number or boolean, got {}",
            describe(v)
        ))
    })
}

fn number_operand(op: &str, v: &Value) -> Result<Scalar, FilterError> {
    match to_scalar(v) {
        Some(s @ (Scalar::Int(_) | Scalar::Float(_))) => Ok(s),
        _ => Err(where_err(format!(
            "operator {op} expects a number, got {}",
            describe(v)
        ))),
    }
}

fn list_operand(op: &str, v: &Value) -> Result<Vec<Scalar>, FilterError> {
    let Value::Array(items) = v else {
        return Err(where_err(format!(
            "operator {op} expects an array of strings, numbers or booleans, got {}",
            describe(v)
        )));
    };
    items
        .iter()
        .map(|item| {
            to_scalar(item).ok_or_else(|| {
                where_err(format!(
                    "operator {op} expects an array of strings, numbers or booleans, got an element {}",
                    describe(item)
                ))
            })
        })
        .collect()
}

fn parse_doc(v: &Value, depth: usize) -> Result<WhereDocument, FilterError> {
    if depth > MAX_DEPTH {
        return Err(doc_err(format!(
            "filter is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let Value::Object(m) = v else {
        return Err(doc_err(format!("expected an object, got {}", describe(v))));
    };
    let mut entries = m.iter();
    let (op, operand) = match (entries.next(), entries.next()) {
        (Some(entry), None) => entry,
        _ => {
            return Err(doc_err(format!(
                "expected an object with exactly one operator, got {} keys",
                m.len()
            )))
        }
    };
    match op.as_str() {
        "$contains" => doc_string(op, operand).map(|s| WhereDocument::Contains(s.to_string())),
        "$not_contains" => {
            doc_string(op, operand).map(|s| WhereDocument::NotContains(s.to_string()))
        }
        "$regex" => doc_regex(op, operand).map(WhereDocument::Regex),
        "$not_regex" => doc_regex(op, operand).map(WhereDocument::NotRegex),
        "$and" => parse_doc_list(op, operand, depth).map(WhereDocument::And),
        "$or" => parse_doc_list(op, operand, depth).map(WhereDocument::Or),
        other => Err(doc_err(format!(
            "unknown operator {} (expected $contains, $not_contains, $regex, $not_regex, $and or $or)",
            truncate(other)
        ))),
    }
}

fn doc_string<'a>(op: &str, v: &'a Value) -> Result<&'a str, FilterError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(doc_err(format!(
            "operator {op} expects a string, got {}",
            describe(other)
        ))),
    }
}

fn doc_regex(op: &str, v: &Value) -> Result<regex::Regex, FilterError> {
    let pattern = doc_string(op, v)?;
    regex::Regex::new(pattern).map_err(|e| FilterError::Regex(e.to_string()))
}

fn parse_doc_list(op: &str, v: &Value, depth: usize) -> Result<Vec<WhereDocument>, FilterError> {
    match v {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| parse_doc(item, depth + 1))
            .collect(),
        Value::Array(_) => Err(doc_err(format!(
            "{op} expects a non-empty array of where_document objects, got an empty array"
        ))),
        other => Err(doc_err(format!(
            "{op} expects a non-empty array of where_document objects, got {}",
            describe(other)
        ))),
    }
}

fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Str(x), Scalar::Str(y)) => x == y,
        (Scalar::Bool(x), Scalar::Bool(y)) => x == y,
        _ => numeric_cmp(a, b) == Some(Ordering::Equal),
    }
}

/// A stored value against an operand; `None` unless both are numbers (or either is NaN).
/// Chroma's rules: an int operand compares with float values as a float, and a float
/// operand compares with int values truncated towards zero (`3 >= 3.4`, `$eq 3.5`
/// matches 3).
fn numeric_cmp(stored: &Scalar, operand: &Scalar) -> Option<Ordering> {
    // Int vs Int stays in i64 so large values are not rounded through f64.
    match (stored, operand) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Int(x), Scalar::Float(y)) => {
            if y.is_finite() {
                Some(x.cmp(&(y.trunc() as i64)))
            } else {
                (*x as f64).partial_cmp(y)
            }
        }
        (Scalar::Float(x), Scalar::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Scalar::Float(x), Scalar::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// The integer a fractional float operand stands for when compared with int values.
pub fn truncated_operand(operand: &Scalar) -> Option<i64> {
    match operand {
        Scalar::Float(f) if f.is_finite() && f.fract() != 0.0 => Some(f.trunc() as i64),
        _ => None,
    }
}

/// `$contains` on a list matches an element of the operand's own type only (`[1, 2]`
/// contains 1, not 1.0), as in Chroma.
pub fn same_typed(item: &Scalar, x: &Scalar) -> bool {
    match (item, x) {
        (Scalar::Int(a), Scalar::Int(b)) => a == b,
        (Scalar::Float(a), Scalar::Float(b)) => a == b,
        (Scalar::Str(a), Scalar::Str(b)) => a == b,
        (Scalar::Bool(a), Scalar::Bool(b)) => a == b,
        _ => false,
    }
}

fn list_contains(stored: Option<&MetaValue>, x: &Scalar) -> bool {
    match stored {
        Some(MetaValue::List(items)) => items.iter().any(|item| same_typed(item, x)),
        _ => false,
    }
}

/// Render a JSON value for an error message without recursing into (possibly huge or deeply
/// nested) containers.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(truncate(s)).to_string(),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(v: Value) -> Where {
        match Where::parse(&v) {
            Ok(Some(w)) => w,
            other => panic!("expected a filter for {v}, got {other:?}"),
        }
    }

    fn where_error(v: Value) -> String {
        match Where::parse(&v) {
            Err(e @ FilterError::Where(_)) => e.to_string(),
            other => panic!("expected a where error for {v}, got {other:?}"),
        }
    }

    fn d(v: Value) -> WhereDocument {
        match WhereDocument::parse(&v) {
            Ok(Some(d)) => d,
            other => panic!("expected a document filter for {v}, got {other:?}"),
        }
    }

    fn doc_error(v: Value) -> FilterError {
        match WhereDocument::parse(&v) {
            Err(e) => e,
            other => panic!("expected an error for {v}, got {other:?}"),
        }
    }

    fn md(v: Value) -> Metadata {
        serde_json::from_value(v).expect("test metadata must deserialize")
    }

    /// Whether filter `f` matches metadata `m`.
    fn hit(f: Value, m: Value) -> bool {
        w(f).matches(Some(&md(m)))
    }

    #[test]
    fn metadata_helper_keeps_int_and_float_apart() {
        let m = md(json!({"i": 5, "f": 5.5, "l": [1, 2]}));
        assert_eq!(m["i"], MetaValue::Scalar(Scalar::Int(5)));
        assert_eq!(m["f"], MetaValue::Scalar(Scalar::Float(5.5)));
        assert_eq!(
            m["l"],
            MetaValue::List(vec![Scalar::Int(1), Scalar::Int(2)])
        );
    }

    #[test]
    fn null_and_empty_object_are_no_filter() {
        assert!(Where::parse(&Value::Null).unwrap().is_none());
        assert!(Where::parse(&json!({})).unwrap().is_none());
        assert!(WhereDocument::parse(&Value::Null).unwrap().is_none());
        assert!(WhereDocument::parse(&json!({})).unwrap().is_none());
    }

    #[test]
    fn scalar_shorthand_is_eq() {
        match w(json!({"color": "red"})) {
            Where::Cmp {
                key,
                op: MetaOp::Eq(Scalar::Str(s)),
            } => {
                assert_eq!(key, "color");
                assert_eq!(s, "red");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            w(json!({"n": 3})),
            Where::Cmp {
                op: MetaOp::Eq(Scalar::Int(3)),
                ..
            }
        ));
        assert!(matches!(
            w(json!({"n": 3.5})),
            Where::Cmp {
                op: MetaOp::Eq(Scalar::Float(f)),
                ..
            } if f == 3.5
        ));
        assert!(matches!(
            w(json!({"b": true})),
            Where::Cmp {
                op: MetaOp::Eq(Scalar::Bool(true)),
                ..
            }
        ));
        assert!(hit(json!({"color": "red"}), json!({"color": "red"})));
        assert!(!hit(json!({"color": "red"}), json!({"color": "blue"})));
        assert!(hit(json!({"b": true}), json!({"b": true})));
        assert!(!hit(json!({"b": true}), json!({"b": false})));
    }

    #[test]
    fn integers_beyond_i64_become_floats() {
        assert!(matches!(
            w(json!({"n": u64::MAX})),
            Where::Cmp {
                op: MetaOp::Eq(Scalar::Float(_)),
                ..
            }
        ));
    }

    #[test]
    fn eq_and_ne() {
        let m = json!({"s": "x", "i": 2, "f": 2.5, "b": false, "l": ["x"]});
        assert!(hit(json!({"s": {"$eq": "x"}}), m.clone()));
        assert!(!hit(json!({"s": {"$eq": "y"}}), m.clone()));
        assert!(hit(json!({"s": {"$ne": "y"}}), m.clone()));
        assert!(!hit(json!({"s": {"$ne": "x"}}), m.clone()));
        assert!(hit(json!({"b": {"$eq": false}}), m.clone()));
        assert!(!hit(json!({"b": {"$ne": false}}), m.clone()));
        assert!(hit(json!({"f": {"$eq": 2.5}}), m.clone()));
        // A list never equals a scalar, so $ne matches it.
        assert!(!hit(json!({"l": {"$eq": "x"}}), m.clone()));
        assert!(hit(json!({"l": {"$ne": "x"}}), m.clone()));
        // Different kinds are simply unequal.
        assert!(!hit(json!({"s": {"$eq": 2}}), m.clone()));
        assert!(!hit(json!({"i": {"$eq": "2"}}), m.clone()));
        assert!(!hit(json!({"b": {"$eq": 0}}), m.clone()));
        assert!(hit(json!({"i": {"$ne": "2"}}), m));
    }

    #[test]
    fn int_and_float_compare_as_in_chroma() {
        let m = json!({"i": 5, "f": 5.0, "g": 5.5, "n": -5});
        assert!(hit(json!({"i": 5.0}), m.clone()));
        assert!(hit(json!({"f": 5}), m.clone()));
        assert!(!hit(json!({"i": {"$ne": 5.0}}), m.clone()));
        assert!(hit(json!({"g": {"$gt": 5}}), m.clone()));
        // a fractional operand meets an int value truncated towards zero
        assert!(!hit(json!({"i": {"$lt": 5.5}}), m.clone()));
        assert!(hit(json!({"i": {"$eq": 5.5}}), m.clone()));
        assert!(hit(json!({"i": {"$gte": 5.9}}), m.clone()));
        assert!(!hit(json!({"f": {"$gte": 5.9}}), m.clone()));
        assert!(!hit(json!({"n": {"$gt": -5.5}}), m.clone()));
        assert!(hit(json!({"n": {"$lte": -5.5}}), m.clone()));
        assert!(hit(json!({"i": {"$gte": 5.0}}), m.clone()));
        assert!(hit(json!({"f": {"$lte": 5}}), m.clone()));
        assert!(!hit(json!({"f": {"$lt": 5}}), m.clone()));
        assert!(hit(json!({"i": {"$in": [1.0, 5.0]}}), m.clone()));
        assert!(!hit(json!({"f": {"$nin": [5]}}), m));
    }

    #[test]
    fn large_ints_compare_exactly() {
        // These two differ but round to the same f64.
        let big = i64::MAX;
        let m = json!({ "n": big });
        assert!(hit(json!({"n": {"$gt": big - 1}}), m.clone()));
        assert!(!hit(json!({"n": {"$eq": big - 1}}), m.clone()));
        assert!(hit(json!({"n": {"$eq": big}}), m));
    }

    #[test]
    fn range_operators() {
        let m = json!({"n": 10});
        for (op, operand, expected) in [
            ("$gt", 9, true),
            ("$gt", 10, false),
            ("$gte", 10, true),
            ("$gte", 11, false),
            ("$lt", 11, true),
            ("$lt", 10, false),
            ("$lte", 10, true),
            ("$lte", 9, false),
        ] {
            assert_eq!(
                hit(json!({ "n": { op: operand } }), m.clone()),
                expected,
                "{op} {operand}"
            );
        }
    }

    #[test]
    fn range_operators_never_match_non_numbers() {
        let m = json!({"s": "10", "b": true, "l": [1, 2, 3]});
        for op in ["$gt", "$gte", "$lt", "$lte"] {
            for key in ["s", "b", "l", "missing"] {
                assert!(!hit(json!({ key: { op: 0 } }), m.clone()), "{key} {op}");
                assert!(!hit(json!({ key: { op: 100 } }), m.clone()), "{key} {op}");
            }
        }
    }

    #[test]
    fn in_and_nin() {
        let m = json!({"c": "red", "n": 3});
        assert!(hit(json!({"c": {"$in": ["blue", "red"]}}), m.clone()));
        assert!(!hit(json!({"c": {"$in": ["blue"]}}), m.clone()));
        assert!(hit(json!({"c": {"$nin": ["blue"]}}), m.clone()));
        assert!(!hit(json!({"c": {"$nin": ["red", "blue"]}}), m.clone()));
        assert!(hit(json!({"n": {"$in": ["3", 3]}}), m.clone()));
        assert!(!hit(json!({"n": {"$in": ["3"]}}), m.clone()));
        // Empty lists are allowed: $in [] matches nothing, $nin [] everything.
        assert!(!hit(json!({"c": {"$in": []}}), m.clone()));
        assert!(hit(json!({"c": {"$nin": []}}), m.clone()));
        assert!(hit(json!({"missing": {"$nin": []}}), m.clone()));
        // A list-valued field is not "in" anything.
        let lm = json!({"l": ["red"]});
        assert!(!hit(json!({"l": {"$in": ["red"]}}), lm.clone()));
        assert!(hit(json!({"l": {"$nin": ["red"]}}), lm));
    }

    #[test]
    fn contains_on_lists() {
        let m = json!({"tags": ["a", "b"], "nums": [1, 2], "s": "abc"});
        assert!(hit(json!({"tags": {"$contains": "a"}}), m.clone()));
        assert!(!hit(json!({"tags": {"$contains": "c"}}), m.clone()));
        assert!(hit(json!({"tags": {"$not_contains": "c"}}), m.clone()));
        assert!(!hit(json!({"tags": {"$not_contains": "b"}}), m.clone()));
        // an element must have the operand's own type
        assert!(hit(json!({"nums": {"$contains": 2}}), m.clone()));
        assert!(!hit(json!({"nums": {"$contains": 2.0}}), m.clone()));
        assert!(!hit(json!({"nums": {"$contains": "2"}}), m.clone()));
        // Scalars are not lists, even when the string contains the operand.
        assert!(!hit(json!({"s": {"$contains": "a"}}), m.clone()));
        assert!(hit(json!({"s": {"$not_contains": "a"}}), m));
    }

    #[test]
    fn missing_key_matches_only_negative_ops() {
        let present = json!({"other": 1});
        let cases = [
            json!({"k": {"$eq": 1}}),
            json!({"k": {"$ne": 1}}),
            json!({"k": {"$gt": 1}}),
            json!({"k": {"$gte": 1}}),
            json!({"k": {"$lt": 1}}),
            json!({"k": {"$lte": 1}}),
            json!({"k": {"$in": [1]}}),
            json!({"k": {"$nin": [1]}}),
            json!({"k": {"$contains": 1}}),
            json!({"k": {"$not_contains": 1}}),
        ];
        for case in cases {
            let f = w(case.clone());
            let Where::Cmp { op, .. } = &f else {
                panic!("expected a comparison for {case}");
            };
            let negative = op.is_negative();
            assert_eq!(f.matches(Some(&md(present.clone()))), negative, "{case}");
            assert_eq!(f.matches(None), negative, "{case} without metadata");
        }
    }

    #[test]
    fn is_negative_flags_exactly_the_negative_ops() {
        let s = || Scalar::Int(1);
        assert!(!MetaOp::Eq(s()).is_negative());
        assert!(MetaOp::Ne(s()).is_negative());
        assert!(!MetaOp::Gt(s()).is_negative());
        assert!(!MetaOp::Gte(s()).is_negative());
        assert!(!MetaOp::Lt(s()).is_negative());
        assert!(!MetaOp::Lte(s()).is_negative());
        assert!(!MetaOp::In(vec![s()]).is_negative());
        assert!(MetaOp::Nin(vec![s()]).is_negative());
        assert!(!MetaOp::Contains(s()).is_negative());
        assert!(MetaOp::NotContains(s()).is_negative());
    }

    #[test]
    fn and_or_nesting() {
        let f = json!({"$or": [
            {"$and": [{"a": 1}, {"b": {"$gt": 5}}]},
            {"c": {"$in": ["x", "y"]}}
        ]});
        assert!(hit(f.clone(), json!({"a": 1, "b": 6})));
        assert!(!hit(f.clone(), json!({"a": 1, "b": 5})));
        assert!(hit(f.clone(), json!({"c": "y"})));
        assert!(!hit(f.clone(), json!({"a": 2, "c": "z"})));
        assert!(!w(f).matches(None));
        match w(json!({"$and": [{"a": 1}]})) {
            Where::And(children) => assert_eq!(children.len(), 1),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn several_keys_are_an_implicit_and() {
        let f = json!({"a": 1, "b": {"$ne": "x"}});
        match w(f.clone()) {
            Where::And(children) => assert_eq!(children.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(hit(f.clone(), json!({"a": 1, "b": "y"})));
        assert!(hit(f.clone(), json!({"a": 1})));
        assert!(!hit(f.clone(), json!({"a": 1, "b": "x"})));
        assert!(!hit(f, json!({"a": 2, "b": "y"})));
        // Logical keys mix with metadata keys the same way.
        let g = json!({"$or": [{"a": 1}, {"a": 2}], "b": true});
        assert!(hit(g.clone(), json!({"a": 2, "b": true})));
        assert!(!hit(g, json!({"a": 2, "b": false})));
    }

    #[test]
    fn single_key_has_no_and_wrapper() {
        assert!(matches!(w(json!({"a": 1})), Where::Cmp { .. }));
        assert!(matches!(w(json!({"$or": [{"a": 1}]})), Where::Or(_)));
    }

    #[test]
    fn where_structure_errors() {
        let e = where_error(json!([{"a": 1}]));
        assert_eq!(e, "Invalid where clause: expected an object, got an array");
        let e = where_error(json!("a"));
        assert_eq!(e, "Invalid where clause: expected an object, got \"a\"");
        let e = where_error(json!({"$foo": 1}));
        assert!(e.contains("unknown operator $foo"), "{e}");
        let e = where_error(json!({"": 1}));
        assert!(e.contains("metadata key must not be empty"), "{e}");
        let e = where_error(json!({"$and": []}));
        assert!(e.contains("$and expects a non-empty array"), "{e}");
        let e = where_error(json!({"$or": {"a": 1}}));
        assert!(
            e.contains("$or expects a non-empty array of where objects, got an object"),
            "{e}"
        );
        let e = where_error(json!({"$and": [{"a": 1}, 5]}));
        assert!(
            e.contains("elements of $and must be where objects, got 5"),
            "{e}"
        );
        let e = where_error(json!({"$or": [{}]}));
        assert!(e.contains("must not be empty"), "{e}");
        // Errors deep inside a nested clause surface too.
        let e = where_error(json!({"$and": [{"$or": [{"a": {"$gt": "x"}}]}]}));
        assert!(e.contains("operator $gt expects a number"), "{e}");
    }

    #[test]
    fn where_operator_errors() {
        let e = where_error(json!({"a": {"$foo": 1}}));
        assert_eq!(e, "Invalid where clause: unknown operator $foo");
        let e = where_error(json!({"a": {"eq": 1}}));
        assert!(e.contains("unknown operator eq"), "{e}");
        let e = where_error(json!({"a": {}}));
        assert!(e.contains("exactly one operator, got 0"), "{e}");
        let e = where_error(json!({"a": {"$gt": 1, "$lt": 5}}));
        assert!(e.contains("exactly one operator, got 2"), "{e}");
        let e = where_error(json!({"a": null}));
        assert!(e.contains("got null"), "{e}");
        let e = where_error(json!({"a": [1, 2]}));
        assert!(e.contains("got an array"), "{e}");
    }

    #[test]
    fn where_operand_errors() {
        for op in ["$eq", "$ne", "$contains", "$not_contains"] {
            for bad in [json!(null), json!([1]), json!({"x": 1})] {
                let e = where_error(json!({ "a": { op: bad } }));
                assert!(
                    e.contains(&format!(
                        "operator {op} expects a string, number or boolean"
                    )),
                    "{e}"
                );
            }
        }
        for op in ["$gt", "$gte", "$lt", "$lte"] {
            for (bad, shown) in [
                (json!("x"), "\"x\""),
                (json!(true), "true"),
                (json!(null), "null"),
                (json!([1]), "an array"),
                (json!({"x": 1}), "an object"),
            ] {
                let e = where_error(json!({ "a": { op: bad } }));
                assert_eq!(
                    e,
                    format!("Invalid where clause: operator {op} expects a number, got {shown}")
                );
            }
        }
        for op in ["$in", "$nin"] {
            for bad in [json!(1), json!("x"), json!(null), json!({"x": 1})] {
                let e = where_error(json!({ "a": { op: bad } }));
                assert!(
                    e.contains(&format!("operator {op} expects an array")),
                    "{e}"
                );
            }
            for bad in [json!([1, null]), json!([[1]]), json!([{"x": 1}])] {
                let e = where_error(json!({ "a": { op: bad } }));
                assert!(e.contains("got an element"), "{e}");
            }
        }
    }

    #[test]
    fn long_operands_are_truncated_in_errors() {
        let long = "y".repeat(10_000);
        let e = where_error(json!({"a": {"$gt": long}}));
        assert!(e.len() < 200, "{e}");
        assert!(e.ends_with("...\""), "{e}");
    }

    /// Wraps `leaf` in `levels - 1` single-element `op` arrays. Built by hand because `json!`
    /// re-serializes interpolated values, which recurses and is quadratic.
    fn nest(leaf: Value, op: &str, levels: usize) -> Value {
        let mut v = leaf;
        for _ in 1..levels {
            let mut m = Map::new();
            m.insert(op.to_string(), Value::Array(vec![v]));
            v = Value::Object(m);
        }
        v
    }

    fn nested_where(levels: usize) -> Value {
        nest(json!({"a": 1}), "$and", levels)
    }

    #[test]
    fn where_depth_limit() {
        let ok = w(nested_where(MAX_DEPTH));
        assert!(ok.matches(Some(&md(json!({"a": 1})))));
        assert!(!ok.matches(Some(&md(json!({"a": 2})))));
        let e = where_error(nested_where(MAX_DEPTH + 1));
        assert!(e.contains("nested deeper than 64 levels"), "{e}");
        // Far past the limit must fail cleanly too, not overflow the stack.
        let e = where_error(nested_where(1_000));
        assert!(e.contains("nested deeper"), "{e}");
    }

    #[test]
    fn document_contains() {
        let f = d(json!({"$contains": "fox"}));
        assert!(f.matches(Some("the quick fox")));
        assert!(!f.matches(Some("the quick Fox")));
        assert!(!f.matches(None));
        let g = d(json!({"$not_contains": "fox"}));
        assert!(!g.matches(Some("the quick fox")));
        assert!(g.matches(Some("the quick Fox")));
        assert!(g.matches(None));
    }

    #[test]
    fn document_regex() {
        let f = d(json!({"$regex": "^q.*k$"}));
        assert!(f.matches(Some("quick")));
        assert!(!f.matches(Some("quack!")));
        assert!(!f.matches(None));
        let g = d(json!({"$not_regex": "[0-9]+"}));
        assert!(g.matches(Some("no digits")));
        assert!(!g.matches(Some("has 1 digit")));
        assert!(g.matches(None));
    }

    #[test]
    fn document_and_or() {
        let f = d(json!({"$and": [
            {"$contains": "a"},
            {"$or": [{"$regex": "b$"}, {"$not_contains": "c"}]}
        ]}));
        assert!(f.matches(Some("ab")));
        assert!(f.matches(Some("a")));
        assert!(!f.matches(Some("ac")));
        assert!(f.matches(Some("acb")));
        assert!(!f.matches(Some("b")));
        assert!(!f.matches(None));
        let g = d(json!({"$or": [{"$contains": "x"}, {"$not_regex": "y"}]}));
        assert!(g.matches(None));
        assert!(g.matches(Some("xy")));
        assert!(!g.matches(Some("y")));
    }

    #[test]
    fn regex_error_uses_chroma_prefix() {
        let e = doc_error(json!({"$regex": "("}));
        assert!(matches!(e, FilterError::Regex(_)));
        assert!(e.to_string().starts_with("Regex syntax errror"), "{e}");
        let e = doc_error(json!({"$and": [{"$not_regex": "[a-"}]}));
        assert!(e.to_string().starts_with("Regex syntax errror: "), "{e}");
    }

    #[test]
    fn document_errors() {
        let cases = [
            (json!("fox"), "expected an object, got \"fox\""),
            (
                json!({"$contains": 5}),
                "operator $contains expects a string, got 5",
            ),
            (
                json!({"$not_contains": null}),
                "operator $not_contains expects a string, got null",
            ),
            (
                json!({"$regex": ["a"]}),
                "operator $regex expects a string, got an array",
            ),
            (
                json!({"$not_regex": true}),
                "operator $not_regex expects a string, got true",
            ),
            (
                json!({"$contains": "a", "$regex": "b"}),
                "exactly one operator, got 2 keys",
            ),
            (json!({"$foo": "a"}), "unknown operator $foo"),
            (json!({"contains": "a"}), "unknown operator contains"),
            (json!({"$and": []}), "$and expects a non-empty array"),
            (
                json!({"$or": "a"}),
                "$or expects a non-empty array of where_document objects, got \"a\"",
            ),
            (
                json!({"$and": [{"$contains": "a"}, {}]}),
                "exactly one operator, got 0 keys",
            ),
            (json!({"$or": [3]}), "expected an object, got 3"),
        ];
        for (input, expected) in cases {
            let e = doc_error(input.clone());
            assert!(matches!(e, FilterError::WhereDocument(_)), "{input}: {e:?}");
            let msg = e.to_string();
            assert!(msg.starts_with("Invalid where_document clause: "), "{msg}");
            assert!(msg.contains(expected), "{input}: {msg}");
        }
    }

    fn nested_doc(levels: usize) -> Value {
        nest(json!({"$contains": "a"}), "$or", levels)
    }

    #[test]
    fn document_depth_limit() {
        assert!(d(nested_doc(MAX_DEPTH)).matches(Some("a")));
        let e = doc_error(nested_doc(MAX_DEPTH + 1));
        assert!(matches!(e, FilterError::WhereDocument(_)));
        assert!(
            e.to_string().contains("nested deeper than 64 levels"),
            "{e}"
        );
        let e = doc_error(nested_doc(1_000));
        assert!(e.to_string().contains("nested deeper"), "{e}");
    }
}
