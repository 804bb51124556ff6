//! The one error type of the storage layer.

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the storage crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Failures of a storage call. A failed compare in a transaction is *not* an error: it is a
/// [`crate::TxnResponse`] with `succeeded == false`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested revision has been compacted away.
    #[error("mvcc: required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The compaction point: revisions below it are gone.
        compacted: u64,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("mvcc: required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// The request itself is malformed (bad range, bad TTL, ...).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// A request named no key.
    #[error("key is not provided")]
    EmptyKey,
    /// The request (keys plus values) is larger than the store accepts.
    #[error("request is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// The request's size.
        size: usize,
        /// The limit ([`crate::MAX_REQUEST_BYTES`]).
        limit: usize,
    },
    /// A put with `ignore_value` / `ignore_lease` named a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// A transaction branch writes the same key twice.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A transaction has more operations than the store accepts.
    #[error("too many operations in txn request")]
    TooManyOps,
    /// The lease named by a request does not exist.
    #[error("lease not found: {0}")]
    LeaseNotFound(i64),
    /// A lease with this ID already exists.
    #[error("lease already exists: {0}")]
    LeaseExists(i64),
    /// A watcher fell too far behind and was closed; resume from `next_revision`.
    #[error("watcher too slow: closed, resume from revision {next_revision}")]
    WatchOverflow {
        /// The first revision the watcher has not received.
        next_revision: u64,
    },
    /// No leader or no quorum: the request could not be served now (retryable).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request did not complete in time; its outcome is unknown.
    #[error("storage request timed out")]
    Timeout,
    /// This member is not the leader and cannot serve the request itself.
    #[error("not leader")]
    NotLeader {
        /// The leader's client URL, when known.
        leader: Option<String>,
    },
    /// Cluster membership call failed (unknown member, bad URL, change in progress, ...).
    #[error("membership: {0}")]
    Membership(String),
    /// The operation is not supported by this implementation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A bug or an IO failure inside the store.
    #[error("storage internal error: {0}")]
    Internal(#[source] BoxError),
}

impl Error {
    /// Wraps any error as [`Error::Internal`].
    pub fn internal(e: impl Into<BoxError>) -> Self {
        Error::Internal(e.into())
    }

    /// True for errors a client may retry unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Timeout | Error::NotLeader { .. }
        )
    }
}
