//! The HTTP side: the axum router (fixed discovery/health routes plus two wildcard resource routes),
//! authentication of the request, and the one resource handler that turns a [`RequestInfo`] into
//! a registry call.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::ApiServer;
use crate::codec::{self, BodyFormat, Output};
use crate::descriptor::{ResourceDescriptor, SubresourceKind};
use crate::discovery::{self, Aggregated};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, PatchType};
use crate::query::Query;
use crate::registry::subresource::{ScaleChange, UserInfo};
use crate::registry::{DeleteOptions, ListOptions, Reply, WatchEvent, WatchOptions, WriteOptions};
use crate::request_info::{RequestInfo, Verb};
use crate::selector::{FieldRequirement, FieldSelector, LabelSelector};
use crate::table::{self, IncludeObject};

/// The identity of a request, put in the request extensions by the TLS accept loop.
#[derive(Clone, Debug, Default)]
pub struct Authenticated(pub Option<UserInfo>);

/// Builds the router of a server.
pub fn router(api: Arc<ApiServer>) -> Router {
    Router::new()
        // Upstream serves the discovery documents and `/version` through go-restful, which ignores
        // a trailing slash; the health, metrics and OpenAPI paths are exact (404 with a slash).
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(crate::health::healthz))
        .route("/livez", get(crate::health::livez))
        .route("/readyz", get(crate::health::readyz))
        .route("/healthz/{check}", get(crate::health::single))
        .route("/livez/{check}", get(crate::health::single))
        .route("/readyz/{check}", get(crate::health::single))
        .route("/metrics", get(crate::metrics::serve))
        .route("/api", get(core_api))
        .route("/api/", get(core_api))
        .route("/api/{version}", get(core_resources))
        .route("/api/{version}/", get(core_resources))
        .route("/apis", get(apis))
        .route("/apis/", get(apis))
        .route("/apis/{group}", get(group_doc))
        .route("/apis/{group}/", get(group_doc))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/apis/{group}/{version}/", get(group_resources))
        .route("/api/{version}/{*rest}", any(resource))
        .route("/apis/{group}/{version}/{*rest}", any(resource))
        .merge(crate::openapi::routes(api.table.clone()))
        .merge(crate::auth::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(api.clone(), crate::auth::filter))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(crate::metrics::record))
        .with_state(api)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError::internal("the server panicked while handling the request").into_response()
}

fn json_response(code: StatusCode, content_type: &str, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, content_type.to_string())], body).into_response()
}

async fn version() -> Response {
    json_response(StatusCode::OK, "application/json", &discovery::version())
}

async fn not_found() -> Response {
    ApiError::not_found_path().into_response()
}

fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

async fn core_api(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    if let Some(agg) = Aggregated::negotiate(accept(&headers)) {
        return json_response(
            StatusCode::OK,
            &agg.content_type(),
            &discovery::aggregated(&api.table, true, agg),
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(&api.config.advertise_address)
        .to_string();
    json_response(
        StatusCode::OK,
        "application/json",
        &discovery::api_versions(&host),
    )
}

async fn apis(State(api): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    if let Some(agg) = Aggregated::negotiate(accept(&headers)) {
        return json_response(
            StatusCode::OK,
            &agg.content_type(),
            &discovery::aggregated(&api.table, false, agg),
        );
    }
    json_response(
        StatusCode::OK,
        "application/json",
        &discovery::api_group_list(&api.table),
    )
}

async fn core_resources(
    State(api): State<Arc<ApiServer>>,
    axum::extract::Path(version): axum::extract::Path<String>,
) -> Response {
    match discovery::api_resource_list(&api.table, "", &version) {
        Some(doc) => json_response(StatusCode::OK, "application/json", &doc),
        None => not_found().await,
    }
}

async fn group_doc(
    State(api): State<Arc<ApiServer>>,
    axum::extract::Path(group): axum::extract::Path<String>,
) -> Response {
    match discovery::api_group_doc(&api.table, &group) {
        Some(doc) => json_response(StatusCode::OK, "application/json", &doc),
        None => not_found().await,
    }
}

async fn group_resources(
    State(api): State<Arc<ApiServer>>,
    axum::extract::Path((group, version)): axum::extract::Path<(String, String)>,
) -> Response {
    match discovery::api_resource_list(&api.table, &group, &version) {
        Some(doc) => json_response(StatusCode::OK, "application/json", &doc),
        None => not_found().await,
    }
}

/// Everything a resource request needs, decoded once.
struct Call {
    api: Arc<ApiServer>,
    info: RequestInfo,
    verb: Verb,
    desc: Arc<ResourceDescriptor>,
    ns: String,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    user: UserInfo,
}

async fn resource(State(api): State<Arc<ApiServer>>, req: Request) -> Response {
    match handle(api, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(api: Arc<ApiServer>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let watch = query.watch()?;
    let info =
        RequestInfo::parse(&parts.method, parts.uri.path(), watch).ok_or_else(ApiError::not_found_path)?;
    let verb = info.verb()?;
    let desc = api
        .table
        .lookup(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::not_found_path)?;
    let ns = if desc.namespaced {
        if info.namespace.is_empty() && !matches!(verb, Verb::List | Verb::Watch) {
            return Err(ApiError::not_found_path());
        }
        info.namespace.clone()
    } else {
        if !info.namespace.is_empty() && info.resource != "namespaces" {
            return Err(ApiError::not_found_path());
        }
        String::new()
    };
    let body = axum::body::to_bytes(body, codec::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::request_entity_too_large(&format!("limit is {} bytes", codec::MAX_BODY_BYTES))
        })?;
    let user = parts.extensions.get::<UserInfo>().cloned().unwrap_or_default();
    tracing::debug!(verb = verb.as_str(), resource = %desc.resource, namespace = %ns, name = %info.name, "request");
    let call = Call {
        api,
        info,
        verb,
        desc,
        ns,
        query,
        headers: parts.headers,
        body,
        user,
    };
    if call.info.subresource.is_empty() {
        call.main().await
    } else {
        call.subresource().await
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

impl Call {
    fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.query.dry_run()?,
            field_validation: self.query.field_validation()?,
            field_manager: self.field_manager()?,
            force: self.query.flag("force")?,
        })
    }

    /// `fieldManager`, or the user agent's product name (the part before `/`), as upstream.
    fn field_manager(&self) -> ApiResult<String> {
        let manager = match self.query.non_empty("fieldManager") {
            Some(m) => m.to_string(),
            None => {
                let agent = self
                    .headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let product = agent.split('/').next().unwrap_or("");
                product.chars().take(128).collect()
            }
        };
        if manager.len() > 128 {
            return Err(ApiError::invalid(
                &format!("{}Options.meta.k8s.io", self.verb_options_kind()),
                "meta.k8s.io",
                "",
                &[crate::error::FieldError {
                    reason: "FieldValueTooLong",
                    field: "fieldManager".into(),
                    message: "Too long: may not be more than 128 bytes".into(),
                }],
            ));
        }
        Ok(manager)
    }

    fn verb_options_kind(&self) -> &'static str {
        match self.verb {
            Verb::Create => "Create",
            Verb::Update => "Update",
            _ => "Patch",
        }
    }

    fn body_value(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        let format = BodyFormat::from_content_type(content_type(&self.headers))?;
        codec::decode(format, &self.body)
    }

    fn check_verb(&self) -> ApiResult<()> {
        if self.desc.verbs.has(self.verb.as_str()) {
            Ok(())
        } else {
            Err(ApiError::method_not_supported(
                &self.desc.group_resource(),
                self.verb.as_str(),
            ))
        }
    }

    fn list_options(&self) -> ApiResult<ListOptions> {
        Ok(ListOptions {
            labels: LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""), &self.desc)?,
            limit: self.query.limit()?,
            continue_token: self.query.non_empty("continue").map(str::to_string),
            resource_version: self.query.resource_version()?,
            rv_match: Some(self.query.rv_match()?),
        })
    }

    fn delete_options(&self) -> ApiResult<DeleteOptions> {
        let mut opts = DeleteOptions::default();
        if !self.body.is_empty() {
            let body = codec::decode(
                BodyFormat::from_content_type(content_type(&self.headers))?,
                &self.body,
            )?;
            opts.grace_period_seconds = body.get("gracePeriodSeconds").and_then(Value::as_i64);
            opts.propagation_policy = body
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
            if opts.propagation_policy.is_none() && body.get("orphanDependents") == Some(&Value::Bool(true)) {
                opts.propagation_policy = Some("Orphan".into());
            }
            opts.precondition_uid = body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            opts.precondition_rv = body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(dry) = body.get("dryRun").and_then(Value::as_array) {
                if dry.iter().any(|v| v != "All") {
                    return Err(ApiError::bad_request(
                        "dryRun: Unsupported value: supported values: \"All\"",
                    ));
                }
                opts.dry_run = !dry.is_empty();
            }
        }
        if let Some(g) = self.query.int("gracePeriodSeconds")? {
            opts.grace_period_seconds = Some(g);
        }
        if let Some(p) = self.query.non_empty("propagationPolicy") {
            opts.propagation_policy = Some(p.to_string());
        }
        if let Some(p) = &opts.propagation_policy
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        opts.dry_run |= self.query.dry_run()?;
        Ok(opts)
    }

    fn patch_input(&self) -> ApiResult<(PatchType, Value)> {
        let kind = PatchType::from_content_type(content_type(&self.headers))?;
        let force = self.query.flag("force")?;
        if force && kind != PatchType::Apply {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "meta.k8s.io",
                "",
                &[crate::error::FieldError::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if kind == PatchType::Apply && self.query.non_empty("fieldManager").is_none() {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "meta.k8s.io",
                "",
                &[crate::error::FieldError::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        Ok((kind, patch::decode(kind, &self.body)?))
    }

    /// Duplicate fields of an apply body per `fieldValidation`: an error when `Strict`,
    /// warnings when `Warn`.
    fn duplicate_field_warnings(&self, kind: PatchType) -> ApiResult<Vec<String>> {
        use crate::query::FieldValidation;
        let validation = self.query.field_validation()?;
        if validation == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let found: Vec<String> = patch::duplicate_fields(kind, &self.body)
            .into_iter()
            .map(|f| format!("duplicate field \"{f}\""))
            .collect();
        match validation {
            FieldValidation::Strict if !found.is_empty() => Err(ApiError::bad_request(format!(
                "error strict decoding YAML: {}",
                found.join(", ")
            ))),
            _ => Ok(found),
        }
    }

    /// The answer for an object or list in the negotiated shape.
    fn render(&self, reply: Reply, output: Output) -> Response {
        let is_status = reply.body.get("kind").and_then(Value::as_str) == Some("Status");
        let value = match output {
            Output::Table if !is_status => table::to_table(
                &self.desc,
                &reply.body,
                IncludeObject::parse(self.query.get("includeObject")),
            ),
            Output::Metadata if !is_status && reply.body.get("items").is_some() => {
                table::partial_metadata_list(&reply.body)
            }
            Output::Metadata if !is_status => table::partial_metadata(&reply.body),
            _ => reply.body,
        };
        let (ct, bytes) = match codec::encode(output, &value) {
            Ok(encoded) => encoded,
            Err(e) => return e.into_response(),
        };
        let mut resp = Response::new(Body::from(bytes));
        *resp.status_mut() = StatusCode::from_u16(reply.code).unwrap_or(StatusCode::OK);
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        for w in reply.warnings {
            let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }

    async fn main(self) -> ApiResult<Response> {
        self.check_verb()?;
        let output = match self.verb {
            Verb::Get | Verb::List | Verb::Watch => Output::negotiate(accept(&self.headers))?,
            // Writes answer the object; Table is only for reads.
            _ => match Output::negotiate(accept(&self.headers)) {
                Ok(o @ (Output::Yaml | Output::Protobuf { .. })) => o,
                _ => Output::Json,
            },
        };
        let reg = &self.api.registry;
        let (desc, ns, name) = (&self.desc, self.ns.as_str(), self.info.name.as_str());
        if let Some(kind) = desc.virtual_kind
            && kind != crate::descriptor::VirtualKind::Binding
        {
            let body = self.body_value()?;
            let reply = crate::auth::review::create(&self.api, desc, kind, ns, body, &self.user).await?;
            return Ok(self.render(reply, output));
        }
        if let Some(kind) = desc.virtual_kind {
            let body = self.body_value()?;
            let reply = reg
                .create_virtual(desc, kind, ns, body, &self.user, self.query.dry_run()?)
                .await?;
            return Ok(self.render(reply, output));
        }
        let reply = match self.verb {
            Verb::Get => Reply::ok(reg.get_at(desc, ns, name, self.query.resource_version()?).await?),
            Verb::List => Reply::ok(reg.list(desc, ns, &self.list_options()?).await?),
            Verb::Watch => return self.watch(output).await,
            Verb::Create => {
                if !name.is_empty() {
                    return Err(ApiError::method_not_supported(&desc.group_resource(), "create"));
                }
                reg.create(desc, ns, self.body_value()?, &self.write_options()?)
                    .await?
            }
            Verb::Update => {
                reg.update(desc, ns, name, self.body_value()?, &self.write_options()?, None)
                    .await?
            }
            Verb::Patch => {
                let (kind, p) = self.patch_input()?;
                let duplicates = self.duplicate_field_warnings(kind)?;
                let mut reply = reg
                    .patch(desc, ns, name, kind, &p, &self.write_options()?, None)
                    .await?;
                reply.warnings.extend(duplicates);
                reply
            }
            Verb::Delete => reg.delete(desc, ns, name, &self.delete_options()?).await?,
            Verb::DeleteCollection => Reply::ok(
                reg.delete_collection(desc, ns, &self.list_options()?, &self.delete_options()?)
                    .await?,
            ),
        };
        Ok(self.render(reply, output))
    }

    async fn subresource(self) -> ApiResult<Response> {
        let sub = self
            .desc
            .subresource_named(&self.info.subresource)
            .ok_or_else(ApiError::not_found_path)?
            .clone();
        if !sub.verbs.iter().any(|v| v == self.verb.as_str()) {
            return Err(ApiError::method_not_supported(
                &crate::error::GroupResource::new(
                    &self.desc.group,
                    format!("{}/{}", self.desc.resource, sub.name),
                ),
                self.verb.as_str(),
            ));
        }
        let output = match Output::negotiate(accept(&self.headers)) {
            Ok(o @ (Output::Yaml | Output::Protobuf { .. })) => o,
            _ => Output::Json,
        };
        let reg = &self.api.registry;
        let (desc, ns, name) = (&self.desc, self.ns.as_str(), self.info.name.as_str());
        let reply = match (sub.kind, self.verb) {
            (SubresourceKind::Status, Verb::Get) => Reply::ok(reg.get(desc, ns, name).await?),
            (SubresourceKind::Status | SubresourceKind::Finalize, Verb::Update) => {
                reg.update(
                    desc,
                    ns,
                    name,
                    self.body_value()?,
                    &self.write_options()?,
                    Some(sub.kind),
                )
                .await?
            }
            (SubresourceKind::Status, Verb::Patch) => {
                let (kind, p) = self.patch_input()?;
                let duplicates = self.duplicate_field_warnings(kind)?;
                let mut reply = reg
                    .patch(desc, ns, name, kind, &p, &self.write_options()?, Some(sub.kind))
                    .await?;
                reply.warnings.extend(duplicates);
                reply
            }
            (SubresourceKind::Scale, Verb::Get) => Reply::ok(reg.get_scale(desc, ns, name).await?),
            (SubresourceKind::Scale, Verb::Update) => {
                let body = self.body_value()?;
                Reply::ok(
                    reg.update_scale(
                        desc,
                        ns,
                        name,
                        ScaleChange::Replace(&body),
                        &self.write_options()?,
                    )
                    .await?,
                )
            }
            (SubresourceKind::Scale, Verb::Patch) => {
                let (kind, p) = self.patch_input()?;
                Reply::ok(
                    reg.update_scale(
                        desc,
                        ns,
                        name,
                        ScaleChange::Patch(kind, &p),
                        &self.write_options()?,
                    )
                    .await?,
                )
            }
            (SubresourceKind::Binding, Verb::Create) => {
                reg.bind(ns, name, &self.body_value()?, self.query.dry_run()?)
                    .await?
            }
            (SubresourceKind::Eviction, Verb::Create) => {
                reg.evict(desc, ns, name, &self.body_value()?).await?
            }
            (SubresourceKind::Token, Verb::Create) => Reply {
                code: 201,
                body: crate::auth::serviceaccount::token_request(&self.api, ns, name, &self.body_value()?)
                    .await?,
                warnings: Vec::new(),
            },
            _ => {
                return Err(ApiError::method_not_supported(
                    &desc.group_resource(),
                    self.verb.as_str(),
                ));
            }
        };
        Ok(self.render(reply, output))
    }

    async fn watch(&self, output: Output) -> ApiResult<Response> {
        let mut fields = FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""), &self.desc)?;
        if !self.info.name.is_empty() {
            fields.0.push(FieldRequirement {
                field: "metadata.name".into(),
                value: self.info.name.clone(),
                negate: false,
                source: crate::field_set::FieldValue::Text("metadata.name".into()),
            });
        }
        let send_initial_events = self.query.flag("sendInitialEvents")?;
        if send_initial_events && self.query.rv_match()? != crate::query::RvMatch::NotOlderThan {
            return Err(ApiError::bad_request(
                "sendInitialEvents: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        let opts = WatchOptions {
            labels: LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))?,
            fields,
            resource_version: self.query.resource_version()?,
            allow_bookmarks: self.query.flag("allowWatchBookmarks")?,
            timeout: self.query.timeout()?,
            send_initial_events,
        };
        let format = codec::WatchFormat::for_output(output, &self.desc.api_version(), &self.desc.kind)?;
        let stream = self
            .api
            .registry
            .watch_events(self.desc.clone(), &self.ns, opts)
            .await?;
        let desc = self.desc.clone();
        let include = IncludeObject::parse(self.query.get("includeObject"));
        let plain_objects = !matches!(output, Output::Table | Output::Metadata);
        let api_version = desc.api_version();
        let lines = stream.map(move |ev| {
            // A cache change sent as the full object: encoded once for every such watcher.
            if plain_objects && let WatchEvent::Shared { change, event_type } = &ev {
                let event_type: &'static str = event_type;
                let key = crate::cache::FrameKey {
                    event_type,
                    content_type: format.content_type(),
                    api_version: api_version.as_str().into(),
                    kind: desc.kind.as_str().into(),
                };
                let frame = change.encoded(&key, || {
                    let ev = WatchEvent::Shared {
                        change: change.clone(),
                        event_type,
                    };
                    format.frame(&ev.into_value(&desc))
                });
                return frame;
            }
            let mut ev = ev.into_value(&desc);
            let is_object_event = matches!(ev["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED"));
            if is_object_event {
                let obj = ev["object"].take();
                ev["object"] = match output {
                    Output::Table => table::to_table(&desc, &obj, include),
                    Output::Metadata => table::partial_metadata(&obj),
                    _ => obj,
                };
            }
            Bytes::from(format.frame(&ev))
        });
        // Events already waiting go out as one write (one TLS record, one syscall); a lone event
        // is sent at once.
        let writes = lines
            .ready_chunks(64)
            .map(|frames| Ok::<_, Infallible>(concat_frames(frames)));
        let mut resp = Response::new(Body::from_stream(writes));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}

/// One buffer holding `frames` in order (no copy for a single frame).
fn concat_frames(mut frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut out = bytes::BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
    for f in &frames {
        out.extend_from_slice(f);
    }
    out.freeze()
}
