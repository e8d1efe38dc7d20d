use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use k8s_openapi::api::core::v1::ConfigMap;
use quiver_placement::PlacementTable;
use quiver_router::config::Config;
use quiver_router::metrics::Metrics;
use quiver_router::placement::{configmap, file, Placement};
use quiver_router::proxy::Proxy;
use quiver_telemetry::Telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::load();
    // flushes the spans not yet exported when main returns
    let _telemetry = Telemetry::init("quiver-router", &config.log_format, "info");
    let metrics = Arc::new(Metrics::new());

    // the placement source; the file watcher must live as long as the process
    let mut _file_watcher = None;
    let placement = if !config.shards.is_empty() {
        let p = Placement::new("static", Arc::clone(&metrics));
        let table = PlacementTable::from_urls(0, config.shards.clone())
            .context("invalid --shard / QUIVER_SHARDS")?;
        p.install(table);
        p
    } else if let Some(path) = &config.placement_file {
        let p = Placement::new("file", Arc::clone(&metrics));
        _file_watcher = Some(
            file::watch(
                Arc::clone(&p),
                path.clone(),
                Duration::from_millis(config.placement_poll_ms),
            )
            .with_context(|| format!("cannot watch {}", path.display()))?,
        );
        p
    } else if let Some(name) = &config.placement_configmap {
        let p = Placement::new("configmap", Arc::clone(&metrics));
        let client = kube::Client::try_default()
            .await
            .context("cannot reach the Kubernetes API for the placement ConfigMap")?;
        let namespace = config
            .placement_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let api = kube::Api::<ConfigMap>::namespaced(client, &namespace);
        tracing::info!("watching ConfigMap {namespace}/{name} for placement");
        tokio::spawn(configmap::run(Arc::clone(&p), api, name.clone()));
        p
    } else {
        anyhow::bail!(
            "no placement source: give --shard, --placement-file or --placement-configmap"
        );
    };

    let proxy = Arc::new(Proxy::new(placement, metrics, config.proxy_options()));
    let app = quiver_router::http::router(proxy, config.cors_origin_list());
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        "quiver-router {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    // small responses go out at once instead of waiting on Nagle's algorithm
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(quiver_telemetry::shutdown::signal())
    .await?;
    tracing::info!("stopped");
    Ok(())
}
