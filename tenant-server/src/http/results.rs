//! The column-major record results both data APIs answer (`ids`, `embeddings`,
//! `documents`, `metadatas`, `uris`, and `distances` for queries), one field `null`
//! unless it was included.

use serde_json::{json, Value};

use crate::store::query::QueryHit;
use crate::store::types::{Include, Record};

/// An `f32` as the JSON number Chroma writes for it: its shortest decimal form, not the
/// longer one of its exact `f64` widening (`0.3119608`, not `0.31196078658103943`).
fn wire(x: f32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let mut buf = ryu::Buffer::new();
    let shortest = buf.format_finite(x).parse::<f64>().unwrap_or(f64::from(x));
    Value::from(shortest)
}

fn wire_vector(v: &Option<Vec<f32>>) -> Value {
    match v {
        Some(v) => Value::Array(v.iter().copied().map(wire).collect()),
        None => Value::Null,
    }
}

fn opt_list<T>(on: bool, items: impl Iterator<Item = T>) -> Value
where
    T: serde::Serialize,
{
    if on {
        json!(items.collect::<Vec<T>>())
    } else {
        Value::Null
    }
}

pub fn get_result_json(records: &[Record], inc: Include) -> Value {
    json!({
        "ids": records.iter().map(|r| &r.id).collect::<Vec<_>>(),
        "embeddings": opt_list(inc.embeddings, records.iter().map(|r| wire_vector(&r.embedding))),
        "documents": opt_list(inc.documents, records.iter().map(|r| &r.document)),
        "metadatas": opt_list(inc.metadatas, records.iter().map(|r| &r.metadata)),
        "uris": opt_list(inc.uris, records.iter().map(|r| &r.uri)),
        "include": inc.names(),
    })
}

pub fn query_result_json(hits: &[Vec<QueryHit>], inc: Include) -> Value {
    let per = |on: bool, f: &dyn Fn(&QueryHit) -> Value| -> Value {
        if on {
            Value::Array(
                hits.iter()
                    .map(|q| Value::Array(q.iter().map(f).collect()))
                    .collect(),
            )
        } else {
            Value::Null
        }
    };
    json!({
        "ids": per(true, &|h| json!(h.record.id)),
        "distances": per(inc.distances, &|h| wire(h.distance)),
        "embeddings": per(inc.embeddings, &|h| wire_vector(&h.record.embedding)),
        "documents": per(inc.documents, &|h| json!(h.record.document)),
        "metadatas": per(inc.metadatas, &|h| json!(h.record.metadata)),
        "uris": per(inc.uris, &|h| json!(h.record.uri)),
        "include": inc.names(),
    })
}
