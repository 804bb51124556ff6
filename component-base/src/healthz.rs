//! The text of upstream's health endpoints, from named checks: `ok`, or with `?verbose` a
//! `[+]name ok` line per check and `<endpoint> check passed`; a failing check makes the answer a
//! 500 with `[-]name failed: reason withheld` (the reason goes to the log, not to the caller).
//! `?exclude=name` skips a check.

use std::sync::Arc;

/// A named check: `Err(reason)` when unhealthy.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Renders `endpoint` (`healthz`, `livez`, `readyz`) for `query`: the status code and body.
pub fn report(endpoint: &str, checks: &[(String, Check)], query: &str) -> (u16, String) {
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "verbose" => verbose = v != "false",
            "exclude" => excluded.push(v.to_string()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for (name, check) in checks {
        if excluded.iter().any(|e| e == name) {
            continue;
        }
        match check() {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                failed = true;
                tracing::warn!(check = %name, %reason, "{endpoint} check failed");
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
            }
        }
    }
    for name in &excluded {
        if !checks.iter().any(|(n, _)| n == name) {
            lines.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for \"{name}\"\n"
            ));
        }
    }
    if failed {
        (500, format!("{lines}{endpoint} check failed\n"))
    } else if verbose {
        (200, format!("{lines}{endpoint} check passed\n"))
    } else {
        (200, "ok".into())
    }
}

/// Renders `/<endpoint>/<name>`; `None` when there is no such check.
pub fn single(endpoint: &str, checks: &[(String, Check)], name: &str) -> Option<(u16, String)> {
    let (_, check) = checks.iter().find(|(n, _)| n == name)?;
    Some(match check() {
        Ok(()) => (200, "ok".into()),
        Err(reason) => {
            tracing::warn!(check = %name, %reason, "{endpoint} check failed");
            (
                500,
                format!("[-]{name} failed: reason withheld\n{endpoint} check failed\n"),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(fail: bool) -> Vec<(String, Check)> {
        let ok: Check = Arc::new(|| Ok(()));
        let other: Check = Arc::new(move || if fail { Err("down".into()) } else { Ok(()) });
        vec![("ping".into(), ok), ("leaderElection".into(), other)]
    }

    #[test]
    fn healthy_is_a_plain_ok_or_a_verbose_list() {
        assert_eq!(report("healthz", &checks(false), ""), (200, "ok".into()));
        assert_eq!(
            report("readyz", &checks(false), "verbose"),
            (
                200,
                "[+]ping ok\n[+]leaderElection ok\nreadyz check passed\n".into()
            )
        );
    }

    #[test]
    fn a_failing_check_is_a_500_without_its_reason() {
        assert_eq!(
            report("healthz", &checks(true), ""),
            (
                500,
                "[+]ping ok\n[-]leaderElection failed: reason withheld\nhealthz check failed\n".into()
            )
        );
        assert_eq!(report("healthz", &checks(true), "exclude=leaderElection").0, 200);
    }

    #[test]
    fn excluding_an_unknown_check_warns() {
        let (code, body) = report("livez", &checks(false), "exclude=nope&verbose=true");
        assert_eq!(code, 200);
        assert!(body.contains("warn: some health checks cannot be excluded: no matches for \"nope\""));
    }

    #[test]
    fn single_checks() {
        assert_eq!(
            single("healthz", &checks(false), "ping"),
            Some((200, "ok".into()))
        );
        assert_eq!(single("healthz", &checks(true), "leaderElection").unwrap().0, 500);
        assert_eq!(single("healthz", &checks(false), "nope"), None);
    }
}
