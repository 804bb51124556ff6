//! Logging through `tracing`, set up from a klog-style verbosity (`-v N`): 0-2 log at `info`,
//! 3-4 at `debug`, 5 and more at `trace`. `RUST_LOG`, when set, takes precedence.

use tracing_subscriber::EnvFilter;

/// The `tracing` level a klog verbosity maps to.
pub fn level_for(verbosity: u8) -> tracing::Level {
    match verbosity {
        0..=2 => tracing::Level::INFO,
        3..=4 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    }
}

/// Installs a global subscriber writing to stderr. A second call (several components in one
/// process) keeps the first subscriber and returns false.
pub fn init(verbosity: u8) -> bool {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(level_for(verbosity).to_string().to_lowercase()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klog_levels_map_to_tracing_levels() {
        assert_eq!(level_for(0), tracing::Level::INFO);
        assert_eq!(level_for(2), tracing::Level::INFO);
        assert_eq!(level_for(4), tracing::Level::DEBUG);
        assert_eq!(level_for(10), tracing::Level::TRACE);
    }
}
