//! The `etcdserverpb.Cluster` service: MemberList, MemberAdd, MemberRemove, MemberPromote.

use std::sync::Arc;

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::error::{self, to_status};

/// The Cluster service over a store.
pub(crate) struct ClusterService {
    pub(crate) shared: Arc<Shared>,
}

/// A storage member as the protobuf one.
pub(crate) fn member_to_pb(m: storage::Member) -> PbMember {
    PbMember {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

impl ClusterService {
    async fn members(&self) -> Result<Vec<PbMember>, Status> {
        let mut members = self.shared.store.member_list().await.map_err(to_status)?;
        members.sort_by_key(|m| m.id);
        Ok(members.into_iter().map(member_to_pb).collect())
    }
}

/// Checks peer URLs the way etcd does: each must parse as `scheme://host:port`.
fn check_urls(urls: &[String]) -> Result<(), Status> {
    let valid = |u: &str| {
        let Some((scheme, rest)) = u.split_once("://") else {
            return false;
        };
        let hostport = rest.trim_end_matches('/');
        matches!(scheme, "http" | "https" | "unix" | "unixs")
            && !hostport.is_empty()
            && !hostport.contains('/')
            && hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    };
    if urls.is_empty() || !urls.iter().all(|u| valid(u)) {
        return Err(Status::invalid_argument(error::MEMBER_BAD_URLS));
    }
    Ok(())
}

#[tonic::async_trait]
impl PbClusterService for ClusterService {
    async fn member_add(
        &self,
        request: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        let r = request.into_inner();
        check_urls(&r.peer_ur_ls)?;
        let member = self
            .shared
            .store
            .member_add(r.peer_ur_ls, r.is_learner)
            .await
            .map_err(to_status)?;
        let members = self.members().await?;
        Ok(Response::new(PbMemberAddResponse {
            header: Some(self.shared.headers.current().await),
            member: Some(member_to_pb(member)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        self.shared
            .store
            .member_remove(request.get_ref().id)
            .await
            .map_err(to_status)?;
        let members = self.members().await?;
        Ok(Response::new(PbMemberRemoveResponse {
            header: Some(self.shared.headers.current().await),
            members,
        }))
    }

    async fn member_update(
        &self,
        _request: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: updating a member's peer URLs is not supported",
        ))
    }

    async fn member_list(
        &self,
        _request: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        let members = self.members().await?;
        Ok(Response::new(PbMemberListResponse {
            header: Some(self.shared.headers.current().await),
            members,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        self.shared
            .store
            .member_promote(request.get_ref().id)
            .await
            .map_err(to_status)?;
        let members = self.members().await?;
        Ok(Response::new(PbMemberPromoteResponse {
            header: Some(self.shared.headers.current().await),
            members,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked() {
        assert!(check_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        assert!(check_urls(&["https://node-1:2380/".into()]).is_ok());
        for bad in [
            "127.0.0.1:2380",
            "http://",
            "http://host",
            "ftp://h:1",
            "http://h:1/x",
        ] {
            assert_eq!(
                check_urls(&[bad.into()]).unwrap_err().message(),
                error::MEMBER_BAD_URLS,
                "{bad}"
            );
        }
        assert!(check_urls(&[]).is_err());
    }
}
