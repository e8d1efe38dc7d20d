//! A real `quiver-tenant-server` process on a free port and its own workspace.
//!
//! Why one handle: the tenant server's own tests, the router's and the operator's
//! end-to-end tests all run it, differing only in flags, log level and whether a restart
//! keeps the port (a shard's port is its identity in a placement table; a lone server's
//! is not). Those differences are builder options; starting, waiting for the heartbeat,
//! retrying a taken port, stopping and the log handling are written once, on top of
//! [`Proc`].

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::http::{http_client, Http, Resp, REQUEST_TIMEOUT};
use crate::process::{isolate, Proc, Stopped, START_ATTEMPTS};

/// How long a SIGTERMed server may take to shut down before the test fails.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a [`TenantServer`]; from [`TenantServer::builder`].
#[must_use]
pub struct TenantServerBuilder {
    bin: PathBuf,
    ordinal: Option<u32>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    rust_log: String,
    workspace: Option<PathBuf>,
    workspace_prefix: String,
    log_dir: Option<PathBuf>,
    same_port_pause: Option<Duration>,
    client: Option<reqwest::Client>,
    tolerant: bool,
}

impl TenantServerBuilder {
    /// Shard `ordinal` of a cluster: named so in messages and log files, its workspace
    /// prefixed `{prefix}-shard{ordinal}-`, and restarted on the same port.
    pub fn shard(mut self, ordinal: u32, prefix: &str) -> Self {
        self.ordinal = Some(ordinal);
        self.workspace_prefix = format!("{prefix}-shard{ordinal}-");
        self.same_port_pause = Some(Duration::from_millis(100));
        self
    }

    /// Extra flags after `--host`, `--port` and `--workspace`.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// Environment variables for the server (after the runner's are cleaned up).
    pub fn env(mut self, vars: &[(&str, &str)]) -> Self {
        self.env
            .extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// `RUST_LOG` of the server (default `warn`).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_string();
        self
    }

    /// Runs on this existing workspace, which is left in place on drop (default: a fresh
    /// temporary one, deleted on drop).
    pub fn workspace(mut self, dir: &Path) -> Self {
        self.workspace = Some(dir.to_path_buf());
        self
    }

    /// Where the log files go (default: a temporary directory of the server's own).
    pub fn log_dir(mut self, dir: &Path) -> Self {
        self.log_dir = Some(dir.to_path_buf());
        self
    }

    /// A restart keeps the port, trying it again after `pause` while it is taken (a
    /// shard's port is its address in the placement table). Without this (the default
    /// for a lone server) every start takes a new free port.
    pub fn restart_on_same_port(mut self, pause: Duration) -> Self {
        self.same_port_pause = Some(pause);
        self
    }

    /// The client of [`TenantServer::http`] and the request helpers (default: one with
    /// [`REQUEST_TIMEOUT`]).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// [`TenantServer::http`] answers transport failures with status 0 (see
    /// [`Http::tolerant`]).
    pub fn tolerant(mut self) -> Self {
        self.tolerant = true;
        self
    }

    /// Starts the server and waits until its heartbeat answers.
    pub async fn start(self) -> TenantServer {
        let (workspace, workspace_dir) = match self.workspace {
            Some(dir) => (dir, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix(&self.workspace_prefix)
                    .tempdir()
                    .expect("tempdir");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let (log_dir, log_tempdir) = match self.log_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("quiver-log-")
                    .tempdir()
                    .expect("tempdir");
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let mut s = TenantServer {
            ordinal: self.ordinal.unwrap_or(0),
            name: match self.ordinal {
                Some(n) => format!("shard {n}"),
                None => "server".into(),
            },
            log_prefix: match self.ordinal {
                Some(n) => format!("shard{n}-"),
                None => "server-".into(),
            },
            bin: self.bin,
            port: 0,
            starts: 0,
            proc_: None,
            log: PathBuf::new(),
            args: self.args,
            env: self.env,
            rust_log: self.rust_log,
            same_port_pause: self.same_port_pause,
            client: self.client.unwrap_or_else(|| http_client(REQUEST_TIMEOUT)),
            tolerant: self.tolerant,
            log_dir,
            workspace,
            _workspace_dir: workspace_dir,
            _log_dir: log_tempdir,
        };
        s.spawn(true).await;
        s
    }
}

/// A tenant server process; SIGKILLed on drop (its log tail printed if a test panics).
/// Fields drop in order: the process before its workspace and logs.
pub struct TenantServer {
    /// The shard ordinal (0 for a lone server).
    pub ordinal: u32,
    name: String,
    log_prefix: String,
    bin: PathBuf,
    port: u16,
    starts: usize,
    proc_: Option<Proc>,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    rust_log: String,
    same_port_pause: Option<Duration>,
    pub client: reqwest::Client,
    tolerant: bool,
    log_dir: PathBuf,
    workspace: PathBuf,
    _workspace_dir: Option<tempfile::TempDir>,
    _log_dir: Option<tempfile::TempDir>,
}

impl TenantServer {
    /// A server of the binary `bin` (see [`crate::bins`]), configured, then started with
    /// [`TenantServerBuilder::start`].
    pub fn builder(bin: impl Into<PathBuf>) -> TenantServerBuilder {
        TenantServerBuilder {
            bin: bin.into(),
            ordinal: None,
            args: Vec::new(),
            env: Vec::new(),
            rust_log: "warn".into(),
            workspace: None,
            workspace_prefix: "quiver-ws-".into(),
            log_dir: None,
            same_port_pause: None,
            client: None,
            tolerant: false,
        }
    }

    async fn spawn(&mut self, first: bool) {
        assert!(!self.is_running(), "{} is running", self.name);
        let keep_port = !first && self.same_port_pause.is_some();
        for _ in 0..START_ATTEMPTS {
            if !keep_port {
                self.port = crate::process::free_port();
            }
            self.starts += 1;
            self.log = self
                .log_dir
                .join(format!("{}{}.log", self.log_prefix, self.starts));
            let mut cmd = Command::new(&self.bin);
            cmd.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--workspace")
                .arg(&self.workspace)
                .args(&self.args)
                .env("RUST_LOG", &self.rust_log);
            isolate(&mut cmd);
            cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut proc_ = Proc::start(self.name.clone(), cmd, &self.log);
            let url = self.url("/api/v1/heartbeat");
            let ready = proc_.wait_http_ok(&self.client, &url).await;
            self.proc_ = Some(proc_);
            if ready {
                return;
            }
            match self.same_port_pause {
                // the port is the shard's identity in the placement table: keep trying it
                Some(pause) if keep_port => tokio::time::sleep(pause).await,
                // most likely taken between probing and binding: try another
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                None => {}
            }
        }
        panic!("{} failed to start {START_ATTEMPTS} times", self.name);
    }

    /// Starts the server again on the same workspace (it must be stopped): on the same
    /// port for a shard, on a new one otherwise.
    pub async fn restart(&mut self) {
        self.spawn(false).await;
    }

    /// SIGKILL: no graceful shutdown at all.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc_.as_mut() {
            p.kill();
        }
    }

    /// SIGTERM (graceful shutdown); waits for the exit and returns its status. Panics if
    /// the server is not running or does not exit within [`STOP_TIMEOUT`].
    pub async fn terminate(&mut self) -> ExitStatus {
        let p = self.proc_.as_mut().expect("server not running");
        match p.terminate(STOP_TIMEOUT).await {
            Stopped::Exited(status) | Stopped::AlreadyExited(status) => status,
            Stopped::NotRunning => panic!("server not running"),
            Stopped::Killed => panic!(
                "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                self.name,
                self.log_tail()
            ),
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.proc_.as_mut().is_some_and(Proc::is_running)
    }

    pub fn pid(&self) -> i32 {
        self.proc_
            .as_ref()
            .and_then(Proc::pid)
            .expect("server not running") as i32
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
        &self.workspace
    }

    pub fn has_project_dir(&self, project: &str) -> bool {
        self.workspace().join(project).is_dir()
    }

    /// The names of the directories in the workspace (one per project).
    pub fn project_dirs(&self) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(self.workspace())
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last few KiB of the current (or last) run's log.
    pub fn log_tail(&self) -> String {
        crate::process::log_tail(&self.log, crate::process::TAIL_BYTES)
    }

    // ---- requests ----

    /// A client for this server's own address: its admin API, or data calls that bypass a
    /// router. A request without an answer panics with the server's log tail (or, for a
    /// [`tolerant`](TenantServerBuilder::tolerant) server, answers status 0).
    pub fn http(&self) -> Http {
        let http = Http::with_client(self.base_url(), self.client.clone());
        if self.tolerant {
            http.tolerant()
        } else {
            http.explained_by(&self.log)
        }
    }

    /// A request with a JSON `body` or none (for headers: `self.http().send(…)`).
    pub async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Resp {
        self.http().send(method, path, body, &[]).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.http().get(path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.http().post(path, body).await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.http().post_raw(path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.http().put(path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.http().patch(path, body).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.http().delete(path).await
    }

    pub async fn delete_json(&self, path: &str, body: &Value) -> Resp {
        self.http().delete_json(path, body).await
    }

    /// Sends `method path` byte for byte (see [`crate::http::raw_exchange`]).
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        crate::http::raw_exchange(self.port, method, path, body)
    }

    // ---- admin API ----

    /// `POST /admin/v1/projects/{project}/{action}` (`pause`, `resume`, `fence`), with
    /// `body` or none; asserts a 200 and returns the JSON answer.
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

    /// `GET /admin/v1/projects/{project}`; asserts a 200 (ProjectInfo).
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

    /// `GET /admin/v1/projects`: every project the server holds, as (name, state).
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
