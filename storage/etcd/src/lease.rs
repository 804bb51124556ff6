//! The `etcdserverpb.Lease` service: Grant, Revoke, KeepAlive (a stream), TimeToLive, Leases.

use std::sync::Arc;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse, PbLeaseService,
    PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use storage::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Shared;
use crate::error::{self, to_status};

/// Largest TTL etcd grants, in seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The Lease service over a store.
pub(crate) struct LeaseService {
    pub(crate) shared: Arc<Shared>,
}

#[tonic::async_trait]
impl PbLeaseService for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let r = request.get_ref();
        if r.ttl > MAX_LEASE_TTL {
            return Err(Status::out_of_range(error::LEASE_TTL_TOO_LARGE));
        }
        if r.id < 0 {
            return Err(Status::invalid_argument("etcdserver: lease ID must be positive"));
        }
        let info = self
            .shared
            .store
            .lease_grant(r.id, r.ttl)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: Some(self.shared.headers.current().await),
            id: info.id,
            ttl: info.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let revision = self
            .shared
            .store
            .lease_revoke(request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: Some(self.shared.headers.at(revision)),
        }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<PbLeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let req = tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    msg = inbound.message() => match msg {
                        Ok(Some(req)) => req,
                        Ok(None) | Err(_) => return,
                    },
                };
                // An unknown or expired lease answers TTL 0, as etcd does.
                let ttl = match shared.store.lease_keep_alive(req.id).await {
                    Ok(ttl) => ttl,
                    Err(Error::LeaseNotFound(_)) => 0,
                    Err(e) => {
                        let _ = tx.send(Err(to_status(e))).await;
                        return;
                    }
                };
                let resp = PbLeaseKeepAliveResponse {
                    header: Some(shared.headers.cached()),
                    id: req.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let r = request.get_ref();
        let header = Some(self.shared.headers.current().await);
        // An unknown lease is not an error here: etcd answers TTL -1.
        let resp = match self.shared.store.lease_time_to_live(r.id, r.keys).await {
            Ok(info) if info.ttl >= 0 => PbLeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: info.ttl,
                granted_ttl: info.granted_ttl,
                keys: info.keys.into_iter().map(|k| k.to_vec()).collect(),
            },
            Ok(_) | Err(Error::LeaseNotFound(_)) => PbLeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(to_status(e)),
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        let mut ids = self.shared.store.lease_list().await.map_err(to_status)?;
        ids.sort_unstable();
        Ok(Response::new(PbLeaseLeasesResponse {
            header: Some(self.shared.headers.current().await),
            leases: ids.into_iter().map(|id| PbLeaseStatus { id }).collect(),
        }))
    }
}
