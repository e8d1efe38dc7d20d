//! Where a Quiver project lives.
//!
//! A project's *home* shard is `jump_consistent_hash(project_hash(name), shard_count)`
//! unless the [`PlacementTable`] overrides it. The router and the operator both call
//! [`PlacementTable::ordinal_of`], so they can never disagree about a project's shard.
//!
//! The same table is published by the operator as JSON in a ConfigMap, written by hand to
//! a placement file, or built from a static list of shard URLs; see [`table`].

pub mod hash;
pub mod protocol;
pub mod table;

pub use hash::{home_ordinal, jump_consistent_hash, project_hash};
pub use table::{Move, MovePhase, PlacementError, PlacementTable, Route};
