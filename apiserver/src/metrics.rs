//! Prometheus metrics, served as text on `/metrics`: requests (counted and timed by one axum
//! middleware around the whole router), in-flight requests, watchers and watch events, and the
//! objects each watch cache holds.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use crate::ApiServer;
use crate::request_info::{RequestInfo, Verb};

/// Every metric of the process.
struct Metrics {
    registry: prometheus::Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    inflight: IntGaugeVec,
    watchers: IntGauge,
    events_sent: IntCounter,
    events_dispatched: IntCounter,
    slow_watchers: IntCounter,
    storage_objects: IntGaugeVec,
}

const REQUEST_LABELS: [&str; 5] = ["verb", "group", "version", "resource", "subresource"];

fn build() -> prometheus::Result<Metrics> {
    let registry = prometheus::Registry::new();
    let mut labels = REQUEST_LABELS.to_vec();
    labels.push("code");
    let requests = IntCounterVec::new(
        Opts::new(
            "apiserver_request_total",
            "Requests by verb, group, version, resource, subresource and HTTP code.",
        ),
        &labels,
    )?;
    let durations = HistogramVec::new(
        HistogramOpts::new(
            "apiserver_request_duration_seconds",
            "Time until the response headers, by verb and resource.",
        )
        .buckets(vec![
            0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0,
            15.0, 20.0, 30.0, 45.0, 60.0,
        ]),
        &REQUEST_LABELS,
    )?;
    let inflight = IntGaugeVec::new(
        Opts::new(
            "apiserver_current_inflight_requests",
            "Requests being handled, by kind (readOnly or mutating).",
        ),
        &["request_kind"],
    )?;
    let watchers = IntGauge::new("apiserver_registered_watchers", "Open watch requests.")?;
    let events_sent = IntCounter::new("apiserver_watch_events_total", "Watch events sent to clients.")?;
    let events_dispatched = IntCounter::new(
        "apiserver_watch_cache_events_dispatched_total",
        "Storage events the watch caches applied and fanned out.",
    )?;
    let slow_watchers = IntCounter::new(
        "apiserver_terminated_watchers_total",
        "Watchers closed because they did not keep up with the watch cache.",
    )?;
    let storage_objects = IntGaugeVec::new(
        Opts::new(
            "apiserver_storage_objects",
            "Objects held by the watch cache of each storage prefix.",
        ),
        &["resource"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(durations.clone()))?;
    registry.register(Box::new(inflight.clone()))?;
    registry.register(Box::new(watchers.clone()))?;
    registry.register(Box::new(events_sent.clone()))?;
    registry.register(Box::new(events_dispatched.clone()))?;
    registry.register(Box::new(slow_watchers.clone()))?;
    registry.register(Box::new(storage_objects.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        durations,
        inflight,
        watchers,
        events_sent,
        events_dispatched,
        slow_watchers,
        storage_objects,
    })
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("metric definitions are valid"));

/// One more (or fewer) open watch.
pub fn watcher_registered(delta: i64) {
    METRICS.watchers.add(delta);
}

/// One watch event sent to a client.
pub fn watch_event_sent() {
    METRICS.events_sent.inc();
}

/// One storage event applied by a watch cache.
pub fn watch_events_dispatched() {
    METRICS.events_dispatched.inc();
}

/// A watcher closed for being too slow.
pub fn watchers_closed_slow() {
    METRICS.slow_watchers.inc();
}

/// Upstream's verb label: the HTTP-ish verb (`LIST`, `WATCH`, `APPLY`, ...).
fn verb_label(req: &Request, info: Option<&RequestInfo>) -> String {
    let apply = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    match info.and_then(|i| i.verb) {
        Some(Verb::Get) => "GET".into(),
        Some(Verb::List) => "LIST".into(),
        Some(Verb::Watch) => "WATCH".into(),
        Some(Verb::Create) => "POST".into(),
        Some(Verb::Update) => "PUT".into(),
        Some(Verb::Patch) if apply => "APPLY".into(),
        Some(Verb::Patch) => "PATCH".into(),
        Some(Verb::Delete | Verb::DeleteCollection) => "DELETE".into(),
        None => req.method().as_str().to_string(),
    }
}

/// Decrements the in-flight gauge when the request is done (or dropped).
struct Inflight(IntGauge);

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: counts, times and tracks every request.
pub async fn record(req: Request, next: Next) -> Response {
    let watch_param = req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
    });
    let info = RequestInfo::parse(req.method(), req.uri().path(), watch_param);
    let verb = verb_label(&req, info.as_ref());
    let (group, version, resource, subresource) = match &info {
        Some(i) => (
            i.group.clone(),
            i.version.clone(),
            i.resource.clone(),
            i.subresource.clone(),
        ),
        None => Default::default(),
    };
    let mutating = !matches!(
        req.method(),
        &http::Method::GET | &http::Method::HEAD | &http::Method::OPTIONS
    );
    let gauge = METRICS
        .inflight
        .with_label_values(&[if mutating { "mutating" } else { "readOnly" }]);
    gauge.inc();
    let guard = Inflight(gauge);
    let start = Instant::now();
    let response = next.run(req).await;
    drop(guard);
    let labels = [verb.as_str(), &group, &version, &resource, &subresource];
    METRICS
        .durations
        .with_label_values(&labels)
        .observe(start.elapsed().as_secs_f64());
    let code = response.status().as_u16().to_string();
    let mut with_code = labels.to_vec();
    with_code.push(&code);
    METRICS.requests.with_label_values(&with_code).inc();
    response
}

/// `GET /metrics`: the Prometheus text format.
pub async fn serve(State(api): State<Arc<ApiServer>>) -> Response {
    for (prefix, objects, _) in api.registry.caches.stats() {
        let resource = api
            .table
            .all()
            .into_iter()
            .find(|d| d.storage_prefix == prefix)
            .map(|d| d.group_resource().to_string())
            .unwrap_or(prefix);
        METRICS
            .storage_objects
            .with_label_values(&[&resource])
            .set(objects as i64);
    }
    let mut body = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&METRICS.registry.gather(), &mut body) {
        return crate::error::ApiError::internal(format!("encoding metrics: {e}")).into_response();
    }
    ([(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}
