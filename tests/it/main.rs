//! The integration tests: one test binary (one link, one process whose
//! tests run side by side) with a module per area. Every test drives the
//! real `spiffe-helper` binary (or, in `in_process`, the library's daemon
//! entry point) against the fake Workload API of `tests/fake-agent`, or
//! against a real SPIRE server and agent (`spire`, `side_by_side`,
//! `differential`) and the Go helper.
//!
//! `common` holds the fixtures: a work directory with its config, a
//! running daemon with its agent and PKI in one call, `wait_for`, the
//! HTTP client of the health port, and the real SPIRE deployment.

mod common;

mod cli;
mod config_errors;
mod daemon;
mod differential;
mod faults;
mod health;
mod hostile;
mod image;
mod in_process;
mod nginx;
mod observability;
mod oneshot;
mod outputs;
mod pkcs12;
mod secrets;
mod side_by_side;
mod spire;
mod supervisor;
mod systemd;
mod umask;
mod write_order;
