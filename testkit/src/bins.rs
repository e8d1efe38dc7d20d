//! Finding the binaries a test runs.
//!
//! Why: an integration test only gets the path of its own crate's binaries
//! (`CARGO_BIN_EXE_*`, which only the crate under test can expand, so the kit takes it as
//! an argument). The other servers are the siblings of that binary in the same target
//! directory and profile, and cargo builds them only when asked: a missing one must say
//! how to build it instead of failing with "No such file".

use std::path::{Path, PathBuf};

/// `name` next to `anchor` (a `CARGO_BIN_EXE_*` path of the crate under test). Panics
/// with the build command when it is missing; `who` says whose tests need it.
#[track_caller]
pub fn sibling(anchor: &str, name: &str, who: &str) -> PathBuf {
    let bin = Path::new(anchor).with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        panic!(
            "{} is missing: {who} run the real binaries. Build it first with `cargo build \
             --release -p {name}` (same CARGO_TARGET_DIR and profile as the tests), or run \
             `cargo test --release --workspace`, which builds every binary.",
            bin.display()
        );
    }
    bin
}

/// The tenant server next to `anchor`.
#[track_caller]
pub fn tenant_server(anchor: &str, who: &str) -> PathBuf {
    sibling(anchor, "quiver-tenant-server", who)
}

/// The router next to `anchor`.
#[track_caller]
pub fn router(anchor: &str, who: &str) -> PathBuf {
    sibling(anchor, "quiver-router", who)
}
