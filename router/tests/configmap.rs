//! The ConfigMap placement source against a mocked Kubernetes API server.
//!
//! The test kit's mock (`quiver_testkit::kube_mock`) stands in for the API server: every
//! request the watcher makes is checked (method, path, query) and answered by the test. With finite watch responses the
//! watcher's next request is also the synchronisation point: it is only sent once the
//! previous event has been handled, so the placement state can be checked at that moment
//! without sleeping.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{self, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::client::Body;
use kube::Api;
use quiver_placement::PlacementTable;
use quiver_router::metrics::Metrics;
use quiver_router::placement::{configmap, Placement};
use quiver_testkit::kube_mock::{
    json_response, ndjson, pair_with_body, pairs, query_pairs, status, MockApi, SendResponse,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const NAMESPACE: &str = "ns";
const NAME: &str = "quiver-placement";
const PATH: &str = "/api/v1/namespaces/ns/configmaps";
/// How long a test waits for the watcher's next request; covers the default backoff after
/// an error (0.8 s to 1.6 s for the first one, twice that for the second).
const PATIENCE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// API objects

fn shards(n: usize, port: u16) -> Vec<String> {
    (0..n)
        .map(|i| format!("http://quiver-tenant-{i}.quiver-tenant:{port}"))
        .collect()
}

/// A valid table; every epoch gets different shard URLs, so tables of different epochs
/// differ in every field.
fn table(epoch: u64) -> PlacementTable {
    let count = 2 + epoch as usize;
    let mut t = PlacementTable::from_urls(epoch, shards(count, 7000 + epoch as u16)).unwrap();
    t.overrides
        .insert(format!("project-{epoch}"), (count - 1) as u32);
    t.validate().unwrap();
    t
}

/// The ConfigMap as the API server returns it; `data` is the `data` map (or null).
fn config_map(resource_version: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": "7c1f6c36-0d55-4b8a-9a53-3f3c1d8e0001",
            "resourceVersion": resource_version,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "data": data,
    })
}

fn config_map_with(resource_version: &str, t: &PlacementTable) -> Value {
    config_map(resource_version, json!({ "placement.json": t.to_json() }))
}

fn list_body(resource_version: &str, items: Vec<Value>) -> Value {
    // list items carry no apiVersion/kind, as with a real API server
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            let obj = item.as_object_mut().unwrap();
            obj.remove("apiVersion");
            obj.remove("kind");
            item
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMapList",
        "metadata": { "resourceVersion": resource_version },
        "items": items,
    })
}

fn event(kind: &str, object: Value) -> Value {
    json!({ "type": kind, "object": object })
}

// ---------------------------------------------------------------------------------------
// Request checks

/// The list the watcher starts (and restarts) with: only the one ConfigMap, by name.
fn assert_list<B>(req: &Request<B>) {
    assert_eq!(req.method(), Method::GET, "list: {:?}", req.uri());
    assert_eq!(req.uri().path(), PATH, "list: {:?}", req.uri());
    let query = req.uri().query().unwrap_or_default();
    assert!(
        query.contains("fieldSelector=metadata.name%3Dquiver-placement"),
        "list query {query:?}"
    );
    assert_eq!(
        query_pairs(query),
        pairs(&[
            ("fieldSelector", "metadata.name%3Dquiver-placement"),
            ("limit", "500"),
        ]),
        "list query {query:?}"
    );
}

/// A watch from `resource_version`, for the same one ConfigMap.
fn assert_watch<B>(req: &Request<B>, resource_version: &str) {
    assert_eq!(req.method(), Method::GET, "watch: {:?}", req.uri());
    assert_eq!(req.uri().path(), PATH, "watch: {:?}", req.uri());
    let query = req.uri().query().unwrap_or_default();
    assert_eq!(
        query_pairs(query),
        pairs(&[
            ("watch", "true"),
            ("timeoutSeconds", "290"),
            ("fieldSelector", "metadata.name%3Dquiver-placement"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
        ]),
        "watch query {query:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Harness

/// The source under test, fed by a mocked API server whose response body type is `B`.
struct Harness<B> {
    placement: Arc<Placement>,
    metrics: Arc<Metrics>,
    api: MockApi<B>,
    task: JoinHandle<()>,
}

impl<B> Harness<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn start() -> Self {
        let (client, api) = pair_with_body::<B>("default");
        let api = api.with_patience(PATIENCE);
        let metrics = Arc::new(Metrics::new());
        let placement = Placement::new("configmap", Arc::clone(&metrics));
        let task = tokio::spawn(configmap::run(
            Arc::clone(&placement),
            Api::<ConfigMap>::namespaced(client, NAMESPACE),
            NAME.into(),
        ));
        Harness {
            placement,
            metrics,
            api,
            task,
        }
    }

    async fn next_request(&mut self) -> (Request<Body>, SendResponse<Response<B>>) {
        let (req, send) = self.api.next_request().await;
        assert!(
            !self.task.is_finished(),
            "the ConfigMap source stopped running"
        );
        (req, send)
    }

    async fn expect_list(&mut self) -> SendResponse<Response<B>> {
        let (req, send) = self.next_request().await;
        assert_list(&req);
        assert_empty_body(req).await;
        send
    }

    async fn expect_watch(&mut self, resource_version: &str) -> SendResponse<Response<B>> {
        let (req, send) = self.next_request().await;
        assert_watch(&req, resource_version);
        assert_eq!(
            req.headers()
                .get(http::header::ACCEPT_ENCODING)
                .map(|v| v.as_bytes()),
            Some(&b"identity"[..]),
            "a watch asks for an uncompressed stream"
        );
        assert_empty_body(req).await;
        send
    }

    fn epoch(&self) -> Option<u64> {
        self.placement.current().map(|t| t.epoch)
    }

    fn assert_serving(&self, expected: &PlacementTable) {
        let current = self.placement.current().expect("a table is installed");
        assert_eq!(*current, *expected);
        assert_eq!(self.placement.ready(), Ok(()));
        assert_eq!(self.metrics.placement_epoch.get(), expected.epoch as i64);
        assert_eq!(
            self.metrics.placement_shards.get(),
            i64::from(expected.shard_count)
        );
    }

    /// The table stays, the router is not ready.
    fn assert_unready_with(&self, expected: &PlacementTable) {
        let current = self.placement.current().expect("the last table is kept");
        assert_eq!(*current, *expected);
        let err = self
            .placement
            .ready()
            .expect_err("the router must not be ready");
        assert!(err.contains("configmap"), "{err}");
    }

    fn updates(&self, outcome: &str) -> u64 {
        self.metrics
            .placement_updates
            .with_label_values(&["configmap", outcome])
            .get()
    }
}

impl<B> Drop for Harness<B> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn assert_empty_body(req: Request<Body>) {
    let body = req.into_body().collect_bytes().await.unwrap();
    assert!(body.is_empty(), "a GET with a body: {body:?}");
}

/// The harness with `kube::client::Body` responses: every watch response is finite, so the
/// watcher re-watches (from the last resource version) after each one.
type Finite = Harness<Body>;

fn ok<B: From<Vec<u8>>>(body: &Value) -> Response<B> {
    json_response(StatusCode::OK, body)
}

fn watch_response(events: &[Value]) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(ndjson(events)))
        .unwrap()
}

/// Lists the ConfigMap with `t` at resource version `rv` and returns once the watcher
/// watches from there.
async fn start_with(t: &PlacementTable, rv: &str) -> Finite {
    let mut h = Finite::start();
    h.expect_list()
        .await
        .send_response(ok(&list_body(rv, vec![config_map_with(rv, t)])));
    h
}

// ---------------------------------------------------------------------------------------
// Cases

#[tokio::test]
async fn the_listed_table_is_installed_and_a_modified_event_replaces_it_atomically() {
    let t1 = table(1);
    let t2 = table(2);
    let mut h = Finite::start();
    assert!(h.placement.current().is_none());
    assert!(h.placement.ready().is_err());

    h.expect_list()
        .await
        .send_response(ok(&list_body("10", vec![config_map_with("10", &t1)])));
    // the watch starts from the list's resource version
    let watch = h.expect_watch("10").await;
    h.assert_serving(&t1);
    let snapshot = h.placement.current().unwrap();
    let mut changed = h.placement.subscribe();
    changed.mark_unchanged();

    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map_with("11", &t2),
    )]));
    // the response ended, so the watcher watches again, from the event's version
    let watch = h.expect_watch("11").await;
    h.assert_serving(&t2);
    assert!(changed.has_changed().unwrap());
    // a request that took its snapshot before the switch still sees all of epoch 1
    assert_eq!(*snapshot, t1);
    assert_eq!(h.updates("applied"), 2);
    assert_eq!(h.updates("error"), 0);

    // the same table again (e.g. only an annotation changed): nothing to install
    changed.mark_unchanged();
    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map_with("12", &t2),
    )]));
    let _watch = h.expect_watch("12").await;
    h.assert_serving(&t2);
    assert!(!changed.has_changed().unwrap());
    assert_eq!(h.updates("applied"), 2);
}

#[tokio::test]
async fn several_events_in_one_watch_response_apply_in_order() {
    let mut h = start_with(&table(1), "10").await;
    h.expect_watch("10").await.send_response(watch_response(&[
        event("MODIFIED", config_map_with("11", &table(2))),
        event("MODIFIED", config_map_with("12", &table(3))),
        // a bookmark only moves the resource version on
        event(
            "BOOKMARK",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"resourceVersion": "15"}}),
        ),
    ]));
    let _watch = h.expect_watch("15").await;
    h.assert_serving(&table(3));
    assert_eq!(h.updates("applied"), 3);
}

#[tokio::test]
async fn an_invalid_table_keeps_the_last_good_one_and_makes_the_router_unready() {
    let t2 = table(2);
    let mut h = start_with(&table(1), "10").await;
    h.expect_watch("10")
        .await
        .send_response(watch_response(&[event(
            "MODIFIED",
            config_map_with("11", &t2),
        )]));

    // not JSON
    h.expect_watch("11")
        .await
        .send_response(watch_response(&[event(
            "MODIFIED",
            config_map(
                "12",
                json!({ "placement.json": "{\"epoch\": 3, \"shardCount\": " }),
            ),
        )]));
    let watch = h.expect_watch("12").await;
    h.assert_unready_with(&t2);
    assert_eq!(h.metrics.placement_epoch.get(), 2);

    // a valid table again: ready again (the same table: nothing to install, but the source
    // is healthy again)
    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map_with("13", &t2),
    )]));
    let watch = h.expect_watch("13").await;
    h.assert_serving(&t2);

    // the key is missing
    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map("14", json!({ "other.json": "{}" })),
    )]));
    let watch = h.expect_watch("14").await;
    h.assert_unready_with(&t2);

    // no data at all
    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map("15", Value::Null),
    )]));
    let watch = h.expect_watch("15").await;
    h.assert_unready_with(&t2);

    // JSON that does not validate: more hash shards than URLs, an https shard
    let mut too_few = table(3);
    too_few.shard_count = too_few.shards.len() as u32 + 1;
    let mut https = table(3);
    https.shards[0] = "https://quiver-tenant-0.quiver-tenant:7003".into();
    watch.send_response(watch_response(&[
        event(
            "MODIFIED",
            config_map(
                "16",
                json!({ "placement.json": serde_json::to_string(&too_few).unwrap() }),
            ),
        ),
        event(
            "MODIFIED",
            config_map(
                "17",
                json!({ "placement.json": serde_json::to_string(&https).unwrap() }),
            ),
        ),
    ]));
    let watch = h.expect_watch("17").await;
    h.assert_unready_with(&t2);
    assert_eq!(h.updates("error"), 5);

    // a later valid table is installed and the router is ready again
    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map_with("18", &table(3)),
    )]));
    let _watch = h.expect_watch("18").await;
    h.assert_serving(&table(3));
}

#[tokio::test]
async fn a_deleted_configmap_keeps_the_table_but_makes_the_router_unready() {
    let t1 = table(1);
    let mut h = start_with(&t1, "10").await;
    h.expect_watch("10")
        .await
        .send_response(watch_response(&[event(
            "DELETED",
            config_map_with("11", &t1),
        )]));
    let watch = h.expect_watch("11").await;
    h.assert_unready_with(&t1);
    assert_eq!(h.updates("error"), 1);

    // re-created: ready again with the new table
    watch.send_response(watch_response(&[event(
        "ADDED",
        config_map_with("12", &table(2)),
    )]));
    let _watch = h.expect_watch("12").await;
    h.assert_serving(&table(2));
}

#[tokio::test]
async fn an_absent_configmap_means_no_table_and_not_ready_until_it_is_created() {
    let mut h = Finite::start();
    h.expect_list()
        .await
        .send_response(ok(&list_body("5", vec![])));
    let watch = h.expect_watch("5").await;
    assert!(h.placement.current().is_none());
    let err = h.placement.ready().unwrap_err();
    assert!(err.contains("no placement table"), "{err}");
    assert_eq!(h.updates("error"), 1);

    watch.send_response(watch_response(&[event(
        "ADDED",
        config_map_with("6", &table(1)),
    )]));
    let _watch = h.expect_watch("6").await;
    h.assert_serving(&table(1));
}

#[tokio::test]
async fn a_listed_configmap_without_a_table_installs_nothing() {
    let mut h = Finite::start();
    h.expect_list().await.send_response(ok(&list_body(
        "7",
        vec![config_map("7", json!({ "placement.yaml": "epoch: 1" }))],
    )));
    let watch = h.expect_watch("7").await;
    assert!(h.placement.current().is_none());
    assert!(h.placement.ready().is_err());

    watch.send_response(watch_response(&[event(
        "MODIFIED",
        config_map_with("8", &table(1)),
    )]));
    let _watch = h.expect_watch("8").await;
    h.assert_serving(&table(1));
}

/// An error answer to the list: not ready, retried after the default backoff, recovers.
async fn list_error_is_retried(code: StatusCode, body: Value) {
    let t1 = table(1);
    let mut h = Finite::start();
    h.expect_list()
        .await
        .send_response(json_response(code, &body));
    let failed_at = Instant::now();

    // the retry starts over with a list, after a backoff
    let send = h.expect_list().await;
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "retried after {waited:?}, without the backoff"
    );
    assert!(h.placement.current().is_none());
    assert!(h.placement.ready().is_err());
    assert_eq!(h.updates("error"), 1);

    send.send_response(ok(&list_body("20", vec![config_map_with("20", &t1)])));
    let _watch = h.expect_watch("20").await;
    h.assert_serving(&t1);
}

#[tokio::test]
async fn a_failing_list_is_retried_with_backoff_until_it_succeeds() {
    list_error_is_retried(
        StatusCode::INTERNAL_SERVER_ERROR,
        status(500, "InternalError", "etcdserver: request timed out"),
    )
    .await;
}

#[tokio::test]
async fn a_forbidden_list_is_retried_with_backoff_until_it_succeeds() {
    list_error_is_retried(
        StatusCode::FORBIDDEN,
        status(
            403,
            "Forbidden",
            "configmaps is forbidden: User \"system:serviceaccount:ns:quiver-router\" cannot \
             list resource \"configmaps\" in API group \"\" in the namespace \"ns\"",
        ),
    )
    .await;
}

#[tokio::test]
async fn an_error_answer_that_is_not_a_status_is_retried_too() {
    let mut h = Finite::start();
    h.expect_list().await.send_response(
        Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header("content-type", "text/html")
            .body(Body::from(b"<html>502 Bad Gateway</html>".to_vec()))
            .unwrap(),
    );
    let send = h.expect_list().await;
    assert!(h.placement.ready().is_err());
    send.send_response(ok(&list_body("3", vec![config_map_with("3", &table(1))])));
    let _watch = h.expect_watch("3").await;
    h.assert_serving(&table(1));
}

#[tokio::test]
async fn an_expired_watch_relists_and_keeps_serving() {
    let t1 = table(1);
    let mut h = start_with(&t1, "10").await;
    // 410 Gone: the resource version is too old, the watcher starts over with a list
    h.expect_watch("10")
        .await
        .send_response(watch_response(&[event(
            "ERROR",
            status(410, "Expired", "too old resource version: 10 (40)"),
        )]));
    let send = h.expect_list().await;
    assert_eq!(*h.placement.current().unwrap(), t1);
    send.send_response(ok(&list_body("40", vec![config_map_with("40", &table(2))])));
    let _watch = h.expect_watch("40").await;
    h.assert_serving(&table(2));
}

/// After a failed watch the source starts over with a fresh list, which confirms the
/// table (unchanged) and makes the router ready again without waiting for the ConfigMap
/// to change.
#[tokio::test]
async fn a_failed_watch_recovers_readiness_once_the_api_answers_again() {
    let t1 = table(1);
    let mut h = start_with(&t1, "10").await;
    h.expect_watch("10").await.send_response(json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &status(500, "InternalError", "etcdserver: leader changed"),
    ));
    // after a backoff the watcher starts over: a list, while the router is unready
    let (req, send) = h.next_request().await;
    assert_list(&req);
    h.assert_unready_with(&t1);
    send.send_response(ok(&list_body("11", vec![config_map_with("11", &t1)])));
    let _watch = h.expect_watch("11").await;
    h.assert_serving(&t1);
}

// ---------------------------------------------------------------------------------------
// A long-lived watch: one response whose body stays open and delivers events one by one.

type StreamedBody = UnsyncBoxBody<Bytes, Infallible>;

/// A watch response body fed through a channel; dropping the sender ends the response.
fn streamed_watch() -> (mpsc::UnboundedSender<Value>, Response<StreamedBody>) {
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let e = rx.recv().await?;
        let line = Bytes::from(ndjson(&[e]));
        Some((Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let body = StreamBody::new(frames).boxed_unsync();
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    (tx, response)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_long_lived_watch_applies_each_event_as_it_arrives() {
    let mut h = Harness::<StreamedBody>::start();
    let list = list_body("10", vec![config_map_with("10", &table(1))]);
    h.expect_list().await.send_response(Response::new(
        Full::new(Bytes::from(serde_json::to_vec(&list).unwrap())).boxed_unsync(),
    ));
    let (events, response) = streamed_watch();
    h.expect_watch("10").await.send_response(response);
    h.assert_serving(&table(1));

    let mut changed = h.placement.subscribe();
    changed.mark_unchanged();
    events
        .send(event("MODIFIED", config_map_with("11", &table(2))))
        .unwrap();
    tokio::time::timeout(PATIENCE, changed.changed())
        .await
        .unwrap()
        .unwrap();
    h.assert_serving(&table(2));

    events
        .send(event(
            "MODIFIED",
            config_map("12", json!({ "placement.json": "[]" })),
        ))
        .unwrap();
    eventually("the invalid table is reported", || h.updates("error") == 1).await;
    h.assert_unready_with(&table(2));

    events
        .send(event("MODIFIED", config_map_with("13", &table(3))))
        .unwrap();
    eventually("epoch 3 is installed", || h.epoch() == Some(3)).await;
    h.assert_serving(&table(3));

    events
        .send(event("DELETED", config_map_with("14", &table(3))))
        .unwrap();
    eventually("the deletion is reported", || h.updates("error") == 2).await;
    h.assert_unready_with(&table(3));

    // the API server closes the watch (its timeoutSeconds): the watcher resumes from the
    // last version it saw
    drop(events);
    let (req, _send) = h.next_request().await;
    assert_watch(&req, "14");
    h.assert_unready_with(&table(3));
}

#[test]
fn table_of_reads_the_placement_key() {
    let cm: ConfigMap = serde_json::from_value(config_map_with("1", &table(4))).unwrap();
    assert_eq!(configmap::table_of(&cm).unwrap(), table(4));

    let cm: ConfigMap =
        serde_json::from_value(config_map("1", json!({ "placement.json": "nope" }))).unwrap();
    let err = configmap::table_of(&cm).unwrap_err();
    assert!(err.contains(NAME) && err.contains("JSON"), "{err}");

    let mut data = BTreeMap::new();
    data.insert("other".to_string(), "{}".to_string());
    let cm = ConfigMap {
        data: Some(data),
        ..ConfigMap::default()
    };
    let err = configmap::table_of(&cm).unwrap_err();
    assert!(err.contains("placement.json"), "{err}");
}
