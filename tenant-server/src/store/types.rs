//! The record and collection model shared by the write path, the query path and the HTTP layer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One scalar metadata value. Ints and floats are stored as given (a float stays a float)
/// and compare numerically with each other in filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A metadata value: a scalar or a homogeneous list of scalars (Chroma's array metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetaValue {
    Scalar(Scalar),
    List(Vec<Scalar>),
}

pub type Metadata = BTreeMap<String, MetaValue>;

/// Which fields a get or query returns. `ids` are always returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    pub embeddings: bool,
    pub documents: bool,
    pub metadatas: bool,
    pub distances: bool,
    pub uris: bool,
}

impl Include {
    pub const GET_DEFAULT: Include = Include {
        embeddings: false,
        documents: true,
        metadatas: true,
        distances: false,
        uris: false,
    };
    pub const QUERY_DEFAULT: Include = Include {
        embeddings: false,
        documents: true,
        metadatas: true,
        distances: true,
        uris: false,
    };

    /// Names in Chroma's order, as echoed back in the `include` field of results.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.documents {
            out.push("documents");
        }
        if self.metadatas {
            out.push("metadatas");
        }
        if self.embeddings {
            out.push("embeddings");
        }
        if self.distances {
            out.push("distances");
        }
        if self.uris {
            out.push("uris");
        }
        out
    }
}

/// Distance space of a collection, with Chroma's definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// Squared Euclidean distance (Chroma's default).
    #[default]
    L2,
    /// `1 - cos(a, b)`.
    Cosine,
    /// `1 - a·b`.
    Ip,
}

impl Space {
    pub fn parse(s: &str) -> Option<Space> {
        match s {
            "l2" => Some(Space::L2),
            "cosine" => Some(Space::Cosine),
            "ip" => Some(Space::Ip),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Space::L2 => "l2",
            Space::Cosine => "cosine",
            Space::Ip => "ip",
        }
    }
}

/// HNSW parameters of a collection (Chroma's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswConfig {
    pub space: Space,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub max_neighbors: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            space: Space::L2,
            ef_construction: 100,
            ef_search: 100,
            max_neighbors: 16,
        }
    }
}

/// A record as given to a write: every field but the id is optional; `None` means
/// "not given" (for update/upsert: leave unchanged).
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    pub id: String,
    pub embedding: Option<Vec<f32>>,
    pub document: Option<String>,
    /// For update/upsert a key mapped to `None` removes that key.
    pub metadata: Option<BTreeMap<String, Option<MetaValue>>>,
    pub uri: Option<String>,
}

/// One stored record as returned by get/query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub id: String,
    pub embedding: Option<Vec<f32>>,
    pub document: Option<String>,
    pub metadata: Option<Metadata>,
    pub uri: Option<String>,
}
