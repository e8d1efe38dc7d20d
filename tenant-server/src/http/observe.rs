//! What every request leaves behind: its server span (continuing the caller's W3C trace),
//! a log line for server errors, and the request metrics; and the `/metrics` endpoint.
//!
//! Metric labels are bounded: route templates (never concrete paths), status codes and
//! fixed names. Project and collection names never become labels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tracing::Instrument;

use quiver_telemetry::metrics::HttpMetrics;

use crate::store::counters;
use crate::store::Registry as Store;

/// How long the totals over every project on disk (which read each closed project's saved
/// figures) are reused between scrapes.
const TOTALS_TTL: Duration = Duration::from_secs(30);

pub struct Metrics {
    registry: Registry,
    /// Requests by route template.
    http: HttpMetrics,
    store: StoreGauges,
    /// Records and bytes over all projects, and when they were summed.
    totals: Mutex<Option<(Instant, u64, u64)>>,
}

struct StoreGauges {
    projects_open: IntGauge,
    projects_open_max: IntGauge,
    projects_busy: IntGauge,
    projects_paused: IntGauge,
    project_opens: IntCounter,
    project_closes: IntCounter,
    project_evictions: IntCounter,
    project_idle_closes: IntCounter,
    loaded_memory: IntGauge,
    unindexed_records: IntGauge,
    records_written: IntCounter,
    records_deleted: IntCounter,
    queries: IntCounterVec,
    collection_loads: IntCounterVec,
    points_indexed: IntCounter,
    index_rebuilds: IntCounter,
    block_cache_usage: IntGauge,
    block_cache_pinned: IntGauge,
    block_cache_capacity: IntGauge,
    write_buffer_usage: IntGauge,
    write_buffer_capacity: IntGauge,
    projects: IntGauge,
    records: IntGauge,
    bytes: IntGauge,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

/// Brings a counter mirrored from a monotonic source up to `value`.
fn catch_up(c: &IntCounter, value: u64) {
    let have = c.get();
    if value > have {
        c.inc_by(value - have);
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let r = Registry::new();
        let http = HttpMetrics::register(&r);
        let queries = IntCounterVec::new(
            Opts::new(
                "quiver_queries_total",
                "Query embeddings answered, by strategy (exact scan or HNSW graph)",
            ),
            &["strategy"],
        )
        .expect("valid metric");
        r.register(Box::new(queries.clone()))
            .expect("unique metric");
        let collection_loads = IntCounterVec::new(
            Opts::new(
                "quiver_collection_loads_total",
                "Collections loaded into memory, by source: their index files alone, or the files checked against RocksDB (or rebuilt from it)",
            ),
            &["from"],
        )
        .expect("valid metric");
        r.register(Box::new(collection_loads.clone()))
            .expect("unique metric");
        let store = StoreGauges {
            projects_open: gauge(&r, "quiver_projects_open", "Projects open now"),
            projects_open_max: gauge(&r, "quiver_projects_open_max", "Bound on open projects"),
            projects_busy: gauge(
                &r,
                "quiver_projects_opening_or_closing",
                "Projects being opened or closed now",
            ),
            projects_paused: gauge(
                &r,
                "quiver_projects_paused",
                "Projects whose writes are paused for a move",
            ),
            project_opens: counter(&r, "quiver_project_opens_total", "Projects opened"),
            project_closes: counter(&r, "quiver_project_closes_total", "Projects closed"),
            project_evictions: counter(
                &r,
                "quiver_project_evictions_total",
                "Projects closed to respect the open-project and memory bounds (LRU)",
            ),
            project_idle_closes: counter(
                &r,
                "quiver_project_idle_closes_total",
                "Projects closed after being idle",
            ),
            loaded_memory: gauge(
                &r,
                "quiver_loaded_memory_bytes",
                "Estimated memory of the collections loaded by open projects (vectors and graphs)",
            ),
            unindexed_records: gauge(
                &r,
                "quiver_index_unindexed_records",
                "Records of loaded collections written but not yet in their HNSW graph (queries find them by exact scan meanwhile)",
            ),
            records_written: counter(
                &r,
                "quiver_records_written_total",
                "Records added, upserted or updated",
            ),
            records_deleted: counter(&r, "quiver_records_deleted_total", "Records deleted"),
            queries,
            collection_loads,
            points_indexed: counter(
                &r,
                "quiver_hnsw_points_indexed_total",
                "Points inserted into HNSW graphs",
            ),
            index_rebuilds: counter(
                &r,
                "quiver_hnsw_rebuilds_total",
                "HNSW graphs rebuilt from scratch",
            ),
            block_cache_usage: gauge(
                &r,
                "quiver_rocksdb_block_cache_usage_bytes",
                "Bytes in the block cache shared by all open projects",
            ),
            block_cache_pinned: gauge(
                &r,
                "quiver_rocksdb_block_cache_pinned_bytes",
                "Block cache bytes pinned by readers",
            ),
            block_cache_capacity: gauge(
                &r,
                "quiver_rocksdb_block_cache_capacity_bytes",
                "Block cache capacity",
            ),
            write_buffer_usage: gauge(
                &r,
                "quiver_rocksdb_write_buffer_usage_bytes",
                "Memtable bytes across open projects",
            ),
            write_buffer_capacity: gauge(
                &r,
                "quiver_rocksdb_write_buffer_capacity_bytes",
                "Memtable budget shared by open projects",
            ),
            projects: gauge(&r, "quiver_projects", "Projects on this server's disk"),
            records: gauge(
                &r,
                "quiver_records",
                "Records stored across all projects (closed projects: as of their last close)",
            ),
            bytes: gauge(
                &r,
                "quiver_stored_bytes",
                "Bytes stored across all projects",
            ),
        };
        Arc::new(Metrics {
            registry: r,
            http,
            store,
            totals: Mutex::new(None),
        })
    }

    fn refresh(&self, store: &Store) {
        let s = &self.store;
        let f = store.live_figures();
        s.projects_open.set(f.open_projects as i64);
        s.projects_open_max.set(f.max_open_projects as i64);
        s.projects_busy.set(f.busy_projects as i64);
        s.projects_paused.set(f.paused_projects as i64);
        s.loaded_memory.set(f.loaded_memory_bytes as i64);
        s.unindexed_records.set(f.unindexed_records as i64);
        s.block_cache_usage.set(f.block_cache_usage_bytes as i64);
        s.block_cache_pinned.set(f.block_cache_pinned_bytes as i64);
        s.block_cache_capacity
            .set(f.block_cache_capacity_bytes as i64);
        s.write_buffer_usage.set(f.write_buffer_usage_bytes as i64);
        s.write_buffer_capacity
            .set(f.write_buffer_capacity_bytes as i64);
        catch_up(&s.project_evictions, f.evictions);
        catch_up(&s.project_idle_closes, f.idle_closes);
        catch_up(&s.project_opens, counters::get(&counters::PROJECT_OPENS));
        catch_up(&s.project_closes, counters::get(&counters::PROJECT_CLOSES));
        catch_up(
            &s.records_written,
            counters::get(&counters::RECORDS_WRITTEN),
        );
        catch_up(
            &s.records_deleted,
            counters::get(&counters::RECORDS_DELETED),
        );
        catch_up(&s.points_indexed, counters::get(&counters::POINTS_INDEXED));
        catch_up(&s.index_rebuilds, counters::get(&counters::INDEX_REBUILDS));
        catch_up(
            &s.queries.with_label_values(&["exact"]),
            counters::get(&counters::QUERIES_EXACT),
        );
        catch_up(
            &s.queries.with_label_values(&["hnsw"]),
            counters::get(&counters::QUERIES_GRAPH),
        );
        catch_up(
            &s.collection_loads.with_label_values(&["files"]),
            counters::get(&counters::LOADS_FROM_FILES),
        );
        catch_up(
            &s.collection_loads.with_label_values(&["rocksdb"]),
            counters::get(&counters::LOADS_FROM_ROCKSDB),
        );
        // the project count is cheap (one directory listing): always current
        if let Ok(n) = store.project_count() {
            s.projects.set(n as i64);
        }
        let mut totals = self.totals.lock();
        let fresh = totals.is_some_and(|(at, ..)| at.elapsed() < TOTALS_TTL);
        if !fresh {
            if let Ok(list) = store.list_projects() {
                let records = list.iter().filter_map(|p| p.records).sum();
                let bytes = list.iter().map(|p| p.bytes).sum();
                *totals = Some((Instant::now(), records, bytes));
            }
        }
        if let Some((_, records, bytes)) = *totals {
            s.records.set(records as i64);
            s.bytes.set(bytes as i64);
        }
    }

    /// The Prometheus text exposition, with the store figures read now.
    pub fn render(&self, store: &Store) -> String {
        self.refresh(store);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Middleware: the request's server span, metrics and error log; error responses carry
/// the request's trace id in `chroma-trace-id` (the chromadb client reports it).
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let (span, trace_id) = quiver_telemetry::http::server_span(&req, &route);
    req.extensions_mut().insert(trace_id);
    let started = Instant::now();
    let mut flight = metrics.http.start(&route);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    quiver_telemetry::http::record_response(&span, &resp);
    let status = resp.status();
    flight.finish(status);
    drop(flight);
    if resp.headers().contains_key("chroma-trace-id") {
        if let Ok(v) = HeaderValue::from_str(trace_id.as_str()) {
            resp.headers_mut().insert("chroma-trace-id", v);
        }
    }
    span.in_scope(|| {
        // the router retries the 503s of paused and moved projects: not errors
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(
                status = status.as_u16(),
                latency_ms = elapsed.as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                latency_ms = elapsed.as_millis() as u64,
                "request done"
            );
        }
    });
    resp
}

pub async fn metrics_endpoint(State(state): State<super::AppState>) -> Response {
    let metrics = Arc::clone(&state.metrics);
    let store = Arc::clone(&state.registry);
    let text = tokio::task::spawn_blocking(move || metrics.render(&store))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
