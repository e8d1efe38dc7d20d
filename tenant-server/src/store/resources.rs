//! RocksDB resources shared by every open project (one block cache, one write-buffer
//! budget) and the options each project's database is opened with.

use std::time::Duration;

use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};

use super::config::StoreConfig;

/// RocksDB resources shared by every open project.
pub struct SharedResources {
    pub(super) cache: Cache,
    pub(super) write_buffers: WriteBufferManager,
    max_open_files: i32,
    wal_retention: Duration,
}

impl SharedResources {
    pub fn new(cfg: &StoreConfig) -> SharedResources {
        let cache = Cache::new_lru_cache(cfg.block_cache_bytes);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            cfg.write_buffer_bytes,
            false,
            cache.clone(),
        );
        SharedResources {
            cache,
            write_buffers,
            max_open_files: cfg.max_open_files_per_project,
            wal_retention: cfg.wal_retention,
        }
    }

    pub fn db_options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_max_open_files(self.max_open_files);
        o.set_write_buffer_manager(&self.write_buffers);
        o.set_max_background_jobs(2);
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1 << 20);
        o.set_max_total_wal_size(64 << 20);
        o.set_max_manifest_file_size(4 << 20);
        // archived, not deleted: a move replays the changes since its snapshot from here
        o.set_wal_ttl_seconds(self.wal_retention.as_secs().max(1));
        o.set_table_cache_num_shard_bits(2);
        // Reopening must be cheap, because idle projects are closed and reopened on
        // demand: keep recovered WAL data in memtables instead of writing SST files on
        // every open, and skip the per-file checks RocksDB can do lazily.
        o.set_skip_stats_update_on_db_open(true);
        o.set_max_file_opening_threads(1);
        // not exposed by the rocksdb crate's setters. No fallocate: RocksDB would reserve
        // ~70 MB of WAL and manifest space per open project, which for hundreds of open,
        // mostly small projects means tens of GB of disk held for nothing.
        match o.get_options_from_string(
            "avoid_flush_during_recovery=true;skip_checking_sst_file_sizes_on_db_open=true;\
             allow_fallocate=false",
        ) {
            Ok(with_recovery_options) => with_recovery_options,
            Err(e) => {
                tracing::warn!("cannot set RocksDB recovery options: {e}");
                o
            }
        }
    }

    /// Options of every column family (all share the block cache).
    pub fn cf_options(&self) -> Options {
        let mut o = Options::default();
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&self.cache);
        t.set_cache_index_and_filter_blocks(true);
        t.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&t);
        o.set_write_buffer_size(16 << 20);
        // memtables allocate in arena blocks (default: 1/8 of the buffer); small blocks keep
        // hundreds of mostly idle open projects from reserving megabytes each
        o.set_arena_block_size(32 << 10);
        o.set_max_write_buffer_number(3);
        o.set_compression_type(rocksdb::DBCompressionType::Lz4);
        o
    }
}
