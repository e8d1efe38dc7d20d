//! Store errors. The HTTP layer maps each variant to a status code in one place.

use super::filter::FilterError;
use super::schema::SchemaError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidDimension(String),
    #[error("Expected IDs to be unique, found duplicates of: {0}")]
    DuplicateId(String),
    #[error("Collection [{0}] does not exist")]
    CollectionNotFound(String),
    #[error("Collection [{0}] already exists")]
    CollectionExists(String),
    #[error("Project [{0}] does not exist")]
    ProjectNotFound(String),
    #[error("Database [{0}] not found")]
    DatabaseNotFound(String),
    /// A query restricted to ids named one the collection does not hold (see
    /// [`MissingIds`](super::query::MissingIds)). The text is Chroma's, word for word:
    /// clients match on it.
    #[error("Error executing plan: Internal error: Error finding id")]
    QueryIdNotFound,
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Writes of the project are paused (while it is moved); retry shortly.
    #[error("Writes to project [{0}] are paused; retry shortly")]
    ProjectPaused(String),
    /// A write would exceed one of the project's quotas; nothing of it was applied.
    #[error("{0}")]
    QuotaExceeded(String),
    /// An import found the project already here (and not as an incoming copy).
    #[error("Project [{0}] already exists on this server")]
    ProjectExists(String),
    /// Changes can only be applied to a copy being moved in.
    #[error("Project [{0}] is not an incoming copy; changes are applied only to one")]
    NotIncoming(String),
    /// The write-ahead log no longer reaches back to the asked sequence.
    #[error("{0}")]
    ChangesUnavailable(String),
    /// A pause could not drain the writes in progress in time, and was undone.
    #[error("{0}")]
    PauseTimeout(String),
    /// The project moved to another server; this copy serves nothing any more.
    #[error("Project [{name}] has moved {}", moved_to_text(.moved_to))]
    ProjectFenced {
        name: String,
        moved_to: Option<String>,
    },
}

fn moved_to_text(to: &Option<String>) -> String {
    match to {
        Some(url) => format!("to {url}"),
        None => "to another server".into(),
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
