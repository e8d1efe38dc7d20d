//! Quiver operator: turns `Project` custom resources into provisioned, placed, observable
//! projects, and grows or shrinks the set of tenant-server shards.
//!
//! - [`crd`]: the `Project` resource (group `quiver.dev`, version `v1alpha1`), from which the
//!   CRD manifest in `crds/` is generated

pub mod crd;
