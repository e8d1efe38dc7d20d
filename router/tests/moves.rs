//! End-to-end tests of how the router rides out the two states a shard puts a project in
//! while it moves: paused (writes refused for a few seconds, the router retries the same
//! shard) and moved (the copy is fenced, the router waits for the next placement table and
//! follows it). Real tenant-server shards and a real router on loopback; the pause, resume
//! and fence calls go to the shards' admin API directly, as the operator would make them.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use quiver_placement::{home_ordinal, Move, MovePhase, PlacementTable};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// How long a write must keep waiting while its project is paused or moved before the
/// test calls it "pending".
const PENDING: Duration = Duration::from_millis(500);
/// How long a pending write may take to finish once its project is writable again.
const SETTLE: Duration = Duration::from_secs(5);

const PAUSED: &str = "quiver_router_retries_total{reason=\"paused\"}";
const MOVED: &str = "quiver_router_retries_total{reason=\"moved\"}";

fn v1(project: &str, suffix: &str) -> String {
    format!("/api/v1/{project}/collections{suffix}")
}

fn v2(project: &str, suffix: &str) -> String {
    format!("/api/v2/tenants/{project}/databases/default_database{suffix}")
}

/// Records `ids`, each with a 4-d embedding and a document of `doc_len` characters.
fn records(ids: &[&str], doc_len: usize) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().enumerate()
            .map(|(i, _)| vec![i as f32, 1.0, 2.0, 3.0]).collect::<Vec<_>>(),
        "documents": ids.iter().map(|id| format!("{id} {}", "x".repeat(doc_len))).collect::<Vec<_>>(),
    })
}

/// A body for `add` well over 1 KiB (so over a 1024-byte replay buffer).
fn large_add(prefix: &str) -> Value {
    let ids: Vec<String> = (0..12).map(|i| format!("{prefix}{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = records(&ids, 200);
    assert!(body.to_string().len() > 2048, "not large enough");
    body
}

/// Creates collection `docs` of `project` through the router with records `r0`…`r{n-1}`;
/// asserts both land on `home`.
async fn seed(http: &Http, project: &str, n: usize, home: u32) {
    let r = http.post(&v1(project, ""), &json!({"name": "docs"})).await;
    r.ok_from(home);
    let ids: Vec<String> = (0..n).map(|j| format!("r{j}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = http
        .post(&v1(project, "/docs/add"), &records(&ids, 10))
        .await;
    r.ok_from(home);
}

/// The record count of `project`'s `docs` through the router.
async fn count(http: &Http, project: &str) -> u64 {
    let r = http.get(&v1(project, "/docs/count")).await;
    r.ok()["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("count: {}", r.text))
}

/// The ids in `docs` of `project` through the router.
async fn ids(http: &Http, project: &str) -> BTreeSet<String> {
    let r = http.post(&v1(project, "/docs/get"), &json!({})).await;
    strings(&r.ok()["results"]["ids"]).into_iter().collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// How a test request frames its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// With a `Content-Length`, as every Chroma client sends it.
    Length,
    /// `Transfer-Encoding: chunked`, as a client that streams its body sends it.
    Chunked,
}

/// One request through `http`, its body framed as `framing` (a request without a body is
/// sent the same way either way).
async fn send(
    http: &Http,
    framing: Framing,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    match (framing, body) {
        (Framing::Chunked, Some(b)) => {
            http.send_chunked(method, path, b.to_string().into_bytes())
                .await
        }
        (_, body) => {
            http.send(method, path, body.map(|b| b.to_string().into_bytes()), &[])
                .await
        }
    }
}

/// A request through `http`, in its own task, so that the test can watch it wait.
fn spawn_send(
    http: &Http,
    framing: Framing,
    method: Method,
    path: String,
    body: Option<Value>,
) -> JoinHandle<Resp> {
    let http = http.clone();
    tokio::spawn(async move { send(&http, framing, method, &path, body).await })
}

/// Asserts that none of `writes` has finished (each is still waiting at the router); a
/// finished one is reported with its answer.
async fn assert_pending(what: &str, writes: &mut [(&str, JoinHandle<Resp>)]) {
    for (name, handle) in writes.iter_mut() {
        if handle.is_finished() {
            let r = handle.await.expect("request task");
            panic!(
                "{what}: {name} finished instead of waiting: {} ({:?}) x-quiver-project-state={:?} {}",
                r.status,
                r.elapsed,
                r.header("x-quiver-project-state"),
                r.text
            );
        }
    }
}

/// Awaits every write (each within [`SETTLE`]) and returns the answers by name.
async fn settle(writes: Vec<(&str, JoinHandle<Resp>)>) -> Vec<(String, Resp)> {
    let mut out = Vec::new();
    for (name, handle) in writes {
        let r = tokio::time::timeout(SETTLE, handle)
            .await
            .unwrap_or_else(|_| panic!("{name} did not finish within {SETTLE:?}"))
            .expect("request task");
        out.push((name.to_string(), r));
    }
    out
}

async fn retries(http: &Http, series: &str) -> f64 {
    let text = http.get("/metrics").await.text;
    metric_value(&text, series).unwrap_or(0.0)
}

/// A direct write to the shard is refused with the given project state: proves that the
/// pause or fence the test set up is in force (and that the router is what hides it).
#[track_caller]
fn assert_refused(r: &Resp, state: &str, kind: &str) {
    r.err(503, kind);
    assert_eq!(
        r.header("x-quiver-project-state"),
        Some(state),
        "{:?}",
        r.headers
    );
}

fn file_table(shard_count: u32) -> PlacementTable {
    PlacementTable {
        epoch: 1,
        shard_count,
        shards: vec![],
        overrides: Default::default(),
        moving: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------

/// Writes of every kind sent while their project is paused wait at the router (no error
/// reaches the client) and all succeed once it resumes; reads are not held up at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_out_a_pause_instead_of_failing() {
    pause_scenario(Framing::Length).await;
}

/// The same with chunked request bodies (no `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_out_a_pause_instead_of_failing_chunked() {
    pause_scenario(Framing::Chunked).await;
}

async fn pause_scenario(framing: Framing) {
    let cluster = Cluster::start(2, Source::Static).await;
    let http = &cluster.http;
    let p = name_where("mv-pause", 2, |o| o == 1);
    let home = home_ordinal(&p, 2);
    let shard = &cluster.shards[home as usize];
    seed(http, &p, 3, home).await;
    let r = http.get(&v2(&p, "/collections/docs")).await;
    let id = r.ok_from(home)["id"]
        .as_str()
        .expect("collection id")
        .to_string();
    http.post(&v1(&p, ""), &json!({"name": "scratch"}))
        .await
        .ok_from(home);

    let paused = shard.admin_post(&p, "pause", None).await;
    assert_eq!(paused["paused"], json!(true), "{paused}");
    assert_refused(
        &shard
            .http()
            .post(&v1(&p, "/docs/add"), &records(&["direct"], 5))
            .await,
        "paused",
        "ProjectPaused",
    );

    let started = Instant::now();
    let mut writes = vec![
        (
            "v1 add",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, "/docs/add"),
                Some(records(&["a1", "a2"], 10)),
            ),
        ),
        (
            "v1 upsert",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, "/docs/upsert"),
                Some(json!({
                    "ids": ["r0", "u1"],
                    "embeddings": [[9.0, 9.0, 9.0, 9.0], [8.0, 8.0, 8.0, 8.0]],
                    "documents": ["r0 upserted while paused", "u1 upserted while paused"],
                })),
            ),
        ),
        (
            "v1 delete",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, "/docs/delete"),
                Some(json!({"ids": ["r1"]})),
            ),
        ),
        (
            "v1 create collection",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, ""),
                Some(json!({"name": "made-while-paused"})),
            ),
        ),
        (
            "v1 delete collection (no body)",
            spawn_send(http, framing, Method::DELETE, v1(&p, "/scratch"), None),
        ),
        (
            "v2 add",
            spawn_send(
                http,
                framing,
                Method::POST,
                v2(&p, &format!("/collections/{id}/add")),
                Some(records(&["v2a"], 10)),
            ),
        ),
    ];

    // reads go through at once, and see the data as it was before the pause
    let r = http.get(&v1(&p, "/docs/count")).await;
    assert_eq!(r.ok_from(home)["count"], json!(3));
    assert!(r.elapsed < Duration::from_millis(400), "{:?}", r.elapsed);
    let r = http
        .post(
            &v1(&p, "/docs/get"),
            &json!({"ids": ["r0"], "include": ["documents"]}),
        )
        .await;
    assert_eq!(r.ok_from(home)["results"]["ids"], json!(["r0"]));
    assert!(r.elapsed < Duration::from_millis(400), "{:?}", r.elapsed);
    let r = http.get(&v2(&p, &format!("/collections/{id}/count"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!(3));
    assert!(r.elapsed < Duration::from_millis(400), "{:?}", r.elapsed);

    let wait = PENDING.saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    assert_pending("while paused", &mut writes).await;
    assert!(retries(http, PAUSED).await > 0.0);

    let resumed = shard.admin_post(&p, "resume", None).await;
    assert_eq!(resumed["wasPaused"], json!(true), "{resumed}");
    let resumed_at = Instant::now();
    for (name, r) in settle(writes).await {
        // Chroma's v2 add answers 201
        let expected = if name == "v2 add" { 201 } else { 200 };
        assert_eq!(r.status, expected, "{name}: {}", r.text);
        assert_eq!(r.shard(), Some(home), "{name}");
        assert!(
            r.elapsed >= PENDING,
            "{name} answered after {:?}",
            r.elapsed
        );
    }
    eprintln!("writes done {:?} after resume", resumed_at.elapsed());

    // everything written while paused is there, once
    assert_eq!(
        ids(http, &p).await,
        set(&["r0", "r2", "a1", "a2", "u1", "v2a"])
    );
    assert_eq!(count(http, &p).await, 6);
    let r = http
        .post(
            &v1(&p, "/docs/get"),
            &json!({"ids": ["r0"], "include": ["documents"]}),
        )
        .await;
    assert_eq!(
        r.ok()["results"]["documents"],
        json!(["r0 upserted while paused"])
    );
    let r = http.get(&v1(&p, "")).await;
    let names: BTreeSet<String> = r.ok()["collections"]
        .as_array()
        .unwrap_or_else(|| panic!("collections: {}", r.text))
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, set(&["docs", "made-while-paused"]), "{}", r.text);
    assert!(cluster.shards_holding(&p) == vec![home]);
    assert!(retries(http, PAUSED).await > 0.0);
}

/// A pause that outlasts `--retry-budget-ms` reaches the client as the shard's 503, with
/// its project-state header, once the budget is spent; the write was not applied, and
/// works after the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_the_retry_budget_passes_the_503_on() {
    budget_scenario(Framing::Length).await;
}

/// The same with chunked request bodies (no `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_the_retry_budget_passes_the_503_on_chunked() {
    budget_scenario(Framing::Chunked).await;
}

async fn budget_scenario(framing: Framing) {
    const BUDGET: Duration = Duration::from_millis(800);
    // the router does not sleep past its deadline: the last attempt may come up to one
    // (maximal, 500 ms) backoff before it
    const MAX_BACKOFF: Duration = Duration::from_millis(500);
    let cluster = Cluster::start_with(2, Source::Static, &["--retry-budget-ms", "800"]).await;
    let http = &cluster.http;
    let p = name_where("mv-budget", 2, |o| o == 0);
    let home = home_ordinal(&p, 2);
    let shard = &cluster.shards[home as usize];
    seed(http, &p, 2, home).await;

    shard.admin_post(&p, "pause", None).await;
    let r = send(
        http,
        framing,
        Method::POST,
        &v1(&p, "/docs/add"),
        Some(records(&["late"], 10)),
    )
    .await;
    assert_refused(&r, "paused", "ProjectPaused");
    assert_eq!(r.shard(), Some(home));
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    eprintln!("503 passed on after {:?}", r.elapsed);
    assert!(
        r.elapsed >= BUDGET - MAX_BACKOFF,
        "the 503 came after {:?}: not retried for the budget ({BUDGET:?})",
        r.elapsed
    );
    assert!(
        r.elapsed <= BUDGET + Duration::from_millis(1500),
        "the 503 came after {:?}, well past the budget ({BUDGET:?})",
        r.elapsed
    );
    assert!(retries(http, PAUSED).await > 0.0);
    assert_eq!(count(http, &p).await, 2, "a refused write was applied");

    shard.admin_post(&p, "resume", None).await;
    let r = http
        .post(&v1(&p, "/docs/add"), &records(&["late"], 10))
        .await;
    r.ok_from(home);
    assert!(r.elapsed < BUDGET, "{:?}", r.elapsed);
    assert_eq!(ids(http, &p).await, set(&["r0", "r1", "late"]));
}

/// The retry budget is the time a request may wait: the router keeps retrying until it
/// is spent, so a pause that ends shortly before the budget does is ridden out. (Chunked
/// bodies, which the router can replay today.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_retry_budget_is_used() {
    const BUDGET: Duration = Duration::from_millis(1500);
    let cluster = Cluster::start_with(2, Source::Static, &["--retry-budget-ms", "1500"]).await;
    let http = &cluster.http;
    let p = name_where("mv-budget-end", 2, |o| o == 1);
    let home = home_ordinal(&p, 2);
    let shard = &cluster.shards[home as usize];
    seed(http, &p, 1, home).await;

    // 1. paused throughout: the 503 comes once the whole budget is spent
    shard.admin_post(&p, "pause", None).await;
    for attempt in 0..3 {
        let r = send(
            http,
            Framing::Chunked,
            Method::POST,
            &v1(&p, "/docs/add"),
            Some(records(&["late"], 10)),
        )
        .await;
        assert_refused(&r, "paused", "ProjectPaused");
        assert!(
            r.elapsed >= BUDGET,
            "attempt {attempt}: the 503 came after {:?}, before the budget of {BUDGET:?} \
             was spent",
            r.elapsed
        );
    }

    // 2. a pause that ends 150 ms before the budget is ridden out
    let write = spawn_send(
        http,
        Framing::Chunked,
        Method::POST,
        v1(&p, "/docs/add"),
        Some(records(&["in-time"], 10)),
    );
    tokio::time::sleep(BUDGET - Duration::from_millis(150)).await;
    shard.admin_post(&p, "resume", None).await;
    let r = settle(vec![("add", write)]).await.remove(0).1;
    r.ok_from(home);
    assert_eq!(ids(http, &p).await, set(&["r0", "in-time"]));
}

/// A body larger than `--retry-buffer-bytes` is streamed without a copy, so it cannot be
/// sent again: the shard's 503 reaches the client at once. Smaller ones still wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_replay_buffer_is_not_retried() {
    buffer_scenario(Framing::Length).await;
}

/// The same with chunked request bodies (no `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_replay_buffer_is_not_retried_chunked() {
    buffer_scenario(Framing::Chunked).await;
}

async fn buffer_scenario(framing: Framing) {
    let cluster = Cluster::start_with(2, Source::Static, &["--retry-buffer-bytes", "1024"]).await;
    let http = &cluster.http;
    let p = name_where("mv-buffer", 2, |o| o == 0);
    let home = home_ordinal(&p, 2);
    let shard = &cluster.shards[home as usize];
    seed(http, &p, 2, home).await;
    let table = PlacementTable::from_json(&http.get("/placement").await.text).expect("table");
    assert!(!table.is_moving(&p));

    shard.admin_post(&p, "pause", None).await;
    let r = send(
        http,
        framing,
        Method::POST,
        &v1(&p, "/docs/add"),
        Some(large_add("big")),
    )
    .await;
    assert_refused(&r, "paused", "ProjectPaused");
    assert_eq!(r.shard(), Some(home));
    assert!(
        r.elapsed < Duration::from_millis(400),
        "a body over the replay buffer waited {:?}",
        r.elapsed
    );
    assert_eq!(
        retries(http, PAUSED).await,
        0.0,
        "a body over the replay buffer was retried"
    );
    assert_eq!(count(http, &p).await, 2, "a refused write was applied");

    // a small write of the same project waits and goes through
    let mut writes = vec![(
        "small add",
        spawn_send(
            http,
            framing,
            Method::POST,
            v1(&p, "/docs/add"),
            Some(records(&["small"], 10)),
        ),
    )];
    tokio::time::sleep(PENDING).await;
    assert_pending("while paused", &mut writes).await;
    shard.admin_post(&p, "resume", None).await;
    for (name, r) in settle(writes).await {
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    assert!(retries(http, PAUSED).await > 0.0);
    assert_eq!(ids(http, &p).await, set(&["r0", "r1", "small"]));
    // and the large one, sent again by the client, now works
    http.post(&v1(&p, "/docs/add"), &large_add("big"))
        .await
        .ok_from(home);
    assert_eq!(count(http, &p).await, 3 + 12);
}

/// A fenced project: the router gets "moved", waits for the next placement table, and
/// sends the pending requests to the new home; the fenced copy is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_project_follows_the_new_placement() {
    moved_scenario(Framing::Length).await;
}

/// The same with chunked request bodies (no `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_project_follows_the_new_placement_chunked() {
    moved_scenario(Framing::Chunked).await;
}

async fn moved_scenario(framing: Framing) {
    let cluster = Cluster::start(
        3,
        Source::File {
            table: file_table(2),
            poll_ms: 100,
        },
    )
    .await;
    let http = &cluster.http;
    let t1 = cluster.wait_for_epoch(1, Duration::from_secs(3)).await;
    let p = name_where("mv-moved", 2, |o| o == 0);
    let (a, b) = (0u32, 2u32);
    let (shard_a, shard_b) = (&cluster.shards[a as usize], &cluster.shards[b as usize]);
    seed(http, &p, 4, a).await;
    assert_eq!(cluster.shards_holding(&p), vec![a]);

    let fenced = shard_a
        .admin_post(&p, "fence", Some(&json!({"movedTo": shard_b.base_url()})))
        .await;
    assert_eq!(fenced["fenced"], json!(true), "{fenced}");
    let direct = shard_a.http().get(&v1(&p, "/docs/count")).await;
    assert_refused(&direct, "moved", "ProjectMoved");

    let started = Instant::now();
    let mut writes = vec![
        (
            "v1 create collection",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, ""),
                Some(json!({"name": "after-move"})),
            ),
        ),
        (
            "v1 create another collection",
            spawn_send(
                http,
                framing,
                Method::POST,
                v1(&p, ""),
                Some(json!({"name": "after-move-2"})),
            ),
        ),
        (
            "v1 list collections (no body)",
            spawn_send(http, framing, Method::GET, v1(&p, ""), None),
        ),
    ];
    tokio::time::sleep(PENDING).await;
    assert_pending("while fenced with the old table", &mut writes).await;
    assert!(retries(http, MOVED).await > 0.0);

    let mut t2 = t1.clone();
    t2.epoch = 2;
    t2.overrides.insert(p.clone(), b);
    cluster.write_placement(&t2);
    let rewritten = started.elapsed();
    for (name, r) in settle(writes).await {
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.shard(), Some(b), "{name} answered by {:?}", r.shard());
        assert!(
            r.elapsed >= rewritten - Duration::from_millis(50),
            "{name} answered after {:?}, before the new table ({rewritten:?})",
            r.elapsed
        );
    }
    cluster.wait_for_epoch(2, Duration::from_secs(3)).await;

    // the project now lives on B; the fenced copy on A is as it was
    let r = http
        .post(&v1(&p, "/after-move/add"), &records(&["m1", "m2"], 10))
        .await;
    r.ok_from(b);
    let r = http.get(&v1(&p, "/after-move/count")).await;
    assert_eq!(r.ok_from(b)["count"], json!(2));
    let mut holders = cluster.shards_holding(&p);
    holders.sort();
    assert_eq!(holders, vec![a, b]);
    let info_b = shard_b.admin_info(&p).await;
    assert_eq!(info_b["state"], "active", "{info_b}");
    assert_eq!(info_b["collections"], json!(2), "{info_b}");
    let info_a = shard_a.admin_info(&p).await;
    assert_eq!(info_a["state"], "fenced", "{info_a}");
    assert_eq!(info_a["movedTo"], json!(shard_b.base_url()), "{info_a}");
    assert_eq!(info_a["collections"], json!(1), "{info_a}");
    assert_eq!(info_a["records"], json!(4), "{info_a}");
    assert!(retries(http, MOVED).await > 0.0);
}

/// The table marks a project as moving: its requests get `--moving-retry-buffer-bytes`
/// (64 MiB) instead of `--retry-buffer-bytes`, so a large write waits out the pause.
/// A project that is not moving keeps the small buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_projects_get_the_larger_replay_buffer() {
    moving_scenario(Framing::Length).await;
}

/// The same with chunked request bodies (no `Content-Length`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_projects_get_the_larger_replay_buffer_chunked() {
    moving_scenario(Framing::Chunked).await;
}

async fn moving_scenario(framing: Framing) {
    let p = name_where("mv-moving", 2, |o| o == 1);
    let q = name_where("mv-still", 2, |o| o == 1);
    let home = 1u32;
    let mut table = file_table(2);
    table.moving.insert(
        p.clone(),
        Move {
            from: home,
            to: 0,
            phase: MovePhase::CatchingUp,
        },
    );
    let cluster = Cluster::start_with(
        2,
        Source::File {
            table,
            poll_ms: 200,
        },
        &["--retry-buffer-bytes", "1024"],
    )
    .await;
    let http = &cluster.http;
    let t = cluster.wait_for_epoch(1, Duration::from_secs(3)).await;
    assert!(t.is_moving(&p) && !t.is_moving(&q));
    let shard = &cluster.shards[home as usize];
    seed(http, &p, 2, home).await;
    seed(http, &q, 2, home).await;

    shard.admin_post(&p, "pause", None).await;
    shard.admin_post(&q, "pause", None).await;
    // not moving: the small buffer, the 503 at once
    let r = send(
        http,
        framing,
        Method::POST,
        &v1(&q, "/docs/add"),
        Some(large_add("big")),
    )
    .await;
    assert_refused(&r, "paused", "ProjectPaused");
    assert!(r.elapsed < Duration::from_millis(400), "{:?}", r.elapsed);

    // moving: replayed until the pause ends
    let mut writes = vec![(
        "large add",
        spawn_send(
            http,
            framing,
            Method::POST,
            v1(&p, "/docs/add"),
            Some(large_add("big")),
        ),
    )];
    tokio::time::sleep(PENDING).await;
    assert_pending("while paused", &mut writes).await;
    assert!(retries(http, PAUSED).await > 0.0);
    shard.admin_post(&p, "resume", None).await;
    shard.admin_post(&q, "resume", None).await;
    for (name, r) in settle(writes).await {
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.shard(), Some(home));
    }
    assert_eq!(count(http, &p).await, 2 + 12);
    assert_eq!(count(http, &q).await, 2);
}
