//! What the kubelet reports about pods, independent of how containers run: the phase and the
//! kubelet-owned conditions ([`status`]), and the crash-loop restart back-off ([`backoff`]).

pub mod backoff;
pub mod status;
