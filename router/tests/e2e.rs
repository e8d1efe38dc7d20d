//! End-to-end tests of the router: real tenant-server shards and a real router, all
//! processes on loopback (see `common` for the harness).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use futures_util::stream::{self, StreamExt};
use quiver_placement::{home_ordinal, PlacementTable};
use reqwest::Method;
use serde_json::{json, Value};

const RECORDS: usize = 6;

/// Record `j` of project number `k`: distinct vectors at l2 distance ≥ 9 from each other.
fn embedding(k: usize, j: usize) -> Vec<f32> {
    vec![k as f32, 3.0 * j as f32, ((k * 7 + j) % 5) as f32, 1.0]
}

fn ids() -> Vec<String> {
    (0..RECORDS).map(|j| format!("r{j}")).collect()
}

fn document(project: &str, j: usize) -> String {
    format!("record {j} of {project}")
}

fn metadata(project: &str, k: usize, j: usize, api: &str) -> Value {
    json!({"project": project, "k": k, "j": j, "api": api})
}

fn add_body(project: &str, k: usize, api: &str) -> Value {
    json!({
        "ids": ids(),
        "embeddings": (0..RECORDS).map(|j| embedding(k, j)).collect::<Vec<_>>(),
        "documents": (0..RECORDS).map(|j| document(project, j)).collect::<Vec<_>>(),
        "metadatas": (0..RECORDS).map(|j| metadata(project, k, j, api)).collect::<Vec<_>>(),
    })
}

fn v1(project: &str, suffix: &str) -> String {
    format!("/api/v1/{project}/collections{suffix}")
}

fn v2(project: &str, suffix: &str) -> String {
    format!("/api/v2/tenants/{project}/databases/default_database{suffix}")
}

/// Asserts that a GetResult holds exactly the records written for project `k`.
#[track_caller]
fn check_get_result(res: &Value, project: &str, k: usize, api: &str) {
    let got = strings(&res["ids"]);
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        ids().iter().collect::<BTreeSet<_>>(),
        "ids of {project}: {res}"
    );
    for (i, id) in got.iter().enumerate() {
        let j: usize = id[1..].parse().unwrap();
        assert_eq!(
            res["documents"][i],
            json!(document(project, j)),
            "{project}"
        );
        assert_eq!(
            res["metadatas"][i],
            metadata(project, k, j, api),
            "{project}"
        );
        assert_eq!(f32s(&res["embeddings"][i]), embedding(k, j), "{project}");
    }
}

/// Asserts a QueryResult for the embedding of record `j`: every record, `j` first at 0.
#[track_caller]
fn check_query_result(res: &Value, project: &str, j: usize) {
    let got = strings(&res["ids"][0]);
    assert_eq!(got.len(), RECORDS, "query of {project}: {res}");
    assert_eq!(got[0], format!("r{j}"), "nearest of {project}: {res}");
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>(),
        ids().iter().collect::<BTreeSet<_>>(),
        "query ids of {project}"
    );
    assert!(
        res["distances"][0][0].as_f64().unwrap().abs() < 1e-4,
        "{res}"
    );
}

/// Writes project number `k` through the per-project API: collection `docs` (l2), records.
async fn write_v1(http: &Http, project: &str, k: usize, home: u32) {
    let r = http
        .post(
            &v1(project, ""),
            &json!({"name": "docs", "configuration": {"hnsw": {"space": "l2"}}}),
        )
        .await;
    assert_eq!(r.ok_from(home)["collection"]["name"], "docs");
    let r = http
        .post(&v1(project, "/docs/add"), &add_body(project, k, "v1"))
        .await;
    assert_eq!(r.ok_from(home)["added"], json!(RECORDS), "{}", r.text);
}

/// Writes project number `k` through the Chroma v2 API: tenant, its default database,
/// collection `docs`, records.
async fn write_v2(http: &Http, project: &str, k: usize, home: u32) {
    let r = http
        .post("/api/v2/tenants", &json!({"name": project}))
        .await;
    r.ok_from(home);
    // a tenant made by create_tenant has no database until one is created (as in Chroma)
    let r = http
        .post(
            &format!("/api/v2/tenants/{project}/databases"),
            &json!({"name": "default_database"}),
        )
        .await;
    r.ok_from(home);
    let r = http
        .get(&format!(
            "/api/v2/tenants/{project}/databases/default_database"
        ))
        .await;
    assert_eq!(r.ok_from(home)["name"], "default_database");
    let r = http
        .post(&v2(project, "/collections"), &json!({"name": "docs"}))
        .await;
    let id = r.ok_from(home)["id"]
        .as_str()
        .expect("collection id")
        .to_string();
    let r = http
        .post(
            &v2(project, &format!("/collections/{id}/add")),
            &add_body(project, k, "v2"),
        )
        .await;
    r.ok_from(home);
}

/// Reads every record of project `k` back through both APIs (count, get, query).
async fn check_project(http: &Http, project: &str, k: usize, api: &str, home: u32) {
    // per-project API
    let r = http.get(&v1(project, "/docs/count")).await;
    assert_eq!(r.ok_from(home)["count"], json!(RECORDS), "{project}");
    let r = http
        .post(
            &v1(project, "/docs/get"),
            &json!({"include": ["documents", "metadatas", "embeddings"]}),
        )
        .await;
    check_get_result(&r.ok_from(home)["results"], project, k, api);
    // a query string survives the proxy
    let r = http
        .get(&v1(project, "/docs/get?ids=r1&ids=r4&include=documents"))
        .await;
    let res = &r.ok_from(home)["results"];
    assert_eq!(
        strings(&res["ids"]).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["r1".to_string(), "r4".to_string()]),
        "{project}: {res}"
    );
    let j = k % RECORDS;
    let r = http
        .post(
            &v1(project, "/docs/query"),
            &json!({"query_embeddings": [embedding(k, j)], "n_results": RECORDS}),
        )
        .await;
    check_query_result(&r.ok_from(home)["results"], project, j);

    // Chroma v2 API
    let r = http.get(&v2(project, "/collections/docs")).await;
    let id = r.ok_from(home)["id"]
        .as_str()
        .expect("collection id")
        .to_string();
    let r = http
        .get(&v2(project, &format!("/collections/{id}/count")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.shard(), Some(home));
    assert_eq!(r.body, json!(RECORDS), "{project}");
    let r = http
        .post(
            &v2(project, &format!("/collections/{id}/get")),
            &json!({"include": ["documents", "metadatas", "embeddings"]}),
        )
        .await;
    check_get_result(r.ok_from(home), project, k, api);
    let j = (k + 1) % RECORDS;
    let r = http
        .post(
            &v2(project, &format!("/collections/{id}/query")),
            &json!({"query_embeddings": [embedding(k, j)], "n_results": RECORDS}),
        )
        .await;
    check_query_result(r.ok_from(home), project, j);
}

/// The listing through the router, as name → entry; asserts each name appears once.
async fn listing(http: &Http) -> BTreeMap<String, Value> {
    let r = http.get("/api/v1/projects").await;
    let items = r.ok()["projects"].as_array().expect("projects").clone();
    let mut out = BTreeMap::new();
    for item in items {
        let name = item["name"].as_str().expect("name").to_string();
        assert!(
            out.insert(name.clone(), item).is_none(),
            "{name} listed twice"
        );
    }
    out
}

// ---------------------------------------------------------------------------------------

/// 300 projects through the router over three shards, half per API: each lands on its
/// home shard only, every answer says so, and everything reads back through both APIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_live_on_their_home_shard_and_read_back_through_both_apis() {
    const PROJECTS: usize = 300;
    let cluster = Cluster::start(3, Source::Static).await;
    let http = &cluster.http;
    let names = project_names("e2e-place", PROJECTS);
    let home = |p: &str| home_ordinal(p, 3);
    let per_shard: Vec<usize> = (0..3)
        .map(|o| names.iter().filter(|n| home(n) == o).count())
        .collect();
    assert!(per_shard.iter().all(|&n| n > 50), "{per_shard:?}");

    stream::iter(names.iter().enumerate())
        .for_each_concurrent(12, |(k, p)| async move {
            if k % 2 == 0 {
                write_v1(http, p, k, home(p)).await;
            } else {
                write_v2(http, p, k, home(p)).await;
            }
        })
        .await;

    // each project's directory exists only in its home shard's workspace
    for (k, p) in names.iter().enumerate() {
        assert_eq!(
            cluster.shards_holding(p),
            vec![home(p)],
            "directories of project {k} {p}"
        );
    }
    for s in &cluster.shards {
        let expected: BTreeSet<String> = names
            .iter()
            .filter(|n| home(n) == s.ordinal)
            .cloned()
            .collect();
        assert_eq!(
            s.project_dirs(),
            expected,
            "projects of shard {}",
            s.ordinal
        );
    }

    stream::iter(names.iter().enumerate())
        .for_each_concurrent(12, |(k, p)| async move {
            let api = if k % 2 == 0 { "v1" } else { "v2" };
            check_project(http, p, k, api, home(p)).await;
        })
        .await;

    // percent-encoded spellings of a name reach the same project on the same shard
    let p = &names[0];
    let encoded: String = p.bytes().map(|b| format!("%{b:02X}")).collect();
    let r = http.get(&v1(&encoded, "/docs/count")).await;
    assert_eq!(r.ok_from(home(p))["count"], json!(RECORDS));

    let listed = listing(http).await;
    assert_eq!(listed.len(), PROJECTS, "listing: {:?}", listed.keys());
    for p in &names {
        let item = listed
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from the listing"));
        assert_eq!(item["shard"], json!(home(p)), "{item}");
        assert_eq!(item["collections"], json!(1), "{item}");
        assert_eq!(item["records"], json!(RECORDS), "{item}");
    }
}

/// A SIGKILLed shard: its projects get a fast 503 `ShardUnavailable` naming it, the other
/// shards' projects keep working, and after a restart on the same port and workspace its
/// projects answer again with all their data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_shard_fails_fast_and_recovers_on_restart() {
    let mut cluster = Cluster::start(3, Source::Static).await;
    let http = cluster.http.clone();
    let names = project_names("e2e-dead", 24);
    let home = |p: &str| home_ordinal(p, 3);
    let victim = 1;
    type Numbered = Vec<(usize, String)>;
    let (dead, alive): (Numbered, Numbered) = names
        .iter()
        .cloned()
        .enumerate()
        .partition(|(_, p)| home(p) == victim);
    assert!(dead.len() >= 3 && alive.len() >= 6, "{dead:?} {alive:?}");
    for (k, p) in names.iter().enumerate() {
        write_v1(&http, p, k, home(p)).await;
    }

    cluster.shards[victim as usize].kill();

    let check_unavailable = |r: &Resp, what: &str| {
        let body = r.err(503, "ShardUnavailable");
        assert_eq!(body["shard"], json!(victim), "{what}: {}", r.text);
        assert!(
            r.elapsed < Duration::from_secs(2),
            "{what} took {:?} to fail",
            r.elapsed
        );
    };
    for (k, p) in &dead {
        let r = http.get(&v1(p, "/docs/count")).await;
        check_unavailable(&r, &format!("count of {p}"));
        let r = http
            .post(&v1(p, "/docs/add"), &add_body(p, *k + 1000, "v1"))
            .await;
        check_unavailable(&r, &format!("add to {p}"));
        let r = http.get(&v2(p, "/collections/docs")).await;
        check_unavailable(&r, &format!("v2 collection of {p}"));
    }
    let new_on_victim = name_where("e2e-dead-new", 3, |o| o == victim);
    let r = http
        .post("/api/v2/tenants", &json!({"name": new_on_victim}))
        .await;
    check_unavailable(&r, "create tenant");
    // the client's request id comes back on the router's own errors too
    let (_, p) = &dead[0];
    let r = http
        .send(
            Method::GET,
            &v1(p, "/docs/count"),
            None,
            &[("x-request-id", "dead-shard-req")],
        )
        .await;
    check_unavailable(&r, "count with a request id");
    assert_eq!(r.header("x-request-id"), Some("dead-shard-req"));

    // the other shards' projects: reads and writes
    for (_, p) in &alive {
        let r = http
            .post(
                &v1(p, "/docs/add"),
                &json!({"ids": ["extra"], "embeddings": [[9.0, 9.0, 9.0, 9.0]]}),
            )
            .await;
        assert_eq!(r.ok_from(home(p))["added"], json!(1));
        let r = http.get(&v1(p, "/docs/count")).await;
        assert_eq!(r.ok_from(home(p))["count"], json!(RECORDS + 1));
        let r = http.get(&v2(p, "/collections/docs")).await;
        r.ok_from(home(p));
    }
    let fresh = name_where("e2e-dead-fresh", 3, |o| o != victim);
    write_v2(&http, &fresh, 77, home(&fresh)).await;
    // calls any shard can answer skip the dead one
    for _ in 0..6 {
        let r = http.get("/api/v2/pre-flight-checks").await;
        assert_ne!(r.ok().get("max_batch_size"), None, "{}", r.text);
        assert_ne!(r.shard(), Some(victim));
    }
    // a listing without one shard would look like lost projects: it fails instead
    let r = http.get("/api/v1/projects").await;
    assert_eq!(r.err(503, "ShardUnavailable")["shard"], json!(victim));
    // one dead shard does not make the router unready
    assert_eq!(http.get("/readyz").await.status, 200);

    cluster.shards[victim as usize].restart().await;
    for (k, p) in &dead {
        check_project(&http, p, *k, "v1", victim).await;
    }
    for (k, p) in &alive {
        let r = http.get(&v1(p, "/docs/count")).await;
        assert_eq!(r.ok_from(home(p))["count"], json!(RECORDS + 1), "{k}");
    }
    let listed = listing(&http).await;
    assert_eq!(listed.len(), names.len() + 1);
    assert!(listed
        .iter()
        .all(|(name, item)| item["shard"] == json!(home(name))));
}

/// Placement from a file: rewrites (an override, then a larger shardCount) take effect
/// within a couple of seconds and traffic follows; an invalid file keeps the old table
/// and makes the router unready until it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_file_rewrites_redirect_traffic_and_bad_files_keep_the_old_table() {
    let initial = PlacementTable {
        epoch: 1,
        shard_count: 2,
        shards: vec![],
        overrides: Default::default(),
        moving: Default::default(),
    };
    let cluster = Cluster::start(
        3,
        Source::File {
            table: initial,
            poll_ms: 200,
        },
    )
    .await;
    let http = &cluster.http;
    let within = Duration::from_secs(3);
    let t1 = cluster.wait_for_epoch(1, within).await;
    assert_eq!(t1.shard_count, 2);
    assert_eq!(t1.shards, cluster.shard_urls());

    // overridden: a project homed on 0 with two and three shards; mover: moves to 2
    // when N = 3;
    // stayers: the same home with 2 and 3 shards
    let overridden = name_where("e2e-file-ovr", 3, |o| o == 0);
    let mover = name_where("e2e-file-mov", 3, |o| o == 2);
    let stayers: Vec<String> = project_names("e2e-file-stay", 40)
        .into_iter()
        .filter(|p| home_ordinal(p, 3) != 2)
        .take(6)
        .collect();
    let mut all = vec![overridden.clone(), mover.clone()];
    all.extend(stayers.iter().cloned());
    for (k, p) in all.iter().enumerate() {
        write_v1(http, p, k, home_ordinal(p, 2)).await;
    }
    assert!(cluster.shards[2].project_dirs().is_empty());
    let shard_of = |r: Resp| {
        assert_eq!(r.status, 200, "{}", r.text);
        r.shard().expect("x-quiver-shard")
    };

    // 1. an override sends one project to shard 2
    let mut t2 = t1.clone();
    t2.epoch = 2;
    t2.overrides.insert(overridden.clone(), 2);
    let written = Instant::now();
    cluster.write_placement(&t2);
    assert_eq!(cluster.wait_for_epoch(2, within).await, t2);
    eprintln!("epoch 2 in force after {:?}", written.elapsed());
    let r = http
        .post(&v1(&overridden, ""), &json!({"name": "after-override"}))
        .await;
    r.ok_from(2);
    let r = http
        .post(
            &v1(&overridden, "/after-override/add"),
            &json!({"ids": ["n1", "n2"], "embeddings": [[1.0, 2.0], [3.0, 4.0]]}),
        )
        .await;
    r.ok_from(2);
    assert!(cluster.shards[2].has_project_dir(&overridden));
    let r = http.get(&v1(&overridden, "/after-override/count")).await;
    assert_eq!(r.ok_from(2)["count"], json!(2));
    for p in stayers.iter().chain([&mover]) {
        assert_eq!(
            shard_of(http.get(&v1(p, "/docs/count")).await),
            home_ordinal(p, 2)
        );
    }

    // 2. shardCount 2 → 3: the mover follows the hash to the new shard, stayers stay
    let mut t3 = t2.clone();
    t3.epoch = 3;
    t3.shard_count = 3;
    cluster.write_placement(&t3);
    assert_eq!(cluster.wait_for_epoch(3, within).await, t3);
    assert_ne!(home_ordinal(&mover, 2), 2);
    assert!(!cluster.shards[2].has_project_dir(&mover));
    let r = http
        .post(&v1(&mover, ""), &json!({"name": "after-grow"}))
        .await;
    r.ok_from(2);
    assert!(cluster.shards[2].has_project_dir(&mover));
    for p in &stayers {
        let r = http.get(&v1(p, "/docs/count")).await;
        assert_eq!(r.ok_from(home_ordinal(p, 2))["count"], json!(RECORDS));
    }
    assert_eq!(
        shard_of(http.get(&v1(&overridden, "/after-override/count")).await),
        2
    );
    assert_eq!(http.get("/readyz").await.status, 200);

    // 3. garbage: the old table stays, the router turns unready
    cluster.write_placement_raw("{\"epoch\": 4, \"shardCount\": 1, \"shards\": [");
    let r = cluster.wait_for_readyz(503, within).await;
    assert_eq!(r.body["error"], "NotReady", "{}", r.text);
    assert_eq!(cluster.wait_for_epoch(3, within).await, t3);
    // a table that parses but cannot route is refused the same way
    let mut bad = t3.clone();
    bad.epoch = 5;
    bad.overrides.insert(mover.clone(), 7);
    cluster.write_placement_raw(&bad.to_json());
    let deadline = Instant::now() + within;
    while !cluster.router.log().contains("names ordinal 7") {
        assert!(
            Instant::now() < deadline,
            "the router never reported the invalid table:\n{}",
            cluster.router.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http.get("/readyz").await.status, 503);
    assert_eq!(cluster.wait_for_epoch(3, within).await, t3);
    // traffic is unchanged
    assert_eq!(
        shard_of(http.get(&v1(&mover, "/after-grow/count")).await),
        2
    );
    assert_eq!(
        shard_of(http.get(&v1(&overridden, "/after-override/count")).await),
        2
    );
    for p in &stayers {
        assert_eq!(
            shard_of(http.get(&v1(p, "/docs/count")).await),
            home_ordinal(p, 2)
        );
    }

    // 4. fixed: ready again, the new table in force (the override dropped)
    let mut t6 = t3.clone();
    t6.epoch = 6;
    t6.overrides.clear();
    cluster.write_placement(&t6);
    cluster.wait_for_readyz(200, within).await;
    assert_eq!(cluster.wait_for_epoch(6, within).await, t6);
    let r = http.get(&v1(&overridden, "/docs/count")).await;
    assert_eq!(
        r.ok_from(home_ordinal(&overridden, 3))["count"],
        json!(RECORDS)
    );
    let metrics = http.get("/metrics").await.text;
    assert!(
        metrics
            .lines()
            .any(|l| l == "quiver_router_placement_epoch 6"),
        "{metrics}"
    );
}

/// The router's own server-level routes, the calls it fans out, and its JSON errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_level_calls_fan_out_and_errors_are_json() {
    let cluster = Cluster::start(2, Source::Static).await;
    let http = &cluster.http;

    let r = http.get("/").await;
    let root = r.ok();
    assert_eq!(root["message"], "Quiver router");
    assert_eq!(root["placement_epoch"], json!(0));
    assert_eq!(root["shards"], json!(cluster.shard_urls()));

    let r = http.get("/api/v1/heartbeat").await;
    assert_eq!(r.ok()["status"], "ok");
    assert!(r.body["nanosecond heartbeat"].as_u64().unwrap() > 0);
    let r = http.get("/api/v2/heartbeat").await;
    assert!(r.ok()["nanosecond heartbeat"].as_u64().unwrap() > 0);
    let r = http.get("/api/v1/version").await;
    assert!(r.ok()["version"].as_str().is_some_and(|v| !v.is_empty()));
    let r = http.get("/api/v2/version").await;
    assert_eq!(r.status, 200);
    assert!(r.body.as_str().is_some_and(|v| !v.is_empty()), "{}", r.text);

    let mut answered_by = BTreeSet::new();
    for _ in 0..4 {
        let r = http.get("/api/v2/pre-flight-checks").await;
        assert!(r.ok()["max_batch_size"].as_u64().unwrap() > 0, "{}", r.text);
        assert_eq!(r.body["supports_base64_encoding"], json!(true));
        answered_by.insert(r.shard().expect("x-quiver-shard"));
    }
    assert_eq!(
        answered_by.len(),
        2,
        "pre-flight checks go to every shard in turn"
    );
    let r = http.get("/api/v2/auth/identity").await;
    assert_eq!(r.ok()["tenant"], "default_tenant");
    assert!(r.shard().is_some());

    assert_eq!(http.get("/healthz").await.ok()["status"], "ok");
    let r = http.get("/readyz").await;
    assert_eq!(r.ok()["status"], "ready");

    // unknown paths, wrong methods, undecodable project names: JSON errors
    for path in [
        "/nope",
        "/api/v3/tenants/acme",
        "/api/v2/tenants/",
        "/api/v1/",
    ] {
        http.get(path).await.err(404, "NotFoundError");
    }
    let r = http.delete("/api/v1/heartbeat").await;
    r.err(405, "InvalidArgumentError");
    let r = http.get("/api/v2/reset").await;
    r.err(405, "InvalidArgumentError");
    let r = http.send(Method::PUT, "/healthz", None, &[]).await;
    r.err(405, "InvalidArgumentError");
    let r = http.get("/api/v1/%ff%fe/collections").await;
    r.err(400, "InvalidArgumentError");
    let r = http
        .post("/api/v2/tenants/%C3%28/databases", &json!({"name": "db"}))
        .await;
    r.err(400, "InvalidArgumentError");

    // projects on both shards, through both APIs
    let mut projects = Vec::new();
    for ordinal in 0..2 {
        for (i, api) in ["v1", "v2"].iter().enumerate() {
            let p = name_where(&format!("e2e-srv-{api}"), 2, |o| o == ordinal);
            if i == 0 {
                write_v1(http, &p, 1, ordinal).await;
            } else {
                write_v2(http, &p, 2, ordinal).await;
            }
            projects.push(p);
        }
    }
    for s in &cluster.shards {
        assert_eq!(s.project_dirs().len(), 2, "shard {}", s.ordinal);
    }
    assert_eq!(listing(http).await.len(), 4);

    let metrics = http.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let text = &metrics.text;
    for needle in [
        "quiver_http_requests_total{route=\"server\",status=\"200\"}",
        "quiver_http_requests_total{route=\"v1_project\",status=\"200\"}",
        "quiver_http_requests_total{route=\"v2_tenant\",status=\"201\"}",
        "quiver_http_requests_total{route=\"v2_create_tenant\",status=\"200\"}",
        "quiver_http_requests_total{route=\"unmatched\",status=\"404\"}",
        "quiver_http_requests_total{route=\"probe\",status=\"200\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(
        text.lines().any(|l| l == "quiver_router_placement_epoch 0"),
        "{text}"
    );

    // reset reaches every shard
    let r = http.send(Method::POST, "/api/v2/reset", None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!(true));
    for s in &cluster.shards {
        assert_eq!(
            s.project_dirs(),
            BTreeSet::new(),
            "shard {} after reset",
            s.ordinal
        );
    }
    assert!(listing(http).await.is_empty());
    for p in &projects {
        let r = http
            .get(&format!(
                "/api/v2/tenants/{p}/databases/default_database/collections_count"
            ))
            .await;
        // a tenant is created on first access, empty
        assert_eq!(r.body, json!(0), "{p}: {}", r.text);
    }
}

/// A minimal stand-in shard that answers every request with what it received.
async fn echo_shard() -> (String, tokio::task::JoinHandle<()>) {
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        // a body that never arrives in full (a Content-Length promising more bytes than are
        // sent) is reported rather than waited for
        let (body, complete) = match tokio::time::timeout(
            Duration::from_secs(1),
            axum::body::to_bytes(body, usize::MAX),
        )
        .await
        {
            Ok(Ok(b)) => (b, true),
            _ => (Default::default(), false),
        };
        let headers: BTreeMap<String, String> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        axum::Json(json!({
            "method": parts.method.as_str(),
            "path": parts.uri.to_string(),
            "headers": headers,
            "body_len": body.len(),
            "body_complete": complete,
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

fn is_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
}

/// A multi-megabyte add streams through the router; request ids come back (the client's
/// or a generated one) and trace context reaches the shard unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_and_request_ids_and_trace_context_pass_through() {
    const N: usize = 2000;
    const DIM: usize = 384;
    let cluster = Cluster::start(2, Source::Static).await;
    let http = &cluster.http;
    let project = "e2e-large";
    let home = home_ordinal(project, 2);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let r = http
        .post(
            &v1(project, ""),
            &json!({"name": "big", "configuration": {"hnsw": {"space": "l2"}}}),
        )
        .await;
    r.ok_from(home);
    // deterministic pseudo-random vectors
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let vectors: Vec<Vec<f32>> = (0..N).map(|_| (0..DIM).map(|_| next()).collect()).collect();
    let body = json!({
        "ids": (0..N).map(|i| format!("big-{i}")).collect::<Vec<_>>(),
        "embeddings": vectors,
        "documents": (0..N).map(|i| format!("document {i}")).collect::<Vec<_>>(),
        "metadatas": (0..N).map(|i| json!({"i": i})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    assert!(body.len() > 4 << 20, "body is {} bytes", body.len());
    let r = http
        .send(
            Method::POST,
            &v1(project, "/big/add"),
            Some(body),
            &[("x-request-id", "big-add-1"), ("traceparent", tp)],
        )
        .await;
    assert_eq!(r.ok_from(home)["added"], json!(N), "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some("big-add-1"));

    let r = http.get(&v1(project, "/big/count")).await;
    assert_eq!(r.ok_from(home)["count"], json!(N));
    let r = http
        .post(
            &v1(project, "/big/get"),
            &json!({"ids": ["big-0", "big-1999"], "include": ["embeddings", "documents"]}),
        )
        .await;
    let res = &r.ok_from(home)["results"];
    let got = strings(&res["ids"]);
    for (i, id) in got.iter().enumerate() {
        let n: usize = id["big-".len()..].parse().unwrap();
        assert_eq!(f32s(&res["embeddings"][i]), vectors[n]);
        assert_eq!(res["documents"][i], json!(format!("document {n}")));
    }
    assert_eq!(got.len(), 2);
    let r = http
        .post(
            &v1(project, "/big/query"),
            &json!({"query_embeddings": [vectors[1234]], "n_results": 3}),
        )
        .await;
    assert_eq!(r.ok_from(home)["results"]["ids"][0][0], "big-1234");

    // request ids: the client's comes back; without one, a fresh one per request
    let r = http
        .send(
            Method::GET,
            &v1(project, "/big/count"),
            None,
            &[("x-request-id", "client-id-7"), ("traceparent", tp)],
        )
        .await;
    r.ok_from(home);
    assert_eq!(r.header("x-request-id"), Some("client-id-7"));
    let a = http.get(&v1(project, "/big/count")).await;
    let b = http.get(&v1(project, "/big/count")).await;
    let (a, b) = (
        a.header("x-request-id")
            .expect("generated request id")
            .to_string(),
        b.header("x-request-id")
            .expect("generated request id")
            .to_string(),
    );
    assert!(!a.is_empty() && a != b, "{a} {b}");
    for path in ["/api/v1/projects", "/api/v2/pre-flight-checks"] {
        let r = http
            .send(Method::GET, path, None, &[("x-request-id", "fanout-id")])
            .await;
        r.ok();
        assert_eq!(r.header("x-request-id"), Some("fanout-id"), "{path}");
    }

    // what the shard receives, seen through a stand-in shard
    let (echo_url, echo_task) = echo_shard().await;
    let logs = tempfile::tempdir().unwrap();
    let echo_router = start_router(&["--shard".into(), echo_url], logs.path()).await;
    let echo = Http::new(echo_router.url(""));
    let r = echo
        .send(
            Method::POST,
            "/api/v1/some-project/collections/c/add?x=1",
            Some(vec![b' '; 3 << 20]),
            &[
                ("x-request-id", "echo-1"),
                ("traceparent", tp),
                ("tracestate", "vendor=abc"),
            ],
        )
        .await;
    let seen = r.ok_from(0);
    assert_eq!(seen["path"], "/api/v1/some-project/collections/c/add?x=1");
    assert_eq!(seen["body_len"], json!(3 << 20));
    assert_eq!(seen["headers"]["traceparent"], tp);
    assert_eq!(seen["headers"]["tracestate"], "vendor=abc");
    assert_eq!(seen["headers"]["x-request-id"], "echo-1");
    assert_eq!(r.header("x-request-id"), Some("echo-1"));

    // without trace context the router starts one, and the shard sees the request id the
    // client gets back
    let r = echo.get("/api/v2/tenants/some-project/databases").await;
    let seen = r.ok_from(0);
    let sent_tp = seen["headers"]["traceparent"]
        .as_str()
        .expect("traceparent");
    assert!(is_traceparent(sent_tp), "{sent_tp}");
    assert_ne!(sent_tp, tp);
    assert_eq!(
        seen["headers"]["x-request-id"].as_str(),
        r.header("x-request-id")
    );
    // an invalid traceparent is replaced (and its tracestate dropped)
    let r = echo
        .send(
            Method::GET,
            "/api/v1/some-project/collections",
            None,
            &[("traceparent", "garbage"), ("tracestate", "vendor=abc")],
        )
        .await;
    let seen = r.ok_from(0);
    assert!(is_traceparent(
        seen["headers"]["traceparent"].as_str().unwrap()
    ));
    assert_eq!(seen["headers"].get("tracestate"), None);
    drop(echo_router);
    echo_task.abort();
}

/// The calls the router fans out (reset, pre-flight checks) go to the shards without the
/// client's body, so the requests must not announce one: a `Content-Length` promising bytes
/// that never come leaves a shard (or any proxy in between) waiting for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanned_out_calls_are_well_framed() {
    let (echo_url, echo_task) = echo_shard().await;
    let logs = tempfile::tempdir().unwrap();
    let router = start_router(&["--shard".into(), echo_url], logs.path()).await;
    let http = Http::new(router.url(""));
    for (method, path) in [
        (Method::POST, "/api/v2/reset"),
        (Method::GET, "/api/v2/pre-flight-checks"),
    ] {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            http.send(method.clone(), path, Some(b"{}".to_vec()), &[]),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {path} with a body: no answer within 10 s"));
        let seen = r.ok_from(0);
        assert_eq!(seen["path"], path);
        // ROUTER BUG (router/src/proxy/mod.rs, Proxy::call_shard, used by
        // proxy/fanout.rs): the client's Content-Length (2) is forwarded with an empty body.
        let announced = seen["headers"]["content-length"]
            .as_str()
            .map(|v| v.parse::<u64>().expect("content-length"));
        assert!(
            seen["body_complete"] == json!(true)
                && announced.is_none_or(|n| json!(n) == seen["body_len"]),
            "{method} {path}: the shard got Content-Length {announced:?} but {} body bytes \
             (complete: {}): {seen}",
            seen["body_len"],
            seen["body_complete"]
        );
    }
    drop(router);
    echo_task.abort();
}

/// The router's own routes answer CORS preflights with the tenant servers' policy (one
/// helper): a listed origin may use every method the APIs use (the router used to allow
/// only GET and POST), an unlisted one gets no CORS headers. Project paths are proxied,
/// preflights included, and carry their shard's answer (the chart gives both the same
/// origins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_on_the_routers_own_routes_matches_the_tenant_server() {
    let cluster = Cluster::start_with(
        1,
        Source::Static,
        &["--cors-origins", "https://app.example"],
    )
    .await;
    for path in ["/api/v1/projects", "/api/v2/tenants", "/api/v2/heartbeat"] {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert_cors_preflight(&cluster.http, path, "https://app.example", method, true).await;
        }
        assert_cors_preflight(&cluster.http, path, "https://evil.example", "GET", false).await;
    }
    // an actual request from a listed origin carries the origin back once
    let r = cluster
        .http
        .send(
            Method::GET,
            "/api/v1/projects",
            None,
            &[("origin", "https://app.example")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let origins: Vec<_> = r
        .headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, ["https://app.example"]);
    assert!(
        !cluster.shards[0].has_project_dir("proj"),
        "a preflight opens no project"
    );
}
