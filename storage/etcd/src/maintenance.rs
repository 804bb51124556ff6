//! The `etcdserverpb.Maintenance` service: Status, Alarm, Snapshot, HashKV, Defragment.
//! Hash (of the whole backend), MoveLeader and Downgrade answer `Unimplemented`.

use std::sync::Arc;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest, PbSnapshotResponse,
    PbStatusRequest, PbStatusResponse,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use storage::RangeRequest;
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::convert::{self, pb_revision};
use crate::error::to_status;
use crate::snapshot::Framer;

/// The Maintenance service over a store.
pub(crate) struct MaintenanceService {
    pub(crate) shared: Arc<Shared>,
}

#[tonic::async_trait]
impl PbMaintenanceService for MaintenanceService {
    async fn alarm(&self, _request: Request<PbAlarmRequest>) -> Result<Response<PbAlarmResponse>, Status> {
        // No alarms are raised (no space quota, no corruption check); activating one is a no-op.
        Ok(Response::new(PbAlarmResponse {
            header: Some(self.shared.headers.current().await),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _request: Request<PbStatusRequest>) -> Result<Response<PbStatusResponse>, Status> {
        let s = self.shared.store.status().await.map_err(to_status)?;
        let db_size = i64::try_from(s.db_size).unwrap_or(i64::MAX);
        Ok(Response::new(PbStatusResponse {
            header: Some(self.shared.headers.at(s.revision)),
            version: self.shared.options.version.clone(),
            db_size,
            leader: s.leader_id,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: if s.leader_id == 0 {
                vec!["etcdserver: no leader".into()]
            } else {
                Vec::new()
            },
            db_size_in_use: db_size,
            is_learner: s.is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _request: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        // The stores compact their files on their own; there is nothing to do.
        Ok(Response::new(PbDefragmentResponse {
            header: Some(self.shared.headers.current().await),
        }))
    }

    async fn hash(&self, _request: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: Hash is not supported; use HashKV",
        ))
    }

    async fn hash_kv(&self, request: Request<PbHashKvRequest>) -> Result<Response<PbHashKvResponse>, Status> {
        let store = &self.shared.store;
        let resp = store
            .range(RangeRequest {
                key: vec![0].into(),
                range_end: vec![0].into(),
                revision: convert::revision(request.get_ref().revision),
                ..Default::default()
            })
            .await
            .map_err(to_status)?;
        let status = store.status().await.map_err(to_status)?;
        let mut crc = Crc32::new();
        for kv in &resp.kvs {
            crc.update(&kv.key);
            crc.update(&kv.mod_revision.to_be_bytes());
            crc.update(&kv.value);
        }
        let hash_revision = match request.get_ref().revision {
            r if r > 0 => r,
            _ => pb_revision(resp.revision),
        };
        Ok(Response::new(PbHashKvResponse {
            header: Some(self.shared.headers.at(resp.revision)),
            hash: crc.finish(),
            compact_revision: pb_revision(status.compact_revision),
            hash_revision,
        }))
    }

    type SnapshotStream = BoxStream<'static, Result<PbSnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _request: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let header = self.shared.headers.current().await;
        let chunks = self.shared.store.snapshot().await.map_err(to_status)?;
        let framed = Framer::new(chunks).map(move |item| {
            item.map(|(blob, remaining_bytes)| PbSnapshotResponse {
                header: Some(header),
                remaining_bytes,
                blob: blob.to_vec(),
                version: String::new(),
            })
            .map_err(to_status)
        });
        Ok(Response::new(framed.boxed()))
    }

    async fn move_leader(
        &self,
        _request: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(Status::unimplemented("etcdserver: MoveLeader is not supported"))
    }

    async fn downgrade(
        &self,
        _request: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented("etcdserver: Downgrade is not supported"))
    }
}

/// CRC-32 (IEEE), enough for a consistency fingerprint across members.
struct Crc32(u32);

impl Crc32 {
    fn new() -> Self {
        Crc32(!0)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u32::from(b);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
    }
}
