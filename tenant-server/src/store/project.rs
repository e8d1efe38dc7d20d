//! One project: its RocksDB instance, its catalog of databases and collections, and the
//! collections currently loaded for serving.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, DB};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::collection::{Collection, ServingState, Vectors, NO_SLOT};
use super::error::{StoreError, StoreResult};
use super::fsio::{self, dir_size, json_bytes, now_secs};
use super::gate::{WriteGates, WritePermit};
use super::index::{self, Params};
use super::indexer::{self, Indexer};
use super::keys::{self, Counters};
use super::layout::STATS_FILE;
use super::quota::{self, Quotas};
use super::resources::SharedResources;
use super::schema::{self, Schema, SettingsUpdate, VectorIndexSettings};
use super::types::HnswConfig;

pub const DEFAULT_DATABASE: &str = "default_database";

/// What the catalog holds when an open creates the project's store. A store is created
/// once; opening an existing one never adds a database (a deleted `default_database`
/// stays deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewCatalog {
    /// No database at all: a Chroma tenant made by `create_tenant` starts like this.
    Empty,
    /// `default_database`, for a project created on first use, so that a client of
    /// either API finds the database it defaults to.
    DefaultDatabase,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseMeta {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectionMeta {
    pub id: Uuid,
    pub name: String,
    pub database: String,
    pub metadata: Option<Map<String, Value>>,
    pub hnsw: HnswConfig,
    /// The configuration as the client gave it. Collections created before schemas were
    /// kept take their embedding function and index knobs from here.
    #[serde(default)]
    pub configuration: Value,
    /// The collection's schema (see `schema.rs`); `None` for collections created before
    /// schemas were kept.
    #[serde(default, deserialize_with = "schema::deserialize_stored")]
    pub schema: Option<Schema>,
    pub dimension: Option<usize>,
}

impl CollectionMeta {
    /// The collection's schema; one created before schemas were kept gets the schema of
    /// its settings.
    pub fn effective_schema(&self) -> Schema {
        match &self.schema {
            Some(s) => s.clone(),
            None => Schema::from_settings(&self.legacy_settings()),
        }
    }

    /// Applies a modify request's index changes: the search breadth to the index, and
    /// every change to the schema, where clients read them back.
    pub fn apply_settings_update(&mut self, update: &SettingsUpdate) {
        if let Some(ef) = update.ef_search {
            self.hnsw.ef_search = ef;
        }
        if *update != SettingsUpdate::default() {
            let mut schema = self.effective_schema();
            schema.update(update);
            self.schema = Some(schema);
        }
    }

    fn legacy_settings(&self) -> VectorIndexSettings {
        let stored = self.configuration.as_object();
        let hnsw = stored
            .and_then(|c| c.get("hnsw"))
            .and_then(Value::as_object);
        let knob = |k: &str| hnsw.and_then(|h| h.get(k));
        let usize_knob = |k: &str| {
            knob(k)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
        };
        let d = VectorIndexSettings::default();
        VectorIndexSettings {
            space: self.hnsw.space,
            ef_construction: self.hnsw.ef_construction,
            ef_search: self.hnsw.ef_search,
            max_neighbors: self.hnsw.max_neighbors,
            num_threads: usize_knob("num_threads").unwrap_or(d.num_threads),
            batch_size: usize_knob("batch_size").unwrap_or(d.batch_size),
            sync_threshold: usize_knob("sync_threshold").unwrap_or(d.sync_threshold),
            resize_factor: knob("resize_factor")
                .and_then(Value::as_f64)
                .unwrap_or(d.resize_factor),
            embedding_function: stored
                .and_then(|c| c.get("embedding_function"))
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
        }
    }
}

#[derive(Default)]
struct Catalog {
    databases: BTreeMap<String, DatabaseMeta>,
    collections: HashMap<Uuid, CollectionMeta>,
    by_name: HashMap<(String, String), Uuid>,
}

/// Figures for listings; also written to `stats.json` when the project closes so that
/// listing thousands of closed projects does not open them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProjectStats {
    pub collections: u64,
    pub records: u64,
    pub bytes: u64,
}

pub struct Project {
    pub name: String,
    pub root: PathBuf,
    pub(super) db: DB,
    catalog: RwLock<Catalog>,
    /// Serialises catalog changes (create, rename, delete) within the project.
    pub(super) catalog_write: Mutex<()>,
    loaded: Mutex<HashMap<Uuid, Arc<Collection>>>,
    pub(super) indexer: Indexer,
    /// Every change to the store passes this gate, so that pausing the project's writes
    /// covers all of them whichever API asked.
    gates: Arc<WriteGates>,
    last_access: AtomicU64,
    quotas: RwLock<Quotas>,
    /// Held by writes that may grow the project while it has a record or byte quota, so
    /// that two writes cannot each pass the check and together exceed it.
    pub(super) quota_lock: Mutex<()>,
    /// The project's size on disk as last measured, and when, plus what was written since:
    /// measuring walks the directory, too costly for every write.
    disk_estimate: Mutex<(std::time::Instant, u64)>,
}

/// How long a measured size on disk serves byte-quota checks.
const DISK_SIZE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Project {
    /// Opens (creating if needed) the project whose store lives under `root`
    /// (`<workspace>/<project>/<knowledge-graph>`); a store created here starts with
    /// `new_catalog`.
    pub fn open(
        name: &str,
        root: &Path,
        shared: &SharedResources,
        indexer: Indexer,
        gates: Arc<WriteGates>,
        new_catalog: NewCatalog,
    ) -> StoreResult<Project> {
        std::fs::create_dir_all(root.join("index"))?;
        let opts = shared.db_options();
        let cfs: Vec<ColumnFamilyDescriptor> = keys::COLUMN_FAMILIES
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, shared.cf_options()))
            .collect();
        let db = DB::open_cf_descriptors(&opts, root.join("db"), cfs)?;
        let quotas = quota::read(root)?;
        let project = Project {
            name: name.to_string(),
            root: root.to_path_buf(),
            db,
            catalog: RwLock::new(Catalog::default()),
            catalog_write: Mutex::new(()),
            loaded: Mutex::new(HashMap::new()),
            indexer,
            gates,
            last_access: AtomicU64::new(now_secs()),
            quotas: RwLock::new(quotas),
            quota_lock: Mutex::new(()),
            disk_estimate: Mutex::new((std::time::Instant::now(), dir_size(root))),
        };
        project.init_catalog(new_catalog)?;
        Ok(project)
    }

    fn init_catalog(&self, new_catalog: NewCatalog) -> StoreResult<()> {
        // The format key marks a store as created. It goes in one batch with the initial
        // catalog: a crash in between must not leave a created store without the
        // databases it was created with.
        if self.db.get(keys::FORMAT_KEY)?.is_none() {
            let mut batch = rocksdb::WriteBatch::default();
            if new_catalog == NewCatalog::DefaultDatabase {
                let db = DatabaseMeta {
                    id: Uuid::new_v4(),
                    name: DEFAULT_DATABASE.into(),
                };
                batch.put(keys::database_key(DEFAULT_DATABASE), json_bytes(&db));
            }
            batch.put(keys::FORMAT_KEY, keys::FORMAT_VERSION);
            self.db.write(batch)?;
        }
        if self.db.get(keys::INCARNATION_KEY)?.is_none() {
            self.db
                .put(keys::INCARNATION_KEY, Uuid::new_v4().as_bytes())?;
        }
        let mut cat = Catalog::default();
        for item in self.db.prefix_iterator(keys::DATABASE_PREFIX) {
            let (k, v) = item?;
            if !k.starts_with(keys::DATABASE_PREFIX) {
                break;
            }
            let db: DatabaseMeta =
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            cat.databases.insert(db.name.clone(), db);
        }
        for item in self.db.prefix_iterator(keys::COLLECTION_PREFIX) {
            let (k, v) = item?;
            if !k.starts_with(keys::COLLECTION_PREFIX) {
                break;
            }
            let meta: CollectionMeta =
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            cat.by_name
                .insert((meta.database.clone(), meta.name.clone()), meta.id);
            cat.collections.insert(meta.id, meta);
        }
        *self.catalog.write() = cat;
        Ok(())
    }

    pub fn touch(&self) {
        self.last_access.store(now_secs(), Ordering::Relaxed);
    }

    pub fn idle_secs(&self) -> u64 {
        now_secs().saturating_sub(self.last_access.load(Ordering::Relaxed))
    }

    /// Admits one change of this project's store; refused while its writes are paused.
    pub(super) fn write_permit(&self) -> StoreResult<WritePermit> {
        self.gates.enter(&self.name)
    }

    /// RocksDB's sequence number of the last write: what a copy of the project must have
    /// reached to hold every acknowledged write.
    pub fn latest_sequence(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    pub fn quotas(&self) -> Quotas {
        *self.quotas.read()
    }

    /// Replaces the quotas (the registry has written the file).
    pub(super) fn set_quotas(&self, quotas: Quotas) {
        *self.quotas.write() = quotas;
    }

    /// Checks a write that adds `new_records` records and about `payload` bytes against
    /// the record and byte quotas. The caller holds `quota_lock` when any is set.
    pub(super) fn check_growth(&self, new_records: u64, payload: u64) -> StoreResult<()> {
        let quotas = self.quotas();
        if quotas.max_records.is_some() && new_records > 0 {
            quotas.check_records(&self.name, self.record_count()?, new_records)?;
        }
        if quotas.max_bytes.is_some() {
            quotas.check_bytes(&self.name, self.disk_bytes_estimate(), payload)?;
        }
        Ok(())
    }

    /// Counts `payload` bytes written into the size estimate.
    pub(super) fn note_growth(&self, payload: u64) {
        let mut est = self.disk_estimate.lock();
        est.1 = est.1.saturating_add(payload);
    }

    fn disk_bytes_estimate(&self) -> u64 {
        let mut est = self.disk_estimate.lock();
        if est.0.elapsed() > DISK_SIZE_TTL {
            *est = (std::time::Instant::now(), dir_size(&self.root));
        }
        est.1
    }

    fn record_count(&self) -> StoreResult<u64> {
        let ids: Vec<Uuid> = self.catalog.read().collections.keys().copied().collect();
        let mut records = 0;
        for id in &ids {
            records += self.counters(id)?.count;
        }
        Ok(records)
    }

    pub(super) fn cf(&self, name: &str) -> StoreResult<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("missing column family {name}")))
    }

    // ---- catalog ----

    /// Databases in byte order of their names (Chroma's listing order).
    pub fn databases(&self) -> Vec<DatabaseMeta> {
        self.catalog.read().databases.values().cloned().collect()
    }

    pub fn database(&self, name: &str) -> Option<DatabaseMeta> {
        self.catalog.read().databases.get(name).cloned()
    }

    pub fn create_database(&self, name: &str) -> StoreResult<Option<DatabaseMeta>> {
        let _permit = self.write_permit()?;
        let _g = self.catalog_write.lock();
        if self.catalog.read().databases.contains_key(name) {
            return Ok(None);
        }
        let db = DatabaseMeta {
            id: Uuid::new_v4(),
            name: name.to_string(),
        };
        self.db.put(keys::database_key(name), json_bytes(&db))?;
        self.catalog
            .write()
            .databases
            .insert(name.to_string(), db.clone());
        Ok(Some(db))
    }

    /// Creates the database unless it exists. Looks before taking a write permit, so that
    /// a project whose writes are paused still serves requests that need nothing new.
    pub fn ensure_database(&self, name: &str) -> StoreResult<()> {
        if self.database(name).is_none() {
            self.create_database(name)?;
        }
        Ok(())
    }

    /// Deletes a database and every collection in it.
    pub fn delete_database(&self, name: &str) -> StoreResult<()> {
        if self.database(name).is_none() {
            return Err(StoreError::DatabaseNotFound(name.into()));
        }
        // one permit for the whole deletion: a pause must not stop it halfway
        let _permit = self.write_permit()?;
        for c in self.list_collections(name) {
            self.delete_collection_permitted(name, &c.name)?;
        }
        let _g = self.catalog_write.lock();
        self.db.delete(keys::database_key(name))?;
        self.catalog.write().databases.remove(name);
        Ok(())
    }

    /// Collections of a database, in name order.
    pub fn list_collections(&self, database: &str) -> Vec<CollectionMeta> {
        let cat = self.catalog.read();
        let mut out: Vec<CollectionMeta> = cat
            .collections
            .values()
            .filter(|c| c.database == database)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn collection_meta(&self, database: &str, name: &str) -> StoreResult<CollectionMeta> {
        let cat = self.catalog.read();
        cat.by_name
            .get(&(database.to_string(), name.to_string()))
            .and_then(|id| cat.collections.get(id))
            .cloned()
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_string()))
    }

    pub fn collection_meta_by_id(&self, id: &Uuid) -> StoreResult<CollectionMeta> {
        self.catalog
            .read()
            .collections
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))
    }

    /// Creates a collection, or returns the existing one when `get_or_create` is set
    /// (then the given metadata and configuration are ignored, as in Chroma).
    pub fn create_collection(
        &self,
        mut meta: CollectionMeta,
        get_or_create: bool,
    ) -> StoreResult<(CollectionMeta, bool)> {
        // getting an existing collection writes nothing, so it works while paused (clients
        // call get-or-create before most operations)
        if get_or_create {
            if let Ok(existing) = self.collection_meta(&meta.database, &meta.name) {
                return Ok((existing, false));
            }
        }
        let _permit = self.write_permit()?;
        let _g = self.catalog_write.lock();
        if self.database(&meta.database).is_none() {
            return Err(StoreError::DatabaseNotFound(meta.database.clone()));
        }
        if let Ok(existing) = self.collection_meta(&meta.database, &meta.name) {
            return if get_or_create {
                Ok((existing, false))
            } else {
                Err(StoreError::CollectionExists(meta.name))
            };
        }
        let collections = self.catalog.read().collections.len() as u64;
        self.quotas().check_collections(&self.name, collections)?;
        meta.dimension = None;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(keys::collection_key(&meta.id), json_bytes(&meta));
        batch.put(keys::counters_key(&meta.id), Counters::default().encode());
        self.db.write(batch)?;
        let mut cat = self.catalog.write();
        cat.by_name
            .insert((meta.database.clone(), meta.name.clone()), meta.id);
        cat.collections.insert(meta.id, meta.clone());
        Ok((meta, true))
    }

    /// Applies a change to a collection's catalog entry (rename, metadata, ef_search).
    pub fn modify_collection(
        &self,
        id: &Uuid,
        change: impl FnOnce(&mut CollectionMeta),
    ) -> StoreResult<CollectionMeta> {
        let _permit = self.write_permit()?;
        let _g = self.catalog_write.lock();
        let old = self.collection_meta_by_id(id)?;
        let mut new = old.clone();
        change(&mut new);
        if new.name != old.name && self.collection_meta(&new.database, &new.name).is_ok() {
            return Err(StoreError::CollectionExists(new.name));
        }
        self.db.put(keys::collection_key(id), json_bytes(&new))?;
        let mut cat = self.catalog.write();
        cat.by_name
            .remove(&(old.database.clone(), old.name.clone()));
        cat.by_name
            .insert((new.database.clone(), new.name.clone()), new.id);
        cat.collections.insert(new.id, new.clone());
        Ok(new)
    }

    /// Puts a collection's catalog entry after a write batch changed it (its dimension
    /// fixed, keys added to its schema). The caller holds `catalog_write`.
    pub(super) fn replace_catalog_entry(&self, meta: CollectionMeta) {
        self.catalog.write().collections.insert(meta.id, meta);
    }

    pub fn delete_collection(&self, database: &str, name: &str) -> StoreResult<()> {
        let _permit = self.write_permit()?;
        self.delete_collection_permitted(database, name)
    }

    /// Deletes a collection; the caller holds a write permit.
    fn delete_collection_permitted(&self, database: &str, name: &str) -> StoreResult<()> {
        let _g = self.catalog_write.lock();
        let meta = self.collection_meta(database, name)?;
        let id = meta.id;
        let lo = id.as_bytes().to_vec();
        let hi = keys::prefix_end(&lo);
        let mut batch = rocksdb::WriteBatch::default();
        for cf in keys::COLUMN_FAMILIES {
            batch.delete_range_cf(self.cf(cf)?, &lo, &hi);
        }
        batch.delete(keys::collection_key(&id));
        batch.delete(keys::counters_key(&id));
        self.db.write(batch)?;
        {
            let mut cat = self.catalog.write();
            cat.by_name
                .remove(&(meta.database.clone(), meta.name.clone()));
            cat.collections.remove(&id);
        }
        if let Some(c) = self.loaded.lock().remove(&id) {
            c.dropped.store(true, Ordering::SeqCst);
            // wait for the indexer to let go before removing its files
            let _work = c.index_work.lock();
        }
        let _ = std::fs::remove_dir_all(self.index_dir(&id));
        Ok(())
    }

    pub fn counters(&self, id: &Uuid) -> StoreResult<Counters> {
        match self.db.get(keys::counters_key(id))? {
            Some(b) => Counters::decode(&b).ok_or_else(|| StoreError::Corrupt("counters".into())),
            None => Ok(Counters::default()),
        }
    }

    pub fn index_dir(&self, id: &Uuid) -> PathBuf {
        self.root.join("index").join(id.to_string())
    }

    // ---- serving state ----

    /// The serving state of a collection, loading its vectors (and graph) on first use.
    pub fn collection(&self, meta: &CollectionMeta) -> StoreResult<Arc<Collection>> {
        let mut loaded = self.loaded.lock();
        if let Some(c) = loaded.get(&meta.id) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(self.load_collection(meta)?);
        loaded.insert(meta.id, Arc::clone(&c));
        drop(loaded);
        if c.state.read().unindexed() > 0 || c.state.read().tombstones() > 0 {
            self.indexer.schedule(&c);
        }
        Ok(c)
    }

    /// Reads a collection's records' embeddings from RocksDB, and takes over its saved
    /// index for every embedding the index holds unchanged: those keep their slot (and
    /// their place in the saved graph), the rest take new slots that the indexer adds.
    fn load_collection(&self, meta: &CollectionMeta) -> StoreResult<Collection> {
        let started = std::time::Instant::now();
        let counters = self.counters(&meta.id)?;
        let index_dir = self.index_dir(&meta.id);
        let params = Params::from(&meta.hnsw);
        let saved = meta
            .dimension
            .and_then(|d| index::persist::load(&index_dir, params, d));
        let saved = match saved.map(|s| state_from_files(s, &counters)) {
            Some(Ok(state)) => {
                tracing::debug!(
                    collection = %meta.id,
                    records = state.live.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "collection served from its index files"
                );
                super::counters::add(&super::counters::LOADS_FROM_FILES, 1);
                let mut c = Collection::new(meta.id, meta.hnsw.clone(), index_dir, state);
                c.loaded_from_files = true;
                return Ok(c);
            }
            Some(Err(s)) => Some(*s),
            None => None,
        };
        let (mut vectors, graph, indexed_upto, mut saved_slot) = match saved {
            Some(s) => {
                let last = last_slots(&s.arena, counters.next_label);
                let upto = s.manifest.indexed_upto;
                (
                    Some(Vectors::over(Arc::clone(&s.arena))),
                    Some(Arc::new(s.graph)),
                    upto,
                    last,
                )
            }
            None => (meta.dimension.map(Vectors::new), None, 0, Vec::new()),
        };
        let mut live = RoaringBitmap::new();
        let mut new_slots = 0u64;
        let prefix = meta.id.as_bytes();
        let iter = self.db.iterator_cf(
            self.cf(keys::CF_VECTORS)?,
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            let label =
                keys::label_from_key(&k).ok_or_else(|| StoreError::Corrupt("vector key".into()))?;
            let vec = keys::decode_vector(&v)
                .ok_or_else(|| StoreError::Corrupt("vector value".into()))?;
            let set = vectors.get_or_insert_with(|| Vectors::new(vec.len()));
            if vec.len() != set.dimension {
                return Err(StoreError::Corrupt(format!(
                    "vector of dimension {} in a {}-d collection",
                    vec.len(),
                    set.dimension
                )));
            }
            let vec = super::distance::search_form(meta.hnsw.space, &vec);
            let reusable = saved_slot
                .get_mut(label as usize)
                .map(|s| std::mem::replace(s, NO_SLOT))
                .filter(|&slot| {
                    let in_place =
                        slot >= indexed_upto || graph.as_ref().is_some_and(|g| g.contains(slot));
                    in_place
                        && set
                            .arena
                            .vector(slot)
                            .is_some_and(|old| same_bits(old, &vec))
                });
            match reusable {
                Some(slot) => set.adopt(label, slot),
                None => {
                    set.set(label, &vec);
                    new_slots += 1;
                }
            }
            live.insert(label);
        }
        super::counters::add(&super::counters::LOADS_FROM_ROCKSDB, 1);
        tracing::debug!(
            collection = %meta.id,
            records = live.len(),
            reindexed = new_slots,
            saved_graph = graph.is_some(),
            ms = started.elapsed().as_millis() as u64,
            "collection loaded"
        );
        Ok(Collection::new(
            meta.id,
            meta.hnsw.clone(),
            index_dir,
            ServingState {
                live,
                vectors,
                graph,
                indexed_upto,
                unsaved_points: 0,
                unsaved_writes: new_slots,
                version: counters.version,
            },
        ))
    }

    /// Copies the graph dumps into `dest`, each saved first if it lags behind, and each
    /// under its collection's index lock so that no dump is copied half written.
    pub(super) fn copy_index_to(&self, dest: &Path) -> StoreResult<()> {
        let mut loaded: Vec<Arc<Collection>> = self.loaded.lock().values().cloned().collect();
        // one order for every taker of several index locks
        loaded.sort_by_key(|c| c.id);
        let _locks: Vec<_> = loaded
            .iter()
            .map(|c| {
                let lock = c.index_work.lock();
                if c.state.read().is_unsaved() {
                    indexer::save_locked(c);
                }
                lock
            })
            .collect();
        std::fs::create_dir_all(dest)?;
        let index = self.root.join("index");
        if index.is_dir() {
            fsio::copy_dir(&index, dest)?;
        }
        Ok(())
    }

    /// Loads every collection (vectors and graph), so that the first requests after a
    /// move do not each wait for it.
    pub fn load_all_collections(&self) -> StoreResult<usize> {
        let metas: Vec<CollectionMeta> =
            self.catalog.read().collections.values().cloned().collect();
        for meta in &metas {
            self.collection(meta)?;
        }
        Ok(metas.len())
    }

    pub fn memory_bytes(&self) -> usize {
        self.loaded.lock().values().map(|c| c.memory()).sum()
    }

    /// Records of the loaded collections not yet in their graph (the indexing lag).
    pub fn unindexed_records(&self) -> u64 {
        let loaded: Vec<Arc<Collection>> = self.loaded.lock().values().cloned().collect();
        loaded.iter().map(|c| c.state.read().unindexed()).sum()
    }

    pub fn stats(&self) -> StoreResult<ProjectStats> {
        let collections = self.catalog.read().collections.len() as u64;
        let bytes = dir_size(&self.root);
        *self.disk_estimate.lock() = (std::time::Instant::now(), bytes);
        Ok(ProjectStats {
            collections,
            records: self.record_count()?,
            bytes,
        })
    }

    /// Writes graphs and figures to disk; the RocksDB instance closes when dropped.
    pub fn flush_for_close(&self) {
        self.flush_for_close_with(true);
    }

    /// As [`Project::flush_for_close`]; without `save_graphs` the graphs are dropped
    /// unsaved (a copy fenced by a move never serves again, and saving a large graph
    /// would lengthen the move's write pause for nothing).
    pub(super) fn flush_for_close_with(&self, save_graphs: bool) {
        let loaded: Vec<Arc<Collection>> = self.loaded.lock().values().cloned().collect();
        for c in &loaded {
            if save_graphs {
                indexer::save_if_dirty(c);
            }
            // not waiting for indexing in progress (a starved low-priority indexer would
            // stretch a move's write pause); once dropped, it saves nothing more
            c.dropped.store(true, Ordering::SeqCst);
        }
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(project = %self.name, "wal flush failed: {e}");
        }
        match self.stats() {
            Ok(stats) => {
                let _ = std::fs::write(self.root.join(STATS_FILE), json_bytes(&stats));
            }
            Err(e) => tracing::warn!(project = %self.name, "cannot compute stats: {e}"),
        }
    }
}

impl Project {
    /// (indexed, unindexed) records of a collection, loading it if it is not loaded (a
    /// collection just loaded counts its records unindexed until its saved graph is in).
    pub fn indexing_progress(&self, meta: &CollectionMeta) -> StoreResult<(u64, u64)> {
        let c = self.collection(meta)?;
        let st = c.state.read();
        let unindexed = st.unindexed();
        Ok((st.live.len() - unindexed, unindexed))
    }

    /// (indexed, unindexed) records of a loaded collection; `None` when it is not loaded.
    pub fn indexing_status(&self, id: &Uuid) -> Option<(u64, u64)> {
        let c = self.loaded.lock().get(id).cloned()?;
        let st = c.state.read();
        let unindexed = st.unindexed();
        Some((st.live.len() - unindexed, unindexed))
    }
}

/// Collection metadata holds scalar values only (as in Chroma).
pub fn check_collection_metadata(md: &Map<String, Value>) -> Result<(), String> {
    for (k, v) in md {
        match v {
            Value::String(_) | Value::Bool(_) => {}
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {}
            _ => {
                return Err(format!(
                    "Collection metadata value for [{k}] must be a string, number or boolean"
                ))
            }
        }
    }
    Ok(())
}

/// Bitwise equality of two vectors (a saved slot is reused only for the very same floats).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The slot of each label's newest embedding in `arena` (`NO_SLOT` for labels it lacks):
/// a new embedding always takes a new slot, so that is the last slot with the label.
fn last_slots(arena: &index::Arena, next_label: u32) -> Vec<u32> {
    let mut last = vec![NO_SLOT; next_label as usize];
    for slot in 0..arena.len() {
        if let Some(l) = last.get_mut(arena.label(slot) as usize) {
            *l = slot;
        }
    }
    last
}

/// The serving state straight from the saved files, without reading a record, when they
/// reflect exactly the write version RocksDB holds (nothing was written since they were
/// saved) and hold the live set of that version. Otherwise the files go back to the
/// caller, to be checked against RocksDB record by record.
fn state_from_files(
    saved: index::persist::Loaded,
    counters: &Counters,
) -> Result<ServingState, Box<index::persist::Loaded>> {
    let usable = counters.version > 0
        && saved.manifest.version == Some(counters.version)
        && saved
            .live
            .as_ref()
            .is_some_and(|live| live.len() == counters.count);
    let Some(live) = saved.live.as_ref().filter(|_| usable) else {
        return Err(Box::new(saved));
    };
    let last = last_slots(&saved.arena, counters.next_label);
    let mut vectors = Vectors::over(Arc::clone(&saved.arena));
    for label in live {
        match last.get(label as usize) {
            Some(&slot) if slot != NO_SLOT => vectors.adopt(label, slot),
            _ => return Err(Box::new(saved)),
        }
    }
    let live = live.clone();
    let indexed_upto = saved.manifest.indexed_upto;
    Ok(ServingState {
        live,
        vectors: Some(vectors),
        graph: Some(Arc::new(saved.graph)),
        indexed_upto,
        unsaved_points: 0,
        unsaved_writes: 0,
        version: counters.version,
    })
}
