//! Child processes: spawned with their output in a log file, dying with the test, and
//! reporting their log when something goes wrong.
//!
//! Why one module: every end-to-end suite (and the bench) starts real binaries, and each
//! needs the same four guarantees, which are easy to get subtly wrong in a copy:
//!
//! - no process outlives the test: [`Proc`] is SIGKILLed on drop, also while a test
//!   panics, and on Linux the child gets `PR_SET_PDEATHSIG` so it dies with the thread
//!   that spawned it, even when the test process is killed;
//! - a failure explains itself: the tail of each process's log is printed when its handle
//!   drops during a panic, and when it exits while starting;
//! - a child is isolated from the runner's environment ([`isolate`]): variables that would
//!   point it at another workspace, a real cluster or a span collector are removed;
//! - ports are free ([`free_port`]); a port taken between probing and binding shows up as
//!   an exit during start, which the handles retry.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port that was free on 127.0.0.1 a moment ago.
pub fn try_free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}

/// [`try_free_port`], panicking when there is none.
pub fn free_port() -> u16 {
    try_free_port().expect("no free port")
}

/// Variables of the test runner that would send a child elsewhere: another workspace or
/// address (Chroma's), an admin token, a placement source, a span collector.
const STRAY_ENV: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "CHROMA_HOST",
    "CHROMA_PORT",
    "WORKSPACE_DIR",
    "QUIVER_ADMIN_TOKEN",
    "QUIVER_SHARDS",
    "QUIVER_PLACEMENT_FILE",
    "QUIVER_PLACEMENT_CONFIGMAP",
];

/// Extra environment for every process this test binary spawns through [`isolate`],
/// applied after the clean-up (a test binary that exports spans sets the OTLP variables
/// here).
static CHILD_ENV: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Replaces the extra environment of every child spawned from now on (see [`isolate`]).
pub fn set_child_env(vars: &[(&str, &str)]) {
    let mut env = CHILD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    env.clear();
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
}

/// Isolates a test's child from the runner's environment: removes the stray variables,
/// switches span export off (the router passes a client's trace context on as it came;
/// with export on, its own client span would become the shard's parent), then applies
/// [`set_child_env`]'s variables.
pub fn isolate(cmd: &mut Command) -> &mut Command {
    for var in STRAY_ENV {
        cmd.env_remove(var);
    }
    cmd.env("OTEL_SDK_DISABLED", "true");
    let extra = CHILD_ENV.lock().unwrap_or_else(|e| e.into_inner());
    cmd.envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// The last `max_bytes` (or a little less, at a character boundary) of a log file.
pub fn log_tail(path: &Path, max_bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max_bytes);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// The last `n` lines of a log file.
pub fn log_tail_lines(path: &Path, n: usize) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How much of a log the harness prints when it reports a failure.
pub const TAIL_BYTES: usize = 6000;

/// How a process ended when it was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// There was no process (never started, or already stopped and reaped).
    NotRunning,
    /// It had exited before it was asked to.
    AlreadyExited(ExitStatus),
    /// It exited on SIGTERM within the grace period.
    Exited(ExitStatus),
    /// It was still running after the grace period and was SIGKILLed.
    Killed,
}

/// Why a process did not become ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// It exited first (most often: the port was taken between probing and binding).
    Exited(ExitStatus),
    /// It kept running without passing the probe.
    TimedOut,
}

/// One child process with its output in a log file; SIGKILLed on drop.
pub struct Proc {
    what: String,
    child: Option<Child>,
    log: PathBuf,
    tail_on_panic: bool,
}

impl Proc {
    /// Spawns `cmd` with no stdin and stdout and stderr to `log` (created anew). On Linux
    /// the child is SIGKILLed when the thread that spawned it goes away, so even an
    /// aborted run leaves no server behind. `what` names it in messages ("shard 1").
    pub fn spawn(what: impl Into<String>, mut cmd: Command, log: &Path) -> std::io::Result<Proc> {
        let file = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
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
        let child = cmd.spawn()?;
        Ok(Proc {
            what: what.into(),
            child: Some(child),
            log: log.to_path_buf(),
            tail_on_panic: true,
        })
    }

    /// Like [`Proc::spawn`], but a failure to spawn is a panic naming the binary.
    #[track_caller]
    pub fn start(what: impl Into<String>, cmd: Command, log: &Path) -> Proc {
        let bin = cmd.get_program().to_string_lossy().into_owned();
        Proc::spawn(what, cmd, log).unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"))
    }

    /// Whether the log tail is printed when the handle drops during a panic (default on).
    pub fn set_tail_on_panic(&mut self, on: bool) {
        self.tail_on_panic = on;
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `max_bytes` of the log.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        log_tail(&self.log, max_bytes)
    }

    /// The pid, while the process has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, once it has exited (it stays reapable: see [`Proc::kill`]).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Started, not reaped, and not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// SIGKILL (std's `Child::kill`), then reap. Nothing happens without a process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Forgets the process after it exited (it is reaped already by `try_wait`).
    fn forget(&mut self) {
        self.child = None;
    }

    /// Sends SIGTERM and takes the child, or says why there is nothing to wait for.
    fn sigterm(&mut self) -> Result<Child, Stopped> {
        let Some(mut c) = self.child.take() else {
            return Err(Stopped::NotRunning);
        };
        if let Ok(Some(status)) = c.try_wait() {
            return Err(Stopped::AlreadyExited(status));
        }
        // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        Ok(c)
    }

    /// SIGTERM (graceful shutdown), then waits up to `grace` for the exit; SIGKILL after.
    pub async fn terminate(&mut self, grace: Duration) -> Stopped {
        let mut c = match self.sigterm() {
            Ok(c) => c,
            Err(stopped) => return stopped,
        };
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return Stopped::Exited(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return Stopped::Killed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Proc::terminate`] for code without a runtime (or in `Drop`): sleeps the thread.
    pub fn terminate_blocking(&mut self, grace: Duration) -> Stopped {
        let mut c = match self.sigterm() {
            Ok(c) => c,
            Err(stopped) => return stopped,
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Stopped::Exited(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        Stopped::Killed
    }

    /// Calls `probe` every `poll` until it returns true (the time it took), the process
    /// exits ([`NotReady::Exited`]; the handle is then empty) or `timeout` passes.
    pub async fn wait_ready<F, Fut>(
        &mut self,
        mut probe: F,
        timeout: Duration,
        poll: Duration,
    ) -> Result<Duration, NotReady>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                self.forget();
                return Err(NotReady::Exited(status));
            }
            if probe().await {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(NotReady::TimedOut);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// [`Proc::wait_ready`] on "`GET url` answers 2xx", polled every 25 ms for up to
    /// [`START_TIMEOUT`], as the handles start their servers. An exit during start is
    /// reported (with the log tail) and returned as `false`, for the caller to retry; a
    /// process that never answers is a panic with its log tail.
    pub async fn wait_http_ok(&mut self, client: &reqwest::Client, url: &str) -> bool {
        let probe = || async {
            match client.get(url).timeout(Duration::from_secs(2)).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            }
        };
        match self
            .wait_ready(probe, START_TIMEOUT, Duration::from_millis(25))
            .await
        {
            Ok(_) => true,
            Err(NotReady::Exited(status)) => {
                eprintln!(
                    "{} exited during start ({status}):\n{}",
                    self.what,
                    self.log_tail(TAIL_BYTES)
                );
                false
            }
            Err(NotReady::TimedOut) => {
                let tail = self.log_tail(TAIL_BYTES);
                self.kill();
                panic!(
                    "{} did not answer {url} within {START_TIMEOUT:?}:\n{tail}",
                    self.what
                );
            }
        }
    }
}

/// How long a server may take to answer its first request.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a handle tries to start its server (a port can be taken between
/// probing and binding).
pub const START_ATTEMPTS: usize = 5;

impl Drop for Proc {
    fn drop(&mut self) {
        if self.tail_on_panic && std::thread::panicking() {
            eprintln!(
                "---- {} log tail ({}) ----\n{}",
                self.what,
                self.log.display(),
                self.log_tail(TAIL_BYTES)
            );
        }
        self.kill();
    }
}
