//! The [`Backend`] over Quiver's per-project API (`/api/v1`, through `quiver-client`). A
//! scope is a project; collections are addressed by name. It is also how the v2 backend
//! learns how far Quiver has indexed ([`wait_indexed`]), the one thing v2 does not expose.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use quiver_client::{
    AddRequest, ClientError, CollectionConfiguration, GetRequest, HnswConfiguration, Include,
    ProjectInfo, QueryRequest, QuiverClient, Space,
};

use super::{
    Backend, CollRef, Created, GetAnswer, Handshake, Hnsw, Indexed, Query, QueryAnswer, Rows,
    Software, Words,
};
use crate::workload::is_bench_project;

/// A Quiver server (tenant server or router) through `/api/v1`.
#[derive(Debug, Clone)]
pub struct V1 {
    client: QuiverClient,
    url: String,
    timeout: Duration,
}

impl Backend for V1 {
    const WORDS: Words = Words {
        scope: "project",
        unit: "proj/s",
        creation: "create collection",
        removal: "delete projects",
        removed: "project deletion",
    };

    fn connect(url: &str, timeout: Duration, _: Software) -> Result<Self> {
        Ok(V1 {
            client: QuiverClient::with_timeout(url, timeout)?,
            url: url.to_owned(),
            timeout,
        })
    }

    fn fresh(&self) -> Result<Self> {
        Self::connect(&self.url, self.timeout, Software::Quiver)
    }

    async fn heartbeat(&self) -> Result<()> {
        self.client.heartbeat().await?;
        Ok(())
    }

    async fn handshake(&mut self, _largest_batch: usize) -> Result<Handshake> {
        let version = self.client.version().await.context("GET /api/v1/version")?;
        Ok(Handshake {
            version,
            detail: String::new(),
        })
    }

    fn describe_collections(&self, scope: &str, names: &[&str], hnsw: &Hnsw) -> String {
        format!(
            "# project {scope}, collections {}: {}",
            names.join(" and "),
            serde_json::to_string(&hnsw_config(hnsw)).unwrap_or_default()
        )
    }

    async fn prepare_scope(&self, _scope: &str) -> Result<()> {
        Ok(())
    }

    async fn drop_collection(&self, scope: &str, name: &str) -> Result<()> {
        ignore_not_found(self.client.delete_collection(scope, name).await)
            .with_context(|| format!("dropping {scope}/{name}"))
    }

    async fn create_collection(&self, scope: &str, name: &str, hnsw: &Hnsw) -> Result<Created> {
        let create = || {
            self.client
                .create_collection(scope, name, None, Some(hnsw_config(hnsw)), false)
        };
        match create().await {
            // Left by an earlier run against the same server: start afresh.
            Err(e) if e.status() == Some(409) => {
                self.client.delete_collection(scope, name).await?;
                create().await
            }
            r => r,
        }
        .with_context(|| format!("creating {scope}/{name}"))?;
        Ok(Created {
            coll: CollRef {
                scope: scope.to_owned(),
                name: name.to_owned(),
                id: name.to_owned(),
            },
            problems: Vec::new(),
        })
    }

    async fn add(&self, coll: &CollRef, rows: Rows<'_>) -> Result<Option<u64>> {
        let req = add_request(&rows);
        Ok(Some(
            self.client.add(&coll.scope, &coll.id, &req).await?.added,
        ))
    }

    async fn query(&self, coll: &CollRef, q: Query<'_>) -> Result<QueryAnswer> {
        let mut include = vec![Include::Distances];
        if q.metadatas {
            include.insert(0, Include::Metadatas);
        }
        let req = QueryRequest {
            query_embeddings: vec![q.vector.to_vec()],
            n_results: Some(q.k),
            where_metadata: q.filter.cloned(),
            include: Some(include),
            ..Default::default()
        };
        let res = self.client.query(&coll.scope, &coll.id, &req).await?;
        Ok(QueryAnswer {
            ids: res.ids.into_iter().next().unwrap_or_default(),
            distances: res
                .distances
                .and_then(|d| d.into_iter().next())
                .map(|d| d.into_iter().map(|x| Some(f64::from(x))).collect()),
            metadatas: res.metadatas.and_then(|m| m.into_iter().next()),
        })
    }

    async fn get(&self, coll: &CollRef, ids: Vec<String>) -> Result<GetAnswer> {
        let req = GetRequest {
            ids: Some(ids),
            include: Some(vec![Include::Metadatas]),
            ..Default::default()
        };
        let res = self.client.get(&coll.scope, &coll.id, &req).await?;
        Ok(GetAnswer {
            ids: res.ids,
            metadatas: res.metadatas.unwrap_or_default(),
        })
    }

    async fn count(&self, coll: &CollRef) -> Result<u64> {
        Ok(self.client.count(&coll.scope, &coll.id).await?)
    }

    async fn wait_indexed(&self, coll: &CollRef, timeout: Duration) -> Result<Option<Indexed>> {
        wait_indexed(&self.client, &coll.scope, &coll.name, timeout)
            .await
            .map(Some)
    }

    async fn stale_scopes(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .bench_projects(prefix)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect())
    }

    async fn remove_scope(&self, scope: &str, _coll: &str) -> Result<()> {
        Ok(ignore_not_found(self.client.delete_project(scope).await)?)
    }

    async fn describe_scopes(&self, prefix: &str) -> Result<Option<String>> {
        let listed = self.bench_projects(prefix).await?;
        Ok(Some(format!(
            "lists {} bench projects, {} open, {} records, {:.1} MiB on disk",
            listed.len(),
            listed.iter().filter(|p| p.open).count(),
            listed.iter().map(|p| p.records).sum::<u64>(),
            listed.iter().map(|p| p.bytes).sum::<u64>() as f64 / (1024.0 * 1024.0)
        )))
    }
}

impl V1 {
    /// The server's projects that are the bench's for `prefix`.
    async fn bench_projects(&self, prefix: &str) -> Result<Vec<ProjectInfo>> {
        Ok(self
            .client
            .list_projects()
            .await
            .context("listing projects")?
            .into_iter()
            .filter(|p| is_bench_project(prefix, &p.name))
            .collect())
    }
}

/// Polls collection `coll` of `project` until `indexing.unindexed == 0` (or `indexing` is
/// `null`: the collection is not loaded, so nothing is pending) or `timeout`.
pub async fn wait_indexed(
    client: &QuiverClient,
    project: &str,
    coll: &str,
    timeout: Duration,
) -> Result<Indexed> {
    let start = Instant::now();
    loop {
        let info = client
            .get_collection(project, coll)
            .await
            .with_context(|| format!("polling {project}/{coll}"))?;
        let done = info.indexing.is_none_or(|i| i.unindexed == 0);
        if done || start.elapsed() >= timeout {
            return Ok(Indexed {
                wait: start.elapsed(),
                done,
                unindexed: info.indexing.unwrap_or_default().unindexed,
                indexed: info.indexing.map(|i| i.indexed),
                dimension: info.dimension,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hnsw_config(hnsw: &Hnsw) -> CollectionConfiguration {
    use quiver_tenant_server::store::types::Space as S;
    CollectionConfiguration {
        hnsw: Some(HnswConfiguration {
            space: Some(match hnsw.space {
                S::L2 => Space::L2,
                S::Cosine => Space::Cosine,
                S::Ip => Space::Ip,
            }),
            ef_search: Some(hnsw.ef_search),
            ef_construction: hnsw.ef_construction,
            max_neighbors: hnsw.max_neighbors,
        }),
    }
}

fn add_request(rows: &Rows<'_>) -> AddRequest {
    AddRequest {
        ids: rows.ids(),
        embeddings: rows.vectors().map(<[f32]>::to_vec).collect(),
        metadatas: Some(rows.metadatas()),
        ..Default::default()
    }
}

fn ignore_not_found<T>(r: Result<T, ClientError>) -> Result<(), ClientError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_request_takes_the_rows() {
        let r = add_request(&Rows {
            data: &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            dim: 2,
            range: 1..3,
        });
        assert_eq!(r.ids, vec!["1", "2"]);
        assert_eq!(r.embeddings, vec![vec![2.0, 3.0], vec![4.0, 5.0]]);
    }
}
