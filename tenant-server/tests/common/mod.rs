//! Test harness: spawns the real `quiver-tenant-server` binary on a free port with a
//! temporary workspace, and talks to it over HTTP. Responses are kept as raw JSON
//! (`serde_json::Value`) so the tests check the exact wire shapes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_quiver-tenant-server");

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP response: status, headers, the body parsed as JSON (`Value::Null` when the
/// body is not JSON) and the raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a 200 and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.status, 200,
            "expected 200, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.body.is_object(),
            "expected a JSON object: {}",
            self.text
        );
        &self.body
    }

    /// Asserts a Chroma-style error: the status, `{"error": kind, "message": ...}` with no
    /// other keys, and the `chroma-trace-id` header. Returns the message.
    #[track_caller]
    pub fn err(&self, status: u16, kind: &str) -> String {
        assert_eq!(
            self.status, status,
            "expected {status} {kind}, got {}: {}",
            self.status, self.text
        );
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not a JSON object: {:?}", self.text));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["error", "message"], "error body keys: {}", self.text);
        assert_eq!(obj["error"], json!(kind), "error kind: {}", self.text);
        let msg = obj["message"]
            .as_str()
            .unwrap_or_else(|| panic!("message is not a string: {}", self.text))
            .to_string();
        assert!(!msg.is_empty(), "empty error message");
        assert!(
            self.header("chroma-trace-id").is_some(),
            "error response without a chroma-trace-id header: {:?}",
            self.headers
        );
        msg
    }
}

pub struct TestServer {
    child: Option<Child>,
    port: u16,
    workspace: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _workspace_dir: Option<tempfile::TempDir>,
    log_dir: tempfile::TempDir,
    starts: usize,
    pub client: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl TestServer {
    /// Starts a server on a fresh temporary workspace with extra flags.
    pub async fn start(extra: &[&str]) -> TestServer {
        TestServer::start_env(extra, &[]).await
    }

    /// Starts a server on a fresh temporary workspace with extra flags and environment
    /// variables.
    pub async fn start_env(extra: &[&str], env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("quiver-ws-")
            .tempdir()
            .expect("tempdir");
        let workspace = dir.path().to_path_buf();
        let mut s = TestServer::new(workspace, extra);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s._workspace_dir = Some(dir);
        s.spawn().await;
        s
    }

    /// Starts a server on an existing workspace directory (not deleted on drop).
    pub async fn start_in(workspace: &Path, extra: &[&str]) -> TestServer {
        let mut s = TestServer::new(workspace.to_path_buf(), extra);
        s.spawn().await;
        s
    }

    fn new(workspace: PathBuf, extra: &[&str]) -> TestServer {
        TestServer {
            child: None,
            port: 0,
            workspace,
            args: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            _workspace_dir: None,
            log_dir: tempfile::Builder::new()
                .prefix("quiver-log-")
                .tempdir()
                .expect("tempdir"),
            starts: 0,
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("client"),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir
            .path()
            .join(format!("server-{}.log", self.starts))
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        for _attempt in 0..5 {
            self.starts += 1;
            self.port = free_port();
            let log = std::fs::File::create(self.log_path()).expect("log file");
            let mut cmd = Command::new(BIN);
            cmd.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--workspace")
                .arg(&self.workspace)
                .args(&self.args)
                .env_remove("WORKSPACE_DIR")
                .env_remove("CHROMA_HOST")
                .env_remove("CHROMA_PORT")
                .env_remove("QUIVER_ADMIN_TOKEN")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("RUST_LOG", "info,hnsw_rs=warn,anndists=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            let child = cmd.spawn().expect("cannot spawn quiver-tenant-server");
            self.child = Some(child);
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    // most likely the port was taken between probing and binding; retry
                    eprintln!(
                        "server exited during start ({status}):\n{}",
                        self.log_tail()
                    );
                    self.child = None;
                    break;
                }
                if let Ok(r) = self
                    .client
                    .get(self.url("/api/v1/heartbeat"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        return;
                    }
                }
                if Instant::now() > deadline {
                    self.kill9();
                    panic!(
                        "server did not answer the heartbeat within {START_TIMEOUT:?}:\n{}",
                        self.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("server failed to start 5 times");
    }

    /// Starts the server again on the same workspace (it must be stopped).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server not running").id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// SIGKILL: no graceful shutdown at all.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful shutdown); waits for the exit and returns its status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server not running");
        // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "server did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The last few KiB of the current server log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    // ---- requests ----

    pub async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Resp {
        self.request_with(method, path, body, &[]).await
    }

    /// A request with extra headers (such as `authorization`).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.client.request(method.clone(), self.url(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}\n{}", self.log_tail()));
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::POST, path, Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.request(Method::POST, path, Some(body.into())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::PUT, path, Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::PATCH, path, Some(serde_json::to_vec(body).unwrap()))
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None).await
    }

    pub async fn delete_json(&self, path: &str, body: &Value) -> Resp {
        self.request(
            Method::DELETE,
            path,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// Sends `method path` byte for byte (no URL normalisation, no percent-decoding by the
    /// client), for paths such as `/api/v1/../collections`.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.unwrap_or(b"");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read response");
        parse_raw_response(&buf)
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
        r.ok()["collection"].clone()
    }

    pub async fn collection(&self, project: &str, name: &str) -> Value {
        self.get(&cpath(project, name, "")).await.ok()["collection"].clone()
    }

    pub async fn count(&self, project: &str, coll: &str) -> u64 {
        self.get(&cpath(project, coll, "/count")).await.ok()["count"]
            .as_u64()
            .expect("count")
    }

    pub async fn add(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/add"), body)
            .await
            .ok()
            .clone()
    }

    /// POST …/get with the given body; returns `results`.
    pub async fn get_records(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/get"), body).await.ok()["results"].clone()
    }

    pub async fn query(&self, project: &str, coll: &str, body: &Value) -> Value {
        self.post(&cpath(project, coll, "/query"), body).await.ok()["results"].clone()
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "---- server log tail ({}) ----\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
        self.kill9();
    }
}

fn parse_raw_response(buf: &[u8]) -> Resp {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header terminator in response");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut raw_body = buf[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = raw_body.as_slice();
        while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..pos]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[pos + 2..pos + 2 + size]);
            rest = &rest[pos + 2 + size + 2..];
        }
        raw_body = out;
    }
    let text = String::from_utf8_lossy(&raw_body).to_string();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
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

/// A JSON list of numbers as f32 (panics on anything else).
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")) as f32)
        .collect()
}

/// Ids of a GetResult (or one inner list of a QueryResult) as strings.
pub fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("id not a string: {x}"))
                .to_string()
        })
        .collect()
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
        let auth = self.token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let body = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.s
            .request_with(method, &format!("/admin/v1{path}"), body, &headers)
            .await
    }
}
