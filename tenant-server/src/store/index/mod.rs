//! The vector index of a collection: an append-only arena of vectors in search form and
//! our own HNSW graph over its slots, with their files on disk.
//!
//! Why a graph of our own rather than hnsw_rs, with the measured comparison, is in
//! `docs/vector-index.md`.

pub mod arena;
mod buckets;
pub mod hnsw;
pub mod persist;
mod visited;

pub use arena::{Arena, NO_LABEL};
pub use hnsw::{Hnsw, Near, Params, Traversal, MAX_M};

#[cfg(test)]
mod tests;
