//! The schema in the store, on a real RocksDB in a temporary directory: keys discovered
//! by writes are durable, a catalog change racing a discovery loses neither, and filters
//! on disabled indexes are refused before anything is read or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::filter::{Where, WhereDocument};
use super::project::CollectionMeta;
use super::schema::{Schema, SchemaError, VectorIndexSettings};
use super::types::{HnswConfig, Include, MetaValue, RecordInput, Scalar};
use super::write::WriteMode;
use super::{Project, ProjectName, Registry, StoreConfig, StoreError, DEFAULT_DATABASE};

fn registry(dir: &std::path::Path) -> Arc<Registry> {
    Registry::new(StoreConfig::for_workspace(dir)).expect("registry")
}

fn project(reg: &Arc<Registry>) -> Arc<Project> {
    reg.project(&ProjectName::new("schemas").expect("name"))
        .expect("project")
}

fn create(p: &Project, name: &str, schema: Option<Schema>) -> CollectionMeta {
    let meta = CollectionMeta {
        id: Uuid::new_v4(),
        name: name.into(),
        database: DEFAULT_DATABASE.into(),
        metadata: None,
        hnsw: HnswConfig::default(),
        configuration: serde_json::Value::Null,
        schema,
        dimension: None,
    };
    p.create_collection(meta, false).expect("create").0
}

fn rec(id: &str, md: &[(&str, Scalar)]) -> RecordInput {
    let metadata: BTreeMap<String, Option<MetaValue>> = md
        .iter()
        .map(|(k, v)| (k.to_string(), Some(MetaValue::Scalar(v.clone()))))
        .collect();
    RecordInput {
        id: id.into(),
        embedding: Some(vec![1.0, 0.5]),
        document: Some(format!("document {id}")),
        metadata: Some(metadata),
        uri: None,
    }
}

fn key_kinds(meta: &CollectionMeta, key: &str) -> Vec<&'static str> {
    let s = meta.schema.as_ref().expect("schema kept");
    let t = &s.keys[key];
    let mut out = Vec::new();
    if t.string.is_some() {
        out.push("string");
    }
    if t.int.is_some() {
        out.push("int");
    }
    if t.float.is_some() {
        out.push("float");
    }
    if t.bool.is_some() {
        out.push("bool");
    }
    out
}

#[test]
fn discovered_keys_are_durable_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id;
    {
        let reg = registry(dir.path());
        let p = project(&reg);
        // a collection from before schemas were kept gets one on its first write
        let meta = create(&p, "legacy", None);
        id = meta.id;
        p.write(
            &meta,
            WriteMode::Add,
            vec![
                rec(
                    "a",
                    &[("s", Scalar::Str("x".into())), ("n", Scalar::Int(1))],
                ),
                rec("b", &[("n", Scalar::Float(2.5)), ("b", Scalar::Bool(true))]),
            ],
        )
        .expect("write");
        drop(p);
        reg.close_all();
    }
    let reg = registry(dir.path());
    let p = project(&reg);
    let meta = p.collection_meta_by_id(&id).expect("meta");
    assert_eq!(key_kinds(&meta, "s"), ["string"]);
    assert_eq!(key_kinds(&meta, "n"), ["int", "float"]);
    assert_eq!(key_kinds(&meta, "b"), ["bool"]);
    assert_eq!(meta.dimension, Some(2));
}

#[test]
fn rename_racing_discovery_keeps_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path());
    let p = project(&reg);
    let meta = create(&p, "before", Some(Schema::new_default()));
    let writer = {
        let p = Arc::clone(&p);
        let meta = meta.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                let key = format!("k{i}");
                p.write(
                    &meta,
                    WriteMode::Upsert,
                    vec![rec("r", &[(&key, Scalar::Int(i))])],
                )
                .expect("write");
            }
        })
    };
    for i in 0..50 {
        p.modify_collection(&meta.id, |m| m.name = format!("name{i}"))
            .expect("rename");
    }
    writer.join().expect("writer");
    let now = p.collection_meta_by_id(&meta.id).expect("meta");
    assert_eq!(now.name, "name49");
    let schema = now.schema.expect("schema");
    for i in 0..200 {
        assert!(schema.keys.contains_key(&format!("k{i}")), "k{i} lost");
    }
    assert!(p.collection_meta(DEFAULT_DATABASE, "name49").is_ok());
}

fn with_disabled_key() -> Schema {
    let user: Schema = serde_json::from_value(json!({
        "defaults": {},
        "keys": {
            "k": {"string": {"string_inverted_index": {"enabled": false, "config": {}}}},
            "#document": {"string": {"fts_index": {"enabled": false, "config": {}}}}
        }
    }))
    .expect("schema");
    Schema::reconcile(Some(&user), &VectorIndexSettings::default()).expect("reconcile")
}

#[test]
fn disabled_indexes_refuse_filters_before_reading_or_deleting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = registry(dir.path());
    let p = project(&reg);
    let meta = create(&p, "locked", Some(with_disabled_key()));
    p.write(
        &meta,
        WriteMode::Add,
        vec![
            rec(
                "a",
                &[("k", Scalar::Str("x".into())), ("n", Scalar::Int(1))],
            ),
            rec(
                "b",
                &[("k", Scalar::Str("y".into())), ("n", Scalar::Int(2))],
            ),
        ],
    )
    .expect("write");
    let meta = p.collection_meta_by_id(&meta.id).expect("meta");
    let w = Where::parse(&json!({"k": "x"}))
        .expect("parse")
        .expect("filter");
    let wd = WhereDocument::parse(&json!({"$contains": "document"}))
        .expect("parse")
        .expect("filter");
    let get = p.get_records(&meta, None, Some(&w), None, None, 0, Include::GET_DEFAULT);
    assert!(matches!(
        get,
        Err(StoreError::Schema(SchemaError::IndexingDisabled { ref key, kind: "Str" })) if key == "k"
    ));
    let del = p.delete_records(&meta, None, Some(&w), None, None);
    assert!(matches!(del, Err(StoreError::Schema(_))));
    let del = p.delete_records(&meta, None, None, Some(&wd), None);
    assert!(matches!(
        del,
        Err(StoreError::Schema(SchemaError::FtsDisabled))
    ));
    assert_eq!(p.counters(&meta.id).expect("counters").count, 2);
    // another key, and the same key by another type, are served
    let n = Where::parse(&json!({"n": 2}))
        .expect("parse")
        .expect("filter");
    let got = p
        .get_records(&meta, None, Some(&n), None, None, 0, Include::GET_DEFAULT)
        .expect("get");
    assert_eq!(got.records.len(), 1);
    let k_int = Where::parse(&json!({"k": 3}))
        .expect("parse")
        .expect("filter");
    assert!(p
        .get_records(
            &meta,
            None,
            Some(&k_int),
            None,
            None,
            0,
            Include::GET_DEFAULT
        )
        .is_ok());
    // the key's override was kept as given when values arrived
    let k = &meta.schema.as_ref().expect("schema").keys["k"];
    assert!(k.string.as_ref().is_some_and(|s| s.fts_index.is_none()));
    assert!(meta
        .effective_schema()
        .keys
        .get("n")
        .is_some_and(|t| t.int.is_some()));
}
