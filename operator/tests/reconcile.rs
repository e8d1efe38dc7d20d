//! The Project reconciler against a mocked Kubernetes API server and fake tenant servers.
//!
//! The test kit's mock (`quiver_testkit::kube_mock`) stands in for the API server: the test
//! receives every request the reconciler makes, checks it (method, path, query, content
//! type, the body's key parts) and answers it. The shards are real HTTP servers on 127.0.0.1 that keep projects in
//! memory the way the admin API does and record each call. `reconcile` is called directly,
//! once per watch event the controller would deliver.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method as AxumMethod, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response as AxumResponse};
use http::Method;
use kube::runtime::controller::Action;
use prometheus::Registry;
use quiver_operator::crd::Project;
use quiver_operator::reconcile::{
    error_policy, reconcile, report_unmanaged, Context, Error, PlacementDirectory, ReconcileConfig,
    ReconcileMetrics, SharedPlacement,
};
use quiver_placement::{Move, MovePhase, PlacementTable};
use quiver_testkit::kube_mock::{pair, pairs, Call as ApiCall, MockApi};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const NS: &str = "team-a";
const ENDPOINT: &str = "http://quiver-router.quiver.svc:8000";
const PROJECTS: &str = "/apis/quiver.dev/v1alpha1/namespaces/team-a/projects";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";
const FINALIZER: &str = "quiver.dev/project-data";
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Fake tenant servers

#[derive(Debug, Clone, PartialEq)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

#[derive(Default)]
struct ShardState {
    projects: BTreeMap<String, Value>,
    calls: Vec<Call>,
}

#[derive(Clone, Default)]
struct FakeShard {
    state: Arc<Mutex<ShardState>>,
}

impl FakeShard {
    async fn start() -> (FakeShard, String) {
        let shard = FakeShard::default();
        let app = axum::Router::new()
            .fallback(shard_handler)
            .with_state(shard.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (shard, url)
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|c| (c.method.clone(), c.path.clone()))
            .collect()
    }

    fn bodies(&self) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state.calls.iter().map(|c| c.body.clone()).collect()
    }

    fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    fn insert(&self, name: &str, records: u64, quotas: Value) {
        self.state
            .lock()
            .unwrap()
            .projects
            .insert(name.into(), project_info(name, records, quotas, "active"));
    }

    fn set_records(&self, name: &str, records: u64) {
        let mut state = self.state.lock().unwrap();
        let info = state.projects.get_mut(name).expect("project on the shard");
        info["records"] = json!(records);
    }

    fn project(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().projects.get(name).cloned()
    }
}

fn project_info(name: &str, records: u64, quotas: Value, state: &str) -> Value {
    json!({
        "name": name, "collections": 1, "records": records, "bytes": 8192, "open": true,
        "state": state, "movedTo": null, "statsSource": "live", "quotas": quotas,
        "sourceSequence": null
    })
}

/// Quotas as the server reports them: all three fields, null for none.
fn full_quotas(body: &Value) -> Value {
    let field = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "maxCollections": field("maxCollections"),
        "maxRecords": field("maxRecords"),
        "maxBytes": field("maxBytes"),
    })
}

async fn shard_handler(
    State(shard): State<FakeShard>,
    method: AxumMethod,
    uri: Uri,
    body: Bytes,
) -> AxumResponse {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(json!("<not json>"))
    };
    let mut state = shard.state.lock().unwrap();
    state.calls.push(Call {
        method: method.to_string(),
        path: uri.to_string(),
        body: body.clone(),
    });
    let reply = |code: AxumStatus, v: Value| (code, axum::Json(v)).into_response();
    let not_found = |what: &str| {
        reply(
            AxumStatus::NOT_FOUND,
            json!({"error": "NotFoundError", "message": format!("Project [{what}] not found")}),
        )
    };
    let path = uri.path();
    if path == "/admin/v1/projects" && method == AxumMethod::GET {
        let list: Vec<Value> = state.projects.values().cloned().collect();
        return reply(AxumStatus::OK, json!({ "projects": list }));
    }
    let Some(name) = path.strip_prefix("/admin/v1/projects/") else {
        return not_found(path);
    };
    let name = name.to_string();
    match method.as_str() {
        "PUT" => {
            let quotas = body.get("quotas").map(full_quotas);
            let created = !state.projects.contains_key(&name);
            let info = state
                .projects
                .entry(name.clone())
                .or_insert_with(|| project_info(&name, 0, full_quotas(&json!({})), "active"));
            if let Some(q) = quotas {
                info["quotas"] = q;
            }
            let info = info.clone();
            let code = if created {
                AxumStatus::CREATED
            } else {
                AxumStatus::OK
            };
            reply(code, info)
        }
        "DELETE" => match state.projects.remove(&name) {
            Some(_) => reply(AxumStatus::OK, json!({"project": name, "deleted": true})),
            None => not_found(&name),
        },
        "GET" => match state.projects.get(&name) {
            Some(info) => reply(AxumStatus::OK, info.clone()),
            None => not_found(&name),
        },
        _ => reply(
            AxumStatus::METHOD_NOT_ALLOWED,
            json!({"error": "InvalidArgumentError", "message": "method"}),
        ),
    }
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A project name whose home in `table` is `ordinal`.
fn name_on(table: &PlacementTable, ordinal: u32, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| table.ordinal_of(n) == ordinal)
        .expect("some name hashes to every shard")
}

// ---------------------------------------------------------------------------------------
// Project objects

struct Obj {
    name: String,
    generation: i64,
    spec: Value,
    finalizers: Vec<&'static str>,
    deleting: bool,
    status: Option<Value>,
}

impl Obj {
    fn new(name: &str, spec: Value) -> Self {
        Obj {
            name: name.into(),
            generation: 1,
            spec,
            finalizers: vec![FINALIZER],
            deleting: false,
            status: None,
        }
    }

    fn json(&self) -> Value {
        let mut metadata = json!({
            "name": self.name,
            "namespace": NS,
            "uid": format!("uid-{}", self.name),
            "resourceVersion": "100",
            "generation": self.generation,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        });
        if !self.finalizers.is_empty() {
            metadata["finalizers"] = json!(self.finalizers);
        }
        if self.deleting {
            metadata["deletionTimestamp"] = json!("2026-01-02T00:00:00Z");
        }
        let mut obj = json!({
            "apiVersion": "quiver.dev/v1alpha1",
            "kind": "Project",
            "metadata": metadata,
            "spec": self.spec,
        });
        if let Some(status) = &self.status {
            obj["status"] = status.clone();
        }
        obj
    }

    fn project(&self) -> Project {
        serde_json::from_value(self.json()).expect("a valid Project")
    }
}

// ---------------------------------------------------------------------------------------
// Mocked API server

struct Harness {
    api: MockApi,
    ctx: Arc<Context>,
    placement: SharedPlacement,
}

fn harness_with(table: PlacementTable, config: ReconcileConfig) -> Harness {
    let (client, api) = pair("default");
    let api = api.with_patience(PATIENCE);
    let placement: SharedPlacement = Arc::new(std::sync::RwLock::new(Some(table)));
    let directory = PlacementDirectory::new(
        Arc::clone(&placement),
        Some("admin-token".into()),
        reqwest::Client::new(),
    );
    let metrics = ReconcileMetrics::register(&Registry::new()).unwrap();
    let ctx = Context::new(client, Arc::new(directory), ENDPOINT, metrics, config);
    Harness {
        api,
        ctx: Arc::new(ctx),
        placement,
    }
}

fn test_config() -> ReconcileConfig {
    ReconcileConfig {
        // every reconcile sees the shard as it is now
        listing_ttl: Duration::ZERO,
        backoff_jitter: 0.0,
        watch_namespace: Some(NS.into()),
        ..ReconcileConfig::default()
    }
}

impl Harness {
    fn start(&self, obj: &Obj) -> JoinHandle<Result<Action, Error>> {
        tokio::spawn(reconcile(Arc::new(obj.project()), Arc::clone(&self.ctx)))
    }

    async fn next(&mut self) -> ApiCall {
        self.api.next().await
    }

    async fn expect(&mut self, method: Method, path: &str) -> ApiCall {
        self.api.expect(method, path).await
    }

    /// The finalizer being added (a JSON patch that first checks there are none).
    async fn expect_finalizer_added(&mut self, obj: &Obj) {
        let mut with = obj.json();
        with["metadata"]["finalizers"] = json!([FINALIZER]);
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]);
        self.expect_finalizer_patch(obj, patch, with).await;
    }

    async fn expect_finalizer_removed(&mut self, obj: &Obj) {
        let mut without = obj.json();
        without["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("finalizers");
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]);
        self.expect_finalizer_patch(obj, patch, without).await;
    }

    /// A JSON patch of `obj`'s finalizers, which must be `patch`; answered with `answer`.
    async fn expect_finalizer_patch(&mut self, obj: &Obj, patch: Value, answer: Value) {
        let seen = self
            .expect(Method::PATCH, &format!("{PROJECTS}/{}", obj.name))
            .await;
        assert_eq!(
            seen.content_type.as_deref(),
            Some("application/json-patch+json")
        );
        assert_eq!(seen.body, patch);
        seen.respond(200, &answer);
    }

    /// A server-side apply of the status by the operator's field manager; returns the
    /// applied status.
    async fn expect_status(&mut self, obj: &Obj) -> Value {
        let seen = self
            .expect(Method::PATCH, &format!("{PROJECTS}/{}/status", obj.name))
            .await;
        assert_eq!(
            seen.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            seen.query,
            pairs(&[("fieldManager", "quiver-operator"), ("force", "true")])
        );
        assert_eq!(seen.body["apiVersion"], "quiver.dev/v1alpha1");
        assert_eq!(seen.body["kind"], "Project");
        assert_eq!(
            seen.body.as_object().unwrap().len(),
            3,
            "only apiVersion, kind and status are applied: {}",
            seen.body
        );
        let status = seen.body["status"].clone();
        let mut updated = obj.json();
        updated["status"] = status.clone();
        seen.respond(200, &updated);
        status
    }

    /// An Event about `obj` with this type and reason, created (POST) or, when the same
    /// one was published recently, counted in its series (PATCH). Returns its note.
    async fn expect_event(&mut self, obj: &Obj, type_: &str, reason: &str, repeat: bool) -> String {
        let seen = self.next().await;
        if repeat {
            assert_eq!(seen.method, Method::PATCH, "{}", seen.body);
            assert!(
                seen.path.starts_with(&format!("{EVENTS}/{}.", obj.name)),
                "{}",
                seen.path
            );
            assert!(seen.body["series"]["count"].as_i64().unwrap() >= 2);
        } else {
            assert_eq!(
                (&seen.method, seen.path.as_str()),
                (&Method::POST, EVENTS),
                "{}",
                seen.body
            );
        }
        let e = &seen.body.clone();
        assert_eq!(e["reason"], reason, "{e}");
        assert_eq!(e["type"], type_, "{e}");
        assert_eq!(e["reportingController"], "quiver-operator");
        assert_eq!(e["regarding"]["kind"], "Project");
        assert_eq!(e["regarding"]["name"], obj.name.as_str());
        assert_eq!(e["regarding"]["namespace"], NS);
        let note = e["note"].as_str().unwrap_or_default().to_string();
        seen.respond(201, e);
        note
    }

    async fn expect_project_list(&mut self, items: Vec<Value>) {
        let seen = self.expect(Method::GET, PROJECTS).await;
        assert_eq!(seen.body, Value::Null);
        seen.respond(
            200,
            &json!({
                "apiVersion": "quiver.dev/v1alpha1",
                "kind": "ProjectList",
                "metadata": {"resourceVersion": "200"},
                "items": items,
            }),
        );
    }

    /// Nothing more reaches the API server (the reconcile is already over).
    async fn expect_nothing(&mut self) {
        self.api.assert_idle_for(Duration::from_millis(100)).await;
    }
}

async fn finish(task: JoinHandle<Result<Action, Error>>) -> Result<Action, Error> {
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the reconcile did not finish")
        .expect("the reconcile panicked")
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

async fn two_shards() -> (FakeShard, FakeShard, PlacementTable) {
    let (s0, u0) = FakeShard::start().await;
    let (s1, u1) = FakeShard::start().await;
    (s0, s1, PlacementTable::from_urls(1, vec![u0, u1]).unwrap())
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[tokio::test]
async fn create_adds_the_finalizer_then_provisions_on_the_home_shard() {
    let (s0, s1, table) = two_shards().await;
    let name = name_on(&table, 1, "acme");
    let mut h = harness_with(table, test_config());
    let spec = json!({"deletionPolicy": "Delete", "quotas": {"maxRecords": 1000}});
    let mut obj = Obj::new(&name, spec);
    obj.finalizers.clear();

    // first reconcile: only the finalizer, nothing on any shard yet
    let task = h.start(&obj);
    h.expect_finalizer_added(&obj).await;
    assert_eq!(finish(task).await.unwrap(), Action::await_change());
    assert!(s0.calls().is_empty() && s1.calls().is_empty());

    // the watch delivers the object with its finalizer
    obj.finalizers = vec![FINALIZER];
    let task = h.start(&obj);
    let note = h.expect_event(&obj, "Normal", "Provisioned", false).await;
    assert_eq!(note, "provisioned on shard 1");
    let status = h.expect_status(&obj).await;
    assert_eq!(
        finish(task).await.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    h.expect_nothing().await;

    assert!(s0.calls().is_empty(), "the other shard is not touched");
    assert_eq!(
        s1.calls(),
        [
            ("GET".to_string(), "/admin/v1/projects".to_string()),
            ("PUT".to_string(), format!("/admin/v1/projects/{name}")),
        ]
    );
    assert_eq!(s1.bodies()[1], json!({"quotas": {"maxRecords": 1000}}));
    assert_eq!(
        s1.project(&name).unwrap()["quotas"]["maxRecords"],
        json!(1000)
    );

    assert_eq!(status["phase"], "Ready");
    assert_eq!(status["shard"], 1);
    assert_eq!(status["endpoint"], ENDPOINT);
    assert_eq!(status["records"], 0);
    assert_eq!(status["collections"], 1);
    assert_eq!(status["bytes"], 8192);
    assert_eq!(status["observedGeneration"], 1);
    let ready = condition(&status, "Ready");
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&json!("True"), &json!("Provisioned"))
    );
    assert_eq!(ready["observedGeneration"], 1);
    assert!(ready["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(condition(&status, "Progressing")["status"], "False");
    assert_eq!(condition(&status, "Degraded")["status"], "False");
    assert_eq!(h.ctx.failed_attempts(NS, &name), 0);
}

#[tokio::test]
async fn status_follows_the_shard_and_is_not_rewritten_when_unchanged() {
    let (_s0, s1, table) = two_shards().await;
    let name = name_on(&table, 1, "stats");
    let mut h = harness_with(table, test_config());
    s1.insert(&name, 10, full_quotas(&json!({})));
    let mut obj = Obj::new(&name, json!({}));

    // existing project with the right quotas: observed from the listing, no PUT, no Event
    let task = h.start(&obj);
    let first = h.expect_status(&obj).await;
    finish(task).await.unwrap();
    assert_eq!(first["records"], 10);
    assert_eq!(
        s1.calls(),
        [("GET".to_string(), "/admin/v1/projects".to_string())],
        "refreshing never opens the project"
    );

    // the figures change on the shard: the status follows; Ready keeps its transition time
    obj.status = Some(first.clone());
    s1.set_records(&name, 250);
    let task = h.start(&obj);
    let second = h.expect_status(&obj).await;
    finish(task).await.unwrap();
    assert_eq!(second["records"], 250);
    assert_eq!(
        condition(&second, "Ready")["lastTransitionTime"],
        condition(&first, "Ready")["lastTransitionTime"]
    );

    // nothing changed: no status write at all
    obj.status = Some(second);
    let task = h.start(&obj);
    assert_eq!(
        finish(task).await.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    h.expect_nothing().await;
}

#[tokio::test]
async fn a_quota_change_is_provisioned_and_announced() {
    let (_s0, s1, table) = two_shards().await;
    let name = name_on(&table, 1, "quota");
    let mut h = harness_with(table, test_config());
    s1.insert(&name, 5, full_quotas(&json!({"maxRecords": 100})));
    let mut obj = Obj::new(&name, json!({"quotas": {"maxRecords": 100}}));

    let task = h.start(&obj);
    let status = h.expect_status(&obj).await;
    finish(task).await.unwrap();
    obj.status = Some(status);
    s1.clear_calls();

    // the spec's quotas change (a new generation)
    obj.generation = 2;
    obj.spec = json!({"quotas": {"maxRecords": 500, "maxCollections": 3}});
    let task = h.start(&obj);
    let note = h.expect_event(&obj, "Normal", "QuotasUpdated", false).await;
    assert_eq!(
        note,
        "quotas on shard 1 changed from maxCollections=none maxRecords=100 maxBytes=none \
         to maxCollections=3 maxRecords=500 maxBytes=none"
    );
    let status = h.expect_status(&obj).await;
    finish(task).await.unwrap();

    assert_eq!(
        s1.calls(),
        [
            ("GET".to_string(), "/admin/v1/projects".to_string()),
            ("PUT".to_string(), format!("/admin/v1/projects/{name}")),
        ]
    );
    assert_eq!(
        s1.bodies()[1],
        json!({"quotas": {"maxRecords": 500, "maxCollections": 3}})
    );
    assert_eq!(
        s1.project(&name).unwrap()["quotas"],
        json!({"maxCollections": 3, "maxRecords": 500, "maxBytes": null})
    );
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(condition(&status, "Ready")["observedGeneration"], 2);
    h.expect_nothing().await;
}

#[tokio::test]
async fn delete_policy_deletes_from_the_shard_then_releases_the_finalizer() {
    let (s0, s1, table) = two_shards().await;
    let name = name_on(&table, 0, "gone");
    let mut h = harness_with(table, test_config());
    s0.insert(&name, 3, full_quotas(&json!({})));
    let mut obj = Obj::new(&name, json!({"deletionPolicy": "Delete"}));
    obj.deleting = true;

    let task = h.start(&obj);
    let status = h.expect_status(&obj).await;
    assert_eq!(status["phase"], "Terminating");
    assert_eq!(condition(&status, "Ready")["reason"], "Terminating");
    // no other resource names the same project
    h.expect_project_list(vec![obj.json()]).await;
    let note = h.expect_event(&obj, "Normal", "Deleted", false).await;
    assert_eq!(note, format!("deleted project {name} from shard 0"));
    h.expect_finalizer_removed(&obj).await;
    assert_eq!(finish(task).await.unwrap(), Action::await_change());
    h.expect_nothing().await;

    assert_eq!(
        s0.calls(),
        [("DELETE".to_string(), format!("/admin/v1/projects/{name}"))]
    );
    assert!(s0.project(&name).is_none());
    // the other shard is asked too (a move that began after the cached table was read
    // would otherwise keep a copy there); it never held the project
    assert_eq!(
        s1.calls(),
        [("DELETE".to_string(), format!("/admin/v1/projects/{name}"))]
    );

    // a retried cleanup after the data is gone: 404 is fine, the finalizer still goes
    let mut again = Obj::new(&name, json!({"deletionPolicy": "Delete"}));
    again.deleting = true;
    again.status = Some(status);
    let task = h.start(&again);
    h.expect_project_list(vec![again.json()]).await;
    // the same Event again within minutes: kube's recorder counts it in the first one's
    // series (keeping that one's note)
    h.expect_event(&again, "Normal", "Deleted", true).await;
    h.expect_finalizer_removed(&again).await;
    finish(task).await.unwrap();
}

#[tokio::test]
async fn delete_policy_keeps_data_another_resource_still_names() {
    let (s0, _s1, table) = two_shards().await;
    let name = name_on(&table, 0, "shared");
    let mut h = harness_with(table, test_config());
    s0.insert(&name, 3, full_quotas(&json!({})));
    let mut obj = Obj::new(&name, json!({"deletionPolicy": "Delete"}));
    obj.deleting = true;
    obj.status = Some(json!({"phase": "Terminating"}));
    let mut alias = Obj::new("alias", json!({"projectName": name}));
    alias.finalizers = vec![FINALIZER];

    let task = h.start(&obj);
    h.expect_project_list(vec![obj.json(), alias.json()]).await;
    let note = h.expect_event(&obj, "Warning", "Retained", false).await;
    assert!(note.contains("team-a/alias"), "{note}");
    h.expect_finalizer_removed(&obj).await;
    finish(task).await.unwrap();
    assert!(s0.calls().is_empty());
    assert!(s0.project(&name).is_some());
}

#[tokio::test]
async fn retain_policy_leaves_the_data_and_releases_the_finalizer() {
    let (s0, s1, table) = two_shards().await;
    let name = name_on(&table, 0, "kept");
    let mut h = harness_with(table, test_config());
    s0.insert(&name, 3, full_quotas(&json!({})));
    // Retain is the default policy
    let mut obj = Obj::new(&name, json!({}));
    obj.deleting = true;

    let task = h.start(&obj);
    let status = h.expect_status(&obj).await;
    assert_eq!(status["phase"], "Terminating");
    let note = h.expect_event(&obj, "Normal", "Retained", false).await;
    assert!(note.contains("deletionPolicy Retain"), "{note}");
    h.expect_finalizer_removed(&obj).await;
    assert_eq!(finish(task).await.unwrap(), Action::await_change());
    h.expect_nothing().await;

    assert!(s0.calls().is_empty() && s1.calls().is_empty());
    assert!(s0.project(&name).is_some());
}

#[tokio::test]
async fn an_unreachable_shard_degrades_and_backs_off_until_it_is_back() {
    let (s0, url0) = FakeShard::start().await;
    let dead = dead_url();
    let table = PlacementTable::from_urls(1, vec![url0.clone(), dead.clone()]).unwrap();
    let name = name_on(&table, 1, "down");
    let mut h = harness_with(table, test_config());
    let mut obj = Obj::new(&name, json!({}));

    let task = h.start(&obj);
    let note = h
        .expect_event(&obj, "Warning", "ShardUnavailable", false)
        .await;
    assert!(
        note.starts_with(&format!("shard 1 ({dead}): admin API unreachable")),
        "{note}"
    );
    let status = h.expect_status(&obj).await;
    let err = finish(task).await.unwrap_err();
    assert_eq!(err.kind(), "shard");
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["shard"], 1);
    let degraded = condition(&status, "Degraded");
    assert_eq!(
        (&degraded["status"], &degraded["reason"]),
        (&json!("True"), &json!("ShardUnavailable"))
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");

    let project = Arc::new(obj.project());
    let mut delays = vec![error_policy(Arc::clone(&project), &err, Arc::clone(&h.ctx))];

    // more failures: the same Event counted in its series, the status already says it
    obj.status = Some(status.clone());
    for _ in 0..2 {
        let task = h.start(&obj);
        h.expect_event(&obj, "Warning", "ShardUnavailable", true)
            .await;
        let err = finish(task).await.unwrap_err();
        delays.push(error_policy(Arc::clone(&project), &err, Arc::clone(&h.ctx)));
    }
    h.expect_nothing().await;
    assert_eq!(
        delays,
        [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s)))
    );
    assert_eq!(h.ctx.failed_attempts(NS, &name), 3);
    let errors = h.ctx.metrics().errors.with_label_values(&["shard"]).get();
    assert_eq!(errors, 3);

    // the shard comes back (at a new address): provisioned, healthy, backoff reset
    let (s1, url1) = FakeShard::start().await;
    let mut back = PlacementTable::from_urls(2, vec![url0, url1]).unwrap();
    back.overrides.insert(name.clone(), 1);
    *h.placement.write().unwrap() = Some(back);
    let task = h.start(&obj);
    h.expect_event(&obj, "Normal", "Provisioned", false).await;
    let healed = h.expect_status(&obj).await;
    finish(task).await.unwrap();
    assert_eq!(healed["phase"], "Ready");
    let degraded = condition(&healed, "Degraded");
    assert_eq!(degraded["status"], "False");
    assert_ne!(
        degraded["lastTransitionTime"],
        Value::Null,
        "a flip records when"
    );
    assert_eq!(h.ctx.failed_attempts(NS, &name), 0);
    assert!(s1.project(&name).is_some());
    assert!(s0.calls().is_empty());
    // after a reset the next failure starts again at 5 s
    assert_eq!(
        error_policy(project, &err, Arc::clone(&h.ctx)),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn invalid_names_fail_once_without_retries_or_shard_calls() {
    let (s0, s1, table) = two_shards().await;
    let mut h = harness_with(table, test_config());
    // "ab" passes nothing: too short for a project (the resource name is fine)
    let mut obj = Obj::new("short", json!({"projectName": "ab"}));

    let task = h.start(&obj);
    let note = h.expect_event(&obj, "Warning", "InvalidName", false).await;
    assert!(note.contains("3 to 512"), "{note}");
    let status = h.expect_status(&obj).await;
    assert_eq!(finish(task).await.unwrap(), Action::await_change());
    assert_eq!(status["phase"], "Failed");
    assert_eq!(condition(&status, "Degraded")["reason"], "InvalidName");
    assert!(status.get("shard").is_none());

    // reconciled again with that status: no new Event, no write
    obj.status = Some(status);
    let task = h.start(&obj);
    assert_eq!(finish(task).await.unwrap(), Action::await_change());
    h.expect_nothing().await;
    assert!(s0.calls().is_empty() && s1.calls().is_empty());
}

#[tokio::test]
async fn a_moving_project_is_reported_and_not_provisioned() {
    let (s0, s1, mut table) = two_shards().await;
    let name = name_on(&table, 0, "mover");
    table.moving.insert(
        name.clone(),
        Move {
            from: 0,
            to: 1,
            phase: MovePhase::Copying,
        },
    );
    let mut h = harness_with(table, test_config());
    // quotas differ, but the mover owns the copies until the move is over
    s0.insert(&name, 42, full_quotas(&json!({})));
    let obj = Obj::new(&name, json!({"quotas": {"maxRecords": 7}}));

    let task = h.start(&obj);
    let status = h.expect_status(&obj).await;
    assert_eq!(
        finish(task).await.unwrap(),
        Action::requeue(Duration::from_secs(10))
    );
    assert_eq!(status["phase"], "Moving");
    assert_eq!(status["shard"], 0);
    assert_eq!(status["records"], 42);
    let progressing = condition(&status, "Progressing");
    assert_eq!(
        (&progressing["status"], &progressing["reason"]),
        (&json!("True"), &json!("Moving"))
    );
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(
        s0.calls(),
        [("GET".to_string(), "/admin/v1/projects".to_string())]
    );
    assert!(s1.calls().is_empty());
}

#[tokio::test]
async fn unmanaged_projects_are_reported_and_adopted() {
    let (s0, s1, table) = two_shards().await;
    let config = ReconcileConfig {
        adopt: true,
        ..test_config()
    };
    let mut h = harness_with(table, config);
    s0.insert("managed-one", 1, full_quotas(&json!({})));
    s0.insert("orphan-a", 1, full_quotas(&json!({"maxBytes": 4096})));
    s1.insert("Upper_Case", 1, full_quotas(&json!({})));
    s1.state.lock().unwrap().projects.insert(
        "half-moved".into(),
        project_info("half-moved", 1, full_quotas(&json!({})), "fenced"),
    );
    let managed = Obj::new("managed-one", json!({}));

    let ctx = Arc::clone(&h.ctx);
    let task = tokio::spawn(async move { report_unmanaged(&ctx, "quiver").await });
    h.expect_project_list(vec![managed.json()]).await;
    let seen = h
        .expect(
            Method::POST,
            "/apis/quiver.dev/v1alpha1/namespaces/quiver/projects",
        )
        .await;
    assert_eq!(seen.query, pairs(&[("fieldManager", "quiver-operator")]));
    let created = &seen.body.clone();
    assert_eq!(created["metadata"]["name"], "orphan-a");
    assert_eq!(created["metadata"]["namespace"], "quiver");
    assert_eq!(
        created["metadata"]["annotations"],
        json!({"quiver.dev/adopted": "true"})
    );
    assert_eq!(created["spec"]["deletionPolicy"], "Retain");
    assert_eq!(created["spec"]["quotas"], json!({"maxBytes": 4096}));
    seen.respond(201, created);

    let unmanaged = tokio::time::timeout(PATIENCE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // the fenced copy is half of a move; "Upper_Case" is reported but cannot be adopted
    assert_eq!(unmanaged, ["Upper_Case", "orphan-a"]);
    assert_eq!(h.ctx.metrics().unmanaged.get(), 2);
    h.expect_nothing().await;
}
