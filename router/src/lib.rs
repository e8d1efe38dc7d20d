//! Quiver router: maps each project to its tenant-server shard and proxies to it.
//!
//! - [`placement`]: the live placement table and its sources (static list, file, ConfigMap)
//! - [`proxy`]: forwarding to a shard (streaming, retries across pauses and moves) and the
//!   calls that concern every shard
//! - [`http`]: the router's own routes and the proxy fallback
//! - [`metrics`]: Prometheus metrics

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod placement;
pub mod proxy;
