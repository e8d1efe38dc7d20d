//! One project's move from shard `from` to shard `to`.

use std::time::{Duration, Instant};

use quiver_placement::{home_ordinal, Move, MovePhase, PlacementTable};
use tracing::Instrument;

use super::recovery::{roll_back, RollBack};
use super::{MoveContext, MoveError};
use crate::admin::AdminClient;
use crate::metrics::{MoveResult, OperatorMetrics};
use crate::placement_store::{update, PlacementStore};

/// What a finished move measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveReport {
    pub project: String,
    pub from: u32,
    pub to: u32,
    /// Start to placement switch.
    pub duration: Duration,
    /// Source paused to placement switch: the longest a write to the project waited.
    pub write_pause: Duration,
    /// Write batches shipped after the snapshot (while serving and while paused).
    pub batches_shipped: u64,
}

/// Records `phase` for the move in the table: creates the entry for `Copying` (refusing
/// if another move of the project is recorded), else advances the existing one.
async fn record_phase(
    store: &dyn PlacementStore,
    project: &str,
    from: u32,
    to: u32,
    phase: MovePhase,
) -> Result<PlacementTable, MoveError> {
    let versioned = update(store, |t: &mut PlacementTable| {
        match t.moving.get_mut(project) {
            Some(m) if m.from == from && m.to == to => {
                if m.phase == phase {
                    return Ok(false);
                }
                m.phase = phase;
                Ok(true)
            }
            Some(m) => Err(MoveError::Conflict {
                project: project.to_string(),
                reason: format!(
                    "the table records another move ({} → {}, {:?})",
                    m.from, m.to, m.phase
                ),
            }),
            None if phase == MovePhase::Copying => {
                if t.ordinal_of(project) != from {
                    return Err(MoveError::Conflict {
                        project: project.to_string(),
                        reason: format!(
                            "the table routes it to shard {}, not {from}",
                            t.ordinal_of(project)
                        ),
                    });
                }
                t.moving.insert(
                    project.to_string(),
                    Move {
                        from,
                        to,
                        phase: MovePhase::Copying,
                    },
                );
                Ok(true)
            }
            None => Err(MoveError::Conflict {
                project: project.to_string(),
                reason: "its move is no longer recorded in the table".into(),
            }),
        }
    })
    .await?;
    Ok(versioned.table)
}

/// The commit point: routes the project to `to` and marks the move switched.
async fn switch(
    store: &dyn PlacementStore,
    project: &str,
    from: u32,
    to: u32,
) -> Result<(), MoveError> {
    update(store, |t: &mut PlacementTable| {
        match t.moving.get_mut(project) {
            Some(m) if m.from == from && m.to == to => m.phase = MovePhase::Switched,
            _ => {
                return Err(MoveError::Conflict {
                    project: project.to_string(),
                    reason: "its move is no longer recorded in the table".into(),
                })
            }
        }
        // an override only where the hash would not send it there anyway
        if home_ordinal(project, t.shard_count) == to {
            t.overrides.remove(project);
        } else {
            t.overrides.insert(project.to_string(), to);
        }
        Ok(true)
    })
    .await?;
    Ok(())
}

/// Moves `project` from shard `from` to shard `to`, as the table lists them. On failure
/// before the switch the move is rolled back (the project serves from `from` again) and
/// the error says where it failed; the table then records nothing of it, unless the roll
/// back itself could not finish (a shard down), which [`super::recover`] retries.
pub async fn move_project(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
    from: u32,
    to: u32,
) -> Result<MoveReport, MoveError> {
    let span = tracing::info_span!(
        "project.move",
        quiver.project = project,
        quiver.from = from,
        quiver.to = to,
        quiver.write_pause_ms = tracing::field::Empty,
        quiver.batches = tracing::field::Empty,
    );
    async {
        // counted as in progress until finished; a move cancelled midway counts as failed
        let timer = ctx.metrics().map(OperatorMetrics::start_move);
        let started = Instant::now();
        let outcome = run(ctx, store, project, from, to, started).await;
        if let (Some(m), Some(timer)) = (ctx.metrics(), timer) {
            match &outcome {
                Ok(r) => {
                    m.observe_write_pause(r.write_pause);
                    timer.finish(MoveResult::Done);
                }
                Err(MoveError::RolledBack { .. }) => timer.finish(MoveResult::RolledBack),
                Err(_) => timer.finish(MoveResult::Failed),
            }
        }
        match &outcome {
            Ok(r) => {
                let span = tracing::Span::current();
                span.record("quiver.write_pause_ms", r.write_pause.as_millis() as u64);
                span.record("quiver.batches", r.batches_shipped);
                tracing::info!(
                    duration_ms = r.duration.as_millis() as u64,
                    write_pause_ms = r.write_pause.as_millis() as u64,
                    "project moved"
                );
            }
            Err(e) => tracing::warn!("project move failed: {e}"),
        }
        outcome
    }
    .instrument(span)
    .await
}

async fn run(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
    from: u32,
    to: u32,
    started: Instant,
) -> Result<MoveReport, MoveError> {
    if from == to {
        return Err(MoveError::Conflict {
            project: project.to_string(),
            reason: format!("source and destination are both shard {from}"),
        });
    }
    let table = record_phase(store, project, from, to, MovePhase::Copying).await?;
    let src = ctx.shard(&table, from)?;
    let dst = ctx.shard(&table, to)?;
    match copy_and_switch(ctx, store, project, from, to, &src, &dst, started).await {
        Ok(report) => {
            // the source is fenced: resuming only clears its pause, so a failure here
            // costs nothing but a pause that lifts itself at its deadline
            if let Err(e) = src.resume(project).await {
                tracing::warn!(project, "cannot resume the fenced source: {e}");
            }
            ctx.note_switched(project);
            Ok(report)
        }
        Err((step, cause)) => {
            let cause = cause.to_string();
            match roll_back_retrying(ctx, store, project).await {
                Ok(RollBack::Done) => Err(MoveError::RolledBack {
                    project: project.to_string(),
                    step,
                    cause,
                }),
                // the switch was published although its answer was lost: the move is done
                Ok(RollBack::AlreadySwitched) => {
                    tracing::warn!(project, step, "the switch took effect despite: {cause}");
                    let _ = src.resume(project).await;
                    ctx.note_switched(project);
                    let now = Instant::now();
                    Ok(MoveReport {
                        project: project.to_string(),
                        from,
                        to,
                        duration: now - started,
                        write_pause: Duration::ZERO,
                        batches_shipped: 0,
                    })
                }
                Err(e) => Err(MoveError::Conflict {
                    project: project.to_string(),
                    reason: format!(
                        "failed at {step} ({cause}); the roll back did not finish ({e}) and \
                         is retried by recovery"
                    ),
                }),
            }
        }
    }
}

/// Rolls back, retrying a few times: until it succeeds the source may stay fenced while
/// the table routes to it, so waiting for the next pass would leave the project down.
async fn roll_back_retrying(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
) -> Result<RollBack, MoveError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match roll_back(ctx, store, project).await {
            Ok(done) => return Ok(done),
            Err(e) if attempt >= 4 => return Err(e),
            Err(e) => {
                tracing::warn!(project, attempt, "roll back failed, retrying: {e}");
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
        }
    }
}

type StepError = (&'static str, MoveError);

fn at(step: &'static str) -> impl FnOnce(crate::admin::AdminError) -> StepError {
    move |e| (step, MoveError::admin(step)(e))
}

#[allow(clippy::too_many_arguments)]
async fn copy_and_switch(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
    from: u32,
    to: u32,
    src: &AdminClient,
    dst: &AdminClient,
    started: Instant,
) -> Result<MoveReport, StepError> {
    let cfg = &ctx.config;
    let mut shipped = 0u64;
    let mut seq = src
        .copy_snapshot_to(dst, project)
        .await
        .map_err(at("copy snapshot"))?;
    // catch up while the source serves, so that the paused part is short
    let mut recopied = false;
    let mut round = 0;
    while round < cfg.catch_up_rounds {
        round += 1;
        match src.ship_changes_to(dst, project, seq).await {
            Ok(a) => {
                shipped += a.applied_batches;
                seq = a.source_sequence;
                if a.applied_batches <= cfg.catch_up_small {
                    break;
                }
            }
            // the log was trimmed under a slow copy: one fresh snapshot, then go on
            Err(e) if e.status() == Some(410) && !recopied => {
                recopied = true;
                seq = src
                    .copy_snapshot_to(dst, project)
                    .await
                    .map_err(at("copy snapshot again"))?;
            }
            Err(e) => return Err(at("catch up")(e)),
        }
    }
    record_phase(store, project, from, to, MovePhase::CatchingUp)
        .await
        .map_err(|e| ("record catching up", e))?;
    let pause_started = Instant::now();
    let paused = src
        .pause(project, cfg.pause_hold)
        .await
        .map_err(at("pause source"))?;
    // everything acknowledged is at or below `paused.sequence`; a few rounds at most,
    // since nothing new arrives
    for _ in 0..3 {
        if seq >= paused.sequence {
            break;
        }
        let a = src
            .ship_changes_to(dst, project, seq)
            .await
            .map_err(at("ship paused changes"))?;
        shipped += a.applied_batches;
        seq = a.source_sequence;
    }
    if seq < paused.sequence {
        return Err((
            "ship paused changes",
            MoveError::Conflict {
                project: project.to_string(),
                reason: format!(
                    "destination reached sequence {seq}, the source paused at {}",
                    paused.sequence
                ),
            },
        ));
    }
    // the fence, not the pause, is what guarantees the source takes no more writes (a
    // pause lifts itself at its deadline): ship once more after it, unless the source's
    // last sequence at the fence is already shipped (the usual case, and it spares
    // reopening the fenced source while writes wait)
    let fenced_at = src
        .fence(project, dst.base())
        .await
        .map_err(at("fence source"))?;
    if fenced_at.is_none_or(|last| last > seq) {
        let a = src
            .ship_changes_to(dst, project, seq)
            .await
            .map_err(at("ship final changes"))?;
        shipped += a.applied_batches;
    }
    record_phase(store, project, from, to, MovePhase::Activating)
        .await
        .map_err(|e| ("record activating", e))?;
    dst.unfence(project)
        .await
        .map_err(at("activate destination"))?;
    switch(store, project, from, to)
        .await
        .map_err(|e| ("switch placement", e))?;
    let switched = Instant::now();
    Ok(MoveReport {
        project: project.to_string(),
        from,
        to,
        duration: switched - started,
        write_pause: switched - pause_started,
        batches_shipped: shipped,
    })
}
