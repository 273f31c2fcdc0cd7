//! Configuration: the upstream-compatible HCL (or JSON) file, read into
//! private raw structs, then validated into [`Config`], the only type the
//! rest of the program sees.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use tree::{Entry, Node, Value};

pub mod cmd_args;
pub mod endpoint;
mod tree;

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
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
}

/// `log_format`: human-readable lines or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The default of `oneshot_max_wait`: at least as long as the Go helper's
/// `PermissionDenied` schedule (10 ms x 5^k) waits in all, about 81 minutes.
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
    pub add_intermediates_to_bundle: bool,
    pub include_federated_domains: bool,
    pub omit_expired: bool,
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

const TOP_KEYS: &[&str] = &[
    "agent_address",
    "cert_dir",
    "svid_file_name",
    "svid_key_file_name",
    "svid_bundle_file_name",
    "add_intermediates_to_bundle",
    "include_federated_domains",
    "omit_expired",
    "hint",
    "jwt_svids",
    "jwt_bundle_file_name",
    "cert_file_mode",
    "key_file_mode",
    "jwt_bundle_file_mode",
    "jwt_svid_file_mode",
    "daemon_mode",
    "cmd",
    "cmd_args",
    "pid_file_name",
    "renew_signal",
    "health_checks",
    "oneshot_max_wait",
];
const JWT_KEYS: &[&str] = &["jwt_audience", "jwt_extra_audiences", "jwt_svid_file_name"];
const HEALTH_KEYS: &[&str] = &[
    "listener_enabled",
    "bind_port",
    "liveness_path",
    "readiness_path",
];

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
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Invalid { origin, problems })]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Warnings found along with the errors, to be shown with them.
    pub fn warnings(&self) -> &[String] {
        &[]
    }
}

/// Renders every problem on its own line, compiler style.
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
        for p in self.problems {
            match p.line {
                Some(l) => write!(f, "\n  {} line {l}: {}", self.origin, p.message)?,
                None => write!(f, "\n  {}: {}", self.origin, p.message)?,
            }
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
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, daemon_mode_flag, env)
}

/// Validates configuration text read from `origin`.
pub fn parse(
    text: &str,
    origin: &Path,
    daemon_mode_flag: Option<bool>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let origin_name = origin.display().to_string();
    let entries = tree::parse(text).map_err(|e| ConfigError::Invalid {
        origin: origin_name.clone(),
        problems: vec![Problem {
            line: Some(e.line),
            message: format!(
                "syntax error at line {}, column {}: {}",
                e.line, e.column, e.message
            ),
        }],
    })?;
    let mut r = Reader {
        origin: origin_name.clone(),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let config = r.config(&entries, origin, daemon_mode_flag, env);
    if r.problems.is_empty() {
        Ok(Loaded {
            config,
            warnings: r.warnings,
        })
    } else {
        Err(ConfigError::Invalid {
            origin: origin_name,
            problems: r.problems,
        })
    }
}

/// Collects problems and warnings while reading the tree.
struct Reader {
    origin: String,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

/// `cmd_args` as given.
enum RawArgs {
    None,
    Text(String, Option<usize>),
    List(Vec<String>),
}

struct RawJwt {
    line: Option<usize>,
    audience: String,
    extra: Vec<String>,
    file_name: String,
}

impl Reader {
    fn problem(&mut self, line: Option<usize>, message: String) {
        self.problems.push(Problem { line, message });
    }

    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers build the message for this call"
    )]
    fn warn(&mut self, line: Option<usize>, message: String) {
        match line {
            Some(l) => self
                .warnings
                .push(format!("{} line {l}: {message}", self.origin)),
            None => self.warnings.push(format!("{}: {message}", self.origin)),
        }
    }

    /// The entries of one object by key (the last of repeated keys wins,
    /// as in HCL v1), reporting unknown keys.
    fn fields<'a>(
        &mut self,
        entries: &'a [Entry],
        known: &[&str],
        context: &str,
        unknown_is_error: bool,
    ) -> HashMap<String, &'a Entry> {
        let mut map: HashMap<String, &'a Entry> = HashMap::new();
        for e in entries {
            if !known.contains(&e.key.as_str()) {
                let mut message = format!("unknown key {:?}{context}", e.key);
                if let Some(s) = nearest(&e.key, known) {
                    message = format!("{message}; did you mean {s:?}?");
                } else if JWT_KEYS.contains(&e.key.as_str()) {
                    message.push_str("; it belongs inside a jwt_svids entry");
                } else if HEALTH_KEYS.contains(&e.key.as_str()) {
                    message.push_str("; it belongs inside the health_checks block");
                }
                if unknown_is_error {
                    self.problem(e.line, message);
                } else {
                    self.warn(e.line, format!("{message} (ignored)"));
                }
                continue;
            }
            // Repeated `jwt_svids` add entries, as in HCL v1; the caller
            // gathers them.
            if e.key == "jwt_svids" {
                continue;
            }
            if let Some(prev) = map.insert(e.key.clone(), e) {
                let where_ = match (prev.line, e.line) {
                    (Some(a), Some(b)) => format!(" (lines {a} and {b})"),
                    _ => String::new(),
                };
                self.warn(
                    e.line,
                    format!(
                        "{} is set twice{where_}{context}; the last value is used",
                        e.key
                    ),
                );
            }
        }
        map
    }

    fn type_error(&mut self, key: &str, node: &Node, expected: &str) {
        self.problem(
            node.line,
            format!("{key} must be {expected}, not {}", node.value.describe()),
        );
    }

    /// A string; like HCL v1, an integer literal is taken as its text.
    fn string(&mut self, key: &str, e: Option<&&Entry>) -> String {
        let Some(e) = e else { return String::new() };
        match &e.node.value {
            Value::Str(s) | Value::Int(s) => s.clone(),
            _ => {
                self.type_error(key, &e.node, "a string");
                String::new()
            }
        }
    }

    fn boolean(&mut self, key: &str, e: Option<&&Entry>) -> Option<bool> {
        let e = e?;
        if let Value::Bool(b) = &e.node.value {
            Some(*b)
        } else {
            self.type_error(key, &e.node, "true or false");
            None
        }
    }

    /// An integer as Go's `strconv.ParseInt(text, 0, 0)` reads it, from a
    /// number literal or a string; with the literal text.
    fn integer(&mut self, key: &str, e: Option<&&Entry>) -> Option<(i64, String)> {
        let e = e?;
        let text = match &e.node.value {
            Value::Int(t) | Value::Str(t) => t.clone(),
            _ => {
                self.type_error(key, &e.node, "an integer");
                return None;
            }
        };
        if let Some(v) = go_parse_int(&text) {
            Some((v, text))
        } else {
            self.problem(
                e.node.line,
                format!(
                    "{key} must be an integer (decimal, 0-prefixed octal or 0x hex), not {text:?}"
                ),
            );
            None
        }
    }

    fn string_list(&mut self, key: &str, e: Option<&&Entry>) -> Vec<String> {
        let Some(e) = e else { return Vec::new() };
        if let Value::List(items) = &e.node.value {
            items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| match &n.value {
                    Value::Str(s) | Value::Int(s) => Some(s.clone()),
                    _ => {
                        self.type_error(&format!("{key}[{i}]"), n, "a string");
                        None
                    }
                })
                .collect()
        } else {
            self.type_error(key, &e.node, "a list of strings");
            Vec::new()
        }
    }

    /// A file mode: 0 or absent means the default.
    fn mode(&mut self, key: &str, e: Option<&&Entry>, default: u32) -> u32 {
        let Some((v, text)) = self.integer(key, e) else {
            return default;
        };
        let line = e.and_then(|e| e.node.line);
        if v < 0 {
            self.problem(line, format!("{key} must not be negative, got {text}"));
            return default;
        }
        if v == 0 {
            return default;
        }
        // As in the Go helper, only the permission bits reach the file.
        let mode = u32::try_from(v & 0o777).unwrap_or(0);
        let looks_octal = !text.starts_with('0')
            && (3..=4).contains(&text.len())
            && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if looks_octal {
            self.warn(
                line,
                format!(
                    "{key} = {text} is the decimal number {text} (octal {v:#o}), so the files get mode {mode:04o} ({}); write {key} = 0{text} for mode 0{text}",
                    rwx(mode)
                ),
            );
        } else if v > 0o777 {
            self.warn(
                line,
                format!("{key} = {text} has bits above 0777, which are ignored: the files get mode {mode:04o} ({})", rwx(mode)),
            );
        }
        mode
    }

    fn jwt_svids(&mut self, entries: &[Entry]) -> Vec<RawJwt> {
        let mut objects: Vec<(String, &Node)> = Vec::new();
        for e in entries.iter().filter(|e| e.key == "jwt_svids") {
            match &e.node.value {
                Value::List(items) => {
                    for n in items {
                        objects.push((format!("jwt_svids[{}]", objects.len()), n));
                    }
                }
                Value::Object(_) => {
                    objects.push((format!("jwt_svids[{}]", objects.len()), &e.node));
                }
                _ => self.type_error("jwt_svids", &e.node, "a list of objects"),
            }
        }
        let mut out = Vec::new();
        for (name, node) in objects {
            let Value::Object(fields) = &node.value else {
                self.type_error(&name, node, "an object");
                continue;
            };
            let f = self.fields(fields, JWT_KEYS, &format!(" in {name}"), true);
            let audience = self.string(&format!("{name}.jwt_audience"), f.get("jwt_audience"));
            let extra = self.string_list(
                &format!("{name}.jwt_extra_audiences"),
                f.get("jwt_extra_audiences"),
            );
            let file_name = self.string(
                &format!("{name}.jwt_svid_file_name"),
                f.get("jwt_svid_file_name"),
            );
            if audience.is_empty() {
                self.problem(node.line, format!("{name}: jwt_audience is required"));
            }
            if file_name.is_empty() {
                self.problem(node.line, format!("{name}: jwt_svid_file_name is required"));
            }
            out.push(RawJwt {
                line: node.line,
                audience,
                extra,
                file_name,
            });
        }
        out
    }

    fn health(&mut self, e: Option<&&Entry>) -> HealthConfig {
        let mut h = HealthConfig {
            listener_enabled: false,
            bind_port: DEFAULT_BIND_PORT,
            liveness_path: DEFAULT_LIVENESS_PATH.to_owned(),
            readiness_path: DEFAULT_READINESS_PATH.to_owned(),
            bind_address: None,
            metrics_path: Some("/metrics".to_owned()),
            status_path: Some("/status".to_owned()),
        };
        let Some(e) = e else { return h };
        let Value::Object(fields) = &e.node.value else {
            self.type_error("health_checks", &e.node, "a block");
            return h;
        };
        // The Go helper ignores unknown keys here: warn, do not fail.
        let f = self.fields(fields, HEALTH_KEYS, " in health_checks", false);
        h.listener_enabled = self
            .boolean("health_checks.listener_enabled", f.get("listener_enabled"))
            .unwrap_or(false);
        if let Some((port, text)) = self.integer("health_checks.bind_port", f.get("bind_port")) {
            let line = f.get("bind_port").and_then(|e| e.node.line);
            match u16::try_from(port) {
                Ok(0) => {}
                Ok(p) => h.bind_port = p,
                Err(_) if port < 0 => self.problem(
                    line,
                    format!("health_checks.bind_port must not be negative, got {text}"),
                ),
                Err(_) => self.problem(
                    line,
                    format!("health_checks.bind_port must be at most 65535, got {text}"),
                ),
            }
        }
        for (key, slot) in [
            ("liveness_path", &mut h.liveness_path),
            ("readiness_path", &mut h.readiness_path),
        ] {
            let v = self.string(&format!("health_checks.{key}"), f.get(key));
            if !v.is_empty() {
                if !v.starts_with('/') {
                    let line = f.get(key).and_then(|e| e.node.line);
                    self.warn(line, format!("health_checks.{key} = {v:?} does not start with '/', so no request can match it"));
                }
                *slot = v;
            }
        }
        h
    }

    fn config(
        &mut self,
        entries: &[Entry],
        origin: &Path,
        daemon_mode_flag: Option<bool>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Config {
        let f = self.fields(entries, TOP_KEYS, "", true);
        let line = |k: &str| f.get(k).and_then(|e| e.line);

        let agent_address = self.string("agent_address", f.get("agent_address"));
        let cert_dir = PathBuf::from(self.string("cert_dir", f.get("cert_dir")));
        let svid = self.string("svid_file_name", f.get("svid_file_name"));
        let key = self.string("svid_key_file_name", f.get("svid_key_file_name"));
        let bundle = self.string("svid_bundle_file_name", f.get("svid_bundle_file_name"));
        let add_intermediates_to_bundle = self
            .boolean(
                "add_intermediates_to_bundle",
                f.get("add_intermediates_to_bundle"),
            )
            .unwrap_or(false);
        let include_federated_domains = self
            .boolean(
                "include_federated_domains",
                f.get("include_federated_domains"),
            )
            .unwrap_or(false);
        let omit_expired = self
            .boolean("omit_expired", f.get("omit_expired"))
            .unwrap_or(false);
        let hint = self.string("hint", f.get("hint"));
        let jwt_raw = self.jwt_svids(entries);
        let jwt_bundle_name = self.string("jwt_bundle_file_name", f.get("jwt_bundle_file_name"));
        let cert_mode = self.mode(
            "cert_file_mode",
            f.get("cert_file_mode"),
            DEFAULT_CERT_FILE_MODE,
        );
        let key_mode = self.mode(
            "key_file_mode",
            f.get("key_file_mode"),
            DEFAULT_KEY_FILE_MODE,
        );
        let jwt_bundle_mode = self.mode(
            "jwt_bundle_file_mode",
            f.get("jwt_bundle_file_mode"),
            DEFAULT_JWT_BUNDLE_FILE_MODE,
        );
        let jwt_svid_mode = self.mode(
            "jwt_svid_file_mode",
            f.get("jwt_svid_file_mode"),
            DEFAULT_JWT_SVID_FILE_MODE,
        );
        let file_daemon_mode = self.boolean("daemon_mode", f.get("daemon_mode"));
        let cmd = self.string("cmd", f.get("cmd"));
        let cmd_args = match f.get("cmd_args") {
            None => RawArgs::None,
            Some(e) => match &e.node.value {
                Value::List(_) => RawArgs::List(self.string_list("cmd_args", Some(e))),
                _ => RawArgs::Text(self.string("cmd_args", Some(e)), e.node.line),
            },
        };
        let pid_file = self.string("pid_file_name", f.get("pid_file_name"));
        let renew_signal = self.string("renew_signal", f.get("renew_signal"));
        let health = self.health(f.get("health_checks"));
        let oneshot_max_wait = match f.get("oneshot_max_wait") {
            None => DEFAULT_ONESHOT_MAX_WAIT,
            Some(e) => match &e.node.value {
                Value::Int(t) => t.parse::<u64>().map_or_else(
                    |_| {
                        self.problem(e.line, format!("oneshot_max_wait must be a number of seconds or a duration such as \"90s\", not {t}"));
                        DEFAULT_ONESHOT_MAX_WAIT
                    },
                    std::time::Duration::from_secs,
                ),
                Value::Str(t) => {
                    let (n, unit) = t.split_at(t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
                    let scale = match unit {
                        "ms" => Some(1),
                        "s" | "" => Some(1000),
                        "m" => Some(60_000),
                        "h" => Some(3_600_000),
                        _ => None,
                    };
                    if let (Ok(n), Some(scale)) = (n.parse::<u64>(), scale) {
                        std::time::Duration::from_millis(n * scale)
                    } else {
                        {
                            self.problem(e.line, format!("oneshot_max_wait must be a number of seconds or a duration such as \"90s\", not {t:?}"));
                            DEFAULT_ONESHOT_MAX_WAIT
                        }
                    }
                }
                _ => {
                    self.type_error("oneshot_max_wait", &e.node, "a duration");
                    DEFAULT_ONESHOT_MAX_WAIT
                }
            },
        };

        let daemon_mode = daemon_mode_flag.or(file_daemon_mode).unwrap_or(true);
        let daemon_off_by = if daemon_mode_flag == Some(false) {
            "-daemon-mode=false is given"
        } else {
            "daemon_mode is false"
        };

        // The three X.509 names go together.
        let set: Vec<&str> = [
            ("svid_file_name", &svid),
            ("svid_key_file_name", &key),
            ("svid_bundle_file_name", &bundle),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| *k)
        .collect();
        if !set.is_empty() && set.len() < 3 {
            let missing: Vec<&str> = [
                "svid_file_name",
                "svid_key_file_name",
                "svid_bundle_file_name",
            ]
            .into_iter()
            .filter(|k| !set.contains(k))
            .collect();
            self.problem(
                line(set[0]),
                format!(
                    "svid_file_name, svid_key_file_name and svid_bundle_file_name must be set together: {} {} missing",
                    missing.join(" and "),
                    if missing.len() == 1 { "is" } else { "are" }
                ),
            );
        }
        if set.is_empty() && jwt_raw.is_empty() && jwt_bundle_name.is_empty() {
            self.problem(
                None,
                "nothing to write: set svid_file_name, svid_key_file_name and svid_bundle_file_name, or jwt_svids, or jwt_bundle_file_name".to_owned(),
            );
        }

        // Signals are checked now rather than at the first renewal.
        let mut signal = None;
        if !renew_signal.is_empty() {
            if daemon_mode {
                match parse_signal(&renew_signal) {
                    Some(s) => signal = Some(s),
                    None => self.problem(
                        line("renew_signal"),
                        format!("renew_signal {renew_signal:?} is not a signal name (for example SIGHUP or SIGUSR1)"),
                    ),
                }
            } else {
                self.warn(
                    line("renew_signal"),
                    format!("renew_signal is set but {daemon_off_by}: renew_signal is ignored"),
                );
            }
        }
        if !pid_file.is_empty() {
            if !daemon_mode {
                self.problem(
                    line("pid_file_name"),
                    format!("pid_file_name is set but {daemon_off_by}. pid_file_name is only supported in daemon_mode"),
                );
            } else if renew_signal.is_empty() {
                self.problem(
                    line("pid_file_name"),
                    "pid_file_name is set without renew_signal: set renew_signal to the signal the process expects".to_owned(),
                );
            }
        }

        let mut command = None;
        if !cmd.is_empty() && !daemon_mode {
            self.warn(
                line("cmd"),
                format!("cmd is set but {daemon_off_by}: cmd is not run"),
            );
        } else if !cmd.is_empty() {
            let args = match cmd_args {
                RawArgs::None => Vec::new(),
                RawArgs::List(args) => args,
                RawArgs::Text(text, at) => match cmd_args::split(&text) {
                    Ok(split) => {
                        if split.args.iter().any(String::is_empty) {
                            self.warn(at, format!("cmd_args {text:?} gives an empty argument (two spaces in a row?): the argv is {}", shell_words::join(&split.args)));
                        }
                        if split.ignored_rest {
                            self.warn(at, "cmd_args: only its first line is used, as in the Go helper; use a list for more arguments".to_owned());
                        }
                        split.args
                    }
                    Err(e) => {
                        self.problem(
                            at,
                            format!("cmd_args {text:?} cannot be split into arguments: {e} (double quotes group an argument; write \"\" for a literal quote, or give cmd_args as a list)"),
                        );
                        Vec::new()
                    }
                },
            };
            command = Some(Command { program: cmd, args });
        } else if !matches!(cmd_args, RawArgs::None) {
            self.warn(
                line("cmd_args"),
                "cmd_args is set but cmd is not: it is ignored".to_owned(),
            );
        }

        let (address, from) = endpoint::resolve(&agent_address, env);
        let agent_socket = match endpoint::socket_path(&address) {
            Ok(p) => p,
            Err(e) => {
                let what = match from {
                    endpoint::Origin::Key => "agent_address".to_owned(),
                    _ => format!("the environment variable {}", endpoint::ENV),
                };
                self.problem(line("agent_address"), format!("{what}: {e}"));
                PathBuf::new()
            }
        };

        let out = |name: &str, mode: u32| OutputFile {
            path: join_go(&cert_dir, name),
            mode,
        };
        let x509 = (set.len() == 3).then(|| X509Output {
            files: Some(SvidFiles {
                svid: out(&svid, cert_mode),
                key: out(&key, key_mode),
                bundle: out(&bundle, cert_mode),
            }),
            credential_bundle: None,
            trust_bundles: None,
            add_intermediates_to_bundle,
            include_federated_domains,
            omit_expired,
        });
        let jwt_svids = jwt_raw
            .into_iter()
            .map(|j| {
                let _ = j.line;
                JwtSvidOutput {
                    audience: j.audience,
                    extra_audiences: j.extra,
                    file: out(&j.file_name, jwt_svid_mode),
                }
            })
            .collect();
        let jwt_bundle =
            (!jwt_bundle_name.is_empty()).then(|| out(&jwt_bundle_name, jwt_bundle_mode));

        Config {
            source: origin.to_owned(),
            agent_socket,
            hint: (!hint.is_empty()).then_some(hint),
            x509,
            jwt_svids,
            jwt_bundle,
            daemon_mode,
            process: ProcessConfig {
                cmd: command,
                pid_file: (daemon_mode && !pid_file.is_empty()).then(|| PathBuf::from(pid_file)),
                renew_signal: signal,
                exit_policy: ExitPolicy::default(),
            },
            health,
            log_level: None,
            log_format: LogFormat::default(),
            oneshot_max_wait,
        }
    }
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

/// Go's `strconv.ParseInt(text, 0, 64)`: optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal), else decimal.
fn go_parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_owned())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned())
    } else {
        (10, lower)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// `rw-r--r--` for 0o644.
fn rwx(mode: u32) -> String {
    (0..9)
        .map(|i| {
            let bit = 0o400 >> i;
            if mode & bit == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}

/// The valid key closest to a misspelt one, if any is close enough.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let (best, d) = known
        .iter()
        .map(|k| (*k, edit_distance(key, k)))
        .min_by_key(|(_, d)| *d)?;
    let limit = (key.len().max(best.len()) / 3).max(2);
    (d <= limit || best.starts_with(key) || key.starts_with(best)).then_some(best)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_text(text: &str) -> Result<Loaded, ConfigError> {
        parse(text, Path::new("helper.conf"), None, &no_env)
    }

    fn ok(text: &str) -> Config {
        match load_text(text) {
            Ok(l) => l.config,
            Err(e) => panic!("{e}"),
        }
    }

    fn warnings(text: &str) -> Vec<String> {
        load_text(text).unwrap().warnings
    }

    fn problems(text: &str) -> Vec<Problem> {
        match load_text(text) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn error_text(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    const SVID: &str = "svid_file_name = \"s.pem\"\nsvid_key_file_name = \"k.pem\"\nsvid_bundle_file_name = \"b.pem\"\n";

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
        assert!(
            !x509.add_intermediates_to_bundle
                && !x509.include_federated_domains
                && !x509.omit_expired
        );
        assert!(c.jwt_svids.is_empty() && c.jwt_bundle.is_none());
        assert!(c.process.cmd.is_none() && c.process.pid_file.is_none());
        assert!(!c.health.listener_enabled);
        assert_eq!(c.health.bind_port, 8081);
        assert_eq!(
            (
                c.health.liveness_path.as_str(),
                c.health.readiness_path.as_str()
            ),
            ("/live", "/ready")
        );
    }

    #[test]
    fn every_key_in_hcl() {
        let c = ok(r#"
# a comment
agent_address = "/run/spire/agent.sock"   // another
cert_dir = "/certs"
svid_file_name = "svid.pem"
svid_key_file_name = "/svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
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
pid_file_name = "/run/nginx.pid"
renew_signal = "SIGHUP"
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
  liveness_path = "/healthz"
  readiness_path = "/readyz"
}
"#);
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
        assert_eq!(c.process.pid_file, Some(PathBuf::from("/run/nginx.pid")));
        assert_eq!(c.process.renew_signal, Some(Signal::SIGHUP));
        assert!(c.health.listener_enabled);
        assert_eq!(c.health.bind_port, 9090);
        assert_eq!(c.health.liveness_path, "/healthz");
        assert_eq!(c.health.readiness_path, "/readyz");
    }

    #[test]
    fn other_hcl_v1_forms() {
        // Repeated blocks and a single object for jwt_svids; health_checks as an attribute.
        let c = ok(r#"
jwt_svids {
  jwt_audience = "a"
  jwt_svid_file_name = "a.token"
}
jwt_svids {
  jwt_audience = "b"
  jwt_svid_file_name = "b.token"
}
health_checks = { listener_enabled = true }
"#);
        assert_eq!(c.jwt_svids.len(), 2);
        assert_eq!(c.jwt_svids[1].audience, "b");
        assert!(c.health.listener_enabled);
        let c = ok("jwt_svids = { jwt_audience = \"a\", jwt_svid_file_name = \"t\" }\n");
        assert_eq!(c.jwt_svids.len(), 1);
        // HCL v1 reads a number into a string key as its text.
        let c = ok("jwt_bundle_file_name = 12\n");
        assert_eq!(c.jwt_bundle.unwrap().path, PathBuf::from("12"));
    }

    #[test]
    fn json_document() {
        let c = ok(r#"{
  "cert_dir": "certs",
  "jwt_svids": [{"jwt_audience": "a", "jwt_svid_file_name": "t"}],
  "cert_file_mode": "0640",
  "key_file_mode": 384,
  "daemon_mode": false,
  "health_checks": {"listener_enabled": true, "bind_port": 1234}
}"#);
        assert_eq!(c.jwt_svids[0].file.path, PathBuf::from("certs/t"));
        assert!(!c.daemon_mode);
        assert_eq!(c.health.bind_port, 1234);
        let p = problems(
            "{\n  \"cert_dir\": \"c\",\n  \"jwt_bundle_file_name\": \"b\",\n  \"bogus\": 1\n}",
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(4));
    }

    #[test]
    fn modes_read_as_go_reads_them() {
        let mode = |v: &str| {
            ok(&format!("{SVID}cert_file_mode = {v}\n"))
                .x509
                .unwrap()
                .files
                .unwrap()
                .svid
                .mode
        };
        assert_eq!(mode("0644"), 0o644);
        assert_eq!(mode("\"0644\""), 0o644);
        assert_eq!(mode("420"), 0o644);
        assert_eq!(mode("\"420\""), 0o644);
        assert_eq!(mode("\"0x1a4\""), 0o644);
        assert_eq!(mode("\"0o644\""), 0o644);
        assert_eq!(mode("0"), 0o644, "zero means the default");
        // 444 is decimal: 0o674.
        assert_eq!(mode("444"), 0o674);
        // 644 is decimal: 0o1204, and only the permission bits reach the file.
        assert_eq!(mode("644"), 0o204);
    }

    #[test]
    fn a_decimal_mode_that_looks_octal_is_warned_about() {
        let w = warnings(&format!("{SVID}cert_file_mode = 644\n"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("cert_file_mode") && w[0].contains("0204") && w[0].contains("line 4"),
            "{}",
            w[0]
        );
        let w = warnings(&format!("{SVID}key_file_mode = 600\n"));
        assert!(w[0].contains("1130") && w[0].contains("0130"), "{}", w[0]);
        assert!(warnings(&format!("{SVID}cert_file_mode = 0644\n")).is_empty());
        assert!(warnings(&format!("{SVID}cert_file_mode = 2048\n"))[0].contains("bits above 0777"));
        // Even a deliberate decimal is pointed at the unambiguous form.
        let w = warnings(&format!("{SVID}cert_file_mode = 420\n"));
        assert!(w[0].contains("0644 (rw-r--r--)"), "{}", w[0]);
    }

    #[test]
    fn bad_modes_and_ports() {
        for (conf, key) in [
            ("key_file_mode = -1", "key_file_mode must not be negative"),
            ("cert_file_mode = 1.5", "cert_file_mode must be an integer"),
            (
                "cert_file_mode = \"rw\"",
                "cert_file_mode must be an integer",
            ),
            ("cert_file_mode = 0999", "cert_file_mode must be an integer"),
            (
                "jwt_svid_file_mode = true",
                "jwt_svid_file_mode must be an integer",
            ),
            (
                "health_checks {\n bind_port = -5\n}",
                "bind_port must not be negative",
            ),
            (
                "health_checks {\n bind_port = 70000\n}",
                "bind_port must be at most 65535",
            ),
        ] {
            let e = error_text(&format!("{SVID}{conf}\n"));
            assert!(e.contains(key), "{conf}: {e}");
        }
    }

    #[test]
    fn unknown_keys_name_line_and_nearest_key() {
        let p = problems(&format!("{SVID}svid_bundle_file = \"x\"\n"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(4));
        assert!(
            p[0].message.contains("\"svid_bundle_file\"")
                && p[0].message.contains("\"svid_bundle_file_name\""),
            "{:?}",
            p[0]
        );
        let p = problems("jwt_svids = [{ jwt_audience = \"a\",\n jwt_svid_file = \"t\" }]\n");
        assert!(
            p[0].message.contains("jwt_svids[0]") && p[0].message.contains("jwt_svid_file_name"),
            "{p:?}"
        );
        assert_eq!(p[0].line, Some(2));
        let p = problems(&format!("{SVID}jwt_audience = \"a\"\n"));
        assert!(p[0].message.contains("inside a jwt_svids entry"), "{p:?}");
        let p = problems(&format!("{SVID}zzzzzzzz = 1\n"));
        assert!(!p[0].message.contains("did you mean"), "{p:?}");
        // Unknown keys in health_checks are ignored by the Go helper: a warning here.
        let w = warnings(&format!("{SVID}health_checks {{\n  bind_prot = 1\n}}\n"));
        assert!(
            w[0].contains("bind_prot") && w[0].contains("bind_port"),
            "{w:?}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        for (conf, key) in [
            ("daemon_mode = \"sometimes\"", "daemon_mode must be true or false"),
            ("cert_dir = [\"a\"]", "cert_dir must be a string"),
            ("hint = true", "hint must be a string"),
            ("jwt_svids = \"x\"", "jwt_svids must be a list of objects"),
            ("jwt_svids = [\"x\"]", "jwt_svids[0] must be an object"),
            ("jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\", jwt_extra_audiences = \"b\" }]", "jwt_svids[0].jwt_extra_audiences must be a list of strings"),
            ("health_checks = 1", "health_checks must be a block"),
            ("cmd = \"x\"\ncmd_args = [1.5]", "cmd_args[0] must be a string"),
            ("cert_dir = certs", "bare word"),
        ] {
            let e = error_text(&format!("{SVID}{conf}\n"));
            assert!(e.contains(key), "{conf}: {e}");
        }
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = error_text("cert_dir = \"certs\"\nsvid_file_name = \n= oops\n");
        assert!(
            e.contains("syntax error at line") && e.contains("column"),
            "{e}"
        );
        assert!(e.contains("helper.conf"), "{e}");
    }

    #[test]
    fn output_rules() {
        let e = error_text("svid_file_name = \"s\"\nsvid_key_file_name = \"k\"\n");
        assert!(e.contains("svid_bundle_file_name is missing"), "{e}");
        let e = error_text("svid_key_file_name = \"k\"\n");
        assert!(
            e.contains("svid_file_name and svid_bundle_file_name are missing"),
            "{e}"
        );
        let e = error_text("cert_dir = \"c\"\n");
        assert!(e.contains("nothing to write"), "{e}");
        let e = error_text("jwt_svids = [{ jwt_svid_file_name = \"t\" }]\n");
        assert!(e.contains("jwt_svids[0]: jwt_audience is required"), "{e}");
        let e = error_text("jwt_svids = [{ jwt_audience = \"a\" }]\n");
        assert!(
            e.contains("jwt_svids[0]: jwt_svid_file_name is required"),
            "{e}"
        );
        assert!(ok("jwt_bundle_file_name = \"b.json\"\n")
            .jwt_bundle
            .is_some());
    }

    #[test]
    fn process_rules() {
        let e = error_text(&format!("{SVID}pid_file_name = \"p\"\n"));
        assert!(e.contains("without renew_signal"), "{e}");
        let e = error_text(&format!(
            "{SVID}pid_file_name = \"p\"\nrenew_signal = \"SIGHUP\"\ndaemon_mode = false\n"
        ));
        assert!(
            e.contains("pid_file_name is only supported in daemon_mode"),
            "{e}"
        );
        let e = error_text(&format!("{SVID}renew_signal = \"SIGBOGUS\"\n"));
        assert!(
            e.contains("renew_signal \"SIGBOGUS\" is not a signal name"),
            "{e}"
        );
        // One-shot: cmd and renew_signal are ignored with warnings, even a bogus signal.
        let l = load_text(&format!(
            "{SVID}daemon_mode = false\ncmd = \"x\"\nrenew_signal = \"BOGUS\"\n"
        ))
        .unwrap();
        assert!(l.config.process.cmd.is_none() && l.config.process.renew_signal.is_none());
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(l
            .warnings
            .iter()
            .all(|w| w.contains("daemon_mode is false")));
        // The flag overrides the file, and messages say so.
        let l = parse(
            &format!("{SVID}cmd = \"x\"\n"),
            Path::new("h.conf"),
            Some(false),
            &no_env,
        )
        .unwrap();
        assert!(!l.config.daemon_mode);
        assert!(
            l.warnings[0].contains("-daemon-mode=false"),
            "{:?}",
            l.warnings
        );
        let l = parse(
            &format!("{SVID}daemon_mode = false\n"),
            Path::new("h.conf"),
            Some(true),
            &no_env,
        )
        .unwrap();
        assert!(l.config.daemon_mode);
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
    fn cmd_args_string_list_and_errors() {
        let cmd = |extra: &str| {
            ok(&format!("{SVID}cmd = \"/bin/sh\"\n{extra}\n"))
                .process
                .cmd
                .unwrap()
                .args
        };
        assert!(cmd("").is_empty());
        assert_eq!(cmd(r#"cmd_args = "-c 'echo hi'""#), ["-c", "'echo", "hi'"]);
        assert_eq!(
            cmd(r#"cmd_args = ["-c", "echo 'hi there'"]"#),
            ["-c", "echo 'hi there'"]
        );
        let e = error_text(&format!(
            "{SVID}cmd = \"x\"\ncmd_args = \"-c \\\"unterminated\"\n"
        ));
        assert!(
            e.contains("cmd_args") && e.contains("extraneous or missing \" in quoted-field"),
            "{e}"
        );
        let w = warnings(&format!("{SVID}cmd = \"x\"\ncmd_args = \"a  b\"\n"));
        assert!(
            w[0].contains("empty argument") && w[0].contains("a '' b"),
            "{w:?}"
        );
        let w = warnings(&format!("{SVID}cmd_args = \"a\"\n"));
        assert!(w[0].contains("cmd is not"), "{w:?}");
    }

    #[test]
    fn agent_address_from_key_environment_or_default() {
        let env =
            |k: &str| (k == "SPIFFE_ENDPOINT_SOCKET").then(|| "unix:///env/agent.sock".to_owned());
        let l = parse(SVID, Path::new("h"), None, &env).unwrap();
        assert_eq!(l.config.agent_socket, PathBuf::from("/env/agent.sock"));
        let l = parse(
            &format!("{SVID}agent_address = \"unix:/k.sock\"\n"),
            Path::new("h"),
            None,
            &env,
        )
        .unwrap();
        assert_eq!(l.config.agent_socket, PathBuf::from("/k.sock"));
        let e = error_text(&format!("{SVID}agent_address = \"tcp:1.2.3.4:5\"\n"));
        assert!(e.contains("agent_address"), "{e}");
        let bad = |_: &str| Some("tcp:1.2.3.4:5".to_owned());
        let e = parse(SVID, Path::new("h"), None, &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SPIFFE_ENDPOINT_SOCKET"), "{e}");
    }

    #[test]
    fn repeated_blocks_warn_and_the_last_wins() {
        let l = load_text(&format!(
            "{SVID}health_checks {{\n  bind_port = 1\n}}\nhealth_checks {{\n  bind_port = 2\n}}\n"
        ))
        .unwrap();
        assert_eq!(l.config.health.bind_port, 2);
        assert!(l.warnings[0].contains("lines 4 and 7"), "{:?}", l.warnings);
        // A repeated attribute is a syntax error in HCL 2, named by line.
        let e = error_text(&format!("{SVID}hint = \"a\"\nhint = \"b\"\n"));
        assert!(e.contains("line 5") && e.contains("redefined"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems("svid_file_nam = \"a\"\nkey_file_mode = -1\npid_file_name = \"p\"\n");
        let text: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert!(p.len() >= 4, "{text:?}");
        let e = error_text("svid_file_nam = \"a\"\nkey_file_mode = -1\n");
        assert!(
            e.starts_with("invalid configuration file helper.conf ("),
            "{e}"
        );
        assert!(
            e.contains("\n  helper.conf line 1: unknown key \"svid_file_nam\""),
            "{e}"
        );
    }

    #[test]
    fn go_integers() {
        for (t, v) in [
            ("0", 0),
            ("10", 10),
            ("010", 8),
            ("0x1F", 31),
            ("0o17", 15),
            ("0b101", 5),
            ("-010", -8),
            ("+7", 7),
        ] {
            assert_eq!(go_parse_int(t), Some(v), "{t}");
        }
        for t in ["", "-", "08", "0x", "1_000", "1.0", " 1", "abc"] {
            assert_eq!(go_parse_int(t), None, "{t}");
        }
    }

    #[test]
    fn the_shipped_example_is_valid_and_quiet() {
        let l = load_text(include_str!("../helper.conf.example")).unwrap();
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
            .fold(String::new(), |mut out, l| {
                out.push_str(l.get(indent..).unwrap_or(""));
                out.push('\n');
                out
            })
    }

    #[test]
    fn every_example_configuration_is_valid_and_quiet() {
        let k8s_sidecar =
            configmap_helper_conf(include_str!("../examples/kubernetes/sidecar.yaml"));
        let k8s_init =
            configmap_helper_conf(include_str!("../examples/kubernetes/init-container.yaml"));
        for (name, text) in [
            ("systemd", include_str!("../examples/systemd/helper.conf")),
            ("nginx", include_str!("../examples/nginx/helper.conf")),
            (
                "docker-compose",
                include_str!("../examples/docker-compose/helper.conf"),
            ),
            ("kubernetes sidecar", &k8s_sidecar),
            ("kubernetes init container", &k8s_init),
        ] {
            let l = parse(text, Path::new(name), None, &no_env)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings);
        }
        assert!(ok(&k8s_sidecar).health.listener_enabled);
        assert!(!ok(&k8s_init).daemon_mode);
    }

    #[test]
    fn nearest_key_suggestions() {
        assert_eq!(nearest("svid_file", TOP_KEYS), Some("svid_file_name"));
        assert_eq!(nearest("jwt_svid", TOP_KEYS), Some("jwt_svids"));
        assert_eq!(nearest("agentAddress", TOP_KEYS), Some("agent_address"));
        assert_eq!(nearest("timeout", TOP_KEYS), None);
        assert_eq!(nearest("agent_adress", TOP_KEYS), Some("agent_address"));
        assert_eq!(rwx(0o640), "rw-r-----");
    }
}
