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
use crate::selector::{FieldSelector, LabelSelector};
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
            field_validation: self.field_validation()?,
            field_manager: self.field_manager()?,
            force: self.query.flag("force")?,
            decode_errors: Vec::new(),
        })
    }

    /// The body of a create or update with the write's options, which carry the body's strict
    /// decoding errors.
    fn write_body(&self) -> ApiResult<(Value, WriteOptions)> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        let format = BodyFormat::from_content_type(content_type(&self.headers))?;
        let (body, decode_errors) = codec::decode_strict(format, &self.body)?;
        let opts = WriteOptions {
            decode_errors,
            ..self.write_options()?
        };
        Ok((body, opts))
    }

    /// `fieldValidation`; an unknown value is a 422 on the verb's options, as upstream.
    fn field_validation(&self) -> ApiResult<crate::query::FieldValidation> {
        self.query.field_validation().map_err(|_| {
            let value = self.query.get("fieldValidation").unwrap_or("");
            ApiError::invalid(
                &format!("{}Options.meta.k8s.io", self.verb_options_kind()),
                "meta.k8s.io",
                "",
                &[crate::error::FieldError {
                    reason: "FieldValueNotSupported",
                    field: "fieldValidation".into(),
                    message: format!(
                        "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                        Value::String(value.to_string())
                    ),
                }],
            )
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

    fn patch_input(&self) -> ApiResult<(PatchType, Value, Vec<String>)> {
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
        let (patch, strict) = patch::decode(kind, &self.body)?;
        Ok((kind, patch, strict))
    }

    /// A patch with the write's options. The strict decoding errors of an apply patch (keys
    /// set twice) are settled here, as upstream: a 400 under `Strict`, warnings under `Warn`;
    /// those of other patches are settled with the patched object's unknown fields.
    fn patch_write(&self) -> ApiResult<(PatchType, Value, WriteOptions, Vec<String>)> {
        let (kind, patch, strict) = self.patch_input()?;
        let mut opts = self.write_options()?;
        if kind != PatchType::Apply {
            opts.decode_errors = strict;
            return Ok((kind, patch, opts, Vec::new()));
        }
        let warnings = match opts.field_validation {
            crate::query::FieldValidation::Strict if !strict.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "error strict decoding patch: {}",
                    strict.join(", ")
                )));
            }
            crate::query::FieldValidation::Warn => crate::strict::warnings(&strict),
            _ => Vec::new(),
        };
        Ok((kind, patch, opts, warnings))
    }

    /// The answer for an object or list in the negotiated shape.
    fn render(&self, reply: Reply, output: Output) -> Response {
        let include = IncludeObject::parse(self.query.get("includeObject"));
        let value = match transform(&self.desc, reply.body, output, include) {
            Ok(value) => value,
            Err(e) => return e.into_response(),
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
        // Writes answer in the negotiated shape too (Table, partial metadata), as upstream; an
        // Accept header the server cannot satisfy gets JSON rather than refusing the write.
        // Virtual kinds that are written (reviews, bindings) have no Table; componentstatuses,
        // read-only, have upstream's.
        let accept = accept(&self.headers);
        let tableless = self
            .desc
            .virtual_kind
            .is_some_and(|k| k != crate::descriptor::VirtualKind::ComponentStatus);
        let output = match self.verb {
            _ if tableless => Output::negotiate_allowing(accept, false).unwrap_or(Output::Json),
            Verb::Get | Verb::List | Verb::Watch => Output::negotiate(accept)?,
            _ => Output::negotiate(accept).unwrap_or(Output::Json),
        };
        if self.desc.virtual_kind == Some(crate::descriptor::VirtualKind::ComponentStatus) {
            return self.component_statuses(output).await;
        }
        let reg = &self.api.registry;
        let (desc, ns, name) = (&self.desc, self.ns.as_str(), self.info.name.as_str());
        if let Some(kind) = desc.virtual_kind
            && kind != crate::descriptor::VirtualKind::Binding
        {
            let body = self.body_value()?;
            let validation = self.query.field_validation()?;
            let reply =
                crate::auth::review::create(&self.api, desc, kind, ns, body, &self.user, validation).await?;
            return Ok(self.render(reply, output));
        }
        if let Some(kind) = desc.virtual_kind {
            let body = self.body_value()?;
            let reply = reg
                .create_virtual(desc, kind, ns, body, &self.write_options()?)
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
                let (mut body, opts) = self.write_body()?;
                if crate::registry::parts::is_csr(desc) {
                    crate::registry::parts::stamp_requestor(&mut body, &self.user);
                }
                reg.create(desc, ns, body, &opts).await?
            }
            Verb::Update => {
                let (body, opts) = self.write_body()?;
                reg.update(desc, ns, name, body, &opts, None).await?
            }
            Verb::Patch => {
                let (kind, p, opts, duplicates) = self.patch_write()?;
                let mut reply = reg.patch(desc, ns, name, kind, &p, &opts, None).await?;
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

    /// `componentstatuses`: probed, never stored; selectors filter as upstream's predicate.
    async fn component_statuses(&self, output: Output) -> ApiResult<Response> {
        let body = if self.verb == Verb::Get {
            crate::componentstatus::get(&self.api, &self.info.name).await?
        } else {
            let opts = self.list_options()?;
            let items: Vec<Value> = crate::componentstatus::list(&self.api)
                .await
                .into_iter()
                .filter(|o| opts.labels.matches_object(o) && opts.fields.matches_object(o))
                .collect();
            serde_json::json!({
                "kind": "ComponentStatusList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            })
        };
        Ok(self.render(Reply::ok(body), output))
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
        // A status subresource answers the object itself, so it has Tables; the others (scale,
        // eviction, ...) answer another kind and have none. Partial metadata goes for all.
        let tables = sub.kind == SubresourceKind::Status;
        let output = Output::negotiate_allowing(accept(&self.headers), tables).unwrap_or(Output::Json);
        let reg = &self.api.registry;
        let (desc, ns, name) = (&self.desc, self.ns.as_str(), self.info.name.as_str());
        self.check_signer(&sub).await?;
        // Subresources that read and write (part of) the object itself.
        let object_view = matches!(
            sub.kind,
            SubresourceKind::Status | SubresourceKind::EphemeralContainers | SubresourceKind::Approval
        );
        let reply = match (sub.kind, self.verb) {
            (_, Verb::Get) if object_view => Reply::ok(reg.get(desc, ns, name).await?),
            (_, Verb::Update) if object_view || sub.kind == SubresourceKind::Finalize => {
                let (body, opts) = self.write_body()?;
                reg.update(desc, ns, name, body, &opts, Some(sub.kind)).await?
            }
            (_, Verb::Patch) if object_view => {
                let (kind, p, opts, duplicates) = self.patch_write()?;
                let mut reply = reg.patch(desc, ns, name, kind, &p, &opts, Some(sub.kind)).await?;
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
                let (kind, p, _) = self.patch_input()?;
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

    /// Upstream's CertificateApproval and CertificateSigning admission: a write of a request's
    /// approval takes `approve` on its signer, a status write that sets its certificate `sign`
    /// (found by a dry run of the same write). The signer cannot change through either.
    async fn check_signer(&self, sub: &crate::descriptor::SubresourceDescriptor) -> ApiResult<()> {
        let is_write = matches!(self.verb, Verb::Update | Verb::Patch);
        let csr = crate::registry::parts::is_csr(&self.desc);
        let verb = match sub.kind {
            SubresourceKind::Approval if is_write => "approve",
            SubresourceKind::Status if is_write && csr => "sign",
            _ => return Ok(()),
        };
        let reg = &self.api.registry;
        let (desc, ns, name) = (&self.desc, self.ns.as_str(), self.info.name.as_str());
        let stored = reg.get(desc, ns, name).await?;
        if verb == "sign" {
            let mut dry = self.write_options()?;
            dry.dry_run = true;
            let result = match self.verb {
                Verb::Update => {
                    reg.update(desc, ns, name, self.body_value()?, &dry, Some(sub.kind))
                        .await?
                }
                _ => {
                    let (kind, p, _) = self.patch_input()?;
                    reg.patch(desc, ns, name, kind, &p, &dry, Some(sub.kind)).await?
                }
            };
            if result.body.pointer("/status/certificate") == stored.pointer("/status/certificate") {
                return Ok(());
            }
        }
        let signer = stored
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or("");
        crate::auth::signers::check(&self.api.auth, &self.user, verb, name, signer)
    }

    async fn watch(&self, output: Output) -> ApiResult<Response> {
        let mut fields = FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""), &self.desc)?;
        if !self.info.name.is_empty() {
            fields.require_name(&self.info.name);
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
        let plain_objects = !matches!(output, Output::Table | Output::Metadata(_));
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
            // Every event's object is transformed, BOOKMARKs included (clients of a metadata
            // watch decode only `meta.k8s.io` kinds); an ERROR's Status stays as it is.
            let mut ev = ev.into_value(&desc);
            let obj = ev["object"].take();
            ev["object"] = match output {
                _ if is_status(&obj) => obj,
                Output::Table => table::to_table(&desc, &obj, include),
                // A watch is a stream of single objects whichever of the two shapes was named.
                Output::Metadata(m) => table::partial_metadata(&obj, m.version.api_version()),
                _ => obj,
            };
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

fn is_status(value: &Value) -> bool {
    value.get("kind").and_then(Value::as_str) == Some("Status")
}

/// The answer `value` in the negotiated shape, as upstream transforms responses: a Status as it
/// is; a Table of an object or list; `PartialObjectMetadata` of an object or
/// `PartialObjectMetadataList` of a list, and a 406 when the shape asked for is the other one.
fn transform(
    desc: &ResourceDescriptor,
    value: Value,
    output: Output,
    include: IncludeObject,
) -> ApiResult<Value> {
    if is_status(&value) {
        return Ok(value);
    }
    let is_list = value.get("items").is_some_and(Value::is_array);
    match output {
        Output::Table => Ok(table::to_table(desc, &value, include)),
        Output::Metadata(m) if m.list == is_list => Ok(if is_list {
            table::partial_metadata_list(&value, m.version.api_version())
        } else {
            table::partial_metadata(&value, m.version.api_version())
        }),
        Output::Metadata(m) => {
            let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let go_type = format!(
                "*{}.{}",
                api_version.rsplit('/').next().unwrap_or(""),
                value.get("kind").and_then(Value::as_str).unwrap_or("")
            );
            let message = if m.list {
                format!(
                    "you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
                )
            } else {
                format!("you requested PartialObjectMetadata, but the requested object is a list ({go_type})")
            };
            Err(ApiError::new(406, "NotAcceptable", message))
        }
        _ => Ok(value),
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
