//! The `Project` reconciler: provisions each project on its home shard with its quotas,
//! reports phase, figures and conditions in its status, publishes Events, and honours the
//! deletion policy through a finalizer.
//!
//! - [`status`]: the pure decisions (name rule, whether to call the shard, the status)
//! - [`backoff`]: per-object retry delays
//! - [`shards`]: where projects live ([`ShardDirectory`] over the placement table)
//! - [`unmanaged`]: projects on the shards that no resource manages (report, adopt)

pub mod backoff;
mod listing;
pub mod metrics;
pub mod shards;
pub mod status;
pub mod unmanaged;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::admin::AdminError;
use crate::crd::{DeletionPolicy, Project, ProjectPhase};
use backoff::{backoff_delay, with_jitter, BackoffTracker};
use listing::ListingCache;
pub use metrics::ReconcileMetrics;
pub use shards::{
    DirectoryError, Home, PlacementDirectory, Shard, ShardDirectory, SharedPlacement,
};
use status::{
    already_degraded, desired_status, project_name, provision_event, serves, shard_step,
    validate_project_name, Observation, ShardStep,
};
pub use unmanaged::report_unmanaged;

/// Keeps a `Project` until its data has been dealt with according to its deletion policy.
pub const FINALIZER: &str = "quiver.dev/project-data";
/// Field manager of the status the operator applies (and of the resources it creates).
pub const FIELD_MANAGER: &str = "quiver-operator";
/// Marks a `Project` the operator created for a project it found on a shard.
pub const ADOPTED_ANNOTATION: &str = "quiver.dev/adopted";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("shard {ordinal} ({url}): {source}")]
    Shard {
        ordinal: u32,
        url: String,
        #[source]
        source: AdminError,
    },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("the Project has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// The `kind` label of `quiver_operator_reconcile_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Directory(_) => "placement",
            Error::Shard { .. } => "shard",
            Error::Kube(_) => "kube",
            Error::MissingField(_) => "invalid",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.kind(),
                finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_) => "kube",
                finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer => "invalid",
            },
        }
    }

    fn shard(shard: &Shard, source: AdminError) -> Self {
        Error::Shard {
            ordinal: shard.ordinal,
            url: shard.admin.base().to_string(),
            source,
        }
    }

    /// The condition reason and Event reason of a failed observation.
    fn reason(&self) -> &'static str {
        match self {
            Error::Directory(_) => "PlacementUnavailable",
            Error::Shard { .. } => "ShardUnavailable",
            _ => "ReconcileFailed",
        }
    }

    fn ordinal(&self) -> Option<u32> {
        match self {
            Error::Shard { ordinal, .. } => Some(*ordinal),
            _ => None,
        }
    }
}

/// Tunables of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Create a `Project` (deletionPolicy Retain) for each project found on a shard
    /// without one.
    pub adopt: bool,
    /// How often a serving project's status figures are refreshed.
    pub refresh: Duration,
    /// How often a moving project is looked at, to report the end of its move promptly.
    pub moving_refresh: Duration,
    /// How long one shard listing serves the reconciles of its projects.
    pub listing_ttl: Duration,
    /// Retry delays are stretched by up to this fraction, at random.
    pub backoff_jitter: f64,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// The namespace the controller watches, `None` for all; must match the `Api` given to
    /// [`run`]. Name clashes and unmanaged projects are judged against this scope.
    pub watch_namespace: Option<String>,
    /// This operator instance in Events (the pod name), if known.
    pub instance: Option<String>,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            adopt: false,
            refresh: Duration::from_secs(60),
            moving_refresh: Duration::from_secs(10),
            listing_ttl: Duration::from_secs(30),
            backoff_jitter: 0.1,
            concurrency: 16,
            watch_namespace: None,
            instance: None,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    shards: Arc<dyn ShardDirectory>,
    endpoint: String,
    recorder: Recorder,
    metrics: ReconcileMetrics,
    config: ReconcileConfig,
    backoff: BackoffTracker,
    listings: ListingCache,
}

/// The router's in-cluster URL, which clients use for every project (`status.endpoint`).
pub fn router_endpoint(service: &str, namespace: &str, port: u16) -> String {
    format!("http://{service}.{namespace}.svc:{port}")
}

impl Context {
    /// `endpoint` is what `status.endpoint` reports (see [`router_endpoint`]).
    pub fn new(
        client: Client,
        shards: Arc<dyn ShardDirectory>,
        endpoint: impl Into<String>,
        metrics: ReconcileMetrics,
        config: ReconcileConfig,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: config.instance.clone(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            shards,
            endpoint: endpoint.into(),
            metrics,
            listings: ListingCache::new(config.listing_ttl),
            config,
            backoff: BackoffTracker::default(),
        }
    }

    pub fn config(&self) -> &ReconcileConfig {
        &self.config
    }

    pub fn metrics(&self) -> &ReconcileMetrics {
        &self.metrics
    }

    /// Consecutive failed reconciles of the `Project` `namespace/name`.
    pub fn failed_attempts(&self, namespace: &str, name: &str) -> u32 {
        self.backoff.attempts(&format!("{namespace}/{name}"))
    }

    /// `Project`s in the watched scope.
    fn projects_in_scope(&self) -> Api<Project> {
        match &self.config.watch_namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Events are for people reading `kubectl describe`; failing to publish one must not
    /// fail the reconcile that has done its work.
    async fn publish(
        &self,
        project: &Project,
        type_: EventType,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &project.object_ref(&()))
            .await
        {
            warn!(reason, error = %e, "could not publish an Event");
        }
    }

    /// Applies the status `obs` calls for, unless the resource already shows it.
    async fn write_status(
        &self,
        api: &Api<Project>,
        project: &Project,
        obs: &Observation,
    ) -> Result<(), kube::Error> {
        let previous = project.status.as_ref();
        let desired = desired_status(
            previous,
            obs,
            &self.endpoint,
            project.metadata.generation,
            &now(),
        );
        if previous == Some(&desired) {
            return Ok(());
        }
        let patch = serde_json::json!({
            "apiVersion": Project::api_version(&()),
            "kind": Project::kind(&()),
            "status": desired,
        });
        api.patch_status(
            &project.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }
}

/// Now, to the second: the API server keeps times to the second, so a finer one would make
/// an unchanged status look changed.
fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn object_key(project: &Project) -> String {
    format!(
        "{}/{}",
        project.namespace().unwrap_or_default(),
        project.name_any()
    )
}

/// Reconciles one `Project`; what the controller calls, and what tests call directly.
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = project
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let span = info_span!(
        "reconcile",
        project = %project.name_any(),
        namespace = %namespace,
        generation = project.metadata.generation.unwrap_or_default(),
    );
    async move {
        let started = Instant::now();
        let api: Api<Project> = Api::namespaced(ctx.client.clone(), &namespace);
        let result = finalizer(&api, FINALIZER, Arc::clone(&project), |event| async {
            match event {
                finalizer::Event::Apply(p) => apply(p, &ctx, &api).await,
                finalizer::Event::Cleanup(p) => cleanup(p, &ctx, &api).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        ctx.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                ctx.metrics.reconciles.with_label_values(&["ok"]).inc();
                ctx.backoff.reset(&object_key(&project));
            }
            Err(e) => {
                ctx.metrics.reconciles.with_label_values(&["error"]).inc();
                ctx.metrics.errors.with_label_values(&[e.kind()]).inc();
            }
        }
        result
    }
    .instrument(span)
    .await
}

/// Retry delay after a failed reconcile: 5 s, doubling per consecutive failure of the same
/// object, up to 5 min; reset when it next succeeds.
pub fn error_policy(project: Arc<Project>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.backoff.fail(&object_key(&project));
    let delay = with_jitter(
        backoff_delay(attempt),
        ctx.config.backoff_jitter,
        rand::random::<f64>(),
    );
    warn!(
        project = %project.name_any(),
        namespace = %project.namespace().unwrap_or_default(),
        attempt,
        retry_in_ms = delay.as_millis() as u64,
        error = %error,
        "reconcile failed",
    );
    Action::requeue(delay)
}

async fn apply(project: Arc<Project>, ctx: &Context, api: &Api<Project>) -> Result<Action, Error> {
    let name = project_name(&project);
    if let Err(message) = validate_project_name(&name) {
        // Only a new spec can fix this: no retries, one Event per new cause.
        if !already_degraded(project.status.as_ref(), "InvalidName") {
            ctx.publish(
                &project,
                EventType::Warning,
                "InvalidName",
                message.clone(),
                "Provision",
            )
            .await;
        }
        ctx.write_status(api, &project, &Observation::InvalidName { message })
            .await?;
        return Ok(Action::await_change());
    }
    match observe(&project, &name, ctx).await {
        Ok((obs, requeue)) => {
            ctx.write_status(api, &project, &obs).await?;
            Ok(Action::requeue(requeue))
        }
        Err(err) => {
            let message = err.to_string();
            ctx.publish(
                &project,
                EventType::Warning,
                err.reason(),
                message.clone(),
                "Provision",
            )
            .await;
            let obs = Observation::Unavailable {
                shard: err.ordinal(),
                reason: err.reason(),
                message,
            };
            // The shard's error is the one to retry on and report; a failed status write
            // is only logged.
            if let Err(e) = ctx.write_status(api, &project, &obs).await {
                warn!(error = %e, "could not record the failure in the status");
            }
            Err(err)
        }
    }
}

/// Looks at the project on its home shard and provisions it there if that is needed.
async fn observe(
    project: &Project,
    name: &str,
    ctx: &Context,
) -> Result<(Observation, Duration), Error> {
    let Home { shard, moving } = ctx.shards.home(name)?;
    let listed = ctx
        .listings
        .projects(&shard.admin)
        .await
        .map_err(|e| Error::shard(&shard, e))?;
    let observed = listed.get(name).cloned();
    if let Some((from, to)) = moving {
        let obs = Observation::Moving {
            shard: shard.ordinal,
            from,
            to,
            info: observed,
        };
        return Ok((obs, ctx.config.moving_refresh));
    }
    let quotas = &project.spec.quotas;
    let obs = match (shard_step(quotas, observed.as_ref()), observed.clone()) {
        (ShardStep::Observe, Some(info)) if serves(&info) => Observation::Serving {
            shard: shard.ordinal,
            info,
        },
        (ShardStep::Observe, Some(info)) => Observation::NotServing {
            shard: shard.ordinal,
            info,
        },
        // `Observe` always comes with a listed project; without one, provisioning is
        // what makes it exist
        (ShardStep::Provision, _) | (ShardStep::Observe, None) => {
            let (info, created) = shard
                .admin
                .provision(name, Some(quotas))
                .await
                .map_err(|e| Error::shard(&shard, e))?;
            ctx.listings.remember(shard.admin.base(), &info);
            info!(shard = shard.ordinal, created, "provisioned");
            if let Some((reason, note)) =
                provision_event(observed.as_ref(), created, quotas, shard.ordinal)
            {
                ctx.publish(project, EventType::Normal, reason, note, "Provision")
                    .await;
            }
            Observation::Serving {
                shard: shard.ordinal,
                info,
            }
        }
    };
    Ok((obs, ctx.config.refresh))
}

async fn cleanup(
    project: Arc<Project>,
    ctx: &Context,
    api: &Api<Project>,
) -> Result<Action, Error> {
    let name = project_name(&project);
    let policy = project.spec.deletion_policy;
    let terminating = project
        .status
        .as_ref()
        .is_some_and(|s| s.phase == Some(ProjectPhase::Terminating));
    if !terminating {
        let message = match policy {
            DeletionPolicy::Delete => format!("deleting project {name} from its shard"),
            DeletionPolicy::Retain => format!("releasing project {name}, its data is kept"),
        };
        if let Err(e) = ctx
            .write_status(api, &project, &Observation::Terminating { message })
            .await
        {
            warn!(error = %e, "could not record the deletion in the status");
        }
    }
    if policy == DeletionPolicy::Retain {
        ctx.publish(
            &project,
            EventType::Normal,
            "Retained",
            format!("the data of project {name} stays on its shard (deletionPolicy Retain)"),
            "Delete",
        )
        .await;
        return Ok(Action::await_change());
    }
    if validate_project_name(&name).is_err() {
        // never provisioned under this name, so there is nothing to delete
        return Ok(Action::await_change());
    }
    // Two resources naming the same project share its data: deleting one must not take
    // it from the other.
    let others = ctx.projects_in_scope().list(&ListParams::default()).await?;
    if let Some(other) = unmanaged::sharing_owner(&project, &others.items) {
        ctx.publish(
            &project,
            EventType::Warning,
            "Retained",
            format!("project {name} is also managed by Project {other}; its data is kept"),
            "Delete",
        )
        .await;
        return Ok(Action::await_change());
    }
    // Every shard, the home first: during a move both copies exist, and the table this
    // replica holds may be seconds old, so a move that just began is not in it; deleting
    // only where it says would let such a move finish with the other copy.
    let Home { shard, .. } = ctx.shards.home(&name)?;
    let home = shard.ordinal;
    let mut targets = vec![shard];
    targets.extend(ctx.shards.all()?.into_iter().filter(|s| s.ordinal != home));
    let mut found = Vec::new();
    for shard in &targets {
        match shard.admin.delete_project(&name).await {
            Ok(existed) => {
                ctx.listings.forget(shard.admin.base(), &name);
                if existed {
                    found.push(shard.ordinal.to_string());
                }
            }
            Err(e) => {
                let err = Error::shard(shard, e);
                ctx.publish(
                    &project,
                    EventType::Warning,
                    err.reason(),
                    err.to_string(),
                    "Delete",
                )
                .await;
                return Err(err);
            }
        }
    }
    let note = if found.is_empty() {
        format!("project {name} was on no shard; nothing to delete")
    } else {
        format!("deleted project {name} from shard {}", found.join(", "))
    };
    ctx.publish(&project, EventType::Normal, "Deleted", note, "Delete")
        .await;
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves (then lets reconciles in flight finish).
pub async fn run(
    ctx: Arc<Context>,
    api: Api<Project>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let config = controller::Config::default().concurrency(ctx.config.concurrency);
    Controller::new(api, watcher::Config::default())
        .with_config(config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(project = %object.name, "reconciled"),
                // already logged with its retry delay by error_policy
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(controller::Error::ObjectNotFound(object)) => {
                    debug!(project = %object.name, "reconcile of a deleted Project skipped")
                }
                Err(e) => warn!(error = %e, "Project controller"),
            }
        })
        .await;
}
