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
    /// Writes of the project are paused (while it is moved); retry shortly.
    #[error("Writes to project [{0}] are paused; retry shortly")]
    ProjectPaused(String),
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
