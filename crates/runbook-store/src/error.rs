//! Store errors. Connection strings in messages are redacted.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names no supported engine.
    #[error("state store URL {0} is not supported: use sqlite://PATH or postgres://…")]
    Url(String),
    /// The database could not be reached.
    #[error("cannot connect to state store {url}: {reason}")]
    Connect {
        /// Redacted URL.
        url: String,
        /// Driver message.
        reason: String,
    },
    /// A query failed.
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored value could not be decoded.
    #[error("state store: bad value in {what}: {value}")]
    Corrupt {
        /// The column.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// No such row.
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// Its id.
        id: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
