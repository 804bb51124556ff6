//! Jobs and CronJobs (upstream `pkg/apis/batch/validation`).

use serde_json::Value;

use super::field::{Errs, child, int, string};
use super::{metadata, pod, workloads};

fn job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        errs.nonnegative(spec, path, field);
    }
    match string(spec, "completionMode") {
        "" | "NonIndexed" => {}
        "Indexed" => {
            if int(spec, "completions").is_none() {
                errs.required(child(path, "completions"), "when completion mode is Indexed");
            }
        }
        other => errs.not_supported(
            child(path, "completionMode"),
            &Value::from(other),
            &["NonIndexed", "Indexed"],
        ),
    }
    let tmpl = spec.get("template").unwrap_or(&Value::Null);
    let tp = child(path, "template");
    pod::template(tmpl, &tp, errs);
    pod::template_restart_policy(tmpl, &tp, &["OnFailure", "Never"], errs);
}

/// A Job: its spec plus a selector that selects the template (generated unless
/// `manualSelector`).
pub fn job(obj: &Value, errs: &mut Errs) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    job_spec(spec, "spec", errs);
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.required("spec.selector", ""),
        Some(sel) => {
            let before = errs.0.len();
            metadata::label_selector(sel, "spec.selector", errs);
            if errs.0.len() == before {
                workloads::template_matches(
                    sel,
                    spec.get("template").unwrap_or(&Value::Null),
                    "spec.template",
                    errs,
                );
            }
        }
    }
}

/// Job updates: selector, completion mode and (outside suspension) the template are immutable.
pub fn job_update(new: &Value, old: &Value, errs: &mut Errs) {
    for field in [
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
    ] {
        errs.immutable(
            format!("spec.{field}"),
            new.pointer(&format!("/spec/{field}")),
            old.pointer(&format!("/spec/{field}")),
        );
    }
    let (new_t, old_t) = (new.pointer("/spec/template"), old.pointer("/spec/template"));
    if new_t != old_t {
        // A suspended Job that never started may change the pods' scheduling directives.
        let suspended = new.pointer("/spec/suspend") == Some(&Value::Bool(true))
            && old.pointer("/status/startTime").is_none_or(Value::is_null);
        let strip = |t: Option<&Value>| {
            let mut t = t.cloned().unwrap_or(Value::Null);
            if suspended {
                if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                    m.remove("annotations");
                }
                if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                    for f in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                        s.remove(f);
                    }
                }
            }
            t
        };
        if strip(new_t) != strip(old_t) {
            errs.invalid(
                "spec.template",
                new_t.unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
    // Completions may only change together with parallelism on elastic Indexed Jobs.
    let (nc, oc) = (new.pointer("/spec/completions"), old.pointer("/spec/completions"));
    let elastic = new.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
        && nc == new.pointer("/spec/parallelism");
    if !elastic {
        errs.immutable("spec.completions", nc, oc);
    }
}

/// Job status: counts are not negative.
pub fn job_status(obj: &Value, errs: &mut Errs) {
    let Some(status) = obj.get("status") else {
        return;
    };
    for field in ["active", "succeeded", "failed", "terminating", "ready"] {
        errs.nonnegative(status, "status", field);
    }
}

/// A CronJob.
pub fn cron_job(obj: &Value, errs: &mut Errs) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.invalid_str("metadata.name", name, "must be no more than 52 characters");
    }
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    schedule(spec, errs);
    errs.nonnegative(spec, "spec", "startingDeadlineSeconds");
    errs.nonnegative(spec, "spec", "successfulJobsHistoryLimit");
    errs.nonnegative(spec, "spec", "failedJobsHistoryLimit");
    match string(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.required("spec.concurrencyPolicy", ""),
        other => errs.not_supported(
            "spec.concurrencyPolicy",
            &Value::from(other),
            &["Allow", "Forbid", "Replace"],
        ),
    }
    let jt = spec.get("jobTemplate").unwrap_or(&Value::Null);
    if let Some(meta) = jt.get("metadata") {
        metadata::labels(
            meta.get("labels").and_then(Value::as_object),
            "spec.jobTemplate.metadata.labels",
            errs,
        );
        metadata::annotations(
            meta.get("annotations").and_then(Value::as_object),
            "spec.jobTemplate.metadata.annotations",
            errs,
        );
    }
    let job = jt.get("spec").unwrap_or(&Value::Null);
    job_spec(job, "spec.jobTemplate.spec", errs);
    if let Some(sel) = job.get("selector").filter(|s| !s.is_null()) {
        errs.invalid(
            "spec.jobTemplate.spec.selector",
            sel,
            "`selector` will be auto-generated",
        );
    }
    if job.get("manualSelector") == Some(&Value::Bool(true)) {
        errs.not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &Value::Bool(true),
            &["nil", "false"],
        );
    }
}

fn schedule(spec: &Value, errs: &mut Errs) {
    let schedule = string(spec, "schedule");
    if schedule.is_empty() {
        errs.required("spec.schedule", "");
    } else {
        if let Err(e) = api_util::cron::check(schedule) {
            errs.invalid_str("spec.schedule", schedule, &e);
        }
        if schedule.contains("TZ") {
            errs.invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            );
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        time_zone(tz, errs);
    }
}

fn time_zone(tz: &str, errs: &mut Errs) {
    let path = "spec.timeZone";
    if tz.is_empty() {
        errs.invalid_str(path, tz, "timeZone must be nil or non-empty string");
    } else if tz.eq_ignore_ascii_case("local") {
        errs.invalid_str(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        );
    } else if tz.split('/').any(|p| p == "." || p == ".." || p.starts_with('-'))
        || jiff::tz::TimeZone::get(tz).is_err()
    {
        errs.invalid_str(path, tz, &format!("unknown time zone {tz}"));
    }
}

/// CronJob updates: a `TZ=` schedule already stored may stay.
pub fn cron_job_update(_new: &Value, old: &Value, errs: &mut Errs) {
    let had_tz = old
        .pointer("/spec/schedule")
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("TZ"));
    if had_tz {
        errs.0.retain(|e| !e.message.contains("cannot use TZ or CRON_TZ"));
    }
}

#[cfg(test)]
mod tests;
