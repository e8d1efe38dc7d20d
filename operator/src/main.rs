use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "quiver-operator",
    version,
    about = "Quiver operator: reconciles Project resources and the tenant-server shards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Project CustomResourceDefinition (YAML), e.g. `quiver-operator crd | kubectl apply -f -`.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = quiver_operator::crd::crd_yaml().map_err(anyhow::Error::msg)?;
            print!("{yaml}");
        }
    }
    Ok(())
}
