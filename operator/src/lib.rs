//! Quiver operator: turns `Project` custom resources into provisioned, placed, observable
//! projects, and grows or shrinks the set of tenant-server shards.
//!
//! The resource and the settings:
//! - [`crd`]: the `Project` resource (group `quiver.dev`, version `v1alpha1`), from which the
//!   CRD manifest in `crds/` is generated
//! - [`config`]: the settings of `quiver-operator run` (flags over environment over defaults)
//!
//! The controllers:
//! - [`reconcile`]: the `Project` reconciler (provision on the home shard, quotas, status,
//!   Events, deletion policy)
//! - [`shards`]: the shard controller (observe the shards' load, scale the StatefulSet one
//!   step at a time)
//! - [`moves`]: moving a project between shards with nothing lost, recovery of interrupted
//!   moves, and the rebalancer
//! - [`leader`]: leader election on a Lease, so that one replica scales and moves
//!
//! The policies, pure and without I/O:
//! - [`shard_count`]: how many shards the load calls for
//! - [`move_plan`]: which projects move for a shard count, in batches
//!
//! What they talk to:
//! - [`admin`]: client of a tenant server's admin API (`/admin/v1`), move primitives included
//! - [`placement_store`]: reading and publishing the placement table (the routers' ConfigMap,
//!   or a file), every write against the version it read
//! - [`metrics`]: the operator's Prometheus metrics
//! - [`http`]: the operator's own endpoint (`/metrics`, `/healthz`, `/readyz`)

pub mod admin;
pub mod config;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod move_plan;
pub mod moves;
pub mod placement_store;
pub mod reconcile;
pub mod shard_count;
pub mod shards;
