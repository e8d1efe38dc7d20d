//! Quiver tenant server: per-project RocksDB + HNSW stores behind HTTP APIs.

pub mod config;
pub mod http;
pub mod process;
pub mod serve;
pub mod store;
