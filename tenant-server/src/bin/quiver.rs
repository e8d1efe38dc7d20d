//! `quiver`: the command the Python package installs, used the way `chroma run` is.
//!
//! `quiver run --path ./workspace --port 7100` starts a tenant server; every flag and
//! environment variable of `quiver-tenant-server` works after `run`, and `--path` is
//! Chroma's name for `--workspace`.

use clap::{Parser, Subcommand};
use quiver_tenant_server::config::{self, Config};

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "Quiver: a multi-tenant vector database that speaks the ChromaDB HTTP API.",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tenant server: every project in its own RocksDB + HNSW store under --path,
    /// served over the per-project API (/api/v1), the Chroma v2 API (/api/v2) and the
    /// admin API (/admin/v1).
    Run(Box<Config>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    config::read_dotenv();
    match Cli::parse().command {
        Command::Run(config) => quiver_tenant_server::serve::serve(*config).await,
    }
}
