//! The servers under test for one run: each spawned (and stopped at the end) or reached
//! at a URL, waited for, introduced (version, limits) and watched (RSS), behind one
//! [`Backend`] type; with the flags and the [`Report`], that is the [`Bench`] every phase
//! takes. Start-up and shut-down are the same whichever API the run speaks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::backend::{Backend, Hnsw, Software};
use crate::report::{Layout, Report, SideInfo};
use crate::server::SpawnedServer;
use crate::stats::PhaseResult;
use crate::Args;

/// How to start a server the bench spawns.
#[derive(Debug, Clone)]
pub enum Spawn {
    /// `quiver-tenant-server` on a temporary workspace, with extra arguments.
    TenantServer { bin: PathBuf, args: Vec<String> },
    /// `quiver-router` in front of one shard.
    Router { bin: PathBuf, shard: String },
    /// The real Chroma (`chroma run CONFIG`).
    Chroma { bin: PathBuf },
}

impl Spawn {
    fn start(&self) -> Result<SpawnedServer> {
        match self {
            Spawn::TenantServer { bin, args } => SpawnedServer::start(bin, args),
            Spawn::Router { bin, shard } => SpawnedServer::start_router(bin, shard),
            Spawn::Chroma { bin } => SpawnedServer::start_chroma(bin),
        }
    }
}

/// One server to put under test.
#[derive(Debug, Clone)]
pub struct Launch {
    /// How lines and the report name it.
    pub name: &'static str,
    pub software: Software,
    /// Spawn it, or (`None`) reach it at `url`.
    pub spawn: Option<Spawn>,
    pub url: String,
    /// Its pid when not spawned, to read its RSS.
    pub pid: Option<u32>,
    /// The flags that would make its RSS known, to say so when it is not.
    pub pid_flags: Option<&'static str>,
}

/// One server under test.
pub struct Side<B> {
    pub backend: B,
    spawned: Option<SpawnedServer>,
}

/// What every phase takes: the flags, the servers under test, the report.
pub struct Bench<B> {
    pub args: Args,
    /// The collections' HNSW settings, the same on every side.
    pub hnsw: Hnsw,
    pub sides: Vec<Side<B>>,
    pub report: Report,
}

impl<B: Backend> Bench<B> {
    /// Prints the command line, opens every launch in turn and reads their RSS at start.
    /// On failure the servers spawned so far are stopped (when dropped).
    pub async fn open(
        args: Args,
        hnsw: Hnsw,
        layout: Layout,
        launches: Vec<Launch>,
    ) -> Result<Self> {
        let argv: Vec<String> = std::env::args().collect();
        println!("# {}", argv.join(" "));
        let mut bench = Bench {
            args,
            hnsw,
            sides: Vec::new(),
            report: Report::new(layout),
        };
        for launch in launches {
            bench.attach(launch).await?;
        }
        bench.report.record_rss("at start");
        Ok(bench)
    }

    /// Spawns or reaches one more server, waits for its heartbeat and reads its version;
    /// returns its side number.
    pub async fn attach(&mut self, launch: Launch) -> Result<usize> {
        let name = launch.name;
        let timeout = Duration::from_secs(self.args.request_timeout_secs);
        let (mut spawned, url, pid) = match &launch.spawn {
            Some(spawn) => {
                let s = spawn.start().with_context(|| format!("starting {name}"))?;
                let (url, pid) = (s.url().to_owned(), s.pid());
                (Some(s), url, Some(pid))
            }
            None => (
                None,
                launch.url.trim_end_matches('/').to_owned(),
                launch.pid,
            ),
        };
        let mut backend = B::connect(&url, timeout, launch.software)?;
        match spawned.as_mut() {
            Some(s) => {
                let t = s
                    .wait_until(
                        || async { backend.heartbeat().await.is_ok() },
                        Duration::from_secs(self.args.startup_timeout_secs),
                    )
                    .await
                    .with_context(|| format!("starting {name}"))?;
                println!(
                    "# spawned {name} pid {} at {url}, ready in {:.2} s",
                    s.pid(),
                    t.as_secs_f64()
                );
            }
            None => backend
                .heartbeat()
                .await
                .with_context(|| format!("no {name} answers at {url}"))?,
        }
        let largest = self.args.batch.max(self.args.project_records);
        let hello = backend
            .handshake(largest)
            .await
            .with_context(|| format!("{name} at {url}"))?;
        println!(
            "# {name} version {} at {url}{}",
            hello.version, hello.detail
        );
        if let (None, Some(flags)) = (pid, launch.pid_flags) {
            println!("# {name} RSS not reported (pass {flags})");
        }
        self.report.sides.push(SideInfo {
            name,
            column: launch.software as usize,
            url,
            version: hello.version,
            pid,
        });
        self.sides.push(Side { backend, spawned });
        Ok(self.sides.len() - 1)
    }

    /// Restarts side `side` if the bench spawned it (same data and port) and waits for its
    /// heartbeat; returns the time from the new process's start until it answered, or
    /// `None` for a server the bench only reaches.
    pub async fn restart(&mut self, side: usize) -> Result<Option<Duration>> {
        let name = self.report.sides[side].name;
        let timeout = Duration::from_secs(self.args.startup_timeout_secs);
        let Side { backend, spawned } = &mut self.sides[side];
        let Some(s) = spawned.as_mut() else {
            return Ok(None);
        };
        let ended = s
            .restart(Duration::from_secs(60))
            .with_context(|| format!("restarting {name}"))?;
        println!("# {name} {ended}; started again as pid {}", s.pid());
        self.report.sides[side].pid = Some(s.pid());
        // the old connections died with the old process
        *backend = backend.fresh()?;
        let probe = backend.clone();
        let ready = s
            .wait_until(
                || {
                    let probe = probe.clone();
                    async move { probe.heartbeat().await.is_ok() }
                },
                timeout,
            )
            .await
            .with_context(|| format!("restarting {name}"))?;
        Ok(Some(ready))
    }

    /// `n` handles of side `side`, each with its own connections.
    pub fn clients(&self, side: usize, n: usize) -> Result<Vec<B>> {
        (0..n).map(|_| self.sides[side].backend.fresh()).collect()
    }

    /// The side's name, for lines and error context.
    pub fn name(&self, side: usize) -> &'static str {
        self.report.sides[side].name
    }

    pub fn emit(&mut self, side: usize, r: PhaseResult) {
        self.report.emit(side, r);
    }

    /// Prints the summary or table, then stops the spawned servers (the last attached
    /// first), with the end of their logs if the run failed.
    pub fn finish(mut self, outcome: Result<()>) -> Result<()> {
        self.report.print_final(&self.args, &self.hnsw);
        for (i, s) in self.sides.iter_mut().enumerate().rev() {
            let name = self.report.sides[i].name;
            if let Some(sp) = s.spawned.as_mut() {
                if outcome.is_err() {
                    eprintln!("# last lines of the {name} log:\n{}", sp.log_tail(30));
                }
                println!("# {name} {}", sp.stop(Duration::from_secs(10)));
            }
        }
        outcome
    }
}
