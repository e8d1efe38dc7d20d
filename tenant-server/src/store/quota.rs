//! A project's quotas: limits on collections, records and bytes that every write is
//! checked against before anything of it is applied.
//!
//! They are kept in a `QUOTAS` file next to `db/`, not in RocksDB, so that they can be
//! read without opening the project and travel with its snapshot when it moves.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{StoreError, StoreResult};
use super::fsio::write_durably;

pub const QUOTAS_FILE: &str = "QUOTAS";

/// `None` means no limit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    #[serde(default)]
    pub max_collections: Option<u64>,
    #[serde(default)]
    pub max_records: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl Quotas {
    pub fn is_unlimited(&self) -> bool {
        *self == Quotas::default()
    }

    /// Refuses a new collection when the project already holds `collections`.
    pub fn check_collections(&self, project: &str, collections: u64) -> StoreResult<()> {
        match self.max_collections {
            Some(max) if collections >= max => Err(StoreError::QuotaExceeded(format!(
                "Quota maxCollections of project [{project}] exceeded: the limit is {max} \
                 and the project holds {collections} collections"
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses `new` records when the project holds `records`.
    pub fn check_records(&self, project: &str, records: u64, new: u64) -> StoreResult<()> {
        match self.max_records {
            Some(max) if new > 0 && records.saturating_add(new) > max => {
                Err(StoreError::QuotaExceeded(format!(
                    "Quota maxRecords of project [{project}] exceeded: the limit is {max}, \
                     the project holds {records} records and the request adds {new}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a write of `payload` bytes when the project takes `bytes`.
    pub fn check_bytes(&self, project: &str, bytes: u64, payload: u64) -> StoreResult<()> {
        match self.max_bytes {
            Some(max) if payload > 0 && bytes.saturating_add(payload) > max => {
                Err(StoreError::QuotaExceeded(format!(
                    "Quota maxBytes of project [{project}] exceeded: the limit is {max} bytes, \
                     the project takes {bytes} and the request adds about {payload}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The quotas of the project whose store is `root` (none when it has no file). An
/// unreadable file is an error rather than "no limits": lifting limits silently is the
/// wrong side to fail on.
pub fn read(root: &Path) -> StoreResult<Quotas> {
    match std::fs::read(root.join(QUOTAS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("quotas file: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Quotas::default()),
        Err(e) => Err(e.into()),
    }
}

pub fn write(root: &Path, quotas: &Quotas) -> StoreResult<()> {
    let bytes = serde_json::to_vec(quotas).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    write_durably(&root.join(QUOTAS_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_at_their_boundary() {
        let q = Quotas {
            max_collections: Some(2),
            max_records: Some(10),
            max_bytes: Some(1000),
        };
        assert!(q.check_collections("p", 1).is_ok());
        let err = q.check_collections("p", 2).expect_err("at the limit");
        assert!(err.to_string().contains("maxCollections"), "{err}");
        assert!(q.check_records("p", 5, 5).is_ok());
        let err = q.check_records("p", 5, 6).expect_err("over");
        assert!(err.to_string().contains("maxRecords"), "{err}");
        assert!(q.check_records("p", 50, 0).is_ok(), "no new records");
        assert!(q.check_bytes("p", 900, 100).is_ok());
        let err = q.check_bytes("p", 900, 101).expect_err("over");
        assert!(err.to_string().contains("maxBytes"), "{err}");
        let none = Quotas::default();
        assert!(none.is_unlimited());
        assert!(none.check_records("p", u64::MAX, 1).is_ok());
    }

    #[test]
    fn file_round_trip_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), Quotas::default());
        let q = Quotas {
            max_collections: None,
            max_records: Some(7),
            max_bytes: None,
        };
        write(dir.path(), &q).expect("write");
        assert_eq!(read(dir.path()).expect("read"), q);
        std::fs::write(dir.path().join(QUOTAS_FILE), b"{oops").expect("write");
        assert!(read(dir.path()).is_err());
    }
}
