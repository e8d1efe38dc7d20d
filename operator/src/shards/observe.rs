//! What the shard controller reads and writes outside itself: the tenant StatefulSet
//! (replicas, readiness, the scale subresource) and each shard's load.

use futures_util::future::{join_all, BoxFuture};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use super::scale::Replicas;
use super::ShardError;
use crate::admin::AdminClient;
use crate::shard_count::ShardLoad;

/// The tenant-server StatefulSet.
#[derive(Clone)]
pub struct StatefulSetClient {
    api: Api<StatefulSet>,
    name: String,
}

impl StatefulSetClient {
    pub fn new(api: Api<StatefulSet>, name: &str) -> StatefulSetClient {
        StatefulSetClient {
            api,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn kube_error(&self, source: kube::Error) -> ShardError {
        ShardError::Kube {
            statefulset: self.name.clone(),
            source: Box::new(source),
        }
    }

    /// `spec.replicas` (Kubernetes' default of 1 when unset) and `status.readyReplicas`.
    pub async fn replicas(&self) -> Result<Replicas, ShardError> {
        let sts = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.kube_error(e))?
            .ok_or_else(|| ShardError::StatefulSetMissing(self.name.clone()))?;
        Ok(replicas_of(&sts))
    }

    /// Sets the replicas through the scale subresource: only the count changes, whatever
    /// else the chart manages in the StatefulSet.
    pub async fn scale(&self, replicas: u32) -> Result<(), ShardError> {
        let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
        self.api
            .patch_scale(&self.name, &PatchParams::default(), &patch)
            .await
            .map_err(|e| self.kube_error(e))?;
        Ok(())
    }
}

/// The replicas of a StatefulSet as read; negative counts (never sent by a real API
/// server) read as zero.
pub fn replicas_of(sts: &StatefulSet) -> Replicas {
    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    let spec = sts.spec.replicas.or(Some(1));
    Replicas {
        spec: count(spec),
        ready: count(sts.status.as_ref().and_then(|s| s.ready_replicas)),
    }
}

/// Where a shard's load comes from.
pub trait ShardStats: Send + Sync {
    /// The load of the shard at `url`.
    fn load<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<ShardLoad, String>>;
}

/// Each shard's admin API: `GET /admin/v1/stats` (`projects`, `diskBytes`).
pub struct AdminShardStats {
    http: reqwest::Client,
    token: Option<String>,
}

impl AdminShardStats {
    pub fn new(http: reqwest::Client, token: Option<String>) -> AdminShardStats {
        AdminShardStats { http, token }
    }
}

impl ShardStats for AdminShardStats {
    fn load<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<ShardLoad, String>> {
        Box::pin(async move {
            let client = AdminClient::new(url, self.token.clone(), self.http.clone())
                .map_err(|e| e.to_string())?;
            let stats = client.server_stats().await.map_err(|e| e.to_string())?;
            Ok(ShardLoad {
                projects: stats.projects,
                bytes: stats.disk_bytes,
            })
        })
    }
}

/// Every shard's load, asked at once; `None` if any shard did not answer (the reason is
/// logged), because a partial sum would understate the load.
pub async fn gather_loads(stats: &dyn ShardStats, urls: &[String]) -> Option<Vec<ShardLoad>> {
    let results = join_all(urls.iter().map(|u| stats.load(u))).await;
    let mut loads = Vec::with_capacity(results.len());
    let mut complete = true;
    for (ordinal, (url, result)) in urls.iter().zip(results).enumerate() {
        match result {
            Ok(load) => loads.push(load),
            Err(e) => {
                tracing::warn!(ordinal, url = %url, "no load from shard: {e}");
                complete = false;
            }
        }
    }
    complete.then_some(loads)
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use axum::routing::get;
    use axum::Json;
    use http::Method;
    use serde_json::json;

    use super::*;
    use quiver_testkit::kube_mock::pair;

    pub(in crate::shards) const ITEM: &str =
        "/apis/apps/v1/namespaces/ns/statefulsets/quiver-tenant";
    pub(in crate::shards) const SCALE: &str =
        "/apis/apps/v1/namespaces/ns/statefulsets/quiver-tenant/scale";

    /// The StatefulSet `quiver-tenant` as the API server returns it.
    pub(in crate::shards) fn sts(spec: Option<i32>, ready: Option<i32>) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "quiver-tenant", "namespace": "ns", "resourceVersion": "5"},
            "spec": {
                "replicas": spec, "serviceName": "quiver-tenant",
                "selector": {"matchLabels": {"app": "t"}},
                "template": {"metadata": {"labels": {"app": "t"}}, "spec": {"containers": []}},
            },
            "status": {"replicas": spec.unwrap_or(1), "readyReplicas": ready},
        })
    }

    #[tokio::test]
    async fn reads_replicas_and_patches_the_scale_subresource() {
        let (client, mut api) = pair("ns");
        let sts_client = StatefulSetClient::new(Api::namespaced(client, "ns"), "quiver-tenant");
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &sts(Some(3), Some(2)));
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &sts(None, None));
            let patch = api.expect(Method::PATCH, SCALE).await;
            assert_eq!(
                patch.content_type.as_deref(),
                Some("application/merge-patch+json")
            );
            assert_eq!(patch.body, json!({"spec": {"replicas": 4}}));
            patch.respond(
                200,
                &json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "quiver-tenant", "namespace": "ns"},
                    "spec": {"replicas": 4}, "status": {"replicas": 3},
                }),
            );
            api.expect(Method::GET, ITEM).await.fail(404, "NotFound");
            api.expect(Method::PATCH, SCALE)
                .await
                .fail(403, "Forbidden");
        };
        let client = async {
            assert_eq!(
                sts_client.replicas().await.unwrap(),
                Replicas { spec: 3, ready: 2 }
            );
            // unset replicas default to 1, unset readiness to none
            assert_eq!(
                sts_client.replicas().await.unwrap(),
                Replicas { spec: 1, ready: 0 }
            );
            sts_client.scale(4).await.unwrap();
            assert!(matches!(
                sts_client.replicas().await,
                Err(ShardError::StatefulSetMissing(_))
            ));
            assert!(matches!(
                sts_client.scale(2).await,
                Err(ShardError::Kube { .. })
            ));
        };
        tokio::join!(server, client);
    }

    struct Fixed(BTreeMap<String, Result<ShardLoad, String>>);

    impl ShardStats for Fixed {
        fn load<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<ShardLoad, String>> {
            let r = self.0.get(url).cloned().unwrap_or(Err("unknown".into()));
            Box::pin(async move { r })
        }
    }

    #[tokio::test]
    async fn loads_are_all_or_nothing() {
        let load = |p| ShardLoad {
            projects: p,
            bytes: p * 10,
        };
        let urls = vec!["a".to_string(), "b".to_string()];
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), Ok(load(1)));
        m.insert("b".to_string(), Ok(load(2)));
        assert_eq!(
            gather_loads(&Fixed(m.clone()), &urls).await,
            Some(vec![load(1), load(2)])
        );
        m.insert("b".to_string(), Err("down".into()));
        assert_eq!(gather_loads(&Fixed(m), &urls).await, None);
    }

    #[tokio::test]
    async fn admin_stats_read_projects_and_disk_bytes() {
        let app = axum::Router::new().route(
            "/admin/v1/stats",
            get(|headers: http::HeaderMap| async move {
                assert_eq!(
                    headers.get("authorization").and_then(|v| v.to_str().ok()),
                    Some("Bearer s3cret")
                );
                Json(
                    json!({"version": "0.1.0", "projects": 12, "fencedProjects": 1,
                    "diskBytes": 4096, "rssBytes": null}),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let stats = AdminShardStats::new(reqwest::Client::new(), Some("s3cret".into()));
        assert_eq!(
            stats.load(&url).await.unwrap(),
            ShardLoad {
                projects: 12,
                bytes: 4096
            }
        );
        assert!(stats.load("http://127.0.0.1:1").await.is_err());
    }
}
