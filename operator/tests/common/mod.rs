//! End-to-end harness for the operator: real `quiver-tenant-server` shards and a real
//! `quiver-router`, all on loopback (adapted from router/tests/common). Every process gets
//! a free port, its own temporary directories and a log file; processes are SIGKILLed when
//! their handle drops (the log tails are printed when a test panics) and, on Linux, when
//! the thread that spawned them (the test's) dies.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

/// The operator binary; the tenant server and the router are its siblings.
pub const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_quiver-operator");

const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 5;

/// A binary built next to the operator's (same target directory and profile).
fn sibling_bin(name: &str, package: &str) -> PathBuf {
    let bin =
        Path::new(OPERATOR_BIN).with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        panic!(
            "{} is missing: the operator's end-to-end tests run the real binaries. Build \
             them first with `cargo build --release -p quiver-tenant-server -p quiver-router` \
             (same CARGO_TARGET_DIR and profile as the tests; here: package {package}).",
            bin.display()
        );
    }
    bin
}

pub fn tenant_server_bin() -> PathBuf {
    sibling_bin("quiver-tenant-server", "quiver-tenant-server")
}

pub fn router_bin() -> PathBuf {
    sibling_bin("quiver-router", "quiver-router")
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
        .timeout(Duration::from_secs(60))
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

/// Spawns `bin args…` with stdout and stderr to `log`. On Linux the child gets SIGKILL
/// when the thread that spawned it goes away, so even an aborted run leaves no server.
fn spawn(bin: &Path, args: &[String], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("OTEL_SDK_DISABLED", "true")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("CHROMA_HOST")
        .env_remove("CHROMA_PORT")
        .env_remove("WORKSPACE_DIR")
        .env_remove("QUIVER_ADMIN_TOKEN")
        .env_remove("QUIVER_SHARDS")
        .env_remove("QUIVER_PLACEMENT_FILE")
        .env_remove("QUIVER_PLACEMENT_CONFIGMAP")
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
            .prefix(&format!("quiver-op-e2e-shard{ordinal}-"))
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
            if !new_port {
                // the port is the shard's identity in the placement table: keep trying it
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                // most likely taken between probing and binding: try another
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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

    pub fn http(&self) -> Http {
        Http::new(self.base_url())
    }

    /// `GET /admin/v1/projects`: every project the shard holds, as (name, state).
    pub async fn admin_projects(&self) -> Vec<(String, String)> {
        let r = self.http().get("/admin/v1/projects").await;
        assert_eq!(
            r.status, 200,
            "GET /admin/v1/projects on shard {}: {}",
            self.ordinal, r.text
        );
        r.body["projects"]
            .as_array()
            .unwrap_or_else(|| panic!("projects list: {}", r.text))
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().expect("name").to_string(),
                    p["state"].as_str().expect("state").to_string(),
                )
            })
            .collect()
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
                    child: Some(spawn(&router_bin(), &all, &log)),
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
    pub fn is_ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a 2xx and returns the JSON body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(
            self.is_ok(),
            "expected 2xx, got {}: {}",
            self.status,
            self.text
        );
        &self.body
    }
}

/// A client for one base URL. Transport failures come back as status 0.
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

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let started = Instant::now();
        match rb.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let text = r.text().await.unwrap_or_default();
                Resp {
                    status,
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    headers,
                    text,
                    elapsed: started.elapsed(),
                }
            }
            Err(e) => Resp {
                status: 0,
                headers: Default::default(),
                body: Value::Null,
                text: format!("{method} {path}: {e}"),
                elapsed: started.elapsed(),
            },
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }
}
