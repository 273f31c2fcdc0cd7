//! Logging to stderr: human-readable lines (the default) or one JSON object
//! per line. The level is `RUST_LOG` when set, else `log_level` from the
//! configuration, else info.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The filter: `RUST_LOG` (when set and readable) wins over `level`.
pub fn filter(rust_log: Option<&str>, level: Option<tracing::Level>) -> Targets {
    if let Some(t) = rust_log.and_then(|v| v.parse::<Targets>().ok()) {
        return t;
    }
    Targets::new().with_default(level.map_or(LevelFilter::INFO, LevelFilter::from_level))
}

/// Installs the global subscriber. Call once, before the first log line.
pub fn init(level: Option<tracing::Level>, format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), level);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_the_configured_level() {
        let f = filter(Some("debug"), Some(tracing::Level::ERROR));
        assert!(f.would_enable("x", &tracing::Level::DEBUG));
        let f = filter(None, Some(tracing::Level::WARN));
        assert!(f.would_enable("x", &tracing::Level::WARN));
        assert!(!f.would_enable("x", &tracing::Level::INFO));
        let f = filter(None, None);
        assert!(f.would_enable("x", &tracing::Level::INFO));
        assert!(!f.would_enable("x", &tracing::Level::DEBUG));
        // An unreadable RUST_LOG falls back to the configuration.
        let f = filter(Some("=?="), Some(tracing::Level::ERROR));
        assert!(!f.would_enable("x", &tracing::Level::WARN));
    }
}
