//! The `etcdserverpb.KV` service: Range, Put, DeleteRange, Txn and Compact.

use std::sync::Arc;

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService, PbPutRequest,
    PbPutResponse, PbRangeRequest, PbRangeResponse, PbRangeStreamResponse, PbTxnRequest, PbTxnResponse,
};
use futures::stream::BoxStream;
use prost::Message;
use storage::OpResponse;
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::convert::{self, kv_to_pb, range_to_pb};
use crate::error::{self, to_status};

/// Keys per message of a `RangeStream` answer.
const RANGE_STREAM_CHUNK: usize = 1000;

/// The KV service over a store.
pub(crate) struct KvService {
    pub(crate) shared: Arc<Shared>,
}

impl KvService {
    fn check_size(&self, msg: &impl Message) -> Result<(), Status> {
        if msg.encoded_len() > self.shared.options.max_request_bytes {
            return Err(error::too_large());
        }
        Ok(())
    }

    async fn do_range(&self, r: &PbRangeRequest) -> Result<PbRangeResponse, Status> {
        let (req, post) = convert::range_from_pb(r)?;
        let mut resp = self.shared.store.range(req).await.map_err(to_status)?;
        if let Some(post) = post {
            post.apply(&mut resp);
        }
        let header = self.shared.headers.at(resp.revision);
        Ok(range_to_pb(resp, header))
    }
}

#[tonic::async_trait]
impl PbKvService for KvService {
    async fn range(&self, request: Request<PbRangeRequest>) -> Result<Response<PbRangeResponse>, Status> {
        Ok(Response::new(self.do_range(request.get_ref()).await?))
    }

    type RangeStreamStream = BoxStream<'static, Result<PbRangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        request: Request<PbRangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let mut full = self.do_range(request.get_ref()).await?;
        let mut kvs = std::mem::take(&mut full.kvs);
        let mut chunks = Vec::new();
        while kvs.len() > RANGE_STREAM_CHUNK {
            let rest = kvs.split_off(RANGE_STREAM_CHUNK);
            chunks.push(PbRangeStreamResponse {
                range_response: Some(PbRangeResponse {
                    kvs,
                    ..Default::default()
                }),
            });
            kvs = rest;
        }
        chunks.push(PbRangeStreamResponse {
            range_response: Some(PbRangeResponse { kvs, ..full }),
        });
        Ok(Response::new(Box::pin(futures::stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let p = request.get_ref();
        let req = convert::put_from_pb(p)?;
        self.check_size(p)?;
        let resp = self.shared.store.put(req).await.map_err(to_status)?;
        let prev_kv = match resp.responses.into_iter().next() {
            Some(OpResponse::Put { prev_kv }) => prev_kv.map(kv_to_pb),
            _ => None,
        };
        Ok(Response::new(PbPutResponse {
            header: Some(self.shared.headers.at(resp.revision)),
            prev_kv,
        }))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let d = request.get_ref();
        let req = convert::delete_from_pb(d)?;
        self.check_size(d)?;
        let resp = self.shared.store.delete_range(req).await.map_err(to_status)?;
        let (deleted, prev_kvs) = match resp.responses.into_iter().next() {
            Some(OpResponse::DeleteRange { deleted, prev_kvs }) => (deleted, prev_kvs),
            _ => (0, Vec::new()),
        };
        Ok(Response::new(PbDeleteResponse {
            header: Some(self.shared.headers.at(resp.revision)),
            deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
            prev_kvs: prev_kvs.into_iter().map(kv_to_pb).collect(),
        }))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let t = request.get_ref();
        let (req, post) = convert::txn_from_pb(t)?;
        self.check_size(t)?;
        let resp = self.shared.store.txn(req).await.map_err(to_status)?;
        let header = self.shared.headers.at(resp.revision);
        Ok(Response::new(convert::txn_to_pb(resp, &post, &header)))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let rev = request.get_ref().revision;
        if rev <= 0 {
            return Err(Status::out_of_range(error::COMPACTED));
        }
        self.shared
            .store
            .compact(convert::revision(rev))
            .await
            .map_err(to_status)?;
        Ok(Response::new(PbCompactionResponse {
            header: Some(self.shared.headers.current().await),
        }))
    }
}
