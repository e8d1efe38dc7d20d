//! Process-wide counters of store events, read by the metrics endpoint. Monotonic, so a
//! scrape sees rates; kept as plain atomics because the events happen deep in the store
//! and on its background threads.

use std::sync::atomic::{AtomicU64, Ordering};

pub static PROJECT_OPENS: AtomicU64 = AtomicU64::new(0);
pub static PROJECT_CLOSES: AtomicU64 = AtomicU64::new(0);
pub static INDEX_REBUILDS: AtomicU64 = AtomicU64::new(0);
pub static POINTS_INDEXED: AtomicU64 = AtomicU64::new(0);
pub static QUERIES_EXACT: AtomicU64 = AtomicU64::new(0);
pub static QUERIES_GRAPH: AtomicU64 = AtomicU64::new(0);
pub static RECORDS_WRITTEN: AtomicU64 = AtomicU64::new(0);
pub static LOADS_FROM_FILES: AtomicU64 = AtomicU64::new(0);
pub static LOADS_FROM_ROCKSDB: AtomicU64 = AtomicU64::new(0);
pub static RECORDS_DELETED: AtomicU64 = AtomicU64::new(0);

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
