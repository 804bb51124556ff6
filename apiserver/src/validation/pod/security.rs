//! Pod and container `securityContext` (upstream `validatePodSpecSecurityContext`,
//! `ValidateSecurityContext`): id ranges, sysctls, seccomp and AppArmor profiles, the
//! fsGroup change policy, procMount and the Windows options.

use std::collections::HashSet;

use serde_json::Value;

use super::super::field::{Errs, child, index, int, list, present, str_of, string};
use super::super::names;

/// Upstream's `IsValidUserID`/`IsValidGroupID` message.
const ID_RANGE: &str = "must be between 0 and 2147483647, inclusive";

/// A sysctl name: dot- or slash-separated segments.
const SYSCTL_FMT: &str = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?";

fn is_sysctl_name(name: &str) -> bool {
    let segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment)
}

fn id_in_range(v: &Value, field: &str, path: &str, errs: &mut Errs) {
    if let Some(n) = int(v, field)
        && !(0..=i64::from(i32::MAX)).contains(&n)
    {
        errs.invalid(child(path, field), &Value::from(n), ID_RANGE);
    }
}

/// `spec.securityContext` of a pod (`spec` is the whole pod spec: host namespaces live there).
pub fn pod_context(spec: &Value, path: &str, errs: &mut Errs) {
    let Some(sc) = present(spec, "securityContext") else {
        return;
    };
    for field in ["fsGroup", "runAsUser", "runAsGroup"] {
        id_in_range(sc, field, path, errs);
    }
    for (i, g) in list(sc, "supplementalGroups").iter().enumerate() {
        if let Some(n) = g.as_i64()
            && !(0..=i64::from(i32::MAX)).contains(&n)
        {
            errs.invalid(index(&child(path, "supplementalGroups"), i), g, ID_RANGE);
        }
    }
    let host_pid = spec.get("hostPID").and_then(Value::as_bool) == Some(true);
    if host_pid && spec.get("shareProcessNamespace").and_then(Value::as_bool) == Some(true) {
        errs.invalid(
            child(path, "shareProcessNamespace"),
            &Value::Bool(true),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        );
    }
    sysctls(spec, sc, &child(path, "sysctls"), errs);
    if let Some(policy) = str_of(sc, "fsGroupChangePolicy")
        && !["Always", "OnRootMismatch"].contains(&policy)
    {
        errs.not_supported(
            child(path, "fsGroupChangePolicy"),
            &Value::from(policy),
            &["Always", "OnRootMismatch"],
        );
    }
    seccomp(sc, path, errs);
    windows_options(sc, path, errs);
    app_armor(sc, path, errs);
    if let Some(policy) = str_of(sc, "supplementalGroupsPolicy")
        && !["Merge", "Strict"].contains(&policy)
    {
        errs.not_supported(
            child(path, "supplementalGroupsPolicy"),
            &Value::from(policy),
            &["Merge", "Strict"],
        );
    }
}

fn sysctls(spec: &Value, sc: &Value, path: &str, errs: &mut Errs) {
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let host_ipc = spec.get("hostIPC").and_then(Value::as_bool) == Some(true);
    let mut seen = HashSet::new();
    for (i, s) in list(sc, "sysctls").iter().enumerate() {
        let p = child(&index(path, i), "name");
        let name = string(s, "name");
        if name.is_empty() {
            errs.required(&p, "");
        } else if !is_sysctl_name(name) {
            errs.invalid_str(
                &p,
                name,
                &format!("must have at most 253 characters and match regex ^{SYSCTL_FMT}$"),
            );
        } else if !seen.insert(name) {
            errs.duplicate(&p, &Value::from(name));
        }
        let normalized = name.replace('/', ".");
        if host_network && normalized.starts_with("net.") {
            errs.invalid_str(&p, name, "may not be specified when 'hostNetwork' is true");
        }
        let ipc = ["kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."]
            .iter()
            .any(|prefix| normalized.starts_with(prefix));
        if host_ipc && ipc {
            errs.invalid_str(&p, name, "may not be specified when 'hostIPC' is true");
        }
    }
}

const PROFILE_TYPES: [&str; 3] = ["Localhost", "RuntimeDefault", "Unconfined"];

/// `seccompProfile` of a pod or container security context.
fn seccomp(sc: &Value, path: &str, errs: &mut Errs) {
    let Some(profile) = present(sc, "seccompProfile") else {
        return;
    };
    let p = child(path, "seccompProfile");
    let kind = string(profile, "type");
    match kind {
        "" => errs.required(child(&p, "type"), "type is required when seccompProfile is set"),
        k if PROFILE_TYPES.contains(&k) => {}
        k => errs.not_supported(child(&p, "type"), &Value::from(k), &PROFILE_TYPES),
    }
    let local = str_of(profile, "localhostProfile");
    let lp = child(&p, "localhostProfile");
    match (kind, local) {
        ("Localhost", None) => errs.required(lp, "must be set when seccomp type is Localhost"),
        ("Localhost", Some(target)) => local_descending_path(target, &lp, errs),
        (_, Some(_)) => errs.invalid(lp, profile, "can only be set when seccomp type is Localhost"),
        _ => {}
    }
}

/// A path below a local directory: relative, without `..`.
fn local_descending_path(target: &str, path: &str, errs: &mut Errs) {
    if target.starts_with('/') {
        errs.invalid_str(path, target, "must be a relative path");
    }
    if target.split(['/', '\\']).any(|s| s == "..") {
        errs.invalid_str(path, target, "must not contain '..'");
    }
}

/// `appArmorProfile` of a pod or container security context.
fn app_armor(sc: &Value, path: &str, errs: &mut Errs) {
    let Some(profile) = present(sc, "appArmorProfile") else {
        return;
    };
    let p = child(path, "appArmorProfile");
    let lp = child(&p, "localhostProfile");
    let local = str_of(profile, "localhostProfile");
    match string(profile, "type") {
        "Localhost" => match local {
            None => errs.required(lp, "must be set when AppArmor type is Localhost"),
            Some(l) if l.trim() != l => errs.invalid_str(lp, l, "must not be padded with whitespace"),
            Some("") => errs.required(lp, "must be set when AppArmor type is Localhost"),
            Some(l) if l.len() > 4095 => errs.too_long(lp, 4095),
            Some(_) => {}
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(l) = local {
                errs.invalid_str(lp, l, "can only be set when AppArmor type is Localhost");
            }
        }
        "" => errs.required(child(&p, "type"), "type is required when appArmorProfile is set"),
        other => errs.not_supported(child(&p, "type"), &Value::from(other), &PROFILE_TYPES),
    }
}

/// `windowsOptions`: the GMSA spec name and credential spec, the user name's form.
fn windows_options(sc: &Value, path: &str, errs: &mut Errs) {
    let Some(opts) = present(sc, "windowsOptions") else {
        return;
    };
    let p = child(path, "windowsOptions");
    if let Some(name) = str_of(opts, "gmsaCredentialSpecName") {
        errs.invalid_each(
            &child(&p, "gmsaCredentialSpecName"),
            name,
            names::dns1123_subdomain(name),
        );
    }
    if let Some(spec) = str_of(opts, "gmsaCredentialSpec") {
        let sp = child(&p, "gmsaCredentialSpec");
        if spec.is_empty() {
            errs.invalid_str(sp, spec, "gmsaCredentialSpec cannot be an empty string");
        } else if spec.len() > 64 * 1024 {
            errs.invalid_str(sp, spec, "gmsaCredentialSpec size must be under 64 KiB");
        }
    }
    if let Some(user) = str_of(opts, "runAsUserName") {
        for m in run_as_user_name(user) {
            errs.invalid_str(child(&p, "runAsUserName"), user, m);
        }
    }
}

/// Why a Windows `runAsUserName` (`[DOMAIN\]USER`) is not valid.
pub(super) fn run_as_user_name(name: &str) -> Vec<&'static str> {
    if name.is_empty() {
        return vec!["runAsUserName cannot be an empty string"];
    }
    if name.chars().any(|c| c.is_ascii_control()) {
        return vec!["runAsUserName cannot contain control characters"];
    }
    let parts: Vec<&str> = name.split('\\').collect();
    let (domain, user) = match parts.as_slice() {
        [user] => (None, *user),
        [domain, user] => (Some(*domain), *user),
        _ => return vec!["runAsUserName cannot contain more than one backslash"],
    };
    let mut out = Vec::new();
    if domain.is_some_and(|d| d.len() >= 256) {
        out.push("runAsUserName's Domain length must be under 256 characters");
    }
    if let Some(d) = domain
        && !(netbios_domain(d) || dns_domain(d))
    {
        out.push("runAsUserName's Domain doesn't match the NetBios nor the DNS format");
    }
    if user.is_empty() {
        out.push("runAsUserName's User cannot be empty");
    } else if user.len() > 104 {
        out.push("runAsUserName's User length must not be longer than 104 characters");
    }
    if !user.is_empty() && user.chars().all(|c| c == '.' || c == ' ') {
        out.push("runAsUserName's User cannot contain only periods or spaces");
    }
    if user.chars().any(|c| "\"/\\:;|=,+*?<>@[]".contains(c)) {
        out.push("runAsUserName's User cannot contain the following characters: \"/\\:;|=,+*?<>@[]");
    }
    out
}

/// A NetBIOS domain: 1 to 15 characters without `\ / : * ? " < > |`, not starting with a dot.
fn netbios_domain(d: &str) -> bool {
    let bad = |c: char| "\\/:*?\"<>|".contains(c);
    let n = d.chars().count();
    (1..=15).contains(&n) && !d.starts_with('.') && !d.chars().any(bad)
}

/// A DNS domain: dot-separated labels of letters, digits and inner dashes, up to 63 each.
fn dns_domain(d: &str) -> bool {
    d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    })
}

/// A container's `securityContext`; `host_users` is the pod's `hostUsers` (default true).
pub fn container_context(c: &Value, path: &str, host_users: bool, errs: &mut Errs) {
    let Some(sc) = present(c, "securityContext") else {
        return;
    };
    let p = child(path, "securityContext");
    id_in_range(sc, "runAsUser", &p, errs);
    id_in_range(sc, "runAsGroup", &p, errs);
    if let Some(mount) = str_of(sc, "procMount") {
        let mp = child(&p, "procMount");
        match mount {
            "Default" => {}
            "Unmasked" if host_users => {
                errs.invalid_str(mp, mount, "`hostUsers` must be false to use `Unmasked`");
            }
            "Unmasked" => {}
            other => errs.not_supported(mp, &Value::from(other), &["Default", "Unmasked"]),
        }
    }
    seccomp(sc, &p, errs);
    if sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        if sc.get("privileged").and_then(Value::as_bool) == Some(true) {
            errs.invalid(
                &p,
                sc,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds = sc.pointer("/capabilities/add").and_then(Value::as_array);
        if adds
            .into_iter()
            .flatten()
            .any(|c| c.as_str() == Some("CAP_SYS_ADMIN"))
        {
            errs.invalid(
                &p,
                sc,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
    windows_options(sc, &p, errs);
    app_armor(sc, &p, errs);
}

/// The containers of a pod spec in upstream's visiting order, each with its path.
fn containers_with_paths(spec: &Value) -> Vec<(&Value, String)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| {
            list(spec, field)
                .iter()
                .enumerate()
                .map(move |(i, c)| (c, index(&format!("spec.{field}"), i)))
        })
        .collect()
}

/// Which profile an annotation names, for comparison with a profile field.
enum Named<'a> {
    Unconfined,
    RuntimeDefault,
    Localhost(&'a str),
    Other,
}

fn named_profile(annotation: &str) -> Named<'_> {
    match annotation {
        "unconfined" => Named::Unconfined,
        "runtime/default" | "docker/default" => Named::RuntimeDefault,
        a => a
            .strip_prefix("localhost/")
            .map_or(Named::Other, Named::Localhost),
    }
}

/// A profile field against the legacy annotation naming the same profile; `what` is `seccomp`
/// or `apparmor` (AppArmor annotations do not accept `docker/default`).
fn profile_matches(annotation: &str, profile: &Value, path: &str, what: &str, errs: &mut Errs) {
    let named = match named_profile(annotation) {
        Named::RuntimeDefault if what == "apparmor" && annotation != "runtime/default" => Named::Other,
        n => n,
    };
    let kind = string(profile, "type");
    let type_ok = match kind {
        "Unconfined" => matches!(named, Named::Unconfined),
        "RuntimeDefault" => matches!(named, Named::RuntimeDefault),
        "Localhost" => matches!(named, Named::Localhost(_)),
        _ => true,
    };
    if !type_ok {
        errs.forbidden(
            child(path, "type"),
            &format!("{what} type in annotation and field must match"),
        );
    } else if let Named::Localhost(name) = named
        && kind == "Localhost"
        && str_of(profile, "localhostProfile") != Some(name)
    {
        errs.forbidden(
            child(path, "localhostProfile"),
            &format!("{what} profile in annotation and field must match"),
        );
    }
}

/// On create, seccomp and AppArmor profile fields must agree with the legacy annotations naming
/// profiles for the pod or its containers.
pub fn annotations_match_fields(pod: &Value, errs: &mut Errs) {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let annotation = |key: &str| {
        pod.pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    };
    let pod_sc = spec.get("securityContext").unwrap_or(&Value::Null);
    if let (Some(profile), Some(a)) = (
        present(pod_sc, "seccompProfile"),
        annotation("seccomp.security.alpha.kubernetes.io/pod"),
    ) {
        profile_matches(a, profile, "spec.securityContext.seccompProfile", "seccomp", errs);
    }
    let containers = containers_with_paths(spec);
    for (c, path) in &containers {
        let sc = c.get("securityContext").unwrap_or(&Value::Null);
        let key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            string(c, "name")
        );
        if let (Some(profile), Some(a)) = (present(sc, "seccompProfile"), annotation(&key)) {
            let p = child(&child(path, "securityContext"), "seccompProfile");
            profile_matches(a, profile, &p, "seccomp", errs);
        }
    }
    if spec.pointer("/os/name").and_then(Value::as_str) == Some("windows") {
        return;
    }
    for (c, path) in &containers {
        let sc = c.get("securityContext").unwrap_or(&Value::Null);
        let Some(profile) = present(sc, "appArmorProfile").or_else(|| present(pod_sc, "appArmorProfile"))
        else {
            continue;
        };
        let key = format!(
            "container.apparmor.security.beta.kubernetes.io/{}",
            string(c, "name")
        );
        if let Some(a) = annotation(&key) {
            let p = child(&child(path, "securityContext"), "appArmorProfile");
            profile_matches(a, profile, &p, "apparmor", errs);
        }
    }
}
