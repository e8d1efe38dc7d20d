//! Typed async client for the per-project HTTP API (`/api/v1`) of the Quiver tenant server,
//! the Rust counterpart of the Python `MultiTenantChromaClient` and `ProjectCollection`.
//!
//! * [`wire`]: request and response bodies, field for field as in `docs/api-v1.md`.
//! * [`QuiverClient`]: one method per endpoint, each taking the project name first.
//! * [`ProjectCollection`]: a handle on one collection of one project.
//! * [`ClientError`]: API errors (status + `{"error", "message"}`), transport and decode
//!   errors.

/// The HTTP library of the client, for [`QuiverClient::with_http_client`].
pub use reqwest;

mod client;
mod error;
pub mod wire;

pub use client::{ProjectCollection, QuiverClient};
pub use error::ClientError;
pub use wire::{
    AddRequest, AddResponse, CollectionConfiguration, CollectionInfo, DeleteRequest,
    DeleteResponse, ErrorBody, Filter, GetRequest, GetResult, Heartbeat, HnswConfiguration,
    Include, IndexingStatus, MessageResponse, Metadata, ModifyCollectionRequest, ProjectInfo,
    QueryRequest, QueryResult, ServerInfo, Space, UpdateRequest, UpdateResponse, UpsertResponse,
};
