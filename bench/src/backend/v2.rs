//! The [`Backend`] over the Chroma v2 API (`/api/v2`, through [`crate::v2_client`]), the
//! API both Quiver and the real Chroma serve. A scope is a tenant with its database
//! [`DEFAULT_DATABASE`]; records are addressed by the collection's UUID.
//!
//! Indexing: Quiver indexes in the background, so against Quiver this backend waits on
//! its per-project API (`/api/v1`, the one thing v2 does not expose) until nothing is left
//! unindexed. Single-node Chroma has no indexing status; it applies each add to its HNSW
//! before it answers (its SQLite log's push waits for the local compaction), so its
//! acknowledged rate is also its indexed rate.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use quiver_client::QuiverClient;
use serde_json::json;

use super::{
    v1, Backend, CollRef, Created, GetAnswer, Handshake, Hnsw, Indexed, Query, QueryAnswer, Rows,
    Software, Words,
};
use crate::v2_client::{
    tolerate_conflict, tolerate_not_found, AddRecords, Collection, CollectionConfiguration,
    CreateCollection, GetRecords, Include, QueryRecords, V2Client, DEFAULT_DATABASE,
};

/// Chroma's default HNSW ef_construction and max_neighbors, sent to both servers when
/// the command line does not set them.
pub const DEFAULT_EF_CONSTRUCTION: usize = 100;
pub const DEFAULT_MAX_NEIGHBORS: usize = 16;

/// A server through `/api/v2`.
#[derive(Debug, Clone)]
pub struct V2 {
    client: V2Client,
    url: String,
    timeout: Duration,
    /// Whether add embeddings go as base64 (the server's pre-flight answer).
    base64: bool,
    /// Quiver's per-project API, used only to wait until it has indexed.
    index_status: Option<QuiverClient>,
}

impl Backend for V2 {
    const WORDS: Words = Words {
        scope: "tenant",
        unit: "ten/s",
        creation: "tenant + database + collection",
        removal: "drop tenant collections",
        removed: "collection deletion",
    };

    fn connect(url: &str, timeout: Duration, software: Software) -> Result<Self> {
        let index_status = match software {
            Software::Quiver => Some(QuiverClient::with_timeout(url, timeout)?),
            Software::Chroma => None,
        };
        Ok(V2 {
            client: V2Client::new(url, timeout)?,
            url: url.to_owned(),
            timeout,
            base64: false,
            index_status,
        })
    }

    fn fresh(&self) -> Result<Self> {
        Ok(V2 {
            client: V2Client::new(&self.url, self.timeout)?,
            ..self.clone()
        })
    }

    async fn heartbeat(&self) -> Result<()> {
        let h = self.client.heartbeat().await?;
        ensure!(h.nanos > 0, "GET /api/v2/heartbeat answered no time");
        Ok(())
    }

    async fn handshake(&mut self, largest_batch: usize) -> Result<Handshake> {
        let version = self.client.version().await.context("GET /api/v2/version")?;
        let pre = self
            .client
            .pre_flight()
            .await
            .context("GET /api/v2/pre-flight-checks")?;
        if pre.max_batch_size < largest_batch as i64 {
            bail!(
                "it accepts at most {} records per add; lower --batch/--project-records (now {largest_batch})",
                pre.max_batch_size
            );
        }
        self.base64 = pre.supports_base64_encoding;
        Ok(Handshake {
            version,
            detail: format!(
                "; max batch {}, base64 embeddings {}",
                pre.max_batch_size,
                if self.base64 { "yes" } else { "no" }
            ),
        })
    }

    fn describe_collections(&self, scope: &str, names: &[&str], hnsw: &Hnsw) -> String {
        format!(
            "# tenant {scope}, database {DEFAULT_DATABASE}, collections {}: {}",
            names.join(" and "),
            serde_json::to_string(&configuration(hnsw)).unwrap_or_default()
        )
    }

    async fn prepare_scope(&self, tenant: &str) -> Result<()> {
        let c = &self.client;
        tolerate_conflict(c.create_tenant(tenant).await)
            .with_context(|| format!("creating tenant {tenant}"))?;
        tolerate_conflict(c.create_database(tenant, DEFAULT_DATABASE).await)
            .with_context(|| format!("creating database {tenant}/{DEFAULT_DATABASE}"))?;
        Ok(())
    }

    async fn drop_collection(&self, tenant: &str, name: &str) -> Result<()> {
        tolerate_not_found(
            self.client
                .delete_collection(tenant, DEFAULT_DATABASE, name)
                .await,
        )
        .with_context(|| format!("dropping {tenant}/{name}"))
    }

    async fn create_collection(&self, tenant: &str, name: &str, hnsw: &Hnsw) -> Result<Created> {
        let cfg = configuration(hnsw);
        let req = CreateCollection {
            name: name.into(),
            metadata: None,
            configuration: Some(cfg.clone()),
            schema: None,
            get_or_create: false,
        };
        let c = &self.client;
        let created = match c.create_collection(tenant, DEFAULT_DATABASE, &req).await {
            // Left by an earlier run against the same server: start afresh.
            Err(e) if e.is_conflict() => {
                c.delete_collection(tenant, DEFAULT_DATABASE, name).await?;
                c.create_collection(tenant, DEFAULT_DATABASE, &req).await
            }
            r => r,
        }
        .with_context(|| format!("creating {tenant}/{name}"))?;
        let problems = check_created(&created, name, tenant, &cfg);
        Ok(Created {
            coll: CollRef {
                scope: tenant.to_owned(),
                name: name.to_owned(),
                id: created.id,
            },
            problems,
        })
    }

    async fn add(&self, coll: &CollRef, rows: Rows<'_>) -> Result<Option<u64>> {
        let req = AddRecords::new(
            rows.ids(),
            rows.vectors(),
            Some(rows.metadatas()),
            self.base64,
        );
        self.client
            .add(&coll.scope, DEFAULT_DATABASE, &coll.id, &req)
            .await?;
        Ok(None)
    }

    async fn query(&self, coll: &CollRef, q: Query<'_>) -> Result<QueryAnswer> {
        let mut include = vec![Include::Distances];
        if q.metadatas {
            include.insert(0, Include::Metadatas);
        }
        let req = QueryRecords {
            ids: None,
            query_embeddings: vec![q.vector.to_vec()],
            n_results: q.k,
            where_metadata: q.filter.cloned(),
            where_document: None,
            include,
        };
        let res = self
            .client
            .query(&coll.scope, DEFAULT_DATABASE, &coll.id, &req)
            .await?;
        Ok(QueryAnswer {
            ids: res.ids.into_iter().next().unwrap_or_default(),
            distances: res.distances.and_then(|d| d.into_iter().next()),
            metadatas: res.metadatas.and_then(|m| m.into_iter().next()),
        })
    }

    async fn get(&self, coll: &CollRef, ids: Vec<String>) -> Result<GetAnswer> {
        let req = GetRecords {
            ids: Some(ids),
            where_metadata: None,
            limit: None,
            offset: None,
            where_document: None,
            include: vec![Include::Metadatas],
        };
        let res = self
            .client
            .get(&coll.scope, DEFAULT_DATABASE, &coll.id, &req)
            .await?;
        Ok(GetAnswer {
            ids: res.ids,
            metadatas: res.metadatas.unwrap_or_default(),
        })
    }

    async fn count(&self, coll: &CollRef) -> Result<u64> {
        Ok(self
            .client
            .count(&coll.scope, DEFAULT_DATABASE, &coll.id)
            .await?)
    }

    async fn wait_indexed(&self, coll: &CollRef, timeout: Duration) -> Result<Option<Indexed>> {
        match &self.index_status {
            // a v2 tenant is a Quiver project of the same name
            Some(v1) => v1::wait_indexed(v1, &coll.scope, &coll.name, timeout)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    async fn stale_scopes(&self, _prefix: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn remove_scope(&self, tenant: &str, coll: &str) -> Result<()> {
        self.drop_collection(tenant, coll).await
    }

    async fn describe_scopes(&self, _prefix: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The configuration both servers get: `hnsw`, with Chroma's defaults where unset.
fn configuration(hnsw: &Hnsw) -> CollectionConfiguration {
    CollectionConfiguration::hnsw(
        hnsw.space.as_str(),
        hnsw.ef_search,
        hnsw.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
        hnsw.max_neighbors.unwrap_or(DEFAULT_MAX_NEIGHBORS),
    )
}

/// What differs between a newly created collection and what was asked for.
fn check_created(
    c: &Collection,
    name: &str,
    tenant: &str,
    cfg: &CollectionConfiguration,
) -> Vec<String> {
    let mut out = Vec::new();
    if (c.name.as_str(), c.tenant.as_str(), c.database.as_str()) != (name, tenant, DEFAULT_DATABASE)
    {
        out.push(format!(
            "created {}/{}/{}, asked for {tenant}/{DEFAULT_DATABASE}/{name}",
            c.tenant, c.database, c.name
        ));
    }
    if c.metadata.is_some() || c.dimension.is_some() {
        out.push(format!(
            "new collection {name} has metadata {:?} and dimension {:?}",
            c.metadata, c.dimension
        ));
    }
    if let Some(h) = &cfg.hnsw {
        let got = &c.configuration_json["hnsw"];
        let want = [
            ("space", json!(h.space)),
            ("ef_search", json!(h.ef_search)),
            ("ef_construction", json!(h.ef_construction)),
            ("max_neighbors", json!(h.max_neighbors)),
        ];
        for (k, v) in want {
            if got[k] != v {
                out.push(format!(
                    "collection {name}: hnsw {k} is {}, asked for {v}",
                    got[k]
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_created_collections() {
        let cfg = CollectionConfiguration::hnsw("l2", 100, 100, 16);
        let c: Collection = serde_json::from_value(json!({
            "id": "x", "name": "bench-a", "tenant": "t1x", "database": "default_database",
            "configuration_json": {"hnsw": {"space": "l2", "ef_search": 100,
                "ef_construction": 100, "max_neighbors": 16, "resize_factor": 1.2}},
            "metadata": null, "dimension": null}))
        .unwrap();
        assert!(check_created(&c, "bench-a", "t1x", &cfg).is_empty());
        let c: Collection = serde_json::from_value(json!({
            "id": "x", "name": "bench-a", "tenant": "t1x", "database": "default_database",
            "configuration_json": {"hnsw": {"space": "cosine", "ef_search": 100,
                "ef_construction": 100, "max_neighbors": 16}}}))
        .unwrap();
        let problems = check_created(&c, "bench-a", "t1x", &cfg);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("space"));
    }
}
