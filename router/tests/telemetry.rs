//! Traces and metrics across processes: router + tenant servers exporting to an OTLP
//! receiver running in this test, and `/metrics` scraped from both.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use common::{Cluster, Source};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use parking_lot::Mutex;
use prost::Message;
use reqwest::Method;
use serde_json::json;

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attrs: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP receiver (protobuf) on a free loopback port.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    let spans: Arc<Mutex<Vec<Got>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&spans);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let req = match ExportTraceServiceRequest::decode(body) {
                    Ok(r) => r,
                    Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
                };
                let mut out = sink.lock();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                        .map(value)
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            out.push(Got {
                                service: service.clone(),
                                name: s.name.clone(),
                                kind: s.kind,
                                trace_id: hex(&s.trace_id),
                                span_id: hex(&s.span_id),
                                parent: hex(&s.parent_span_id),
                                attrs: s
                                    .attributes
                                    .iter()
                                    .map(|a| (a.key.clone(), value(a)))
                                    .collect(),
                            });
                        }
                    }
                }
                (axum::http::StatusCode::OK, String::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), spans)
}

const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_request_is_one_trace_across_router_and_tenant_server() {
    let (endpoint, spans) = otlp_receiver().await;
    common::set_child_env(&[
        ("OTEL_SDK_DISABLED", "false"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    let cluster = Cluster::start(2, Source::Static).await;
    let http = &cluster.http;

    let project = "traced-project";
    http.post(
        &format!("/api/v1/{project}/collections"),
        &json!({"name": "docs"}),
    )
    .await
    .ok();

    let trace_add = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span_add = "00f067aa0ba902b7";
    let tp_add = format!("00-{trace_add}-{client_span_add}-01");
    let r = http
        .send(
            Method::POST,
            &format!("/api/v1/{project}/collections/docs/add"),
            Some(
                json!({"ids": ["a", "b"], "embeddings": [[1.0, 0.0], [0.0, 1.0]], "documents": ["x", "y"]})
                    .to_string()
                    .into_bytes(),
            ),
            &[("traceparent", tp_add.as_str())],
        )
        .await;
    r.ok();

    let trace_q = "0af7651916cd43dd8448eb211c80319c";
    let client_span_q = "b7ad6b7169203331";
    let tp_q = format!("00-{trace_q}-{client_span_q}-01");
    let r = http
        .send(
            Method::POST,
            &format!("/api/v1/{project}/collections/docs/query"),
            Some(
                json!({"query_embeddings": [[1.0, 0.0]], "n_results": 1})
                    .to_string()
                    .into_bytes(),
            ),
            &[("traceparent", tp_q.as_str())],
        )
        .await;
    r.ok();

    for (trace, client_span, store_span) in [
        (trace_add, client_span_add, "records.write"),
        (trace_q, client_span_q, "collection.query"),
    ] {
        // wait for both services' batches
        let deadline = Instant::now() + Duration::from_secs(15);
        let got = loop {
            let got: Vec<Got> = spans
                .lock()
                .iter()
                .filter(|s| s.trace_id == trace)
                .cloned()
                .collect();
            let services: BTreeSet<&str> = got.iter().map(|s| s.service.as_str()).collect();
            if services.contains("quiver-router")
                && services.contains("quiver-tenant-server")
                && got.iter().any(|s| s.name == store_span)
            {
                break got;
            }
            assert!(
                Instant::now() < deadline,
                "spans of trace {trace} incomplete: {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let one = |pred: &dyn Fn(&Got) -> bool, what: &str| -> Got {
            let m: Vec<&Got> = got.iter().filter(|s| pred(s)).collect();
            assert_eq!(m.len(), 1, "{what}: {m:#?}\nall: {got:#?}");
            m[0].clone()
        };
        let router_server = one(
            &|s| s.service == "quiver-router" && s.kind == KIND_SERVER,
            "router server span",
        );
        assert_eq!(
            router_server.parent, client_span,
            "router span continues the client's"
        );
        assert_eq!(router_server.attr("http.request.method"), Some("POST"));
        assert_eq!(router_server.attr("http.response.status_code"), Some("200"));
        let upstream = one(
            &|s| s.service == "quiver-router" && s.kind == KIND_CLIENT,
            "router upstream span",
        );
        assert_eq!(upstream.parent, router_server.span_id);
        let shard_server = one(
            &|s| s.service == "quiver-tenant-server" && s.kind == KIND_SERVER,
            "tenant-server server span",
        );
        assert_eq!(
            shard_server.parent, upstream.span_id,
            "shard continues the router's client span"
        );
        assert!(
            shard_server
                .attr("http.route")
                .is_some_and(|r| r.contains("{project}")),
            "route template: {shard_server:?}"
        );
        let store = one(&|s| s.name == store_span, store_span);
        // the store span sits under the shard's request span (possibly through others)
        let mut cur = store.parent.clone();
        let mut hops = 0;
        while cur != shard_server.span_id {
            let up = got
                .iter()
                .find(|s| s.span_id == cur)
                .unwrap_or_else(|| panic!("{store_span} is not under the request span: {got:#?}"));
            cur = up.parent.clone();
            hops += 1;
            assert!(hops < 10);
        }
        assert_eq!(store.attr("quiver.project"), Some(project));
        if store_span == "collection.query" {
            assert_eq!(store.attr("quiver.strategy"), Some("Exact"));
            assert_eq!(store.attr("quiver.candidates"), Some("2"));
        } else {
            assert_eq!(store.attr("quiver.batch_size"), Some("2"));
        }
        let route = one(&|s| s.name == "route", "route span");
        assert_eq!(route.attr("quiver.project"), Some(project));
    }
}
