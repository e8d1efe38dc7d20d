//! [`ConfigMapStore`]: the placement table as key
//! [`CONFIGMAP_KEY`](quiver_placement::protocol::CONFIGMAP_KEY) of the ConfigMap the routers
//! watch. The version is the object's `resourceVersion`, so the API server itself refuses
//! stale writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::Api;
use quiver_placement::protocol::CONFIGMAP_KEY;
use quiver_placement::PlacementTable;

use super::{validated, PlacementStoreError, Versioned};

/// The placement table as key [`CONFIGMAP_KEY`] of one ConfigMap.
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    name: String,
    store: String,
    /// The ConfigMap as last read or written, so that a save after a load sends one PUT
    /// and keeps the object's other keys, labels and annotations (a Helm-created
    /// ConfigMap keeps its ownership labels).
    last: Mutex<Option<ConfigMap>>,
}

impl ConfigMapStore {
    /// Where the table lives, for logs and errors ([`describe`](super::PlacementStore::describe)).
    fn name(&self) -> String {
        self.store.clone()
    }

    pub fn new(api: Api<ConfigMap>, namespace: &str, name: &str) -> ConfigMapStore {
        ConfigMapStore {
            api,
            name: name.to_string(),
            store: format!("ConfigMap {namespace}/{name}"),
            last: Mutex::new(None),
        }
    }

    fn kube_error(&self, source: kube::Error) -> PlacementStoreError {
        PlacementStoreError::Kube {
            store: self.store.clone(),
            source: Box::new(source),
        }
    }

    fn conflict(&self, expected: &str) -> PlacementStoreError {
        PlacementStoreError::Conflict {
            store: self.store.clone(),
            expected: expected.to_string(),
        }
    }

    fn remember(&self, cm: Option<ConfigMap>) {
        // a poisoned lock only means a panic elsewhere; the cache is a hint either way
        match self.last.lock() {
            Ok(mut last) => *last = cm,
            Err(poisoned) => *poisoned.into_inner() = cm,
        }
    }

    fn remembered(&self, version: &str) -> Option<ConfigMap> {
        let last = match self.last.lock() {
            Ok(last) => last.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        last.filter(|cm| cm.metadata.resource_version.as_deref() == Some(version))
    }

    async fn load_inner(&self) -> Result<Versioned, PlacementStoreError> {
        let cm = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.kube_error(e))?;
        self.remember(cm.clone());
        let Some(cm) = cm else {
            return Err(PlacementStoreError::Absent {
                store: self.store.clone(),
                version: String::new(),
            });
        };
        let version = cm.metadata.resource_version.clone().unwrap_or_default();
        let text = cm.data.as_ref().and_then(|d| d.get(CONFIGMAP_KEY));
        match text {
            None => Err(PlacementStoreError::Absent {
                store: self.store.clone(),
                version,
            }),
            Some(text) => {
                let table = PlacementTable::from_json(text).map_err(|error| {
                    PlacementStoreError::Invalid {
                        store: self.store.clone(),
                        error,
                    }
                })?;
                Ok(Versioned { table, version })
            }
        }
    }

    async fn save_inner(
        &self,
        table: &PlacementTable,
        expected: &str,
    ) -> Result<String, PlacementStoreError> {
        validated(&self.store, table)?;
        let json = table.to_json();
        let written = if expected.is_empty() {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(CONFIGMAP_KEY.to_string(), json)])),
                ..ConfigMap::default()
            };
            match self.api.create(&PostParams::default(), &cm).await {
                Ok(cm) => cm,
                // it was created meanwhile: the caller's view is stale
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                    return Err(self.conflict(expected))
                }
                Err(e) => return Err(self.kube_error(e)),
            }
        } else {
            let mut cm = match self.remembered(expected) {
                Some(cm) => cm,
                None => {
                    let current = self
                        .api
                        .get_opt(&self.name)
                        .await
                        .map_err(|e| self.kube_error(e))?;
                    match current {
                        Some(cm) if cm.metadata.resource_version.as_deref() == Some(expected) => cm,
                        _ => return Err(self.conflict(expected)),
                    }
                }
            };
            cm.data
                .get_or_insert_with(BTreeMap::new)
                .insert(CONFIGMAP_KEY.to_string(), json);
            // the resourceVersion in the body is the precondition: the API server answers
            // 409 if the object changed since
            cm.metadata.resource_version = Some(expected.to_string());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &cm)
                .await
            {
                Ok(cm) => cm,
                // 404: deleted since it was read, which is a change the caller did not see
                Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {
                    self.remember(None);
                    return Err(self.conflict(expected));
                }
                Err(e) => return Err(self.kube_error(e)),
            }
        };
        let version = written
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        self.remember(Some(written));
        Ok(version)
    }
}

boxed_placement_store!(ConfigMapStore);

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::{json, Value};

    use quiver_testkit::kube_mock::{pair, MockApi};

    use super::*;
    use crate::placement_store::test_support::table;
    use crate::placement_store::{load_or_init, update, PlacementStore, Versioned};

    const ITEM: &str = "/api/v1/namespaces/ns/configmaps/quiver-placement";
    const COLLECTION: &str = "/api/v1/namespaces/ns/configmaps";

    fn config_map(rv: &str, data: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "quiver-placement", "namespace": "ns", "resourceVersion": rv,
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
            },
            "data": data,
        })
    }

    fn with_table(rv: &str, t: &PlacementTable) -> Value {
        config_map(rv, json!({ CONFIGMAP_KEY: t.to_json(), "note": "kept" }))
    }

    fn store() -> (ConfigMapStore, MockApi) {
        let (client, api) = pair("ns");
        (
            ConfigMapStore::new(Api::namespaced(client, "ns"), "ns", "quiver-placement"),
            api,
        )
    }

    fn table_in(body: &Value) -> PlacementTable {
        PlacementTable::from_json(body["data"][CONFIGMAP_KEY].as_str().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn load_then_save_is_one_get_and_one_put_with_the_resource_version() {
        let (store, mut api) = store();
        let t1 = table(4, 2);
        let server = {
            let t1 = t1.clone();
            async move {
                api.expect(Method::GET, ITEM)
                    .await
                    .respond(200, &with_table("10", &t1));
                let put = api.expect(Method::PUT, ITEM).await;
                assert_eq!(put.body["metadata"]["resourceVersion"], "10");
                assert_eq!(put.body["metadata"]["name"], "quiver-placement");
                // other keys and labels survive
                assert_eq!(put.body["data"]["note"], "kept");
                assert_eq!(
                    put.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                    "Helm"
                );
                assert_eq!(table_in(&put.body).epoch, 5);
                let answer = {
                    let mut b = put.body.clone();
                    b["metadata"]["resourceVersion"] = json!("11");
                    b
                };
                put.respond(200, &answer);
            }
        };
        let client = async {
            let v = store.load().await.unwrap();
            assert_eq!(
                v,
                Versioned {
                    table: t1.clone(),
                    version: "10".into()
                }
            );
            let mut t2 = v.table.clone();
            t2.epoch += 1;
            store.save(&t2, &v.version).await.unwrap()
        };
        let ((), version) = tokio::join!(server, client);
        assert_eq!(version, "11");
    }

    #[tokio::test]
    async fn stale_put_is_a_conflict() {
        let (store, mut api) = store();
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &with_table("10", &table(1, 2)));
            api.expect(Method::PUT, ITEM).await.fail(409, "Conflict");
        };
        let client = async {
            let v = store.load().await.unwrap();
            let mut t = v.table.clone();
            t.epoch += 1;
            store.save(&t, &v.version).await
        };
        let ((), result) = tokio::join!(server, client);
        assert!(
            matches!(result, Err(PlacementStoreError::Conflict { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn save_against_an_unseen_version_checks_it_first() {
        let (store, mut api) = store();
        let server = async move {
            // not the version the caller holds: no PUT is sent
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &with_table("12", &table(1, 2)));
        };
        let client = async { store.save(&table(2, 2), "10").await };
        let ((), result) = tokio::join!(server, client);
        assert!(
            matches!(result, Err(PlacementStoreError::Conflict { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn absent_config_map_is_created_on_first_save() {
        let (store, mut api) = store();
        let t = table(1, 3);
        let server = {
            let t = t.clone();
            async move {
                api.expect(Method::GET, ITEM).await.fail(404, "NotFound");
                let post = api.expect(Method::POST, COLLECTION).await;
                assert_eq!(post.body["metadata"]["name"], "quiver-placement");
                assert_eq!(table_in(&post.body), t);
                let mut answer = post.body.clone();
                answer["metadata"]["resourceVersion"] = json!("1");
                post.respond(201, &answer);
                // a second first save loses
                api.expect(Method::POST, COLLECTION)
                    .await
                    .fail(409, "AlreadyExists");
            }
        };
        let client = async {
            let version = match store.load().await {
                Err(PlacementStoreError::Absent { version, .. }) => version,
                other => panic!("expected Absent, got {other:?}"),
            };
            assert_eq!(version, "");
            let first = store.save(&t, &version).await.unwrap();
            let second = store.save(&t, "").await;
            (first, second)
        };
        let ((), (first, second)) = tokio::join!(server, client);
        assert_eq!(first, "1");
        assert!(
            matches!(second, Err(PlacementStoreError::Conflict { .. })),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn config_map_without_the_key_is_filled_in_place() {
        let (store, mut api) = store();
        let t = table(1, 2);
        let server = {
            let t = t.clone();
            async move {
                api.expect(Method::GET, ITEM)
                    .await
                    .respond(200, &config_map("7", json!({"other": "x"})));
                let put = api.expect(Method::PUT, ITEM).await;
                assert_eq!(put.body["metadata"]["resourceVersion"], "7");
                assert_eq!(put.body["data"]["other"], "x");
                assert_eq!(table_in(&put.body), t);
                let mut answer = put.body.clone();
                answer["metadata"]["resourceVersion"] = json!("8");
                put.respond(200, &answer);
            }
        };
        let client = async { load_or_init(&store, &t).await.unwrap() };
        let ((), v) = tokio::join!(server, client);
        assert_eq!(v.version, "8");
    }

    #[tokio::test]
    async fn invalid_table_and_api_errors_are_reported() {
        let (store, mut api) = store();
        let server = async move {
            api.expect(Method::GET, ITEM).await.respond(
                200,
                &config_map(
                    "3",
                    json!({ CONFIGMAP_KEY: "{\"shardCount\":0,\"shards\":[]}" }),
                ),
            );
            api.expect(Method::GET, ITEM).await.fail(403, "Forbidden");
        };
        let client = async { (store.load().await, store.load().await) };
        let ((), (invalid, forbidden)) = tokio::join!(server, client);
        assert!(
            matches!(invalid, Err(PlacementStoreError::Invalid { .. })),
            "{invalid:?}"
        );
        assert!(
            matches!(forbidden, Err(PlacementStoreError::Kube { .. })),
            "{forbidden:?}"
        );
    }

    #[tokio::test]
    async fn update_retries_after_a_conflict_on_the_fresh_table() {
        let (store, mut api) = store();
        let server = async move {
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &with_table("10", &table(4, 2)));
            api.expect(Method::PUT, ITEM).await.fail(409, "Conflict");
            // someone else published epoch 5 with an override meanwhile
            let mut theirs = table(5, 3);
            theirs.overrides.insert("theirs".into(), 2);
            api.expect(Method::GET, ITEM)
                .await
                .respond(200, &with_table("12", &theirs));
            let put = api.expect(Method::PUT, ITEM).await;
            assert_eq!(put.body["metadata"]["resourceVersion"], "12");
            let sent = table_in(&put.body);
            assert_eq!(sent.epoch, 6);
            assert_eq!(sent.overrides.get("theirs"), Some(&2));
            assert_eq!(sent.overrides.get("mine"), Some(&1));
            let mut answer = put.body.clone();
            answer["metadata"]["resourceVersion"] = json!("13");
            put.respond(200, &answer);
        };
        let mut calls = 0;
        let client = async {
            update::<PlacementStoreError, _>(&store, |t| {
                calls += 1;
                t.overrides.insert("mine".into(), 1);
                Ok(true)
            })
            .await
            .unwrap()
        };
        let ((), v) = tokio::join!(server, client);
        assert_eq!(calls, 2);
        assert_eq!(v.version, "13");
        assert_eq!(v.table.epoch, 6);
    }
}
