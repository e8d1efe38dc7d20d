//! End-to-end tests of moving projects between shards, driven by the operator's move
//! library (`quiver_operator::moves`) against real processes: three `quiver-tenant-server`
//! shards and a `quiver-router` that follows a placement file, which the library updates
//! through [`FileStore`]. Clients write and read through the router the whole time; at
//! the end every acknowledged write must be readable exactly once, and every project must
//! live on exactly one shard, the one the table routes it to.
//!
//! Build the binaries first:
//! `cargo build --release -p quiver-tenant-server -p quiver-router`, then
//! `cargo test --release -p quiver-operator --test moves_e2e -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use quiver_operator::admin::AdminClient;
use quiver_operator::moves::{
    move_project, rebalance, recover, trim_shards, MoveConfig, MoveContext, MoveError, MoveReport,
    RebalanceReport,
};
use quiver_operator::placement_store::{load_or_init, update, FileStore, PlacementStore};
use quiver_placement::{home_ordinal, PlacementTable};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const PROJECTS: usize = 50;
const DIM: usize = 8;
const COLLECTION: &str = "docs";
const WRITERS: usize = 4;
const READERS: usize = 2;
/// Records each project starts with (acknowledged before the traffic starts).
const SEED_RECORDS: usize = 3;

fn coll_path(project: &str, suffix: &str) -> String {
    format!("/api/v1/{project}/collections/{COLLECTION}{suffix}")
}

fn embedding(rng: &mut StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn document(id: &str) -> String {
    format!("document of {id}")
}

/// An `add` body for `ids` of `project`.
fn add_body(rng: &mut StdRng, project: &str, ids: &[String]) -> Value {
    json!({
        "ids": ids,
        "embeddings": ids.iter().map(|_| embedding(rng)).collect::<Vec<_>>(),
        "documents": ids.iter().map(|id| document(id)).collect::<Vec<_>>(),
        "metadatas": ids.iter().map(|id| json!({"project": project, "id": id})).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// the cluster

/// Three shards, a router on a placement file, and the operator's move context on the
/// same file. Fields drop in order: router, shards, then the directory (logs, table).
struct Cluster {
    _router: RouterProc,
    shards: Vec<Shard>,
    http: Http,
    store: FileStore,
    ctx: MoveContext,
    projects: Vec<String>,
    _dir: tempfile::TempDir,
}

fn move_config() -> MoveConfig {
    MoveConfig {
        pause_hold: Duration::from_secs(15),
        catch_up_rounds: 5,
        catch_up_small: 16,
        batch_size: 4,
        grace: Duration::ZERO,
    }
}

impl Cluster {
    /// Shards 0–2 (2 idle), a table of 2 shards listing only 0 and 1, the router, and
    /// `PROJECTS` projects with one collection each, seeded with a few records.
    async fn start(prefix: &str) -> (Cluster, Acked) {
        let dir = tempfile::Builder::new()
            .prefix("quiver-op-moves-")
            .tempdir()
            .expect("tempdir");
        let mut shards = Vec::new();
        for ordinal in 0..3 {
            shards.push(start_shard(ordinal, dir.path()).await);
        }
        let path: PathBuf = dir.path().join("placement.json");
        let store = FileStore::new(&path);
        let initial = PlacementTable {
            epoch: 1,
            shard_count: 2,
            shards: vec![shards[0].base_url(), shards[1].base_url()],
            overrides: BTreeMap::new(),
            moving: BTreeMap::new(),
        };
        load_or_init(&store, &initial)
            .await
            .expect("publish the first table");
        let router = start_router(
            &[
                "--placement-file".to_string(),
                path.display().to_string(),
                "--placement-poll-ms".into(),
                "50".into(),
                "--retry-budget-ms".into(),
                "10000".into(),
            ],
            dir.path(),
        )
        .await;
        let http = http(router.url(""));
        let ctx = MoveContext::new(http_client(), None, move_config(), None);
        let projects: Vec<String> = (0..PROJECTS).map(|i| format!("{prefix}-{i:02}")).collect();
        let acked = Acked::default();
        let mut rng = StdRng::seed_from_u64(7);
        for p in &projects {
            let r = http
                .post(
                    &format!("/api/v1/{p}/collections"),
                    &json!({"name": COLLECTION, "configuration": {"hnsw": {"space": "l2"}}}),
                )
                .await;
            r.ok();
            let ids: Vec<String> = (0..SEED_RECORDS).map(|i| format!("seed-{i}")).collect();
            http.post(&coll_path(p, "/add"), &add_body(&mut rng, p, &ids))
                .await
                .ok();
            acked.record(p, &ids);
        }
        // the projects landed on their hash homes among 2 shards
        for (p, (at, state)) in &cluster_locations(&shards[..2]).await {
            assert_eq!(state, "active", "{p}");
            assert_eq!(*at, home_ordinal(p, 2), "{p} was created off its home");
        }
        (
            Cluster {
                _router: router,
                shards,
                http,
                store,
                ctx,
                projects,
                _dir: dir,
            },
            acked,
        )
    }

    async fn table(&self) -> PlacementTable {
        self.store.load().await.expect("placement table").table
    }

    /// Lists shard 2's URL in the table, as the shard controller does when it scales up.
    async fn add_third_shard(&self) {
        let url = self.shards[2].base_url();
        update(&self.store, |t: &mut PlacementTable| {
            if t.shards.len() > 2 {
                return Ok::<bool, quiver_operator::placement_store::PlacementStoreError>(false);
            }
            t.shards.push(url.clone());
            Ok(true)
        })
        .await
        .expect("add shard 2 to the table");
    }

    /// The projects whose home changes between 2 and 3 shards (all onto ordinal 2).
    fn changing(&self) -> BTreeSet<String> {
        let set: BTreeSet<String> = self
            .projects
            .iter()
            .filter(|p| home_ordinal(p, 3) != home_ordinal(p, 2))
            .cloned()
            .collect();
        assert!(
            !set.is_empty() && set.len() < self.projects.len(),
            "the project names must spread over 3 shards"
        );
        for p in &set {
            assert_eq!(
                home_ordinal(p, 3),
                2,
                "jump hash moves only onto the new ordinal"
            );
        }
        set
    }

    /// Waits until the router has the table now in the file.
    async fn wait_router_table(&self) {
        let epoch = self.table().await.epoch;
        let waiting_for = format!("router loading epoch {epoch}");
        self.http
            .poll_get(
                "/placement",
                Duration::from_secs(10),
                Duration::from_millis(20),
                &waiting_for,
                |r| (r.status == 200 && r.body["epoch"].as_u64() == Some(epoch)).then_some(()),
            )
            .await;
    }

    /// The exactly-once invariant and the one-copy invariant, against the final table:
    /// every project lives on exactly one shard, active, where the table routes it; no
    /// other copy (fenced, incoming) is left anywhere; through the router, each project's
    /// records are exactly its acknowledged ids (plus, at most, ids of writes whose answer
    /// was an error, which may have been applied), each once, with its document.
    async fn check_invariants(&self, acked: &Acked, expected_count: u32) {
        let table = self.table().await;
        assert!(table.moving.is_empty(), "moves left: {:?}", table.moving);
        assert!(
            table.overrides.is_empty(),
            "overrides left: {:?}",
            table.overrides
        );
        assert_eq!(table.shard_count, expected_count);
        self.wait_router_table().await;

        let mut seen: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
        for s in &self.shards {
            for (name, state) in s.admin_projects().await {
                seen.entry(name).or_default().push((s.ordinal, state));
            }
        }
        let names: BTreeSet<&String> = seen.keys().collect();
        let expected: BTreeSet<&String> = self.projects.iter().collect();
        assert_eq!(names, expected, "projects held by the shards");
        for p in &self.projects {
            let home = table.route(p).ordinal;
            assert_eq!(home, home_ordinal(p, expected_count), "{p}");
            assert_eq!(
                seen[p],
                vec![(home, "active".to_string())],
                "{p}: exactly one copy, active, on its home shard {home}"
            );
        }

        let acked_ids = acked.ids.lock().unwrap().clone();
        let maybe = acked.maybe.lock().unwrap().clone();
        let mut total = 0usize;
        for p in &self.projects {
            let r = self
                .http
                .post(
                    &coll_path(p, "/get"),
                    &json!({"include": ["documents", "metadatas"]}),
                )
                .await;
            let body = r.ok();
            assert_eq!(
                r.header("x-quiver-shard"),
                Some(table.route(p).ordinal.to_string().as_str()),
                "{p} answered by its home shard"
            );
            let ids: Vec<String> = body["results"]["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_str().expect("id").to_string())
                .collect();
            let docs = body["results"]["documents"].as_array().expect("documents");
            let mds = body["results"]["metadatas"].as_array().expect("metadatas");
            let unique: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{p}: duplicated ids");
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(docs[i], json!(document(id)), "{p}/{id}: document");
                assert_eq!(mds[i]["project"], json!(p), "{p}/{id}: metadata");
                assert_eq!(mds[i]["id"], json!(id), "{p}/{id}: metadata");
            }
            let want = acked_ids.get(p).cloned().unwrap_or_default();
            let missing: Vec<&String> = want.iter().filter(|id| !unique.contains(id)).collect();
            assert!(
                missing.is_empty(),
                "{p}: {} acknowledged ids lost: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
            let empty = BTreeSet::new();
            let maybe_p = maybe.get(p).unwrap_or(&empty);
            let extra: Vec<&&String> = unique
                .iter()
                .filter(|id| !want.contains(**id) && !maybe_p.contains(**id))
                .collect();
            assert!(extra.is_empty(), "{p}: ids never written: {extra:?}");
            if maybe_p.is_empty() {
                assert_eq!(ids.len(), want.len(), "{p}: exactly the acknowledged ids");
            }
            let count = self.http.get(&coll_path(p, "/count")).await;
            assert_eq!(
                count.ok()["count"].as_u64(),
                Some(ids.len() as u64),
                "{p}: count"
            );
            total += ids.len();
        }
        println!(
            "verified {} projects, {total} records ({} acknowledged, {} of failed writes)",
            self.projects.len(),
            acked_ids.values().map(BTreeSet::len).sum::<usize>(),
            total - acked_ids.values().map(BTreeSet::len).sum::<usize>()
        );
    }
}

/// Every project the given shards hold, with its shard and state (each once: panics on a
/// project held twice).
async fn cluster_locations(shards: &[Shard]) -> BTreeMap<String, (u32, String)> {
    let mut out = BTreeMap::new();
    for s in shards {
        for (name, state) in s.admin_projects().await {
            if let Some(prev) = out.insert(name.clone(), (s.ordinal, state)) {
                panic!("{name} on shards {} and {}", prev.0, s.ordinal);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// traffic

/// The ids each project acknowledged, and those of writes that failed (which may or may
/// not have been applied).
#[derive(Clone, Default)]
struct Acked {
    ids: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    maybe: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl Acked {
    fn record(&self, project: &str, ids: &[String]) {
        let mut m = self.ids.lock().unwrap();
        let set = m.entry(project.to_string()).or_default();
        for id in ids {
            assert!(set.insert(id.clone()), "id {id} acknowledged twice");
        }
    }

    fn record_maybe(&self, project: &str, ids: &[String]) {
        let mut m = self.maybe.lock().unwrap();
        m.entry(project.to_string())
            .or_default()
            .extend(ids.iter().cloned());
    }
}

/// One request through the router that did not succeed (fields read in its Debug form).
#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Failure {
    write: bool,
    project: String,
    status: u16,
    text: String,
    started: Instant,
    ended: Instant,
    /// The ordinal the placement file routed the project to right after the failure.
    route_after: Option<u32>,
}

#[derive(Default)]
struct Figures {
    writes_ok: AtomicU64,
    reads_ok: AtomicU64,
    max_write_latency_us: AtomicU64,
    /// Latency of every acknowledged write.
    write_latencies: Mutex<Vec<Duration>>,
    failures: Mutex<Vec<Failure>>,
}

struct Traffic {
    stop: Arc<AtomicBool>,
    figures: Arc<Figures>,
    tasks: Vec<JoinHandle<()>>,
}

impl Figures {
    /// "p50 …, p99 …, max …" of the acknowledged writes' latencies.
    fn write_latency_summary(&self) -> String {
        let mut l = self.write_latencies.lock().unwrap().clone();
        l.sort();
        let at = |q: f64| l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)));
        format!(
            "p50 {:?}, p99 {:?}, max {:?}",
            at(0.5).copied().unwrap_or_default(),
            at(0.99).copied().unwrap_or_default(),
            Duration::from_micros(self.max_write_latency_us.load(Ordering::Relaxed)),
        )
    }
}

impl Traffic {
    fn start(c: &Cluster, acked: &Acked) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let figures = Arc::new(Figures::default());
        let projects = Arc::new(c.projects.clone());
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (stop, figures, projects) = (stop.clone(), figures.clone(), projects.clone());
            let (http, store, acked) = (c.http.clone(), c.store.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(1000 + w as u64);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = &projects[rng.random_range(0..projects.len())];
                    let n = rng.random_range(1..=5);
                    let ids: Vec<String> = (0..n)
                        .map(|_| {
                            seq += 1;
                            format!("w{w}-{seq}")
                        })
                        .collect();
                    let body = add_body(&mut rng, p, &ids);
                    let started = Instant::now();
                    let r = http.post(&coll_path(p, "/add"), &body).await;
                    let ended = Instant::now();
                    if r.is_ok() {
                        acked.record(p, &ids);
                        figures.writes_ok.fetch_add(1, Ordering::Relaxed);
                        figures
                            .write_latencies
                            .lock()
                            .unwrap()
                            .push(ended - started);
                        figures
                            .max_write_latency_us
                            .fetch_max((ended - started).as_micros() as u64, Ordering::Relaxed);
                    } else {
                        acked.record_maybe(p, &ids);
                        let route_after = store.load().await.ok().map(|v| v.table.route(p).ordinal);
                        figures.failures.lock().unwrap().push(Failure {
                            write: true,
                            project: p.clone(),
                            status: r.status,
                            text: r.text.chars().take(300).collect(),
                            started,
                            ended,
                            route_after,
                        });
                        // a shard down answers at once: do not spin on it
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        for rd in 0..READERS {
            let (stop, figures, projects) = (stop.clone(), figures.clone(), projects.clone());
            let (http, store) = (c.http.clone(), c.store.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(2000 + rd as u64);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let p = &projects[rng.random_range(0..projects.len())];
                    let started = Instant::now();
                    let r = if i.is_multiple_of(2) {
                        http.post(
                            &coll_path(p, "/query"),
                            &json!({"query_embeddings": [embedding(&mut rng)], "n_results": 3}),
                        )
                        .await
                    } else {
                        http.post(&coll_path(p, "/get"), &json!({"limit": 5})).await
                    };
                    let ended = Instant::now();
                    if r.is_ok() {
                        figures.reads_ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let route_after = store.load().await.ok().map(|v| v.table.route(p).ordinal);
                        figures.failures.lock().unwrap().push(Failure {
                            write: false,
                            project: p.clone(),
                            status: r.status,
                            text: r.text.chars().take(300).collect(),
                            started,
                            ended,
                            route_after,
                        });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        Traffic {
            stop,
            figures,
            tasks,
        }
    }

    async fn stop(self) -> Arc<Figures> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("traffic task");
        }
        self.figures
    }
}

// ---------------------------------------------------------------------------------------
// reports

fn moved_set(r: &RebalanceReport) -> BTreeSet<String> {
    r.moved.iter().map(|m| m.project.clone()).collect()
}

fn longest_pause(moves: &[&MoveReport]) -> Duration {
    moves
        .iter()
        .map(|m| m.write_pause)
        .max()
        .unwrap_or_default()
}

fn print_report(what: &str, r: &RebalanceReport, took: Duration) {
    let moves: Vec<&MoveReport> = r.moved.iter().collect();
    let mean_pause = if moves.is_empty() {
        Duration::ZERO
    } else {
        moves.iter().map(|m| m.write_pause).sum::<Duration>() / moves.len() as u32
    };
    println!(
        "{what}: {} moved, {} failed, took {took:?}; write pause longest {:?}, mean {:?}; \
         longest move {:?}; batches shipped {}",
        r.moved.len(),
        r.failed.len(),
        longest_pause(&moves),
        mean_pause,
        moves.iter().map(|m| m.duration).max().unwrap_or_default(),
        moves.iter().map(|m| m.batches_shipped).sum::<u64>(),
    );
    for (p, why) in &r.failed {
        println!("  failed {p}: {why}");
    }
}

fn assert_moves_sane(r: &RebalanceReport) {
    for m in &r.moved {
        assert!(
            m.write_pause < Duration::from_secs(10),
            "{}: write pause {:?}",
            m.project,
            m.write_pause
        );
        assert!(m.write_pause <= m.duration, "{m:?}");
    }
}

// ---------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_and_back_with_live_traffic() {
    let (c, acked) = Cluster::start("scale").await;
    let changing = c.changing();
    let traffic = Traffic::start(&c, &acked);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // scale out: the shard controller lists shard 2, then the projects move
    c.add_third_shard().await;
    let t = Instant::now();
    let up = rebalance(&c.ctx, &c.store, 3, true)
        .await
        .expect("rebalance to 3");
    print_report("scale out 2 → 3", &up, t.elapsed());
    assert!(up.failed.is_empty(), "failed moves: {:?}", up.failed);
    assert!(up.duplicated.is_empty(), "{:?}", up.duplicated);
    assert!(up.in_grace.is_empty(), "{:?}", up.in_grace);
    assert!(!up.moved.is_empty());
    assert_eq!(
        moved_set(&up),
        changing,
        "exactly the projects whose home changes"
    );
    for m in &up.moved {
        assert_eq!((m.from, m.to), (home_ordinal(&m.project, 2), 2), "{m:?}");
    }
    assert_moves_sane(&up);
    {
        let t = c.table().await;
        assert_eq!((t.shard_count, t.shards.len()), (3, 3));
        assert!(t.moving.is_empty() && t.overrides.is_empty(), "{t:?}");
        // the old copies are gone at once (grace zero)
        let at = cluster_locations(&c.shards).await;
        for p in &c.projects {
            assert_eq!(at[p], (home_ordinal(p, 3), "active".to_string()), "{p}");
        }
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;

    // scale back: every project on shard 2 goes home, then shard 2 leaves the table
    let t = Instant::now();
    let down = rebalance(&c.ctx, &c.store, 2, true)
        .await
        .expect("rebalance to 2");
    print_report("scale in 3 → 2", &down, t.elapsed());
    assert!(down.failed.is_empty(), "failed moves: {:?}", down.failed);
    assert!(down.duplicated.is_empty(), "{:?}", down.duplicated);
    assert!(!down.moved.is_empty());
    assert_eq!(
        moved_set(&down),
        changing,
        "exactly the projects whose home changes"
    );
    for m in &down.moved {
        assert_eq!((m.from, m.to), (2, home_ordinal(&m.project, 2)), "{m:?}");
    }
    assert_moves_sane(&down);
    assert!(
        trim_shards(&c.ctx, &c.store, 2).await.expect("trim"),
        "shard 2 must be drained and dropped from the table"
    );
    assert_eq!(c.table().await.shards.len(), 2);
    assert!(
        c.shards[2].admin_projects().await.is_empty(),
        "shard 2 holds nothing after the shrink"
    );

    // a little traffic on the shrunk table, then stop
    c.wait_router_table().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let figures = traffic.stop().await;
    let failures = figures.failures.lock().unwrap().clone();
    let (write_errors, read_errors): (Vec<&Failure>, Vec<&Failure>) =
        failures.iter().partition(|f| f.write);
    let all_moves: Vec<&MoveReport> = up.moved.iter().chain(&down.moved).collect();
    println!(
        "traffic: {} writes acknowledged, {} reads; write latency {}; longest write \
         pause (move reports) {:?}; write errors {}, read errors {}",
        figures.writes_ok.load(Ordering::Relaxed),
        figures.reads_ok.load(Ordering::Relaxed),
        figures.write_latency_summary(),
        longest_pause(&all_moves),
        write_errors.len(),
        read_errors.len(),
    );
    for f in failures.iter().take(10) {
        println!("  {f:?}");
    }
    assert!(figures.writes_ok.load(Ordering::Relaxed) > 0);
    assert!(figures.reads_ok.load(Ordering::Relaxed) > 0);
    assert_eq!(write_errors.len(), 0, "router-visible write errors");
    assert_eq!(read_errors.len(), 0, "router-visible read errors");

    c.check_invariants(&acked, 2).await;
    assert!(c.shards[2].admin_projects().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_killed_mid_move_rolls_back_and_retries() {
    kill_destination_scenario("killed", KillWhen::FirstMoveRecorded).await;
}

/// The same, with shard 2 killed only once a first project has switched to it: that
/// project is unavailable until shard 2 is back, and none of its acknowledged writes
/// (taken by shard 2 before the SIGKILL) may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_killed_after_a_switch_loses_nothing() {
    kill_destination_scenario("switched", KillWhen::FirstSwitch).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillWhen {
    /// As soon as the table records a move to shard 2 (in practice while copying).
    FirstMoveRecorded,
    /// As soon as the table routes a project to shard 2 (its move switched).
    FirstSwitch,
}

async fn kill_destination_scenario(prefix: &str, when: KillWhen) {
    let (mut c, acked) = Cluster::start(prefix).await;
    let changing = c.changing();
    let traffic = Traffic::start(&c, &acked);
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.add_third_shard().await;

    // rebalance, and SIGKILL shard 2 as soon as the table records a move to it
    let done = AtomicBool::new(false);
    let mut killed_at: Option<Instant> = None;
    let mut routed_to_2: BTreeSet<String> = BTreeSet::new();
    let store = c.store.clone();
    let projects = c.projects.clone();
    let (ctx, shard2) = (&c.ctx, &mut c.shards[2]);
    let t = Instant::now();
    let (first, ()) = tokio::join!(
        async {
            let r = rebalance(ctx, &store, 3, true).await;
            done.store(true, Ordering::SeqCst);
            r
        },
        async {
            while !done.load(Ordering::SeqCst) {
                if let Ok(v) = store.load().await {
                    let t = &v.table;
                    let trigger = match when {
                        KillWhen::FirstMoveRecorded => {
                            t.moving.iter().find(|(_, m)| m.to == 2).map(|(p, _)| p)
                        }
                        KillWhen::FirstSwitch => projects.iter().find(|p| t.route(p).ordinal == 2),
                    };
                    if let Some(p) = trigger {
                        killed_at = Some(Instant::now());
                        shard2.kill();
                        println!(
                            "killed shard 2 ({when:?}: {p}); moves recorded then: {:?}",
                            t.moving
                        );
                        routed_to_2 = projects
                            .iter()
                            .filter(|p| t.route(p).ordinal == 2)
                            .cloned()
                            .collect();
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    );
    let first = first.expect("rebalance returns its report even with a shard down");
    let killed_at = killed_at.expect("the rebalance recorded a move to shard 2");
    print_report("scale out with shard 2 killed", &first, t.elapsed());
    assert!(
        !first.failed.is_empty(),
        "moves to a killed shard must fail"
    );
    assert_moves_sane(&first);
    if when == KillWhen::FirstSwitch {
        assert!(!routed_to_2.is_empty());
        for p in &routed_to_2 {
            assert!(
                first.moved.iter().any(|m| &m.project == p),
                "{p} switched before the kill: its move succeeded"
            );
        }
    }
    // the failures are rolled back or left for recovery, never switched
    let table = c.table().await;
    for (p, _) in &first.failed {
        assert_ne!(
            table.route(p).ordinal,
            2,
            "{p} failed but routes to shard 2"
        );
        if let Some(m) = table.moving.get(p) {
            assert_ne!(
                m.phase,
                quiver_placement::MovePhase::Switched,
                "{p}: a failed move is not switched"
            );
        }
    }
    let first_moved = moved_set(&first);
    for p in &first_moved {
        assert!(
            changing.contains(p),
            "{p} moved but its home did not change"
        );
    }
    println!(
        "after the kill: {} moves recorded in the table (to be rolled back)",
        table.moving.len()
    );

    // every project still reads through the router, except those already on shard 2
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in &c.projects {
        let r = c
            .http
            .post(&coll_path(p, "/get"), &json!({"limit": 1}))
            .await;
        if table.route(p).ordinal == 2 {
            assert!(!r.is_ok(), "{p} lives on the killed shard");
        } else {
            assert!(r.is_ok(), "{p} on a live shard: {} {}", r.status, r.text);
        }
    }

    // shard 2 comes back; recovery ends what the kill left, and a second rebalance
    // completes the scale out
    c.shards[2].restart().await;
    let rec = recover(&c.ctx, &c.store).await.expect("recover");
    println!(
        "recovery: rolled back {:?}, finished {:?}, stuck {:?}",
        rec.rolled_back, rec.finished, rec.stuck
    );
    assert!(rec.stuck.is_empty(), "{:?}", rec.stuck);
    assert!(c.table().await.moving.is_empty());
    let recovered_at = Instant::now();

    let t = Instant::now();
    let second = rebalance(&c.ctx, &c.store, 3, true)
        .await
        .expect("second rebalance");
    print_report("scale out, second attempt", &second, t.elapsed());
    assert!(
        second.failed.is_empty(),
        "failed moves: {:?}",
        second.failed
    );
    assert!(second.duplicated.is_empty(), "{:?}", second.duplicated);
    assert_moves_sane(&second);
    let second_moved = moved_set(&second);
    assert!(
        first_moved.is_disjoint(&second_moved),
        "a project moved twice: {:?}",
        first_moved.intersection(&second_moved).collect::<Vec<_>>()
    );
    let all: BTreeSet<String> = first_moved.union(&second_moved).cloned().collect();
    assert_eq!(
        all, changing,
        "exactly the projects whose home changes moved"
    );
    for m in first.moved.iter().chain(&second.moved) {
        assert_eq!((m.from, m.to), (home_ordinal(&m.project, 2), 2), "{m:?}");
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let figures = traffic.stop().await;
    let failures = figures.failures.lock().unwrap().clone();
    // expected: failures of projects routed to shard 2 while it was down
    let (expected, unexpected): (Vec<&Failure>, Vec<&Failure>) = failures.iter().partition(|f| {
        f.route_after == Some(2) && f.ended >= killed_at && f.started <= recovered_at
    });
    let all_moves: Vec<&MoveReport> = first.moved.iter().chain(&second.moved).collect();
    println!(
        "traffic: {} writes acknowledged, {} reads; write latency {}; longest write \
         pause (move reports) {:?}; errors while shard 2 was down: {} writes, {} reads \
         (expected, projects on shard 2); unexpected errors {}",
        figures.writes_ok.load(Ordering::Relaxed),
        figures.reads_ok.load(Ordering::Relaxed),
        figures.write_latency_summary(),
        longest_pause(&all_moves),
        expected.iter().filter(|f| f.write).count(),
        expected.iter().filter(|f| !f.write).count(),
        unexpected.len(),
    );
    for f in unexpected.iter().take(10) {
        println!("  unexpected: {f:?}");
    }
    assert!(unexpected.is_empty(), "unexpected errors: {unexpected:?}");

    c.check_invariants(&acked, 3).await;
}

// ---------------------------------------------------------------------------------------
// two shards, no router: moves and transfers that must refuse

/// Shards 0 and 1 on a placement file listing both (shardCount 2), and the operator's
/// move context; no router, no traffic. Fields drop in order: shards, then the directory.
struct Pair {
    shards: Vec<Shard>,
    store: FileStore,
    ctx: MoveContext,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::Builder::new()
            .prefix("quiver-op-pair-")
            .tempdir()
            .expect("tempdir");
        let mut shards = Vec::new();
        for ordinal in 0..2 {
            shards.push(start_shard(ordinal, dir.path()).await);
        }
        let store = FileStore::new(dir.path().join("placement.json"));
        let initial = PlacementTable {
            epoch: 1,
            shard_count: 2,
            shards: vec![shards[0].base_url(), shards[1].base_url()],
            overrides: BTreeMap::new(),
            moving: BTreeMap::new(),
        };
        load_or_init(&store, &initial)
            .await
            .expect("publish the first table");
        let ctx = MoveContext::new(http_client(), None, move_config(), None);
        Pair {
            shards,
            store,
            ctx,
            _dir: dir,
        }
    }

    async fn table(&self) -> PlacementTable {
        self.store.load().await.expect("placement table").table
    }

    fn admin(&self, ordinal: usize) -> AdminClient {
        AdminClient::new(
            &self.shards[ordinal].base_url(),
            None,
            reqwest::Client::new(),
        )
        .expect("admin client")
    }
}

/// The first `{prefix}-{i}` whose hash home among `count` shards is `ordinal`.
fn name_homed_at(prefix: &str, ordinal: u32, count: u32) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|p| home_ordinal(p, count) == ordinal)
        .expect("a name with that home")
}

/// Creates the collection of `project` directly on one shard (the project comes into
/// being with it, as on a client's first access) and adds `ids` in batches of `per_add`.
async fn create_with(http: &Http, rng: &mut StdRng, project: &str, ids: &[String], per_add: usize) {
    http.post(
        &format!("/api/v1/{project}/collections"),
        &json!({"name": COLLECTION, "configuration": {"hnsw": {"space": "l2"}}}),
    )
    .await
    .ok();
    for chunk in ids.chunks(per_add) {
        http.post(&coll_path(project, "/add"), &add_body(rng, project, chunk))
            .await
            .ok();
    }
}

/// The ids of `project` read directly on one shard, checking each record's document and
/// metadata.
async fn ids_on(http: &Http, project: &str) -> BTreeSet<String> {
    let r = http
        .post(
            &coll_path(project, "/get"),
            &json!({"include": ["documents", "metadatas"]}),
        )
        .await;
    let body = r.ok();
    let ids: Vec<String> = body["results"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect();
    let docs = body["results"]["documents"].as_array().expect("documents");
    let mds = body["results"]["metadatas"].as_array().expect("metadatas");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(docs[i], json!(document(id)), "{project}/{id}: document");
        assert_eq!(
            mds[i]["project"],
            json!(project),
            "{project}/{id}: metadata"
        );
        assert_eq!(mds[i]["id"], json!(id), "{project}/{id}: metadata");
    }
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "{project}: duplicated ids");
    unique
}

/// `GET /admin/v1/projects/{project}` on one shard (asserting a 200).
async fn admin_info(shard: &Shard, project: &str) -> Value {
    let r = shard
        .http()
        .get(&format!("/admin/v1/projects/{project}"))
        .await;
    assert_eq!(
        r.status, 200,
        "admin info of {project} on shard {}: {}",
        shard.ordinal, r.text
    );
    r.body
}

fn id_list(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A move onto a shard that already serves its own copy of the project (a client reached
/// it on its own) fails at the snapshot import (409 ProjectExists) and rolls back: the
/// roll back must not remove that copy, which the move did not make, and the source must
/// serve again with everything it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roll_back_leaves_a_destination_copy_the_move_did_not_make() {
    let pair = Pair::start().await;
    let p = name_homed_at("own-copy", 0, 2);
    let (a, b) = (pair.shards[0].http(), pair.shards[1].http());
    let mut rng = StdRng::seed_from_u64(11);
    let a_ids = id_list("a", 6);
    let b_ids = id_list("b", 3);
    create_with(&a, &mut rng, &p, &a_ids, 3).await;
    create_with(&b, &mut rng, &p, &b_ids, 3).await;
    assert_eq!(pair.table().await.route(&p).ordinal, 0);

    let err = move_project(&pair.ctx, &pair.store, &p, 0, 1)
        .await
        .expect_err("a move onto a shard holding its own copy must fail");
    println!("move refused: {err}");
    match &err {
        MoveError::RolledBack {
            project,
            step,
            cause,
        } => {
            assert_eq!(project, &p);
            assert_eq!(*step, "copy snapshot", "{err}");
            assert!(
                cause.contains("409") && cause.contains("ProjectExists"),
                "the import answers 409 ProjectExists: {cause}"
            );
        }
        other => panic!("expected RolledBack, got {other:?}"),
    }

    // the destination's own copy is untouched
    let info_b = admin_info(&pair.shards[1], &p).await;
    assert_eq!(info_b["state"], json!("active"), "{info_b}");
    let expected_b: BTreeSet<String> = b_ids.iter().cloned().collect();
    assert_eq!(ids_on(&b, &p).await, expected_b, "B's own records");

    // the source serves again, neither fenced nor paused, with all its records
    let info_a = admin_info(&pair.shards[0], &p).await;
    assert_eq!(info_a["state"], json!("active"), "{info_a}");
    assert!(info_a["movedTo"].is_null(), "{info_a}");
    let expected_a: BTreeSet<String> = a_ids.iter().cloned().collect();
    assert_eq!(ids_on(&a, &p).await, expected_a, "A's records");
    // and takes writes
    let more = id_list("a-after", 2);
    a.post(&coll_path(&p, "/add"), &add_body(&mut rng, &p, &more))
        .await
        .ok();
    let expected_a: BTreeSet<String> = a_ids.iter().chain(&more).cloned().collect();
    assert_eq!(
        ids_on(&a, &p).await,
        expected_a,
        "A's records after a write"
    );

    // the table forgets the move and still routes the project to A
    let table = pair.table().await;
    assert!(
        !table.moving.contains_key(&p),
        "move left in the table: {:?}",
        table.moving
    );
    assert!(table.overrides.is_empty(), "{:?}", table.overrides);
    assert_eq!(table.route(&p).ordinal, 0);
}

/// A project deleted and created again on the source after its snapshot was copied is
/// another incarnation: its changes must be refused (410) by the incoming copy, whatever
/// their sequence numbers, and the copy left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_created_source_is_copied_again_not_replayed() {
    let pair = Pair::start().await;
    let p = name_homed_at("recreated", 0, 2);
    let a = pair.shards[0].http();
    let mut rng = StdRng::seed_from_u64(12);
    create_with(&a, &mut rng, &p, &id_list("first", 3), 3).await;

    let (src, dst) = (pair.admin(0), pair.admin(1));
    let snapshot_seq = src
        .copy_snapshot_to(&dst, &p)
        .await
        .expect("copy the snapshot");
    println!("snapshot of {p} at sequence {snapshot_seq}");
    let info_b = admin_info(&pair.shards[1], &p).await;
    assert_eq!(info_b["state"], json!("incoming"), "{info_b}");
    assert_eq!(info_b["sourceSequence"], json!(snapshot_seq), "{info_b}");

    // the client deletes the project on A and creates it again, writing more than before
    let r = a
        .send(reqwest::Method::DELETE, &format!("/api/v1/{p}"), None, &[])
        .await;
    r.ok();
    assert!(
        !pair.shards[0]
            .admin_projects()
            .await
            .iter()
            .any(|(name, _)| name == &p),
        "{p} deleted on A"
    );
    // The new incarnation first repeats the writes the snapshot holds, with other ids:
    // the same number of operations in the same batches, so its sequence numbers pass
    // through the snapshot's exactly at a batch boundary; then it writes more. Its changes
    // since the snapshot's sequence would apply to B's copy without a gap: only their
    // incarnation tells them apart.
    let second = id_list("again", 3 + 20);
    create_with(&a, &mut rng, &p, &second[..3], 3).await;
    for chunk in second[3..].chunks(4) {
        a.post(&coll_path(&p, "/add"), &add_body(&mut rng, &p, chunk))
            .await
            .ok();
    }
    let probe = a
        .get(&format!(
            "/admin/v1/projects/{p}/changes?since={snapshot_seq}"
        ))
        .await;
    assert_eq!(
        probe.status, 200,
        "A streams its changes since the snapshot's sequence: {}",
        probe.text
    );
    let latest: u64 = probe
        .header(quiver_operator::admin::SEQUENCE_HEADER)
        .and_then(|v| v.parse().ok())
        .expect("sequence header");
    println!("re-created {p} at sequence {latest}");
    assert!(
        latest > snapshot_seq,
        "A's new incarnation at {latest}, the snapshot at {snapshot_seq}"
    );

    let err = src
        .ship_changes_to(&dst, &p, snapshot_seq)
        .await
        .expect_err("changes of another incarnation must be refused");
    println!("changes refused: {err}");
    assert_eq!(err.status(), Some(410), "{err}");
    assert_eq!(err.kind(), Some("ChangesUnavailable"), "{err}");
    assert!(
        err.to_string().contains("incarnation"),
        "refused by the incoming copy for its incarnation: {err}"
    );

    // B's incoming copy is unchanged
    let info_b = admin_info(&pair.shards[1], &p).await;
    assert_eq!(info_b["state"], json!("incoming"), "{info_b}");
    assert_eq!(info_b["sourceSequence"], json!(snapshot_seq), "{info_b}");
    // and A's new incarnation is whole
    let expected: BTreeSet<String> = second.iter().cloned().collect();
    assert_eq!(ids_on(&a, &p).await, expected, "A's re-created records");
}
