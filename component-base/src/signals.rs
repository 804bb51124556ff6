//! Graceful shutdown on SIGINT or SIGTERM: the first signal cancels the returned token so every
//! task can finish its work (release leases, close watches); a second one exits at once, as
//! upstream's components do.

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first SIGINT or SIGTERM. Must be called inside a tokio runtime.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            tracing::warn!("cannot listen for SIGTERM; only SIGINT stops this process gracefully");
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down (a second signal exits at once)");
        cancel.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(1);
    });
    token
}
