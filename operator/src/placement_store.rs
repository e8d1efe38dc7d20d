//! Where the operator reads and publishes the placement table.
//!
//! Every writer (the shard controller, the mover) follows one protocol: load the table with
//! its version, change it, save it *against that version*. A save whose version is no
//! longer current fails with [`PlacementStoreError::Conflict`] instead of overwriting a
//! change it never saw; [`update`] wraps that loop (reload, reapply, retry).
//!
//! - [`ConfigMapStore`]: the ConfigMap the routers watch (key
//!   [`CONFIGMAP_KEY`](quiver_placement::protocol::CONFIGMAP_KEY)); the version is the
//!   object's `resourceVersion`, so the API server itself refuses stale writes.
//! - [`FileStore`]: a JSON file in the format of the router's `--placement-file`, for
//!   end-to-end tests without Kubernetes; the version is the table's epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::Api;
use quiver_placement::protocol::CONFIGMAP_KEY;
use quiver_placement::{PlacementError, PlacementTable};
use rand::Rng;

/// How many times [`update`] reloads and reapplies its change after losing a race.
pub const UPDATE_ATTEMPTS: u32 = 8;

/// A table and the version it was read at (pass it back to [`PlacementStore::save`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub table: PlacementTable,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementStoreError {
    /// Someone else published a table since `expected` was read: reload and retry.
    #[error("the placement table in {store} changed since version {expected:?} was read")]
    Conflict { store: String, expected: String },
    /// Nothing published yet. `version` is what a first save must pass: `""` when the
    /// object is absent, the ConfigMap's resourceVersion when it exists without the key.
    #[error("no placement table has been published in {store} yet")]
    Absent { store: String, version: String },
    /// The stored table does not parse or validate (a hand edit gone wrong), or the one to
    /// be saved would not: routers refuse such a table, so it is never published.
    #[error("invalid placement table in {store}: {error}")]
    Invalid {
        store: String,
        #[source]
        error: PlacementError,
    },
    /// A save must raise the epoch, or readers could not tell the new table from the old.
    #[error("placement epoch {proposed} does not advance past {current} in {store}")]
    EpochNotAdvanced {
        store: String,
        current: u64,
        proposed: u64,
    },
    #[error("gave up updating the placement table after {attempts} conflicting writes")]
    TooManyConflicts { attempts: u32 },
    #[error("Kubernetes API error on {store}: {source}")]
    Kube {
        store: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A place the placement table is published. Object safe, so the controllers take a
/// `&dyn PlacementStore` and tests swap the ConfigMap for a file.
pub trait PlacementStore: Send + Sync {
    /// The current table and its version; [`PlacementStoreError::Absent`] when none has been
    /// published.
    fn load(&self) -> BoxFuture<'_, Result<Versioned, PlacementStoreError>>;

    /// Publishes `table` if the stored version is still `expected_version` (`""`: nothing
    /// is stored yet), and returns the new version. The table is validated first.
    fn save<'a>(
        &'a self,
        table: &'a PlacementTable,
        expected_version: &'a str,
    ) -> BoxFuture<'a, Result<String, PlacementStoreError>>;

    /// Where the table lives, for logs and errors.
    fn describe(&self) -> String;
}

/// Loads the table, lets `change` modify it and, when it reports a change, saves it with the
/// epoch raised by one. A conflicting save reloads and calls `change` again on the fresh
/// table (so `change` must decide from the table it is given, not from what it saw
/// before), at most [`UPDATE_ATTEMPTS`] times. Returns the table now in force.
pub async fn update<E, F>(store: &dyn PlacementStore, mut change: F) -> Result<Versioned, E>
where
    F: FnMut(&mut PlacementTable) -> Result<bool, E>,
    E: From<PlacementStoreError>,
{
    for attempt in 1..=UPDATE_ATTEMPTS {
        let Versioned { mut table, version } = store.load().await?;
        if !change(&mut table)? {
            return Ok(Versioned { table, version });
        }
        table.epoch = table.epoch.saturating_add(1);
        match store.save(&table, &version).await {
            Ok(version) => return Ok(Versioned { table, version }),
            Err(PlacementStoreError::Conflict { .. }) => {
                tracing::debug!(
                    attempt,
                    "placement table in {} changed under us; retrying",
                    store.describe()
                );
                conflict_backoff(attempt).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PlacementStoreError::TooManyConflicts {
        attempts: UPDATE_ATTEMPTS,
    }
    .into())
}

/// The table in force, publishing `initial` first if none has been (the operator's first
/// start). Another writer's table wins a race: it is returned instead.
pub async fn load_or_init(
    store: &dyn PlacementStore,
    initial: &PlacementTable,
) -> Result<Versioned, PlacementStoreError> {
    for attempt in 1..=UPDATE_ATTEMPTS {
        match store.load().await {
            Ok(v) => return Ok(v),
            Err(PlacementStoreError::Absent { version, .. }) => {
                match store.save(initial, &version).await {
                    Ok(version) => {
                        return Ok(Versioned {
                            table: initial.clone(),
                            version,
                        })
                    }
                    Err(PlacementStoreError::Conflict { .. }) => conflict_backoff(attempt).await,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(PlacementStoreError::TooManyConflicts {
        attempts: UPDATE_ATTEMPTS,
    })
}

/// A short jittered pause between conflicting attempts, so that two writers racing for
/// the same table do not collide again in lockstep.
async fn conflict_backoff(attempt: u32) {
    let cap_ms = 10u64 << attempt.min(5);
    // the generator is not Send: draw before awaiting
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn validated(store: &str, table: &PlacementTable) -> Result<(), PlacementStoreError> {
    table
        .validate()
        .map_err(|error| PlacementStoreError::Invalid {
            store: store.to_string(),
            error,
        })
}

// ---------------------------------------------------------------------------------------
// ConfigMap

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

impl PlacementStore for ConfigMapStore {
    fn load(&self) -> BoxFuture<'_, Result<Versioned, PlacementStoreError>> {
        Box::pin(self.load_inner())
    }

    fn save<'a>(
        &'a self,
        table: &'a PlacementTable,
        expected_version: &'a str,
    ) -> BoxFuture<'a, Result<String, PlacementStoreError>> {
        Box::pin(self.save_inner(table, expected_version))
    }

    fn describe(&self) -> String {
        self.store.clone()
    }
}

// ---------------------------------------------------------------------------------------
// File

/// Serialises check-and-write of every [`FileStore`] in the process: the version check and
/// the rename must not interleave with another save. Saves are rare, so one lock for all
/// files costs nothing. (Other processes are not excluded: the file store is for tests
/// with one operator.)
static FILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The placement table as a JSON file, replaced atomically (temporary file, fsync, rename)
/// so a reader never sees half a table. The version is the table's epoch.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> PlacementStoreError {
        PlacementStoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    async fn read(&self) -> Result<Option<PlacementTable>, PlacementStoreError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => PlacementTable::from_json(&text).map(Some).map_err(|error| {
                PlacementStoreError::Invalid {
                    store: self.describe(),
                    error,
                }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn load_inner(&self) -> Result<Versioned, PlacementStoreError> {
        match self.read().await? {
            Some(table) => Ok(Versioned {
                version: table.epoch.to_string(),
                table,
            }),
            None => Err(PlacementStoreError::Absent {
                store: self.describe(),
                version: String::new(),
            }),
        }
    }

    async fn save_inner(
        &self,
        table: &PlacementTable,
        expected: &str,
    ) -> Result<String, PlacementStoreError> {
        validated(&self.describe(), table)?;
        let _guard = FILE_LOCK.lock().await;
        let current = self.read().await?;
        let current_version = current
            .as_ref()
            .map(|t| t.epoch.to_string())
            .unwrap_or_default();
        if current_version != expected {
            return Err(PlacementStoreError::Conflict {
                store: self.describe(),
                expected: expected.to_string(),
            });
        }
        if let Some(current) = &current {
            // the epoch is the version: an equal one would make a change invisible
            if table.epoch <= current.epoch {
                return Err(PlacementStoreError::EpochNotAdvanced {
                    store: self.describe(),
                    current: current.epoch,
                    proposed: table.epoch,
                });
            }
        }
        self.write_atomically(table.to_json().as_bytes()).await?;
        Ok(table.epoch.to_string())
    }

    async fn write_atomically(&self, bytes: &[u8]) -> Result<(), PlacementStoreError> {
        use tokio::io::AsyncWriteExt;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "placement.json".into());
        // same directory, so the rename stays on one file system and is atomic
        let suffix: u32 = rand::rng().random();
        let tmp = dir.join(format!(
            ".{file_name}.{}.{suffix:08x}.tmp",
            std::process::id()
        ));
        let result = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(bytes).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(self.io(e));
        }
        // make the rename itself durable; failure here leaves a correct file, so only log
        if let Ok(d) = tokio::fs::File::open(&dir).await {
            if let Err(e) = d.sync_all().await {
                tracing::debug!("fsync of {} failed: {e}", dir.display());
            }
        }
        Ok(())
    }
}

impl PlacementStore for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Versioned, PlacementStoreError>> {
        Box::pin(self.load_inner())
    }

    fn save<'a>(
        &'a self,
        table: &'a PlacementTable,
        expected_version: &'a str,
    ) -> BoxFuture<'a, Result<String, PlacementStoreError>> {
        Box::pin(self.save_inner(table, expected_version))
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(epoch: u64, n: usize) -> PlacementTable {
        PlacementTable::from_urls(
            epoch,
            (0..n).map(|i| format!("http://shard-{i}:7100")).collect(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn file_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        match store.load().await {
            Err(PlacementStoreError::Absent { version, .. }) => assert_eq!(version, ""),
            other => panic!("expected Absent, got {other:?}"),
        }
        let t1 = table(1, 2);
        assert_eq!(store.save(&t1, "").await.unwrap(), "1");
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.table, t1);
        assert_eq!(loaded.version, "1");
        // the router's file reader parses what the store writes
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert_eq!(PlacementTable::from_json(&text).unwrap(), t1);

        let mut t2 = table(2, 3);
        t2.overrides.insert("acme".into(), 2);
        assert_eq!(store.save(&t2, "1").await.unwrap(), "2");
        assert_eq!(store.load().await.unwrap().table, t2);
        // no temporary file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("placement.json")]);
    }

    #[tokio::test]
    async fn file_store_conflicts_and_epoch_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        store.save(&table(5, 2), "").await.unwrap();
        // a first save when a table exists, and a save against an old version
        for stale in ["", "4"] {
            let e = store.save(&table(6, 2), stale).await.unwrap_err();
            assert!(
                matches!(e, PlacementStoreError::Conflict { .. }),
                "{stale}: {e:?}"
            );
        }
        let e = store.save(&table(5, 3), "5").await.unwrap_err();
        assert!(matches!(
            e,
            PlacementStoreError::EpochNotAdvanced {
                current: 5,
                proposed: 5,
                ..
            }
        ));
        // an invalid table is never written
        let mut bad = table(6, 2);
        bad.overrides.insert("p".into(), 9);
        let e = store.save(&bad, "5").await.unwrap_err();
        assert!(matches!(e, PlacementStoreError::Invalid { .. }), "{e:?}");
        assert_eq!(store.load().await.unwrap().table, table(5, 2));
    }

    #[tokio::test]
    async fn file_store_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("placement.json");
        std::fs::write(&path, "{ nope").unwrap();
        let e = FileStore::new(&path).load().await.unwrap_err();
        assert!(matches!(e, PlacementStoreError::Invalid { .. }), "{e:?}");
    }

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error(transparent)]
        Store(#[from] PlacementStoreError),
        #[error("refused")]
        Refused,
    }

    #[tokio::test]
    async fn update_bumps_the_epoch_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        store.save(&table(3, 2), "").await.unwrap();
        let v = update::<TestError, _>(&store, |_| Ok(false)).await.unwrap();
        assert_eq!((v.table.epoch, v.version.as_str()), (3, "3"));
        let v = update::<TestError, _>(&store, |t| {
            t.overrides.insert("acme".into(), 1);
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!((v.table.epoch, v.version.as_str()), (4, "4"));
        assert_eq!(store.load().await.unwrap().table.overrides["acme"], 1);
        let e = update::<TestError, _>(&store, |_| Err(TestError::Refused))
            .await
            .unwrap_err();
        assert!(matches!(e, TestError::Refused));
        // nothing published: update has no table to start from
        let empty = FileStore::new(dir.path().join("other.json"));
        let e = update::<TestError, _>(&empty, |_| Ok(true))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            TestError::Store(PlacementStoreError::Absent { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_in_one_process_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FileStore::new(dir.path().join("placement.json")));
        store.save(&table(1, 4), "").await.unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    update::<PlacementStoreError, _>(store.as_ref(), |t| {
                        t.overrides.insert(format!("p{i}"), i);
                        Ok(true)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let v = store.load().await.unwrap();
        assert_eq!(v.table.overrides.len(), 4);
        assert_eq!(v.table.epoch, 5);
    }

    #[tokio::test]
    async fn load_or_init_publishes_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("placement.json"));
        let v = load_or_init(&store, &table(1, 2)).await.unwrap();
        assert_eq!(v.table, table(1, 2));
        // a table in force wins over the initial one
        let v = load_or_init(&store, &table(1, 5)).await.unwrap();
        assert_eq!(v.table.shard_count, 2);
    }
}

/// A mocked Kubernetes API server for the operator's unit tests: each request the code
/// under test sends is checked (method, path, query, JSON body) and answered by the test.
#[cfg(test)]
pub(crate) mod mock_api {
    use std::time::Duration;

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{json, Value};
    use tower_test::mock::{self, Handle, SendResponse};

    pub(crate) struct MockApi {
        handle: Handle<Request<Body>, Response<Body>>,
    }

    /// A client whose requests go to the returned mock; `namespace` is its default.
    pub(crate) fn pair(namespace: &str) -> (kube::Client, MockApi) {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (
            kube::Client::new(svc, namespace.to_string()),
            MockApi { handle },
        )
    }

    pub(crate) struct Call {
        pub body: Value,
        pub content_type: Option<String>,
        send: SendResponse<Response<Body>>,
    }

    impl Call {
        pub(crate) fn respond(self, code: u16, body: &Value) {
            let resp = Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap();
            self.send.send_response(resp);
        }

        /// A Kubernetes `Status` failure with this code and reason.
        pub(crate) fn fail(self, code: u16, reason: &str) {
            let body = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("mocked {reason}"),
                "reason": reason, "code": code,
            });
            self.respond(code, &body);
        }
    }

    impl MockApi {
        /// Fails if a request arrives within a moment: the code under test is done.
        pub(crate) async fn assert_idle(&mut self) {
            if let Ok(Some((req, _))) =
                tokio::time::timeout(Duration::from_millis(200), self.handle.next_request()).await
            {
                panic!("unexpected request {} {}", req.method(), req.uri());
            }
        }

        /// The next request, which must be `method` on `path` (query ignored unless `path`
        /// has one); its JSON body (`Null` when empty) is returned for the test to check.
        pub(crate) async fn expect(&mut self, method: Method, path: &str) -> Call {
            let (req, send) =
                tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
                    .await
                    .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
                    .expect("the mocked API server was closed");
            let (want_path, want_query) = path.split_once('?').unwrap_or((path, ""));
            assert_eq!(
                (req.method(), req.uri().path()),
                (&method, want_path),
                "unexpected request {} {}",
                req.method(),
                req.uri()
            );
            if !want_query.is_empty() {
                assert_eq!(
                    req.uri().query().unwrap_or_default(),
                    want_query,
                    "{}",
                    req.uri()
                );
            }
            let content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            Call {
                body,
                content_type,
                send,
            }
        }
    }
}

#[cfg(test)]
mod configmap_tests {
    use http::Method;
    use serde_json::{json, Value};

    use super::mock_api::{pair, MockApi};
    use super::*;

    const ITEM: &str = "/api/v1/namespaces/ns/configmaps/quiver-placement";
    const COLLECTION: &str = "/api/v1/namespaces/ns/configmaps";

    fn table(epoch: u64, n: usize) -> PlacementTable {
        PlacementTable::from_urls(
            epoch,
            (0..n).map(|i| format!("http://shard-{i}:7100")).collect(),
        )
        .unwrap()
    }

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
