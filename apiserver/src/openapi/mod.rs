//! OpenAPI: `/openapi/v2` (Swagger 2.0 as gnostic protobuf or JSON) and `/openapi/v3` (an index
//! of per-group-version OpenAPI 3.0 JSON documents), generated from the descriptor table.
//!
//! The documents are built on first use and cached together with their ETags; the cache is keyed
//! by the table's generation, so installing or removing a row (a CRD) rebuilds them on the next
//! request. kubectl 1.27/1.28 need the v2 protobuf for `create -f`, `apply`, `edit`, `diff` and
//! `explain`; 1.29+ use v3.

pub mod gnostic;
pub mod paths;
pub mod schema;
pub mod v2;
pub mod v3;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Map, json};

use crate::descriptor::ResourceTable;
use crate::error::ApiError;

/// The protobuf media type kubectl asks for (with `@`, which must not be echoed back).
pub const PROTOBUF_V2_REQUEST: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The protobuf media type the server answers with.
pub const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One encoded document with its (unquoted) ETag.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The bytes.
    pub body: Bytes,
    /// Upper-case hex SHA-512 of the bytes, as upstream computes it.
    pub etag: String,
}

impl Encoded {
    fn new(body: Vec<u8>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA512, &body);
        let etag = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Encoded {
            body: body.into(),
            etag,
        }
    }
}

/// Every document, built from one state of the table.
#[derive(Debug)]
pub struct Documents {
    /// The table generation they were built from.
    pub generation: u64,
    /// `/openapi/v2` as JSON.
    pub v2_json: Encoded,
    /// `/openapi/v2` as gnostic protobuf.
    pub v2_protobuf: Encoded,
    /// `/openapi/v3`.
    pub v3_index: Encoded,
    /// `/openapi/v3/<gv>` by `gv` (`api/v1`, `apis/apps/v1`).
    pub v3: BTreeMap<String, Encoded>,
}

impl Documents {
    /// Builds every document from the table's current rows.
    pub fn build(table: &ResourceTable) -> Documents {
        let generation = table.generation();
        let started = Instant::now();
        let rows = table.all();
        let defs = v2::definitions(&rows);
        let paths = v2::all_paths(&rows, &defs);
        let graph = v2::RefGraph::new(&defs.defs);
        let v2_doc = v2::document(&rows, &defs, &graph, &paths);
        let v2_protobuf = Encoded::new(gnostic::document(&v2_doc).encode_to_vec());
        let v2_json = Encoded::new(serde_json::to_vec(&v2_doc).unwrap_or_default());
        let mut gvs: Vec<String> = rows
            .iter()
            .map(|r| {
                if r.group.is_empty() {
                    format!("api/{}", r.version)
                } else {
                    format!("apis/{}/{}", r.group, r.version)
                }
            })
            .collect();
        gvs.sort();
        gvs.dedup();
        let v3_schemas: Map<String, serde_json::Value> = defs
            .defs
            .iter()
            .map(|(n, s)| (n.clone(), v3::schema(s)))
            .collect();
        let mut v3 = BTreeMap::new();
        let mut index = Map::new();
        for gv in gvs {
            let doc = v3::document(&gv, &rows, &defs, &graph, &v3_schemas, &paths);
            let encoded = Encoded::new(serde_json::to_vec(&doc).unwrap_or_default());
            index.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", encoded.etag)}),
            );
            v3.insert(gv, encoded);
        }
        let v3_index = Encoded::new(serde_json::to_vec(&json!({ "paths": index })).unwrap_or_default());
        let docs = Documents {
            generation,
            v2_json,
            v2_protobuf,
            v3_index,
            v3,
        };
        tracing::info!(
            generation,
            elapsed_ms = started.elapsed().as_millis() as u64,
            v2_json_bytes = docs.v2_json.body.len(),
            v2_protobuf_bytes = docs.v2_protobuf.body.len(),
            v3_documents = docs.v3.len(),
            v3_bytes = docs.v3.values().map(|e| e.body.len()).sum::<usize>(),
            "built OpenAPI documents"
        );
        docs
    }
}

/// The OpenAPI documents of a table, built lazily and rebuilt when the table changes.
#[derive(Debug)]
pub struct OpenApi {
    table: Arc<ResourceTable>,
    cache: Mutex<Option<Arc<Documents>>>,
}

impl OpenApi {
    /// The service over `table`.
    pub fn new(table: Arc<ResourceTable>) -> Self {
        OpenApi {
            table,
            cache: Mutex::new(None),
        }
    }

    /// The documents for the table as it is now (built if the table changed since the last call).
    pub fn current(&self) -> Arc<Documents> {
        let mut cache = self.cache.lock();
        let generation = self.table.generation();
        if let Some(docs) = cache.as_ref().filter(|d| d.generation == generation) {
            return docs.clone();
        }
        let docs = Arc::new(Documents::build(&self.table));
        *cache = Some(docs.clone());
        docs
    }

    async fn documents(self: &Arc<Self>) -> Result<Arc<Documents>, ApiError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current())
            .await
            .map_err(ApiError::internal)
    }
}

/// The routes `/openapi/v2`, `/openapi/v3` and `/openapi/v3/{gv}` (usable in a router of any
/// state).
pub fn routes<S: Clone + Send + Sync + 'static>(table: Arc<ResourceTable>) -> Router<S> {
    let svc = Arc::new(OpenApi::new(table));
    let (v2, index, gv) = (svc.clone(), svc.clone(), svc);
    Router::new()
        .route(
            "/openapi/v2",
            get(move |headers: HeaderMap| async move { serve_v2(&v2, &headers).await }),
        )
        .route(
            "/openapi/v3",
            get(move |headers: HeaderMap| async move { serve_v3_index(&index, &headers).await }),
        )
        .route(
            "/openapi/v3/{*gv}",
            get(
                move |Path(path): Path<String>, uri: Uri, headers: HeaderMap| async move {
                    serve_v3(&gv, &path, &uri, &headers).await
                },
            ),
        )
}

/// What a document can be encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

/// Picks the first offer that an Accept clause (by quality, then order) matches; None → 406.
fn negotiate(headers: &HeaderMap, offers: &[(&str, Format)]) -> Option<Format> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or("*/*");
    let mut clauses: Vec<(f32, &str)> = accept
        .split(',')
        .map(|clause| {
            let mut parts = clause.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, media)
        })
        .filter(|(q, media)| *q > 0.0 && !media.is_empty())
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, media) in clauses {
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        for (offer, format) in offers {
            let (oty, osub) = offer.split_once('/').unwrap_or((offer, ""));
            if (ty == "*" || ty.eq_ignore_ascii_case(oty)) && (sub == "*" || sub.eq_ignore_ascii_case(osub)) {
                return Some(*format);
            }
        }
    }
    None
}

fn not_acceptable(offers: &[(&str, Format)]) -> Response {
    let names: Vec<&str> = offers.iter().map(|(o, _)| *o).collect();
    ApiError::not_acceptable(&names).into_response()
}

/// Answers with `doc` (or 304 when `If-None-Match` has its ETag).
fn send(
    doc: &Encoded,
    content_type: &str,
    headers: &HeaderMap,
    extra: &[(header::HeaderName, String)],
) -> Response {
    let etag = format!("\"{}\"", doc.etag);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = doc.body.clone().into_response();
        if let Ok(ct) = HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name.clone(), v);
        }
    }
    response
}

async fn serve_v2(svc: &Arc<OpenApi>, headers: &HeaderMap) -> Response {
    const OFFERS: [(&str, Format); 3] = [
        ("application/json", Format::Json),
        (PROTOBUF_V2_REQUEST, Format::Protobuf),
        (PROTOBUF_V2, Format::Protobuf),
    ];
    let Some(format) = negotiate(headers, &OFFERS) else {
        return not_acceptable(&OFFERS);
    };
    let docs = match svc.documents().await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    match format {
        Format::Json => send(&docs.v2_json, "application/json", headers, &[]),
        Format::Protobuf => send(&docs.v2_protobuf, PROTOBUF_V2, headers, &[]),
    }
}

const V3_OFFERS: [(&str, Format); 1] = [("application/json", Format::Json)];

async fn serve_v3_index(svc: &Arc<OpenApi>, headers: &HeaderMap) -> Response {
    if negotiate(headers, &V3_OFFERS).is_none() {
        return not_acceptable(&V3_OFFERS);
    }
    match svc.documents().await {
        Ok(docs) => send(&docs.v3_index, "application/json", headers, &[]),
        Err(e) => e.into_response(),
    }
}

async fn serve_v3(svc: &Arc<OpenApi>, gv: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    if negotiate(headers, &V3_OFFERS).is_none() {
        return not_acceptable(&V3_OFFERS);
    }
    let docs = match svc.documents().await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let gv = gv.trim_matches('/');
    let Some(doc) = docs.v3.get(gv) else {
        return ApiError::not_found_path().into_response();
    };
    let hash = uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "hash")
            .map(|(_, v)| v.into_owned())
    });
    match hash {
        // An outdated hash: send the client to the current document, as upstream does.
        Some(h) if h != doc.etag => {
            let location = format!("/openapi/v3/{gv}?hash={}", doc.etag);
            (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location)]).into_response()
        }
        Some(_) => send(
            doc,
            "application/json",
            headers,
            &[(header::CACHE_CONTROL, "public, immutable".into())],
        ),
        None => send(doc, "application/json", headers, &[]),
    }
}

#[cfg(test)]
mod tests;
