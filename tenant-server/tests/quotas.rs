//! Project quotas over real HTTP against the real binary (docs/admin-api.md, "Quotas"):
//! set at provisioning or replaced later, enforced on every write through both data
//! APIs with nothing of a refused request applied, kept across restarts and carried by a
//! snapshot to another server.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const V2_DB: &str = "databases/default_database";

impl Admin<'_> {
    async fn info(&self, p: &str) -> Value {
        self.call(Method::GET, &format!("/projects/{p}"), None)
            .await
            .ok_object()
            .clone()
    }

    /// `PUT /projects/{p}` with a body.
    async fn provision(&self, p: &str, body: &Value) -> Resp {
        self.call(Method::PUT, &format!("/projects/{p}"), Some(body))
            .await
    }

    /// `PUT /projects/{p}/quotas`, asserting a 200; returns the ProjectInfo.
    async fn set_quotas(&self, p: &str, quotas: &Value) -> Value {
        let r = self
            .call(Method::PUT, &format!("/projects/{p}/quotas"), Some(quotas))
            .await;
        r.ok_object().clone()
    }

    /// A request with a binary body, answered in JSON.
    async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> (Resp, Vec<u8>) {
        let r = self.binary(method, path, body, "application/x-tar").await;
        if let Some(e) = &r.body_error {
            panic!("body: {e}");
        }
        (r.resp(), r.bytes)
    }
}

fn quotas(c: Option<u64>, r: Option<u64>, b: Option<u64>) -> Value {
    json!({"maxCollections": c, "maxRecords": r, "maxBytes": b})
}

/// Asserts a refused write: `400 QuotaError` naming the quota and the project.
#[track_caller]
fn assert_quota(r: &Resp, quota: &str, project: &str, what: &str) {
    let msg = r.chroma_err(400, "QuotaError");
    assert!(msg.contains(quota), "{what}: {msg}");
    assert!(msg.contains(&format!("[{project}]")), "{what}: {msg}");
}

/// Records `{prefix}{i}` for i in `range`, dimension `dim`.
fn records(prefix: &str, range: std::ops::Range<usize>, dim: usize) -> Value {
    let ids: Vec<String> = range.clone().map(|i| format!("{prefix}{i}")).collect();
    let embs: Vec<Vec<f32>> = range
        .clone()
        .map(|i| {
            (0..dim)
                .map(|d| ((i * 13 + d * 5) % 31) as f32 / 7.0)
                .collect()
        })
        .collect();
    let docs: Vec<String> = range.clone().map(|i| format!("doc {prefix}{i}")).collect();
    let mds: Vec<Value> = range.map(|i| json!({"i": i})).collect();
    json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds})
}

fn v2_collections(p: &str) -> String {
    format!("/api/v2/tenants/{p}/{V2_DB}/collections")
}

async fn collection_names(s: &TestServer, p: &str) -> Vec<String> {
    let r = s.get(&format!("/api/v1/{p}/collections")).await;
    r.ok_object()["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

/// Ids of `ids` that `coll` holds.
async fn present(s: &TestServer, p: &str, coll: &str, ids: &[String]) -> Vec<String> {
    ids_of(&s.get_records(p, coll, &json!({"ids": ids})).await["ids"])
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn collection_quota_refuses_the_next_collection_through_both_apis() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    let p = "few-collections";
    let r = admin
        .provision(p, &json!({"quotas": {"maxCollections": 2}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["quotas"], quotas(Some(2), None, None));
    assert_eq!(admin.info(p).await["quotas"], quotas(Some(2), None, None));

    s.create_collection(p, "one", json!({})).await;
    let r = s.post(&v2_collections(p), &json!({"name": "two"})).await;
    assert_ok(&r, "v2 create within the limit");

    // the third: refused by v1 and v2, get_or_create of a new name included
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "three"}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "v1 create");
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "three", "get_or_create": true}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "v1 get_or_create of a new name");
    let r = s.post(&v2_collections(p), &json!({"name": "three"})).await;
    assert_quota(&r, "maxCollections", p, "v2 create");
    let r = s
        .post(
            &v2_collections(p),
            &json!({"name": "three", "get_or_create": true}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "v2 get_or_create of a new name");
    // in another database of the project too: the quota is the project's
    let r = s
        .post(
            &format!("/api/v2/tenants/{p}/databases"),
            &json!({"name": "other_db"}),
        )
        .await;
    assert_ok(&r, "create database");
    let r = s
        .post(
            &format!("/api/v2/tenants/{p}/databases/other_db/collections"),
            &json!({"name": "elsewhere"}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "v2 create in another database");
    assert_eq!(collection_names(&s, p).await, ["one", "two"]);
    assert_eq!(admin.info(p).await["collections"], json!(2));

    // getting an existing collection still works at the limit
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "one", "get_or_create": true}),
        )
        .await;
    assert_eq!(r.ok_object()["collection"]["name"], json!("one"));
    let r = s
        .post(
            &v2_collections(p),
            &json!({"name": "two", "get_or_create": true}),
        )
        .await;
    assert_eq!(r.ok_object()["name"], json!("two"));
    // a plain create of an existing name is still "exists", not a quota error
    let r = s
        .post(&format!("/api/v1/{p}/collections"), &json!({"name": "one"}))
        .await;
    r.chroma_err(409, "UniqueConstraintError");

    // deleting one makes room
    assert_ok(&s.delete(&cpath(p, "two", "")).await, "delete collection");
    s.create_collection(p, "three", json!({})).await;
    assert_eq!(collection_names(&s, p).await, ["one", "three"]);
}

#[tokio::test]
async fn record_quota_refuses_a_write_whole_and_spares_upserts_updates_and_deletes() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    let p = "few-records";
    let r = admin
        .provision(p, &json!({"quotas": {"maxRecords": 10}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    s.create_collection(p, "coll-a", json!({})).await;
    s.create_collection(p, "coll-b", json!({})).await;
    s.add(p, "coll-a", &records("a", 0..6, 3)).await;

    // 6 + 5 > 10: refused whole, in another collection of the project
    let r = s
        .post(&cpath(p, "coll-b", "/add"), &records("b", 0..5, 3))
        .await;
    assert_quota(&r, "maxRecords", p, "add over the limit");
    assert_eq!(s.count(p, "coll-b").await, 0);
    assert!(present(&s, p, "coll-b", &ids("b", 0..5)).await.is_empty());
    // the dimension the refused batch would have fixed is not fixed either
    assert_eq!(s.collection(p, "coll-b").await["dimension"], Value::Null);
    let r = s
        .post(&cpath(p, "coll-b", "/add"), &records("b", 0..4, 5))
        .await;
    assert_ok(
        &r,
        "add up to the limit (another dimension: the refused one fixed none)",
    );
    assert_eq!(admin.info(p).await["records"], json!(10));

    // at the limit: a new id anywhere is refused, through v1 and v2
    let r = s
        .post(&cpath(p, "coll-a", "/add"), &records("a", 6..7, 3))
        .await;
    assert_quota(&r, "maxRecords", p, "v1 add at the limit");
    let r = s
        .post(&cpath(p, "coll-a", "/upsert"), &records("a", 6..7, 3))
        .await;
    assert_quota(&r, "maxRecords", p, "v1 upsert of a new id at the limit");
    let a_id = s.collection(p, "coll-a").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let v2 = format!("{}/{a_id}", v2_collections(p));
    let r = s.post(&format!("{v2}/add"), &records("a", 6..7, 3)).await;
    assert_quota(&r, "maxRecords", p, "v2 add at the limit");
    let r = s
        .post(&format!("{v2}/upsert"), &records("a", 6..7, 3))
        .await;
    assert_quota(&r, "maxRecords", p, "v2 upsert at the limit");

    // upserts of existing ids are accepted at the limit...
    let mut changed = records("a", 0..6, 3);
    changed["documents"] = json!(["u0", "u1", "u2", "u3", "u4", "u5"]);
    let r = s.post(&cpath(p, "coll-a", "/upsert"), &changed).await;
    assert_ok(&r, "upsert of existing ids at the limit");
    let r = s
        .post(&format!("{v2}/upsert"), &records("a", 0..2, 3))
        .await;
    assert_ok(&r, "v2 upsert of existing ids at the limit");
    // ...and so is an add of ids that all exist (it changes nothing), and updates
    let r = s
        .post(&cpath(p, "coll-a", "/add"), &records("a", 0..3, 3))
        .await;
    assert_ok(&r, "add of existing ids");
    let r = s
        .post(
            &cpath(p, "coll-a", "/update"),
            &json!({"ids": ["a3", "a4"], "documents": ["x3", "x4"]}),
        )
        .await;
    assert_ok(&r, "update at the limit");
    // but an upsert mixing existing ids and one new one is refused whole
    let mut mixed = records("a", 4..7, 3);
    mixed["documents"] = json!(["m4", "m5", "m6"]);
    let r = s.post(&cpath(p, "coll-a", "/upsert"), &mixed).await;
    assert_quota(&r, "maxRecords", p, "upsert with one new id");
    let got = s
        .get_records(
            p,
            "coll-a",
            &json!({"ids": ["a4", "a5", "a6"], "include": ["documents"]}),
        )
        .await;
    assert_eq!(ids_of(&got["ids"]), ["a4", "a5"]);
    assert_eq!(
        got["documents"],
        json!(["x4", "u5"]),
        "nothing of it was applied"
    );
    assert_eq!(admin.info(p).await["records"], json!(10));

    // deletes work, and make room
    let r = s
        .post(
            &cpath(p, "coll-a", "/delete"),
            &json!({"ids": ["a0", "a1", "a2"]}),
        )
        .await;
    assert_ok(&r, "delete at the limit");
    let r = s
        .post(&cpath(p, "coll-a", "/add"), &records("n", 0..4, 3))
        .await;
    assert_quota(&r, "maxRecords", p, "4 new where 3 fit");
    s.add(p, "coll-a", &records("n", 0..3, 3)).await;
    assert_eq!(admin.info(p).await["records"], json!(10));

    // lowering the quota below what the project holds deletes nothing, refuses growth
    let info = admin.set_quotas(p, &json!({"maxRecords": 4})).await;
    assert_eq!(info["quotas"], quotas(None, Some(4), None));
    assert_eq!(info["records"], json!(10));
    assert_eq!(s.count(p, "coll-a").await + s.count(p, "coll-b").await, 10);
    let r = s
        .post(&cpath(p, "coll-b", "/add"), &records("z", 0..1, 5))
        .await;
    assert_quota(&r, "maxRecords", p, "add over a lowered quota");
    let r = s
        .post(
            &cpath(p, "coll-a", "/update"),
            &json!({"ids": ["n0"], "documents": ["still"]}),
        )
        .await;
    assert_ok(&r, "update over a lowered quota");
    let r = s
        .post(&format!("{v2}/delete"), &json!({"ids": ["n0", "n1"]}))
        .await;
    assert_ok(&r, "v2 delete over a lowered quota");

    // lifting it (null) lets the writes in again
    let info = admin.set_quotas(p, &json!({"maxRecords": null})).await;
    assert_eq!(info["quotas"], quotas(None, None, None));
    s.add(p, "coll-b", &records("z", 0..20, 5)).await;
    assert_eq!(admin.info(p).await["records"], json!(28));
}

#[tokio::test]
async fn byte_quota_refuses_a_big_write_and_never_a_delete() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    let p = "few-bytes";
    admin.provision(p, &json!({})).await;
    s.create_collection(p, "coll-c", json!({})).await;
    s.add(p, "coll-c", &records("r", 0..50, 16)).await;
    let bytes = admin.info(p).await["bytes"].as_u64().expect("bytes");
    assert!(bytes > 0);
    // room for small writes (about 150 bytes a record here), not for ~750 KB of them
    let limit = bytes + 200_000;
    let info = admin.set_quotas(p, &json!({"maxBytes": limit})).await;
    assert_eq!(info["quotas"], quotas(None, None, Some(limit)));

    let big = records("big", 0..5000, 16);
    let r = s.post(&cpath(p, "coll-c", "/add"), &big).await;
    assert_quota(&r, "maxBytes", p, "a big add");
    assert_eq!(s.count(p, "coll-c").await, 50);
    assert!(present(&s, p, "coll-c", &ids("big", 0..3)).await.is_empty());
    // through v2 as well
    let r = s
        .post(
            &v2_collections(p),
            &json!({"name": "v2c", "get_or_create": true}),
        )
        .await;
    let v2c = r.ok_object()["id"].as_str().expect("id").to_string();
    let r = s
        .post(&format!("{}/{v2c}/upsert", v2_collections(p)), &big)
        .await;
    assert_quota(&r, "maxBytes", p, "a big v2 upsert");
    // a small one fits
    s.add(p, "coll-c", &records("small", 0..3, 16)).await;
    assert_eq!(s.count(p, "coll-c").await, 53);

    // below what the project takes: writes are refused, deletes are not
    admin.set_quotas(p, &json!({"maxBytes": 1})).await;
    let r = s
        .post(&cpath(p, "coll-c", "/add"), &records("x", 0..1, 16))
        .await;
    assert_quota(&r, "maxBytes", p, "add over a lowered byte quota");
    let r = s
        .post(
            &cpath(p, "coll-c", "/update"),
            &json!({"ids": ["r1"], "documents": ["changed"]}),
        )
        .await;
    assert_quota(&r, "maxBytes", p, "update over a lowered byte quota");
    let r = s
        .post(
            &cpath(p, "coll-c", "/delete"),
            &json!({"ids": ["r0", "r1"]}),
        )
        .await;
    assert_ok(&r, "delete over the byte quota");
    assert_eq!(s.count(p, "coll-c").await, 51);
    // collections are not bytes
    s.create_collection(p, "another", json!({})).await;

    // replaced by a record quota: PUT replaces every field
    let info = admin.set_quotas(p, &json!({"maxRecords": 10000})).await;
    assert_eq!(info["quotas"], quotas(None, Some(10000), None));
    s.add(p, "coll-c", &big).await;
}

#[tokio::test]
async fn quotas_are_replaced_survive_restarts_and_are_checked() {
    let mut s = TestServer::start(&[]).await;
    let p = "kept-quotas";
    {
        let admin = Admin::open(&s);
        // provisioning an existing project with quotas replaces them (200)
        assert_eq!(admin.provision(p, &json!({})).await.status, 201);
        let r = admin
            .provision(
                p,
                &json!({"quotas": {"maxCollections": 1, "maxRecords": 5}}),
            )
            .await;
        assert_eq!(r.ok_object()["quotas"], quotas(Some(1), Some(5), None));
        let r = admin
            .provision(
                p,
                &json!({"quotas": {"maxCollections": 2, "maxBytes": 1073741824}}),
            )
            .await;
        assert_eq!(
            r.ok_object()["quotas"],
            quotas(Some(2), None, Some(1 << 30))
        );
        // provisioning without quotas (or with null) leaves them as they are
        let r = admin.provision(p, &json!({})).await;
        assert_eq!(
            r.ok_object()["quotas"],
            quotas(Some(2), None, Some(1 << 30))
        );
        let r = admin.provision(p, &json!({"quotas": null})).await;
        assert_eq!(
            r.ok_object()["quotas"],
            quotas(Some(2), None, Some(1 << 30))
        );
        let info = admin
            .set_quotas(
                p,
                &json!({"maxCollections": 1, "maxRecords": 3, "maxBytes": null}),
            )
            .await;
        assert_eq!(info["quotas"], quotas(Some(1), Some(3), None));
        assert_eq!(info["name"], json!(p));
        let listed = admin.call(Method::GET, "/projects", None).await;
        assert_eq!(
            listed.ok_object()["projects"][0]["quotas"],
            quotas(Some(1), Some(3), None)
        );
        s.create_collection(p, "only", json!({})).await;
        s.add(p, "only", &records("r", 0..3, 2)).await;
        // a project without quotas reports null limits
        admin.provision("no-limits", &json!({})).await;
        assert_eq!(
            admin.info("no-limits").await["quotas"],
            quotas(None, None, None)
        );
    }

    // invalid quotas: 400, and nothing changes (nor is a project created)
    {
        let admin = Admin::open(&s);
        let bad = [
            json!({"maxRecords": -1}),
            json!({"maxRecords": "10"}),
            json!({"maxRecords": 1.5}),
            json!({"maxRecord": 10}),
            json!({"maxCollections": true}),
            json!({"maxBytes": [1]}),
            json!({"maxBytes": {"value": 1}}),
        ];
        for q in &bad {
            let r = admin
                .call(Method::PUT, &format!("/projects/{p}/quotas"), Some(q))
                .await;
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(msg.contains("quotas") || msg.contains("max"), "{q}: {msg}");
            let r = admin.provision("never-made", &json!({"quotas": q})).await;
            r.chroma_err(400, "InvalidArgumentError");
        }
        // beyond u64
        let r = s
            .request(
                Method::PUT,
                &format!("/admin/v1/projects/{p}/quotas"),
                Some(br#"{"maxBytes": 18446744073709551616}"#.to_vec()),
            )
            .await;
        r.chroma_err(400, "InvalidArgumentError");
        for body in [json!([1, 2]), json!("maxRecords"), json!(7)] {
            let r = admin
                .call(Method::PUT, &format!("/projects/{p}/quotas"), Some(&body))
                .await;
            r.chroma_err(400, "InvalidArgumentError");
        }
        for body in [
            json!({"quotas": 5}),
            json!({"quotas": {"bogus": 1}}),
            json!({"quota": {}}),
        ] {
            admin
                .provision("never-made", &body)
                .await
                .chroma_err(400, "InvalidArgumentError");
        }
        let r = admin
            .call(
                Method::PUT,
                "/projects/never-made/quotas",
                Some(&json!({"maxRecords": 1})),
            )
            .await;
        r.chroma_err(404, "NotFoundError");
        assert!(!s.workspace().join("never-made").exists());
        assert_eq!(
            admin.info(p).await["quotas"],
            quotas(Some(1), Some(3), None)
        );
    }

    // across a restart (the project closed, its quotas read from disk)
    s.terminate().await;
    s.restart().await;
    let admin = Admin::open(&s);
    let info = admin.info(p).await;
    assert_eq!(info["quotas"], quotas(Some(1), Some(3), None), "{info}");
    let listed = admin.call(Method::GET, "/projects", None).await;
    let entry = listed.ok_object()["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|e| e["name"] == json!(p))
        .cloned()
        .expect("listed");
    assert_eq!(entry["quotas"], quotas(Some(1), Some(3), None));
    let r = s
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "second"}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "after restart");
    let r = s
        .post(&cpath(p, "only", "/add"), &records("r", 3..4, 2))
        .await;
    assert_quota(&r, "maxRecords", p, "after restart");
    // also after a kill (no graceful close)
    s.kill();
    s.restart().await;
    let r = s
        .post(&cpath(p, "only", "/add"), &records("r", 3..4, 2))
        .await;
    assert_quota(&r, "maxRecords", p, "after kill -9");
    let admin = Admin::open(&s);
    // an empty body lifts every limit
    let info = admin.set_quotas(p, &json!({})).await;
    assert_eq!(info["quotas"], quotas(None, None, None));
    s.add(p, "only", &records("r", 3..10, 2)).await;
    s.create_collection(p, "second", json!({})).await;
}

#[tokio::test]
async fn quotas_travel_with_a_snapshot() {
    let a_srv = TestServer::start(&[]).await;
    let b_srv = TestServer::start(&[]).await;
    let (a, b) = (Admin::open(&a_srv), Admin::open(&b_srv));
    let p = "moving-quotas";
    let r = a
        .provision(
            p,
            &json!({"quotas": {"maxCollections": 1, "maxRecords": 8}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    a_srv.create_collection(p, "coll-c", json!({})).await;
    a_srv.add(p, "coll-c", &records("r", 0..8, 4)).await;

    let (snap, tar) = a
        .raw(Method::GET, &format!("/projects/{p}/snapshot"), None)
        .await;
    assert_eq!(snap.status, 200, "{}", snap.text);
    let seq: u64 = snap
        .header("x-quiver-sequence")
        .expect("sequence header")
        .parse()
        .expect("sequence");
    // QUOTAS is there, and last: a body cut right before it (or without the archive's
    // end blocks) is refused, not imported without its quotas
    let mut quotas_at = None;
    let mut end = 0;
    for e in tar::Archive::new(tar.as_slice()).entries().expect("tar") {
        let e = e.expect("entry");
        let size = e.header().entry_size().expect("size");
        if e.path().expect("path").to_str() == Some("QUOTAS") {
            quotas_at = Some(e.raw_header_position() as usize);
        }
        end = (e.raw_file_position() + size.div_ceil(512) * 512) as usize;
    }
    let quotas_at = quotas_at.expect("the snapshot carries QUOTAS");
    for cut in [quotas_at, end] {
        let (r, _) = b
            .raw(
                Method::PUT,
                &format!("/projects/{p}/snapshot?sourceSequence={seq}"),
                Some(tar[..cut].to_vec()),
            )
            .await;
        let msg = r.chroma_err(400, "InvalidArgumentError");
        assert!(msg.contains("cut short"), "{msg}");
        assert!(!b_srv.workspace().join(p).exists());
    }
    let (r, _) = b
        .raw(
            Method::PUT,
            &format!("/projects/{p}/snapshot?sourceSequence={seq}"),
            Some(tar),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["quotas"], quotas(Some(1), Some(8), None));
    assert_eq!(b.info(p).await["quotas"], quotas(Some(1), Some(8), None));
    // quotas set on the incoming copy hold once it serves
    let info = b
        .set_quotas(p, &json!({"maxCollections": 1, "maxRecords": 9}))
        .await;
    assert_eq!(info["state"], json!("incoming"));
    let r = b
        .call(Method::DELETE, &format!("/projects/{p}/fence"), None)
        .await;
    assert_eq!(r.ok_object()["wasFenced"], json!(true));

    let r = b_srv
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "coll-d"}),
        )
        .await;
    assert_quota(&r, "maxCollections", p, "on the destination");
    b_srv.add(p, "coll-c", &records("r", 8..9, 4)).await;
    let r = b_srv
        .post(&cpath(p, "coll-c", "/add"), &records("r", 9..10, 4))
        .await;
    assert_quota(&r, "maxRecords", p, "on the destination");
    assert_eq!(b_srv.count(p, "coll-c").await, 9);
    // A's quotas are its own
    assert_eq!(a.info(p).await["quotas"], quotas(Some(1), Some(8), None));
}
