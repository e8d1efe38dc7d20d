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

/// What a roll back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollBack {
    /// Undone (or nothing was recorded).
    Done,
    /// The move was already switched: nothing to undo, the destination is the home.
    AlreadySwitched,
}

/// Undoes the recorded move of `project` unless it is already switched (then there is
/// nothing to undo: the table routes to the destination, which is the project's home
/// now). The source is resumed and unfenced (and checked: a fence that arrived late is
/// lifted again), then the destination's copy is removed, but only one this move made:
/// an `incoming` copy, or any copy once the move reached `activating` (nothing routed
/// to it before the switch). A copy the destination served on its own is never touched.
/// If the destination cannot be reached the source still serves again, and the entry
/// stays for a later attempt, so that the copy left there is not forgotten.
pub async fn roll_back(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    project: &str,
) -> Result<RollBack, MoveError> {
    let table = store.load().await?.table;
    let Some(mv) = table.moving.get(project).cloned() else {
        return Ok(RollBack::Done);
    };
    if mv.phase == MovePhase::Switched {
        return Ok(RollBack::AlreadySwitched);
    }
    let src = ctx.shard(&table, mv.from)?;
    // the source first: whatever happens to the destination, the project serves again
    let src_result = async {
        src.resume(project).await?;
        src.unfence(project).await?;
        // a fence call of the move still in flight could land after the unfence
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        match src.project_info(project).await? {
            Some(info) if info.state == "fenced" => src.unfence(project).await.map(drop),
            _ => Ok(()),
        }
    }
    .await
    // a project a client deleted meanwhile has nothing left to serve
    .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) });
    let dst = ctx.shard(&table, mv.to)?;
    let dst_result = async {
        let ours = match dst.project_info(project).await? {
            None => return Ok(()),
            Some(info) => info.state == "incoming" || mv.phase == MovePhase::Activating,
        };
        if ours {
            dst.delete_project(project).await.map(drop)
        } else {
            tracing::warn!(
                project,
                shard = mv.to,
                "the destination holds its own copy of the project; left in place"
            );
            Ok(())
        }
    }
    .await;
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
    Ok(RollBack::Done)
}

/// Removes the old copies of switched moves whose grace period is over (all of them when
/// `now` is set), and drops their entries. Returns the projects finished.
/// An entry that cannot be finished now (its old shard unreachable, say) is reported in
/// the waiting list and logged; the others are finished regardless.
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
        match finish_one(ctx, store, &table, project, mv.from, mv.to).await {
            Ok(()) => finished.push(project.clone()),
            Err(e) => {
                tracing::warn!(project, "cannot finish the move yet: {e}");
                waiting.push(project.clone());
            }
        }
    }
    Ok((finished, waiting))
}

async fn finish_one(
    ctx: &MoveContext,
    store: &dyn PlacementStore,
    table: &PlacementTable,
    project: &str,
    from: u32,
    to: u32,
) -> Result<(), MoveError> {
    {
        let src = ctx.shard(table, from)?;
        // only a fenced copy is removed: a copy that serves is never the old one
        match src.project_info(project).await {
            Ok(Some(info)) if info.state != "fenced" => {
                return Err(MoveError::Conflict {
                    project: project.to_string(),
                    reason: format!(
                        "the old copy on shard {from} is {}, not fenced; left in place",
                        info.state
                    ),
                })
            }
            Ok(_) => {}
            Err(e) => return Err(MoveError::admin("finish: inspect the old copy")(e)),
        }
        src.delete_project(project)
            .await
            .map_err(MoveError::admin("finish: remove the old copy"))?;
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
    }
    Ok(())
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
            Ok(_) => report.rolled_back.push(project.clone()),
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
