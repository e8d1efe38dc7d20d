//! The read path: filter planning over the metadata index, get, and nearest-neighbour
//! query choosing between exact scan and the HNSW graph by selectivity.

use std::cmp::Ordering as CmpOrdering;
use std::collections::HashSet;
use std::sync::Arc;

use roaring::RoaringBitmap;
use rocksdb::{Direction, IteratorMode};

use super::collection::Collection;
use super::counters;
use super::distance::distance;
use super::error::{StoreError, StoreResult};
use super::filter::{self, MetaOp, Where, WhereDocument};
use super::index::Traversal;
use super::keys::{self, StoredRecord};
use super::project::{CollectionMeta, Project};
use super::types::{Include, MetaValue, Record, Scalar};

/// Filtered queries whose candidates cost less than this many multiply-adds are answered
/// by exact scan (perfect recall, ~2 ms at the limit); larger candidate sets use the graph.
const EXACT_SCAN_BUDGET: usize = 8_000_000;
/// Collections of at most this many candidates are answered by exact scan: the scan costs
/// no more than a graph walk there, and it is exact (a graph over a hundred or two
/// inner-product vectors can miss a neighbour even at ef 100).
const SMALL_EXACT_SCAN: usize = 256;
/// Filters letting through less than this share of the records walk the graph sparsely
/// (stepping over rejected nodes instead of scoring them).
const SPARSE_BELOW: f64 = 0.3;

pub struct GetResult {
    pub records: Vec<Record>,
}

pub struct QueryHit {
    pub record: Record,
    pub distance: f32,
}

/// How a query was answered, for tracing and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Exact,
    Graph,
}

pub struct QueryRequest<'a> {
    pub embeddings: &'a [Vec<f32>],
    pub n_results: usize,
    pub ids: Option<&'a [String]>,
    pub where_: Option<&'a Where>,
    pub where_document: Option<&'a WhereDocument>,
    pub include: Include,
    pub missing_ids: MissingIds,
}

/// What a query restricted to `ids` does with ids the collection does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingIds {
    /// They restrict nothing: the query answers among the ids that exist.
    #[default]
    Skip,
    /// Chroma's rule: without a `where` or `where_document` filter, a collection that
    /// has a dimension fails the whole query ([`StoreError::QueryIdNotFound`]). With a
    /// filter, or in a collection never written to, they are skipped.
    FailUnfiltered,
}

impl Project {
    /// Labels of live records satisfying every given condition.
    pub fn matching_labels(
        &self,
        coll: &Collection,
        meta: &CollectionMeta,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
    ) -> StoreResult<RoaringBitmap> {
        if where_.is_some() || where_document.is_some() {
            let schema = meta.effective_schema();
            if let Some(w) = where_ {
                schema.check_where(w)?;
            }
            if where_document.is_some() {
                schema.check_document_filter()?;
            }
        }
        let of_ids = ids.map(|ids| self.labels_of_ids(meta, ids)).transpose()?;
        let mut set = if where_.is_some() || where_document.is_some() {
            self.filtered_labels(coll, meta, where_, where_document)?
        } else if let Some(mut of_ids) = of_ids {
            // ids alone: point lookups, never a copy of the whole live set
            of_ids &= &coll.state.read().live;
            return Ok(of_ids);
        } else {
            coll.state.read().live.clone()
        };
        if let Some(of_ids) = of_ids {
            set &= of_ids;
        }
        Ok(set)
    }

    /// Live labels matching the filters. Applications repeat the same filters (a user, a
    /// tenant, a source), so results are cached per collection until its next write.
    fn filtered_labels(
        &self,
        coll: &Collection,
        meta: &CollectionMeta,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
    ) -> StoreResult<RoaringBitmap> {
        let key = format!("{where_:?}|{where_document:?}");
        // read before computing: a write that lands meanwhile makes this entry stale
        let generation = coll.write_generation();
        if let Some(hit) = coll.cached_filter(&key, generation) {
            return Ok(hit);
        }
        let live = coll.state.read().live.clone();
        let mut set = live.clone();
        if let Some(w) = where_ {
            set &= self.eval_where(meta, w, &live)?;
        }
        if let Some(wd) = where_document {
            if !set.is_empty() {
                set = self.filter_documents(meta, &set, wd)?;
            }
        }
        coll.cache_filter(key, generation, &set);
        Ok(set)
    }

    fn labels_of_ids(&self, meta: &CollectionMeta, ids: &[String]) -> StoreResult<RoaringBitmap> {
        let cf = self.cf(keys::CF_IDS)?;
        let ks: Vec<Vec<u8>> = ids.iter().map(|i| keys::id_key(&meta.id, i)).collect();
        let mut out = RoaringBitmap::new();
        for v in self.db.multi_get_cf(ks.iter().map(|k| (cf, k))) {
            if let Some(b) = v? {
                if let Ok(arr) = <[u8; 4]>::try_from(b.as_slice()) {
                    out.insert(u32::from_be_bytes(arr));
                }
            }
        }
        Ok(out)
    }

    fn eval_where(
        &self,
        meta: &CollectionMeta,
        w: &Where,
        live: &RoaringBitmap,
    ) -> StoreResult<RoaringBitmap> {
        Ok(match w {
            Where::And(parts) => {
                let mut acc = live.clone();
                for p in parts {
                    acc &= self.eval_where(meta, p, live)?;
                    if acc.is_empty() {
                        break;
                    }
                }
                acc
            }
            Where::Or(parts) => {
                let mut acc = RoaringBitmap::new();
                for p in parts {
                    acc |= self.eval_where(meta, p, live)?;
                }
                acc
            }
            Where::Cmp { key, op } => {
                let positive = match op {
                    MetaOp::Eq(v) | MetaOp::Ne(v) => self.scan_eq(meta, key, v, false)?,
                    MetaOp::Contains(v) | MetaOp::NotContains(v) => {
                        self.scan_eq(meta, key, v, true)?
                    }
                    MetaOp::In(vs) | MetaOp::Nin(vs) => {
                        let mut acc = RoaringBitmap::new();
                        for v in vs {
                            acc |= self.scan_eq(meta, key, v, false)?;
                        }
                        acc
                    }
                    MetaOp::Gt(v) => {
                        self.scan_range(meta, key, v, |c| c == CmpOrdering::Greater)?
                    }
                    MetaOp::Gte(v) => self.scan_range(meta, key, v, |c| c != CmpOrdering::Less)?,
                    MetaOp::Lt(v) => self.scan_range(meta, key, v, |c| c == CmpOrdering::Less)?,
                    MetaOp::Lte(v) => {
                        self.scan_range(meta, key, v, |c| c != CmpOrdering::Greater)?
                    }
                };
                let positive = self.apply_number_rules(meta, key, op, positive)?;
                if op.is_negative() {
                    live - positive
                } else {
                    positive & live
                }
            }
        })
    }

    /// Corrects what the index answered where Chroma's numeric rules differ from a plain
    /// numeric order (ints and floats share one encoding in the index): a fractional float
    /// operand compares with int values truncated, so the ints equal to its truncation
    /// go in or out by the operator alone; and `$contains` matches only elements of the
    /// operand's type. Only the few records the index cannot tell apart are read.
    fn apply_number_rules(
        &self,
        meta: &CollectionMeta,
        key: &str,
        op: &MetaOp,
        mut positive: RoaringBitmap,
    ) -> StoreResult<RoaringBitmap> {
        let int_scalar =
            |t: i64| move |v: &MetaValue| matches!(v, MetaValue::Scalar(Scalar::Int(x)) if *x == t);
        match op {
            MetaOp::Eq(v)
            | MetaOp::Ne(v)
            | MetaOp::Gt(v)
            | MetaOp::Gte(v)
            | MetaOp::Lt(v)
            | MetaOp::Lte(v) => {
                if let Some(t) = filter::truncated_operand(v) {
                    let equal = self.scan_eq(meta, key, &Scalar::Int(t), false)?;
                    let ints = self.labels_whose(meta, key, &equal, int_scalar(t))?;
                    positive -= &ints;
                    if matches!(
                        op,
                        MetaOp::Eq(_) | MetaOp::Ne(_) | MetaOp::Gte(_) | MetaOp::Lte(_)
                    ) {
                        positive |= ints;
                    }
                }
            }
            MetaOp::In(vs) | MetaOp::Nin(vs) => {
                for t in vs.iter().filter_map(filter::truncated_operand) {
                    let equal = self.scan_eq(meta, key, &Scalar::Int(t), false)?;
                    positive |= self.labels_whose(meta, key, &equal, int_scalar(t))?;
                }
            }
            MetaOp::Contains(x) | MetaOp::NotContains(x) => {
                let ambiguous = match x {
                    Scalar::Int(_) => true,
                    Scalar::Float(f) => f.fract() == 0.0,
                    _ => false,
                };
                if ambiguous && !positive.is_empty() {
                    positive = self.labels_whose(meta, key, &positive, |v| {
                        matches!(v, MetaValue::List(items) if items.iter().any(|i| filter::same_typed(i, x)))
                    })?;
                }
            }
        }
        Ok(positive)
    }

    /// The labels among `labels` whose stored metadata `key` satisfies `pred`.
    fn labels_whose(
        &self,
        meta: &CollectionMeta,
        key: &str,
        labels: &RoaringBitmap,
        pred: impl Fn(&MetaValue) -> bool,
    ) -> StoreResult<RoaringBitmap> {
        let cf = self.cf(keys::CF_RECORDS)?;
        let ks: Vec<[u8; 20]> = labels
            .iter()
            .map(|l| keys::label_key(&meta.id, l))
            .collect();
        let mut out = RoaringBitmap::new();
        for (l, v) in labels
            .iter()
            .zip(self.db.multi_get_cf(ks.iter().map(|k| (cf, k))))
        {
            let Some(bytes) = v? else { continue };
            let rec = StoredRecord::decode(&bytes)
                .ok_or_else(|| StoreError::Corrupt("record value".into()))?;
            if rec
                .metadata
                .as_ref()
                .and_then(|m| m.get(key))
                .is_some_and(&pred)
            {
                out.insert(l);
            }
        }
        Ok(out)
    }

    /// Labels whose metadata `key` equals `v` (or, for lists, contains it).
    fn scan_eq(
        &self,
        meta: &CollectionMeta,
        key: &str,
        v: &Scalar,
        list: bool,
    ) -> StoreResult<RoaringBitmap> {
        let prefix = keys::mindex_value_prefix(&meta.id, key, v, list);
        let mut out = RoaringBitmap::new();
        let cf = self.cf(keys::CF_MINDEX)?;
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            // longer strings share the prefix; only an exact value leaves just the label
            if k.len() == prefix.len() + 4 {
                if let Some(l) = keys::label_from_key(&k) {
                    out.insert(l);
                }
            }
        }
        Ok(out)
    }

    /// Labels whose numeric metadata `key` compares to `v` as `accept` says.
    fn scan_range(
        &self,
        meta: &CollectionMeta,
        key: &str,
        v: &Scalar,
        accept: impl Fn(CmpOrdering) -> bool,
    ) -> StoreResult<RoaringBitmap> {
        let Some(bound) = keys::sortable_number(v) else {
            return Ok(RoaringBitmap::new());
        };
        let prefix = keys::mindex_numeric_prefix(&meta.id, key);
        let cf = self.cf(keys::CF_MINDEX)?;
        let mut out = RoaringBitmap::new();
        // seek to the bound when only larger values can match
        let start = if accept(CmpOrdering::Greater) && !accept(CmpOrdering::Less) {
            [prefix.as_slice(), &bound].concat()
        } else {
            prefix.clone()
        };
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (k, _) = item?;
            if !k.starts_with(&prefix) || k.len() != prefix.len() + keys::NUMBER_BYTES + 4 {
                if !k.starts_with(&prefix) {
                    break;
                }
                continue;
            }
            let value = &k[prefix.len()..prefix.len() + keys::NUMBER_BYTES];
            let ord = value.cmp(bound.as_slice());
            if accept(ord) {
                if let Some(l) = keys::label_from_key(&k) {
                    out.insert(l);
                }
            } else if ord == CmpOrdering::Greater {
                break;
            }
        }
        Ok(out)
    }

    fn filter_documents(
        &self,
        meta: &CollectionMeta,
        set: &RoaringBitmap,
        wd: &WhereDocument,
    ) -> StoreResult<RoaringBitmap> {
        let cf = self.cf(keys::CF_RECORDS)?;
        let mut out = RoaringBitmap::new();
        let prefix = meta.id.as_bytes();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            let Some(label) = keys::label_from_key(&k) else {
                continue;
            };
            if !set.contains(label) {
                continue;
            }
            let doc = StoredRecord::decode_document(&v)
                .ok_or_else(|| StoreError::Corrupt("record value".into()))?;
            if wd.matches(doc.as_deref()) {
                out.insert(label);
            }
        }
        Ok(out)
    }

    /// Reads records by label, in the given order, with the requested fields.
    pub fn read_records(
        &self,
        meta: &CollectionMeta,
        labels: &[u32],
        include: Include,
    ) -> StoreResult<Vec<Record>> {
        let (cf_records, cf_vectors) = (self.cf(keys::CF_RECORDS)?, self.cf(keys::CF_VECTORS)?);
        let ks: Vec<[u8; 20]> = labels
            .iter()
            .map(|l| keys::label_key(&meta.id, *l))
            .collect();
        let values = self.db.multi_get_cf(ks.iter().map(|k| (cf_records, k)));
        let vectors = if include.embeddings {
            self.db.multi_get_cf(ks.iter().map(|k| (cf_vectors, k)))
        } else {
            Vec::new()
        };
        let mut out = Vec::with_capacity(labels.len());
        for (i, v) in values.into_iter().enumerate() {
            let bytes =
                v?.ok_or_else(|| StoreError::Corrupt("record missing for a live label".into()))?;
            let r = StoredRecord::decode(&bytes)
                .ok_or_else(|| StoreError::Corrupt("record value".into()))?;
            let embedding = match vectors.get(i) {
                Some(Ok(Some(b))) => Some(
                    keys::decode_vector(b).ok_or_else(|| StoreError::Corrupt("vector".into()))?,
                ),
                Some(Err(e)) => return Err(e.clone().into()),
                _ => None,
            };
            out.push(Record {
                id: r.id,
                embedding,
                document: r.document,
                metadata: r.metadata,
                uri: r.uri,
            });
        }
        Ok(out)
    }

    /// Chroma's get: matching records in storage order (the order in which each id was
    /// first written, labels ascending), after `offset`, at most `limit`. Asking for ids
    /// does not change the order: `get(ids)` and paged `get(where)` agree.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(
        name = "collection.get",
        skip_all,
        fields(
            quiver.project = %self.name,
            quiver.collection = %meta.name,
            quiver.ids = ids.map(<[String]>::len),
            quiver.filtered = where_.is_some() || where_document.is_some(),
            quiver.limit = limit,
        )
    )]
    pub fn get_records(
        &self,
        meta: &CollectionMeta,
        ids: Option<&[String]>,
        where_: Option<&Where>,
        where_document: Option<&WhereDocument>,
        limit: Option<usize>,
        offset: usize,
        include: Include,
    ) -> StoreResult<GetResult> {
        let coll = self.collection(meta)?;
        let set = self.matching_labels(&coll, meta, ids, where_, where_document)?;
        let labels: Vec<u32> = set
            .iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        let records = self.read_records(meta, &labels, include)?;
        Ok(GetResult { records })
    }

    /// Nearest neighbours for each query embedding among the matching records.
    #[tracing::instrument(
        name = "collection.query",
        skip_all,
        fields(
            quiver.project = %self.name,
            quiver.collection = %meta.name,
            quiver.queries = req.embeddings.len(),
            quiver.n_results = req.n_results,
            quiver.filtered = req.ids.is_some() || req.where_.is_some() || req.where_document.is_some(),
            quiver.strategy = tracing::field::Empty,
            quiver.candidates = tracing::field::Empty,
        )
    )]
    pub fn query(
        &self,
        meta: &CollectionMeta,
        req: &QueryRequest<'_>,
    ) -> StoreResult<(Vec<Vec<QueryHit>>, Strategy)> {
        let coll = self.collection(meta)?;
        let dim = meta.dimension;
        for e in req.embeddings {
            if e.iter().any(|x| !x.is_finite()) {
                return Err(StoreError::InvalidArgument(
                    "Query embedding contains NaN or infinite values".into(),
                ));
            }
            if let Some(d) = dim {
                if e.len() != d {
                    return Err(StoreError::InvalidDimension(format!(
                        "Collection expecting embedding with dimension of {d}, got {}",
                        e.len()
                    )));
                }
            }
        }
        let filtered = req.ids.is_some() || req.where_.is_some() || req.where_document.is_some();
        let allowed = if filtered {
            Some(self.matching_labels(&coll, meta, req.ids, req.where_, req.where_document)?)
        } else {
            None
        };
        if let (Some(ids), Some(allowed)) = (req.ids, allowed.as_ref()) {
            let unfiltered = req.where_.is_none() && req.where_document.is_none();
            if req.missing_ids == MissingIds::FailUnfiltered && unfiltered && dim.is_some() {
                // each live id has one label: fewer labels than distinct ids means one
                // of them is not there
                let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
                if allowed.len() != distinct.len() as u64 {
                    return Err(StoreError::QueryIdNotFound);
                }
            }
        }
        let mut all_hits = Vec::with_capacity(req.embeddings.len());
        let mut strategy = Strategy::Graph;
        for e in req.embeddings {
            let q = coll.search_vector(e);
            let (scored, s) = nearest(
                &coll,
                &q,
                req.n_results,
                meta.hnsw.ef_search,
                allowed.as_ref(),
            );
            strategy = s;
            match s {
                Strategy::Exact => counters::add(&counters::QUERIES_EXACT, 1),
                Strategy::Graph => counters::add(&counters::QUERIES_GRAPH, 1),
            }
            let labels: Vec<u32> = scored.iter().map(|(l, _)| *l).collect();
            let records = self.read_records(meta, &labels, req.include)?;
            all_hits.push(
                records
                    .into_iter()
                    .zip(scored)
                    .map(|(record, (_, distance))| QueryHit { record, distance })
                    .collect(),
            );
        }
        tracing::Span::current().record("quiver.strategy", tracing::field::debug(strategy));
        Ok((all_hits, strategy))
    }
}

/// The `k` nearest live labels to `q` (search form), with Chroma distances, nearest first.
pub fn nearest(
    coll: &Arc<Collection>,
    q: &[f32],
    k: usize,
    ef_search: usize,
    allowed: Option<&RoaringBitmap>,
) -> (Vec<(u32, f32)>, Strategy) {
    let st = coll.state.read();
    let Some(vectors) = st.vectors.as_ref() else {
        return (Vec::new(), Strategy::Exact);
    };
    if k == 0 || q.len() != vectors.dimension {
        return (Vec::new(), Strategy::Exact);
    }
    let live = st.live.len().max(1) as usize;
    let candidates = allowed.map_or(live, |a| a.len() as usize);
    tracing::Span::current().record("quiver.candidates", candidates);
    let exact = st.graph.is_none()
        || allowed.is_some() && candidates.saturating_mul(vectors.dimension) <= EXACT_SCAN_BUDGET
        || candidates <= k.max(SMALL_EXACT_SCAN);
    let mut top = TopK::new(k);
    if !exact {
        if let Some(graph) = st.graph.as_ref() {
            let share = candidates as f64 / live as f64;
            // below this share the dense walk scores mostly records it cannot return
            let traversal = if share < SPARSE_BELOW {
                Traversal::Sparse
            } else {
                Traversal::Dense
            };
            // slots at or above the watermark may be in the graph already (the indexer
            // inserts before it moves the watermark) but are answered by the tail scan
            let upto = st.indexed_upto;
            let accept = |slot: u32| {
                slot < upto
                    && vectors.is_current(slot)
                    && allowed.is_none_or(|a| a.contains(vectors.arena.label(slot)))
            };
            let found = graph.search(q, k, ef_search, accept, traversal);
            let reachable = candidates.min(graph.len());
            if found.len() >= k.min(reachable) {
                for hit in found {
                    top.push(vectors.arena.label(hit.node), hit.dist);
                }
                // embeddings the indexer has not reached yet
                for slot in st.unindexed_slots() {
                    let label = vectors.arena.label(slot);
                    if allowed.is_none_or(|a| a.contains(label)) {
                        if let Some(v) = vectors.arena.vector(slot) {
                            top.push(label, distance(coll.space, v, q));
                        }
                    }
                }
                return (top.into_sorted(), Strategy::Graph);
            }
            // the filter cut the graph into pieces the walk could not reach: scan instead
        }
    }
    let scan = |l: u32| {
        if let Some(v) = vectors.get(l) {
            top.push(l, distance(coll.space, v, q));
        }
    };
    match allowed {
        Some(a) => a.iter().for_each(scan),
        None => st.live.iter().for_each(scan),
    }
    (top.into_sorted(), Strategy::Exact)
}

/// A bounded max-heap of (label, distance) keeping the k smallest distances.
struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Scored>,
}

#[derive(PartialEq)]
struct Scored(f32, u32);
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            // k comes from the request: never reserve more than a small start
            heap: std::collections::BinaryHeap::with_capacity(k.min(1024) + 1),
        }
    }
    fn push(&mut self, label: u32, d: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Scored(d, label));
        } else if let Some(worst) = self.heap.peek() {
            if d < worst.0 {
                self.heap.pop();
                self.heap.push(Scored(d, label));
            }
        }
    }
    fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Scored(d, l)| (l, d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::TopK;

    #[test]
    fn topk_keeps_smallest_in_order() {
        let mut t = TopK::new(3);
        for (l, d) in [(1, 5.0), (2, 1.0), (3, 3.0), (4, 0.5), (5, 9.0), (6, 2.0)] {
            t.push(l, d);
        }
        assert_eq!(t.into_sorted(), vec![(4, 0.5), (2, 1.0), (6, 2.0)]);
    }
}
