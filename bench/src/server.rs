//! Starting and stopping a tenant server, and reading its memory use. The processes are
//! the test kit's ([`quiver_testkit::process`]): output in a log file, SIGKILLed if the
//! bench dies.

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use quiver_client::QuiverClient;
use quiver_testkit::process::{log_tail_lines, try_free_port, NotReady, Proc, Stopped};

/// A `quiver-tenant-server` (or a real Chroma) started by the bench on a temporary
/// workspace; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct SpawnedServer {
    proc_: Proc,
    url: String,
    /// The command line, to start the server again on the same data and port.
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)>,
    starts: usize,
    // Kept so that the workspace lives as long as the server; removed on drop.
    _dir: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts `binary --host 127.0.0.1 --port P --workspace DIR [extra...]` on a free
    /// port, with its output in `DIR/../server.log`.
    pub fn start(binary: &Path, extra_args: &[String]) -> anyhow::Result<Self> {
        let dir = temp_dir("quiver-bench-")?;
        let workspace = dir.path().join("workspace");
        std::fs::create_dir(&workspace)?;
        let port = free_port()?;
        let mut cmd = listening(binary, port);
        cmd.arg("--workspace").arg(&workspace).args(extra_args);
        Self::launch(cmd, binary, port, dir)
    }

    /// Starts `quiver-router --host 127.0.0.1 --port P [args...]` on a free port.
    pub fn start_router_args(binary: &Path, args: &[String]) -> anyhow::Result<Self> {
        let dir = temp_dir("quiver-bench-router-")?;
        let port = free_port()?;
        let mut cmd = listening(binary, port);
        cmd.args(args).env("RUST_LOG", "warn");
        Self::launch(cmd, binary, port, dir)
    }

    /// Starts `quiver-router --host 127.0.0.1 --port P --shard SHARD` on a free port.
    pub fn start_router(binary: &Path, shard: &str) -> anyhow::Result<Self> {
        Self::start_router_args(binary, &["--shard".to_string(), shard.to_string()])
    }

    /// Starts real Chroma, `binary run DIR/chroma.yaml`, with a config file that puts its
    /// data in a temporary directory and makes it listen on 127.0.0.1 on a free port.
    pub fn start_chroma(binary: &Path) -> anyhow::Result<Self> {
        let dir = temp_dir("quiver-bench-chroma-")?;
        let data = dir.path().join("chroma-data");
        std::fs::create_dir(&data)?;
        let port = free_port()?;
        let config = dir.path().join("chroma.yaml");
        std::fs::write(&config, chroma_config(&data, port))
            .context("writing the Chroma config file")?;
        let mut cmd = Command::new(binary);
        cmd.arg("run").arg(&config);
        Self::launch(cmd, binary, port, dir)
    }

    fn launch(
        cmd: Command,
        binary: &Path,
        port: u16,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let program = cmd.get_program().to_owned();
        let args = cmd.get_args().map(|a| a.to_owned()).collect();
        let envs = cmd
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        let proc_ = spawn_logged(cmd, binary, &dir.path().join("server.log"))?;
        Ok(SpawnedServer {
            proc_,
            url: format!("http://127.0.0.1:{port}"),
            program,
            args,
            envs,
            starts: 1,
            _dir: dir,
        })
    }

    /// Stops the server (SIGTERM, so that it shuts down as it would in production) and
    /// starts it again with the same command line: same data, same port. Returns how the
    /// old process ended.
    pub fn restart(&mut self, grace: Duration) -> anyhow::Result<String> {
        let ended = self.stop(grace);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        self.starts += 1;
        let log = self._dir.path().join(format!("server-{}.log", self.starts));
        self.proc_ = spawn_logged(cmd, Path::new(&self.program), &log)?;
        Ok(ended)
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.proc_.pid().unwrap_or(0)
    }

    /// Polls `/api/v1/heartbeat` until it answers, the server exits, or `timeout` passes.
    pub async fn wait_ready(
        &mut self,
        client: &QuiverClient,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        self.wait_until(|| async { client.heartbeat().await.is_ok() }, timeout)
            .await
    }

    /// Calls `probe` every 100 ms until it returns true, the server exits, or `timeout`
    /// passes.
    pub async fn wait_until<F, Fut>(
        &mut self,
        probe: F,
        timeout: Duration,
    ) -> anyhow::Result<Duration>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        match self
            .proc_
            .wait_ready(probe, timeout, Duration::from_millis(100))
            .await
        {
            Ok(took) => Ok(took),
            Err(NotReady::Exited(status)) => bail!(
                "the server exited with {status} before answering:\n{}",
                self.log_tail(30)
            ),
            Err(NotReady::TimedOut) => bail!(
                "the server did not answer within {timeout:?}:\n{}",
                self.log_tail(30)
            ),
        }
    }

    /// The last `n` lines of the server's output.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail_lines(self.proc_.log_path(), n)
    }

    /// Sends SIGTERM, waits up to `grace`, then kills. Returns how the server ended.
    pub fn stop(&mut self, grace: Duration) -> String {
        match self.proc_.terminate_blocking(grace) {
            Stopped::NotRunning => "not running".to_owned(),
            Stopped::AlreadyExited(status) => format!("had already exited ({status})"),
            Stopped::Exited(status) => format!("stopped by SIGTERM ({status})"),
            Stopped::Killed => format!("killed after {grace:?} without exiting on SIGTERM"),
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

fn spawn_logged(cmd: Command, binary: &Path, log: &Path) -> anyhow::Result<Proc> {
    let mut proc_ = Proc::spawn(binary.display().to_string(), cmd, log)
        .with_context(|| format!("starting {}", binary.display()))?;
    // the bench reports a failed start itself (with the tail), and does not panic
    proc_.set_tail_on_panic(false);
    Ok(proc_)
}

/// `binary --host 127.0.0.1 --port P`.
fn listening(binary: &Path, port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string());
    cmd
}

fn temp_dir(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temporary directory")
}

/// The YAML config of a spawned Chroma (paths as JSON strings, which are valid YAML).
fn chroma_config(persist_path: &Path, port: u16) -> String {
    let path = serde_json::to_string(&persist_path.to_string_lossy()).unwrap_or_default();
    format!(
        "persist_path: {path}\nport: {port}\nlisten_address: \"127.0.0.1\"\nallow_reset: true\n"
    )
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    try_free_port().context("finding a free port")
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    /// Current resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub hwm_kib: u64,
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MiB (peak {:.1} MiB)",
            self.rss_kib as f64 / 1024.0,
            self.hwm_kib as f64 / 1024.0
        )
    }
}

/// Reads VmRSS and VmHWM of `pid`; `None` if the process or the fields are missing.
pub fn read_rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Rss> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Rss {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let s = "Name:\tquiver\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n";
        let r = parse_status(s).unwrap();
        assert_eq!((r.rss_kib, r.hwm_kib), (102400, 204800));
        assert_eq!(r.to_string(), "100.0 MiB (peak 200.0 MiB)");
        assert!(parse_status("Name:\tx\n").is_none());
    }

    #[test]
    fn chroma_config_file() {
        let c = chroma_config(Path::new("/tmp/x y/data"), 8123);
        assert_eq!(
            c,
            "persist_path: \"/tmp/x y/data\"\nport: 8123\nlisten_address: \"127.0.0.1\"\nallow_reset: true\n"
        );
    }

    #[test]
    fn reads_own_rss() {
        let r = read_rss(std::process::id()).unwrap();
        assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib);
    }
}
