//! The operator's own HTTP endpoint (`--metrics-port`): `/metrics`, `/healthz`, `/readyz`.
//!
//! Readiness does not depend on leadership: a standby replica is healthy and ready to take
//! over, and marking it unready would only make rollouts wait on it for nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use prometheus::Registry;
use quiver_telemetry::metrics::HttpMetrics;
use serde_json::json;

/// How long `/readyz` waits for its check; kubelet's default probe timeout is 1 s, but a
/// slow API server should read as "not ready", not as a hung probe.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/readyz` asks: `Ok` when the operator can do its work (it reaches the Kubernetes
/// API), else the reason.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    http: Arc<HttpMetrics>,
    ready: ReadyCheck,
}

/// The routes, with the request metrics (`quiver_http_*`, registered in `registry`) of the
/// endpoint itself.
pub fn router(registry: Registry, ready: ReadyCheck) -> Router {
    let http = Arc::new(HttpMetrics::register(&registry));
    let state = AppState {
        registry,
        http,
        ready,
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Readiness through the Kubernetes API: its `/version` answers (any authenticated
/// identity may read it, so no extra RBAC).
pub fn kube_ready_check(client: kube::Client) -> ReadyCheck {
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            client
                .apiserver_version()
                .await
                .map(|_| ())
                .map_err(|e| format!("the Kubernetes API does not answer: {e}"))
        })
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests in
/// progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Counts and times each request by its route template (bounded), like the other binaries.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let mut flight = s.http.start(&route);
    let resp = next.run(req).await;
    flight.finish(resp.status());
    resp
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&s.registry),
    )
        .into_response()
}

/// Liveness: the process serves requests.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Response {
    let outcome = tokio::time::timeout(READY_CHECK_TIMEOUT, (s.ready)()).await;
    let reason = match outcome {
        Ok(Ok(())) => return Json(json!({"status": "ready"})).into_response(),
        Ok(Err(reason)) => reason,
        Err(_) => format!(
            "the readiness check took longer than {} s",
            READY_CHECK_TIMEOUT.as_secs()
        ),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "NotReady", "message": reason})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::metrics::OperatorMetrics;

    fn check(flag: Arc<AtomicBool>) -> ReadyCheck {
        Arc::new(move || {
            let ok = flag.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("api down".to_string())
                }
            })
        })
    }

    /// Serves `app` on a loopback port for the rest of the test.
    async fn start(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app, std::future::pending()));
        format!("http://{addr}")
    }

    async fn get(base: &str, path: &str) -> (StatusCode, String) {
        let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        (status, resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn probes_and_metrics() {
        let registry = Registry::new();
        let m = OperatorMetrics::register(&registry).unwrap();
        m.set_leader(false);
        let up = Arc::new(AtomicBool::new(true));
        let app = start(router(registry, check(Arc::clone(&up)))).await;

        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
        up.store(false, Ordering::SeqCst);
        let (status, body) = get(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("api down"), "{body}");
        assert_eq!(get(&app, "/nope").await.0, StatusCode::NOT_FOUND);

        let (status, text) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        // a standby replica exposes its (zero) leadership too
        assert!(text.contains("quiver_operator_leader 0"), "{text}");
        for line in [
            "quiver_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
            "quiver_http_requests_total{route=\"/readyz\",status=\"200\"} 1",
            "quiver_http_requests_total{route=\"/readyz\",status=\"503\"} 1",
            "quiver_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
            "quiver_http_requests_in_flight 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[tokio::test]
    async fn serves_until_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Registry::new(), check(Arc::new(AtomicBool::new(true))));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        let body = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("ok"));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops on shutdown")
            .unwrap()
            .unwrap();
    }
}
