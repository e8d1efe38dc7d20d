//! The hnswlib reference: `scripts/bench_hnswlib.py` run by a Python that has hnswlib
//! (PyPI), on the very points and queries of this run, written to a temporary directory
//! as raw little-endian f32. It reports its timings as one JSON document on stdout and
//! writes each ef's result labels as raw u32, so that recall is scored here, by the same
//! code and ground truth as ours.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::{Build, CurvePoint, DataSet, IndexRun, Side, K};

#[derive(Debug, Deserialize)]
struct Report {
    version: String,
    build_secs: f64,
    index_bytes: Option<usize>,
    rss_growth: Option<usize>,
    curve: Vec<Point>,
}

#[derive(Debug, Deserialize)]
struct Point {
    ef: usize,
    p50_us: f64,
    qps1: f64,
    qps2: f64,
    ids_file: String,
}

fn write_f32(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_ids(path: &Path, queries: usize) -> Result<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() != queries * K * 4 {
        bail!(
            "{}: {} bytes, expected {} queries x {K} labels",
            path.display(),
            bytes.len(),
            queries
        );
    }
    Ok(bytes
        .chunks_exact(K * 4)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

/// The script, found next to the workspace this binary was built from.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_hnswlib.py")
}

pub fn run(python: &Path, run: &IndexRun, data: &DataSet) -> Result<Side> {
    let dir = tempfile::tempdir()?;
    write_f32(&dir.path().join("points.f32"), &data.points)?;
    write_f32(&dir.path().join("queries.f32"), &data.queries)?;
    let sweep: Vec<String> = run.ef_sweep.iter().map(|e| e.to_string()).collect();
    let out = Command::new(python)
        .arg(script())
        .arg("--dir")
        .arg(dir.path())
        .args(["--dim", &data.dim.to_string()])
        .args(["--space", run.space.as_str()])
        .args(["--m", &run.m.to_string()])
        .args(["--ef-construction", &run.ef_construction.to_string()])
        .args(["--ef-sweep", &sweep.join(",")])
        .args(["--k", &K.to_string()])
        .args(["--passes", &super::PASSES.to_string()])
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} exited with {}: {}",
            script().display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "reading the script's report: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    println!(
        "hnswlib  {} build {:.2} s ({:.0} vec/s)",
        report.version,
        report.build_secs,
        run.n as f64 / report.build_secs
    );
    let queries = data.truth.len();
    let mut curve = Vec::new();
    for p in report.curve {
        let ids = read_ids(&dir.path().join(&p.ids_file), queries)?;
        let (recall, lost) = data.score(&ids);
        curve.push(CurvePoint {
            ef: p.ef,
            recall,
            lost,
            p50_us: p.p50_us,
            qps1: p.qps1,
            qps2: p.qps2,
        });
    }
    Ok(Side {
        name: "hnswlib",
        build: Build {
            secs: report.build_secs,
            index_bytes: report.index_bytes,
            rss_growth: report.rss_growth,
        },
        curve,
    })
}
