//! A real `quiver-router` process on a free port.
//!
//! Why: the router's end-to-end tests and the operator's (moves go through a router) run
//! the same binary the same way; only the placement source and tuning flags differ, and
//! those are the caller's arguments.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::http::{http_client, REQUEST_TIMEOUT};
use crate::process::{free_port, isolate, Proc, START_ATTEMPTS};

/// A router process; SIGKILLed on drop (its log tail printed if a test panics).
pub struct RouterProc {
    port: u16,
    proc_: Proc,
}

impl RouterProc {
    /// Starts `bin --host 127.0.0.1 --port P args…` (the placement source and any tuning)
    /// with its log in `logs`, and waits until `/readyz` answers 200.
    pub async fn start(bin: &Path, args: &[String], logs: &Path) -> RouterProc {
        let client = http_client(REQUEST_TIMEOUT);
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let log = logs.join(format!("router-{port}.log"));
            let mut cmd = Command::new(bin);
            cmd.arg("--host")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(port.to_string())
                .args(args)
                .env("RUST_LOG", "warn");
            isolate(&mut cmd);
            let mut r = RouterProc {
                port,
                proc_: Proc::start("router", cmd, &log),
            };
            let url = r.url("/readyz");
            if r.proc_.wait_http_ok(&client, &url).await {
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
        self.proc_.log()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.proc_.kill();
    }
}
