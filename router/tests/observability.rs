//! Metrics and logs across real processes: a router and tenant-server shards on loopback,
//! their `/metrics` scraped and parsed (Prometheus text format) against what
//! docs/observability.md and docs/router.md promise, label cardinality over a thousand
//! projects, and the trace id in the JSON log lines of router and shard.
//!
//! Every process of this binary logs JSON at debug level (see [`json_debug_logs`]).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{name_where, Cluster, Http, Resp, Source};
use futures_util::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every process spawned by this binary: JSON logs, everything at debug; and at most 32
/// open projects per shard (each open project reserves ~35 MB of preallocated WAL on
/// disk: a thousand projects under the default bound of 256 would take ~17 GB).
fn json_debug_logs() {
    common::set_child_env(&[
        ("QUIVER_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("QUIVER_MAX_OPEN_PROJECTS", "32"),
    ]);
}

// ---------------------------------------------------------------------------------------
// the Prometheus text format

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    /// `name{k="v",…}` with labels in order: one series.
    fn key(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// One scrape: the declared type of each family and every sample.
#[derive(Debug, Clone)]
struct Scrape {
    who: String,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

/// Parses `key="value",…}` (after the `{`); returns the labels and the rest of the line.
fn parse_labels<'a>(mut s: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest);
        }
        let eq = s
            .find('=')
            .unwrap_or_else(|| panic!("label without '=' in {line:?}"));
        let key = s[..eq].trim().to_string();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {key:?} in {line:?}"
        );
        let mut chars = s[eq + 1..].char_indices();
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "unquoted label value in {line:?}"
        );
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        assert!(
            labels.insert(key.clone(), value).is_none(),
            "label {key} twice in {line:?}"
        );
        s = &s[end..];
    }
}

impl Scrape {
    fn parse(who: &str, text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next())
                else {
                    panic!("{who}: bad TYPE line {line:?}");
                };
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{who}: {name} declared twice"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name_end = line
                .find(|c: char| c == '{' || c.is_whitespace())
                .unwrap_or_else(|| panic!("{who}: sample without a value: {line:?}"));
            let name = &line[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{who}: bad metric name in {line:?}"
            );
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(after) => parse_labels(after, line),
                None => (BTreeMap::new(), &line[name_end..]),
            };
            let value_text = rest
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("{who}: sample without a value: {line:?}"));
            let value: f64 = match value_text {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{who}: bad value in {line:?}")),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        let s = Scrape {
            who: who.to_string(),
            types,
            samples,
        };
        // every sample belongs to a declared family, and each series appears once
        let mut seen = BTreeSet::new();
        for x in &s.samples {
            assert!(
                s.family_of(&x.name).is_some(),
                "{who}: sample {} of no declared family",
                x.key()
            );
            assert!(seen.insert(x.key()), "{who}: series {} twice", x.key());
        }
        s
    }

    /// The family a sample name belongs to (histograms expose `_bucket`, `_sum`, `_count`).
    fn family_of(&self, sample: &str) -> Option<String> {
        if self.types.contains_key(sample) {
            return Some(sample.to_string());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                if matches!(
                    self.types.get(base).map(String::as_str),
                    Some("histogram" | "summary")
                ) {
                    return Some(base.to_string());
                }
            }
        }
        None
    }

    fn family(&self, family: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| self.family_of(&s.name).as_deref() == Some(family))
            .collect()
    }

    /// The label names of a family's series (`le` of histogram buckets left out).
    fn label_names(&self, family: &str) -> BTreeSet<String> {
        self.family(family)
            .iter()
            .flat_map(|s| s.labels.keys().cloned())
            .filter(|k| {
                !(k == "le" && self.types.get(family).map(String::as_str) == Some("histogram"))
            })
            .collect()
    }

    /// The values a label takes in a family.
    fn label_values(&self, family: &str, label: &str) -> BTreeSet<String> {
        self.family(family)
            .iter()
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }

    /// The value of the sample `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    #[track_caller]
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("{}: no sample {name} {labels:?}", self.who))
    }

    /// Number of children (label sets, `le` aside) per family.
    fn children_per_family(&self) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in &self.samples {
            let family = self.family_of(&s.name).expect("checked at parse");
            let mut labels = s.labels.clone();
            labels.remove("le");
            out.entry(family).or_default().insert(format!("{labels:?}"));
        }
        out.into_iter().map(|(k, v)| (k, v.len())).collect()
    }

    /// Every series, as `name{labels}`.
    fn series(&self) -> BTreeSet<String> {
        self.samples.iter().map(Sample::key).collect()
    }
}

async fn scrape(http: &reqwest::Client, base: &str, who: &str) -> Scrape {
    let r = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{who}: GET /metrics: {e}"));
    assert_eq!(r.status(), 200, "{who}: GET /metrics");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "{who}: /metrics content type {ct:?}"
    );
    Scrape::parse(who, &r.text().await.unwrap())
}

#[test]
fn the_parser_reads_escapes_histograms_and_rejects_strays() {
    let s = Scrape::parse(
        "sample",
        "# HELP a_total help\n# TYPE a_total counter\na_total{route=\"/x/{p}\",q=\"a\\\"b\\\\c\\nd\"} 3\n\
         # TYPE h histogram\nh_bucket{le=\"0.5\",r=\"x\"} 1\nh_bucket{le=\"+Inf\",r=\"x\"} 2\n\
         h_sum{r=\"x\"} 0.7\nh_count{r=\"x\"} 2\n# TYPE g gauge\ng 1e3\n",
    );
    assert_eq!(
        s.get("a_total", &[("route", "/x/{p}"), ("q", "a\"b\\c\nd")]),
        3.0
    );
    assert_eq!(s.get("h_count", &[("r", "x")]), 2.0);
    assert_eq!(s.get("g", &[]), 1000.0);
    assert_eq!(s.label_names("h"), BTreeSet::from(["r".to_string()]));
    assert_eq!(s.children_per_family()["h"], 1);
    let stray = std::panic::catch_unwind(|| Scrape::parse("stray", "# TYPE a gauge\nb 1\n"));
    assert!(
        stray.is_err(),
        "a sample of an undeclared family is refused"
    );
}

// ---------------------------------------------------------------------------------------
// the documented metrics

#[derive(Debug, Clone)]
struct DocMetric {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
}

/// Backticked words of a Markdown cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `…_pinned_bytes` after `quiver_rocksdb_block_cache_usage_bytes`: the first name with
/// as many trailing `_` segments replaced.
fn expand(first: &str, abbreviated: &str) -> String {
    let tail = abbreviated.trim_start_matches('…').trim_start_matches('_');
    let n = tail.split('_').count();
    let parts: Vec<&str> = first.split('_').collect();
    assert!(parts.len() > n, "cannot expand {abbreviated} after {first}");
    format!("{}_{tail}", parts[..parts.len() - n].join("_"))
}

/// The metric tables of a Markdown file: each `| name | type | labels/meaning |` table
/// with the last non-table line before it (its heading or introducing sentence).
fn metric_tables(path: &Path) -> Vec<(String, Vec<DocMetric>)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut context = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if !line.starts_with('|') {
            if !line.is_empty() {
                context = line.to_string();
            }
            continue;
        }
        let cells = |l: &str| -> Vec<String> {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        };
        let header = cells(line);
        let mut rows = Vec::new();
        while let Some(l) = lines.peek() {
            if !l.trim().starts_with('|') {
                break;
            }
            let row = cells(lines.next().unwrap());
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            rows.push(row);
        }
        if header.first().map(String::as_str) != Some("name")
            || header.get(1).map(String::as_str) != Some("type")
        {
            continue;
        }
        let third = header.get(2).cloned().unwrap_or_default();
        let mut metrics = Vec::new();
        for row in rows {
            let names = backticked(&row[0]);
            let kind = row[1].clone();
            let cell = row.get(2).cloned().unwrap_or_default();
            let labels: BTreeSet<String> = if third == "labels" {
                // label names, not the values listed in parentheses
                let mut bare = String::new();
                let mut depth = 0;
                for c in cell.chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        c if depth == 0 => bare.push(c),
                        _ => {}
                    }
                }
                backticked(&bare).into_iter().collect()
            } else {
                // "meaning": a label is written `name` = …
                labels_in_meaning(&cell).into_iter().collect()
            };
            let first = names[0].clone();
            for n in &names {
                let name = if n.starts_with('…') {
                    expand(&first, n)
                } else {
                    n.clone()
                };
                metrics.push(DocMetric {
                    name,
                    kind: kind.clone(),
                    labels: labels.clone(),
                });
            }
        }
        out.push((context.clone(), metrics));
    }
    out
}

/// Labels named in a "meaning" cell as `` `label` = … ``.
fn labels_in_meaning(cell: &str) -> Vec<String> {
    let parts: Vec<&str> = cell.split('`').collect();
    let mut out = Vec::new();
    // odd indices are inside backticks
    for i in (1..parts.len()).step_by(2) {
        if parts
            .get(i + 1)
            .is_some_and(|after| after.trim_start().starts_with('='))
        {
            out.push(parts[i].to_string());
        }
    }
    out
}

fn docs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// (tenant server's documented metrics, router's documented metrics)
fn documented_metrics() -> (Vec<DocMetric>, Vec<DocMetric>) {
    let mut common = Vec::new();
    let mut tenant = Vec::new();
    for (context, metrics) in metric_tables(&docs_dir().join("observability.md")) {
        if context.starts_with("Common to router and tenant server") {
            common.extend(metrics);
        } else if context.starts_with("Tenant server") {
            tenant.extend(metrics);
        } else {
            panic!("observability.md: metric table after {context:?} not understood");
        }
    }
    let mut router = Vec::new();
    for (context, metrics) in metric_tables(&docs_dir().join("router.md")) {
        assert_eq!(
            context, "## Metrics",
            "router.md: metric table after {context:?}"
        );
        router.extend(metrics);
    }
    // the parse itself: what the documents are known to list
    let names =
        |v: &[DocMetric]| -> BTreeSet<String> { v.iter().map(|m| m.name.clone()).collect() };
    assert_eq!(
        names(&common),
        BTreeSet::from([
            "quiver_http_requests_total".to_string(),
            "quiver_http_request_duration_seconds".to_string(),
            "quiver_http_requests_in_flight".to_string(),
        ])
    );
    for expected in [
        "quiver_projects",
        "quiver_stored_bytes",
        "quiver_projects_open_max",
        "quiver_project_idle_closes_total",
        "quiver_queries_total",
        "quiver_rocksdb_block_cache_pinned_bytes",
        "quiver_rocksdb_block_cache_capacity_bytes",
        "quiver_rocksdb_write_buffer_capacity_bytes",
    ] {
        assert!(
            names(&tenant).contains(expected),
            "{expected} not parsed: {tenant:?}"
        );
    }
    assert!(tenant.len() >= 22, "{tenant:?}");
    assert!(router.len() >= 9, "{router:?}");
    let queries = tenant
        .iter()
        .find(|m| m.name == "quiver_queries_total")
        .unwrap();
    assert_eq!(queries.labels, BTreeSet::from(["strategy".to_string()]));
    let labels_of = |name: &str| -> BTreeSet<String> {
        router
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("router.md: {name} not parsed"))
            .labels
            .clone()
    };
    assert_eq!(
        labels_of("quiver_http_requests_total"),
        set(["route", "status"])
    );
    assert_eq!(
        labels_of("quiver_router_upstream_errors_total"),
        set(["shard", "kind"])
    );
    assert_eq!(
        labels_of("quiver_router_placement_updates_total"),
        set(["source", "result"])
    );
    assert_eq!(labels_of("quiver_router_placement_epoch"), set([]));
    let mut tenant_all = common.clone();
    tenant_all.extend(tenant);
    (tenant_all, router)
}

/// Every documented metric is exposed with its documented type and label names, and
/// nothing undocumented is.
#[track_caller]
fn assert_documented(scrape: &Scrape, documented: &[DocMetric]) {
    let who = &scrape.who;
    let names: BTreeSet<&String> = documented.iter().map(|m| &m.name).collect();
    let undocumented: Vec<&String> = scrape.types.keys().filter(|n| !names.contains(n)).collect();
    assert!(
        undocumented.is_empty(),
        "{who}: undocumented metrics {undocumented:?}"
    );
    for m in documented {
        let kind = scrape.types.get(&m.name).unwrap_or_else(|| {
            panic!(
                "{who}: documented metric {} is not exposed; families: {:?}",
                m.name,
                scrape.types.keys().collect::<Vec<_>>()
            )
        });
        assert_eq!(kind, &m.kind, "{who}: type of {}", m.name);
        assert!(
            !scrape.family(&m.name).is_empty(),
            "{who}: {} has no samples",
            m.name
        );
        assert_eq!(
            scrape.label_names(&m.name),
            m.labels,
            "{who}: label names of {}",
            m.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// traffic

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What the client saw, to compare with the counters: per shard, (route template,
/// status) → requests; and for the router, (route class, status) → requests.
#[derive(Default)]
struct Seen {
    shard: BTreeMap<(u32, String, String), u64>,
    router: BTreeMap<(String, String), u64>,
}

impl Seen {
    /// A proxied request: counted by the router under `class`, by the answering shard
    /// under `template`.
    fn proxied(&mut self, r: &Resp, class: &str, template: &str) {
        let status = r.status.to_string();
        let shard = r
            .shard()
            .unwrap_or_else(|| panic!("{class} {template}: no x-quiver-shard: {}", r.text));
        *self
            .shard
            .entry((shard, template.to_string(), status.clone()))
            .or_default() += 1;
        *self.router.entry((class.to_string(), status)).or_default() += 1;
    }

    fn router_only(&mut self, r: &Resp, class: &str) {
        *self
            .router
            .entry((class.to_string(), r.status.to_string()))
            .or_default() += 1;
    }
}

fn embedding(i: usize) -> Vec<f32> {
    vec![i as f32, 1.0, (i % 3) as f32, 0.5]
}

const V1_COLLECTIONS: &str = "/api/v1/{project}/collections";
const V1_COLLECTION: &str = "/api/v1/{project}/collections/{collection}";

fn v1t(suffix: &str) -> String {
    format!("{V1_COLLECTION}{suffix}")
}

/// The v2 route templates: `{collection}` as the code names the segment.
const V2_DB: &str = "/api/v2/tenants/{tenant}/databases/{database}";

/// The documented spelling of the v2 collection segment (docs/observability.md).
const V2_DOCUMENTED_QUERY: &str =
    "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection}/query";

/// Whether `route` is a v2 collection template ending in `suffix`, whatever the name of
/// the collection segment's parameter.
fn is_v2_collection_template(route: &str, suffix: &str) -> bool {
    let Some(rest) = route.strip_prefix(&format!("{V2_DB}/collections/{{")) else {
        return false;
    };
    let Some(close) = rest.find('}') else {
        return false;
    };
    let param = &rest[..close];
    !param.is_empty()
        && param.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && &rest[close + 1..] == suffix
}

/// A project's v1 traffic through the router: create, add, exact query, get, count, a
/// 404 of a missing collection and an unmatched path. Returns the records added.
async fn v1_traffic(http: &Http, seen: &mut Seen, p: &str) -> usize {
    const N: usize = 6;
    let r = http
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "docs"}),
        )
        .await;
    r.ok();
    seen.proxied(&r, "v1_project", V1_COLLECTIONS);
    let r = http
        .post(
            &format!("/api/v1/{p}/collections/docs/add"),
            &json!({
                "ids": (0..N).map(|i| format!("id{i}")).collect::<Vec<_>>(),
                "embeddings": (0..N).map(embedding).collect::<Vec<_>>(),
            }),
        )
        .await;
    r.ok();
    seen.proxied(&r, "v1_project", &v1t("/add"));
    let r = http
        .post(
            &format!("/api/v1/{p}/collections/docs/query"),
            &json!({"query_embeddings": [embedding(2)], "n_results": 3}),
        )
        .await;
    assert_eq!(r.ok()["results"]["ids"][0][0], json!("id2"), "{}", r.text);
    seen.proxied(&r, "v1_project", &v1t("/query"));
    let r = http
        .post(
            &format!("/api/v1/{p}/collections/docs/get"),
            &json!({"ids": ["id1"]}),
        )
        .await;
    r.ok();
    seen.proxied(&r, "v1_project", &v1t("/get"));
    let r = http
        .get(&format!("/api/v1/{p}/collections/docs/count"))
        .await;
    assert_eq!(r.ok()["count"], json!(N), "{}", r.text);
    seen.proxied(&r, "v1_project", &v1t("/count"));
    let r = http.get(&format!("/api/v1/{p}/collections/missing")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    seen.proxied(&r, "v1_project", V1_COLLECTION);
    let r = http.get(&format!("/api/v1/{p}/no-such-thing")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    seen.proxied(&r, "v1_project", "unmatched");
    N
}

/// A tenant's v2 traffic through the router: create tenant, database, collection, add,
/// count, exact query. Returns the records added.
async fn v2_traffic(http: &Http, seen: &mut Seen, t: &str) -> usize {
    const N: usize = 4;
    let r = http.post("/api/v2/tenants", &json!({"name": t})).await;
    r.ok();
    seen.proxied(&r, "v2_create_tenant", "/api/v2/tenants");
    // a tenant made by create_tenant has no database until one is created (as in Chroma)
    let r = http
        .post(
            &format!("/api/v2/tenants/{t}/databases"),
            &json!({"name": "default_database"}),
        )
        .await;
    r.ok();
    seen.proxied(&r, "v2_tenant", "/api/v2/tenants/{tenant}/databases");
    let r = http
        .get(&format!("/api/v2/tenants/{t}/databases/default_database"))
        .await;
    r.ok();
    seen.proxied(&r, "v2_tenant", V2_DB);
    let r = http
        .post(
            &format!("/api/v2/tenants/{t}/databases/default_database/collections"),
            &json!({"name": "docs2"}),
        )
        .await;
    let id = r.ok()["id"].as_str().expect("collection id").to_string();
    seen.proxied(&r, "v2_tenant", &format!("{V2_DB}/collections"));
    let base = format!("/api/v2/tenants/{t}/databases/default_database/collections/{id}");
    let r = http
        .post(
            &format!("{base}/add"),
            &json!({
                "ids": (0..N).map(|i| format!("v{i}")).collect::<Vec<_>>(),
                "embeddings": (0..N).map(embedding).collect::<Vec<_>>(),
            }),
        )
        .await;
    r.ok();
    seen.proxied(&r, "v2_tenant", "v2:/add");
    let r = http.get(&format!("{base}/count")).await;
    assert_eq!(r.ok(), &json!(N));
    seen.proxied(&r, "v2_tenant", "v2:/count");
    let r = http
        .post(
            &format!("{base}/query"),
            &json!({"query_embeddings": [embedding(1)], "n_results": 2}),
        )
        .await;
    assert_eq!(r.ok()["ids"][0][0], json!("v1"), "{}", r.text);
    seen.proxied(&r, "v2_tenant", "v2:/query");
    N
}

/// The shard's count for a template the client knows (`v2:/suffix` for a v2 collection
/// route, whatever the name of its parameter).
fn shard_count(s: &Scrape, template: &str, status: &str) -> f64 {
    s.family("quiver_http_requests_total")
        .iter()
        .filter(|x| x.name == "quiver_http_requests_total")
        .filter(|x| x.labels.get("status").map(String::as_str) == Some(status))
        .filter(|x| {
            let route = x
                .labels
                .get("route")
                .map(String::as_str)
                .unwrap_or_default();
            match template.strip_prefix("v2:") {
                Some(suffix) => is_v2_collection_template(route, suffix),
                None => route == template,
            }
        })
        .map(|x| x.value)
        .sum()
}

/// One request over a connection of its own, its body sent with `Transfer-Encoding:
/// chunked` in two chunks (the framing the router can replay after a shard's "paused");
/// returns the status, the headers (lower-case names) and the body text.
async fn raw_exchange(
    port: u16,
    method: Method,
    path: String,
    body: String,
) -> (u16, BTreeMap<String, String>, String) {
    let mut conn = raw_send(port, method, &path, &body).await;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.expect("read the answer");
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// Opens a connection to `127.0.0.1:port` and sends one chunked request on it (`Connection:
/// close`); the answer is left to read.
async fn raw_send(port: u16, method: Method, path: &str, body: &str) -> tokio::net::TcpStream {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let half = body.len() / 2;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        &body[..half],
        body.len() - half,
        &body[half..]
    );
    conn.write_all(request.as_bytes()).await.expect("send");
    conn
}

// ---------------------------------------------------------------------------------------
// 1. documented, typed and labelled

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_documented_typed_and_labelled() {
    json_debug_logs();
    let (tenant_docs, router_docs) = documented_metrics();
    let mut cluster = Cluster::start(2, Source::Static).await;
    let http = cluster.http.clone();
    let raw = common::http_client();
    let mut seen = Seen::default();

    let projects = [
        name_where("obs-metrics-a", 2, |o| o == 0),
        name_where("obs-metrics-b", 2, |o| o == 1),
    ];
    let tenants = [
        name_where("obs-metrics-t", 2, |o| o == 0),
        name_where("obs-metrics-u", 2, |o| o == 1),
    ];
    let mut written = [0usize; 2];
    let mut queries = [0usize; 2];
    for (o, p) in projects.iter().enumerate() {
        written[o] += v1_traffic(&http, &mut seen, p).await;
        queries[o] += 1;
    }
    for (o, t) in tenants.iter().enumerate() {
        written[o] += v2_traffic(&http, &mut seen, t).await;
        queries[o] += 1;
    }
    // the router's own answers and fan-out
    let r = http.get("/api/v1/heartbeat").await;
    r.ok();
    seen.router_only(&r, "server");
    let r = http.get("/api/v1/projects").await;
    assert_eq!(
        r.ok()["projects"].as_array().unwrap().len(),
        4,
        "{}",
        r.text
    );
    seen.router_only(&r, "server");
    for o in 0..2 {
        *seen
            .shard
            .entry((o, "/api/v1/projects".into(), "200".into()))
            .or_default() += 1;
    }
    let r = http.get("/healthz").await;
    r.ok();
    seen.router_only(&r, "probe");
    let r = http.get("/favicon.ico").await;
    assert_eq!(r.status, 404, "{}", r.text);
    seen.router_only(&r, "unmatched");

    // a write held by a pause: the router retries it until the project resumes
    let paused = &projects[0];
    let r = raw
        .post(cluster.shards[0].url(&format!("/admin/v1/projects/{paused}/pause")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "pause: {}", r.text().await.unwrap());
    let during_pause = scrape(&raw, &cluster.shards[0].base_url(), "shard 0").await;
    assert_eq!(during_pause.get("quiver_projects_paused", &[]), 1.0);
    // chunked: a body with a Content-Length is not replayed (see the report of this test)
    let write = tokio::spawn(raw_exchange(
        cluster.router.port(),
        Method::POST,
        format!("/api/v1/{paused}/collections/docs/add"),
        json!({"ids": ["late"], "embeddings": [embedding(9)]}).to_string(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write.is_finished(),
        "the paused write was answered at once"
    );
    let r = raw
        .post(cluster.shards[0].url(&format!("/admin/v1/projects/{paused}/resume")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "resume");
    let (status, headers, body) = write.await.unwrap();
    assert_eq!(status, 200, "the paused write: {body}");
    assert_eq!(headers.get("x-quiver-shard").map(String::as_str), Some("0"));
    *seen
        .shard
        .entry((0, v1t("/add"), "200".into()))
        .or_default() += 1;
    *seen
        .router
        .entry(("v1_project".into(), "200".into()))
        .or_default() += 1;
    written[0] += 1;

    // every shard, scraped directly
    let mut project_names: Vec<&str> = projects.iter().map(String::as_str).collect();
    project_names.extend(tenants.iter().map(String::as_str));
    for o in 0..2u32 {
        let s = scrape(
            &raw,
            &cluster.shards[o as usize].base_url(),
            &format!("shard {o}"),
        )
        .await;
        assert_documented(&s, &tenant_docs);
        let routes = s.label_values("quiver_http_requests_total", "route");
        for route in &routes {
            assert!(
                route == "unmatched" || route.starts_with('/'),
                "shard {o}: route {route:?} is neither a template nor `unmatched`"
            );
            for p in &project_names {
                assert!(
                    !route.contains(p),
                    "shard {o}: route {route:?} names project {p}"
                );
            }
            assert!(
                !route.contains("docs") && !route.contains("default_database"),
                "shard {o}: route {route:?} holds a concrete collection/database"
            );
        }
        assert!(
            routes.contains(&v1t("/query")),
            "shard {o}: v1 query template missing from {routes:?}"
        );
        assert!(
            routes
                .iter()
                .any(|r| is_v2_collection_template(r, "/query")),
            "shard {o}: v2 query template missing from {routes:?}"
        );
        assert_eq!(
            s.label_values("quiver_http_request_duration_seconds", "route"),
            routes,
            "shard {o}: the duration histogram covers the routes of the counter"
        );
        for status in s.label_values("quiver_http_requests_total", "status") {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)),
                "shard {o}: status label {status:?}"
            );
        }
        for ((shard, template, status), n) in &seen.shard {
            if *shard != o {
                continue;
            }
            let got = shard_count(&s, template, status);
            assert!(
                got >= *n as f64,
                "shard {o}: quiver_http_requests_total{{route={template:?}, status={status}}} = {got}, the client saw {n}"
            );
        }
        // the paused write was answered 503 (then retried) by shard 0
        if o == 0 {
            assert!(
                shard_count(&s, &v1t("/add"), "503") >= 1.0,
                "shard 0: the paused write's 503 is not counted"
            );
        }
        assert_eq!(
            s.label_values("quiver_queries_total", "strategy"),
            set(["exact", "hnsw"])
        );
        let exact = s.get("quiver_queries_total", &[("strategy", "exact")]);
        assert!(
            exact >= queries[o as usize] as f64,
            "shard {o}: exact queries {exact} < {} sent",
            queries[o as usize]
        );
        let w = s.get("quiver_records_written_total", &[]);
        assert!(
            w >= written[o as usize] as f64,
            "shard {o}: records written {w} < {}",
            written[o as usize]
        );
        assert!(
            s.get("quiver_projects_open", &[]) >= 1.0,
            "shard {o}: no open project"
        );
        assert!(
            s.get("quiver_projects", &[]) >= 2.0,
            "shard {o}: projects on disk"
        );
        assert!(
            s.get("quiver_project_opens_total", &[]) >= 2.0,
            "shard {o}: opens"
        );
        assert_eq!(
            s.get("quiver_projects_paused", &[]),
            0.0,
            "shard {o}: resumed"
        );
        assert!(
            s.get("quiver_projects_open", &[]) <= s.get("quiver_projects_open_max", &[]),
            "shard {o}: open projects above their bound"
        );
        assert!(s.get("quiver_rocksdb_block_cache_capacity_bytes", &[]) > 0.0);
        // the scrape itself is the one request in flight
        assert_eq!(
            s.get("quiver_http_requests_in_flight", &[]),
            1.0,
            "shard {o}: in flight"
        );
        // histogram consistency: +Inf bucket == count, per route
        for route in s.label_values("quiver_http_request_duration_seconds", "route") {
            let inf = s.get(
                "quiver_http_request_duration_seconds_bucket",
                &[("route", &route), ("le", "+Inf")],
            );
            let count = s.get(
                "quiver_http_request_duration_seconds_count",
                &[("route", &route)],
            );
            assert_eq!(inf, count, "shard {o}: {route}");
            let requests: f64 = s
                .family("quiver_http_requests_total")
                .iter()
                .filter(|x| x.labels.get("route") == Some(&route))
                .map(|x| x.value)
                .sum();
            assert_eq!(
                count, requests,
                "shard {o}: {route}: timed vs counted requests"
            );
        }
    }

    // a dead shard: the router counts the failed connection
    cluster.shards[1].kill();
    let r = http
        .get(&format!("/api/v1/{}/collections/docs/count", projects[1]))
        .await;
    r.err(503, "ShardUnavailable");
    seen.router_only(&r, "v1_project");

    let s = scrape(&raw, &cluster.router.url(""), "router").await;
    assert_documented(&s, &router_docs);
    assert_eq!(
        s.label_values("quiver_http_requests_total", "route"),
        set([
            "v1_project",
            "v2_tenant",
            "v2_create_tenant",
            "server",
            "probe",
            "unmatched"
        ]),
        "router route classes"
    );
    for ((class, status), n) in &seen.router {
        let got = s.value(
            "quiver_http_requests_total",
            &[("route", class), ("status", status)],
        );
        assert!(
            got.unwrap_or(0.0) >= *n as f64,
            "router: quiver_http_requests_total{{route={class}, status={status}}} = {got:?}, the client saw {n}"
        );
    }
    assert_eq!(
        s.label_values("quiver_http_request_duration_seconds", "route"),
        s.label_values("quiver_http_requests_total", "route")
    );
    let shards = s.label_values("quiver_router_upstream_duration_seconds", "shard");
    assert!(
        shards.is_subset(&set(["0", "1"])),
        "router upstream shards {shards:?}"
    );
    assert_eq!(shards, set(["0", "1"]), "both shards were called");
    let attempts: f64 = ["0", "1"]
        .iter()
        .map(|o| {
            s.get(
                "quiver_router_upstream_duration_seconds_count",
                &[("shard", o)],
            )
        })
        .sum();
    let proxied: u64 = seen.shard.values().sum();
    assert!(
        attempts >= proxied as f64,
        "upstream attempts {attempts} < {proxied} answered"
    );
    assert!(
        s.get(
            "quiver_router_upstream_errors_total",
            &[("shard", "1"), ("kind", "connect")]
        ) >= 1.0,
        "the dead shard's refused connection"
    );
    for kind in s.label_values("quiver_router_upstream_errors_total", "kind") {
        assert!(
            set(["connect", "io", "timeout"]).contains(&kind),
            "error kind {kind}"
        );
    }
    assert!(
        s.get("quiver_router_retries_total", &[("reason", "paused")]) >= 1.0,
        "the paused write's retries"
    );
    for reason in s.label_values("quiver_router_retries_total", "reason") {
        assert!(
            set(["paused", "moved", "placement_changed"]).contains(&reason),
            "retry reason {reason}"
        );
    }
    assert_eq!(s.get("quiver_router_placement_epoch", &[]), 0.0);
    assert_eq!(s.get("quiver_router_placement_shards", &[]), 2.0);
    assert_eq!(
        s.label_values("quiver_router_placement_updates_total", "result"),
        set(["applied"])
    );
    assert_eq!(
        s.get("quiver_http_requests_in_flight", &[]),
        1.0,
        "router: in flight"
    );
    for x in &s.samples {
        for v in x.labels.values() {
            for p in &project_names {
                assert!(!v.contains(p), "router: {} names project {p}", x.key());
            }
        }
    }
}

/// The route labels are the templates docs/observability.md spells out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_route_labels_are_the_documented_templates() {
    json_debug_logs();
    let doc = std::fs::read_to_string(docs_dir().join("observability.md")).unwrap();
    assert!(
        doc.contains(V2_DOCUMENTED_QUERY),
        "the documented example changed"
    );
    let cluster = Cluster::start(1, Source::Static).await;
    let mut seen = Seen::default();
    v1_traffic(&cluster.http, &mut seen, "obs-doc-templates").await;
    v2_traffic(&cluster.http, &mut seen, "obs-doc-templates-v2").await;
    let s = scrape(
        &common::http_client(),
        &cluster.shards[0].base_url(),
        "shard 0",
    )
    .await;
    let routes = s.label_values("quiver_http_requests_total", "route");
    for documented in [
        "/api/v1/{project}/collections/{collection}/query",
        V2_DOCUMENTED_QUERY,
    ] {
        assert!(
            routes.contains(documented),
            "documented route {documented:?} not among {routes:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. cardinality

/// One project's requests: create (v1), add, query, and the collection read through v2.
async fn touch(http: &Http, p: &str) {
    let r = http
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "cardcoll"}),
        )
        .await;
    r.ok();
    let r = http
        .post(
            &format!("/api/v1/{p}/collections/cardcoll/add"),
            &json!({"ids": ["a", "b"], "embeddings": [[1.0, 0.0], [0.0, 1.0]]}),
        )
        .await;
    r.ok();
    let r = http
        .post(
            &format!("/api/v1/{p}/collections/cardcoll/query"),
            &json!({"query_embeddings": [[1.0, 0.1]], "n_results": 1}),
        )
        .await;
    assert_eq!(r.ok()["results"]["ids"][0][0], json!("a"), "{}", r.text);
    let r = http
        .get(&format!(
            "/api/v2/tenants/{p}/databases/default_database/collections/cardcoll"
        ))
        .await;
    assert_eq!(r.ok()["name"], json!("cardcoll"), "{}", r.text);
}

async fn scrape_all(raw: &reqwest::Client, cluster: &Cluster) -> Vec<Scrape> {
    let mut out = vec![scrape(raw, &cluster.router.url(""), "router").await];
    for s in &cluster.shards {
        out.push(scrape(raw, &s.base_url(), &format!("shard {}", s.ordinal)).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_cardinality_stays_bounded_over_a_thousand_projects() {
    const PROJECTS: usize = 1000;
    const FIRST: usize = 100;
    const MAX_CHILDREN: usize = 40;
    const PREFIX: &str = "cardinal";
    json_debug_logs();
    let started = Instant::now();
    let cluster = Cluster::start(2, Source::Static).await;
    let raw = common::http_client();
    let names: Vec<String> = (0..PROJECTS).map(|i| format!("{PREFIX}-{i:04}")).collect();
    // one scrape of every binary first: the /metrics route's own series exist from here on
    scrape_all(&raw, &cluster).await;

    let done = AtomicUsize::new(0);
    let run = |range: std::ops::Range<usize>| {
        let http = &cluster.http;
        let names = &names;
        let done = &done;
        stream::iter(range).for_each_concurrent(6, move |i| async move {
            touch(http, &names[i]).await;
            done.fetch_add(1, Ordering::Relaxed);
        })
    };
    run(0..FIRST).await;
    let after_first = scrape_all(&raw, &cluster).await;
    let t_first = started.elapsed();
    run(FIRST..PROJECTS).await;
    let after_all = scrape_all(&raw, &cluster).await;
    assert_eq!(done.load(Ordering::Relaxed), PROJECTS);
    eprintln!(
        "{PROJECTS} projects in {:?} ({FIRST} in {t_first:?})",
        started.elapsed()
    );

    for (a, b) in after_first.iter().zip(&after_all) {
        let who = &b.who;
        // bounded: no family grows a child per project
        for (family, n) in b.children_per_family() {
            assert!(n <= MAX_CHILDREN, "{who}: {family} has {n} label sets");
        }
        // the same kinds of requests leave the same series, whatever the number of projects
        let (sa, sb) = (a.series(), b.series());
        assert_eq!(
            sb.difference(&sa).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{who}: series that appeared between {FIRST} and {PROJECTS} projects"
        );
        assert_eq!(
            sa.difference(&sb).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{who}: series that disappeared"
        );
        // no label names a project or collection
        for x in &b.samples {
            for v in x.labels.values() {
                assert!(
                    !v.contains(PREFIX) && !v.contains("cardcoll"),
                    "{who}: {} carries a project or collection name",
                    x.key()
                );
            }
        }
    }
    // the counters did see the traffic: four requests per project
    let requests = |s: &Scrape| -> f64 {
        s.family("quiver_http_requests_total")
            .iter()
            .map(|x| x.value)
            .sum()
    };
    let at_router = requests(&after_all[0]);
    let at_shards: f64 = after_all[1..].iter().map(requests).sum();
    assert!(
        at_router >= (4 * PROJECTS) as f64,
        "router: {at_router} requests counted"
    );
    assert!(
        at_shards >= (4 * PROJECTS) as f64,
        "shards: {at_shards} requests counted"
    );
    for s in &after_all[1..] {
        let open = s.get("quiver_projects_open", &[]);
        assert!(
            open >= 1.0 && open <= s.get("quiver_projects_open_max", &[]),
            "{}: {open} open",
            s.who
        );
        assert_eq!(s.get("quiver_projects_open_max", &[]), 32.0, "{}", s.who);
        assert!(
            s.get("quiver_project_evictions_total", &[]) >= 300.0,
            "{}: {open} open, evictions {}",
            s.who,
            s.get("quiver_project_evictions_total", &[])
        );
    }
    for s in &after_all {
        assert!(
            s.series().len() >= 50,
            "{}: {} series only",
            s.who,
            s.series().len()
        );
    }
    let shard_projects: f64 = after_all[1..]
        .iter()
        .map(|s| s.get("quiver_project_opens_total", &[]))
        .sum();
    assert!(
        shard_projects >= PROJECTS as f64,
        "project opens: {shard_projects}"
    );
    let written: f64 = after_all[1..]
        .iter()
        .map(|s| s.get("quiver_records_written_total", &[]))
        .sum();
    assert_eq!(
        written,
        2.0 * PROJECTS as f64,
        "records written over the shards"
    );
}

// ---------------------------------------------------------------------------------------
// 3. trace ids in JSON logs

fn random_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// The JSON objects of a log (lines that are not JSON are left out).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

/// The trace ids a line carries: its current span's and those of its span list.
fn trace_ids(line: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(t) = line["span"]["trace_id"].as_str() {
        out.insert(t.to_string());
    }
    if let Some(spans) = line["spans"].as_array() {
        for s in spans {
            if let Some(t) = s["trace_id"].as_str() {
                out.insert(t.to_string());
            }
        }
    }
    if let Some(t) = line["trace_id"].as_str() {
        out.insert(t.to_string());
    }
    out
}

fn lines_with_trace<'a>(lines: &'a [Value], trace: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| trace_ids(l).contains(trace))
        .collect()
}

/// Waits until `read()` holds a JSON line carrying `trace` (logs are written as they
/// come, but not necessarily before the response).
async fn wait_for_trace(read: impl Fn() -> String, trace: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = json_lines(&read());
        if !lines_with_trace(&lines, trace).is_empty() || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is_hex_trace_id(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) && t.bytes().any(|b| b != b'0')
}

/// Spans that exist only while a request is served: a line logged in one of them belongs
/// to a request and must carry its trace id.
const REQUEST_SPANS: &[&str] = &[
    "HTTP request",
    "route",
    "upstream",
    "collection.query",
    "collection.get",
    "records.write",
    "records.delete",
    "project.open",
];

#[track_caller]
fn assert_request_lines_carry_a_trace_id(who: &str, lines: &[Value]) {
    let orphans: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["span"]["name"]
                .as_str()
                .is_some_and(|n| REQUEST_SPANS.contains(&n))
        })
        .filter(|l| trace_ids(l).is_empty())
        .collect();
    assert!(
        orphans.is_empty(),
        "{who}: {} line(s) logged inside a request without its trace id, e.g. {}",
        orphans.len(),
        orphans[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_trace_id() {
    json_debug_logs();
    let dir = tempfile::tempdir().unwrap();
    let shard = common::start_shard(0, dir.path()).await;
    let http = Http::new(shard.base_url());
    let p = "obs-logs-direct";
    http.post(
        &format!("/api/v1/{p}/collections"),
        &json!({"name": "docs"}),
    )
    .await
    .ok();
    http.post(
        &format!("/api/v1/{p}/collections/docs/add"),
        &json!({"ids": ["a", "b"], "embeddings": [[1.0, 0.0], [0.0, 1.0]]}),
    )
    .await
    .ok();

    // a successful request in the caller's trace
    let t_ok = random_hex(32);
    let tp = format!("00-{t_ok}-{}-01", random_hex(16));
    let r = http
        .send(
            Method::POST,
            &format!("/api/v1/{p}/collections/docs/query"),
            Some(
                json!({"query_embeddings": [[1.0, 0.0]], "n_results": 1})
                    .to_string()
                    .into_bytes(),
            ),
            &[("traceparent", &tp)],
        )
        .await;
    r.ok();
    // a failing one in the caller's trace: the error names the caller's trace id
    let t_err = random_hex(32);
    let tp = format!("00-{t_err}-{}-01", random_hex(16));
    let r = http
        .send(
            Method::GET,
            &format!("/api/v1/{p}/collections/missing"),
            None,
            &[("traceparent", &tp)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        r.header("chroma-trace-id"),
        Some(t_err.as_str()),
        "{:?}",
        r.headers
    );
    // no traceparent: a fresh random trace id, in the error response and in the log
    let r = http.get(&format!("/api/v1/{p}/collections/missing")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let t_new = r
        .header("chroma-trace-id")
        .expect("chroma-trace-id")
        .to_string();
    assert!(is_hex_trace_id(&t_new), "fresh trace id {t_new:?}");
    assert_ne!(t_new, t_err);
    let r2 = http.get(&format!("/api/v1/{p}/collections/missing")).await;
    let t_new2 = r2
        .header("chroma-trace-id")
        .expect("chroma-trace-id")
        .to_string();
    assert!(
        is_hex_trace_id(&t_new2) && t_new2 != t_new,
        "trace ids are per request"
    );

    for (trace, route, status) in [
        (&t_ok, v1t("/query"), 200),
        (&t_err, V1_COLLECTION.to_string(), 404),
        (&t_new, V1_COLLECTION.to_string(), 404),
    ] {
        let lines = wait_for_trace(|| shard.log(), trace).await;
        let mine = lines_with_trace(&lines, trace);
        let done = mine
            .iter()
            .find(|l| l["fields"]["message"] == json!("request done"))
            .unwrap_or_else(|| {
                let log = shard.log();
                panic!(
                    "shard: no `request done` line with trace id {trace}; lines with it: {mine:?}; \
                     log tail:\n{}",
                    &log[log.len().saturating_sub(3000)..]
                )
            });
        assert_eq!(done["level"], json!("DEBUG"), "{done}");
        assert_eq!(done["fields"]["status"], json!(status), "{done}");
        assert_eq!(done["span"]["http.route"], json!(route), "{done}");
        assert_eq!(done["span"]["name"], json!("HTTP request"), "{done}");
        // the trace id is the span's field, not text in the message
        assert_eq!(done["span"]["trace_id"], json!(trace), "{done}");
    }
    let lines = json_lines(&shard.log());
    assert!(
        lines_with_trace(&lines, "00000000000000000000000000000000").is_empty(),
        "a request logged with the all-zero trace id"
    );
    assert_request_lines_carry_a_trace_id("shard", &lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_of_router_and_shard_share_the_trace_id() {
    json_debug_logs();
    let cluster = Cluster::start(2, Source::Static).await;
    let http = &cluster.http;
    let p = name_where("obs-logs-routed", 2, |o| o == 1);
    http.post(
        &format!("/api/v1/{p}/collections"),
        &json!({"name": "docs"}),
    )
    .await
    .ok_from(1);

    // the client's trace: router and shard log it, the shard's error names it
    let t_client = random_hex(32);
    let tp = format!("00-{t_client}-{}-01", random_hex(16));
    let r = http
        .send(
            Method::GET,
            &format!("/api/v1/{p}/collections/missing"),
            None,
            &[("traceparent", &tp)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.shard(), Some(1));
    assert_eq!(r.header("chroma-trace-id"), Some(t_client.as_str()));

    // no traceparent: the router's own trace id reaches the shard and the client
    let r = http.get(&format!("/api/v1/{p}/collections/missing")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let t_router = r
        .header("chroma-trace-id")
        .expect("chroma-trace-id")
        .to_string();
    assert!(is_hex_trace_id(&t_router), "{t_router:?}");
    assert_ne!(t_router, t_client);

    for trace in [&t_client, &t_router] {
        let shard_lines = wait_for_trace(|| cluster.shards[1].log(), trace).await;
        assert!(
            lines_with_trace(&shard_lines, trace)
                .iter()
                .any(|l| l["fields"]["message"] == json!("request done")),
            "shard 1: no `request done` line with trace id {trace}"
        );
        let router_lines = wait_for_trace(|| cluster.router.log(), trace).await;
        let mine = lines_with_trace(&router_lines, trace);
        assert!(
            !mine.is_empty(),
            "router: no log line with trace id {trace}; its lines about {p}: {:#?}",
            router_lines
                .iter()
                .filter(|l| l.to_string().contains(p.as_str()))
                .collect::<Vec<_>>()
        );
        assert!(
            lines_with_trace(
                &cluster.shards[0]
                    .log()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<Value>>(),
                trace
            )
            .is_empty(),
            "shard 0 logged a request it never served"
        );
    }
    assert_request_lines_carry_a_trace_id("router", &json_lines(&cluster.router.log()));
    assert_request_lines_carry_a_trace_id("shard 1", &json_lines(&cluster.shards[1].log()));
}

// ---------------------------------------------------------------------------------------
// in flight

/// A client that gives up on a request (here: a write held by a paused project, which the
/// router keeps retrying) must not leave the router's in-flight gauge up for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_gauge_comes_back_down_when_a_client_gives_up() {
    json_debug_logs();
    let cluster = Cluster::start(1, Source::Static).await;
    let raw = common::http_client();
    let p = "obs-in-flight";
    cluster
        .http
        .post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "docs"}),
        )
        .await
        .ok();
    let r = raw
        .post(cluster.shards[0].url(&format!("/admin/v1/projects/{p}/pause")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut held = raw_send(
        cluster.router.port(),
        Method::POST,
        &format!("/api/v1/{p}/collections/docs/add"),
        &json!({"ids": ["a"], "embeddings": [[1.0, 2.0]]}).to_string(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = scrape(&raw, &cluster.router.url(""), "router").await;
    assert_eq!(
        s.get("quiver_http_requests_in_flight", &[]),
        2.0,
        "router: the held write and this scrape are in flight"
    );
    // the client gives up: its connection closes before any answer
    let mut buf = [0u8; 1];
    let answered = tokio::time::timeout(Duration::from_millis(10), held.read(&mut buf)).await;
    assert!(answered.is_err(), "the held write was answered");
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = raw
        .post(cluster.shards[0].url(&format!("/admin/v1/projects/{p}/resume")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // the router's retries (20 ms doubling to 500 ms) would have finished by now
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = scrape(&raw, &cluster.router.url(""), "router").await;
    assert_eq!(
        s.get("quiver_http_requests_in_flight", &[]),
        1.0,
        "router: requests in flight besides this scrape"
    );
    let s = scrape(&raw, &cluster.shards[0].base_url(), "shard 0").await;
    assert_eq!(s.get("quiver_http_requests_in_flight", &[]), 1.0, "shard 0");
}

// ---------------------------------------------------------------------------------------
// freshness

/// `quiver_projects` is documented as the projects on the server's disk (only the record
/// and byte totals are documented as refreshed at most every 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_gauge_counts_new_projects_at_once() {
    json_debug_logs();
    let dir = tempfile::tempdir().unwrap();
    let shard = common::start_shard(0, dir.path()).await;
    let raw = common::http_client();
    let before = scrape(&raw, &shard.base_url(), "shard").await;
    assert_eq!(before.get("quiver_projects", &[]), 0.0);
    let http = Http::new(shard.base_url());
    for p in ["obs-fresh-a", "obs-fresh-b", "obs-fresh-c"] {
        http.post(
            &format!("/api/v1/{p}/collections"),
            &json!({"name": "docs"}),
        )
        .await
        .ok();
    }
    let after = scrape(&raw, &shard.base_url(), "shard").await;
    assert_eq!(after.get("quiver_projects_open", &[]), 3.0);
    assert_eq!(after.get("quiver_projects", &[]), 3.0, "projects on disk");
}
