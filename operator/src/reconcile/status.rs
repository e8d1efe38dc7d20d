//! Pure decisions of the Project reconciler: the project's name on the shards, whether a
//! shard call is needed, and the status (phase, figures, conditions) to publish.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::admin::{ProjectInfo, Quotas};
use crate::crd::{Project, ProjectPhase, ProjectStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// The project's name on the shards: `spec.projectName`, else the resource's name.
pub fn project_name(project: &Project) -> String {
    match &project.spec.project_name {
        Some(name) => name.clone(),
        None => project.metadata.name.clone().unwrap_or_default(),
    }
}

/// The tenant server's rule for project names (also the CRD's, plus the server's ban on
/// `..`): 3–512 characters of `[a-zA-Z0-9._-]`, starting and ending with a letter or digit.
pub fn validate_project_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(3..=512).contains(&len) {
        return Err(format!(
            "project name {name:?} must be 3 to 512 characters long, not {len}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "project name {name:?} may only hold letters, digits, '.', '_' and '-', not {bad:?}"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(format!(
            "project name {name:?} must start and end with a letter or digit"
        ));
    }
    if name.contains("..") {
        return Err(format!("project name {name:?} must not contain '..'"));
    }
    Ok(())
}

/// Whether `name` can name a Kubernetes object (an RFC 1123 subdomain), which adopting a
/// project under its own name needs.
pub fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Quotas as the shard reports them; a server that reports none enforces none.
fn reported_quotas(info: &ProjectInfo) -> Quotas {
    info.quotas.clone().unwrap_or_default()
}

/// What the reconciler does on the home shard, given what the shard's listing says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStep {
    /// `PUT` the project with the spec's quotas: it is missing or its quotas differ.
    Provision,
    /// Nothing to change: report what the listing says.
    Observe,
}

/// Provisioning is skipped while a move is in flight (the mover owns both copies then,
/// and a `PUT` on a fenced copy is refused) and on a copy that does not serve; the status
/// reports those instead. Otherwise only a missing project or differing quotas call for a
/// `PUT`: every `PUT` opens the project, and opening evicts others from the shard.
pub fn shard_step(desired: &Quotas, observed: Option<&ProjectInfo>) -> ShardStep {
    match observed {
        None => ShardStep::Provision,
        Some(info) if !serves(info) => ShardStep::Observe,
        Some(info) if reported_quotas(info) != *desired => ShardStep::Provision,
        Some(_) => ShardStep::Observe,
    }
}

/// Whether a copy serves clients (a paused one still serves reads).
pub fn serves(info: &ProjectInfo) -> bool {
    matches!(info.state.as_str(), "active" | "paused")
}

/// The Event a `PUT` deserves: `Provisioned` when it created the project, `QuotasUpdated`
/// when the shard held it with other quotas.
pub fn provision_event(
    before: Option<&ProjectInfo>,
    created: bool,
    desired: &Quotas,
    shard: u32,
) -> Option<(&'static str, String)> {
    if created {
        return Some(("Provisioned", format!("provisioned on shard {shard}")));
    }
    let before = before?;
    let old = reported_quotas(before);
    (old != *desired).then(|| {
        (
            "QuotasUpdated",
            format!(
                "quotas on shard {shard} changed from {} to {}",
                describe_quotas(&old),
                describe_quotas(desired)
            ),
        )
    })
}

pub fn describe_quotas(q: &Quotas) -> String {
    let one = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    format!(
        "maxCollections={} maxRecords={} maxBytes={}",
        one(q.max_collections),
        one(q.max_records),
        one(q.max_bytes)
    )
}

/// What one reconcile learned about the project.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Provisioned and serving on its home shard.
    Serving { shard: u32, info: ProjectInfo },
    /// The placement table records a move; `info` is the copy at the current home.
    Moving {
        shard: u32,
        from: u32,
        to: u32,
        info: Option<ProjectInfo>,
    },
    /// The home copy is fenced or incoming although no move is recorded.
    NotServing { shard: u32, info: ProjectInfo },
    /// The name cannot be a project's: nothing is provisioned until the spec changes.
    InvalidName { message: String },
    /// A shard or the placement could not be reached; retried with backoff.
    Unavailable {
        shard: Option<u32>,
        reason: &'static str,
        message: String,
    },
    /// Deletion in progress.
    Terminating { message: String },
}

/// One condition as the reconciler wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

fn cond(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: String,
) -> ConditionUpdate {
    ConditionUpdate {
        type_,
        status,
        reason,
        message,
    }
}

/// The conditions an observation sets. `Terminating` leaves `Degraded` as it was.
pub fn condition_updates(obs: &Observation) -> Vec<ConditionUpdate> {
    match obs {
        Observation::Serving { shard, .. } => vec![
            cond(
                READY,
                true,
                "Provisioned",
                format!("serving on shard {shard}"),
            ),
            cond(PROGRESSING, false, "Reconciled", "up to date".into()),
            cond(DEGRADED, false, "AsExpected", String::new()),
        ],
        Observation::Moving { from, to, .. } => vec![
            cond(
                READY,
                true,
                "Provisioned",
                format!("serving while moving from shard {from} to shard {to}"),
            ),
            cond(
                PROGRESSING,
                true,
                "Moving",
                format!("moving from shard {from} to shard {to}"),
            ),
            cond(DEGRADED, false, "AsExpected", String::new()),
        ],
        Observation::NotServing { shard, info } => {
            let message = match &info.moved_to {
                Some(to) => format!(
                    "the copy on shard {shard} is {} (moved to {to}) and no move is recorded",
                    info.state
                ),
                None => format!(
                    "the copy on shard {shard} is {} and no move is recorded",
                    info.state
                ),
            };
            vec![
                cond(READY, false, "NotServing", message.clone()),
                cond(PROGRESSING, false, "NotServing", message.clone()),
                cond(DEGRADED, true, "NotServing", message),
            ]
        }
        Observation::InvalidName { message } => vec![
            cond(READY, false, "InvalidName", message.clone()),
            cond(PROGRESSING, false, "InvalidName", message.clone()),
            cond(DEGRADED, true, "InvalidName", message.clone()),
        ],
        Observation::Unavailable {
            reason, message, ..
        } => vec![
            cond(READY, false, reason, message.clone()),
            cond(PROGRESSING, false, reason, message.clone()),
            cond(DEGRADED, true, reason, message.clone()),
        ],
        Observation::Terminating { message } => vec![
            cond(READY, false, "Terminating", message.clone()),
            cond(PROGRESSING, true, "Terminating", message.clone()),
        ],
    }
}

/// Merges `updates` into `previous`. A condition's `lastTransitionTime` moves to `now` only
/// when it is new or its status flips; reason, message and `observedGeneration` follow the
/// update without touching it. Conditions of other types are kept as they were, after ours.
pub fn merge_conditions(
    previous: &[Condition],
    updates: &[ConditionUpdate],
    now: &Time,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status_str = |b: bool| if b { "True" } else { "False" };
    let mut merged: Vec<Condition> = updates
        .iter()
        .map(|u| {
            let status = status_str(u.status);
            let since = previous
                .iter()
                .find(|c| c.type_ == u.type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: u.type_.to_string(),
                status: status.to_string(),
                reason: u.reason.to_string(),
                message: u.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect();
    // Conditions we do not set this time (another writer's, or Degraded while
    // terminating) stay as they were, in their previous order.
    merged.extend(
        previous
            .iter()
            .filter(|c| !updates.iter().any(|u| u.type_ == c.type_))
            .cloned(),
    );
    merged
}

/// The status to publish after observing `obs`. Figures and the shard of the last good
/// observation survive a failed one, so a brief outage does not blank them.
pub fn desired_status(
    previous: Option<&ProjectStatus>,
    obs: &Observation,
    endpoint: &str,
    generation: Option<i64>,
    now: &Time,
) -> ProjectStatus {
    let empty = ProjectStatus::default();
    let prev = previous.unwrap_or(&empty);
    let mut status = ProjectStatus {
        phase: prev.phase,
        shard: prev.shard,
        endpoint: prev.endpoint.clone(),
        collections: prev.collections,
        records: prev.records,
        bytes: prev.bytes,
        conditions: Vec::new(),
        observed_generation: generation,
    };
    let mut figures = |info: &ProjectInfo| {
        status.collections = info.collections;
        status.records = info.records;
        status.bytes = Some(info.bytes);
    };
    match obs {
        Observation::Serving { shard, info } => {
            figures(info);
            status.phase = Some(ProjectPhase::Ready);
            status.shard = Some(*shard);
            status.endpoint = Some(endpoint.to_string());
        }
        Observation::Moving { shard, info, .. } => {
            if let Some(info) = info {
                figures(info);
            }
            status.phase = Some(ProjectPhase::Moving);
            status.shard = Some(*shard);
            status.endpoint = Some(endpoint.to_string());
        }
        Observation::NotServing { shard, info } => {
            figures(info);
            status.phase = Some(ProjectPhase::Failed);
            status.shard = Some(*shard);
        }
        Observation::InvalidName { .. } => {
            status = ProjectStatus {
                phase: Some(ProjectPhase::Failed),
                observed_generation: generation,
                ..ProjectStatus::default()
            };
        }
        Observation::Unavailable { shard, .. } => {
            status.phase = Some(ProjectPhase::Failed);
            if shard.is_some() {
                status.shard = *shard;
            }
        }
        Observation::Terminating { .. } => {
            status.phase = Some(ProjectPhase::Terminating);
        }
    }
    status.conditions =
        merge_conditions(&prev.conditions, &condition_updates(obs), now, generation);
    status
}

/// Whether the previous status already reports `reason` as the cause of degradation, so a
/// repeated Warning event would only repeat it.
pub fn already_degraded(previous: Option<&ProjectStatus>, reason: &str) -> bool {
    previous.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == DEGRADED && c.status == "True" && c.reason == reason)
    })
}

#[cfg(test)]
mod tests;
