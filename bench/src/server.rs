//! Starting and stopping a tenant server, and reading its memory use.

use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use quiver_client::QuiverClient;

/// A `quiver-tenant-server` (or a real Chroma) started by the bench on a temporary
/// workspace; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct SpawnedServer {
    child: Option<Child>,
    url: String,
    log_path: PathBuf,
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
        let mut cmd = Command::new(binary);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--workspace")
            .arg(&workspace)
            .args(extra_args);
        Self::launch(cmd, binary, port, dir)
    }

    /// Starts `quiver-router --host 127.0.0.1 --port P [args...]` on a free port.
    pub fn start_router_args(binary: &Path, args: &[String]) -> anyhow::Result<Self> {
        let dir = temp_dir("quiver-bench-router-")?;
        let port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .env("RUST_LOG", "warn");
        Self::launch(cmd, binary, port, dir)
    }

    /// Starts `quiver-router --host 127.0.0.1 --port P --shard SHARD` on a free port.
    pub fn start_router(binary: &Path, shard: &str) -> anyhow::Result<Self> {
        let dir = temp_dir("quiver-bench-router-")?;
        let port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--shard")
            .arg(shard)
            .env("RUST_LOG", "warn");
        Self::launch(cmd, binary, port, dir)
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
        mut cmd: Command,
        binary: &Path,
        port: u16,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(SpawnedServer {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            log_path,
            _dir: dir,
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
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
        let start = Instant::now();
        loop {
            if probe().await {
                return Ok(start.elapsed());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the server exited with {status} before answering:\n{}",
                        self.log_tail(30)
                    );
                }
            }
            if start.elapsed() > timeout {
                bail!(
                    "the server did not answer within {timeout:?}:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `n` lines of the server's output.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(f) = File::open(&self.log_path) else {
            return String::new();
        };
        let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM, waits up to `grace`, then kills. Returns how the server ended.
    pub fn stop(&mut self, grace: Duration) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".to_owned();
        };
        if let Ok(Some(status)) = child.try_wait() {
            return format!("had already exited ({status})");
        }
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return format!("stopped by SIGTERM ({status})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        format!("killed after {grace:?} without exiting on SIGTERM")
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
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
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
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
