//! Running a tenant server until a stop signal: the one body behind both commands that
//! start one (`quiver-tenant-server` and `quiver run`), so they cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use quiver_telemetry::Telemetry;

use crate::config::Config;
use crate::http::{self, HttpOptions};
use crate::store::Registry;

/// Opens the workspace, serves the HTTP APIs on `config.host:config.port` until SIGINT or
/// SIGTERM, drains the requests in flight, then closes every open project.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // the guard flushes spans on exit
    let _telemetry = Telemetry::init("quiver-tenant-server", &config.log_format, "info");
    let registry = Registry::new(config.store_config())
        .with_context(|| format!("cannot use workspace {}", config.workspace_dir.display()))?;
    let app = http::router(
        Arc::clone(&registry),
        &HttpOptions {
            max_body_bytes: config.max_body_bytes,
            cors_origins: config.cors_origin_list(),
            allow_reset: config.allow_reset,
            admin_token: config.admin_token(),
        },
    );

    let reaper = Arc::clone(&registry);
    let idle_tick = (config.idle_close_secs / 4).clamp(1, 30);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(idle_tick));
        loop {
            tick.tick().await;
            let r = Arc::clone(&reaper);
            let _ = tokio::task::spawn_blocking(move || r.close_idle()).await;
        }
    });

    if config.admin_token().is_none() {
        tracing::warn!(
            "no admin token set (--admin-token / QUIVER_ADMIN_TOKEN): the admin API is open"
        );
    }
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        "quiver-tenant-server {} listening on http://{addr}, workspace {}",
        env!("CARGO_PKG_VERSION"),
        config.workspace_dir.display()
    );
    // small responses go out at once instead of waiting on Nagle's algorithm
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(quiver_telemetry::shutdown::signal())
        .await?;
    tracing::info!("draining done; closing projects");
    let closing = Arc::clone(&registry);
    tokio::task::spawn_blocking(move || closing.close_all()).await?;
    tracing::info!("stopped");
    Ok(())
}
