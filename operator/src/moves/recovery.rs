//! Ending moves from what the placement table records: rolling back one not yet
//! switched, finishing one switched (removing the old copy after the grace period), and
//! doing either for every entry an interrupted operator left behind.

use quiver_placement::{MovePhase, PlacementTable};

use super::{MoveContext, MoveError};
use crate::placement_store::{update, PlacementStore};

/// What [`recover`] did with the moves it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub rolled_back: Vec<String>,
    /// Switched moves whose old copy was removed (grace over).
    pub finished: Vec<String>,
    /// Switched moves still in their grace period.
    pub in_grace: Vec<String>,
    /// Moves that could not be ended now (a shard unreachable), with why.
    pub stuck: Vec<(String, String)>,
}

/// Undoes the recorded move of `project` unless it is already switched (then there is
/// nothing to undo: the table routes to the destination, which is the project's home
/// now). The destination's copy is removed (it never served: the table never routed
/// there), then the source is unfenced and resumed, then the entry is dropped. If the
/// destination cannot be reached the source still serves again, and the entry stays for
/// a later attempt, so that the copy left there is not forgotten.
pub async fn roll_back(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
) -> Result<(), MoveError> {
    let table = store.load().await?.table;
    let Some(mv) = table.moving.get(project).cloned() else {
        return Ok(());
    };
    if mv.phase == MovePhase::Switched {
        return Ok(());
    }
    let src = ctx.shard(&table, mv.from)?;
    // the source first: whatever happens to the destination, the project serves again
    let src_result = async {
        src.unfence(project).await?;
        src.resume(project).await
    }
    .await
    // a project a client deleted meanwhile has nothing left to serve
    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) });
    let dst_result = match ctx.shard(&table, mv.to) {
        Ok(dst) => dst.delete_project(project).await.map(drop),
        Err(e) => {
            return Err(e);
        }
    };
    src_result.map_err(MoveError::admin("roll back: serve from the source again"))?;
    dst_result.map_err(MoveError::admin("roll back: remove the destination's copy"))?;
    update(store, |t: &mut PlacementTable| {
        Ok::<bool, MoveError>(match t.moving.get(project) {
            Some(m) if m.phase != MovePhase::Switched && m.from == mv.from && m.to == mv.to => {
                t.moving.remove(project);
                true
            }
            _ => false,
        })
    })
    .await?;
    tracing::info!(project, from = mv.from, to = mv.to, "move rolled back");
    Ok(())
}

/// Removes the old copies of switched moves whose grace period is over (all of them when
/// `now` is set), and drops their entries. Returns the projects finished.
pub async fn finish_switched(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    now: bool,
) -> Result<(Vec<String>, Vec<String>), MoveError> {
    let table = store.load().await?.table;
    let mut finished = Vec::new();
    let mut waiting = Vec::new();
    for (project, mv) in &table.moving {
        if mv.phase != MovePhase::Switched {
            continue;
        }
        ctx.note_switched(project);
        if !now && !ctx.grace_over(project) {
            waiting.push(project.clone());
            continue;
        }
        let src = ctx.shard(&table, mv.from)?;
        // only a fenced copy is removed: a copy that serves is never the old one
        match src.project_info(project).await {
            Ok(Some(info)) if info.state != "fenced" => {
                return Err(MoveError::Conflict {
                    project: project.clone(),
                    reason: format!(
                        "the old copy on shard {} is {}, not fenced; left in place",
                        mv.from, info.state
                    ),
                })
            }
            Ok(_) => {}
            Err(e) => return Err(MoveError::admin("finish: inspect the old copy")(e)),
        }
        src.delete_project(project)
            .await
            .map_err(MoveError::admin("finish: remove the old copy"))?;
        let (from, to) = (mv.from, mv.to);
        update(store, |t: &mut PlacementTable| {
            Ok::<bool, MoveError>(match t.moving.get(project) {
                Some(m) if m.phase == MovePhase::Switched && m.from == from && m.to == to => {
                    t.moving.remove(project);
                    true
                }
                _ => false,
            })
        })
        .await?;
        ctx.forget_switched(project);
        finished.push(project.clone());
    }
    Ok((finished, waiting))
}

/// Ends what interrupted moves left in the table: rolls back those not switched, and
/// finishes the switched ones whose grace period is over. A move that cannot be ended now
/// is reported, not failed on: the others still get done.
pub async fn recover(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
) -> Result<RecoveryReport, MoveError> {
    let table = store.load().await?.table;
    let mut report = RecoveryReport::default();
    for (project, mv) in &table.moving {
        if mv.phase == MovePhase::Switched {
            continue;
        }
        match roll_back(ctx, store, project).await {
            Ok(()) => report.rolled_back.push(project.clone()),
            Err(e) => report.stuck.push((project.clone(), e.to_string())),
        }
    }
    match finish_switched(ctx, store, false).await {
        Ok((finished, waiting)) => {
            report.finished = finished;
            report.in_grace = waiting;
        }
        Err(e) => report
            .stuck
            .push(("(switched moves)".into(), e.to_string())),
    }
    Ok(report)
}
