//! Mapping storage errors to the gRPC statuses etcd returns.
//!
//! etcd's client libraries (Go `clientv3`, and through it Kubernetes' etcd3 store and `etcdctl`)
//! recognise server errors by their exact message, so every error a client may act on uses etcd's
//! wording and status code (`api/v3rpc/rpctypes/error.go`).

use tonic::{Code, Status};

/// `etcdserver: key is not provided`
pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
/// `etcdserver: key not found`
pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
/// `etcdserver: value is provided`
pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
/// `etcdserver: lease is provided`
pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
/// `etcdserver: too many operations in txn request`
pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
/// `etcdserver: duplicate key given in txn request`
pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
/// `etcdserver: invalid sort option`
pub const INVALID_SORT_OPTION: &str = "etcdserver: invalid sort option";
/// `etcdserver: mvcc: required revision has been compacted`
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// `etcdserver: mvcc: required revision is a future revision`
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// `etcdserver: requested lease not found`
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// `etcdserver: lease already exists`
pub const LEASE_EXIST: &str = "etcdserver: lease already exists";
/// `etcdserver: too large lease TTL`
pub const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// `etcdserver: member not found`
pub const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
/// `etcdserver: Peer URLs already exists`
pub const PEER_URL_EXIST: &str = "etcdserver: Peer URLs already exists";
/// `etcdserver: given member URLs are invalid`
pub const MEMBER_BAD_URLS: &str = "etcdserver: given member URLs are invalid";
/// `etcdserver: can only promote a learner member`
pub const MEMBER_NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
/// `etcdserver: can only promote a learner member which is in sync with leader`
pub const LEARNER_NOT_READY: &str =
    "etcdserver: can only promote a learner member which is in sync with leader";
/// `etcdserver: request is too large`
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
/// `etcdserver: no leader`
pub const NO_LEADER: &str = "etcdserver: no leader";
/// `etcdserver: leader changed`
pub const LEADER_CHANGED: &str = "etcdserver: leader changed";
/// `etcdserver: request timed out`
pub const TIMEOUT: &str = "etcdserver: request timed out";
/// `etcdserver: server stopped`
pub const STOPPED: &str = "etcdserver: server stopped";

/// The status etcd answers for a request that named no key.
pub fn empty_key() -> Status {
    Status::invalid_argument(EMPTY_KEY)
}

/// The status etcd answers for a request over `--max-request-bytes`.
pub fn too_large() -> Status {
    Status::invalid_argument(REQUEST_TOO_LARGE)
}

/// The status etcd answers for an unknown lease.
pub fn lease_not_found() -> Status {
    Status::not_found(LEASE_NOT_FOUND)
}

/// Turns a storage error into the status etcd would answer.
pub fn to_status(err: storage::Error) -> Status {
    use storage::Error as E;
    let status = match &err {
        E::Compacted { .. } => Status::out_of_range(COMPACTED),
        E::FutureRevision { .. } => Status::out_of_range(FUTURE_REV),
        E::EmptyKey => empty_key(),
        E::TooLarge { .. } => too_large(),
        E::KeyNotFound => Status::invalid_argument(KEY_NOT_FOUND),
        E::DuplicateKey => Status::invalid_argument(DUPLICATE_KEY),
        E::TooManyOps => Status::invalid_argument(TOO_MANY_OPS),
        E::LeaseNotFound(_) => lease_not_found(),
        E::LeaseExists(_) => Status::failed_precondition(LEASE_EXIST),
        E::InvalidArgument(msg) => Status::invalid_argument(format!("etcdserver: {msg}")),
        E::WatchOverflow { .. } => Status::new(Code::Unavailable, "etcdserver: watcher too slow"),
        E::Unavailable(_) => Status::unavailable(NO_LEADER),
        E::Timeout => Status::unavailable(TIMEOUT),
        E::NotLeader { .. } => Status::unavailable(LEADER_CHANGED),
        E::Membership(msg) => membership_status(msg),
        E::Unsupported(msg) => Status::unimplemented(format!("etcdserver: {msg}")),
        E::Internal(_) => Status::internal(format!("etcdserver: {err}")),
        _ => Status::unknown(format!("etcdserver: {err}")),
    };
    if matches!(status.code(), Code::Internal | Code::Unknown | Code::Unavailable) {
        tracing::warn!(error = %err, "storage call failed");
    } else {
        tracing::debug!(error = %err, "request refused");
    }
    status
}

/// Membership errors carry free text; pick etcd's error where the text says which one it is.
fn membership_status(msg: &str) -> Status {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("not found") || lower.contains("unknown member") || lower.contains("no such member") {
        Status::not_found(MEMBER_NOT_FOUND)
    } else if lower.contains("not a learner") || lower.contains("not learner") {
        Status::failed_precondition(MEMBER_NOT_LEARNER)
    } else if lower.contains("in sync") || lower.contains("not ready") || lower.contains("lagging") {
        Status::failed_precondition(LEARNER_NOT_READY)
    } else if lower.contains("already") && lower.contains("url") {
        Status::failed_precondition(PEER_URL_EXIST)
    } else if lower.contains("invalid") && lower.contains("url") {
        Status::invalid_argument(MEMBER_BAD_URLS)
    } else {
        Status::failed_precondition(format!("etcdserver: {msg}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_clients_act_on_use_etcd_wording() {
        let s = to_status(storage::Error::Compacted {
            requested: 1,
            compacted: 5,
        });
        assert_eq!((s.code(), s.message()), (Code::OutOfRange, COMPACTED));
        let s = to_status(storage::Error::LeaseNotFound(7));
        assert_eq!((s.code(), s.message()), (Code::NotFound, LEASE_NOT_FOUND));
        let s = to_status(storage::Error::TooLarge { size: 10, limit: 1 });
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, REQUEST_TOO_LARGE)
        );
        let s = to_status(storage::Error::Unavailable("no quorum".into()));
        assert_eq!((s.code(), s.message()), (Code::Unavailable, NO_LEADER));
        let s = to_status(storage::Error::Timeout);
        assert_eq!((s.code(), s.message()), (Code::Unavailable, TIMEOUT));
        let s = to_status(storage::Error::Membership("member 5 not found".into()));
        assert_eq!((s.code(), s.message()), (Code::NotFound, MEMBER_NOT_FOUND));
    }
}
