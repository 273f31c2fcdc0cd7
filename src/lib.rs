//! spiffe-helper: gets a workload's SPIFFE identity from the Workload API,
//! writes it to disk, keeps it rotated and tells the program that uses it.
//!
//! # Layout
//!
//! The data flow and a diagram are in `docs/architecture.md`.
//!
//! Reading what to do:
//! - `cli`: Go-style command-line flags.
//! - `config`: the HCL v1 / JSON file and the environment, read into a
//!   validated [`config::Config`] (every problem reported at once).
//! - `check`: `-check`, the configuration and its environment checked
//!   without the agent.
//!
//! Getting and rendering credentials:
//! - `workload`: the Workload API client (one lazily connecting channel
//!   shared by every task) and its error classes.
//! - `x509`, `jwt`, `pkcs12`: pure rendering of credentials into the bytes
//!   of the files (context in, batch out; no I/O).
//!
//! Writing them and telling the world:
//! - `disk`: the transactional writer, confined to one handle on
//!   `cert_dir`.
//! - `publish`: the one path a rendered batch takes to the disk, in both
//!   modes; it reports the outcome and tells the supervisor of a renewal.
//! - `events`: the one owner of the state; every task reports here, and
//!   only it changes `status` and `metrics`.
//! - `status`, `metrics`: that state, as the probes, `/status` and
//!   `/metrics` read it.
//! - `health`: the hostile-input HTTP server of the probes, `/status` and
//!   `/metrics`.
//! - `notify`: systemd's readiness protocol.
//! - `logging`: the non-blocking log writer and its reloadable filter.
//!
//! The tasks and the modes:
//! - `stream`: the one watcher of a Workload API stream (X.509, JWT
//!   bundle): subscribe, render, publish, back off, report.
//! - `refresh`: one JWT-SVID refresher per `jwt_svids` entry.
//! - `supervisor`: starting and signalling `cmd` and the pid-file process.
//! - `app`: daemon mode's wiring: the tasks of a configuration under one
//!   cancellation token, reload and shutdown.
//! - `oneshot`: `daemon_mode = false`: fetch everything, publish one batch.
//! - `clock`, `backoff`, `secret`: small shared pieces.
//!
//! The binary (`src/main.rs`) turns flags and a configuration into one of
//! the modes and an exit code.

pub mod app;
mod backoff;
pub mod check;
pub mod cli;
mod clock;
pub mod config;
mod disk;
mod events;
mod health;
pub mod jwt;
pub mod logging;
mod metrics;
mod notify;
pub mod oneshot;
mod pkcs12;
mod publish;
mod refresh;
mod secret;
mod status;
mod stream;
pub mod supervisor;
mod workload;
pub mod x509;

/// The helper's own pid, asked once: musl makes every `getpid` a system
/// call, and a rotation needs it for each temporary and backup name and
/// for the pid-file check.
pub(crate) fn own_pid() -> u32 {
    static OWN: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *OWN.get_or_init(std::process::id)
}

/// The version, the commit built and its date (see `build.rs`).
pub mod build {
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    pub const COMMIT: &str = env!("SPIFFE_HELPER_COMMIT");
    pub const DATE: &str = env!("SPIFFE_HELPER_BUILD_DATE");
}
