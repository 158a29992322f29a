//! Job parameters as the API and the scheduler store them (JSON), read back into operations.

use runbook_store::Job;
use serde::Deserialize;

use super::OpError;

/// Parameters of a backup job, as the API and the scheduler queue them.
#[derive(Debug, Deserialize)]
pub(super) struct BackupParams {
    #[serde(default = "api")]
    pub(super) reason: String,
}

/// Parameters of a drill job.
#[derive(Debug, Deserialize)]
pub(super) struct DrillParams {
    pub(super) snapshot: Option<String>,
    #[serde(default)]
    pub(super) backup_first: bool,
}

/// Parameters of a verification job: slice `n` of `of`.
#[derive(Debug, Deserialize)]
pub(super) struct VerifyParams {
    #[serde(default = "one")]
    pub(super) n: u32,
    #[serde(default = "thirty")]
    pub(super) of: u32,
}

/// Parameters of a restore job.
#[derive(Debug, Deserialize)]
pub(super) struct RestoreParams {
    #[serde(default = "latest")]
    pub(super) snapshot: String,
    pub(super) to: Option<String>,
    pub(super) into: Option<String>,
    #[serde(default)]
    pub(super) force: bool,
}

fn api() -> String {
    "api".into()
}

fn one() -> u32 {
    1
}

fn thirty() -> u32 {
    30
}

fn latest() -> String {
    "latest".into()
}

/// The job's parameters as `T`; a job whose parameters do not fit fails with why.
pub(super) fn params<T: serde::de::DeserializeOwned>(job: &Job) -> Result<T, OpError> {
    serde_json::from_value(job.params.clone())
        .map_err(|e| OpError::from(format!("bad {} parameters: {e}", job.kind)))
}
