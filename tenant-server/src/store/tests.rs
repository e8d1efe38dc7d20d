//! Store-level tests on a real RocksDB in a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::filter::{Where, WhereDocument};
use super::project::CollectionMeta;
use super::query::{MissingIds, QueryRequest, Strategy};
use super::types::{HnswConfig, Include, MetaValue, RecordInput, Scalar, Space};
use super::write::WriteMode;
use super::{Project, ProjectName, Registry, StoreConfig, StoreError, DEFAULT_DATABASE};

fn registry(dir: &std::path::Path) -> Arc<Registry> {
    Registry::new(StoreConfig::for_workspace(dir)).expect("registry")
}

fn new_collection(p: &Project, name: &str, space: Space) -> CollectionMeta {
    let meta = CollectionMeta {
        id: Uuid::new_v4(),
        name: name.into(),
        database: DEFAULT_DATABASE.into(),
        metadata: None,
        hnsw: HnswConfig {
            space,
            ..HnswConfig::default()
        },
        configuration: serde_json::Value::Null,
        schema: None,
        dimension: None,
    };
    p.create_collection(meta, false).expect("create").0
}

/// Deterministic pseudo-random numbers without a dependency in the library.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0 - 0.5
    }
}

fn record(i: usize, rng: &mut Lcg, dim: usize) -> RecordInput {
    let mut md = std::collections::BTreeMap::new();
    md.insert(
        "n".to_string(),
        Some(MetaValue::Scalar(Scalar::Int(rng.below(20) as i64))),
    );
    md.insert(
        "f".to_string(),
        Some(MetaValue::Scalar(Scalar::Float(
            rng.below(100) as f64 / 10.0,
        ))),
    );
    md.insert(
        "s".to_string(),
        Some(MetaValue::Scalar(Scalar::Str(
            ["red", "green", "blue", "bluest"][rng.below(4) as usize].into(),
        ))),
    );
    if i.is_multiple_of(3) {
        md.insert(
            "b".to_string(),
            Some(MetaValue::Scalar(Scalar::Bool(i.is_multiple_of(2)))),
        );
    }
    if i.is_multiple_of(4) {
        md.insert(
            "tags".to_string(),
            Some(MetaValue::List(vec![
                Scalar::Str(format!("t{}", rng.below(5))),
                Scalar::Str("all".into()),
            ])),
        );
    }
    RecordInput {
        id: format!("id-{i}"),
        embedding: Some((0..dim).map(|_| rng.unit()).collect()),
        document: (!i.is_multiple_of(5))
            .then(|| format!("document {i} about {}", ["cats", "dogs", "birds"][i % 3])),
        metadata: Some(md),
        uri: None,
    }
}

/// A project name the test knows to be valid.
fn pn(name: &str) -> ProjectName {
    ProjectName::new(name).expect("valid project name")
}

#[test]
fn index_planner_agrees_with_filter_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("planner")).unwrap();
    let meta = new_collection(&p, "c1", Space::L2);
    let mut rng = Lcg(7);
    let records: Vec<RecordInput> = (0..600).map(|i| record(i, &mut rng, 4)).collect();
    p.write(&meta, WriteMode::Add, records).unwrap();
    // some deletes and updates so the index has seen removals
    let del: Vec<String> = (0..600).step_by(7).map(|i| format!("id-{i}")).collect();
    p.delete_records(&meta, Some(&del), None, None, None)
        .unwrap();
    let upd: Vec<RecordInput> = (1..600)
        .step_by(11)
        .map(|i| {
            let mut md = std::collections::BTreeMap::new();
            md.insert("n".to_string(), Some(MetaValue::Scalar(Scalar::Int(100))));
            md.insert("s".to_string(), None);
            RecordInput {
                id: format!("id-{i}"),
                metadata: Some(md),
                ..Default::default()
            }
        })
        .collect();
    p.write(&meta, WriteMode::Update, upd).unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();

    let filters = [
        json!({"n": 3}),
        json!({"n": 100}),
        json!({"n": {"$ne": 3}}),
        json!({"n": {"$gt": 15}}),
        json!({"n": {"$gte": 15}}),
        json!({"n": {"$lt": 2}}),
        json!({"n": {"$lte": 2.5}}),
        json!({"f": {"$gt": 4}}),
        json!({"f": {"$lte": 4.5}}),
        json!({"f": 5}),
        json!({"s": "blue"}),
        json!({"s": {"$in": ["red", "blue"]}}),
        json!({"s": {"$nin": ["red", "blue"]}}),
        json!({"b": true}),
        json!({"b": {"$ne": true}}),
        json!({"tags": {"$contains": "t2"}}),
        json!({"tags": {"$not_contains": "all"}}),
        json!({"tags": "all"}),
        json!({"$and": [{"n": {"$gte": 5}}, {"s": "green"}]}),
        json!({"$or": [{"n": {"$lt": 3}}, {"$and": [{"s": "red"}, {"f": {"$gt": 8}}]}]}),
        json!({"missing": {"$ne": 1}}),
        json!({"missing": 1}),
    ];
    let coll = p.collection(&meta).unwrap();
    let all = p
        .get_records(
            &meta,
            None,
            None,
            None,
            None,
            0,
            Include {
                metadatas: true,
                documents: true,
                ..Include::default()
            },
        )
        .unwrap()
        .records;
    assert_eq!(all.len(), 600 - del.len());
    for f in &filters {
        let w = Where::parse(f).unwrap().unwrap();
        let expected: Vec<&str> = all
            .iter()
            .filter(|r| w.matches(r.metadata.as_ref()))
            .map(|r| r.id.as_str())
            .collect();
        let labels = p
            .matching_labels(&coll, &meta, None, Some(&w), None)
            .unwrap();
        let got = p
            .read_records(
                &meta,
                &labels.iter().collect::<Vec<_>>(),
                Include::default(),
            )
            .unwrap();
        let mut got: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
        let mut expected = expected;
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "filter {f}");
    }
    let wd =
        WhereDocument::parse(&json!({"$and": [{"$contains": "cats"}, {"$not_regex": "1\\d"}]}))
            .unwrap()
            .unwrap();
    let labels = p
        .matching_labels(&coll, &meta, None, None, Some(&wd))
        .unwrap();
    let expected = all
        .iter()
        .filter(|r| wd.matches(r.document.as_deref()))
        .count();
    assert_eq!(labels.len() as usize, expected);
    assert!(expected > 0);
}

#[test]
fn writes_are_atomic_and_follow_chroma_rules() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("rules")).unwrap();
    let meta = new_collection(&p, "c1", Space::L2);
    let mut rng = Lcg(1);
    let out = p
        .write(
            &meta,
            WriteMode::Add,
            (0..10).map(|i| record(i, &mut rng, 3)).collect(),
        )
        .unwrap();
    assert_eq!((out.applied, out.total), (10, 10));
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    assert_eq!(meta.dimension, Some(3));

    // add of an existing id does not overwrite
    let mut again = record(0, &mut rng, 3);
    again.document = Some("changed".into());
    let out = p.write(&meta, WriteMode::Add, vec![again]).unwrap();
    assert_eq!(out.applied, 0);
    let got = p
        .get_records(
            &meta,
            Some(&["id-0".to_string()]),
            None,
            None,
            None,
            0,
            Include::GET_DEFAULT,
        )
        .unwrap();
    assert_ne!(got.records[0].document.as_deref(), Some("changed"));

    // a batch with one bad record writes nothing
    let mut bad = vec![record(20, &mut rng, 3), record(21, &mut rng, 3)];
    bad[1].embedding = Some(vec![1.0, 2.0]);
    assert!(p.write(&meta, WriteMode::Add, bad).is_err());
    assert_eq!(p.counters(&meta.id).unwrap().count, 10);
    let mut dup = vec![record(30, &mut rng, 3), record(30, &mut rng, 3)];
    dup[0].id = "same".into();
    dup[1].id = "same".into();
    assert!(matches!(
        p.write(&meta, WriteMode::Add, dup),
        Err(super::StoreError::DuplicateId(_))
    ));

    // update of unknown ids is ignored; upsert inserts
    let ghost = RecordInput {
        id: "ghost".into(),
        document: Some("boo".into()),
        ..Default::default()
    };
    assert_eq!(
        p.write(&meta, WriteMode::Update, vec![ghost])
            .unwrap()
            .applied,
        0
    );
    let up = record(40, &mut rng, 3);
    assert_eq!(
        p.write(&meta, WriteMode::Upsert, vec![up]).unwrap().total,
        11
    );

    // a new embedding moves the record: queries find it at its new place
    let moved = RecordInput {
        id: "id-1".into(),
        embedding: Some(vec![9.0, 9.0, 9.0]),
        ..Default::default()
    };
    p.write(&meta, WriteMode::Update, vec![moved]).unwrap();
    let q = vec![vec![9.0, 9.0, 9.1]];
    let (hits, _) = p
        .query(
            &meta,
            &QueryRequest {
                embeddings: &q,
                n_results: 1,
                ids: None,
                where_: None,
                where_document: None,
                include: Include::QUERY_DEFAULT,
                missing_ids: MissingIds::Skip,
            },
        )
        .unwrap();
    assert_eq!(hits[0][0].record.id, "id-1");
    assert!((hits[0][0].distance - 0.01).abs() < 1e-4);
    // the document survived the embedding-only update
    assert!(hits[0][0].record.document.is_some());
}

fn wait_indexed(p: &Project, id: &Uuid) {
    let start = Instant::now();
    while p
        .indexing_status(id)
        .is_some_and(|(_, unindexed)| unindexed > 0)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "indexer did not catch up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn graph_survives_reopen_and_deletes_trigger_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let n = 3000;
    let meta;
    {
        let reg = registry(dir.path());
        let p = reg.project(&pn("graphs")).unwrap();
        meta = new_collection(&p, "c1", Space::Cosine);
        let mut rng = Lcg(3);
        p.write(
            &meta,
            WriteMode::Add,
            (0..n).map(|i| record(i, &mut rng, dim)).collect(),
        )
        .unwrap();
        // the lag is what the graph does not hold yet, and the project's figure sums it
        let (indexed, unindexed) = p.indexing_progress(&meta).unwrap();
        assert_eq!(indexed + unindexed, n as u64);
        assert!(p.unindexed_records() <= unindexed);
        wait_indexed(&p, &meta.id);
        assert_eq!(p.indexing_progress(&meta).unwrap(), (n as u64, 0));
        assert_eq!(p.unindexed_records(), 0);
        drop(p);
        reg.close_all();
    }
    // the graph was written on close
    assert!(dir
        .path()
        .join("graphs/knowledge-graph/index")
        .join(meta.id.to_string())
        .join("manifest.json")
        .exists());
    let reg = registry(dir.path());
    let p = reg.project(&pn("graphs")).unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    let coll = p.collection(&meta).unwrap();
    // the saved graph is taken over as the collection opens: nothing to re-index
    {
        let st = coll.state.read();
        assert_eq!(st.graph.as_ref().map(|g| g.len()), Some(n));
        assert_eq!(st.unindexed(), 0, "every record is in the loaded graph");
        assert_eq!(st.tombstones(), 0);
    }
    // delete half: the tombstones exceed the rebuild threshold
    let del: Vec<String> = (0..n)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("id-{i}"))
        .collect();
    p.delete_records(&meta, Some(&del), None, None, None)
        .unwrap();
    let start = Instant::now();
    loop {
        let st = coll.state.read();
        if st.tombstones() == 0 && st.graph.as_ref().is_some_and(|g| g.len() == n / 2) {
            break;
        }
        drop(st);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "graph was not rebuilt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // unfiltered queries go through the graph and never return deleted records
    let q: Vec<Vec<f32>> = (0..20)
        .map(|i| (0..dim).map(|j| ((i * 7 + j) as f32).sin()).collect())
        .collect();
    let (hits, strategy) = p
        .query(
            &meta,
            &QueryRequest {
                embeddings: &q,
                n_results: 10,
                ids: None,
                where_: None,
                where_document: None,
                include: Include::default(),
                missing_ids: MissingIds::Skip,
            },
        )
        .unwrap();
    assert_eq!(strategy, Strategy::Graph);
    for h in hits.iter().flatten() {
        let i: usize = h.record.id.trim_start_matches("id-").parse().unwrap();
        assert_eq!(i % 2, 1, "deleted record {} returned", h.record.id);
    }
}

#[test]
fn new_embeddings_keep_record_order_and_are_found_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let n = 600;
    let query_one = |p: &Project, meta: &CollectionMeta, v: Vec<f32>| {
        let q = vec![v];
        let req = QueryRequest {
            embeddings: &q,
            n_results: 3,
            ids: None,
            where_: None,
            where_document: None,
            include: Include::default(),
            missing_ids: MissingIds::Skip,
        };
        p.query(meta, &req).unwrap().0.remove(0)
    };
    let moved = |id: &str, x: f32| RecordInput {
        id: id.into(),
        embedding: Some(vec![x; dim]),
        ..Default::default()
    };
    {
        let reg = registry(dir.path());
        let p = reg.project(&pn("order")).unwrap();
        let meta = new_collection(&p, "c1", Space::L2);
        let mut rng = Lcg(5);
        p.write(
            &meta,
            WriteMode::Add,
            (0..n).map(|i| record(i, &mut rng, dim)).collect(),
        )
        .unwrap();
        wait_indexed(&p, &meta.id);
        // re-embed one record that is already in the graph, and query at once: the
        // re-embedded record is found at its new place before the indexer gets to it
        p.write(&meta, WriteMode::Upsert, vec![moved("id-5", 50.0)])
            .unwrap();
        let hits = query_one(&p, &meta, vec![50.0; dim]);
        assert_eq!(hits[0].record.id, "id-5");
        assert!(hits[0].distance.abs() < 1e-6);
        wait_indexed(&p, &meta.id);
        let hits = query_one(&p, &meta, vec![50.0; dim]);
        assert_eq!(hits[0].record.id, "id-5");
        drop(p);
        reg.close_all();
    }
    let reg = registry(dir.path());
    let p = reg.project(&pn("order")).unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    // order of get is the order records were first written, updates included
    let all = p
        .get_records(&meta, None, None, None, None, 0, Include::default())
        .unwrap()
        .records;
    let ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("id-{i}")).collect();
    assert_eq!(ids, expected);
    // the saved graph holds id-5's second embedding; a third one after reopening is found
    // at once too, and the old positions no longer answer
    assert_eq!(query_one(&p, &meta, vec![50.0; dim])[0].record.id, "id-5");
    p.write(&meta, WriteMode::Update, vec![moved("id-5", -70.0)])
        .unwrap();
    let hits = query_one(&p, &meta, vec![-70.0; dim]);
    assert_eq!(hits[0].record.id, "id-5");
    let hits = query_one(&p, &meta, vec![50.0; dim]);
    assert!(hits
        .iter()
        .all(|h| h.record.id != "id-5" || h.distance > 1000.0));
    wait_indexed(&p, &meta.id);
    let coll = p.collection(&meta).unwrap();
    assert_eq!(coll.state.read().unindexed(), 0);
    assert_eq!(query_one(&p, &meta, vec![-70.0; dim])[0].record.id, "id-5");
}

#[test]
fn cached_filter_results_follow_writes() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("cache")).unwrap();
    let meta = new_collection(&p, "c1", Space::L2);
    let tagged = |id: &str, tag: Option<&str>| {
        let mut md = std::collections::BTreeMap::new();
        md.insert(
            "tag".to_string(),
            tag.map(|t| MetaValue::Scalar(Scalar::Str(t.into()))),
        );
        RecordInput {
            id: id.into(),
            embedding: Some(vec![1.0, 2.0]),
            metadata: Some(md),
            ..Default::default()
        }
    };
    p.write(
        &meta,
        WriteMode::Add,
        vec![tagged("a", Some("x")), tagged("b", Some("y"))],
    )
    .unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    let w = Where::parse(&json!({"tag": "x"})).unwrap().unwrap();
    let ids = |p: &Project| -> Vec<String> {
        let got = p
            .get_records(&meta, None, Some(&w), None, None, 0, Include::default())
            .unwrap();
        got.records.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(&p), ["a"]);
    assert_eq!(ids(&p), ["a"]); // served from the cache
    p.write(&meta, WriteMode::Add, vec![tagged("c", Some("x"))])
        .unwrap();
    assert_eq!(ids(&p), ["a", "c"]);
    p.write(&meta, WriteMode::Update, vec![tagged("a", None)])
        .unwrap();
    assert_eq!(ids(&p), ["c"]);
    p.delete_records(&meta, Some(&["c".to_string()]), None, None, None)
        .unwrap();
    assert!(ids(&p).is_empty());
}

fn point(id: &str, x: f32) -> RecordInput {
    RecordInput {
        id: id.into(),
        embedding: Some(vec![x, 1.0]),
        ..Default::default()
    }
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn get_answers_in_storage_order_whatever_the_ids_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = ["zeta", "alpha", "mid", "beta", "omega"];
    {
        let reg = registry(dir.path());
        let p = reg.project(&pn("storage-order")).unwrap();
        let meta = new_collection(&p, "c1", Space::L2);
        p.write(
            &meta,
            WriteMode::Add,
            storage[..3]
                .iter()
                .enumerate()
                .map(|(i, id)| point(id, i as f32))
                .collect(),
        )
        .unwrap();
        p.write(
            &meta,
            WriteMode::Add,
            vec![point("beta", 3.0), point("omega", 4.0)],
        )
        .unwrap();
        // rewriting existing records does not move them; new ids of an upsert go last
        p.write(&meta, WriteMode::Update, vec![point("alpha", 9.0)])
            .unwrap();
        p.write(
            &meta,
            WriteMode::Upsert,
            vec![point("new", 5.0), point("zeta", 8.0)],
        )
        .unwrap();
        drop(p);
        reg.close_all();
    }
    // the order is the store's, so it survives a restart
    let reg = registry(dir.path());
    let p = reg.project(&pn("storage-order")).unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    let get = |ids: Option<&[&str]>, limit: Option<usize>, offset: usize| -> Vec<String> {
        let ids = ids.map(strings);
        p.get_records(
            &meta,
            ids.as_deref(),
            None,
            None,
            limit,
            offset,
            Include::default(),
        )
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
    };
    let mut all = storage.to_vec();
    all.push("new");
    assert_eq!(get(None, None, 0), all);
    assert_eq!(
        get(Some(&["new", "omega", "missing", "zeta", "mid"]), None, 0),
        ["zeta", "mid", "omega", "new"]
    );
    assert_eq!(
        get(Some(&["new", "omega", "zeta", "mid"]), Some(2), 1),
        ["mid", "omega"]
    );
    // deleted and written again: last
    p.delete_records(&meta, Some(&strings(&["alpha"])), None, None, None)
        .unwrap();
    p.write(&meta, WriteMode::Add, vec![point("alpha", 0.0)])
        .unwrap();
    assert_eq!(
        get(Some(&["alpha", "beta", "zeta"]), None, 0),
        ["zeta", "beta", "alpha"]
    );
}

#[test]
fn query_with_missing_ids_fails_only_when_chroma_does() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("missing-ids")).unwrap();
    let never_written = new_collection(&p, "empty", Space::L2);
    let meta = new_collection(&p, "c1", Space::L2);
    p.write(
        &meta,
        WriteMode::Add,
        vec![point("a", 0.0), point("b", 1.0), point("c", 2.0)],
    )
    .unwrap();
    p.delete_records(&meta, Some(&strings(&["c"])), None, None, None)
        .unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    let query = |meta: &CollectionMeta, ids: &[&str], where_: Option<&Where>, missing| {
        let ids = strings(ids);
        let q = [vec![0.0, 1.0]];
        p.query(
            meta,
            &QueryRequest {
                embeddings: &q,
                n_results: 5,
                ids: Some(&ids),
                where_,
                where_document: None,
                include: Include::default(),
                missing_ids: missing,
            },
        )
        .map(|(mut hits, _)| {
            hits.remove(0)
                .into_iter()
                .map(|h| h.record.id)
                .collect::<Vec<_>>()
        })
    };
    let fail = MissingIds::FailUnfiltered;
    // unknown and deleted ids alike
    for ids in [&["a", "nope"][..], &["c"], &["a", "b", "nope", "nope"]] {
        assert!(
            matches!(
                query(&meta, ids, None, fail),
                Err(StoreError::QueryIdNotFound)
            ),
            "{ids:?}"
        );
        let found = query(&meta, ids, None, MissingIds::Skip).unwrap();
        assert!(found.iter().all(|id| id == "a" || id == "b"), "{ids:?}");
    }
    assert_eq!(
        query(&meta, &["b", "a", "a"], None, fail).unwrap(),
        ["a", "b"]
    );
    assert!(query(&meta, &[], None, fail).unwrap().is_empty());
    // a filter turns the rule off, and so does a collection without a dimension
    let w = Where::parse(&json!({"k": {"$ne": 1}})).unwrap().unwrap();
    assert_eq!(query(&meta, &["a", "nope"], Some(&w), fail).unwrap(), ["a"]);
    assert!(query(&never_written, &["nope"], None, fail)
        .unwrap()
        .is_empty());
}

#[test]
fn queries_while_the_indexer_inserts_return_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("racing")).unwrap();
    let meta = new_collection(&p, "c1", Space::L2);
    let dim = 8;
    let mut rng = Lcg(11);
    let mut written = 0;
    let mut checked = 0;
    // write in waves so the indexer is busy while the queries run
    for wave in 0..6 {
        let recs: Vec<RecordInput> = (wave * 2000..(wave + 1) * 2000)
            .map(|i| record(i, &mut rng, dim))
            .collect();
        p.write(&meta, WriteMode::Add, recs).unwrap();
        written += 2000;
        for i in 0..30 {
            let q = vec![vec![(i % 7) as f32 * 0.1; dim]];
            let req = QueryRequest {
                embeddings: &q,
                n_results: 20,
                ids: None,
                where_: None,
                where_document: None,
                include: Include::default(),
                missing_ids: MissingIds::Skip,
            };
            let hits = p.query(&meta, &req).unwrap().0.remove(0);
            assert_eq!(hits.len(), 20);
            let ids: std::collections::HashSet<&str> =
                hits.iter().map(|h| h.record.id.as_str()).collect();
            assert_eq!(ids.len(), hits.len(), "a record came back twice");
            for w in hits.windows(2) {
                assert!(w[0].distance <= w[1].distance);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 180);
    wait_indexed(&p, &meta.id);
    assert_eq!(p.indexing_progress(&meta).unwrap(), (written, 0));
}

/// Every live label with its current embedding (search form), as the collection serves.
fn served(coll: &super::collection::Collection) -> std::collections::BTreeMap<u32, Vec<f32>> {
    let st = coll.state.read();
    let vectors = st.vectors.as_ref().expect("vectors");
    st.live
        .iter()
        .map(|l| (l, vectors.get(l).expect("live label has a vector").to_vec()))
        .collect()
}

#[test]
fn a_reopen_serves_from_the_index_files_unless_rocksdb_moved_on() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 8;
    let index_of = |id: &Uuid| {
        dir.path()
            .join("reopen/knowledge-graph/index")
            .join(id.to_string())
    };
    let meta;
    {
        let reg = registry(dir.path());
        let p = reg.project(&pn("reopen")).unwrap();
        meta = new_collection(&p, "c1", Space::Cosine);
        let mut rng = Lcg(5);
        p.write(
            &meta,
            WriteMode::Add,
            (0..1000).map(|i| record(i, &mut rng, dim)).collect(),
        )
        .unwrap();
        wait_indexed(&p, &meta.id);
        drop(p);
        reg.close_all();
    }
    let stale = dir.path().join("stale-index");
    super::fsio::copy_dir(&index_of(&meta.id), &stale).unwrap();
    let want = {
        let reg = registry(dir.path());
        let p = reg.project(&pn("reopen")).unwrap();
        // as a request would: the catalog entry knows the dimension the first add fixed
        let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
        let coll = p.collection(&meta).unwrap();
        assert!(coll.loaded_from_files, "nothing was written since the save");
        assert_eq!(served(&coll).len(), 1000);
        // new embeddings for some, deletes, and new records: RocksDB moves on
        let mut rng = Lcg(77);
        p.write(
            &meta,
            WriteMode::Upsert,
            (0..100).map(|i| record(i * 7, &mut rng, dim)).collect(),
        )
        .unwrap();
        let del: Vec<String> = (0..50).map(|i| format!("id-{}", i * 11 + 1)).collect();
        p.delete_records(&meta, Some(&del), None, None, None)
            .unwrap();
        p.write(
            &meta,
            WriteMode::Add,
            (1000..1030).map(|i| record(i, &mut rng, dim)).collect(),
        )
        .unwrap();
        wait_indexed(&p, &meta.id);
        let want = served(&coll);
        assert_eq!(want.len(), 980);
        drop(coll);
        drop(p);
        reg.close_all();
        want
    };
    {
        // saved again on close: the files are current once more
        let reg = registry(dir.path());
        let p = reg.project(&pn("reopen")).unwrap();
        let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
        let coll = p.collection(&meta).unwrap();
        assert!(coll.loaded_from_files);
        assert_eq!(served(&coll), want);
        assert_eq!(coll.state.read().unindexed(), 0);
        drop(coll);
        drop(p);
        reg.close_all();
    }
    // files older than RocksDB are checked record by record, and the state is the same
    std::fs::remove_dir_all(index_of(&meta.id)).unwrap();
    super::fsio::copy_dir(&stale, &index_of(&meta.id)).unwrap();
    let reg = registry(dir.path());
    let p = reg.project(&pn("reopen")).unwrap();
    let meta = p.collection_meta(DEFAULT_DATABASE, "c1").unwrap();
    let coll = p.collection(&meta).unwrap();
    assert!(!coll.loaded_from_files, "the files predate three writes");
    assert_eq!(served(&coll), want);
    wait_indexed(&p, &meta.id);
    assert_eq!(served(&coll), want);
}
