//! Configuration: the upstream-compatible HCL (or JSON) file, read into
//! private raw values, then validated into [`Config`], the only type the
//! rest of the program sees.
//!
//! # Layout
//! - `tree`: the parsed file, entries with their lines; `hcl1` reads HCL v1
//!   as the Go helper's library does, `json` reads a JSON document as its
//!   JSON reader does; `escape`: the string escapes both decode.
//! - `read`: tree to typed values, key by key (types, file modes, NUL
//!   bytes, enumerations, durations); unknown and repeated keys.
//! - `rules`: checks across keys (outputs, daemon mode, process, health
//!   paths, the agent's address), building [`Config`].
//! - `suggest`: the nearest valid key; `number`: Go's integer and duration
//!   syntax; `cmd_args`: Go's csv splitting; `endpoint`: the agent socket.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

pub mod cmd_args;
pub mod endpoint;
mod environ;
mod escape;

/// The configuration's keys, for `-check`.
pub(crate) mod keys {
    pub(crate) use super::read::{HEALTH_KEYS, TOP_KEYS};
}
mod hcl1;
mod json;
mod number;
mod read;
mod rules;
mod suggest;
mod syntax;
mod tree;
#[cfg(test)]
mod upstream_examples;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// `cert_dir` as written (empty: the working directory). Every output
    /// path starts with it, and every file operation goes through one
    /// handle on it.
    pub cert_dir: PathBuf,
    /// Workload API socket path (from `agent_address`, `$SPIFFE_ENDPOINT_SOCKET` or the default).
    pub agent_socket: PathBuf,
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
    /// `log_level`; `None` when unset (`RUST_LOG`, when set, wins anyway).
    pub log_level: Option<tracing::Level>,
    /// `log_format`.
    pub log_format: LogFormat,
    /// `oneshot_max_wait`: how long one-shot mode waits in all for an agent
    /// that is not there yet or has no identity for the workload yet.
    pub oneshot_max_wait: std::time::Duration,
    /// Where each key that is set came from (`file` or `environment`), as
    /// `cert_dir` or `health_checks.bind_port`; the rest are defaults.
    pub sources: std::collections::BTreeMap<String, &'static str>,
}

/// Where configuration comes from besides the file.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `-expandEnv`: `$VAR` and `${VAR}` in the file replaced first.
    pub expand_env: bool,
    /// The environment's `SPIFFE_HLP_` variables (others are ignored).
    pub vars: Vec<(String, String)>,
}

impl Config {
    /// The parts of the configuration that differ in `new`, by name, for
    /// the reload's log line.
    pub fn changes(&self, new: &Config) -> Vec<&'static str> {
        fn differ<T: fmt::Debug>(a: &T, b: &T) -> bool {
            format!("{a:?}") != format!("{b:?}")
        }
        let (o, n) = (self, new);
        let (op, np) = (&o.process, &n.process);
        [
            ("agent_address", o.agent_socket != n.agent_socket),
            ("cert_dir", o.cert_dir != n.cert_dir),
            ("hint", o.hint != n.hint),
            ("x509 outputs", differ(&o.x509, &n.x509)),
            ("jwt_svids", differ(&o.jwt_svids, &n.jwt_svids)),
            ("jwt_bundle_file_name", differ(&o.jwt_bundle, &n.jwt_bundle)),
            ("cmd", differ(&op.cmd, &np.cmd)),
            (
                "process",
                differ(
                    &(&op.pid_file, op.renew_signal, op.exit_policy),
                    &(&np.pid_file, np.renew_signal, np.exit_policy),
                ),
            ),
            ("health_checks", differ(&o.health, &n.health)),
            (
                "logging",
                differ(&(o.log_level, o.log_format), &(n.log_level, n.log_format)),
            ),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

impl Sources {
    /// From the process environment.
    pub fn from_process(expand_env: bool) -> Self {
        Self {
            expand_env,
            vars: std::env::vars_os()
                .filter_map(|(k, v)| {
                    Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
                })
                .filter(|(k, _)| k.starts_with(environ::PREFIX))
                .collect(),
        }
    }
}

/// `log_format`: human-readable lines or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The default of `oneshot_max_wait`: at least as long as the Go helper's
/// PermissionDenied schedule (10 ms x 5^k) waits in all, about 81 minutes.
pub const DEFAULT_ONESHOT_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(82 * 60);

/// One file to write: `cert_dir` joined with the configured name, and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub mode: u32,
}

/// Everything the X.509 stream feeds; present when at least one of its
/// outputs is configured.
#[derive(Debug, Clone)]
pub struct X509Output {
    /// The three `svid_*` files, when set.
    pub files: Option<SvidFiles>,
    /// `credential_bundle_file_name`: key then chain in one file, mode
    /// `key_file_mode`.
    pub credential_bundle: Option<OutputFile>,
    /// `trust_bundles_dir`: one `<trust domain>.pem` per trust domain.
    pub trust_bundles: Option<TrustBundlesDir>,
    /// The PKCS#12 keystore and truststore, when either is configured.
    pub pkcs12: Option<Pkcs12Output>,
    pub add_intermediates_to_bundle: bool,
    pub include_federated_domains: bool,
    pub omit_expired: bool,
}

/// `pkcs12_file_name` (mode `key_file_mode`), `pkcs12_truststore_file_name`
/// (mode `cert_file_mode`), the password (the first line of
/// `pkcs12_password_file`, read when the configuration is loaded) and
/// `pkcs12_profile`.
#[derive(Clone)]
pub struct Pkcs12Output {
    pub keystore: Option<OutputFile>,
    pub truststore: Option<OutputFile>,
    pub password: String,
    pub password_file: PathBuf,
    pub profile: crate::pkcs12::Profile,
}

impl fmt::Debug for Pkcs12Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs12Output")
            .field("keystore", &self.keystore)
            .field("truststore", &self.truststore)
            .field("password", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("profile", &self.profile)
            .finish()
    }
}

/// The three `svid_*` files.
#[derive(Debug, Clone)]
pub struct SvidFiles {
    /// `svid_file_name`, mode `cert_file_mode`.
    pub svid: OutputFile,
    /// `svid_key_file_name`, mode `key_file_mode`.
    pub key: OutputFile,
    /// `svid_bundle_file_name`, mode `cert_file_mode`.
    pub bundle: OutputFile,
}

/// `trust_bundles_dir` (joined with `cert_dir`) and the mode of its files
/// (`cert_file_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundlesDir {
    pub dir: PathBuf,
    pub mode: u32,
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
    /// `cmd_exit_policy`.
    pub exit_policy: ExitPolicy,
}

/// `cmd_exit_policy`: what happens when `cmd` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitPolicy {
    /// `relaunch_on_renewal` (upstream): started again at the next renewal.
    #[default]
    RelaunchOnRenewal,
    /// `restart`: started again after a backoff from 1 s doubling to 30 s,
    /// reset once it has run for a minute.
    Restart,
    /// `exit`: the helper exits with the child's exit code.
    Exit,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub listener_enabled: bool,
    pub bind_port: u16,
    pub liveness_path: String,
    pub readiness_path: String,
    /// `bind_address`; `None`: every interface (dual-stack `[::]`).
    pub bind_address: Option<std::net::IpAddr>,
    /// `metrics_path` (default `/metrics`); `None` when set to `""`.
    pub metrics_path: Option<String>,
    /// `status_path` (default `/status`); `None` when set to `""`.
    pub status_path: Option<String>,
}

/// Defaults, as in the Go helper.
const DEFAULT_CERT_FILE_MODE: u32 = 0o644;
const DEFAULT_KEY_FILE_MODE: u32 = 0o600;
const DEFAULT_JWT_BUNDLE_FILE_MODE: u32 = 0o600;
const DEFAULT_JWT_SVID_FILE_MODE: u32 = 0o600;
const DEFAULT_BIND_PORT: u16 = 8081;
const DEFAULT_LIVENESS_PATH: &str = "/live";
const DEFAULT_READINESS_PATH: &str = "/ready";
const DEFAULT_METRICS_PATH: &str = "/metrics";
const DEFAULT_STATUS_PATH: &str = "/status";

/// The largest configuration file read: anything longer is refused
/// without reading past the limit.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// How many problems an error message lists before summing up the rest.
const SHOWN_PROBLEMS: usize = 40;

/// A configuration and the warnings found while reading it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read, or is larger than [`MAX_FILE_SIZE`].
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read and is wrong: every problem found, and the
    /// warnings found along the way (print them with the problems).
    #[error("{}", Invalid { origin, problems })]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
        warnings: Vec<String>,
        /// `log_format` as the file gave it, so the errors come out in it.
        log_format: LogFormat,
    },
}

impl ConfigError {
    /// The warnings found before the file was judged invalid; empty when
    /// it could not be read.
    pub fn warnings(&self) -> &[String] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { warnings, .. } => warnings,
        }
    }

    /// The `log_format` the file asked for, where it could be read.
    pub fn log_format(&self) -> LogFormat {
        match self {
            ConfigError::Read { .. } => LogFormat::Text,
            ConfigError::Invalid { log_format, .. } => *log_format,
        }
    }
}

/// Renders the problems one to a line, compiler style, at most
/// [`SHOWN_PROBLEMS`] of them.
struct Invalid<'a> {
    origin: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration file {} ({n} problem{}):",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems.iter().take(SHOWN_PROBLEMS) {
            match p.line {
                Some(l) => write!(f, "\n  {} line {l}: {}", self.origin, p.message)?,
                None => write!(f, "\n  {}: {}", self.origin, p.message)?,
            }
        }
        if n > SHOWN_PROBLEMS {
            write!(f, "\n  ... and {} more problems", n - SHOWN_PROBLEMS)?;
        }
        Ok(())
    }
}

/// Reads and validates the file. `daemon_mode_flag` is `-daemon-mode` when
/// given; `env` reads environment variables (a parameter for tests).
pub fn load(
    path: &Path,
    daemon_mode_flag: Option<bool>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    load_with(path, daemon_mode_flag, &Sources::default(), env)
}

/// [`load`], with the environment's variables and `-expandEnv`.
pub fn load_with(
    path: &Path,
    daemon_mode_flag: Option<bool>,
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it is larger than {MAX_FILE_SIZE} bytes (1 MiB), the most a configuration file may hold"),
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let valid = String::from_utf8_lossy(&bytes[..at]);
            let (line, column) = tree::position(&valid, at);
            return Err(ConfigError::Invalid {
                origin: path.display().to_string(),
                problems: vec![Problem {
                    line: Some(line),
                    message: format!(
                        "the file is not UTF-8 text: byte {at} (line {line}, column {column}) is 0x{:02x}",
                        bytes[at]
                    ),
                }],
                warnings: Vec::new(),
                log_format: LogFormat::Text,
            });
        }
    };
    parse_with(&text, path, daemon_mode_flag, sources, env)
}

/// Validates configuration text read from `origin`.
pub fn parse(
    text: &str,
    origin: &Path,
    daemon_mode_flag: Option<bool>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    parse_with(text, origin, daemon_mode_flag, &Sources::default(), env)
}

/// [`parse`], with the environment's variables and `-expandEnv`.
pub fn parse_with(
    text: &str,
    origin: &Path,
    daemon_mode_flag: Option<bool>,
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let origin_name = origin.display().to_string();
    let expanded;
    let text = if sources.expand_env {
        expanded = environ::expand(text, env);
        expanded.as_str()
    } else {
        text
    };
    let mut doc = syntax::parse(text).map_err(|e| ConfigError::Invalid {
        origin: origin_name.clone(),
        problems: vec![Problem {
            line: Some(e.line),
            message: format!(
                "syntax error at line {}, column {}: {}",
                e.line, e.column, e.message
            ),
        }],
        warnings: Vec::new(),
        log_format: LogFormat::Text,
    })?;
    let mut report = read::Report::new(origin_name, doc.format);
    for (line, warning) in doc.warnings {
        report.warn(Some(line), warning);
    }
    let mut from: std::collections::BTreeMap<String, &'static str> =
        std::collections::BTreeMap::new();
    for e in &doc.entries {
        let key = e.key.to_ascii_lowercase();
        if key == "health_checks" {
            if let tree::Value::Object(inner) = &e.node.value {
                for i in inner {
                    from.insert(
                        format!("health_checks.{}", i.key.to_ascii_lowercase()),
                        "file",
                    );
                }
            }
        } else {
            from.insert(key, "file");
        }
    }
    let overlay = environ::overlay(&sources.vars);
    for w in &overlay.warnings {
        report.warn(None, w.clone());
    }
    for k in &overlay.keys {
        from.insert(k.clone(), "environment");
    }
    environ::apply(&mut doc.entries, &overlay);
    report.name_lines(overlay.names);
    let raw = read::read(&doc.entries, &mut report);
    let mut config = rules::validate(raw, origin, daemon_mode_flag, env, &mut report);
    if daemon_mode_flag.is_some() {
        from.insert("daemon_mode".to_owned(), "command line");
    }
    config.sources = from;
    report.finish(config)
}

/// `cert_dir` joined with a file name the way Go's `path.Join` does: a
/// leading `/` on the name does not escape `cert_dir`.
fn join_go(dir: &Path, name: &str) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(name)
    } else {
        dir.join(name.trim_start_matches('/'))
    }
}

/// Go's `path.Clean`: one slash between elements, no `.` elements, `..`
/// resolved lexically, no trailing slash; empty is `.`.
pub fn go_clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// A signal name with or without the `SIG` prefix, any case.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse().ok()
}

/// Helpers for the tests of every part of the configuration.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn no_env(_: &str) -> Option<String> {
        None
    }

    pub fn load_text(text: &str) -> Result<Loaded, ConfigError> {
        parse(text, Path::new("helper.conf"), None, &no_env)
    }

    pub fn ok(text: &str) -> Config {
        match load_text(text) {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn warnings(text: &str) -> Vec<String> {
        match load_text(text) {
            Ok(l) => l.warnings,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn problems(text: &str) -> Vec<Problem> {
        match load_text(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// The only problem's message.
    pub fn problem(text: &str) -> String {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].message.clone()
    }

    /// [`load_text`] with these `SPIFFE_HLP_` variables set.
    pub fn load_env(text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let sources = Sources {
            expand_env: false,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        parse_with(text, Path::new("helper.conf"), None, &sources, &no_env)
    }

    pub fn error_text(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    pub const SVID: &str = "svid_file_name = \"s.pem\"\nsvid_key_file_name = \"k.pem\"\nsvid_bundle_file_name = \"b.pem\"\n";
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn defaults() {
        let c = ok(SVID);
        assert_eq!(c.agent_socket, PathBuf::from(endpoint::DEFAULT_SOCKET));
        assert!(c.daemon_mode);
        assert_eq!(c.hint, None);
        let x509 = c.x509.unwrap();
        let x = x509.files.clone().unwrap();
        assert_eq!(
            x.svid,
            OutputFile {
                path: "s.pem".into(),
                mode: 0o644
            }
        );
        assert_eq!(
            x.key,
            OutputFile {
                path: "k.pem".into(),
                mode: 0o600
            }
        );
        assert_eq!(x.bundle.mode, 0o644);
        assert!(x509.credential_bundle.is_none() && x509.trust_bundles.is_none());
        assert!(
            !x509.add_intermediates_to_bundle
                && !x509.include_federated_domains
                && !x509.omit_expired
        );
        assert!(c.jwt_svids.is_empty() && c.jwt_bundle.is_none());
        assert!(c.process.cmd.is_none() && c.process.pid_file.is_none());
        assert_eq!(c.process.exit_policy, ExitPolicy::RelaunchOnRenewal);
        assert!(!c.health.listener_enabled);
        assert_eq!(c.health.bind_port, 8081);
        assert_eq!(
            (
                c.health.liveness_path.as_str(),
                c.health.readiness_path.as_str()
            ),
            ("/live", "/ready")
        );
        assert_eq!(c.health.bind_address, None);
        assert_eq!(c.health.metrics_path.as_deref(), Some("/metrics"));
        assert_eq!(c.health.status_path.as_deref(), Some("/status"));
        assert_eq!(c.log_level, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.oneshot_max_wait, DEFAULT_ONESHOT_MAX_WAIT);
    }

    /// A file that sets every key.
    const EVERY_KEY: &str = r#"
# a comment
agent_address = "/run/spire/agent.sock"   // another
cert_dir = "/certs"
svid_file_name = "svid.pem"
svid_key_file_name = "/svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
credential_bundle_file_name = "credentials.pem"
trust_bundles_dir = "bundles"
add_intermediates_to_bundle = true
include_federated_domains = true
omit_expired = true
hint = "internal"
jwt_bundle_file_name = "jwt_bundle.json"
cert_file_mode = 0640
key_file_mode = 0400
jwt_bundle_file_mode = 0444
jwt_svid_file_mode = 0440
daemon_mode = true
cmd = "/usr/sbin/nginx"
cmd_args = "-g \"daemon off;\""
cmd_exit_policy = "restart"
pid_file_name = "/run/nginx.pid"
renew_signal = "SIGHUP"
log_level = "Debug"
log_format = "json"
oneshot_max_wait = "10m"
/* block comment */
jwt_svids = [
  {
    jwt_audience = "db"
    jwt_extra_audiences = ["cache", "queue"]
    jwt_svid_file_name = "db.token"
  },
  { jwt_audience = "web", jwt_svid_file_name = "web.token" },
]
health_checks {
  listener_enabled = true
  bind_port = 9090
  bind_address = "127.0.0.1"
  liveness_path = "/healthz"
  readiness_path = "/readyz"
  metrics_path = "/prom"
  status_path = ""
}
"#;

    #[test]
    fn every_key_in_hcl() {
        let c = ok(EVERY_KEY);
        assert_eq!(c.agent_socket, PathBuf::from("/run/spire/agent.sock"));
        let x509 = c.x509.unwrap();
        let x = x509.files.clone().unwrap();
        assert_eq!(x.svid.path, PathBuf::from("/certs/svid.pem"));
        // As Go's path.Join: a leading slash stays inside cert_dir.
        assert_eq!(x.key.path, PathBuf::from("/certs/svid_key.pem"));
        assert_eq!(
            (x.svid.mode, x.key.mode, x.bundle.mode),
            (0o640, 0o400, 0o640)
        );
        assert_eq!(
            x509.credential_bundle,
            Some(OutputFile {
                path: "/certs/credentials.pem".into(),
                mode: 0o400
            })
        );
        assert_eq!(
            x509.trust_bundles,
            Some(TrustBundlesDir {
                dir: "/certs/bundles".into(),
                mode: 0o640
            })
        );
        assert!(
            x509.add_intermediates_to_bundle && x509.include_federated_domains && x509.omit_expired
        );
        assert_eq!(c.hint.as_deref(), Some("internal"));
        assert_eq!(
            c.jwt_bundle,
            Some(OutputFile {
                path: "/certs/jwt_bundle.json".into(),
                mode: 0o444
            })
        );
        assert_eq!(c.jwt_svids.len(), 2);
        assert_eq!(c.jwt_svids[0].audiences(), ["db", "cache", "queue"]);
        assert_eq!(
            c.jwt_svids[0].file,
            OutputFile {
                path: "/certs/db.token".into(),
                mode: 0o440
            }
        );
        assert_eq!(c.jwt_svids[1].audiences(), ["web"]);
        assert_eq!(
            c.process.cmd,
            Some(Command {
                program: "/usr/sbin/nginx".into(),
                args: vec!["-g".into(), "daemon off;".into()]
            })
        );
        assert_eq!(c.process.exit_policy, ExitPolicy::Restart);
        assert_eq!(c.process.pid_file, Some(PathBuf::from("/run/nginx.pid")));
        assert_eq!(c.process.renew_signal, Some(Signal::SIGHUP));
        assert_eq!(c.log_level, Some(tracing::Level::DEBUG));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.oneshot_max_wait, std::time::Duration::from_secs(600));
        let h = c.health;
        assert!(h.listener_enabled);
        assert_eq!(h.bind_port, 9090);
        assert_eq!(h.bind_address, Some([127, 0, 0, 1].into()));
        assert_eq!(h.liveness_path, "/healthz");
        assert_eq!(h.readiness_path, "/readyz");
        assert_eq!(h.metrics_path.as_deref(), Some("/prom"));
        assert_eq!(h.status_path, None);
    }

    #[test]
    fn json_document() {
        let l = load_text(
            r#"{
  "cert_dir": "certs",
  "jwt_svids": [{"jwt_audience": "a", "jwt_svid_file_name": "t"}],
  "cert_file_mode": "0640",
  "key_file_mode": 384,
  "daemon_mode": false,
  "health_checks": {"listener_enabled": true, "bind_port": 1234},
  "log_level": "warn"
}"#,
        )
        .unwrap();
        // The one warning: the Go helper cannot read jwt_svids from JSON.
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(
            l.warnings[0].starts_with("helper.conf line 3: the Go helper cannot read jwt_svids"),
            "{:?}",
            l.warnings
        );
        let c = l.config;
        assert_eq!(c.jwt_svids[0].file.path, PathBuf::from("certs/t"));
        assert!(!c.daemon_mode);
        assert_eq!(c.health.bind_port, 1234);
        assert_eq!(c.log_level, Some(tracing::Level::WARN));
        let p = problems(
            "{\n  \"cert_dir\": \"c\",\n  \"jwt_bundle_file_name\": \"b\",\n  \"bogus\": 1\n}",
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(4));
        // A repeated JSON key: the last value wins, as in HCL v1.
        let l = load_text("{\"jwt_bundle_file_name\": \"a\",\n\"jwt_bundle_file_name\": \"b\"}")
            .unwrap();
        assert_eq!(l.config.jwt_bundle.unwrap().path, PathBuf::from("b"));
        assert_eq!(
            l.warnings,
            ["helper.conf line 2: jwt_bundle_file_name is set twice (lines 1 and 2); the last value is used"]
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = error_text("cert_dir = \"certs\"\nsvid_file_name = \n= oops\n");
        assert_eq!(
            e,
            "invalid configuration file helper.conf (1 problem):\n  helper.conf line 3: syntax error at line 3, column 1: expected a value (a string, a number, true, false, a [list] or an { object }), found '='"
        );
        // An unterminated string is reported on its own line.
        let p =
            problems("cert_dir = \"certs\"\nhint = \"h\"\nsvid_file_name = \"svid.pem\nx = 1\n");
        assert_eq!(p[0].line, Some(3));
        assert_eq!(
            p[0].message,
            "syntax error at line 3, column 18: string not terminated: a string must end on the line it starts on (use a heredoc for several lines)"
        );
    }

    #[test]
    fn at_most_forty_problems_are_shown() {
        let text: String = (0..100).map(|i| format!("bogus{i} = 1\n")).collect();
        let e = load_text(&text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &e else {
            panic!("{e:?}")
        };
        // 100 unknown keys and nothing to write.
        assert_eq!(problems.len(), 101);
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 1 + 40 + 1, "{shown}");
        assert_eq!(
            lines[0],
            "invalid configuration file helper.conf (101 problems):"
        );
        assert_eq!(lines[1], "  helper.conf line 1: unknown key \"bogus0\"");
        assert_eq!(lines[41], "  ... and 61 more problems");
        // Forty in all: every one shown, nothing counted.
        let text: String = (0..39).map(|i| format!("bogus{i} = 1\n")).collect();
        let shown = load_text(&text).unwrap_err().to_string();
        assert_eq!(shown.lines().count(), 1 + 40, "{shown}");
        assert!(!shown.contains("more problems"), "{shown}");
    }

    #[test]
    fn a_reload_names_what_changed() {
        let old = ok(SVID);
        assert!(old.changes(&ok(SVID)).is_empty());
        let new = ok(&format!(
            "{SVID}agent_address = \"/a.sock\"\ncert_dir = \"c\"\ncmd = \"x\"\nlog_level = \"debug\"\nhint = \"db\"\n"
        ));
        assert_eq!(
            old.changes(&new),
            [
                "agent_address",
                "cert_dir",
                "hint",
                "x509 outputs",
                "cmd",
                "logging"
            ]
        );
        let new = ok(&format!(
            "{SVID}jwt_bundle_file_name = \"b.json\"\nrenew_signal = \"SIGHUP\"\npid_file_name = \"p\"\nhealth_checks {{\n  listener_enabled = true\n}}\n"
        ));
        assert_eq!(
            old.changes(&new),
            ["jwt_bundle_file_name", "process", "health_checks"]
        );
    }

    #[test]
    fn where_each_setting_came_from() {
        let c = load_env(
            &format!("{SVID}health_checks {{\n  bind_port = 8081\n}}\n"),
            &[("SPIFFE_HLP_CERT_DIR", "/certs")],
        )
        .unwrap()
        .config;
        let from: Vec<(&str, &str)> = c.sources.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            from,
            [
                ("cert_dir", "environment"),
                ("health_checks.bind_port", "file"),
                ("svid_bundle_file_name", "file"),
                ("svid_file_name", "file"),
                ("svid_key_file_name", "file"),
            ]
        );
        let s = Sources::from_process(true);
        assert!(s.expand_env);
        assert!(s.vars.iter().all(|(k, _)| k.starts_with("SPIFFE_HLP_")));
    }

    #[test]
    fn the_default_one_shot_wait_outlasts_the_go_helper_s_retries() {
        // The Go helper retries PermissionDenied after 10 ms x 5^k, k = 0
        // to 8: about 81 minutes in all.
        let go: std::time::Duration = (0..9)
            .map(|k| std::time::Duration::from_millis(10 * 5u64.pow(k)))
            .sum();
        assert!(DEFAULT_ONESHOT_MAX_WAIT >= go);
        assert!(DEFAULT_ONESHOT_MAX_WAIT < go + std::time::Duration::from_secs(60));
    }

    #[test]
    fn a_pkcs12_password_is_never_shown() {
        let p = Pkcs12Output {
            keystore: None,
            truststore: None,
            password: "changeit".to_owned(),
            password_file: "pw".into(),
            profile: crate::pkcs12::Profile::default(),
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains("changeit"), "{shown}");
        assert!(shown.contains("password: \"<redacted>\""), "{shown}");
        assert!(shown.contains("password_file: \"pw\""), "{shown}");
    }

    #[test]
    fn warnings_come_with_the_errors() {
        let e = load_text(&format!(
            "{SVID}health_checks {{\n  bind_prot = 1\n}}\nkey_file_mode = -1\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.warnings(),
            ["helper.conf line 5: unknown key \"bind_prot\" in health_checks; did you mean \"bind_port\"? (ignored)"]
        );
        assert!(
            e.to_string().contains("key_file_mode must not be negative"),
            "{e}"
        );
        let read = ConfigError::Read {
            path: "x".into(),
            source: std::io::Error::other("no"),
        };
        assert!(read.warnings().is_empty());
        assert_eq!(read.log_format(), LogFormat::Text);
        // A file that says how to log is logged that way, even when it is
        // invalid.
        let e = load_text("log_format = \"json\"\n").unwrap_err();
        assert_eq!(e.log_format(), LogFormat::Json);
    }

    #[test]
    fn load_caps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.conf");
        std::fs::write(
            &big,
            "#".repeat(usize::try_from(MAX_FILE_SIZE).unwrap() + 1),
        )
        .unwrap();
        let e = load(&big, None, &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read configuration file {}: it is larger than 1048576 bytes (1 MiB), the most a configuration file may hold",
                big.display()
            )
        );
        // Exactly the limit is fine (and here, nothing to write).
        std::fs::write(&big, "#".repeat(usize::try_from(MAX_FILE_SIZE).unwrap())).unwrap();
        assert!(matches!(
            load(&big, None, &no_env),
            Err(ConfigError::Invalid { .. })
        ));
        // An endless file ends at the limit.
        let e = load(Path::new("/dev/zero"), None, &no_env).unwrap_err();
        assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
        let e = load(&dir.path().join("absent.conf"), None, &no_env).unwrap_err();
        assert!(e.to_string().contains("absent.conf"), "{e}");
    }

    #[test]
    fn load_names_a_byte_that_is_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("latin1.conf");
        std::fs::write(&f, b"cert_dir = \"c\"\nhint = \"caf\xe9\"\n").unwrap();
        let e = load(&f, None, &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid configuration file {0} (1 problem):\n  {0} line 2: the file is not UTF-8 text: byte 26 (line 2, column 12) is 0xe9",
                f.display()
            )
        );
    }

    #[test]
    fn signal_names() {
        for n in ["SIGHUP", "HUP", "sighup", "hup"] {
            assert_eq!(parse_signal(n), Some(Signal::SIGHUP), "{n}");
        }
        assert_eq!(parse_signal("SIGUSR1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("SIGWINCH"), Some(Signal::SIGWINCH));
        assert_eq!(parse_signal("SIGBOGUS"), None);
        assert_eq!(parse_signal("1"), None);
    }

    #[test]
    fn the_shipped_example_is_valid_and_quiet() {
        let l = load_text(include_str!("../../helper.conf.example")).unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert!(l.config.x509.is_some());
        assert_eq!(l.config.jwt_svids.len(), 1);
        assert!(l.config.daemon_mode);
    }

    /// The `helper.conf: |` block of a Kubernetes `ConfigMap`.
    fn configmap_helper_conf(yaml: &str) -> String {
        let mut lines = yaml
            .lines()
            .skip_while(|l| l.trim() != "helper.conf: |")
            .skip(1);
        let first = lines.next().expect("helper.conf block");
        let indent = first.len() - first.trim_start().len();
        std::iter::once(first)
            .chain(
                lines.take_while(|l| {
                    l.trim().is_empty() || l.len() - l.trim_start().len() >= indent
                }),
            )
            .map(|l| format!("{}\n", l.get(indent..).map_or("", str::trim_end)))
            .collect()
    }

    #[test]
    fn every_example_configuration_is_valid_and_quiet() {
        let k8s_sidecar =
            configmap_helper_conf(include_str!("../../examples/kubernetes/sidecar.yaml"));
        let k8s_init = configmap_helper_conf(include_str!(
            "../../examples/kubernetes/init-container.yaml"
        ));
        for (name, text) in [
            (
                "systemd",
                include_str!("../../examples/systemd/helper.conf"),
            ),
            ("nginx", include_str!("../../examples/nginx/helper.conf")),
            (
                "docker-compose",
                include_str!("../../examples/docker-compose/helper.conf"),
            ),
            ("kubernetes sidecar", &k8s_sidecar),
            ("kubernetes init container", &k8s_init),
            (
                "ghostunnel",
                include_str!("../../examples/ghostunnel/helper.conf"),
            ),
            (
                "federated client",
                include_str!("../../examples/federated-client/helper.conf"),
            ),
            (
                "wrapper",
                include_str!("../../examples/wrapper/helper.conf"),
            ),
        ] {
            let l = parse(text, Path::new(name), None, &no_env)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings);
        }
        assert!(ok(&k8s_sidecar).health.listener_enabled);
        assert!(!ok(&k8s_init).daemon_mode);
        let ghostunnel = ok(include_str!("../../examples/ghostunnel/helper.conf"));
        let x = ghostunnel.x509.unwrap();
        assert!(x.files.is_none() && x.credential_bundle.is_some() && x.trust_bundles.is_some());
        let wrapper = ok(include_str!("../../examples/wrapper/helper.conf"));
        assert_eq!(wrapper.process.exit_policy, ExitPolicy::Exit);
    }
}
