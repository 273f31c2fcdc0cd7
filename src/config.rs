//! Configuration: the upstream-compatible HCL (or JSON) file, read into
//! private raw structs, then validated into [`Config`], the only type the
//! rest of the program sees.

use std::path::PathBuf;

use nix::sys::signal::Signal;

pub mod endpoint;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// Workload API socket path (from `agent_address`, `$SPIFFE_ENDPOINT_SOCKET` or the default).
    pub agent_socket: PathBuf,
    /// `cert_dir` as written (empty: the working directory).
    pub cert_dir: PathBuf,
    /// `hint`; `None` when empty.
    pub hint: Option<String>,
    /// X.509 output, when the three `svid_*` names are set.
    pub x509: Option<X509Output>,
    /// One entry per `jwt_svids` element, in file order.
    pub jwt_svids: Vec<JwtSvidOutput>,
    /// `jwt_bundle_file_name`, when set.
    pub jwt_bundle: Option<OutputFile>,
    /// After applying the `-daemon-mode` flag override.
    pub daemon_mode: bool,
    pub process: ProcessConfig,
    pub health: HealthConfig,
}

/// One file to write: `cert_dir` joined with the configured name, and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub mode: u32,
}

#[derive(Debug, Clone)]
pub struct X509Output {
    /// `svid_file_name`, mode `cert_file_mode`.
    pub svid: OutputFile,
    /// `svid_key_file_name`, mode `key_file_mode`.
    pub key: OutputFile,
    /// `svid_bundle_file_name`, mode `cert_file_mode`.
    pub bundle: OutputFile,
    pub add_intermediates_to_bundle: bool,
    pub include_federated_domains: bool,
    pub omit_expired: bool,
}

#[derive(Debug, Clone)]
pub struct JwtSvidOutput {
    pub audience: String,
    pub extra_audiences: Vec<String>,
    /// `jwt_svid_file_name`, mode `jwt_svid_file_mode`.
    pub file: OutputFile,
}

impl JwtSvidOutput {
    /// The audience list sent to the Workload API: `jwt_audience` first, then the extras.
    pub fn audiences(&self) -> Vec<String> {
        std::iter::once(self.audience.clone())
            .chain(self.extra_audiences.iter().cloned())
            .collect()
    }
}

/// The program to run, as argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ProcessConfig {
    /// `cmd` + `cmd_args`; `None` when `cmd` is empty or daemon mode is off.
    pub cmd: Option<Command>,
    /// `pid_file_name` (as written, not joined with `cert_dir`).
    pub pid_file: Option<PathBuf>,
    /// `renew_signal`; `None` when empty or daemon mode is off.
    pub renew_signal: Option<Signal>,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub listener_enabled: bool,
    pub bind_port: u16,
    pub liveness_path: String,
    pub readiness_path: String,
}
