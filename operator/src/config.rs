//! Settings of `quiver-operator run`: flags override environment variables, which override
//! the defaults. The Helm chart sets them from its values (`shards.*` for the scaling
//! policy).

use std::time::Duration;

use clap::{ArgAction, Args};

use crate::shard_count::ScalingPolicy;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Namespace of the tenant StatefulSet, its Service, the placement ConfigMap and the
    /// leader Lease (default: the namespace of the operator's service account or kubeconfig
    /// context).
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Name of the tenant-server StatefulSet whose replicas are the shards.
    #[arg(
        long,
        env = "QUIVER_TENANT_STATEFULSET",
        default_value = "quiver-tenant"
    )]
    pub tenant_statefulset: String,

    /// Headless Service of that StatefulSet, through which each shard is addressed
    /// (`<statefulset>-<ordinal>.<service>.<namespace>.svc`).
    #[arg(long, env = "QUIVER_TENANT_SERVICE", default_value = "quiver-tenant")]
    pub tenant_service: String,

    /// Port of the tenant servers (their `--port`).
    #[arg(long, env = "QUIVER_TENANT_PORT", default_value_t = 7100)]
    pub tenant_port: u16,

    /// ConfigMap the placement table is published in (key `placement.json`), which the
    /// routers watch.
    #[arg(
        long,
        env = "QUIVER_PLACEMENT_CONFIGMAP",
        default_value = "quiver-placement"
    )]
    pub placement_configmap: String,

    /// URL clients use to reach projects, reported as a Project's `status.endpoint`
    /// (default: `http://quiver-router.<namespace>.svc:7100`).
    #[arg(long, env = "QUIVER_ROUTER_ENDPOINT")]
    pub router_endpoint: Option<String>,

    /// Bearer token of the tenant servers' admin API (their `QUIVER_ADMIN_TOKEN`); empty
    /// means none.
    #[arg(long, env = "QUIVER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Fewest shards, whatever the load.
    #[arg(long, env = "QUIVER_MIN_SHARDS", default_value_t = 1)]
    pub min_shards: u32,

    /// Most shards, whatever the load.
    #[arg(long, env = "QUIVER_MAX_SHARDS", default_value_t = 16)]
    pub max_shards: u32,

    /// Projects one shard should hold; more in total add shards.
    #[arg(
        long,
        env = "QUIVER_TARGET_PROJECTS_PER_SHARD",
        default_value_t = 5_000
    )]
    pub target_projects_per_shard: u64,

    /// Bytes on disk one shard should hold; more in total add shards.
    #[arg(long, env = "QUIVER_TARGET_BYTES_PER_SHARD", default_value_t = 100 << 30)]
    pub target_bytes_per_shard: u64,

    /// Remove a shard only when the others would stay at or below this fraction of both
    /// targets (0 < f ≤ 1), so the shard count does not flap around a boundary.
    #[arg(long, env = "QUIVER_SCALE_DOWN_BELOW", default_value_t = 0.5)]
    pub scale_down_below: f64,

    /// Seconds between two scaling decisions (each reads every shard's stats, which walks
    /// its disk).
    #[arg(long, env = "QUIVER_SCALE_INTERVAL_SECS", default_value_t = 60)]
    pub scale_interval_secs: u64,

    /// Projects moved at the same time while rebalancing.
    #[arg(long, env = "QUIVER_MOVE_BATCH_SIZE", default_value_t = 4)]
    pub move_batch_size: usize,

    /// Seconds a moved project's old copy is kept (fenced) before it is deleted.
    #[arg(long, env = "QUIVER_MOVE_GRACE_SECS", default_value_t = 300)]
    pub move_grace_secs: u64,

    /// Create Project resources for projects found on the shards without one, instead of
    /// only counting them.
    #[arg(long, env = "QUIVER_ADOPT_UNMANAGED", action = ArgAction::SetTrue)]
    pub adopt_unmanaged: bool,

    /// Name of the Lease through which operator replicas elect their leader.
    #[arg(long, env = "QUIVER_LEASE_NAME", default_value = "quiver-operator")]
    pub lease_name: String,

    /// Port of the operator's own HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "QUIVER_METRICS_PORT", default_value_t = 8080)]
    pub metrics_port: u16,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "QUIVER_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    pub log_format: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--min-shards must be at least 1")]
    NoShards,
    #[error("--min-shards ({min}) is above --max-shards ({max})")]
    MinAboveMax { min: u32, max: u32 },
    #[error("--{0} must be above 0")]
    Zero(&'static str),
    #[error("--scale-down-below must be above 0 and at most 1, not {0}")]
    ScaleDownBelow(f64),
    #[error("--{0} must not be empty")]
    Empty(&'static str),
}

/// Where the shards are: the StatefulSet's pods through its headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAddresses {
    pub statefulset: String,
    pub service: String,
    pub namespace: String,
    pub port: u16,
}

impl ShardAddresses {
    /// The base URL of shard `ordinal`: the stable DNS name of pod `<statefulset>-<ordinal>`.
    pub fn url(&self, ordinal: u32) -> String {
        shard_url(
            &self.statefulset,
            &self.service,
            &self.namespace,
            self.port,
            ordinal,
        )
    }

    /// The URLs of ordinals `0..count`.
    pub fn urls(&self, count: u32) -> Vec<String> {
        (0..count).map(|i| self.url(i)).collect()
    }
}

/// `http://{statefulset}-{ordinal}.{service}.{namespace}.svc:{port}`.
pub fn shard_url(
    statefulset: &str,
    service: &str,
    namespace: &str,
    port: u16,
    ordinal: u32,
) -> String {
    format!("http://{statefulset}-{ordinal}.{service}.{namespace}.svc:{port}")
}

impl Config {
    /// Checks what clap cannot: ranges and relations between flags.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_shards == 0 {
            return Err(ConfigError::NoShards);
        }
        if self.min_shards > self.max_shards {
            return Err(ConfigError::MinAboveMax {
                min: self.min_shards,
                max: self.max_shards,
            });
        }
        for (name, value) in [
            ("target-projects-per-shard", self.target_projects_per_shard),
            ("target-bytes-per-shard", self.target_bytes_per_shard),
            ("scale-interval-secs", self.scale_interval_secs),
            ("move-batch-size", self.move_batch_size as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        // written so that NaN fails too
        if !(self.scale_down_below > 0.0 && self.scale_down_below <= 1.0) {
            return Err(ConfigError::ScaleDownBelow(self.scale_down_below));
        }
        for (name, value) in [
            ("tenant-statefulset", &self.tenant_statefulset),
            ("tenant-service", &self.tenant_service),
            ("placement-configmap", &self.placement_configmap),
            ("lease-name", &self.lease_name),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty(name));
            }
        }
        Ok(())
    }

    pub fn policy(&self) -> ScalingPolicy {
        ScalingPolicy {
            min_shards: self.min_shards,
            max_shards: self.max_shards,
            target_projects_per_shard: self.target_projects_per_shard,
            target_bytes_per_shard: self.target_bytes_per_shard,
            scale_down_below: self.scale_down_below,
        }
    }

    /// The shard addresses in `namespace` (the resolved [`Config::namespace`]).
    pub fn shard_addresses(&self, namespace: &str) -> ShardAddresses {
        ShardAddresses {
            statefulset: self.tenant_statefulset.clone(),
            service: self.tenant_service.clone(),
            namespace: namespace.to_string(),
            port: self.tenant_port,
        }
    }

    /// `--router-endpoint`, else the router Service's address in `namespace`.
    pub fn router_endpoint(&self, namespace: &str) -> String {
        match self.router_endpoint.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.trim_end_matches('/').to_string(),
            _ => format!("http://quiver-router.{namespace}.svc:7100"),
        }
    }

    /// The admin token; an empty one means none, as on the tenant server.
    pub fn admin_token(&self) -> Option<String> {
        self.admin_token.clone().filter(|t| !t.is_empty())
    }

    pub fn scale_interval(&self) -> Duration {
        Duration::from_secs(self.scale_interval_secs)
    }

    pub fn move_grace(&self) -> Duration {
        Duration::from_secs(self.move_grace_secs)
    }
}

/// Every long flag `run` accepts, with its `--`, in declaration order (`--help` aside).
/// The Helm chart's tests check the container's arguments against this list.
pub fn long_flags() -> Vec<String> {
    let cmd = <Config as Args>::augment_args(clap::Command::new("run"));
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "help" && *l != "version")
        .map(|l| format!("--{l}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.config)
    }

    #[test]
    fn defaults_make_a_valid_config() {
        let c = parse(&[]).unwrap();
        // environment variables of the test process could change defaults; only check
        // what none of the usual ones set
        assert_eq!(c.policy(), ScalingPolicy::default());
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.move_batch_size, 4);
        assert_eq!(c.move_grace(), Duration::from_secs(300));
        assert_eq!(c.scale_interval(), Duration::from_secs(60));
        assert!(!c.adopt_unmanaged);
        assert_eq!(c.lease_name, "quiver-operator");
        assert_eq!(c.metrics_port, 8080);
        assert_eq!(c.tenant_port, 7100);
    }

    #[test]
    fn flags_are_read_and_checked() {
        let c = parse(&[
            "--namespace",
            "q",
            "--min-shards",
            "2",
            "--max-shards",
            "5",
            "--scale-down-below",
            "0.25",
            "--adopt-unmanaged",
            "--admin-token",
            "",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.namespace.as_deref(), Some("q"));
        assert_eq!((c.policy().min_shards, c.policy().max_shards), (2, 5));
        assert_eq!(c.policy().scale_down_below, 0.25);
        assert!(c.adopt_unmanaged);
        assert_eq!(c.admin_token(), None);
        assert!(parse(&["--log-format", "xml"]).is_err());

        let bad = |args: &[&str]| parse(args).unwrap().validate().unwrap_err();
        assert_eq!(bad(&["--min-shards", "0"]), ConfigError::NoShards);
        assert_eq!(
            bad(&["--min-shards", "4", "--max-shards", "3"]),
            ConfigError::MinAboveMax { min: 4, max: 3 }
        );
        assert_eq!(
            bad(&["--move-batch-size", "0"]),
            ConfigError::Zero("move-batch-size")
        );
        assert_eq!(
            bad(&["--scale-down-below", "1.5"]),
            ConfigError::ScaleDownBelow(1.5)
        );
        assert!(matches!(
            bad(&["--scale-down-below", "NaN"]),
            ConfigError::ScaleDownBelow(_)
        ));
        assert_eq!(
            bad(&["--lease-name", " "]),
            ConfigError::Empty("lease-name")
        );
    }

    #[test]
    fn shard_urls_follow_the_statefulset_dns_names() {
        assert_eq!(
            shard_url("quiver-tenant", "quiver-tenant", "prod", 7100, 3),
            "http://quiver-tenant-3.quiver-tenant.prod.svc:7100"
        );
        let c = parse(&["--tenant-statefulset", "t", "--tenant-service", "s"]).unwrap();
        let addrs = c.shard_addresses("ns");
        assert_eq!(
            addrs.urls(2),
            vec!["http://t-0.s.ns.svc:7100", "http://t-1.s.ns.svc:7100"]
        );
        // every URL is one the placement table accepts
        quiver_placement::PlacementTable::from_urls(1, addrs.urls(4)).unwrap();
    }

    #[test]
    fn router_endpoint_defaults_to_the_router_service() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.router_endpoint("ns"), "http://quiver-router.ns.svc:7100");
        let c = parse(&["--router-endpoint", "https://vectors.example.com/"]).unwrap();
        assert_eq!(c.router_endpoint("ns"), "https://vectors.example.com");
    }

    #[test]
    fn flag_list_names_every_setting() {
        let flags = long_flags();
        for f in [
            "--namespace",
            "--tenant-statefulset",
            "--tenant-service",
            "--tenant-port",
            "--placement-configmap",
            "--router-endpoint",
            "--admin-token",
            "--min-shards",
            "--max-shards",
            "--target-projects-per-shard",
            "--target-bytes-per-shard",
            "--scale-down-below",
            "--scale-interval-secs",
            "--move-batch-size",
            "--move-grace-secs",
            "--adopt-unmanaged",
            "--lease-name",
            "--metrics-port",
            "--log-format",
        ] {
            assert!(flags.contains(&f.to_string()), "{f} missing from {flags:?}");
        }
        assert_eq!(flags.len(), 19, "{flags:?}");
        assert!(!flags.contains(&"--help".to_string()));
    }
}
