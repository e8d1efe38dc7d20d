use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use prometheus::Registry;
use quiver_operator::config::{self, Config};
use quiver_operator::crd::Project;
use quiver_operator::leader::{self, LeaderConfig, LeaderElector};
use quiver_operator::metrics::OperatorMetrics;
use quiver_operator::moves::{self, MoveConfig, MoveContext};
use quiver_operator::placement_store::{ConfigMapStore, PlacementStore, PlacementStoreError};
use quiver_operator::reconcile::{self, PlacementDirectory, ReconcileConfig, ReconcileMetrics};
use quiver_operator::shards::{
    AdminShardStats, ControllerConfig, Rebalancer, ShardController, StatefulSetClient,
};
use quiver_telemetry::Telemetry;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "quiver-operator",
    version,
    about = "Quiver operator: reconciles Project resources and the tenant-server shards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Project CustomResourceDefinition (YAML), e.g. `quiver-operator crd | kubectl apply -f -`.
    Crd,
    /// Run the operator: leader election, the Project reconciler and the shard controller.
    Run(Box<Config>),
    /// Print every long flag `run` accepts, one per line.
    Flags,
}

/// How often the reconciler's copy of the placement table is refreshed from the store.
const PLACEMENT_REFRESH: Duration = Duration::from_secs(5);
/// How long the controllers get to stop after SIGTERM before the lease is released anyway
/// (the pod's grace period is 30 s by default).
const STOP_GRACE: Duration = Duration::from_secs(20);

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = quiver_operator::crd::crd_yaml().map_err(anyhow::Error::msg)?;
            print!("{yaml}");
            Ok(())
        }
        Command::Flags => {
            for flag in config::long_flags() {
                println!("{flag}");
            }
            Ok(())
        }
        Command::Run(config) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(run(*config)),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // flushes the spans not yet exported when run returns
    let _telemetry = Telemetry::init("quiver-operator", &config.log_format, "info");
    config.validate()?;
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let namespace = config
        .namespace
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let token = config.admin_token();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;

    // SIGTERM/SIGINT flips this once; everything that must stop watches it
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        quiver_telemetry::shutdown::signal().await;
        let _ = shutdown_tx.send(true);
    });
    let signalled = move || {
        let mut rx = shutdown_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // metrics: the operator's, the reconciler's and (inside the router) the endpoint's own
    let registry = Registry::new();
    let metrics = OperatorMetrics::register(&registry)?;
    let reconcile_metrics = ReconcileMetrics::register(&registry)?;
    let addr = format!("0.0.0.0:{}", config.metrics_port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let app = quiver_operator::http::router(
        registry.clone(),
        quiver_operator::http::kube_ready_check(client.clone()),
    );
    let server = tokio::spawn(quiver_operator::http::serve(listener, app, signalled()));

    // leader election
    let identity = leader::identity_from_env();
    let mut elector = LeaderElector::new(
        Api::<Lease>::namespaced(client.clone(), &namespace),
        LeaderConfig::new(&config.lease_name, &identity),
    );
    let leading = elector.subscribe();
    {
        let mut leading = leading.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                let now = *leading.borrow_and_update();
                metrics.set_leader(now);
                if leading.changed().await.is_err() {
                    metrics.set_leader(false);
                    return;
                }
            }
        });
    }

    // the placement table, and the reconciler's copy of it
    let store: Arc<dyn PlacementStore> = Arc::new(ConfigMapStore::new(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        &namespace,
        &config.placement_configmap,
    ));
    let directory = Arc::new(PlacementDirectory::new(
        Arc::new(RwLock::new(None)),
        token.clone(),
        http.clone(),
    ));
    tokio::spawn(refresh_placement(
        Arc::clone(&store),
        Arc::clone(&directory),
        signalled(),
    ));

    // the shard controller and the movers it calls
    let moves = Arc::new(MoveContext::new(
        http.clone(),
        token.clone(),
        MoveConfig {
            batch_size: config.move_batch_size,
            grace: config.move_grace(),
            ..MoveConfig::default()
        },
        Some(metrics.clone()),
    ));
    let addresses = config.shard_addresses(&namespace);
    let controller = Arc::new(ShardController::new(
        ControllerConfig::new(config.policy(), config.scale_interval()),
        StatefulSetClient::new(
            Api::<StatefulSet>::namespaced(client.clone(), &namespace),
            &config.tenant_statefulset,
        ),
        move |ordinal| addresses.url(ordinal),
        Arc::clone(&store),
        Box::new(AdminShardStats::new(http.clone(), token.clone())),
        Box::new(MovesRebalancer {
            ctx: moves,
            store: Arc::clone(&store),
        }),
        metrics.clone(),
    ));

    // the Project reconciler, for the Projects of this namespace
    let reconcile_ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        directory,
        config.router_endpoint(&namespace),
        reconcile_metrics,
        ReconcileConfig {
            adopt: config.adopt_unmanaged,
            watch_namespace: Some(namespace.clone()),
            instance: Some(identity.clone()),
            ..ReconcileConfig::default()
        },
    ));
    let projects = Api::<Project>::namespaced(client.clone(), &namespace);

    tracing::info!(
        identity = %identity,
        namespace = %namespace,
        "quiver-operator {} started; metrics on http://{addr}/metrics",
        env!("CARGO_PKG_VERSION")
    );

    // while leading: both controllers; a lost lease ends the term (the shard controller
    // stops at once, the reconciler lets the reconciles in flight finish)
    let unmanaged_interval = config.scale_interval();
    let work = tokio::spawn(leader::while_leading(
        leading,
        signalled(),
        move |term_end| {
            let controller = Arc::clone(&controller);
            let ctx = Arc::clone(&reconcile_ctx);
            let projects = projects.clone();
            let namespace = namespace.clone();
            async move {
                tracing::info!("leading: shard controller and Project reconciler start");
                tokio::join!(
                    controller.run(term_end.clone()),
                    reconcile::run(Arc::clone(&ctx), projects, term_end.clone()),
                    report_unmanaged_periodically(ctx, namespace, unmanaged_interval, term_end),
                );
                tracing::info!("shard controller and Project reconciler stopped");
            }
        },
    ));

    elector.run(signalled()).await;
    // not leading any more: let the controllers stop, then hand the lease over
    match tokio::time::timeout(STOP_GRACE, work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("the controllers' task failed: {e}"),
        Err(_) => tracing::warn!(
            "the controllers did not stop within {} s",
            STOP_GRACE.as_secs()
        ),
    }
    if let Err(e) = elector.release().await {
        tracing::warn!("could not release the lease (a successor waits for it to expire): {e}");
    }
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("metrics endpoint: {e}"),
        Err(e) => tracing::warn!("metrics endpoint task: {e}"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reports (and with `--adopt-unmanaged` adopts) the projects on the shards that have no
/// `Project` resource, every `interval` until the term ends.
async fn report_unmanaged_periodically(
    ctx: Arc<reconcile::Context>,
    namespace: String,
    interval: std::time::Duration,
    term_end: leader::TermEnd,
) {
    let work = async {
        loop {
            match reconcile::report_unmanaged(&ctx, &namespace).await {
                Ok(unmanaged) if !unmanaged.is_empty() => tracing::info!(
                    count = unmanaged.len(),
                    "projects on the shards without a Project resource"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot list unmanaged projects: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = term_end => {}
    }
}

/// The shard controller's [`Rebalancer`] over the moves module.
struct MovesRebalancer {
    ctx: Arc<MoveContext>,
    store: Arc<dyn PlacementStore>,
}

impl Rebalancer for MovesRebalancer {
    fn rebalance(&self, target: u32) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            // old copies wait out their grace period (routers with an old table may still
            // send to them); a shrink waits for them through trim
            let report = moves::rebalance(&self.ctx, self.store.as_ref(), target, false)
                .await
                .map_err(|e| e.to_string())?;
            for (project, why) in &report.failed {
                tracing::warn!(project, "move failed: {why}");
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} of {} moves failed (retried next pass)",
                    report.failed.len(),
                    report.failed.len() + report.moved.len()
                ))
            }
        })
    }

    fn trim(&self, target: u32) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            moves::trim_shards(&self.ctx, self.store.as_ref(), target)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Keeps the reconciler's copy of the placement table current: every table published (by
/// this replica or another) reaches it within [`PLACEMENT_REFRESH`].
async fn refresh_placement(
    store: Arc<dyn PlacementStore>,
    directory: Arc<PlacementDirectory>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut epoch = None;
    loop {
        match store.load().await {
            Ok(v) => {
                if epoch != Some(v.table.epoch) {
                    epoch = Some(v.table.epoch);
                    directory.set(v.table);
                }
            }
            // the shard controller publishes the first table
            Err(PlacementStoreError::Absent { .. }) => {}
            Err(e) => tracing::warn!("cannot read the placement table: {e}"),
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(PLACEMENT_REFRESH) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_flag_is_accepted_by_run() {
        let mut args = vec!["quiver-operator".to_string(), "run".to_string()];
        for flag in config::long_flags() {
            match flag.as_str() {
                "--adopt-unmanaged" => args.push(flag),
                "--log-format" => args.push(format!("{flag}=json")),
                // every other setting takes a number or a name, and "1" is both
                _ => args.push(format!("{flag}=1")),
            }
        }
        let cli = Cli::try_parse_from(&args).unwrap();
        let Command::Run(config) = cli.command else {
            panic!("not the run command");
        };
        assert!(config.adopt_unmanaged);
        assert_eq!(config.log_format, "json");
        assert!(Cli::try_parse_from(["quiver-operator", "run", "--no-such-flag=1"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["quiver-operator", "flags"])
                .unwrap()
                .command,
            Command::Flags
        ));
    }
}
