//! Moving a project between two real servers over the admin API (docs/admin-api.md,
//! "Snapshots and changes", "Pause deadline", "Incoming copies", "A move, as the operator
//! drives it"): snapshot export and import, changes since a sequence and their replay,
//! the pause deadline, and the errors of each step.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use quiver_placement::protocol::{PROJECT_PAUSED, PROJECT_STATE_HEADER};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Map, Value};

const TOKEN: &str = "transfer-admin-token";
const V2_DB: &str = "databases/default_database";

/// An answer whose body may be binary (snapshots, changes streams).
type Raw = Binary;

/// The `x-quiver-sequence` header, which must be there.
#[track_caller]
fn sequence(r: &Raw) -> u64 {
    r.header("x-quiver-sequence")
        .unwrap_or_else(|| panic!("no x-quiver-sequence header: {:?}", r.headers))
        .parse()
        .expect("x-quiver-sequence is an integer")
}

impl<'a> Admin<'a> {
    /// A request with a binary body (or none), keeping the answer's bytes.
    async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Raw {
        self.binary(method, path, body, "application/octet-stream")
            .await
    }

    async fn info(&self, p: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/projects/{p}"), None)
            .await;
        r.ok_object().clone()
    }

    /// B's `sourceSequence` (the copy must be incoming).
    async fn source_sequence(&self, p: &str) -> u64 {
        let info = self.info(p).await;
        assert_eq!(info["state"], json!("incoming"), "{info}");
        info["sourceSequence"]
            .as_u64()
            .unwrap_or_else(|| panic!("no sourceSequence: {info}"))
    }

    /// `GET …/snapshot`, asserting the answer's shape; returns the tar and its sequence.
    async fn snapshot(&self, p: &str) -> (Vec<u8>, u64) {
        let r = self
            .raw(Method::GET, &format!("/projects/{p}/snapshot"), None)
            .await;
        assert_eq!(r.status, 200, "snapshot of {p}: {}", r.resp().text);
        assert_eq!(r.body_error, None, "snapshot stream cut");
        assert_eq!(r.header("content-type"), Some("application/x-tar"));
        let seq = sequence(&r);
        (r.bytes, seq)
    }

    async fn import(&self, p: &str, source_sequence: u64, tar: Vec<u8>) -> Resp {
        self.raw(
            Method::PUT,
            &format!("/projects/{p}/snapshot?sourceSequence={source_sequence}"),
            Some(tar),
        )
        .await
        .resp()
    }

    /// `GET …/changes?since=…`, asserting a complete stream; returns it and its sequence.
    async fn changes(&self, p: &str, since: u64) -> (Vec<u8>, u64) {
        let r = self
            .raw(
                Method::GET,
                &format!("/projects/{p}/changes?since={since}"),
                None,
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "changes of {p} since {since}: {}",
            r.resp().text
        );
        assert_eq!(r.body_error, None, "changes stream cut");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-quiver-changes")
        );
        let seq = sequence(&r);
        (r.bytes, seq)
    }

    async fn apply(&self, p: &str, stream: Vec<u8>) -> Resp {
        self.raw(
            Method::POST,
            &format!("/projects/{p}/changes"),
            Some(stream),
        )
        .await
        .resp()
    }
}

/// One changes stream, decoded (panics on anything malformed).
#[derive(Debug)]
struct Changes {
    /// (first sequence, batch bytes) of each batch frame.
    batches: Vec<(u64, usize)>,
    /// `upto` of the end frame.
    end: u64,
}

fn decode_changes(mut b: &[u8]) -> Changes {
    let mut batches = Vec::new();
    // the source frame first: kind 2 and the source incarnation's 16-byte id
    assert!(
        b.len() >= 17 && b[0] == 2,
        "changes stream without its source frame"
    );
    b = &b[17..];
    loop {
        assert!(!b.is_empty(), "changes stream without its end frame");
        let kind = b[0];
        let seq = u64::from_be_bytes(b[1..9].try_into().expect("sequence"));
        match kind {
            0 => {
                assert_eq!(b.len(), 9, "bytes after the end frame");
                return Changes { batches, end: seq };
            }
            1 => {
                let len = u32::from_be_bytes(b[9..13].try_into().expect("length")) as usize;
                assert!(b.len() >= 13 + len, "batch frame cut short");
                // a RocksDB write batch: 8-byte sequence, 4-byte count, records
                assert!(len >= 12, "write batch of {len} bytes");
                batches.push((seq, len));
                b = &b[13 + len..];
            }
            other => panic!("unknown frame kind {other}"),
        }
    }
}

/// Ships A's changes since B's `sourceSequence` to B; returns (applied batches, B's new
/// `sourceSequence`).
async fn ship(a: &Admin<'_>, b: &Admin<'_>, p: &str) -> (u64, u64) {
    let since = b.source_sequence(p).await;
    let (stream, seq) = a.changes(p, since).await;
    let decoded = decode_changes(&stream);
    assert!(
        decoded.end >= seq,
        "stream ends at {} before {seq}",
        decoded.end
    );
    for (s, _) in &decoded.batches {
        assert!(*s > since, "batch at {s} not after {since}");
    }
    let r = b.apply(p, stream).await;
    let body = r.ok_object();
    assert_eq!(body["project"], json!(p));
    let applied = body["appliedBatches"].as_u64().expect("appliedBatches");
    assert_eq!(applied, decoded.batches.len() as u64, "{body}");
    let reached = body["sourceSequence"].as_u64().expect("sourceSequence");
    assert_eq!(reached, decoded.end.max(since), "{body}");
    assert_eq!(b.source_sequence(p).await, reached);
    (applied, reached)
}

fn vector(rng: &mut rand::rngs::StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Records `{prefix}{i}` for i in `range`, with documents and metadata.
fn records(
    rng: &mut rand::rngs::StdRng,
    prefix: &str,
    range: std::ops::Range<usize>,
    dim: usize,
) -> Value {
    let ids: Vec<String> = range.clone().map(|i| format!("{prefix}{i}")).collect();
    let embs: Vec<Vec<f32>> = range.clone().map(|_| vector(rng, dim)).collect();
    let docs: Vec<String> = range
        .clone()
        .map(|i| format!("document {prefix}{i} about topic {}", i % 7))
        .collect();
    let mds: Vec<Value> = range
        .map(|i| json!({"i": i, "grp": i % 5, "tag": format!("t{}", i % 3), "even": i % 2 == 0}))
        .collect();
    json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds})
}

/// Everything a client can read of a project through `/api/v1`: each collection's
/// catalog entry and count, and each record's document, metadata and embedding.
async fn dump(s: &TestServer, p: &str) -> Value {
    let list = s.get(&format!("/api/v1/{p}/collections")).await;
    let mut out = Map::new();
    for c in list.ok_object()["collections"]
        .as_array()
        .expect("collections")
    {
        let name = c["name"].as_str().expect("name").to_string();
        let count = s.count(p, &name).await;
        let got = s
            .get_records(
                p,
                &name,
                &json!({"include": ["documents", "metadatas", "embeddings", "uris"]}),
            )
            .await;
        let ids = ids_of(&got["ids"]);
        assert_eq!(
            ids.len() as u64,
            count,
            "{p}/{name}: get returns every record"
        );
        let mut recs = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            recs.insert(
                id.clone(),
                json!({
                    "document": got["documents"][i],
                    "metadata": got["metadatas"][i],
                    "embedding": got["embeddings"][i],
                    "uri": got["uris"][i],
                }),
            );
        }
        out.insert(
            name,
            json!({
                "id": c["id"],
                "metadata": c["metadata"],
                "dimension": c["dimension"],
                "configuration": c["configuration"],
                "count": count,
                "records": recs,
            }),
        );
    }
    Value::Object(out)
}

/// Top-k ids and distances of `q` in `coll`.
async fn top_k(s: &TestServer, p: &str, coll: &str, q: &Value) -> (Vec<String>, Vec<f64>) {
    let res = s.query(p, coll, q).await;
    let ids = ids_of(&res["ids"][0]);
    let dists = res["distances"][0]
        .as_array()
        .expect("distances")
        .iter()
        .map(|d| d.as_f64().expect("distance"))
        .collect();
    (ids, dists)
}

/// A few queries (plain and filtered) for each collection of the moved project.
fn queries(rng: &mut rand::rngs::StdRng) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (coll, dim) in [("cos", 8), ("euc", 8), ("late", 3)] {
        for _ in 0..4 {
            out.push((
                coll,
                json!({"query_embeddings": [vector(rng, dim)], "n_results": 10, "include": ["distances"]}),
            ));
        }
        out.push((
            coll,
            json!({"query_embeddings": [vector(rng, dim)], "n_results": 7,
                   "where": {"$and": [{"grp": {"$in": [1, 2, 9]}}, {"even": true}]},
                   "include": ["distances"]}),
        ));
        out.push((
            coll,
            json!({"query_embeddings": [vector(rng, dim)], "n_results": 5,
                   "where": {"tag": "t1"}, "where_document": {"$contains": "topic 3"},
                   "include": ["distances"]}),
        ));
    }
    out
}

/// Asserts that the client requests below are refused as "moved" by this copy.
async fn assert_serves_no_client(s: &TestServer, p: &str, what: &str) {
    let r = s.get(&cpath(p, "cos", "")).await;
    assert_moved(&r, &format!("{what}: v1 get collection"));
    let r = s.get(&cpath(p, "cos", "/count")).await;
    assert_moved(&r, &format!("{what}: v1 count"));
    let r = s
        .post(
            &cpath(p, "cos", "/add"),
            &json!({"ids": ["zz"], "embeddings": [vec![0.0f32; 8]]}),
        )
        .await;
    assert_moved(&r, &format!("{what}: v1 add"));
    let r = s
        .get(&format!("/api/v2/tenants/{p}/{V2_DB}/collections"))
        .await;
    assert_moved(&r, &format!("{what}: v2 list collections"));
    let r = s.get(&format!("/api/v2/tenants/{p}")).await;
    assert_moved(&r, &format!("{what}: v2 get tenant"));
    let listed = s.get("/api/v1/projects").await;
    assert!(
        !listed.text.contains(&format!("\"{p}\"")),
        "{what}: a copy that does not serve is listed: {}",
        listed.text
    );
}

/// The collection id (for v2 paths).
async fn coll_id(s: &TestServer, p: &str, coll: &str) -> String {
    s.collection(p, coll).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn store_root(s: &TestServer, p: &str) -> PathBuf {
    s.workspace().join(p).join("knowledge-graph")
}

/// Entries of a tar archive: (path, size, is a regular file).
fn tar_entries(tar: &[u8]) -> Vec<(String, u64, bool)> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in archive.entries().expect("tar") {
        let mut e = e.expect("tar entry");
        let path = e.path().expect("path").display().to_string();
        let size = e.header().size().expect("size");
        let file = e.header().entry_type().is_file();
        let mut sink = Vec::new();
        e.read_to_end(&mut sink).expect("entry data");
        out.push((path, size, file));
    }
    out
}

/// Waits until `dir` holds no entries (or does not exist).
async fn assert_empty_soon(dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = list_tree(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: left behind in {}: {left:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Project directories in the workspace (the staging area excluded).
fn project_dirs(s: &TestServer) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(s.workspace())
        .expect("workspace")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort();
    out
}

// ---- 1. a whole move, by hand ----

#[tokio::test]
async fn a_whole_move_by_hand_keeps_every_record_and_answer() {
    let a_srv = TestServer::start(&[]).await;
    let mut b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let p = "moving-project";
    let mut rng = rand::rngs::StdRng::seed_from_u64(4242);

    // the project on A: a cosine and an l2 collection (and one to delete later)
    let hnsw = |space: &str| {
        json!({"configuration": {"hnsw": {"space": space, "ef_search": 600, "ef_construction": 200}},
               "metadata": {"owner": "team-a"}})
    };
    a_srv.create_collection(p, "cos", hnsw("cosine")).await;
    a_srv.create_collection(p, "euc", hnsw("l2")).await;
    a_srv.create_collection(p, "doomed", json!({})).await;
    for chunk in 0..3 {
        let r = records(&mut rng, "c", chunk * 100..(chunk + 1) * 100, 8);
        a_srv.add(p, "cos", &r).await;
    }
    for chunk in 0..2 {
        let r = records(&mut rng, "e", chunk * 100..(chunk + 1) * 100, 8);
        a_srv.add(p, "euc", &r).await;
    }
    a_srv
        .add(p, "doomed", &records(&mut rng, "d", 0..20, 4))
        .await;
    assert_eq!(a.info(p).await["records"], json!(520));

    // 1. snapshot from A, imported on B as an incoming copy (with graph dumps)
    for c in ["cos", "euc", "doomed"] {
        a_srv.wait_indexed(p, c, Duration::from_secs(60)).await;
    }
    let doomed_id = coll_id(&a_srv, p, "doomed").await;
    let (tar, s0) = a.snapshot(p).await;
    assert!(s0 > 0);
    let entries = tar_entries(&tar);
    assert!(
        entries
            .iter()
            .any(|(n, _, f)| n.starts_with(&format!("index/{doomed_id}/")) && *f),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|(n, _, f)| n == "db/CURRENT" && *f),
        "{entries:?}"
    );
    for (name, _, _) in &entries {
        assert!(
            name.starts_with("db") || name.starts_with("index") || name == "QUOTAS",
            "unexpected snapshot entry {name}"
        );
    }
    let imported = b.import(p, s0, tar).await;
    assert_eq!(imported.status, 201, "{}", imported.text);
    assert_eq!(imported.body["name"], json!(p));
    assert_eq!(imported.body["state"], json!("incoming"));
    assert_eq!(imported.body["sourceSequence"], json!(s0));
    let info = b.info(p).await;
    assert_eq!(info["state"], json!("incoming"), "{info}");
    assert_eq!(info["sourceSequence"], json!(s0), "{info}");
    assert_eq!(info["movedTo"], Value::Null, "{info}");
    assert!(!store_root(&b_srv, p).join("stats.json").exists());
    assert_serves_no_client(&b_srv, p, "incoming copy").await;
    // an incoming copy is not paused or exported either
    let r = b
        .call(Method::POST, &format!("/projects/{p}/pause"), None)
        .await;
    assert_moved(&r, "pause of an incoming copy");
    let r = b
        .raw(Method::GET, &format!("/projects/{p}/snapshot"), None)
        .await;
    assert_moved(&r.resp(), "snapshot of an incoming copy");
    // and it is not in the admin stats' fenced count, but it is a project
    let stats = b.call(Method::GET, "/stats", None).await;
    assert_eq!(
        stats.ok_object()["fencedProjects"],
        json!(0),
        "{}",
        stats.text
    );
    assert_eq!(stats.body["projects"], json!(1), "{}", stats.text);

    // A keeps serving: every kind of write after the snapshot
    a_srv
        .add(p, "cos", &records(&mut rng, "c", 300..350, 8))
        .await;
    let mut ups = records(&mut rng, "e", 0..20, 8);
    let extra = records(&mut rng, "e", 200..210, 8);
    for k in ["ids", "embeddings", "documents", "metadatas"] {
        let more = extra[k].as_array().expect("list").clone();
        ups[k].as_array_mut().expect("list").extend(more);
    }
    assert_ok(
        &a_srv.post(&cpath(p, "euc", "/upsert"), &ups).await,
        "upsert",
    );
    let upd_ids: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let upd_docs: Vec<String> = (0..30).map(|i| format!("rewritten c{i} topic 3")).collect();
    let upd_mds: Vec<Value> = (0..30)
        .map(|i| json!({"grp": 9, "note": format!("n{i}")}))
        .collect();
    let r = a_srv
        .post(
            &cpath(p, "cos", "/update"),
            &json!({"ids": upd_ids, "documents": upd_docs, "metadatas": upd_mds}),
        )
        .await;
    assert_ok(&r, "update documents and metadata");
    let emb_ids: Vec<String> = (30..40).map(|i| format!("c{i}")).collect();
    let embs: Vec<Vec<f32>> = (30..40).map(|_| vector(&mut rng, 8)).collect();
    let r = a_srv
        .post(
            &cpath(p, "cos", "/update"),
            &json!({"ids": emb_ids, "embeddings": embs}),
        )
        .await;
    assert_ok(&r, "update embeddings");
    let del_ids: Vec<String> = (100..110).map(|i| format!("c{i}")).collect();
    let r = a_srv
        .post(&cpath(p, "cos", "/delete"), &json!({"ids": del_ids}))
        .await;
    assert_ok(&r, "delete ids");
    let r = a_srv
        .post(&cpath(p, "euc", "/delete"), &json!({"where": {"grp": 3}}))
        .await;
    assert_ok(&r, "delete where");
    a_srv
        .create_collection(
            p,
            "late",
            json!({"configuration": {"hnsw": {"space": "l2", "ef_search": 600}}}),
        )
        .await;
    a_srv
        .add(p, "late", &records(&mut rng, "l", 0..40, 3))
        .await;
    assert_ok(
        &a_srv.delete(&cpath(p, "doomed", "")).await,
        "delete collection",
    );
    let r = a_srv
        .put(
            &cpath(p, "euc", ""),
            &json!({"new_metadata": {"owner": "team-b"}}),
        )
        .await;
    assert_ok(&r, "modify collection");

    // 2. catch up while A serves
    let (applied, reached) = ship(&a, &b, p).await;
    assert!(applied > 0, "writes after the snapshot were shipped");
    assert!(reached > s0);
    assert_eq!(b.info(p).await["state"], json!("incoming"));

    // more writes, through v2 too, then the pause
    let cos_id = coll_id(&a_srv, p, "cos").await;
    let v2_records = format!("/api/v2/tenants/{p}/{V2_DB}/collections/{cos_id}");
    let r = a_srv
        .post(
            &format!("{v2_records}/add"),
            &records(&mut rng, "v", 0..15, 8),
        )
        .await;
    assert_ok(&r, "v2 add");
    let r = a_srv
        .post(
            &format!("{v2_records}/upsert"),
            &json!({"ids": ["c5", "v3"], "embeddings": [vector(&mut rng, 8), vector(&mut rng, 8)],
                    "documents": ["upserted c5 topic 3", "upserted v3"],
                    "metadatas": [{"tag": "t1"}, {"grp": 1}]}),
        )
        .await;
    assert_ok(&r, "v2 upsert");
    let r = a_srv
        .post(&format!("{v2_records}/delete"), &json!({"ids": ["v14"]}))
        .await;
    assert_ok(&r, "v2 delete");

    // 3. pause A
    let r = a
        .call(
            Method::POST,
            &format!("/projects/{p}/pause"),
            Some(&json!({"timeoutMs": 120000})),
        )
        .await;
    let paused = r.ok_object().clone();
    assert_eq!(paused["paused"], json!(true), "{paused}");
    assert_eq!(paused["timeoutMs"], json!(120000), "{paused}");
    let pause_seq = paused["sequence"].as_u64().expect("sequence");
    assert!(pause_seq > reached, "{paused}");
    let r = a_srv
        .post(&cpath(p, "cos", "/add"), &records(&mut rng, "x", 0..1, 8))
        .await;
    assert_paused(&r, "v1 add while paused");
    let r = a_srv
        .post(
            &format!("{v2_records}/upsert"),
            &json!({"ids": ["c1"], "embeddings": [vector(&mut rng, 8)], "documents": ["no"]}),
        )
        .await;
    assert_paused(&r, "v2 upsert while paused");
    let r = a_srv
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "nope"}),
        )
        .await;
    assert_paused(&r, "create collection while paused");

    // 4. ship until B holds everything up to the pause
    let mut rounds = 0;
    while b.source_sequence(p).await < pause_seq {
        rounds += 1;
        assert!(rounds <= 5, "B never reached the pause sequence");
        ship(&a, &b, p).await;
    }
    assert!(rounds >= 1);

    // what A serves, the last state before the fence (reads work while paused)
    let before = dump(&a_srv, p).await;
    let qs = queries(&mut rng);
    let mut answers = Vec::new();
    for (coll, q) in &qs {
        answers.push(top_k(&a_srv, p, coll, q).await);
    }
    assert_eq!(
        before.as_object().expect("dump").keys().collect::<Vec<_>>(),
        ["cos", "euc", "late"]
    );
    assert_eq!(before["cos"]["count"], json!(300 + 50 - 10 + 14));
    assert_eq!(before["late"]["count"], json!(40));

    // 5. fence A, ship once more: nothing left
    let b_url = b_srv.url("");
    let r = a
        .call(
            Method::POST,
            &format!("/projects/{p}/fence"),
            Some(&json!({"movedTo": b_url})),
        )
        .await;
    assert_eq!(r.ok_object()["fenced"], json!(true), "{}", r.text);
    assert_eq!(r.body["movedTo"], json!(b_url));
    let last = b.source_sequence(p).await;
    let (applied, reached) = ship(&a, &b, p).await;
    assert_eq!(applied, 0, "nothing was written after the pause");
    assert_eq!(reached, last);
    let msg = assert_moved(&a_srv.get(&cpath(p, "cos", "")).await, "A after the fence");
    assert!(msg.contains(&b_url), "{msg}");

    // 6. activate B, resume A
    let r = b
        .call(Method::DELETE, &format!("/projects/{p}/fence"), None)
        .await;
    assert_eq!(r.ok_object()["wasFenced"], json!(true), "{}", r.text);
    let info = b.info(p).await;
    assert_eq!(info["state"], json!("active"), "{info}");
    assert_eq!(info["sourceSequence"], Value::Null, "{info}");
    let r = a
        .call(Method::POST, &format!("/projects/{p}/resume"), None)
        .await;
    assert_eq!(r.ok_object()["wasPaused"], json!(true), "{}", r.text);
    assert_moved(
        &a_srv.get(&cpath(p, "cos", "/count")).await,
        "A after the resume",
    );

    // B serves exactly what A served
    let after = dump(&b_srv, p).await;
    assert_eq!(after, before, "B's copy differs from A's");
    let total: u64 = ["cos", "euc", "late"]
        .iter()
        .map(|c| before[*c]["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(b.info(p).await["records"], json!(total));
    for ((coll, q), expected) in qs.iter().zip(&answers) {
        let got = top_k(&b_srv, p, coll, q).await;
        assert_eq!(got.0, expected.0, "{coll} {q}");
        for (x, y) in got.1.iter().zip(&expected.1) {
            assert!((x - y).abs() < 1e-5, "{coll} {q}: {got:?} vs {expected:?}");
        }
        assert!(!got.0.is_empty(), "{coll} {q}: no results");
    }
    let listed = b_srv.get("/api/v1/projects").await;
    assert!(listed.text.contains(p), "{}", listed.text);
    // no graph dumps are left of the collection deleted after the snapshot
    let mut live_ids: Vec<String> = ["cos", "euc", "late"]
        .iter()
        .map(|c| before[*c]["id"].as_str().expect("id").to_string())
        .collect();
    live_ids.sort();
    let index = store_root(&b_srv, p).join("index");
    // (`<id>.tmp` and `<id>.old` are B's own indexer saving a graph right now)
    let leftovers: Vec<String> = std::fs::read_dir(&index)
        .expect("index dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| {
            !live_ids
                .iter()
                .any(|id| n.split('.').next() == Some(id.as_str()))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "index/ of B keeps dumps of deleted collections: {leftovers:?}"
    );

    // B takes new writes, through both APIs
    b_srv
        .add(p, "late", &records(&mut rng, "l", 40..41, 3))
        .await;
    let r = b_srv
        .post(
            &format!("/api/v2/tenants/{p}/{V2_DB}/collections"),
            &json!({"name": "newer"}),
        )
        .await;
    assert_ok(&r, "v2 create collection on B");
    assert_eq!(b_srv.count(p, "late").await, 41);

    // 7. A's copy goes after the grace period
    let r = a
        .call(Method::DELETE, &format!("/projects/{p}"), None)
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(true));

    // B keeps it all across a restart
    let before_restart = dump(&b_srv, p).await;
    b_srv.terminate().await;
    b_srv.restart().await;
    let b = Admin::open(&b_srv);
    assert_eq!(b.info(p).await["state"], json!("active"));
    assert_eq!(dump(&b_srv, p).await, before_restart);
    for ((coll, q), expected) in qs.iter().zip(&answers) {
        if *coll == "late" {
            continue; // took a record since
        }
        assert_eq!(top_k(&b_srv, p, coll, q).await.0, expected.0, "{coll} {q}");
    }
}

/// What a client writing to A during a move saw acknowledged.
#[derive(Default, Debug)]
struct Acknowledged {
    added: Vec<String>,
    deleted: Vec<String>,
    /// Refused as paused (the writer stops at the first).
    paused: bool,
}

/// Writes to `base` (A's v1 collection path) back to back until refused as paused:
/// adds, upserts of earlier ids and deletes.
async fn keep_writing(client: reqwest::Client, base: String) -> Acknowledged {
    let mut ack = Acknowledged::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    for i in 0..100_000usize {
        let (path, body, added, deleted) = match i % 5 {
            3 if i > 10 => {
                let id = format!("w{}", i - 7);
                let emb = vector(&mut rng, 4);
                (
                    "/upsert",
                    json!({"ids": [id], "embeddings": [emb], "documents": [format!("again {i}")]}),
                    None,
                    None,
                )
            }
            4 if i > 10 => {
                let id = format!("w{}", i - 9);
                ("/delete", json!({"ids": [id.clone()]}), None, Some(id))
            }
            _ => {
                let id = format!("w{i}");
                let emb = vector(&mut rng, 4);
                (
                    "/add",
                    json!({"ids": [id.clone()], "embeddings": [emb], "documents": [format!("doc {i}")],
                           "metadatas": [{"i": i}]}),
                    Some(id),
                    None,
                )
            }
        };
        let r = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .expect("write to A");
        match r.status().as_u16() {
            200 | 201 => {
                ack.added.extend(added);
                ack.deleted.extend(deleted);
            }
            503 => {
                let state = r
                    .headers()
                    .get(PROJECT_STATE_HEADER)
                    .map(|v| v.to_str().unwrap_or("").to_string());
                assert_eq!(state.as_deref(), Some(PROJECT_PAUSED), "writer refused");
                ack.paused = true;
                return ack;
            }
            other => panic!(
                "write {i} failed: {other} {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }
    ack
}

#[tokio::test]
async fn a_move_under_concurrent_writes_loses_no_acknowledged_write() {
    let a_srv = TestServer::start(&[]).await;
    let b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let p = "busy-project";
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    a_srv
        .create_collection(
            p,
            "live",
            json!({"configuration": {"hnsw": {"space": "l2"}}}),
        )
        .await;
    a_srv
        .add(p, "live", &records(&mut rng, "s", 0..100, 4))
        .await;

    let writer = tokio::spawn(keep_writing(
        a_srv.client.clone(),
        a_srv.url(&cpath(p, "live", "")),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // snapshot and catch-ups while the writes go on
    let (tar, s0) = a.snapshot(p).await;
    let r = b.import(p, s0, tar).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut applied = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        applied += ship(&a, &b, p).await.0;
    }
    assert!(applied > 0, "writes went on during the catch-up");
    let r = a
        .call(
            Method::POST,
            &format!("/projects/{p}/pause"),
            Some(&json!({"timeoutMs": 60000})),
        )
        .await;
    let pause_seq = r.ok_object()["sequence"].as_u64().expect("sequence");
    let ack = writer.await.expect("writer");
    assert!(ack.paused, "the writer ran until the pause");
    assert!(
        ack.added.len() > 20,
        "too few writes to mean anything: {ack:?}"
    );
    while b.source_sequence(p).await < pause_seq {
        ship(&a, &b, p).await;
    }
    let before = dump(&a_srv, p).await;
    a.call(Method::POST, &format!("/projects/{p}/fence"), None)
        .await
        .ok_object();
    assert_eq!(ship(&a, &b, p).await.0, 0);
    b.call(Method::DELETE, &format!("/projects/{p}/fence"), None)
        .await
        .ok_object();

    let after = dump(&b_srv, p).await;
    assert_eq!(after, before, "B's copy differs from A's");
    let held = &after["live"]["records"];
    for id in &ack.added {
        let gone = ack.deleted.contains(id);
        assert_eq!(
            held.get(id).is_none(),
            gone,
            "acknowledged write of {id} on B"
        );
    }
    for id in &ack.deleted {
        assert!(held.get(id).is_none(), "acknowledged delete of {id} on B");
    }
}

// ---- 2. errors ----

/// A project with one collection of `n` records on `s`.
async fn seed(s: &TestServer, p: &str, n: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    s.create_collection(p, "cos", json!({})).await;
    s.add(p, "cos", &records(&mut rng, "c", 0..n, 8)).await;
}

#[tokio::test]
async fn import_refuses_an_existing_project_and_replaces_an_incoming_copy() {
    let a_srv = TestServer::start(&[]).await;
    let b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let p = "import-me";
    seed(&a_srv, p, 30).await;
    let (tar, s1) = a.snapshot(p).await;

    // an active project of that name on B is never overwritten
    seed(&b_srv, p, 3).await;
    let r = b.import(p, s1, tar.clone()).await;
    let msg = r.chroma_err(409, "ProjectExists");
    assert!(msg.contains(p), "{msg}");
    assert_eq!(b_srv.count(p, "cos").await, 3);
    // nor is a fenced one (the copy left behind by an earlier move)
    let r = b
        .call(Method::POST, &format!("/projects/{p}/fence"), None)
        .await;
    r.ok_object();
    b.import(p, s1, tar.clone())
        .await
        .chroma_err(409, "ProjectExists");
    assert_eq!(b.info(p).await["state"], json!("fenced"));
    b.call(Method::DELETE, &format!("/projects/{p}/fence"), None)
        .await
        .ok_object();
    assert_eq!(b_srv.count(p, "cos").await, 3);

    // under another name it goes in, and a retried import replaces the incoming copy
    let q = "import-me-too";
    let r = b.import(q, s1, tar).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(b.source_sequence(q).await, s1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    a_srv.add(p, "cos", &records(&mut rng, "n", 0..12, 8)).await;
    let (tar2, s2) = a.snapshot(p).await;
    assert!(s2 > s1);
    let r = b.import(q, s2, tar2).await;
    assert_eq!(r.status, 201, "re-import onto an incoming copy: {}", r.text);
    assert_eq!(r.body["state"], json!("incoming"));
    assert_eq!(r.body["sourceSequence"], json!(s2));
    assert_eq!(b.source_sequence(q).await, s2);
    b.call(Method::DELETE, &format!("/projects/{q}/fence"), None)
        .await
        .ok_object();
    assert_eq!(
        b_srv.count(q, "cos").await,
        42,
        "the second snapshot replaced the first"
    );
    // once active, it is a project like any other: a new import is refused
    let (tar3, s3) = a.snapshot(p).await;
    b.import(q, s3, tar3.clone())
        .await
        .chroma_err(409, "ProjectExists");
    // rolling a move back removes the incoming copy; the name is free again
    let r2 = "import-me-three";
    assert_eq!(b.import(r2, s3, tar3.clone()).await.status, 201);
    let r = b
        .call(Method::DELETE, &format!("/projects/{r2}"), None)
        .await;
    assert_eq!(r.ok_object()["deleted"], json!(true));
    assert!(!b_srv.workspace().join(r2).exists());
    assert_eq!(b.import(r2, s3, tar3).await.status, 201);
    assert_empty_soon(&b_srv.workspace().join(".staging"), "imports").await;
}

#[tokio::test]
async fn bad_imports_are_refused_and_leave_nothing_behind() {
    let a_srv = TestServer::start(&[]).await;
    let b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    seed(&a_srv, "source", 20).await;
    let (tar, seq) = a.snapshot("source").await;
    let staging = b_srv.workspace().join(".staging");

    // no or a malformed sourceSequence
    for query in [
        "",
        "?sourceSequence=",
        "?sourceSequence=abc",
        "?sourceSequence=-1",
        "?since=3",
    ] {
        let r = b
            .raw(
                Method::PUT,
                &format!("/projects/target/snapshot{query}"),
                Some(tar.clone()),
            )
            .await
            .resp();
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(msg.contains("sourceSequence"), "{query}: {msg}");
    }
    // an illegal project name
    let r = b.import("x", seq, tar.clone()).await;
    r.chroma_err(400, "InvalidArgumentError");

    // garbage, an empty body, and a snapshot cut short
    let mut garbage = vec![0x5au8; 3000];
    garbage[..12].copy_from_slice(b"not a tar!!!");
    let cut_at = tar.len() / 2 + 100;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("short garbage", b"hello".to_vec()),
        ("empty body", Vec::new()),
        ("cut in the middle of an entry", tar[..cut_at].to_vec()),
    ];
    for (what, body) in cases {
        let r = b.import("target", seq, body).await;
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(!msg.is_empty(), "{what}");
        assert_eq!(project_dirs(&b_srv), Vec::<String>::new(), "{what}");
        assert_empty_soon(&staging, what).await;
    }

    // a tar of the right shape whose store does not open: a db/ without its files
    let mut only_current = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(16);
    h.set_mode(0o644);
    h.set_cksum();
    only_current
        .append_data(&mut h, "db/CURRENT", &b"MANIFEST-000042\n"[..])
        .expect("append");
    let r = b
        .import("target", seq, only_current.into_inner().expect("tar"))
        .await;
    assert!(
        r.status == 400,
        "a snapshot that does not open as a store is the caller's error: {} {}",
        r.status,
        r.text
    );
    assert_eq!(project_dirs(&b_srv), Vec::<String>::new());
    assert_empty_soon(&staging, "db that does not open").await;

    // a tar without db/
    let mut no_db = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    no_db
        .append_data(&mut h, "index/x.bin", &b"{}"[..])
        .expect("append");
    let r = b
        .import("target", seq, no_db.into_inner().expect("tar"))
        .await;
    let msg = r.chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("db"), "{msg}");

    // entries that are not part of a store, before or after the real ones
    let evil_names: [&[u8]; 6] = [
        b"FENCED",
        b"notes.txt",
        b"../escaped",
        b"db/../../escaped",
        b"/tmp/quiver-transfer-escaped",
        b"QUOTAS/inner",
    ];
    for name in evil_names {
        for at_end in [false, true] {
            let evil = with_raw_entry(&tar, name, b"{\"movedTo\":\"x\"}", at_end);
            let r = b.import("target", seq, evil).await;
            let what = String::from_utf8_lossy(name);
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(msg.contains("not part of a project store"), "{what}: {msg}");
            assert_eq!(project_dirs(&b_srv), Vec::<String>::new(), "{what}");
            assert_empty_soon(&staging, &what).await;
        }
    }
    assert!(!b_srv.workspace().join("escaped").exists());
    assert!(!b_srv
        .workspace()
        .parent()
        .expect("parent")
        .join("escaped")
        .exists());
    assert!(!Path::new("/tmp/quiver-transfer-escaped").exists());

    // QUOTAS must be a readable quotas file
    let cases: [(&str, tar::EntryType, &[u8]); 2] = [
        ("quotas directory", tar::EntryType::Directory, b""),
        (
            "garbage quotas",
            tar::EntryType::Regular,
            b"{\"maxRecords\": \"ten\"}",
        ),
    ];
    for (what, kind, data) in cases {
        let mut t = with_raw_entry(&tar, b"QUOTAS", data, true);
        // the entry is the last one before the two end blocks: set its type
        let at = t.len() - 1024 - 512 - data.len().div_ceil(512) * 512;
        let mut h = tar::Header::from_byte_slice(&t[at..at + 512]).clone();
        h.set_entry_type(kind);
        h.set_cksum();
        t[at..at + 512].copy_from_slice(h.as_bytes());
        let r = b.import("target", seq, t).await;
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(
            msg.contains("QUOTAS") || msg.contains("quotas"),
            "{what}: {msg}"
        );
        assert_eq!(project_dirs(&b_srv), Vec::<String>::new(), "{what}");
        assert_empty_soon(&staging, what).await;
    }

    // a symbolic link is not a store file either
    let mut link = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    link.append_link(&mut h, "db/LINK", "/etc/passwd")
        .expect("link");
    let mut body = link.into_inner().expect("tar");
    body.truncate(body.len() - 1024); // its end blocks; the real snapshot follows
    body.extend_from_slice(&tar);
    let r = b.import("target", seq, body).await;
    let msg = r.chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("db/LINK"), "{msg}");
    assert_eq!(project_dirs(&b_srv), Vec::<String>::new());

    // after all that, the real snapshot still imports
    let r = b.import("target", seq, tar).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_empty_soon(&staging, "good import").await;
}

/// `tar` with one more regular-file entry named `name` (bytes written into the header
/// as they are, so that names the tar crate refuses to write can be tested), first or last.
fn with_raw_entry(tar: &[u8], name: &[u8], data: &[u8], at_end: bool) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    {
        let raw = h.as_old_mut();
        raw.name = [0; 100];
        raw.name[..name.len()].copy_from_slice(name);
    }
    h.set_cksum();
    let mut entry = h.as_bytes().to_vec();
    entry.extend_from_slice(data);
    entry.resize(512 + data.len().div_ceil(512) * 512, 0);
    // the snapshot without its zero end blocks: up to the end of its last entry's data
    let mut body_end = 0;
    for e in tar::Archive::new(tar).entries().expect("tar") {
        let e = e.expect("entry");
        let size = e.header().entry_size().expect("size");
        body_end = e.raw_file_position() + size.div_ceil(512) * 512;
    }
    let body_end = body_end as usize;
    let mut out = Vec::new();
    if at_end {
        out.extend_from_slice(&tar[..body_end]);
        out.extend_from_slice(&entry);
    } else {
        out.extend_from_slice(&entry);
        out.extend_from_slice(&tar[..body_end]);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[tokio::test]
async fn changes_go_only_to_incoming_copies_and_cut_streams_change_nothing() {
    let a_srv = TestServer::start(&[]).await;
    let b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let p = "changes-project";
    seed(&a_srv, p, 50).await;
    let (tar, s0) = a.snapshot(p).await;

    // applying to an active project, or to none
    seed(&b_srv, "active-here", 2).await;
    let (empty_stream, _) = a.changes(p, s0).await;
    assert_eq!(decode_changes(&empty_stream).batches.len(), 0);
    assert_eq!(decode_changes(&empty_stream).end, s0);
    let msg = b
        .apply("active-here", empty_stream.clone())
        .await
        .chroma_err(409, "NotIncoming");
    assert!(msg.contains("active-here"), "{msg}");
    b.apply("nobody-here", empty_stream.clone())
        .await
        .chroma_err(404, "NotFoundError");
    assert!(!b_srv.workspace().join("nobody-here").exists());

    b.import(p, s0, tar).await;
    let r = b.apply(p, empty_stream).await;
    assert_eq!(r.ok_object()["appliedBatches"], json!(0));
    assert_eq!(r.body["sourceSequence"], json!(s0));

    // writes on A, their stream
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for i in 0..4 {
        let recs = records(&mut rng, "w", i * 10..(i + 1) * 10, 8);
        a_srv.add(p, "cos", &recs).await;
    }
    let r = a_srv
        .post(&cpath(p, "cos", "/delete"), &json!({"ids": ["c0", "c1"]}))
        .await;
    assert_ok(&r, "delete");
    let (stream, seq) = a.changes(p, s0).await;
    let decoded = decode_changes(&stream);
    assert_eq!(decoded.batches.len(), 5, "{decoded:?}");
    assert_eq!(decoded.end, seq);

    // cut streams: 400, and the recorded sequence does not move
    // after the source frame (17 bytes), the first batch frame
    let first_frame = 17 + 13 + decoded.batches[0].1;
    let cuts: Vec<(&str, Vec<u8>)> = vec![
        ("without its end frame", stream[..stream.len() - 9].to_vec()),
        ("inside the end frame", stream[..stream.len() - 4].to_vec()),
        ("inside a batch", stream[..first_frame + 20].to_vec()),
        ("inside a frame header", stream[..first_frame + 5].to_vec()),
        ("after the first frame", stream[..first_frame].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, body) in cuts {
        let r = b.apply(p, body).await;
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(msg.contains("cut short"), "{what}: {msg}");
        assert_eq!(b.source_sequence(p).await, s0, "{what}");
    }
    // batches of another incarnation of the project (deleted and created again): 410,
    // nothing applied
    let mut foreign = stream.clone();
    foreign[1] ^= 0xff;
    let msg = b
        .apply(p, foreign)
        .await
        .chroma_err(410, "ChangesUnavailable");
    assert!(msg.contains("incarnation"), "{msg}");
    assert_eq!(b.source_sequence(p).await, s0);
    let mut no_source = stream[17..].to_vec();
    b.apply(p, std::mem::take(&mut no_source))
        .await
        .chroma_err(400, "InvalidArgumentError");
    let mut bad_kind = stream.clone();
    bad_kind[first_frame] = 7;
    b.apply(p, bad_kind)
        .await
        .chroma_err(400, "InvalidArgumentError");
    let mut huge = stream[..first_frame].to_vec();
    huge.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    b.apply(p, huge)
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert_eq!(b.source_sequence(p).await, s0);

    // the whole stream, after the partial ones replayed some batches: same data as A
    let r = b.apply(p, stream.clone()).await;
    assert_eq!(r.ok_object()["appliedBatches"], json!(5));
    assert_eq!(r.body["sourceSequence"], json!(seq));
    // applying it again is harmless, and the sequence never goes back
    let r = b.apply(p, stream).await;
    assert_eq!(r.ok_object()["sourceSequence"], json!(seq));
    let (old, _) = a.changes(p, s0).await;
    let older = {
        let mut v = old[..old.len() - 9].to_vec();
        v.push(0);
        v.extend_from_slice(&s0.to_be_bytes());
        v
    };
    let r = b.apply(p, older).await;
    assert_eq!(
        r.ok_object()["sourceSequence"],
        json!(seq),
        "the sequence went back"
    );
    b.call(Method::DELETE, &format!("/projects/{p}/fence"), None)
        .await
        .ok_object();
    assert_eq!(dump(&b_srv, p).await, dump(&a_srv, p).await);
    assert_eq!(b_srv.count(p, "cos").await, 50 + 40 - 2);
    // now active: no more changes
    let (tail, _) = a.changes(p, seq).await;
    b.apply(p, tail).await.chroma_err(409, "NotIncoming");
}

#[tokio::test]
async fn changes_and_snapshot_requests_are_checked() {
    let a_srv = TestServer::start(&[]).await;
    let a = Admin::open(&a_srv);
    let p = "checked";
    seed(&a_srv, p, 5).await;
    let (_, latest) = a.changes(p, 0).await;

    // since: ahead of the project, missing, not an integer
    let r = a
        .raw(
            Method::GET,
            &format!("/projects/{p}/changes?since={}", latest + 1),
            None,
        )
        .await
        .resp();
    let msg = r.chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("ahead"), "{msg}");
    for query in ["", "?since=", "?since=x", "?since=-2", "?sourceSequence=1"] {
        let r = a
            .raw(Method::GET, &format!("/projects/{p}/changes{query}"), None)
            .await
            .resp();
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(msg.contains("since"), "{query}: {msg}");
    }
    // since the latest: an end frame only
    let (tail, seq) = a.changes(p, latest).await;
    assert_eq!(seq, latest);
    let decoded = decode_changes(&tail);
    assert!(decoded.batches.is_empty());
    assert_eq!(decoded.end, latest);
    // from the beginning: every write the project ever made, in order
    let (all, _) = a.changes(p, 0).await;
    let decoded = decode_changes(&all);
    assert!(!decoded.batches.is_empty());
    assert!(
        decoded.batches.windows(2).all(|w| w[0].0 < w[1].0),
        "{decoded:?}"
    );
    assert_eq!(decoded.end, latest);

    // unknown projects: 404, never created
    for path in [
        "/projects/ghost/snapshot",
        "/projects/ghost/changes?since=0",
    ] {
        let r = a.raw(Method::GET, path, None).await.resp();
        r.chroma_err(404, "NotFoundError");
    }
    let r = a
        .call(Method::PUT, "/projects/ghost/quotas", Some(&json!({})))
        .await;
    r.chroma_err(404, "NotFoundError");
    assert!(!a_srv.workspace().join("ghost").exists());

    // a fenced copy exports nothing, but still answers its changes (the last catch-up)
    let r = a
        .call(
            Method::POST,
            &format!("/projects/{p}/fence"),
            Some(&json!({"movedTo": "http://b:7100"})),
        )
        .await;
    r.ok_object();
    let r = a
        .raw(Method::GET, &format!("/projects/{p}/snapshot"), None)
        .await
        .resp();
    let msg = assert_moved(&r, "snapshot of a fenced project");
    assert!(msg.contains("http://b:7100"), "{msg}");
    let (tail, seq) = a.changes(p, latest).await;
    assert_eq!(seq, latest);
    assert!(decode_changes(&tail).batches.is_empty());
    let (all_fenced, _) = a.changes(p, 0).await;
    assert_eq!(all_fenced, all, "the fenced copy's log is the same");
    assert_empty_soon(&a_srv.workspace().join(".staging"), "exports").await;

    // wrong methods
    let r = a
        .call(Method::DELETE, &format!("/projects/{p}/snapshot"), None)
        .await;
    r.chroma_err(405, "InvalidArgumentError");
    let r = a
        .call(Method::POST, &format!("/projects/{p}/quotas"), None)
        .await;
    r.chroma_err(405, "InvalidArgumentError");
}

#[tokio::test]
async fn the_transfer_routes_need_the_admin_token() {
    let a_srv = TestServer::start_env(&[], &[("QUIVER_ADMIN_TOKEN", TOKEN)]).await;
    let b_srv = TestServer::start_env(&[], &[("QUIVER_ADMIN_TOKEN", TOKEN)]).await;
    let p = "guarded";
    seed(&a_srv, p, 10).await;
    let (open_a, open_b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let wrong = Admin::with_token(&a_srv, "wrong-token");
    let (a, b) = (
        Admin::with_token(&a_srv, TOKEN),
        Admin::with_token(&b_srv, TOKEN),
    );

    for admin in [&open_a, &wrong] {
        for (method, path) in [
            (Method::GET, format!("/projects/{p}/snapshot")),
            (Method::GET, format!("/projects/{p}/changes?since=0")),
        ] {
            let r = admin.raw(method.clone(), &path, None).await;
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            r.resp().chroma_err(401, "Unauthorized");
        }
        let r = admin
            .call(
                Method::PUT,
                &format!("/projects/{p}/quotas"),
                Some(&json!({"maxRecords": 1})),
            )
            .await;
        r.chroma_err(401, "Unauthorized");
        let r = admin
            .call(
                Method::POST,
                &format!("/projects/{p}/pause"),
                Some(&json!({"timeoutMs": 1000})),
            )
            .await;
        r.chroma_err(401, "Unauthorized");
    }
    let (tar, seq) = a.snapshot(p).await;
    let r = open_b
        .raw(
            Method::PUT,
            &format!("/projects/{p}/snapshot?sourceSequence={seq}"),
            Some(tar.clone()),
        )
        .await;
    // refused before its body was read: the connection is not reused
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    r.resp().chroma_err(401, "Unauthorized");
    assert!(!b_srv.workspace().join(p).exists());
    let r = open_b.apply(p, vec![0; 9]).await;
    r.chroma_err(401, "Unauthorized");

    let r = b.import(p, seq, tar).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.header("connection"),
        None,
        "a body read whole keeps the connection"
    );
    let (stream, _) = a.changes(p, seq).await;
    let r = open_b.apply(p, stream.clone()).await;
    r.chroma_err(401, "Unauthorized");
    b.apply(p, stream).await.ok_object();
    let r = a
        .call(
            Method::PUT,
            &format!("/projects/{p}/quotas"),
            Some(&json!({"maxRecords": 100})),
        )
        .await;
    assert_eq!(r.ok_object()["quotas"]["maxRecords"], json!(100));
    // the data APIs are not behind the admin token
    assert_eq!(a_srv.count(p, "cos").await, 10);
}

// ---- 3. changes the log no longer holds ----

#[tokio::test]
async fn changes_older_than_the_log_retention_are_gone() {
    let a_srv = TestServer::start(&["--wal-retention-secs", "1"]).await;
    let a = Admin::open(&a_srv);
    let p = "short-memory";
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    a_srv.create_collection(p, "cos", json!({})).await;
    a_srv.add(p, "cos", &records(&mut rng, "a", 0..20, 8)).await;
    // a snapshot flushes the memtables (RocksDB's checkpoint does), so the log files
    // holding the writes before it are archived, and purged once older than the retention
    let (_, s0) = a.snapshot(p).await;
    a_srv.add(p, "cos", &records(&mut rng, "b", 0..20, 8)).await;
    // while the log holds them, the changes since s0 are there
    let (stream, _) = a.changes(p, s0).await;
    assert_eq!(decode_changes(&stream).batches.len(), 1);
    let (_, s1) = a.snapshot(p).await;
    // RocksDB deletes archived log files whose age exceeds the retention (in whole
    // seconds), checking at most once per second, when it purges obsolete files
    // (after a flush, or when the project opens)
    let archive = store_root(&a_srv, p).join("db").join("archive");
    let archived = list_tree(&archive);
    assert!(
        archived.len() >= 2,
        "the flushed log files are archived: {archived:?}"
    );
    tokio::time::sleep(Duration::from_millis(2600)).await;
    a_srv.add(p, "cos", &records(&mut rng, "c", 0..20, 8)).await;
    let (_, s2) = a.snapshot(p).await;
    assert!(s0 < s1 && s1 < s2);
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = a
            .raw(
                Method::GET,
                &format!("/projects/{p}/changes?since={s0}"),
                None,
            )
            .await;
        if r.status == 410 || Instant::now() > deadline {
            break r;
        }
        // not purged yet (the check runs at most once a second): flush again
        tokio::time::sleep(Duration::from_millis(1100)).await;
        a_srv.add(p, "cos", &records(&mut rng, "d", 0..1, 8)).await;
        a.snapshot(p).await;
    };
    let resp = r.resp();
    let msg = resp.chroma_err(410, "ChangesUnavailable");
    assert!(msg.contains("snapshot"), "{msg}");
    assert!(msg.contains(&(s0 + 1).to_string()), "{msg}");
    assert!(r.header("x-quiver-sequence").is_none());
    let left = list_tree(&archive);
    assert!(
        archived.iter().all(|f| !left.contains(f)),
        "the log files archived before the wait were purged: {archived:?} then {left:?}"
    );
    // also after the project was closed and reopened (a restart)
    let mut a_srv = a_srv;
    a_srv.terminate().await;
    a_srv.restart().await;
    let a = Admin::open(&a_srv);
    let r = a
        .raw(
            Method::GET,
            &format!("/projects/{p}/changes?since={s0}"),
            None,
        )
        .await
        .resp();
    r.chroma_err(410, "ChangesUnavailable");
    // the changes since a recent sequence are still there
    let (_, now) = a.snapshot(p).await;
    a_srv.add(p, "cos", &records(&mut rng, "e", 0..3, 8)).await;
    let (stream, _) = a.changes(p, now).await;
    assert_eq!(decode_changes(&stream).batches.len(), 1);
}

// ---- 4. the pause deadline ----

/// A write of one new record to the project's `cos`: its status, and when it was sent
/// and answered (the server handled it in between).
async fn timed_add(s: &TestServer, p: &str, n: &mut usize) -> (Resp, Instant, Instant) {
    *n += 1;
    let body = json!({"ids": [format!("t{n}")], "embeddings": [vec![0.5f32; 8]]});
    let sent = Instant::now();
    let r = s.post(&cpath(p, "cos", "/add"), &body).await;
    (r, sent, Instant::now())
}

/// `POST …/pause {"timeoutMs": ms}`, asserting a 200; returns the answer and when the
/// request was sent and answered.
async fn timed_pause(admin: &Admin<'_>, p: &str, ms: u64) -> (Value, Instant, Instant) {
    let sent = Instant::now();
    let r = admin
        .call(
            Method::POST,
            &format!("/projects/{p}/pause"),
            Some(&json!({"timeoutMs": ms})),
        )
        .await;
    let body = r.ok_object().clone();
    assert_eq!(body["paused"], json!(true), "{body}");
    assert_eq!(body["timeoutMs"], json!(ms), "{body}");
    (body, sent, Instant::now())
}

async fn resume(admin: &Admin<'_>, p: &str) -> Resp {
    admin
        .call(Method::POST, &format!("/projects/{p}/resume"), None)
        .await
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep(t.saturating_duration_since(Instant::now())).await;
}

// Timing: a pause of T ms taken between `sent` and `answered` lifts itself between
// `sent + T` and `answered + T`. A write is checked only when its own window (sent to
// answered) falls where the outcome is certain; on a machine too loaded for that, the
// round is tried again rather than judged.
#[tokio::test]
async fn a_pause_lifts_itself_at_its_deadline_unless_renewed() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    let p = "deadline";
    seed(&s, p, 3).await;
    let mut n = 0;
    let mut accepted = 0;

    // default: 30 s
    let r = admin
        .call(Method::POST, &format!("/projects/{p}/pause"), None)
        .await;
    assert_eq!(r.ok_object()["timeoutMs"], json!(30000), "{}", r.text);
    assert_eq!(
        resume(&admin, p).await.ok_object()["wasPaused"],
        json!(true)
    );

    // a short pause refuses writes, then lifts itself
    let hold = Duration::from_millis(400);
    let mut checked = false;
    for _round in 0..10 {
        let (_, sent, answered) = timed_pause(&admin, p, 400).await;
        let (r, _, write_answered) = timed_add(&s, p, &mut n).await;
        let info = admin.info(p).await;
        let conclusive = write_answered < sent + hold;
        if conclusive {
            assert_paused(&r, "add within the pause");
            assert_eq!(info["state"], json!("paused"), "{info}");
        } else if r.status == 201 || r.status == 200 {
            accepted += 1;
        }
        // after the deadline, whatever the load
        sleep_until(answered + hold + Duration::from_millis(50)).await;
        let (r, _, _) = timed_add(&s, p, &mut n).await;
        assert_ok(&r, "add after the deadline");
        accepted += 1;
        assert_eq!(admin.info(p).await["state"], json!("active"));
        let stats = admin.call(Method::GET, "/stats", None).await;
        assert_eq!(stats.ok_object()["pausedProjects"], json!(0));
        // the lifted pause is over: resume finds nothing to resume
        assert_eq!(
            resume(&admin, p).await.ok_object()["wasPaused"],
            json!(false)
        );
        if conclusive {
            checked = true;
            break;
        }
    }
    assert!(checked, "no round was fast enough to check a 400 ms pause");

    // pausing again renews the deadline (and keeps the same sequence)
    let hold = Duration::from_millis(800);
    let mut checked = false;
    for _round in 0..10 {
        let (first, first_sent, first_answered) = timed_pause(&admin, p, 800).await;
        sleep_until(first_sent + Duration::from_millis(400)).await;
        let (again, renew_sent, renew_answered) = timed_pause(&admin, p, 800).await;
        assert_eq!(
            again["sequence"], first["sequence"],
            "renewal moved the sequence"
        );
        // past the first deadline, before the renewed one
        sleep_until(first_answered + hold + Duration::from_millis(30)).await;
        let (r, write_sent, write_answered) = timed_add(&s, p, &mut n).await;
        let conclusive = write_sent > first_answered + hold && write_answered < renew_sent + hold;
        if conclusive {
            assert_paused(&r, "add within the renewed pause");
        } else if r.status == 201 || r.status == 200 {
            accepted += 1;
        }
        sleep_until(renew_answered + hold + Duration::from_millis(50)).await;
        let (r, _, _) = timed_add(&s, p, &mut n).await;
        assert_ok(&r, "add after the renewed deadline");
        accepted += 1;
        if conclusive {
            checked = true;
            break;
        }
    }
    assert!(checked, "no round was fast enough to check a renewal");

    // resume ends a long pause at once
    timed_pause(&admin, p, 3_600_000).await;
    let (r, _, _) = timed_add(&s, p, &mut n).await;
    assert_paused(&r, "long pause");
    assert_eq!(
        resume(&admin, p).await.ok_object()["wasPaused"],
        json!(true)
    );
    let (r, _, _) = timed_add(&s, p, &mut n).await;
    assert_ok(&r, "after resume");
    accepted += 1;

    // a shorter renewal shortens it
    timed_pause(&admin, p, 60_000).await;
    let (_, _, answered) = timed_pause(&admin, p, 200).await;
    sleep_until(answered + Duration::from_millis(250)).await;
    let (r, _, _) = timed_add(&s, p, &mut n).await;
    assert_ok(&r, "after a shorter renewal");
    accepted += 1;

    // bad deadlines: 400, and no pause
    for bad in [
        json!(0),
        json!(3_600_001),
        json!("500"),
        json!(-1),
        json!(1.5),
        json!([400]),
        json!(true),
    ] {
        let r = admin
            .call(
                Method::POST,
                &format!("/projects/{p}/pause"),
                Some(&json!({"timeoutMs": bad})),
            )
            .await;
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(msg.contains("timeoutMs"), "{bad}: {msg}");
    }
    let r = admin
        .call(
            Method::POST,
            &format!("/projects/{p}/pause"),
            Some(&json!({"timeout": 500})),
        )
        .await;
    r.chroma_err(400, "InvalidArgumentError");
    assert_eq!(admin.info(p).await["state"], json!("active"));
    let (r, _, _) = timed_add(&s, p, &mut n).await;
    assert_ok(&r, "after bad pauses");
    accepted += 1;
    // every write that was answered with success is there, and no other
    assert_eq!(s.count(p, "cos").await, 3 + accepted);
}

// ---- connections after refused bodies ----

#[tokio::test]
async fn a_body_refused_unread_closes_its_connection_and_the_next_request_works() {
    let s = TestServer::start_env(
        &["--max-body-bytes", "4096"],
        &[("QUIVER_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let p = "closing";
    seed(&s, p, 3).await;
    let big = vec![b' '; 600_000];

    // a data API body over the limit
    let r = s
        .request(Method::POST, &cpath(p, "cos", "/add"), Some(big.clone()))
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    // the same client (and its pool) goes on
    assert_eq!(s.count(p, "cos").await, 3);

    // an admin body refused for want of a token, several times in a row
    let open = Admin::open(&s);
    for _ in 0..3 {
        let r = open
            .raw(
                Method::PUT,
                &format!("/projects/x{p}/snapshot?sourceSequence=1"),
                Some(big.clone()),
            )
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
        assert_eq!(s.count(p, "cos").await, 3);
    }
    // an import refused before its body is read (the project exists)
    let admin = Admin::with_token(&s, TOKEN);
    let (tar, seq) = admin.snapshot(p).await;
    let r = admin.import(p, seq, tar.clone()).await;
    r.chroma_err(409, "ProjectExists");
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    assert_eq!(s.count(p, "cos").await, 3);

    // bodies read whole keep their connection
    let r = s.post(&cpath(p, "cos", "/get"), &json!({"limit": 1})).await;
    r.ok_object();
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
    // (a refused JSON body was read whole too)
    let r = s
        .post(&cpath(p, "cos", "/add"), &json!({"ids": ["no-embedding"]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let r = s
        .post(&cpath(p, "cos", "/add"), &records(&mut rng, "k", 0..2, 8))
        .await;
    assert_ok(&r, "add");
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
    let r = admin.import("closing-copy", seq, tar).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
    let (stream, _) = admin.changes(p, seq).await;
    let r = admin.apply("closing-copy", stream).await;
    r.ok_object();
    assert_eq!(r.header("connection"), None, "{:?}", r.headers);
}
