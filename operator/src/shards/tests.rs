//! Passes of the shard controller against a mocked Kubernetes API (the StatefulSet), a
//! placement file, fixed shard loads and a fake rebalancer that records its calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::Method;
use kube::Api;
use prometheus::Registry;
use serde_json::{json, Value};

use super::*;
use crate::placement_store::FileStore;
use crate::shard_count::ShardLoad;
use observe::tests::{ITEM, SCALE};
use quiver_testkit::kube_mock::{pair, MockApi};

fn url(i: u32) -> String {
    format!("http://quiver-tenant-{i}.quiver-tenant.ns.svc:7100")
}

fn urls(n: u32) -> Vec<String> {
    (0..n).map(url).collect()
}

fn sts(spec: i32, ready: i32) -> Value {
    observe::tests::sts(Some(spec), Some(ready))
}

fn scale_answer(replicas: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "quiver-tenant", "namespace": "ns"},
        "spec": {"replicas": replicas},
    })
}

struct Loads(BTreeMap<String, Result<ShardLoad, String>>);

impl ShardStats for Loads {
    fn load<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<ShardLoad, String>> {
        let r = self
            .0
            .get(url)
            .cloned()
            .unwrap_or_else(|| Err(format!("no shard at {url}")));
        Box::pin(async move { r })
    }
}

fn loads(projects: &[u64]) -> Loads {
    Loads(
        projects
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                (
                    url(i as u32),
                    Ok(ShardLoad {
                        projects: p,
                        bytes: 0,
                    }),
                )
            })
            .collect(),
    )
}

/// Does what the real rebalancer does to the table, and records its calls.
struct FakeRebalancer {
    store: Arc<FileStore>,
    calls: Arc<Mutex<Vec<String>>>,
    drained: bool,
}

impl Rebalancer for FakeRebalancer {
    fn rebalance(&self, target: u32) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("rebalance {target}"));
            placement_store::update(self.store.as_ref(), |t| {
                let changed = t.shard_count != target;
                t.shard_count = target;
                Ok::<bool, PlacementStoreError>(changed)
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
    }

    fn trim(&self, target: u32) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(format!("trim {target}"));
            if !self.drained {
                return Ok(false);
            }
            placement_store::update(self.store.as_ref(), |t| {
                let changed = t.shards.len() > target as usize;
                t.shards.truncate(target as usize);
                Ok::<bool, PlacementStoreError>(changed)
            })
            .await
            .map(|v| v.table.shards.len() == target as usize)
            .map_err(|e| e.to_string())
        })
    }
}

struct Harness {
    controller: ShardController,
    api: MockApi,
    store: Arc<FileStore>,
    calls: Arc<Mutex<Vec<String>>>,
    registry: Registry,
    _dir: tempfile::TempDir,
}

fn policy() -> ScalingPolicy {
    ScalingPolicy {
        min_shards: 1,
        max_shards: 8,
        target_projects_per_shard: 100,
        target_bytes_per_shard: 1 << 40,
        scale_down_below: 0.5,
    }
}

fn harness(stats: Loads, table: Option<PlacementTable>, drained: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::new(dir.path().join("placement.json")));
    if let Some(t) = table {
        let path = store.path().to_path_buf();
        std::fs::write(path, t.to_json()).unwrap();
    }
    let (client, api) = pair("ns");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let registry = Registry::new();
    let mut config = ControllerConfig::new(policy(), Duration::from_secs(60));
    config.ready_poll = Duration::from_millis(10);
    let controller = ShardController::new(
        config,
        StatefulSetClient::new(Api::namespaced(client, "ns"), "quiver-tenant"),
        url,
        Arc::clone(&store) as Arc<dyn PlacementStore>,
        Box::new(stats),
        Box::new(FakeRebalancer {
            store: Arc::clone(&store),
            calls: Arc::clone(&calls),
            drained,
        }),
        OperatorMetrics::register(&registry).unwrap(),
    );
    Harness {
        controller,
        api,
        store,
        calls,
        registry,
        _dir: dir,
    }
}

fn table(count: u32, listed: u32) -> PlacementTable {
    let mut t = PlacementTable::from_urls(7, urls(listed)).unwrap();
    t.shard_count = count;
    t
}

/// A pass that sends a request no test expects waits forever on the mock: fail instead.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the pass did not finish (an unexpected API request?)")
}

impl Harness {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn metric(&self, line: &str) -> bool {
        crate::metrics::render(&self.registry).contains(line)
    }

    async fn table(&self) -> PlacementTable {
        self.store.load().await.unwrap().table
    }
}

#[tokio::test]
async fn first_pass_publishes_the_existing_shards() {
    // 120 projects: two shards are needed (one would be over half the target)
    let mut h = harness(loads(&[60, 60]), None, true);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(2, 2));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert_eq!(outcome.unwrap(), PassOutcome::Settled { shards: 2 });
    let t = h.table().await;
    assert_eq!((t.epoch, t.shard_count, t.shards.clone()), (1, 2, urls(2)));
    assert_eq!(h.calls(), vec!["rebalance 2"]);
    h.api.assert_idle().await;
}

#[tokio::test]
async fn scaling_up_patches_waits_for_readiness_publishes_then_rebalances() {
    // 2 shards of 120 projects, 100 per shard wanted: 3 shards
    let mut h = harness(loads(&[120, 120]), Some(table(2, 2)), true);
    let calls = Arc::clone(&h.calls);
    let store = Arc::clone(&h.store);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(2, 2));
        let patch = api.expect(Method::PATCH, SCALE).await;
        assert_eq!(patch.body, json!({"spec": {"replicas": 3}}));
        patch.respond(200, &scale_answer(3));
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 2));
        // nothing is published while the new pod is not ready
        assert_eq!(store.load().await.unwrap().table.shards.len(), 2);
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 2));
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 3));
        assert!(calls.lock().unwrap().is_empty());
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert_eq!(outcome.unwrap(), PassOutcome::Settled { shards: 3 });
    let t = h.table().await;
    assert_eq!(t.shards, urls(3));
    assert_eq!(t.shard_count, 3);
    // one epoch for the URLs, one for the rebalancer's count
    assert_eq!(t.epoch, 9);
    assert_eq!(h.calls(), vec!["rebalance 3"]);
    assert!(h.metric("quiver_operator_scale_events_total{direction=\"up\"} 1"));
    assert!(h.metric("quiver_operator_shards_desired 3"));
    assert!(h.metric("quiver_operator_shards_current 3"));
    h.api.assert_idle().await;
}

#[tokio::test]
async fn scaling_down_drains_and_trims_before_patching() {
    let mut h = harness(loads(&[1, 1, 1]), Some(table(3, 3)), true);
    let calls = Arc::clone(&h.calls);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 3));
        let patch = api.expect(Method::PATCH, SCALE).await;
        // the pods go only after the moves and the table without ordinal 2
        assert_eq!(*calls.lock().unwrap(), vec!["rebalance 2", "trim 2"]);
        assert_eq!(patch.body, json!({"spec": {"replicas": 2}}));
        patch.respond(200, &scale_answer(2));
        api.expect(Method::GET, ITEM).await.respond(200, &sts(2, 2));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert_eq!(outcome.unwrap(), PassOutcome::Settled { shards: 2 });
    let t = h.table().await;
    assert_eq!((t.shard_count, t.shards.clone()), (2, urls(2)));
    assert!(h.metric("quiver_operator_scale_events_total{direction=\"down\"} 1"));
    h.api.assert_idle().await;
}

#[tokio::test]
async fn scaling_down_waits_while_the_drained_shard_holds_anything() {
    let mut h = harness(loads(&[1, 1, 1]), Some(table(3, 3)), false);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 3));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert_eq!(outcome.unwrap(), PassOutcome::Draining { from: 3, to: 2 });
    assert_eq!(h.calls(), vec!["rebalance 2", "trim 2"]);
    // no PATCH: the StatefulSet keeps its pods
    h.api.assert_idle().await;
    assert_eq!(h.table().await.shards.len(), 3);
}

#[tokio::test]
async fn a_shard_without_stats_holds_the_count() {
    let mut stats = loads(&[1, 1, 1]);
    stats.0.insert(url(1), Err("connection refused".into()));
    let mut h = harness(stats, Some(table(3, 3)), true);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 3));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert_eq!(outcome.unwrap(), PassOutcome::Settled { shards: 3 });
    assert_eq!(h.calls(), vec!["rebalance 3"]);
    h.api.assert_idle().await;
}

#[tokio::test]
async fn pods_that_never_get_ready_end_the_pass_with_an_error() {
    let mut h = harness(loads(&[1, 1, 1]), Some(table(3, 3)), true);
    h.controller.config.ready_timeout = Duration::ZERO;
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 2));
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 2));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert!(
        matches!(
            outcome,
            Err(ShardError::NotReady {
                replicas: 3,
                ready: 2,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert!(h.calls().is_empty(), "no moves while a shard is down");
}

#[tokio::test]
async fn a_failed_rebalance_stops_the_pass_before_shrinking() {
    struct Failing;
    impl Rebalancer for Failing {
        fn rebalance(&self, _: u32) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Err("shard 2 unreachable".to_string()) })
        }
        fn trim(&self, _: u32) -> BoxFuture<'_, Result<bool, String>> {
            Box::pin(async { panic!("trim after a failed rebalance") })
        }
    }
    let mut h = harness(loads(&[1, 1, 1]), Some(table(3, 3)), true);
    h.controller.rebalancer = Box::new(Failing);
    let api = &mut h.api;
    let server = async move {
        api.expect(Method::GET, ITEM).await.respond(200, &sts(3, 3));
    };
    let ((), outcome) = tokio::join!(server, within(h.controller.pass()));
    assert!(
        matches!(outcome, Err(ShardError::Rebalance { target: 2, .. })),
        "{outcome:?}"
    );
    h.api.assert_idle().await;
}

#[tokio::test]
async fn run_passes_until_shutdown() {
    let mut h = harness(loads(&[10]), Some(table(1, 1)), true);
    h.controller.config.interval = Duration::from_millis(20);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let api = &mut h.api;
    let server = async move {
        for _ in 0..2 {
            api.expect(Method::GET, ITEM).await.respond(200, &sts(1, 1));
        }
        // the third pass has begun: stop it half-way
        let _pending = api.expect(Method::GET, ITEM).await;
        stop.send(()).unwrap();
    };
    let run = h.controller.run(async {
        let _ = stopped.await;
    });
    tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(server, run) })
        .await
        .expect("run returns on shutdown");
    assert_eq!(h.calls(), vec!["rebalance 1", "rebalance 1"]);
}
