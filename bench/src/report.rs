//! What the run prints: one line per phase as it ends, the servers' memory at fixed
//! points, and at the end either a summary (one server) or a side-by-side table of every
//! figure with the ratio Quiver / Chroma (the v2 comparison). The phases hand their
//! results here and never print a figure themselves, so no layout can drop one.

use crate::backend::Hnsw;
use crate::server::{read_rss, Rss};
use crate::stats::PhaseResult;
use crate::{Args, Mode};

/// How the run is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One server (plus, in router mode, the router in front of it): plain lines and a
    /// summary.
    Single,
    /// Quiver and/or Chroma: every line names its server, and the end is a table.
    SideBySide,
}

/// One server under test, as the report names it.
#[derive(Debug, Clone)]
pub struct SideInfo {
    pub name: &'static str,
    /// Its column in the side-by-side table (0 Quiver, 1 Chroma).
    pub column: usize,
    pub url: String,
    pub version: String,
    pub pid: Option<u32>,
}

/// Every result and memory reading of the run, in order.
pub struct Report {
    layout: Layout,
    pub sides: Vec<SideInfo>,
    /// Results with the side they were measured on.
    pub results: Vec<(usize, PhaseResult)>,
    /// RSS readings: label, side, reading (`None`: unavailable).
    rss: Vec<(String, usize, Option<Rss>)>,
    /// Appended to every phase label (router mode: which target and round).
    pub label_suffix: String,
}

impl Report {
    pub fn new(layout: Layout) -> Self {
        Report {
            layout,
            sides: Vec::new(),
            results: Vec::new(),
            rss: Vec::new(),
            label_suffix: String::new(),
        }
    }

    /// The column titles of the phase lines.
    pub fn header(&self) -> String {
        match self.layout {
            Layout::Single => PhaseResult::header(),
            Layout::SideBySide => format!("{:<7} {}", "server", PhaseResult::header()),
        }
    }

    pub fn print_header(&self) {
        println!("{}", self.header());
    }

    /// Prints `r`, measured on `side`, and keeps it.
    pub fn emit(&mut self, side: usize, mut r: PhaseResult) {
        r.phase.push_str(&self.label_suffix);
        match self.layout {
            Layout::Single => println!("{}", r.line()),
            Layout::SideBySide => println!("{:<7} {}", self.sides[side].name, r.line()),
        }
        self.results.push((side, r));
    }

    /// Reads, prints and keeps the RSS of every side whose pid is known.
    pub fn record_rss(&mut self, label: &str) {
        for (i, s) in self.sides.iter().enumerate() {
            let Some(pid) = s.pid else { continue };
            let rss = read_rss(pid);
            match rss {
                Some(r) => println!("# {} RSS {label}: {r}", s.name),
                None => println!("# {} RSS {label}: unavailable (pid {pid})", s.name),
            }
            self.rss.push((label.to_owned(), i, rss));
        }
    }

    /// The end of the run: the summary or the table.
    pub fn print_final(&self, args: &Args, hnsw: &Hnsw) {
        match self.layout {
            Layout::Single => self.print_summary(args),
            Layout::SideBySide => self.print_comparison(args, hnsw),
        }
    }

    /// What ran: the servers, the data, what else `extra` says, the many-scopes phase
    /// (`scopes`: their word and number).
    fn print_setup(&self, a: &Args, via: &str, extra: Option<String>, scopes: (&str, usize)) {
        for s in &self.sides {
            println!(
                "{:<11} {} (version {}), pid {}{via}",
                s.name,
                s.url,
                s.version,
                s.pid.map_or("unknown".into(), |p| p.to_string())
            );
        }
        if a.mode != Mode::Projects {
            println!(
                "data        n={} dim={} clusters={} sigma={} seed={} batch={} ef_search={} queries={} get_ops={}",
                a.n, a.dim, a.clusters, a.sigma, a.seed, a.batch, a.ef_search, a.queries, a.get_ops
            );
        }
        if let Some(line) = extra {
            println!("{line}");
        }
        let (word, count) = scopes;
        if a.mode != Mode::Single && count > 0 {
            println!(
                "{word:<11} {count} x {} records dim {}, concurrency {}, {} queries, idle {} s",
                a.project_records, a.project_dim, a.concurrency, a.project_queries, a.idle_secs
            );
        }
    }

    fn print_summary(&self, a: &Args) {
        println!();
        println!("==================== quiver-bench summary ====================");
        self.print_setup(a, "", None, ("projects", a.projects));
        println!("{}", PhaseResult::header());
        for (_, r) in &self.results {
            println!("{}", r.line());
        }
        if !self.rss.is_empty() {
            println!("server RSS:");
            for (label, side, rss) in &self.rss {
                let label = match side {
                    0 => label.clone(),
                    _ => format!("{} {label}", self.sides[*side].name),
                };
                match rss {
                    Some(r) => println!("  {label:<28} {r}"),
                    None => println!("  {label:<28} unavailable"),
                }
            }
        }
        println!("===============================================================");
    }

    fn print_comparison(&self, a: &Args, hnsw: &Hnsw) {
        println!();
        println!("============= quiver-bench v2 comparison: Quiver vs Chroma =============");
        let or_default = |v: Option<usize>| v.map_or("default".into(), |v| v.to_string());
        let collections = format!(
            "collections space {}, ef_search={} ef_construction={} max_neighbors={} (same for both)",
            hnsw.space.as_str(),
            hnsw.ef_search,
            or_default(hnsw.ef_construction),
            or_default(hnsw.max_neighbors)
        );
        self.print_setup(
            a,
            ", via /api/v2",
            Some(collections),
            ("tenants", a.tenants),
        );
        println!(
            "Q/C = Quiver / Chroma. Throughput (vec/s, q/s, ops/s, ten/s): higher is better, Q/C > 1 \
             favours Quiver.\nLatency (ms) and RSS (MiB): lower is better, Q/C < 1 favours Quiver. \
             'better' names the better server and by how much\n(recall: absolute difference). \
             '+ until indexed': Quiver = n/(ingest + index wait); Chroma = acknowledged rate."
        );
        for line in table_lines(&self.rows(), &self.rss_columns()) {
            println!("{line}");
        }
        println!("=========================================================================");
    }

    /// The results grouped by phase, each in its server's column (a later result of the
    /// same phase and server replaces an earlier one).
    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for (side, r) in &self.results {
            let row = match rows.iter().position(|row| row.phase == r.phase) {
                Some(p) => &mut rows[p],
                None => {
                    rows.push(Row {
                        phase: r.phase.clone(),
                        results: [None, None],
                    });
                    rows.last_mut().expect("just pushed")
                }
            };
            row.results[self.sides[*side].column] = Some(r.clone());
        }
        rows
    }

    /// The RSS readings grouped by label, each in its server's column.
    fn rss_columns(&self) -> Vec<(String, [Option<Rss>; 2])> {
        let mut out: Vec<(String, [Option<Rss>; 2])> = Vec::new();
        for (label, side, rss) in &self.rss {
            let p = match out.iter().position(|(l, _)| l == label) {
                Some(p) => p,
                None => {
                    out.push((label.clone(), [None, None]));
                    out.len() - 1
                }
            };
            out[p].1[self.sides[*side].column] = *rss;
        }
        out
    }
}

/// One line of the final table: a phase with each server's result.
struct Row {
    phase: String,
    results: [Option<PhaseResult>; 2],
}

/// Which way a metric is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// "Quiver 2.50x", "Chroma 1.20x" or "even" for a ratio-type metric.
fn verdict(q: Option<f64>, c: Option<f64>, better: Better) -> String {
    let (Some(q), Some(c)) = (q, c) else {
        return String::new();
    };
    if !(q > 0.0 && c > 0.0) {
        return String::new();
    }
    let r = q / c;
    if (r - 1.0).abs() < 0.005 {
        return "even".into();
    }
    let quiver = match better {
        Better::Higher => r > 1.0,
        Better::Lower => r < 1.0,
    };
    let factor = if r > 1.0 { r } else { 1.0 / r };
    format!("{} {factor:.2}x", if quiver { "Quiver" } else { "Chroma" })
}

/// "Quiver +0.0123", "Chroma +0.0040" or "even" for recall.
fn recall_verdict(q: Option<f64>, c: Option<f64>) -> String {
    let (Some(q), Some(c)) = (q, c) else {
        return String::new();
    };
    let d = q - c;
    if d.abs() < 0.00005 {
        "even".into()
    } else if d > 0.0 {
        format!("Quiver +{d:.4}")
    } else {
        format!("Chroma +{:.4}", -d)
    }
}

fn ratio(q: Option<f64>, c: Option<f64>) -> String {
    match (q, c) {
        (Some(q), Some(c)) if c > 0.0 => format!("{:.3}", q / c),
        _ => "-".into(),
    }
}

fn fmt_value(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

/// One table line: phase, metric, Quiver, Chroma, Quiver/Chroma, better.
fn table_line(
    phase: &str,
    metric: &str,
    q: Option<f64>,
    c: Option<f64>,
    prec: usize,
    verdict: String,
) -> String {
    format!(
        "{:<36} {:<10} {:>12} {:>12} {:>8}  {}",
        phase,
        metric,
        fmt_value(q, prec),
        fmt_value(c, prec),
        ratio(q, c),
        verdict
    )
}

fn table_lines(rows: &[Row], rss: &[(String, [Option<Rss>; 2])]) -> Vec<String> {
    let mut out = vec![format!(
        "{:<36} {:<10} {:>12} {:>12} {:>8}  {}",
        "phase", "metric", "Quiver", "Chroma", "Q/C", "better"
    )];
    for row in rows {
        let [q, c] = &row.results;
        let get =
            |f: fn(&PhaseResult) -> Option<f64>| (q.as_ref().and_then(f), c.as_ref().and_then(f));
        let unit = q.as_ref().or(c.as_ref()).map_or("", |r| r.unit);
        let (rq, rc) = get(|r| Some(r.rate));
        out.push(table_line(
            &row.phase,
            unit,
            rq,
            rc,
            1,
            verdict(rq, rc, Better::Higher),
        ));
        for (metric, f) in [
            ("p50 ms", (|r| r.p50_ms) as fn(&PhaseResult) -> Option<f64>),
            ("p99 ms", |r| r.p99_ms),
        ] {
            let (vq, vc) = get(f);
            if vq.is_some() || vc.is_some() {
                out.push(table_line(
                    "",
                    metric,
                    vq,
                    vc,
                    3,
                    verdict(vq, vc, Better::Lower),
                ));
            }
        }
        let (vq, vc) = get(|r| r.recall);
        if vq.is_some() || vc.is_some() {
            out.push(table_line(
                "",
                "recall@10",
                vq,
                vc,
                4,
                recall_verdict(vq, vc),
            ));
        }
        for (server, r) in [("Quiver", q), ("Chroma", c)] {
            if let Some(r) = r {
                if r.note.contains("WARNING") || r.note.contains("TIMEOUT") {
                    out.push(format!("{:<36} ! {server}: {}", "", r.note));
                }
            }
        }
    }
    for (label, [q, c]) in rss {
        let mib = |r: &Option<Rss>, f: fn(&Rss) -> u64| r.as_ref().map(|r| f(r) as f64 / 1024.0);
        let (vq, vc) = (mib(q, |r| r.rss_kib), mib(c, |r| r.rss_kib));
        out.push(table_line(
            &format!("server RSS {label}"),
            "MiB",
            vq,
            vc,
            1,
            verdict(vq, vc, Better::Lower),
        ));
        let (vq, vc) = (mib(q, |r| r.hwm_kib), mib(c, |r| r.hwm_kib));
        out.push(table_line(
            "",
            "peak MiB",
            vq,
            vc,
            1,
            verdict(vq, vc, Better::Lower),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn verdicts_and_ratios() {
        assert_eq!(
            verdict(Some(300.0), Some(100.0), Better::Higher),
            "Quiver 3.00x"
        );
        assert_eq!(
            verdict(Some(100.0), Some(300.0), Better::Higher),
            "Chroma 3.00x"
        );
        assert_eq!(verdict(Some(2.0), Some(8.0), Better::Lower), "Quiver 4.00x");
        assert_eq!(verdict(Some(8.0), Some(2.0), Better::Lower), "Chroma 4.00x");
        assert_eq!(verdict(Some(1.0), Some(1.001), Better::Lower), "even");
        assert_eq!(verdict(None, Some(1.0), Better::Lower), "");
        assert_eq!(recall_verdict(Some(0.99), Some(0.98)), "Quiver +0.0100");
        assert_eq!(recall_verdict(Some(0.97), Some(0.98)), "Chroma +0.0100");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.250");
        assert_eq!(ratio(Some(1.0), None), "-");
    }

    #[test]
    fn table_has_every_figure() {
        let lat = [Duration::from_millis(2), Duration::from_millis(4)];
        let q = PhaseResult::new("query (1 client)", 10, Duration::from_secs(1), "q/s", &lat)
            .with_recall(1.0);
        let c = PhaseResult::new("query (1 client)", 10, Duration::from_secs(2), "q/s", &lat)
            .with_recall(0.9)
            .with_note("WARNING: 1 queries returned fewer than 10 ids");
        let rows = [Row {
            phase: q.phase.clone(),
            results: [Some(q), Some(c)],
        }];
        let rss = [(
            "after ingest".to_owned(),
            [
                Some(Rss {
                    rss_kib: 1024,
                    hwm_kib: 2048,
                }),
                None,
            ],
        )];
        let lines = table_lines(&rows, &rss);
        assert!(lines[1].starts_with("query (1 client)"));
        assert!(lines[1].contains("10.0") && lines[1].contains("5.0"));
        assert!(lines[1].contains("2.000") && lines[1].ends_with("Quiver 2.00x"));
        assert!(lines[2].contains("p50 ms") && lines[2].ends_with("even"));
        assert!(lines[4].contains("recall@10") && lines[4].ends_with("Quiver +0.1000"));
        assert!(lines[5].contains("! Chroma: WARNING"));
        assert!(lines[6].starts_with("server RSS after ingest") && lines[6].contains("1.0"));
        assert!(lines[7].contains("peak MiB") && lines[7].contains("2.0"));
    }
}
