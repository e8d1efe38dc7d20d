//! The admin API over real HTTP against the real binary: the token, provisioning, figures,
//! pausing a project's writes and fencing a project that moved away.

mod common;

use std::time::{Duration, Instant};

use common::*;
use quiver_placement::protocol::{PROJECT_PAUSED, PROJECT_STATE_HEADER};
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-admin-token";

impl<'a> Admin<'a> {
    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn put(&self, path: &str) -> Resp {
        self.call(Method::PUT, path, None).await
    }

    async fn post(&self, path: &str, body: Option<&Value>) -> Resp {
        self.call(Method::POST, path, body).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// `GET /projects/{name}`, asserting a 200.
    async fn info(&self, name: &str) -> Value {
        self.get(&format!("/projects/{name}"))
            .await
            .ok_object()
            .clone()
    }

    /// The `projects` list of `GET /projects`, asserting a 200.
    async fn list(&self) -> Vec<Value> {
        self.get("/projects").await.ok_object()["projects"]
            .as_array()
            .expect("projects")
            .clone()
    }

    async fn pause(&self, name: &str) -> u64 {
        let r = self.post(&format!("/projects/{name}/pause"), None).await;
        let body = r.ok_object();
        assert_eq!(body["paused"], json!(true), "{}", r.text);
        body["sequence"].as_u64().expect("sequence")
    }

    async fn resume(&self, name: &str) {
        let r = self.post(&format!("/projects/{name}/resume"), None).await;
        assert_eq!(r.ok_object()["paused"], json!(false), "{}", r.text);
    }
}

fn store_root(s: &TestServer, project: &str) -> std::path::PathBuf {
    s.workspace().join(project).join("knowledge-graph")
}

/// `n` records `{prefix}{i}` of dimension `dim`, with documents and metadata.
fn records(prefix: &str, n: usize, dim: usize) -> Value {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let embs: Vec<Vec<f32>> = (0..n)
        .map(|i| (0..dim).map(|d| ((i * 31 + d * 7) % 97) as f32).collect())
        .collect();
    let docs: Vec<String> = (0..n).map(|i| format!("document {prefix}{i}")).collect();
    let mds: Vec<Value> = (0..n).map(|i| json!({"i": i})).collect();
    json!({"ids": ids, "embeddings": embs, "documents": docs, "metadatas": mds})
}

// ---- auth ----

#[tokio::test]
async fn admin_token_is_required_when_set() {
    let s = TestServer::start(&["--admin-token", TOKEN]).await;

    let missing = Admin::open(&s).get("/projects").await;
    let msg = missing.chroma_err(401, "Unauthorized");
    assert!(msg.contains("Bearer"), "{msg}");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let wrong = Admin::with_token(&s, "not-the-token")
        .get("/projects")
        .await;
    wrong.chroma_err(401, "Unauthorized");
    let prefix = Admin::with_token(&s, &TOKEN[..TOKEN.len() - 1])
        .get("/stats")
        .await;
    prefix.chroma_err(401, "Unauthorized");
    let longer = format!("{TOKEN}x");
    Admin::with_token(&s, &longer)
        .get("/stats")
        .await
        .chroma_err(401, "Unauthorized");
    let basic = s
        .http()
        .send(
            Method::GET,
            "/admin/v1/stats",
            None,
            &[("authorization", &format!("Basic {TOKEN}"))],
        )
        .await;
    basic.chroma_err(401, "Unauthorized");

    // every admin route, unknown ones and writes included, is behind the token
    for (method, path) in [
        (Method::PUT, "/projects/guarded"),
        (Method::DELETE, "/projects/guarded"),
        (Method::POST, "/projects/guarded/pause"),
        (Method::POST, "/projects/guarded/fence"),
        (Method::GET, "/no-such-route"),
    ] {
        let r = Admin::open(&s).call(method.clone(), path, None).await;
        r.chroma_err(401, "Unauthorized");
    }
    assert!(!s.workspace().join("guarded").exists());

    let admin = Admin::with_token(&s, TOKEN);
    admin.get("/projects").await.ok_object();
    admin.get("/stats").await.ok_object();
    let lower = s
        .http()
        .send(
            Method::GET,
            "/admin/v1/stats",
            None,
            &[("authorization", &format!("bearer {TOKEN}"))],
        )
        .await;
    lower.ok_object();

    // the data APIs do not need it
    s.get("/api/v1/heartbeat").await.ok_object();
    s.create_collection("public-project", "things", json!({}))
        .await;
    s.get("/api/v2/tenants/public-project").await.ok_object();
}

#[tokio::test]
async fn admin_token_from_the_environment() {
    let s = TestServer::start_env(&[], &[("QUIVER_ADMIN_TOKEN", "from-env")]).await;
    Admin::open(&s)
        .get("/stats")
        .await
        .chroma_err(401, "Unauthorized");
    Admin::with_token(&s, "from-env")
        .get("/stats")
        .await
        .ok_object();
}

#[tokio::test]
async fn admin_api_is_open_without_a_token() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    admin.get("/stats").await.ok_object();
    // a token sent anyway is ignored
    Admin::with_token(&s, "anything")
        .get("/projects")
        .await
        .ok_object();
}

// ---- provisioning and figures ----

#[tokio::test]
async fn provision_creates_then_reports_existing() {
    let s = TestServer::start(&["--admin-token", TOKEN]).await;
    let admin = Admin::with_token(&s, TOKEN);

    let created = admin.put("/projects/fresh-project").await;
    assert_eq!(created.status, 201, "{}", created.text);
    let info = &created.body;
    let mut keys: Vec<&str> = info
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes",
            "collections",
            "movedTo",
            "name",
            "open",
            "quotas",
            "records",
            "sourceSequence",
            "state",
            "statsSource"
        ]
    );
    // no limits, and not an incoming copy
    assert_eq!(
        info["quotas"],
        json!({"maxCollections": null, "maxRecords": null, "maxBytes": null})
    );
    assert_eq!(info["sourceSequence"], Value::Null);
    assert_eq!(info["name"], json!("fresh-project"));
    assert_eq!(info["collections"], json!(0));
    assert_eq!(info["records"], json!(0));
    assert_eq!(info["open"], json!(true));
    assert_eq!(info["state"], json!("active"));
    assert_eq!(info["movedTo"], Value::Null);
    assert!(store_root(&s, "fresh-project").join("db").is_dir());

    s.create_collection("fresh-project", "docs", json!({}))
        .await;
    let again = admin.put("/projects/fresh-project").await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["collections"], json!(1));

    // the project is usable through both data APIs, where it existed already
    s.get("/api/v2/tenants/fresh-project").await.ok_object();
    let dup = s
        .post("/api/v2/tenants", &json!({"name": "fresh-project"}))
        .await;
    dup.chroma_err(409, "ChromaError");
}

#[tokio::test]
async fn info_of_a_missing_project_does_not_create_it() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    let r = admin.get("/projects/never-made").await;
    let msg = r.chroma_err(404, "NotFoundError");
    assert!(msg.contains("never-made"), "{msg}");
    for path in [
        "/projects/never-made/pause",
        "/projects/never-made/resume",
        "/projects/never-made/fence",
    ] {
        admin
            .post(path, None)
            .await
            .chroma_err(404, "NotFoundError");
    }
    admin
        .delete("/projects/never-made/fence")
        .await
        .chroma_err(404, "NotFoundError");
    admin
        .delete("/projects/never-made")
        .await
        .chroma_err(404, "NotFoundError");
    assert!(!s.workspace().join("never-made").exists());
    assert!(admin.list().await.is_empty());
}

async fn write_two_projects(s: &TestServer) {
    s.create_collection("stats-one", "first", json!({})).await;
    s.create_collection("stats-one", "second", json!({})).await;
    s.add("stats-one", "first", &records("a", 30, 4)).await;
    s.add("stats-one", "second", &records("b", 12, 4)).await;
    s.create_collection("stats-two", "only", json!({})).await;
    s.add("stats-two", "only", &records("c", 7, 3)).await;
    let d = s
        .post(
            &cpath("stats-two", "only", "/delete"),
            &json!({"ids": ["c0", "c1"]}),
        )
        .await;
    assert_eq!(d.ok_object()["deleted"], json!(2));
}

#[track_caller]
fn assert_figures(p: &Value, name: &str, collections: u64, records: u64) {
    assert_eq!(p["name"], json!(name), "{p}");
    assert_eq!(p["collections"], json!(collections), "{p}");
    assert_eq!(p["records"], json!(records), "{p}");
    assert!(p["bytes"].as_u64().expect("bytes") > 0, "{p}");
    assert_eq!(p["state"], json!("active"), "{p}");
}

#[tokio::test]
async fn figures_match_what_was_written_open_and_closed() {
    let mut s = TestServer::start(&[]).await;
    write_two_projects(&s).await;
    let admin = Admin::open(&s);

    let list = admin.list().await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_figures(&list[0], "stats-one", 2, 42);
    assert_figures(&list[1], "stats-two", 1, 5);
    assert!(list
        .iter()
        .all(|p| p["open"] == json!(true) && p["statsSource"] == json!("live")));
    assert_figures(&admin.info("stats-one").await, "stats-one", 2, 42);

    let stats = admin.get("/stats").await.ok_object().clone();
    assert_eq!(stats["projects"], json!(2), "{stats}");
    assert_eq!(stats["openProjects"], json!(2), "{stats}");
    assert_eq!(stats["maxOpenProjects"], json!(256), "{stats}");
    assert_eq!(stats["pausedProjects"], json!(0), "{stats}");
    assert_eq!(stats["fencedProjects"], json!(0), "{stats}");
    assert!(
        stats["diskBytes"].as_u64().expect("diskBytes") > 0,
        "{stats}"
    );
    assert!(stats["rssBytes"].as_u64().expect("rssBytes") > 0, "{stats}");
    assert!(stats["evictions"].is_u64(), "{stats}");
    assert!(
        stats["unindexedRecords"]
            .as_u64()
            .expect("unindexedRecords")
            <= 47,
        "{stats}"
    );

    // closed projects report the figures saved when they closed, without being opened
    s.terminate().await;
    s.restart().await;
    let admin = Admin::open(&s);
    let list = admin.list().await;
    assert_figures(&list[0], "stats-one", 2, 42);
    assert_figures(&list[1], "stats-two", 1, 5);
    assert!(list
        .iter()
        .all(|p| p["open"] == json!(false) && p["statsSource"] == json!("saved")));
    assert_eq!(
        admin.get("/stats").await.ok_object()["openProjects"],
        json!(0)
    );

    // without the saved figures, the list knows only the size; the project's own info
    // opens it for exact ones
    s.terminate().await;
    std::fs::remove_file(store_root(&s, "stats-two").join("stats.json")).expect("rm stats");
    s.restart().await;
    let admin = Admin::open(&s);
    let list = admin.list().await;
    let two = &list[1];
    assert_eq!(two["statsSource"], json!("directory"), "{two}");
    assert_eq!(two["collections"], Value::Null, "{two}");
    assert_eq!(two["records"], Value::Null, "{two}");
    assert!(two["bytes"].as_u64().expect("bytes") > 0, "{two}");
    assert_eq!(two["open"], json!(false), "{two}");
    let info = admin.info("stats-two").await;
    assert_figures(&info, "stats-two", 1, 5);
    assert_eq!(info["statsSource"], json!("live"));
    assert_eq!(info["open"], json!(true));
}

#[tokio::test]
async fn evictions_are_counted() {
    let s = TestServer::start(&["--max-open-projects", "1"]).await;
    for p in ["evict-one", "evict-two", "evict-three"] {
        s.create_collection(p, "coll", json!({})).await;
    }
    let stats = Admin::open(&s).get("/stats").await.ok_object().clone();
    assert_eq!(stats["evictions"], json!(2), "{stats}");
    assert_eq!(stats["maxOpenProjects"], json!(1), "{stats}");
    assert_eq!(stats["projects"], json!(3), "{stats}");
}

#[tokio::test]
async fn delete_removes_the_project() {
    let s = TestServer::start(&[]).await;
    s.create_collection("doomed-project", "coll", json!({}))
        .await;
    s.add("doomed-project", "coll", &records("x", 5, 2)).await;
    let admin = Admin::open(&s);
    let r = admin.delete("/projects/doomed-project").await;
    assert_eq!(r.ok_object()["deleted"], json!(true));
    assert!(!s.workspace().join("doomed-project").exists());
    admin
        .delete("/projects/doomed-project")
        .await
        .chroma_err(404, "NotFoundError");
    admin
        .get("/projects/doomed-project")
        .await
        .chroma_err(404, "NotFoundError");
    assert!(admin.list().await.is_empty());
}

// ---- pause ----

/// A project with a v1 collection `coll` holding r0..r9 (dimension 3), a spare v1
/// collection, a spare database, and a v2 collection `v2coll`. Returns the v2 id.
async fn paused_fixture(s: &TestServer, p: &str) -> String {
    s.create_collection(p, "coll", json!({})).await;
    s.create_collection(p, "spare", json!({})).await;
    s.add(p, "coll", &records("r", 10, 3)).await;
    s.post(
        &format!("/api/v2/tenants/{p}/databases"),
        &json!({"name": "spare_db"}),
    )
    .await
    .ok_object();
    let c = s
        .post(
            &format!("/api/v2/tenants/{p}/databases/default_database/collections"),
            &json!({"name": "v2coll"}),
        )
        .await;
    let id = c.ok_object()["id"].as_str().expect("id").to_string();
    let add = s
        .post(
            &format!("/api/v2/tenants/{p}/databases/default_database/collections/{id}/add"),
            &json!({"ids": ["v0", "v1"], "embeddings": [[1, 2], [3, 4]]}),
        )
        .await;
    assert_eq!(add.status, 201, "{}", add.text);
    id
}

/// Every write route of both APIs, as (method, path, body).
fn write_routes(p: &str, id: &str) -> Vec<(Method, String, Option<Value>)> {
    let c1 = |suffix: &str| cpath(p, "coll", suffix);
    let v2 = format!("/api/v2/tenants/{p}/databases/default_database");
    let one = json!({"ids": ["new-id"], "embeddings": [[9, 9, 9]]});
    vec![
        (Method::POST, c1("/add"), Some(one.clone())),
        (Method::POST, c1("/upsert"), Some(one.clone())),
        (
            Method::POST,
            c1("/update"),
            Some(json!({"ids": ["r1"], "documents": ["changed"]})),
        ),
        (Method::POST, c1("/delete"), Some(json!({"ids": ["r2"]}))),
        (
            Method::DELETE,
            c1("/documents"),
            Some(json!({"ids": ["r3"]})),
        ),
        (
            Method::POST,
            format!("/api/v1/{p}/collections"),
            Some(json!({"name": "brand-new"})),
        ),
        (Method::PUT, c1(""), Some(json!({"new_name": "renamed"}))),
        (
            Method::PATCH,
            c1(""),
            Some(json!({"new_metadata": {"k": "v"}})),
        ),
        (Method::DELETE, cpath(p, "spare", ""), None),
        (Method::DELETE, format!("/api/v1/{p}"), None),
        (
            Method::POST,
            format!("{v2}/collections/{id}/add"),
            Some(json!({"ids": ["v9"], "embeddings": [[5, 6]]})),
        ),
        (
            Method::POST,
            format!("{v2}/collections/{id}/upsert"),
            Some(json!({"ids": ["v0"], "embeddings": [[5, 6]]})),
        ),
        (
            Method::POST,
            format!("{v2}/collections/{id}/update"),
            Some(json!({"ids": ["v0"], "documents": ["d"]})),
        ),
        (
            Method::POST,
            format!("{v2}/collections/{id}/delete"),
            Some(json!({"ids": ["v1"]})),
        ),
        (
            Method::POST,
            format!("{v2}/collections"),
            Some(json!({"name": "v2-new"})),
        ),
        (
            Method::PUT,
            format!("{v2}/collections/{id}"),
            Some(json!({"new_name": "v2-renamed"})),
        ),
        (Method::DELETE, format!("{v2}/collections/v2coll"), None),
        (
            Method::POST,
            format!("/api/v2/tenants/{p}/databases"),
            Some(json!({"name": "another_db"})),
        ),
        (
            Method::DELETE,
            format!("/api/v2/tenants/{p}/databases/spare_db"),
            None,
        ),
    ]
}

/// Every read route of both APIs.
fn read_routes(p: &str, id: &str) -> Vec<(Method, String, Option<Value>)> {
    let c1 = |suffix: &str| cpath(p, "coll", suffix);
    let v2 = format!("/api/v2/tenants/{p}/databases/default_database");
    vec![
        (Method::GET, format!("/api/v1/{p}/collections"), None),
        (Method::GET, c1(""), None),
        (Method::GET, c1("/count"), None),
        (Method::GET, c1("/peek"), None),
        (Method::GET, c1("/get?ids=r0"), None),
        (Method::POST, c1("/get"), Some(json!({"ids": ["r0"]}))),
        (
            Method::POST,
            c1("/query"),
            Some(json!({"query_embeddings": [[1, 2, 3]], "n_results": 2})),
        ),
        (Method::GET, format!("/api/v2/tenants/{p}"), None),
        (Method::GET, format!("/api/v2/tenants/{p}/databases"), None),
        (Method::GET, v2.clone(), None),
        (Method::GET, format!("{v2}/collections"), None),
        (Method::GET, format!("{v2}/collections_count"), None),
        (Method::GET, format!("{v2}/collections/v2coll"), None),
        (Method::GET, format!("{v2}/collections/by-id/{id}"), None),
        (Method::GET, format!("{v2}/collections/{id}/count"), None),
        (
            Method::POST,
            format!("{v2}/collections/{id}/get"),
            Some(json!({"ids": ["v0"]})),
        ),
        (
            Method::POST,
            format!("{v2}/collections/{id}/query"),
            Some(json!({"query_embeddings": [[1, 2]], "n_results": 1})),
        ),
        // getting an existing collection writes nothing
        (
            Method::POST,
            format!("{v2}/collections"),
            Some(json!({"name": "v2coll", "get_or_create": true})),
        ),
        (
            Method::POST,
            format!("/api/v1/{p}/collections"),
            Some(json!({"name": "coll", "get_or_create": true})),
        ),
    ]
}

async fn send(s: &TestServer, (method, path, body): &(Method, String, Option<Value>)) -> Resp {
    s.request(
        method.clone(),
        path,
        body.as_ref().map(|b| serde_json::to_vec(b).expect("json")),
    )
    .await
}

#[tokio::test]
async fn paused_project_refuses_writes_and_serves_reads() {
    let s = TestServer::start(&[]).await;
    let p = "paused-project";
    let id = paused_fixture(&s, p).await;
    s.create_collection("bystander", "coll", json!({})).await;
    let admin = Admin::open(&s);

    let first = admin.pause(p).await;
    assert!(first > 0, "sequence {first}");
    assert_eq!(admin.info(p).await["state"], json!("paused"));
    assert_eq!(
        admin.get("/stats").await.ok_object()["pausedProjects"],
        json!(1)
    );
    // pausing again is harmless and reports the same point
    assert_eq!(admin.pause(p).await, first);

    for route in write_routes(p, &id) {
        let r = send(&s, &route).await;
        assert_paused_retry_soon(&r, &format!("{} {}", route.0, route.1));
    }
    for route in read_routes(p, &id) {
        let r = send(&s, &route).await;
        assert_ok(&r, &format!("{} {}", route.0, route.1));
    }
    // nothing was written: same records, same sequence
    assert_eq!(s.count(p, "coll").await, 10);
    let docs = s
        .get_records(p, "coll", &json!({"ids": ["r1"], "include": ["documents"]}))
        .await;
    assert_eq!(docs["documents"], json!(["document r1"]));
    assert!(s.workspace().join(p).is_dir());
    // other projects are not affected
    s.add("bystander", "coll", &records("b", 3, 2)).await;

    admin.resume(p).await;
    assert_eq!(admin.info(p).await["state"], json!("active"));
    let r = s
        .post(&cpath(p, "coll", "/add"), &records("after", 5, 3))
        .await;
    assert_eq!(r.ok_object()["added"], json!(5));
    assert_eq!(s.count(p, "coll").await, 15);
    let later = admin.pause(p).await;
    assert!(
        later > first,
        "sequence {later} after writes, {first} before"
    );
    admin.resume(p).await;
    let again = admin.post(&format!("/projects/{p}/resume"), None).await;
    assert_eq!(again.ok_object()["wasPaused"], json!(false));
}

#[tokio::test]
async fn paused_project_stays_paused_across_close_and_reopen() {
    let s = TestServer::start(&["--max-open-projects", "1"]).await;
    let admin = Admin::open(&s);
    s.create_collection("pause-lru", "coll", json!({})).await;
    s.add("pause-lru", "coll", &records("r", 4, 2)).await;
    admin.pause("pause-lru").await;

    // opening another project closes the paused one
    s.create_collection("other-lru", "coll", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.info("pause-lru").await["open"] != json!(false) {
        assert!(Instant::now() < deadline, "paused project never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // reads reopen it; writes are still refused
    assert_eq!(s.count("pause-lru", "coll").await, 4);
    let r = s
        .post(&cpath("pause-lru", "coll", "/add"), &records("x", 1, 2))
        .await;
    assert_paused_retry_soon(&r, "add after reopen");
    assert_eq!(admin.info("pause-lru").await["state"], json!("paused"));
    // and pausing a closed project works too
    s.create_collection("other-lru", "coll2", json!({})).await;
    admin.pause("pause-lru").await;

    admin.resume("pause-lru").await;
    s.add("pause-lru", "coll", &records("x", 1, 2)).await;
    assert_eq!(s.count("pause-lru", "coll").await, 5);
}

/// Adds batches of `batch` records to `url` back to back until refused with "paused";
/// returns the records acknowledged.
fn spawn_writer(
    s: &TestServer,
    url: String,
    prefix: String,
    batch: usize,
    dim: usize,
) -> tokio::task::JoinHandle<u64> {
    let client = s.client.clone();
    tokio::spawn(async move {
        let mut acked = 0;
        for round in 0.. {
            let body = serde_json::to_vec(&records(&format!("{prefix}-{round}-"), batch, dim))
                .expect("json");
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("add");
            match r.status().as_u16() {
                200 => acked += batch as u64,
                503 => {
                    let state = r
                        .headers()
                        .get(PROJECT_STATE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    assert_eq!(state.as_deref(), Some(PROJECT_PAUSED));
                    return acked;
                }
                other => panic!("add failed with {other}: {:?}", r.text().await),
            }
        }
        unreachable!()
    })
}

#[tokio::test]
async fn pause_waits_for_writes_in_flight() {
    const BATCH: usize = 3000;
    const DIM: usize = 64;
    const ATTEMPTS: usize = 10;
    let s = TestServer::start(&[]).await;
    let p = "busy-project";
    s.create_collection(
        p,
        "coll",
        json!({"configuration": {"hnsw": {"space": "l2"}}}),
    )
    .await;
    let admin = Admin::open(&s);
    let url = s.url(&cpath(p, "coll", "/add"));

    // whether a pause lands while a write is inside the store is a matter of timing, so
    // try until one did (the answer says how many writes it waited for); every attempt
    // checks that nothing moves while paused and that nothing acknowledged is lost
    let mut acked_total = 0;
    let mut drained_any = false;
    for attempt in 0..ATTEMPTS {
        let writers: Vec<_> = (0..2)
            .map(|w| spawn_writer(&s, url.clone(), format!("a{attempt}w{w}"), BATCH, DIM))
            .collect();
        // let the writers get going, pausing at a different point of their stream each time
        tokio::time::sleep(Duration::from_millis(60 + 23 * attempt as u64)).await;
        let r = admin.post(&format!("/projects/{p}/pause"), None).await;
        let drained = r.ok_object()["drainedWrites"]
            .as_u64()
            .expect("drainedWrites");
        let at_pause = s.count(p, "coll").await;
        for w in writers {
            acked_total += tokio::time::timeout(Duration::from_secs(120), w)
                .await
                .expect("writer stops once refused")
                .expect("writer");
        }
        for _ in 0..4 {
            assert_eq!(
                s.count(p, "coll").await,
                at_pause,
                "count moved while paused"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            at_pause, acked_total,
            "stored records differ from acknowledged ones (attempt {attempt})"
        );
        admin.resume(p).await;
        if drained > 0 {
            eprintln!("attempt {attempt}: the pause waited for {drained} writes");
            drained_any = true;
            break;
        }
    }
    assert!(
        drained_any,
        "no pause in {ATTEMPTS} attempts found a write in progress"
    );

    s.add(p, "coll", &records("late-", 10, DIM)).await;
    assert_eq!(s.count(p, "coll").await, acked_total + 10);
}

// ---- fence ----

/// Every route of both APIs to project `p`, reads, writes and first-access creation
/// alike, answers "moved to `to`".
async fn assert_all_moved(s: &TestServer, p: &str, id: &str, to: &str) {
    let mut routes = write_routes(p, id);
    routes.extend(read_routes(p, id));
    routes.push((
        Method::POST,
        "/api/v2/tenants".into(),
        Some(json!({"name": p})),
    ));
    routes.push((
        Method::PATCH,
        format!("/api/v2/tenants/{p}"),
        Some(json!({})),
    ));
    for route in &routes {
        let r = send(s, route).await;
        assert_moved_to(&r, to, &format!("{} {}", route.0, route.1));
    }
}

#[tokio::test]
async fn fenced_project_refuses_everything_even_after_restart() {
    let mut s = TestServer::start(&["--admin-token", TOKEN]).await;
    let p = "moving-project";
    let to = "http://shard-7.quiver:7100";
    let id = paused_fixture(&s, p).await;
    let admin = Admin::with_token(&s, TOKEN);

    let r = admin
        .post(
            &format!("/projects/{p}/fence"),
            Some(&json!({"movedTo": to})),
        )
        .await;
    let body = r.ok_object();
    assert_eq!(body["fenced"], json!(true));
    assert_eq!(body["movedTo"], json!(to));
    let fence_file = store_root(&s, p).join("FENCED");
    assert!(fence_file.is_file(), "no fence file next to db/");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&fence_file).expect("fence file")).expect("json");
    assert_eq!(saved["movedTo"], json!(to));

    assert_all_moved(&s, p, &id, to).await;

    // the admin API still sees it; the data API's listing does not (it lives elsewhere)
    let info = admin.info(p).await;
    assert_eq!(info["state"], json!("fenced"));
    assert_eq!(info["movedTo"], json!(to));
    assert_eq!(info["open"], json!(false));
    // the v1 collection's 10 records and the v2 collection's 2
    assert_eq!(info["records"], json!(12), "{info}");
    let listed: Vec<Value> = s.get("/api/v1/projects").await.ok_object()["projects"]
        .as_array()
        .expect("projects")
        .clone();
    assert!(listed.iter().all(|x| x["name"] != json!(p)), "{listed:?}");
    assert_eq!(
        admin.get("/stats").await.ok_object()["fencedProjects"],
        json!(1)
    );
    // a fenced copy can be neither paused nor provisioned
    assert_moved_to(
        &admin.post(&format!("/projects/{p}/pause"), None).await,
        to,
        "pause",
    );
    assert_moved_to(&admin.put(&format!("/projects/{p}")).await, to, "provision");

    s.terminate().await;
    s.restart().await;
    let tree_before = list_tree(s.workspace());
    assert_all_moved(&s, p, &id, to).await;
    assert_eq!(
        list_tree(s.workspace()),
        tree_before,
        "refused requests changed files"
    );

    // lifting the fence (a move rolled back) serves the same data again
    let admin = Admin::with_token(&s, TOKEN);
    let r = admin.delete(&format!("/projects/{p}/fence")).await;
    assert_eq!(r.ok_object()["wasFenced"], json!(true));
    assert!(!fence_file.exists());
    assert_eq!(s.count(p, "coll").await, 10);
    s.add(p, "coll", &records("back", 2, 3)).await;
    assert_eq!(s.count(p, "coll").await, 12);
    assert_eq!(admin.info(p).await["state"], json!("active"));
    let again = admin.delete(&format!("/projects/{p}/fence")).await;
    assert_eq!(again.ok_object()["wasFenced"], json!(false));
}

#[tokio::test]
async fn fence_without_destination_and_deleting_the_fenced_copy() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    s.create_collection("left-behind", "coll", json!({})).await;
    let r = admin.post("/projects/left-behind/fence", None).await;
    assert_eq!(r.ok_object()["movedTo"], Value::Null);
    let refused = s.get("/api/v1/left-behind/collections").await;
    assert_moved_to(&refused, "another server", "list collections");
    // the client API cannot delete it; the admin API can
    assert_moved_to(
        &s.delete("/api/v1/left-behind").await,
        "another server",
        "client delete",
    );
    let r = admin.delete("/projects/left-behind").await;
    assert_eq!(r.ok_object()["deleted"], json!(true));
    assert!(!s.workspace().join("left-behind").exists());
}

#[tokio::test]
async fn fence_waits_for_requests_in_flight_and_closes_the_project() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    s.create_collection("closing-project", "coll", json!({}))
        .await;
    s.add("closing-project", "coll", &records("r", 20, 4)).await;
    assert_eq!(admin.info("closing-project").await["open"], json!(true));
    admin
        .post(
            "/projects/closing-project/fence",
            Some(&json!({"movedTo": "http://elsewhere:7100"})),
        )
        .await
        .ok_object();
    let info = admin.info("closing-project").await;
    assert_eq!(info["open"], json!(false), "{info}");
    assert_eq!(info["statsSource"], json!("saved"), "{info}");
    assert_eq!(info["records"], json!(20), "{info}");
    assert_eq!(
        admin.get("/stats").await.ok_object()["openProjects"],
        json!(0)
    );
}

// ---- bad input ----

#[tokio::test]
async fn bad_admin_input_gets_json_errors() {
    let s = TestServer::start(&[]).await;
    let admin = Admin::open(&s);
    s.create_collection("valid-project", "coll", json!({}))
        .await;

    for name in ["ab", "a..b", "-bad-", "spaced%20name", "%C3%A9t%C3%A9"] {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::PUT, ""),
            (Method::DELETE, ""),
            (Method::POST, "/pause"),
            (Method::POST, "/resume"),
            (Method::POST, "/fence"),
            (Method::DELETE, "/fence"),
        ] {
            let r = admin
                .call(method.clone(), &format!("/projects/{name}{suffix}"), None)
                .await;
            let msg = r.chroma_err(400, "InvalidArgumentError");
            assert!(
                msg.contains("project name"),
                "{method} {name}{suffix}: {msg}"
            );
        }
    }

    let fence = |body: &'static [u8]| {
        s.request(
            Method::POST,
            "/admin/v1/projects/valid-project/fence",
            Some(body.to_vec()),
        )
    };
    let msg = fence(b"{\"movedTo\": ")
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("Malformed JSON"), "{msg}");
    let msg = fence(b"[1, 2]")
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("JSON object"), "{msg}");
    let msg = fence(b"{\"movedTo\": 7}")
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("movedTo"), "{msg}");
    let msg = fence(b"{\"moved_to\": \"http://x\"}")
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("moved_to"), "{msg}");
    let msg = fence(b"{\"movedTo\": \"\"}")
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("movedTo"), "{msg}");
    let msg = admin
        .call(
            Method::PUT,
            "/projects/valid-project",
            Some(&json!({"quota": 3})),
        )
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("quota"), "{msg}");
    let msg = s
        .request(
            Method::POST,
            "/admin/v1/projects/valid-project/pause",
            Some(b"not json".to_vec()),
        )
        .await
        .chroma_err(400, "InvalidArgumentError");
    assert!(msg.contains("Malformed JSON"), "{msg}");
    // none of that fenced or paused it
    assert_eq!(admin.info("valid-project").await["state"], json!("active"));

    admin
        .get("/projects/valid-project/pause")
        .await
        .chroma_err(405, "InvalidArgumentError");
    let msg = admin
        .get("/nothing-here")
        .await
        .chroma_err(404, "NotFoundError");
    assert!(msg.contains("/admin/v1/nothing-here"), "{msg}");
}
