//! End-to-end harness: real `quiver-tenant-server` shards and a real `quiver-router`, all
//! on loopback. Every process gets a free port, its own temporary directories and a log
//! file; processes are SIGKILLed when their handle drops (also while a test panics, when
//! the log tails are printed) and, on Linux, when the test process itself dies.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quiver_placement::PlacementTable;
use reqwest::Method;
use serde_json::{json, Value};

pub const ROUTER_BIN: &str = env!("CARGO_BIN_EXE_quiver-router");

const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// The tenant server binary: the sibling of the router binary in the target directory.
pub fn tenant_server_bin() -> PathBuf {
    let bin = Path::new(ROUTER_BIN).with_file_name(format!(
        "quiver-tenant-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    if !bin.is_file() {
        panic!(
            "{} is missing: the router's end-to-end tests need the tenant server binary. \
             Build it with `cargo build --release -p quiver-tenant-server` (same \
             CARGO_TARGET_DIR and profile as the tests), or run `cargo test --release \
             --workspace`, which builds it too.",
            bin.display()
        );
    }
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// The last few KiB of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Spawns `bin args…` with stdout and stderr to `log`. On Linux the child is killed when
/// the thread that spawned it (the test's) goes away, so even an aborted test run leaves
/// no server behind.
/// Extra environment for every process this test binary spawns, applied last (a test
/// binary that exports spans sets the OTLP variables here).
static CHILD_ENV: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

pub fn set_child_env(vars: &[(&str, &str)]) {
    let mut env = CHILD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    env.clear();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        // no span export: the router passes a client's trace context on as it came (with
        // export on, its own client span would become the shard's parent)
        .env("OTEL_SDK_DISABLED", "true")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("CHROMA_HOST")
        .env_remove("CHROMA_PORT")
        .env_remove("WORKSPACE_DIR")
        .env_remove("QUIVER_SHARDS")
        .env_remove("QUIVER_PLACEMENT_FILE")
        .env_remove("QUIVER_PLACEMENT_CONFIGMAP")
        .envs(
            CHILD_ENV
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        )
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()))
}

/// One child process with its log; SIGKILLed on drop.
struct Proc {
    what: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL (std's `Child::kill`), then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log tail ({}) ----\n{}",
                self.what,
                self.log.display(),
                log_tail(&self.log)
            );
        }
        self.kill();
    }
}

/// Polls `url` until it answers 200, the process exits (`Err`), or the start timeout.
async fn wait_until_ok(client: &reqwest::Client, proc_: &mut Proc, url: &str) -> Result<(), ()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = proc_.exited() {
            eprintln!(
                "{} exited during start ({status}):\n{}",
                proc_.what,
                log_tail(&proc_.log)
            );
            proc_.child = None;
            return Err(());
        }
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{} did not answer {url} within {START_TIMEOUT:?}:\n{}",
                proc_.what,
                log_tail(&proc_.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------
// shards

/// A tenant server on its own workspace. Restarts keep the port and the workspace.
pub struct Shard {
    pub ordinal: u32,
    port: u16,
    starts: usize,
    proc_: Proc,
    logs: PathBuf,
    workspace: tempfile::TempDir,
    client: reqwest::Client,
}

impl Shard {
    pub async fn start(ordinal: u32, logs: &Path) -> Shard {
        let workspace = tempfile::Builder::new()
            .prefix(&format!("quiver-e2e-shard{ordinal}-"))
            .tempdir()
            .expect("tempdir");
        let mut s = Shard {
            ordinal,
            port: 0,
            starts: 0,
            proc_: Proc {
                what: format!("shard {ordinal}"),
                child: None,
                log: PathBuf::new(),
            },
            logs: logs.to_path_buf(),
            workspace,
            client: http_client(),
        };
        s.spawn(true).await;
        s
    }

    async fn spawn(&mut self, new_port: bool) {
        assert!(
            self.proc_.child.is_none(),
            "shard {} is running",
            self.ordinal
        );
        for _ in 0..START_ATTEMPTS {
            if new_port {
                self.port = free_port();
            }
            self.starts += 1;
            self.proc_.log = self
                .logs
                .join(format!("shard{}-{}.log", self.ordinal, self.starts));
            let args: Vec<String> = [
                "--host",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--workspace",
                &self.workspace.path().display().to_string(),
                "--allow-reset",
                "--block-cache-mb",
                "32",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            self.proc_.child = Some(spawn(&tenant_server_bin(), &args, &self.proc_.log));
            let url = self.url("/api/v1/heartbeat");
            if wait_until_ok(&self.client, &mut self.proc_, &url)
                .await
                .is_ok()
            {
                return;
            }
            // the port was most likely taken between probing and binding: try again
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "shard {} failed to start {START_ATTEMPTS} times",
            self.ordinal
        );
    }

    /// SIGKILL: no graceful shutdown at all.
    pub fn kill(&mut self) {
        self.proc_.kill();
    }

    /// Starts the shard again on the same port and workspace (it must be stopped).
    pub async fn restart(&mut self) {
        self.spawn(false).await;
    }

    pub fn is_running(&mut self) -> bool {
        self.proc_.child.is_some() && self.proc_.exited().is_none()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    pub fn workspace(&self) -> &Path {
        self.workspace.path()
    }

    pub fn has_project_dir(&self, project: &str) -> bool {
        self.workspace().join(project).is_dir()
    }

    /// The names of the directories in the workspace (one per project).
    pub fn project_dirs(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.workspace())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc_.log).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------
// router

/// A `quiver-router` process.
pub struct RouterProc {
    port: u16,
    proc_: Proc,
}

impl RouterProc {
    /// Starts the router with `args` (the placement source and any tuning) and waits until
    /// `/readyz` answers 200.
    pub async fn start(args: &[String], logs: &Path) -> RouterProc {
        let client = http_client();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let log = logs.join(format!("router-{port}.log"));
            let mut all: Vec<String> = vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
            ];
            all.extend(args.iter().cloned());
            let mut r = RouterProc {
                port,
                proc_: Proc {
                    what: "router".into(),
                    child: Some(spawn(Path::new(ROUTER_BIN), &all, &log)),
                    log,
                },
            };
            let url = r.url("/readyz");
            if wait_until_ok(&client, &mut r.proc_, &url).await.is_ok() {
                return r;
            }
            eprintln!("router start attempt {attempt} failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("router failed to start {START_ATTEMPTS} times");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc_.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        self.proc_.kill();
    }
}

// ---------------------------------------------------------------------------------------
// a whole cluster

/// Where the router takes its placement from.
pub enum Source {
    /// `--shard` for every shard, in ordinal order.
    Static,
    /// `--placement-file` with this table (the shards' URLs are filled in) and poll period.
    File { table: PlacementTable, poll_ms: u64 },
}

/// N shards and one router. Fields drop in order: the router first, then the shards.
pub struct Cluster {
    pub router: RouterProc,
    pub shards: Vec<Shard>,
    pub http: Http,
    placement_file: Option<PathBuf>,
    // last: the directory holding the logs and the placement file
    dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: u32, source: Source) -> Cluster {
        Cluster::start_with(n, source, &[]).await
    }

    /// Like [`Cluster::start`], with extra router flags.
    pub async fn start_with(n: u32, source: Source, router_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("quiver-e2e-")
            .tempdir()
            .expect("tempdir");
        let mut shards = Vec::new();
        for ordinal in 0..n {
            shards.push(Shard::start(ordinal, dir.path()).await);
        }
        let mut args: Vec<String> = Vec::new();
        let mut placement_file = None;
        match source {
            Source::Static => {
                for s in &shards {
                    args.push("--shard".into());
                    args.push(s.base_url());
                }
            }
            Source::File { table, poll_ms } => {
                let path = dir.path().join("placement.json");
                let table = PlacementTable {
                    shards: shards.iter().map(Shard::base_url).collect(),
                    ..table
                };
                write_atomically(&path, &table.to_json());
                args.push("--placement-file".into());
                args.push(path.display().to_string());
                args.push("--placement-poll-ms".into());
                args.push(poll_ms.to_string());
                placement_file = Some(path);
            }
        }
        args.extend(router_args.iter().map(|s| s.to_string()));
        let router = RouterProc::start(&args, dir.path()).await;
        let http = Http::new(router.url(""));
        Cluster {
            router,
            shards,
            http,
            placement_file,
            dir,
        }
    }

    pub fn shard_urls(&self) -> Vec<String> {
        self.shards.iter().map(Shard::base_url).collect()
    }

    /// Replaces the placement file with `table` (atomically, as kubelet and editors do).
    pub fn write_placement(&self, table: &PlacementTable) {
        let path = self.placement_file.as_ref().expect("no placement file");
        write_atomically(path, &table.to_json());
    }

    /// Writes `text` over the placement file in place (may be invalid on purpose).
    pub fn write_placement_raw(&self, text: &str) {
        let path = self.placement_file.as_ref().expect("no placement file");
        std::fs::write(path, text).expect("write placement file");
    }

    /// Which shards hold a directory for `project`.
    pub fn shards_holding(&self, project: &str) -> Vec<u32> {
        self.shards
            .iter()
            .filter(|s| s.has_project_dir(project))
            .map(|s| s.ordinal)
            .collect()
    }

    /// Polls `GET /placement` until its epoch is `epoch`; panics after `within`.
    pub async fn wait_for_epoch(&self, epoch: u64, within: Duration) -> PlacementTable {
        let deadline = Instant::now() + within;
        loop {
            let r = self.http.get("/placement").await;
            if r.status == 200 {
                let t = PlacementTable::from_json(&r.text).expect("GET /placement is a table");
                if t.epoch == epoch {
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "epoch {epoch} not in force within {within:?}; GET /placement: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /readyz` until it answers `status`; panics after `within`.
    pub async fn wait_for_readyz(&self, status: u16, within: Duration) -> Resp {
        let deadline = Instant::now() + within;
        loop {
            let r = self.http.get("/readyz").await;
            if r.status == status {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not turn {status} within {within:?}: {} {}",
                r.status,
                r.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).expect("write placement file");
    std::fs::rename(&tmp, path).expect("rename placement file");
}

// ---------------------------------------------------------------------------------------
// HTTP

/// One response: status, headers, the body as JSON (`Null` when it is not JSON) and text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
    pub elapsed: Duration,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ordinal in `x-quiver-shard`, if any.
    pub fn shard(&self) -> Option<u32> {
        self.header("x-quiver-shard").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("x-quiver-shard is not an ordinal: {v:?}"))
        })
    }

    /// Asserts a 2xx and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            (200..300).contains(&self.status),
            "expected 2xx, got {}: {}",
            self.status,
            self.text
        );
        &self.body
    }

    /// Asserts a 2xx answered by shard `ordinal` and returns the JSON body.
    #[track_caller]
    pub fn ok_from(&self, ordinal: u32) -> &Value {
        let body = self.ok();
        assert_eq!(
            self.shard(),
            Some(ordinal),
            "x-quiver-shard of a 2xx answer (expected shard {ordinal}): {:?}",
            self.headers
        );
        body
    }

    /// Asserts a JSON error `{"error": kind, "message": …}` with `status`; returns the body.
    #[track_caller]
    pub fn err(&self, status: u16, kind: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "expected {status} {kind}, got {}: {}",
            self.status, self.text
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error without a JSON content type: {:?}",
            self.headers
        );
        assert_eq!(self.body["error"], json!(kind), "error kind: {}", self.text);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.text
        );
        &self.body
    }
}

/// A client for one base URL (the router's, normally).
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(base: String) -> Http {
        Http {
            base,
            client: http_client(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let started = Instant::now();
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let elapsed = started.elapsed();
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
            text,
            elapsed,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }
}

// ---------------------------------------------------------------------------------------
// data

/// `n` project names (valid for both APIs) starting from `prefix`.
pub fn project_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// The first name `{prefix}-{i}` whose home among `shard_count` shards satisfies `pred`.
pub fn name_where(prefix: &str, shard_count: u32, pred: impl Fn(u32) -> bool) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| pred(quiver_placement::home_ordinal(n, shard_count)))
        .expect("some name hashes there")
}

/// A list of numbers as f32 (panics on anything else).
pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")) as f32)
        .collect()
}

/// A list of strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// admin API and metrics

impl Shard {
    /// A client for this shard's own address: its admin API, or data calls that bypass the
    /// router.
    pub fn http(&self) -> Http {
        Http::new(self.base_url())
    }

    /// `POST /admin/v1/projects/{project}/{action}` on this shard (`pause`, `resume`,
    /// `fence`), with `body` or none; asserts a 200 and returns the JSON answer.
    pub async fn admin_post(&self, project: &str, action: &str, body: Option<&Value>) -> Value {
        let path = format!("/admin/v1/projects/{project}/{action}");
        let r = self
            .http()
            .send(
                Method::POST,
                &path,
                body.map(|b| b.to_string().into_bytes()),
                &[],
            )
            .await;
        assert_eq!(
            r.status, 200,
            "POST {path} on shard {}: {}",
            self.ordinal, r.text
        );
        r.body
    }

    /// `GET /admin/v1/projects/{project}` on this shard; asserts a 200 (ProjectInfo).
    pub async fn admin_info(&self, project: &str) -> Value {
        let path = format!("/admin/v1/projects/{project}");
        let r = self.http().get(&path).await;
        assert_eq!(
            r.status, 200,
            "GET {path} on shard {}: {}",
            self.ordinal, r.text
        );
        r.body
    }
}

/// The value of one series in a Prometheus text exposition, named as it is printed
/// (`quiver_router_retries_total{reason="paused"}`); `None` when it is absent.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

impl Http {
    /// Like [`Http::send`] with a JSON body, but sent with `Transfer-Encoding: chunked`
    /// (no `Content-Length`), in two chunks: the framing of a client that streams its body.
    pub async fn send_chunked(&self, method: Method, path: &str, body: Vec<u8>) -> Resp {
        use http_body_util::{BodyExt, StreamBody};
        use hyper::body::Frame;
        type Chunks = futures_util::stream::Iter<
            std::vec::IntoIter<Result<Frame<bytes::Bytes>, std::convert::Infallible>>,
        >;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<StreamBody<Chunks>>();
        let body = bytes::Bytes::from(body);
        let half = body.len() / 2;
        let chunks: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(body.slice(..half))),
            Ok(Frame::data(body.slice(half..))),
        ];
        let req = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(StreamBody::new(futures_util::stream::iter(chunks)))
            .expect("request");
        let started = Instant::now();
        let exchange = async {
            let r = client.request(req).await?;
            let (parts, incoming) = r.into_parts();
            let bytes = incoming.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(Duration::from_secs(120), exchange)
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: timed out"))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            elapsed: started.elapsed(),
        }
    }
}
