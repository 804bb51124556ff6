//! The cleaner (upstream `certificatesigningrequest-cleaner-controller`): once an hour deletes
//! requests that are done with: approved, denied or failed more than an hour ago, pending for
//! a day, or whose certificate has expired.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams};

use super::conditions;
use crate::controllers::{ControllerContext, ControllerError};

/// How often requests are checked.
const PERIOD: Duration = Duration::from_secs(3600);
const PENDING_EXPIRATION: SignedDuration = SignedDuration::from_hours(24);
const DECIDED_EXPIRATION: SignedDuration = SignedDuration::from_hours(1);

/// Why `csr` should be deleted at `now`, if it should.
pub fn expired(csr: &CertificateSigningRequest, now: Timestamp) -> Option<&'static str> {
    let older = |t: Option<Timestamp>, age: SignedDuration| t.is_some_and(|t| now.duration_since(t) > age);
    if let Some(not_after) = certificate_not_after(csr)
        && not_after < now
    {
        return Some("its certificate expired");
    }
    for (kind, why) in [
        ("Approved", "approved more than an hour ago"),
        ("Denied", "denied more than an hour ago"),
        ("Failed", "failed more than an hour ago"),
    ] {
        if let Some(c) = conditions::condition(csr, kind) {
            let at = c
                .last_update_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
                .map(|t| t.0);
            return older(at, DECIDED_EXPIRATION).then_some(why);
        }
    }
    let created = csr.metadata.creation_timestamp.as_ref().map(|t| t.0);
    older(created, PENDING_EXPIRATION).then_some("pending for more than a day")
}

fn certificate_not_after(csr: &CertificateSigningRequest) -> Option<Timestamp> {
    let pem = &csr.status.as_ref()?.certificate.as_ref()?.0;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = block.parse_x509().ok()?;
    Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

/// Runs the cleaner until shutdown.
pub async fn run(ctx: ControllerContext) -> Result<(), ControllerError> {
    let informer = ctx.informers.informer::<CertificateSigningRequest>();
    let store = informer.store();
    tokio::select! {
        () = ctx.shutdown.cancelled() => return Ok(()),
        () = informer.wait_synced() => {}
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    loop {
        let now = Timestamp::now();
        for csr in store.list_all() {
            let Some(why) = expired(&csr, now) else { continue };
            let name = csr.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(csr = %name, reason = why, "deleted a certificate signing request"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!(csr = %name, error = %e, "deleting a certificate signing request"),
            }
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(hours_ago: i64) -> Timestamp {
        Timestamp::now() - SignedDuration::from_hours(hours_ago)
    }

    #[test]
    fn pending_requests_last_a_day_decided_ones_an_hour() {
        let now = Timestamp::now();
        let mut csr = CertificateSigningRequest::default();
        csr.metadata.creation_timestamp = Some(Time(at(23)));
        assert_eq!(expired(&csr, now), None);
        csr.metadata.creation_timestamp = Some(Time(at(25)));
        assert_eq!(expired(&csr, now), Some("pending for more than a day"));
        let mut approved = CertificateSigningRequest::default();
        approved.metadata.creation_timestamp = Some(Time(at(30)));
        conditions::append(&mut approved, "Approved", "A", String::new(), at(0));
        assert_eq!(expired(&approved, now), None, "a decision restarts the clock");
        let mut denied = CertificateSigningRequest::default();
        conditions::append(&mut denied, "Denied", "D", String::new(), at(2));
        assert_eq!(expired(&denied, now), Some("denied more than an hour ago"));
    }
}
