//! spiffe-helper: gets a workload's SPIFFE identity from the Workload API,
//! writes it to disk, keeps it rotated and tells the program that uses it.
//!
//! # Layout
//! - `cli`: Go-style command-line flags.
//! - `config`: the HCL/JSON file, validated into [`config::Config`].
//! - `workload`: the Workload API client (one shared connection) and its
//!   error classes.
//! - `x509`, `jwt`: pure rendering of credentials into file contents.
//! - `disk`: the atomic, transactional writer every batch goes through.
//! - `pkcs12`: keystores and truststores for Java workloads.
//! - `publish`: the one place a rendered batch reaches the disk, the status
//!   and the supervisor.
//! - `watch`: the one stream loop (connect, subscribe, back off, report).
//! - `oneshot`: `daemon_mode = false`.
//! - `check`: `-check`, the configuration and its environment checked
//!   without the agent.
//! - `app`: daemon mode: the watchers, JWT refreshers, health server and
//!   process supervisor under one cancellation token.
//! - `status`, `health`: the shared write status and the HTTP probes.
//! - `notify`: systemd's readiness protocol.
//! - `supervisor`: starting and signalling `cmd` and the pid-file process.
//! - `clock`, `backoff`, `secret`: small shared pieces.

pub mod app;
pub mod backoff;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod disk;
pub mod health;
pub mod jwt;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod oneshot;
pub mod pkcs12;
pub mod publish;
pub mod refresh;
pub mod secret;
pub mod status;
pub mod supervisor;
pub mod watch;
pub mod workload;
pub mod x509;

/// The version, the commit built and its date (see `build.rs`).
pub mod build {
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    pub const COMMIT: &str = env!("SPIFFE_HELPER_COMMIT");
    pub const DATE: &str = env!("SPIFFE_HELPER_BUILD_DATE");
}
