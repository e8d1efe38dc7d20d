//! Quiver operator: turns `Project` custom resources into provisioned, placed, observable
//! projects, and grows or shrinks the set of tenant-server shards.
//!
//! - [`crd`]: the `Project` resource (group `quiver.dev`, version `v1alpha1`), from which the
//!   CRD manifest in `crds/` is generated
//! - [`plan`]: the shard controller's pure decisions (how many shards, which projects move)

pub mod admin;
pub mod config;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod moves;
pub mod placement_store;
pub mod plan;
pub mod reconcile;
pub mod shards;
