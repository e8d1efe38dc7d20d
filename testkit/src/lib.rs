//! The Quiver test kit: what the crates' tests share instead of copying (dev-only, not
//! published).
//!
//! - [`process`]: child processes that die with the test and show their logs on failure;
//!   free ports.
//! - [`bins`]: the binaries under test, found next to the crate's own.
//! - [`tenant`]: a real tenant server ([`TenantServer`]); [`router`]: a real router
//!   ([`RouterProc`]).
//! - [`http`]: [`Http`] requests and [`Resp`] answers with their checks.
//! - [`assertions`]: answers every suite checks the same way (success, paused, moved).
//! - [`kube_mock`]: a mocked Kubernetes API server for the operator's and the router's
//!   Kubernetes code.
//! - [`json`]: reading lists out of JSON answers.
//! - [`vectors`]: seeded synthetic vectors (a Gaussian mixture) and exact k-NN ground
//!   truth, for the index's tests and the bench.

pub mod assertions;
pub mod bins;
pub mod http;
pub mod json;
pub mod kube_mock;
pub mod process;
pub mod router;
pub mod tenant;
pub mod vectors;

pub use assertions::{
    assert_moved, assert_moved_to, assert_ok, assert_paused, assert_paused_retry_soon,
};
pub use http::{Http, Resp};
pub use router::RouterProc;
pub use tenant::{TenantServer, TenantServerBuilder};
