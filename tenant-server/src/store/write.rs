//! The write path: add, upsert, update and delete, each one atomic RocksDB write batch,
//! applied to the serving state only after RocksDB accepted it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use roaring::RoaringBitmap;
use rocksdb::WriteBatch;

use super::collection::{Collection, Vectors};
use super::error::{StoreError, StoreResult};
use super::filter::{Where, WhereDocument};
use super::fsio::json_bytes;
use super::keys::{self, StoredRecord};
use super::project::{CollectionMeta, Project};
use super::schema::ValueKind;
use super::types::{MetaValue, Metadata, RecordInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Inserts new ids; existing ids are left untouched (Chroma's rule).
    Add,
    /// Inserts new ids, updates existing ones.
    Upsert,
    /// Updates existing ids; unknown ids are ignored.
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Records inserted or changed.
    pub applied: usize,
    pub total: u64,
}

/// What one record's write does to the serving state once the batch is durable.
struct Change {
    label: u32,
    /// The new embedding in search form, when the write gave one.
    vector: Option<Vec<f32>>,
}

/// Checks a batch before anything is looked up or written.
pub fn validate_batch(
    meta: &CollectionMeta,
    mode: WriteMode,
    records: &[RecordInput],
) -> StoreResult<Option<usize>> {
    let mut seen = HashSet::with_capacity(records.len());
    let mut dups = Vec::new();
    for r in records {
        if r.id.is_empty() {
            return Err(StoreError::InvalidArgument(
                "Expected ids to be non-empty strings".into(),
            ));
        }
        if !seen.insert(r.id.as_str()) && dups.len() < 10 {
            dups.push(r.id.clone());
        }
    }
    if !dups.is_empty() {
        return Err(StoreError::DuplicateId(dups.join(", ")));
    }
    let mut dim = meta.dimension;
    for r in records {
        if let Some(e) = &r.embedding {
            if e.is_empty() {
                return Err(StoreError::InvalidArgument(format!(
                    "Embedding for id [{}] is empty",
                    r.id
                )));
            }
            if e.iter().any(|x| !x.is_finite()) {
                return Err(StoreError::InvalidArgument(format!(
                    "Embedding for id [{}] contains NaN or infinite values",
                    r.id
                )));
            }
            match dim {
                Some(d) if d != e.len() => {
                    return Err(StoreError::InvalidDimension(format!(
                        "Collection expecting embedding with dimension of {d}, got {}",
                        e.len()
                    )))
                }
                _ => dim = Some(e.len()),
            }
        } else if mode == WriteMode::Add {
            return Err(StoreError::InvalidArgument(format!(
                "Missing embedding for id [{}]: this server stores the embeddings it is given",
                r.id
            )));
        }
        if let Some(md) = &r.metadata {
            validate_metadata(md)?;
        }
    }
    Ok(dim)
}

fn validate_metadata(md: &BTreeMap<String, Option<MetaValue>>) -> StoreResult<()> {
    use super::types::Scalar;
    for (k, v) in md {
        if k.is_empty() {
            return Err(StoreError::InvalidArgument(
                "Metadata keys must be non-empty strings".into(),
            ));
        }
        if k.starts_with('#') || k.starts_with('$') {
            return Err(StoreError::InvalidArgument(format!(
                "Metadata key [{k}] cannot start with '#' or '$'"
            )));
        }
        let bad_float = |s: &Scalar| matches!(s, Scalar::Float(f) if !f.is_finite());
        match v {
            Some(MetaValue::Scalar(s)) if bad_float(s) => {
                return Err(StoreError::InvalidArgument(format!(
                    "Metadata value for [{k}] is not finite"
                )))
            }
            Some(MetaValue::List(items)) => {
                if items.is_empty() {
                    return Err(StoreError::InvalidArgument(format!(
                        "Metadata list for [{k}] is empty"
                    )));
                }
                let kind = |s: &Scalar| std::mem::discriminant(s);
                let first = kind(&items[0]);
                if items.iter().any(|s| kind(s) != first || bad_float(s)) {
                    return Err(StoreError::InvalidArgument(format!(
                        "Metadata list for [{k}] must hold finite values of one type"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn merge_metadata(
    old: Option<Metadata>,
    change: Option<BTreeMap<String, Option<MetaValue>>>,
    replace: bool,
) -> Option<Metadata> {
    let Some(change) = change else { return old };
    let mut md = if replace {
        Metadata::new()
    } else {
        old.unwrap_or_default()
    };
    for (k, v) in change {
        match v {
            Some(v) => {
                md.insert(k, v);
            }
            None => {
                md.remove(&k);
            }
        }
    }
    (!md.is_empty()).then_some(md)
}

impl Project {
    /// Applies `records` to the collection `meta` in one atomic batch.
    #[tracing::instrument(
        name = "records.write",
        skip_all,
        fields(
            quiver.project = %self.name,
            quiver.collection = %meta.name,
            quiver.operation = ?mode,
            quiver.batch_size = records.len(),
        )
    )]
    pub fn write(
        &self,
        meta: &CollectionMeta,
        mode: WriteMode,
        records: Vec<RecordInput>,
    ) -> StoreResult<WriteOutcome> {
        let _permit = self.write_permit()?;
        let new_dim = validate_batch(meta, mode, &records)?;
        let coll = self.collection(meta)?;
        let quotas = self.quotas();
        let _quota = (quotas.max_records.is_some() || quotas.max_bytes.is_some())
            .then(|| self.quota_lock.lock());
        let _writer = coll.write_lock.lock();
        // The dimension may have been fixed by a concurrent writer since `meta` was read.
        let meta = self.collection_meta_by_id(&meta.id)?;
        let new_dim = match (meta.dimension, new_dim) {
            (Some(d), Some(n)) if d != n => {
                return Err(StoreError::InvalidDimension(format!(
                    "Collection expecting embedding with dimension of {d}, got {n}"
                )))
            }
            (_, n) => n,
        };
        let id = meta.id;
        let (cf_records, cf_vectors, cf_ids, cf_mindex) = (
            self.cf(keys::CF_RECORDS)?,
            self.cf(keys::CF_VECTORS)?,
            self.cf(keys::CF_IDS)?,
            self.cf(keys::CF_MINDEX)?,
        );
        let id_keys: Vec<Vec<u8>> = records.iter().map(|r| keys::id_key(&id, &r.id)).collect();
        let existing: Vec<Option<u32>> = self
            .db
            .multi_get_cf(id_keys.iter().map(|k| (cf_ids, k)))
            .into_iter()
            .map(|r| r.map(|v| v.and_then(|b| b.try_into().ok().map(u32::from_be_bytes))))
            .collect::<Result<_, _>>()?;
        let old_values: Vec<Option<StoredRecord>> = {
            let label_keys: Vec<(usize, [u8; 20])> = existing
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.map(|l| (i, keys::label_key(&id, l))))
                .collect();
            let fetched = self
                .db
                .multi_get_cf(label_keys.iter().map(|(_, k)| (cf_records, k)));
            let mut out = vec![None; records.len()];
            for ((i, _), v) in label_keys.iter().zip(fetched) {
                let bytes = v?.ok_or_else(|| {
                    StoreError::Corrupt(format!("record for id [{}] missing", records[*i].id))
                })?;
                out[*i] = Some(
                    StoredRecord::decode(&bytes)
                        .ok_or_else(|| StoreError::Corrupt("record value".into()))?,
                );
            }
            out
        };

        let mut counters = self.counters(&id)?;
        let records_before = counters.count;
        let mut batch = WriteBatch::default();
        let mut changes = Vec::new();
        // keys written for the first time (per value type) join the collection's schema
        let mut schema = meta.effective_schema();
        let mut schema_changed = meta.schema.is_none();
        for ((r, old_label), old) in records.into_iter().zip(existing).zip(old_values) {
            let exists = old_label.is_some();
            match (mode, exists) {
                (WriteMode::Add, true) | (WriteMode::Update, false) => continue,
                _ => {}
            }
            for (key, value) in r.metadata.iter().flatten() {
                if let Some(kind) = value.as_ref().and_then(ValueKind::of_value) {
                    schema_changed |= schema.discover(key, kind);
                }
            }
            if !exists && r.embedding.is_none() {
                return Err(StoreError::InvalidArgument(format!(
                    "Missing embedding for new id [{}]",
                    r.id
                )));
            }
            let old = old.unwrap_or_default();
            let old_metadata = old.metadata.clone();
            let record = StoredRecord {
                id: r.id.clone(),
                document: r.document.or(old.document),
                uri: r.uri.or(old.uri),
                metadata: merge_metadata(old_metadata.clone(), r.metadata, false),
            };
            // A record keeps its label for life; a new embedding takes a new arena slot,
            // because the graph cannot move a point: the old slot becomes a tombstone.
            let label = match old_label {
                Some(l) => l,
                None => {
                    let l = counters.next_label;
                    counters.next_label = l.checked_add(1).ok_or_else(|| {
                        StoreError::InvalidArgument("collection label space exhausted".into())
                    })?;
                    counters.count += 1;
                    l
                }
            };
            if let (Some(ol), Some(md)) = (old_label, &old_metadata) {
                for k in keys::mindex_entries(&id, ol, md) {
                    batch.delete_cf(cf_mindex, k);
                }
            }
            if let Some(md) = &record.metadata {
                for k in keys::mindex_entries(&id, label, md) {
                    batch.put_cf(cf_mindex, k, []);
                }
            }
            batch.put_cf(cf_records, keys::label_key(&id, label), record.encode());
            if let Some(e) = &r.embedding {
                batch.put_cf(
                    cf_vectors,
                    keys::label_key(&id, label),
                    keys::encode_vector(e),
                );
            }
            batch.put_cf(cf_ids, keys::id_key(&id, &r.id), label.to_be_bytes());
            changes.push(Change {
                label,
                vector: r.embedding.map(|e| coll.search_vector(&e)),
            });
        }
        // As in Chroma, the first embeddings written fix the dimension even when no record
        // of the batch was applied (an update of ids that do not exist, say).
        let dim_fixed = meta.dimension.is_none() && new_dim.is_some();
        // the catalog entry changes with this batch: held until the catalog has it, so that
        // a concurrent rename or modify is neither lost nor overwritten
        let mut catalog_change = None;
        if dim_fixed || (schema_changed && !changes.is_empty()) {
            let guard = self.catalog_write.lock();
            let mut m = self.collection_meta_by_id(&id)?;
            if dim_fixed {
                m.dimension = new_dim;
            }
            m.schema = Some(schema);
            batch.put(keys::collection_key(&id), json_bytes(&m));
            catalog_change = Some((guard, m));
        }
        if !changes.is_empty() {
            counters.version += 1;
        }
        batch.put(keys::counters_key(&id), counters.encode());
        let payload = batch.size_in_bytes() as u64;
        if !changes.is_empty() || catalog_change.is_some() {
            // nothing of the request is applied when it would exceed a quota
            let new_records = counters.count.saturating_sub(records_before);
            self.check_growth(new_records, payload)?;
            self.db.write(batch)?;
            self.note_growth(payload);
        }
        if let Some((_guard, m)) = catalog_change {
            self.replace_catalog_entry(m);
        }
        let applied = changes.len();
        apply_changes(&coll, new_dim, changes, counters.version);
        coll.note_write();
        if applied > 0 {
            self.indexer.schedule(&coll);
        }
        super::counters::add(&super::counters::RECORDS_WRITTEN, applied as u64);
        Ok(WriteOutcome {
            applied,
            total: counters.count,
        })
    }

    /// Deletes the records matching `ids` and the filters (all given conditions must hold),
    /// at most `limit` of them in label order. Returns how many were deleted.
    #[tracing::instrument(
        name = "records.delete",
        skip_all,
        fields(
            quiver.project = %self.name,
            quiver.collection = %meta.name,
            quiver.ids = ids.map(<[String]>::len),
            quiver.filtered = where_.is_some() || where_document.is_some(),
            quiver.deleted = tracing::field::Empty,
        )
    )]
    pub fn delete_records(
        &self,
        meta: &CollectionMeta,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
        limit: Option<usize>,
    ) -> StoreResult<WriteOutcome> {
        let _permit = self.write_permit()?;
        let coll = self.collection(meta)?;
        let _writer = coll.write_lock.lock();
        let id = meta.id;
        let mut labels: RoaringBitmap =
            self.matching_labels(&coll, meta, ids, where_, where_document)?;
        if let Some(limit) = limit {
            labels = labels.iter().take(limit).collect();
        }
        let (cf_records, cf_vectors, cf_ids, cf_mindex) = (
            self.cf(keys::CF_RECORDS)?,
            self.cf(keys::CF_VECTORS)?,
            self.cf(keys::CF_IDS)?,
            self.cf(keys::CF_MINDEX)?,
        );
        let mut counters = self.counters(&id)?;
        let label_keys: Vec<[u8; 20]> = labels.iter().map(|l| keys::label_key(&id, l)).collect();
        let mut batch = WriteBatch::default();
        let mut deleted = 0u64;
        for (k, v) in label_keys.iter().zip(
            self.db
                .multi_get_cf(label_keys.iter().map(|k| (cf_records, k))),
        ) {
            let Some(bytes) = v? else { continue };
            let rec = StoredRecord::decode(&bytes)
                .ok_or_else(|| StoreError::Corrupt("record value".into()))?;
            let label = keys::label_from_key(k).unwrap_or_default();
            if let Some(md) = &rec.metadata {
                for mk in keys::mindex_entries(&id, label, md) {
                    batch.delete_cf(cf_mindex, mk);
                }
            }
            batch.delete_cf(cf_records, k);
            batch.delete_cf(cf_vectors, k);
            batch.delete_cf(cf_ids, keys::id_key(&id, &rec.id));
            deleted += 1;
        }
        counters.count = counters.count.saturating_sub(deleted);
        if deleted > 0 {
            counters.version += 1;
            batch.put(keys::counters_key(&id), counters.encode());
            self.db.write(batch)?;
            let mut st = coll.state.write();
            st.live -= &labels;
            if let Some(v) = st.vectors.as_mut() {
                labels.iter().for_each(|l| v.remove(l));
            }
            st.unsaved_writes += 1;
            st.version = counters.version;
            drop(st);
            coll.note_write();
            self.indexer.schedule(&coll);
        }
        super::counters::add(&super::counters::RECORDS_DELETED, deleted);
        tracing::Span::current().record("quiver.deleted", deleted);
        Ok(WriteOutcome {
            applied: deleted as usize,
            total: counters.count,
        })
    }
}

fn apply_changes(coll: &Arc<Collection>, dim: Option<usize>, changes: Vec<Change>, version: u64) {
    let mut st = coll.state.write();
    st.version = version;
    for Change { label, vector } in changes {
        if let Some(v) = vector {
            st.vectors
                .get_or_insert_with(|| Vectors::new(dim.unwrap_or(v.len())))
                .set(label, &v);
        }
        st.live.insert(label);
    }
    st.unsaved_writes += 1;
}
