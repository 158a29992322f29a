//! What runbook records about each snapshot, independent of the repository library.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One backup of one target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Snapshot {
    /// Full snapshot id (hex); `restic` accepts it or any unique prefix.
    pub id: String,
    /// When the backup was taken.
    #[schema(value_type = String, format = DateTime)]
    pub time: Timestamp,
    /// The target it belongs to.
    pub target: String,
    /// The target's kind (`sqlite`, `files`).
    pub kind: String,
    /// Why it was taken (`manual`, `schedule`, `restore-drill`, ...).
    pub reason: String,
    /// Bytes read from the source.
    pub source_bytes: u64,
    /// Bytes the repository grew by (after deduplication and compression).
    pub added_bytes: u64,
    /// Seconds from start to saved snapshot, including any consistent-copy step.
    pub duration_seconds: f64,
    /// The runbook version that wrote it.
    pub runbook_version: String,
    /// Source paths as recorded in the snapshot.
    pub paths: Vec<String>,
    /// Tagged `keep-forever` (`runbook backup --keep-forever`): retention never removes it.
    #[serde(default)]
    pub keep_forever: bool,
    /// Where the time went, in seconds: `copy` and `check` (SQLite's consistent copy and its
    /// integrity check), `open` (opening the repository and reading its index) and `store`
    /// (reading, chunking, hashing, compressing, encrypting and uploading; for a database
    /// dump, the dump streams through this phase).
    #[serde(default)]
    pub phases: std::collections::BTreeMap<String, f64>,
    /// Inside `store`, where its time went, in thread-seconds (the time threads spent in each
    /// stage, summed: the stages run side by side on every core, so each may exceed `store`):
    /// `source` (waiting for the source's bytes: the dump tool, the database file, the files),
    /// `chunk` (cutting, hashing, compressing and encrypting) and `upload` (writing packs and
    /// index files to the repository). A stage near `store` is what held the backup up. Empty
    /// for snapshots that runbook's own pipeline did not write.
    #[serde(default)]
    pub stages: std::collections::BTreeMap<String, f64>,
}

impl Snapshot {
    /// The first 8 hex digits, as restic shows them.
    #[must_use]
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
}

/// Metadata runbook stores in a snapshot's description (restic ignores the field).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub kind: String,
    pub reason: String,
    pub prepare_seconds: f64,
    pub runbook_version: String,
    /// Tag the snapshot `keep-forever` (not part of the description).
    #[serde(skip)]
    pub keep_forever: bool,
    /// Seconds of the phases before the repository is written (`copy`, `check`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub phases: std::collections::BTreeMap<String, f64>,
    /// Thread-seconds of the stages inside `store` (`source`, `chunk`, `upload`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stages: std::collections::BTreeMap<String, f64>,
}
