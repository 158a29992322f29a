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
    /// A query failed. (The driver's error is flattened to text so the driver stays an
    /// implementation detail of this crate.)
    #[error("state store: {message}")]
    Query {
        /// The driver's message.
        message: String,
        /// True when trying again later may succeed (connection lost, pool timed out, busy).
        temporary: bool,
    },
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

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let temporary = match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let m = db.message().to_ascii_lowercase();
                m.contains("locked") || m.contains("busy") || m.contains("terminating connection")
            }
            _ => false,
        };
        Self::Query {
            message: e.to_string(),
            temporary,
        }
    }
}

impl Error {
    /// True when trying again later may succeed: the store was briefly unreachable or busy.
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Self::Query {
                temporary: true,
                ..
            } | Self::Connect { .. }
        )
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
