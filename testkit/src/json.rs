//! Reading values out of JSON answers, panicking with the value when it has another shape.
//!
//! Why: the tests keep answers as raw JSON (to check exact wire shapes) and pull lists of
//! ids and embeddings out of them everywhere; a wrong shape should fail naming the value,
//! not with a bare `unwrap`.

use serde_json::Value;

/// A list of numbers as f32.
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")) as f32)
        .collect()
}

/// A list of strings (ids, names).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}
