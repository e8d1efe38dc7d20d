//! Store errors. The HTTP layer maps each variant to a status code in one place.

use super::filter::FilterError;

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
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

pub type StoreResult<T> = Result<T, StoreError>;
