//! Test harness: runs the real `quiver-tenant-server` binary on a free port with a
//! temporary workspace (through the shared test kit, `quiver-testkit`, which also kills it
//! with the test and prints its log tail when one fails), and talks to it over HTTP.
//! Responses are kept as raw JSON (`serde_json::Value`) so the tests check the exact wire
//! shapes.

#![allow(dead_code, unused_imports)]

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

pub use quiver_testkit::assertions::*;
pub use quiver_testkit::http::{Binary, Resp};
pub use quiver_testkit::json::{f32s, strings};
use quiver_testkit::TenantServer;

pub const BIN: &str = env!("CARGO_BIN_EXE_quiver-tenant-server");

/// How long a request may take (queries over large collections in debug-ish builds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A tenant server as these tests run it (log level `info`; a restart takes a new port),
/// with the API helpers of the tests on top of the kit's handle.
pub struct TestServer(TenantServer);

impl Deref for TestServer {
    type Target = TenantServer;

    fn deref(&self) -> &TenantServer {
        &self.0
    }
}

impl DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut TenantServer {
        &mut self.0
    }
}

impl TestServer {
    fn builder(extra: &[&str]) -> quiver_testkit::TenantServerBuilder {
        TenantServer::builder(BIN)
            .args(extra)
            .rust_log("info,hnsw_rs=warn,anndists=warn")
            .client(quiver_testkit::http::http_client(REQUEST_TIMEOUT))
    }

    /// Starts a server on a fresh temporary workspace with extra flags.
    pub async fn start(extra: &[&str]) -> TestServer {
        TestServer::start_env(extra, &[]).await
    }

    /// Starts a server on a fresh temporary workspace with extra flags and environment
    /// variables.
    pub async fn start_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        TestServer(TestServer::builder(extra).env(env).start().await)
    }

    /// Starts a server on an existing workspace directory (not deleted on drop).
    pub async fn start_in(workspace: &Path, extra: &[&str]) -> TestServer {
        TestServer(
            TestServer::builder(extra)
                .workspace(workspace)
                .start()
                .await,
        )
    }

    // ---- API helpers ----

    /// Creates a collection (asserting success) and returns the Collection JSON.
    pub async fn create_collection(&self, project: &str, name: &str, extra: Value) -> Value {
        let mut body = json!({ "name": name });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let r = self
            .post(&format!("/api/v1/{project}/collections"), &body)
            .await;
        r.ok_object()["collection"].clone()
    }

    pub async fn collection(&self, project: &str, name: &str) -> Value {
        self.get(&cpath(project, name, "")).await.ok_object()["collection"].clone()
    }

    pub async fn count(&self, project: &str, coll: &str) -> u64 {
        self.get(&cpath(project, coll, "/count")).await.ok_object()["count"]
            .as_u64()
            .expect("count")
    }

    pub async fn add(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/add"), body)
            .await
            .ok_object()
            .clone()
    }

    /// POST …/get with the given body; returns `results`.
    pub async fn get_records(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/get"), body)
            .await
            .ok_object()["results"]
            .clone()
    }

    pub async fn query(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/query"), body)
            .await
            .ok_object()["results"]
            .clone()
    }

    /// Polls the collection until `indexing.unindexed` is 0 (the collection must be loaded).
    pub async fn wait_indexed(&self, project: &str, coll: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.collection(project, coll).await;
            if c["indexing"]["unindexed"] == json!(0) {
                return;
            }
            if c["indexing"].is_null() {
                // not loaded yet: any read loads it
                self.count(project, coll).await;
                self.get_records(project, coll, &json!({"limit": 1})).await;
            }
            assert!(
                Instant::now() < deadline,
                "collection {project}/{coll} not indexed in {timeout:?}: {c}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `/api/v1/{project}/collections/{coll}{suffix}`.
pub fn cpath(project: &str, coll: &str, suffix: &str) -> String {
    format!("/api/v1/{project}/collections/{coll}{suffix}")
}

/// Percent-encodes a query-string value.
pub fn qs(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Packed little-endian float32, base64 (the alternative embedding encoding).
pub fn b64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Ids of a GetResult (or one inner list of a QueryResult) as strings.
pub fn ids_of(v: &Value) -> Vec<String> {
    strings(v)
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---- brute-force distances with Chroma's definitions ----

pub fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum()
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let na = dot(a, a).sqrt();
    let nb = dot(b, b).sqrt();
    1.0 - dot(a, b) / (na * nb)
}

pub fn ip(a: &[f32], b: &[f32]) -> f64 {
    1.0 - dot(a, b)
}

pub fn distance(space: &str, a: &[f32], b: &[f32]) -> f64 {
    match space {
        "l2" => l2(a, b),
        "cosine" => cosine(a, b),
        "ip" => ip(a, b),
        other => panic!("unknown space {other}"),
    }
}

/// Indices of the `k` nearest of `data` to `q`, nearest first.
pub fn brute_force(space: &str, data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i, distance(space, v, q)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Lists every entry (recursively) under `dir`, relative to it.
pub fn list_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Admin API calls (`/admin/v1`), with the token when the server has one. Test files add
/// their own helpers in further `impl Admin` blocks.
pub struct Admin<'a> {
    pub s: &'a TestServer,
    pub token: Option<&'a str>,
}

impl<'a> Admin<'a> {
    pub fn open(s: &'a TestServer) -> Admin<'a> {
        Admin { s, token: None }
    }

    pub fn with_token(s: &'a TestServer, token: &'a str) -> Admin<'a> {
        Admin {
            s,
            token: Some(token),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let auth = self.authorization();
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.s
            .http()
            .send(method, &format!("/admin/v1{path}"), body, &auth.headers())
            .await
    }

    /// A request with a binary body (or none) of `content_type`, keeping the answer's
    /// bytes (snapshots, change streams).
    pub async fn binary(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Binary {
        let auth = self.authorization();
        self.s
            .http()
            .send_binary(
                method,
                &format!("/admin/v1{path}"),
                body.map(|b| (b, content_type)),
                &auth.headers(),
            )
            .await
    }

    fn authorization(&self) -> Authorization {
        Authorization(self.token.map(|t| format!("Bearer {t}")))
    }
}

/// The `authorization` header of an [`Admin`], if it has a token.
struct Authorization(Option<String>);

impl Authorization {
    fn headers(&self) -> Vec<(&str, &str)> {
        self.0
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default()
    }
}
