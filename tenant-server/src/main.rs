use quiver_tenant_server::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    quiver_tenant_server::serve::serve(Config::load()).await
}
