//! The column-major record results both data APIs answer (`ids`, `embeddings`,
//! `documents`, `metadatas`, `uris`, and `distances` for queries), one field `null`
//! unless it was included.

use serde_json::{json, Value};

use crate::store::query::QueryHit;
use crate::store::types::{Include, Record};

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
        "embeddings": opt_list(inc.embeddings, records.iter().map(|r| &r.embedding)),
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
        "distances": per(inc.distances, &|h| json!(h.distance)),
        "embeddings": per(inc.embeddings, &|h| json!(h.record.embedding)),
        "documents": per(inc.documents, &|h| json!(h.record.document)),
        "metadatas": per(inc.metadatas, &|h| json!(h.record.metadata)),
        "uris": per(inc.uris, &|h| json!(h.record.uri)),
        "include": inc.names(),
    })
}
