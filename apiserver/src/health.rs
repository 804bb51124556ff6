//! `/healthz`, `/livez` and `/readyz`: named checks as upstream runs them (`ping`, `log`, `etcd`
//! — here the store — and, for readyz, `informer-sync`), `?verbose` for a line per check,
//! `?exclude=<name>` to skip one, and `/<endpoint>/<check>` for a single check.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, Uri, header};

use crate::ApiServer;

/// The checks of one endpoint, in the order upstream prints them.
fn check_names(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        "readyz" => &["ping", "log", "etcd", "informer-sync"],
        _ => &["ping", "log", "etcd"],
    }
}

async fn run_check(api: &ApiServer, name: &str) -> Result<(), String> {
    match name {
        "etcd" => api
            .registry
            .store
            .kv()
            .current_revision()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// Renders one endpoint: every check not excluded, `verbose` lists each.
async fn report(api: &ApiServer, endpoint: &str, query: Option<&str>) -> Response {
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "verbose" => verbose = v != "false",
            "exclude" => excluded.push(v.into_owned()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for name in check_names(endpoint) {
        if excluded.iter().any(|e| e == name) {
            continue;
        }
        match run_check(api, name).await {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                tracing::warn!(check = name, error = %e, "{endpoint} check failed");
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    for name in &excluded {
        if !check_names(endpoint).contains(&name.as_str()) {
            lines.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for \"{name}\"\n"
            ));
        }
    }
    let (code, body) = if failed {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{lines}{endpoint} check failed\n"),
        )
    } else if verbose {
        (StatusCode::OK, format!("{lines}{endpoint} check passed\n"))
    } else {
        (StatusCode::OK, "ok".to_string())
    };
    text(code, body)
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /healthz`.
pub async fn healthz(State(api): State<Arc<ApiServer>>, RawQuery(q): RawQuery) -> Response {
    report(&api, "healthz", q.as_deref()).await
}

/// `GET /livez`.
pub async fn livez(State(api): State<Arc<ApiServer>>, RawQuery(q): RawQuery) -> Response {
    report(&api, "livez", q.as_deref()).await
}

/// `GET /readyz`.
pub async fn readyz(State(api): State<Arc<ApiServer>>, RawQuery(q): RawQuery) -> Response {
    report(&api, "readyz", q.as_deref()).await
}

/// `GET /{healthz,livez,readyz}/<check>`: one check, `ok` or a 500.
pub async fn single(State(api): State<Arc<ApiServer>>, uri: Uri, Path(name): Path<String>) -> Response {
    let endpoint = uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
    if !check_names(endpoint).contains(&name.as_str()) {
        return crate::error::ApiError::not_found_path().into_response();
    }
    match run_check(&api, &name).await {
        Ok(()) => text(StatusCode::OK, "ok".into()),
        Err(e) => {
            tracing::warn!(check = name, error = %e, "{endpoint} check failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("[-]{name} failed: reason withheld\n{endpoint} check failed\n"),
            )
        }
    }
}
