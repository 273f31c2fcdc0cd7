//! From the tree to typed values, key by key, the way the Go helper's HCL
//! v1 decoder reads them: keys match whatever their case; a key given
//! again replaces the earlier value (lists are joined, repeated
//! `health_checks` blocks are merged, repeated `jwt_svids` add entries); a
//! number is accepted where a string is expected (as its text), and a
//! string where an integer is (read as Go reads integer literals). What
//! comes out is [`Raw`]: typed, not yet checked across keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::number::{self, go_parse_int, DurationError};
use super::suggest::nearest;
use super::tree::{quote, Entry, Format, Node, Value};
use super::{
    Config, ConfigError, ExitPolicy, Loaded, LogFormat, Problem, DEFAULT_CERT_FILE_MODE,
    DEFAULT_JWT_BUNDLE_FILE_MODE, DEFAULT_JWT_SVID_FILE_MODE, DEFAULT_KEY_FILE_MODE,
    DEFAULT_ONESHOT_MAX_WAIT, SHOWN_PROBLEMS,
};

pub(crate) const TOP_KEYS: &[&str] = &[
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
    // Keys of this helper only.
    "credential_bundle_file_name",
    "trust_bundles_dir",
    "cmd_exit_policy",
    "log_level",
    "log_format",
    "oneshot_max_wait",
    "pkcs12_file_name",
    "pkcs12_truststore_file_name",
    "pkcs12_password_file",
    "pkcs12_profile",
];
pub(super) const JWT_KEYS: &[&str] = &["jwt_audience", "jwt_extra_audiences", "jwt_svid_file_name"];
pub(crate) const HEALTH_KEYS: &[&str] = &[
    "listener_enabled",
    "bind_port",
    "liveness_path",
    "readiness_path",
    // Keys of this helper only (the Go helper ignores them).
    "bind_address",
    "metrics_path",
    "status_path",
];

/// Problems and warnings found while reading one file.
pub(super) struct Report {
    origin: String,
    format: Format,
    /// Lines that stand for environment variables, with their names.
    env_lines: Vec<(usize, String)>,
    problems: Vec<Problem>,
    warnings: Vec<(Option<usize>, String)>,
}

impl Report {
    pub fn new(origin: String, format: Format) -> Self {
        Self {
            origin,
            format,
            env_lines: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn problem(&mut self, line: Option<usize>, message: String) {
        self.problems.push(Problem { line, message });
    }

    pub fn warn(&mut self, line: Option<usize>, message: String) {
        self.warnings.push((line, message));
    }

    /// `key = value` as the file would say it.
    pub fn assignment(&self, key: &str, value: &str) -> String {
        match self.format {
            Format::Hcl => format!("{key} = {value}"),
            Format::Json => format!("\"{key}\": {value}"),
        }
    }

    fn block(&self) -> &'static str {
        match self.format {
            Format::Hcl => "a block",
            Format::Json => "an object",
        }
    }

    /// The configuration, or every problem; warnings either way, in file
    /// order, at most [`SHOWN_PROBLEMS`] of them and a count of the rest.
    /// Messages at these lines name the environment variable instead.
    pub fn name_lines(&mut self, names: Vec<(usize, String)>) {
        self.env_lines = names;
    }

    /// A message at an environment variable's line, as that variable's.
    fn as_variable(&self, line: Option<usize>, message: &str) -> Option<String> {
        let l = line?;
        let (_, name) = self.env_lines.iter().find(|(n, _)| *n == l)?;
        Some(format!("environment variable {name}: {message}"))
    }

    pub fn finish(mut self, config: Config) -> Result<Loaded, ConfigError> {
        let env_problems: Vec<Problem> = self
            .problems
            .iter()
            .map(|p| match self.as_variable(p.line, &p.message) {
                Some(message) => Problem {
                    line: None,
                    message,
                },
                None => p.clone(),
            })
            .collect();
        self.problems = env_problems;
        let env_warnings: Vec<(Option<usize>, String)> = self
            .warnings
            .iter()
            .map(|(l, w)| match self.as_variable(*l, w) {
                Some(message) => (None, message),
                None => (*l, w.clone()),
            })
            .collect();
        self.warnings = env_warnings;
        let by_line = |l: &Option<usize>| l.unwrap_or(usize::MAX);
        self.problems.sort_by_key(|p| by_line(&p.line));
        self.warnings.sort_by_key(|(l, _)| by_line(l));
        let n = self.warnings.len();
        let mut warnings: Vec<String> = self
            .warnings
            .into_iter()
            .take(SHOWN_PROBLEMS)
            .map(|(line, w)| match line {
                Some(l) => format!("{} line {l}: {w}", self.origin),
                None => format!("{}: {w}", self.origin),
            })
            .collect();
        if n > SHOWN_PROBLEMS {
            warnings.push(format!(
                "{}: ... and {} more warnings",
                self.origin,
                n - SHOWN_PROBLEMS
            ));
        }
        if self.problems.is_empty() {
            Ok(Loaded { config, warnings })
        } else {
            Err(ConfigError::Invalid {
                origin: self.origin,
                problems: self.problems,
                warnings,
                log_format: config.log_format,
            })
        }
    }
}

/// A string setting: its value (`""` when unset, which the Go helper does
/// not tell from unset) and the line of its key when given.
#[derive(Debug, Clone, Default)]
pub(super) struct Text {
    pub value: String,
    pub line: Option<usize>,
    /// Given, but not as a string (its problem is reported): the rules
    /// that would only repeat it (a missing partner, nothing to write)
    /// stay silent.
    pub invalid: bool,
}

impl Text {
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The value, when not empty.
    pub fn get(&self) -> Option<&str> {
        (!self.value.is_empty()).then_some(self.value.as_str())
    }
}

/// An integer setting as written and as read.
#[derive(Debug, Clone)]
pub(super) struct Int {
    pub value: i64,
    pub text: String,
    pub line: usize,
}

/// `cmd_args` as given.
#[derive(Debug)]
pub(super) enum RawArgs {
    None,
    /// A string, split at validation (only when `cmd` will run).
    Text(String, usize),
    /// A list of strings, the argv as it is.
    List(Vec<String>, usize),
}

#[derive(Debug)]
pub(super) struct RawJwt {
    pub audience: String,
    pub extra: Vec<String>,
    pub file_name: String,
}

/// The `jwt_svids` entries, and whether the key was given in a form that
/// is no list of objects or blocks (its problem is reported: "nothing to
/// write" would only repeat it).
#[derive(Debug, Default)]
pub(super) struct RawJwtSvids {
    pub entries: Vec<RawJwt>,
    pub invalid: bool,
}

#[derive(Debug)]
pub(super) struct RawHealth {
    pub listener_enabled: bool,
    pub bind_port: Option<Int>,
    pub bind_address: Option<IpAddr>,
    pub liveness_path: Text,
    pub readiness_path: Text,
    /// Unset (no line): the default; `""`: off.
    pub metrics_path: Text,
    pub status_path: Text,
}

/// Every key, typed; file modes with their defaults applied.
#[derive(Debug)]
pub(super) struct Raw {
    pub agent_address: Text,
    pub cert_dir: Text,
    pub svid_file_name: Text,
    pub svid_key_file_name: Text,
    pub svid_bundle_file_name: Text,
    pub credential_bundle_file_name: Text,
    pub trust_bundles_dir: Text,
    pub pkcs12_file_name: Text,
    pub pkcs12_truststore_file_name: Text,
    pub pkcs12_password_file: Text,
    pub pkcs12_profile: Option<(crate::pkcs12::Profile, usize)>,
    pub add_intermediates_to_bundle: bool,
    pub include_federated_domains: bool,
    pub omit_expired: bool,
    pub hint: Text,
    pub jwt_svids: RawJwtSvids,
    pub jwt_bundle_file_name: Text,
    pub cert_file_mode: u32,
    pub key_file_mode: u32,
    pub jwt_bundle_file_mode: u32,
    pub jwt_svid_file_mode: u32,
    pub daemon_mode: Option<bool>,
    pub cmd: Text,
    pub cmd_args: RawArgs,
    pub cmd_exit_policy: Option<(ExitPolicy, usize)>,
    pub pid_file_name: Text,
    pub renew_signal: Text,
    pub health: RawHealth,
    pub log_level: Option<tracing::Level>,
    pub log_format: LogFormat,
    pub oneshot_max_wait: Duration,
}

/// The occurrences of each known key, in file order.
struct Fields<'a> {
    by_key: HashMap<&'static str, Vec<&'a Entry>>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> &[&'a Entry] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }
}

/// Whether a key in the file names `known`, ignoring case as Go's
/// `strings.EqualFold` does (which also folds `ſ` to `s` and the Kelvin
/// sign to `k`).
fn same_key(key: &str, known: &str) -> bool {
    let mut k = known.chars();
    key.chars().all(|c| {
        let c = match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        };
        k.next() == Some(c)
    }) && k.next().is_none()
}

fn find_key(key: &str, known: &'static [&'static str]) -> Option<&'static str> {
    known.iter().copied().find(|k| same_key(key, k))
}

/// A list of line numbers for a message: "1 and 2", "1, 2 and 3", at most
/// five of them.
fn line_list(lines: &[usize]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = lines.iter().take(SHOWN).map(usize::to_string).collect();
    match shown.split_last() {
        _ if lines.len() > SHOWN => format!("{}, …", shown.join(", ")),
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => shown.join(""),
    }
}

/// `rw-r--r--` for 0o644.
pub(super) fn rwx(mode: u32) -> String {
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

/// A mode whose group has no permission its owner lacks, and others none
/// the group lacks (0644, 0640, 0600, 0755, 0444): the kind people mean.
fn conventional(mode: u32) -> bool {
    let (user, group, other) = ((mode >> 6) & 7, (mode >> 3) & 7, mode & 7);
    group & !user == 0 && other & !group == 0
}

/// The values `pkcs12_profile` takes.
const PKCS12_PROFILES: &[(&str, crate::pkcs12::Profile)] = &[
    ("modern", crate::pkcs12::Profile::Modern),
    ("legacy", crate::pkcs12::Profile::Legacy),
];

/// The values `cmd_exit_policy` takes.
const EXIT_POLICIES: &[(&str, ExitPolicy)] = &[
    ("relaunch_on_renewal", ExitPolicy::RelaunchOnRenewal),
    ("restart", ExitPolicy::Restart),
    ("exit", ExitPolicy::Exit),
];

/// The values `log_level` takes.
const LOG_LEVELS: &[(&str, tracing::Level)] = &[
    ("trace", tracing::Level::TRACE),
    ("debug", tracing::Level::DEBUG),
    ("info", tracing::Level::INFO),
    ("warn", tracing::Level::WARN),
    ("warning", tracing::Level::WARN),
    ("error", tracing::Level::ERROR),
];

/// The values `log_format` takes.
const LOG_FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

/// Reads every key of the file (in the order of [`Raw`]'s fields, which is
/// the order its problems are reported in).
pub(super) fn read(entries: &[Entry], r: &mut Report) -> Raw {
    let f = r.fields(entries, TOP_KEYS, "", true);
    let path = |r: &mut Report, key: &str| r.path(key, f.get(key), "a path");
    let flag = |r: &mut Report, key: &str| r.boolean(key, f.get(key)).unwrap_or(false);
    let mode = |r: &mut Report, key: &str, default: u32| r.mode(key, f.get(key), default);
    Raw {
        agent_address: path(r, "agent_address"),
        cert_dir: path(r, "cert_dir"),
        svid_file_name: path(r, "svid_file_name"),
        svid_key_file_name: path(r, "svid_key_file_name"),
        svid_bundle_file_name: path(r, "svid_bundle_file_name"),
        credential_bundle_file_name: path(r, "credential_bundle_file_name"),
        trust_bundles_dir: path(r, "trust_bundles_dir"),
        pkcs12_file_name: path(r, "pkcs12_file_name"),
        pkcs12_truststore_file_name: path(r, "pkcs12_truststore_file_name"),
        pkcs12_password_file: path(r, "pkcs12_password_file"),
        pkcs12_profile: r.choice("pkcs12_profile", f.get("pkcs12_profile"), PKCS12_PROFILES),
        add_intermediates_to_bundle: flag(r, "add_intermediates_to_bundle"),
        include_federated_domains: flag(r, "include_federated_domains"),
        omit_expired: flag(r, "omit_expired"),
        hint: r.text("hint", f.get("hint")),
        jwt_svids: r.jwt_svids(f.get("jwt_svids")),
        jwt_bundle_file_name: path(r, "jwt_bundle_file_name"),
        cert_file_mode: mode(r, "cert_file_mode", DEFAULT_CERT_FILE_MODE),
        key_file_mode: mode(r, "key_file_mode", DEFAULT_KEY_FILE_MODE),
        jwt_bundle_file_mode: mode(r, "jwt_bundle_file_mode", DEFAULT_JWT_BUNDLE_FILE_MODE),
        jwt_svid_file_mode: mode(r, "jwt_svid_file_mode", DEFAULT_JWT_SVID_FILE_MODE),
        daemon_mode: r.boolean("daemon_mode", f.get("daemon_mode")),
        cmd: r.path("cmd", f.get("cmd"), "a program name"),
        cmd_args: r.cmd_args(f.get("cmd_args")),
        cmd_exit_policy: r.choice("cmd_exit_policy", f.get("cmd_exit_policy"), EXIT_POLICIES),
        pid_file_name: path(r, "pid_file_name"),
        renew_signal: r.text("renew_signal", f.get("renew_signal")),
        health: r.health(f.get("health_checks")),
        log_level: r
            .choice("log_level", f.get("log_level"), LOG_LEVELS)
            .map(|(l, _)| l),
        log_format: r
            .choice("log_format", f.get("log_format"), LOG_FORMATS)
            .map_or(LogFormat::default(), |(l, _)| l),
        oneshot_max_wait: r.duration("oneshot_max_wait", f.get("oneshot_max_wait")),
    }
}

impl Report {
    /// The known keys of one object, by key. Unknown keys are problems
    /// (warnings when `unknown_is_error` is false, and for quoted keys in
    /// HCL, which the Go helper does not report); a repeated key is
    /// warned about.
    fn fields<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
        known: &'static [&'static str],
        scope: &str,
        unknown_is_error: bool,
    ) -> Fields<'a> {
        let mut by_key: HashMap<&'static str, Vec<&'a Entry>> = HashMap::new();
        for e in entries {
            match find_key(&e.key, known) {
                Some(k) => by_key.entry(k).or_default().push(e),
                None => self.unknown(e, known, scope, unknown_is_error),
            }
        }
        let mut repeated: Vec<(&str, Vec<usize>)> = by_key
            .iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, v)| (*k, v.iter().map(|e| e.line).collect()))
            .collect();
        repeated.sort_by_key(|(_, lines)| lines[0]);
        for (key, lines) in repeated {
            let outcome = match key {
                // Entries add up, blocks merge (their keys are checked).
                "jwt_svids" | "health_checks" => continue,
                "jwt_extra_audiences" => "the lists are joined, as the Go helper joins them",
                _ => "the last value is used",
            };
            let times = match lines.len() {
                2 => "twice".to_owned(),
                n => format!("{n} times"),
            };
            self.warn(
                lines.last().copied(),
                format!(
                    "{} is set {times} (lines {}); {outcome}",
                    scoped(scope, key),
                    line_list(&lines)
                ),
            );
        }
        Fields { by_key }
    }

    fn unknown(&mut self, e: &Entry, known: &[&str], scope: &str, unknown_is_error: bool) {
        let mut message = format!("unknown key {}", quote(&e.key));
        if !scope.is_empty() {
            message = format!("{message} in {scope}");
        }
        if let Some(s) = nearest(&e.key, known) {
            message = format!("{message}; did you mean {s:?}?");
        } else if find_key(&e.key, JWT_KEYS).is_some() {
            message.push_str("; it belongs inside a jwt_svids entry");
        } else if find_key(&e.key, HEALTH_KEYS).is_some() {
            message.push_str("; it belongs inside the health_checks block");
        } else if !scope.is_empty() && find_key(&e.key, TOP_KEYS).is_some() {
            message.push_str("; it belongs at the top level");
        }
        if !unknown_is_error {
            self.warn(Some(e.line), format!("{message} (ignored)"));
        } else if e.quoted && self.format == Format::Hcl {
            self.warn(
                Some(e.line),
                format!("{message} (ignored, as the Go helper ignores an unknown key in quotes)"),
            );
        } else {
            self.problem(Some(e.line), message);
        }
    }

    fn type_error(&mut self, name: &str, node: &Node, expected: &str) {
        let message = match &node.value {
            Value::Undecodable(why) => format!("{name} cannot be read: {why}"),
            other => format!("{name} must be {expected}, not {}", other.describe()),
        };
        self.problem(Some(node.line), message);
    }

    /// A block with labels where a plain value is expected.
    fn labelled(&mut self, name: &str, e: &Entry, expected: &str) -> bool {
        let Some(label) = e.labels.first() else {
            return false;
        };
        self.problem(
            Some(e.line),
            format!(
                "{name} must be {expected}, not a block with the label {}",
                quote(label)
            ),
        );
        true
    }

    /// A string: the last one given. A number counts as its text.
    fn text(&mut self, name: &str, given: &[&Entry]) -> Text {
        let mut out = Text::default();
        for e in given {
            if self.labelled(name, e, "a string") {
                out.invalid = true;
                continue;
            }
            let (value, invalid) = match &e.node.value {
                Value::Str(s) | Value::Int(s) => (s.clone(), false),
                Value::Null => (String::new(), false),
                _ => {
                    self.type_error(name, &e.node, "a string");
                    (String::new(), true)
                }
            };
            out = Text {
                value,
                line: Some(e.line),
                invalid,
            };
        }
        out
    }

    fn no_nul(&mut self, name: &str, value: &str, line: Option<usize>, what: &str) {
        if value.contains('\0') {
            self.problem(
                line,
                format!("{name} contains a NUL character, which {what} cannot hold"),
            );
        }
    }

    /// A string that names a file, a directory, a socket or a program.
    fn path(&mut self, name: &str, given: &[&Entry], what: &str) -> Text {
        let t = self.text(name, given);
        self.no_nul(name, &t.value, t.line, what);
        t
    }

    fn boolean(&mut self, name: &str, given: &[&Entry]) -> Option<bool> {
        let mut out = None;
        for e in given {
            if self.labelled(name, e, "true or false") {
                continue;
            }
            match &e.node.value {
                Value::Bool(b) => out = Some(*b),
                _ => self.type_error(name, &e.node, "true or false"),
            }
        }
        out
    }

    /// An integer as Go's `strconv.ParseInt(text, 0, 0)` reads it, from a
    /// number literal or a string.
    fn integer(&mut self, name: &str, given: &[&Entry]) -> Option<Int> {
        let mut out = None;
        for e in given {
            if self.labelled(name, e, "an integer") {
                continue;
            }
            match &e.node.value {
                Value::Int(t) | Value::Str(t) => match go_parse_int(t) {
                    Some(value) => {
                        out = Some(Int {
                            value,
                            text: t.clone(),
                            line: e.node.line,
                        });
                    }
                    None => self.problem(
                        Some(e.node.line),
                        format!("{name} must be an integer (decimal, 0-prefixed octal or 0x hex), not {}", quote(t)),
                    ),
                },
                _ => self.type_error(name, &e.node, "an integer"),
            }
        }
        out
    }

    /// Strings from a list, or from several lists joined.
    fn string_list(&mut self, name: &str, given: &[&Entry]) -> Vec<String> {
        let mut out = Vec::new();
        for e in given {
            if self.labelled(name, e, "a list of strings") {
                continue;
            }
            let Value::List(items) = &e.node.value else {
                self.type_error(name, &e.node, "a list of strings");
                continue;
            };
            for (i, n) in items.iter().enumerate() {
                match &n.value {
                    Value::Str(s) | Value::Int(s) => out.push(s.clone()),
                    _ => self.type_error(&format!("{name}[{i}]"), n, "a string"),
                }
            }
        }
        out
    }

    /// A file mode: 0 or absent means the default; only the permission
    /// bits reach the file, as in the Go helper.
    fn mode(&mut self, key: &str, given: &[&Entry], default: u32) -> u32 {
        let Some(Int { value, text, line }) = self.integer(key, given) else {
            return default;
        };
        let line = Some(line);
        if value < 0 {
            self.problem(line, format!("{key} must not be negative, got {text}"));
            return default;
        }
        if value == 0 {
            return default;
        }
        let mode = u32::try_from(value & 0o777).expect("nine bits");
        let looks_octal = !text.starts_with('0')
            && (3..=4).contains(&text.len())
            && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        let gets = format!("the files get mode {mode:04o} ({})", rwx(mode));
        if looks_octal {
            let said = self.assignment(key, &text);
            let advice = match self.format {
                Format::Hcl => format!(
                    "write {} for mode 0{text}",
                    self.assignment(key, &format!("0{text}"))
                ),
                // JSON has no octal: decimal is the usual way to write a mode,
                // so only a mode nobody means is worth a word.
                Format::Json if value <= 0o777 && conventional(mode) => return mode,
                Format::Json => {
                    let meant = u32::from_str_radix(&text, 8).expect("octal digits");
                    format!(
                        "for mode 0{text} write {} (or the string \"0{text}\")",
                        self.assignment(key, &meant.to_string())
                    )
                }
            };
            self.warn(
                line,
                format!(
                    "{said} is the decimal number {text} (octal {value:#o}), so {gets}; {advice}"
                ),
            );
        } else if value > 0o777 {
            let go = go_file_mode(value);
            let go_does = if go == mode {
                String::new()
            } else {
                format!(
                    "; the Go helper would give them mode {go:04o}, with the {} bit{} set, which a credential file never wants",
                    special_bits(go),
                    if (go >> 9).is_power_of_two() { "" } else { "s" }
                )
            };
            self.warn(
                line,
                format!(
                    "{} has bits above 0777, which are ignored: {gets}{go_does}",
                    self.assignment(key, &text)
                ),
            );
        }
        mode
    }

    /// One of a few words, any case; `None` when unset or empty.
    fn choice<T: Copy>(
        &mut self,
        name: &str,
        given: &[&Entry],
        choices: &[(&str, T)],
    ) -> Option<(T, usize)> {
        let t = self.text(name, given);
        let line = t.line?;
        let value = t.get()?;
        if let Some((_, v)) = choices.iter().find(|(c, _)| c.eq_ignore_ascii_case(value)) {
            return Some((*v, line));
        }
        let names: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
        let (last, rest) = names.split_last().expect("choices");
        self.problem(
            Some(line),
            format!(
                "{name} must be {} or {last}, not {}",
                rest.join(", "),
                quote(value)
            ),
        );
        None
    }

    /// A Go duration (`"90s"`, `"1h30m"`) or a whole number of seconds.
    fn duration(&mut self, name: &str, given: &[&Entry]) -> Duration {
        let mut out = DEFAULT_ONESHOT_MAX_WAIT;
        for e in given {
            let expected =
                "a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds";
            if self.labelled(name, e, expected) {
                continue;
            }
            let (text, read) = match &e.node.value {
                Value::Str(t) if t.is_empty() => {
                    out = DEFAULT_ONESHOT_MAX_WAIT;
                    continue;
                }
                Value::Int(t) => {
                    // A literal Go cannot read is too long, or an octal one with an 8 or 9.
                    let unreadable = if t.trim_start_matches('-').starts_with('0') {
                        DurationError::Syntax
                    } else {
                        DurationError::TooLarge
                    };
                    (t, go_parse_int(t).map_or(Err(unreadable), number::seconds))
                }
                Value::Str(t) => (
                    t,
                    go_parse_int(t).map_or_else(|| number::go_duration(t), number::seconds),
                ),
                _ => {
                    self.type_error(name, &e.node, expected);
                    continue;
                }
            };
            match read {
                Ok(d) => out = d,
                Err(DurationError::Negative) => self.problem(
                    Some(e.node.line),
                    format!("{name} must not be negative, got {}", quote(text)),
                ),
                Err(why) => self.problem(
                    Some(e.node.line),
                    format!("{name} must be {expected}, not {}: {why}", quote(text)),
                ),
            }
        }
        out
    }

    /// `cmd_args`: a string or a list of strings; the last one given.
    fn cmd_args(&mut self, given: &[&Entry]) -> RawArgs {
        let mut out = RawArgs::None;
        for e in given {
            let one = std::slice::from_ref(e);
            out = if let Value::List(_) = e.node.value {
                RawArgs::List(self.string_list("cmd_args", one), e.line)
            } else {
                let t = self.text("cmd_args", one);
                if t.line.is_none() {
                    continue;
                }
                RawArgs::Text(t.value, e.line)
            };
        }
        match out {
            // Empty is unset, as in the Go helper.
            RawArgs::Text(t, _) if t.is_empty() => RawArgs::None,
            RawArgs::List(l, _) if l.is_empty() => RawArgs::None,
            RawArgs::Text(t, line) => {
                self.no_nul("cmd_args", &t, Some(line), "an argument");
                RawArgs::Text(t, line)
            }
            RawArgs::List(l, line) => {
                if let Some(i) = l.iter().position(|a| a.contains('\0')) {
                    self.no_nul(&format!("cmd_args[{i}]"), &l[i], Some(line), "an argument");
                }
                RawArgs::List(l, line)
            }
            RawArgs::None => RawArgs::None,
        }
    }

    fn address(&mut self, name: &str, given: &[&Entry]) -> Option<IpAddr> {
        let t = self.text(name, given);
        let value = t.get()?;
        let bare = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        if let Ok(a) = bare.parse() {
            Some(a)
        } else {
            self.problem(
                t.line,
                format!("{name} must be an IP address such as 127.0.0.1 or ::1, not {} (host names are not looked up)", quote(value)),
            );
            None
        }
    }

    fn jwt_svids(&mut self, given: &[&Entry]) -> RawJwtSvids {
        let mut invalid = false;
        let mut objects: Vec<&Node> = Vec::new();
        for e in given {
            if let Some(label) = e.labels.first() {
                self.warn(
                    Some(e.line),
                    format!("the label {} of this jwt_svids block is ignored, as the Go helper ignores it", quote(label)),
                );
            }
            match &e.node.value {
                Value::List(items) => objects.extend(items),
                // An empty block is no entry at all, as the Go helper reads it.
                Value::Object(entries) if entries.is_empty() => self.warn(
                    Some(e.line),
                    "this jwt_svids block is empty: it configures no JWT-SVID, as the Go helper reads it".to_owned(),
                ),
                Value::Object(_) => {
                    if e.labels.is_empty() && self.format == Format::Hcl {
                        self.warn(
                            Some(e.line),
                            "this jwt_svids object is read as one entry, but the Go helper loses its fields and refuses the file; jwt_svids = [{ ... }] is read by both".to_owned(),
                        );
                    }
                    objects.push(&e.node);
                }
                _ => {
                    self.type_error("jwt_svids", &e.node, "a list of objects");
                    invalid = true;
                }
            }
        }
        if self.format == Format::Json && !objects.is_empty() {
            self.warn(
                given.first().map(|e| e.line),
                "the Go helper cannot read jwt_svids from a JSON document (it loses their fields and refuses the file); this one reads them".to_owned(),
            );
        }
        let mut out = Vec::new();
        for (i, node) in objects.into_iter().enumerate() {
            let name = format!("jwt_svids[{i}]");
            let Value::Object(entries) = &node.value else {
                self.type_error(&name, node, "an object");
                invalid = true;
                continue;
            };
            let f = self.fields(entries, JWT_KEYS, &name, true);
            let audience = self.text(&format!("{name}.jwt_audience"), f.get("jwt_audience"));
            let extra = self.string_list(
                &format!("{name}.jwt_extra_audiences"),
                f.get("jwt_extra_audiences"),
            );
            let file = self.path(
                &format!("{name}.jwt_svid_file_name"),
                f.get("jwt_svid_file_name"),
                "a path",
            );
            if audience.is_empty() {
                self.problem(Some(node.line), format!("{name}: jwt_audience is required"));
            }
            if file.is_empty() {
                self.problem(
                    Some(node.line),
                    format!("{name}: jwt_svid_file_name is required"),
                );
            }
            out.push(RawJwt {
                audience: audience.value,
                extra,
                file_name: file.value,
            });
        }
        RawJwtSvids {
            entries: out,
            invalid,
        }
    }

    fn health(&mut self, given: &[&Entry]) -> RawHealth {
        let mut entries: Vec<&Entry> = Vec::new();
        for e in given {
            if let Some(label) = e.labels.first() {
                self.warn(
                    Some(e.line),
                    format!("health_checks {} {{ }} is ignored: the Go helper ignores a health_checks block with a label, and so does this one", quote(label)),
                );
                continue;
            }
            if let Value::Object(list) = &e.node.value {
                entries.extend(list);
            } else {
                let block = self.block();
                self.type_error("health_checks", &e.node, block);
            }
        }
        // The Go helper ignores unknown keys here: a warning, not an error.
        let f = self.fields(entries, HEALTH_KEYS, "health_checks", false);
        let name = |k: &str| format!("health_checks.{k}");
        RawHealth {
            listener_enabled: self
                .boolean(&name("listener_enabled"), f.get("listener_enabled"))
                .unwrap_or(false),
            bind_port: self.integer(&name("bind_port"), f.get("bind_port")),
            bind_address: self.address(&name("bind_address"), f.get("bind_address")),
            liveness_path: self.text(&name("liveness_path"), f.get("liveness_path")),
            readiness_path: self.text(&name("readiness_path"), f.get("readiness_path")),
            metrics_path: self.text(&name("metrics_path"), f.get("metrics_path")),
            status_path: self.text(&name("status_path"), f.get("status_path")),
        }
    }
}

/// `key` or `scope.key`.
fn scoped(scope: &str, key: &str) -> String {
    if scope.is_empty() {
        key.to_owned()
    } else {
        format!("{scope}.{key}")
    }
}

/// The mode the Go helper gives a file for a mode number: Go's
/// `os.FileMode` keeps the permission bits and has setuid at bit 23,
/// setgid at 22 and sticky at 20 (the number's own bits 9 to 11 mean
/// nothing there).
fn go_file_mode(value: i64) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "Go converts the int to a uint32 FileMode the same way"
    )]
    let v = value as u32;
    let mut mode = v & 0o777;
    for (bit, special) in [(23, 0o4000), (22, 0o2000), (20, 0o1000)] {
        if v & (1 << bit) != 0 {
            mode |= special;
        }
    }
    mode
}

/// `setuid`, `setgid` and `sticky`, as many as `mode` has.
fn special_bits(mode: u32) -> String {
    let names: Vec<&str> = [(0o4000, "setuid"), (0o2000, "setgid"), (0o1000, "sticky")]
        .iter()
        .filter(|(b, _)| mode & b != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join(" and ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::testing::*;
    use super::super::LogFormat;
    use super::*;

    fn x509_mode(conf: &str) -> u32 {
        ok(&format!("{SVID}{conf}\n"))
            .x509
            .unwrap()
            .files
            .unwrap()
            .svid
            .mode
    }

    #[test]
    fn modes_read_as_go_reads_them() {
        for (v, want) in [
            ("0644", 0o644),
            ("\"0644\"", 0o644),
            ("420", 0o644),
            ("\"420\"", 0o644),
            ("0x1a4", 0o644),
            ("\"0x1a4\"", 0o644),
            ("\"0o644\"", 0o644),
            ("\"0_644\"", 0o644),
            ("0", 0o644),
            // 444 is decimal: 0o674.
            ("444", 0o674),
            // 644 is decimal: 0o1204, and only the permission bits reach the file.
            ("644", 0o204),
        ] {
            assert_eq!(x509_mode(&format!("cert_file_mode = {v}")), want, "{v}");
        }
        // 0777 is the widest mode without a word about higher bits.
        assert!(warnings(&format!("{SVID}cert_file_mode = 0777\n")).is_empty());
        assert!(
            warnings(&format!("{SVID}cert_file_mode = 01777\n"))[0].contains("has bits above 0777")
        );
    }

    #[test]
    fn a_decimal_mode_that_looks_octal_is_warned_about() {
        assert_eq!(
            warnings(&format!("{SVID}cert_file_mode = 644\n")),
            ["helper.conf line 4: cert_file_mode = 644 is the decimal number 644 (octal 0o1204), so the files get mode 0204 (-w----r--); write cert_file_mode = 0644 for mode 0644"]
        );
        let w = warnings(&format!("{SVID}key_file_mode = 600\n"));
        assert!(
            w[0].contains("(octal 0o1130)") && w[0].contains("mode 0130"),
            "{w:?}"
        );
        assert!(warnings(&format!("{SVID}cert_file_mode = 0644\n")).is_empty());
        assert_eq!(
            warnings(&format!("{SVID}cert_file_mode = 2048\n")),
            ["helper.conf line 4: cert_file_mode = 2048 has bits above 0777, which are ignored: the files get mode 0000 (---------)"]
        );
        // Bits Go reads as setuid (1 << 23), setgid and sticky are named.
        assert_eq!(
            warnings(&format!("{SVID}cert_file_mode = 8389101\n")),
            ["helper.conf line 4: cert_file_mode = 8389101 has bits above 0777, which are ignored: the files get mode 0755 (rwxr-xr-x); the Go helper would give them mode 4755, with the setuid bit set, which a credential file never wants"]
        );
        assert!(warnings(&format!(
            "{SVID}cert_file_mode = {}\n",
            (1 << 22) | (1 << 20) | 0o640
        ))[0]
            .contains("mode 3640, with the setgid and sticky bits set"));
        // Even a deliberate decimal is pointed at the unambiguous form.
        let w = warnings(&format!("{SVID}cert_file_mode = 420\n"));
        assert!(w[0].contains("mode 0644 (rw-r--r--)"), "{w:?}");
    }

    #[test]
    fn mode_advice_in_json_is_json() {
        let json = |mode: &str| {
            warnings(&format!(
                "{{\n\"jwt_bundle_file_name\": \"b\",\n\"jwt_bundle_file_mode\": {mode}\n}}"
            ))
        };
        assert_eq!(
            json("644"),
            ["helper.conf line 3: \"jwt_bundle_file_mode\": 644 is the decimal number 644 (octal 0o1204), so the files get mode 0204 (-w----r--); for mode 0644 write \"jwt_bundle_file_mode\": 420 (or the string \"0644\")"]
        );
        // Decimal is how JSON writes modes: a usual one is left alone.
        assert!(json("420").is_empty());
        assert!(json("384").is_empty());
        assert!(json("\"0600\"").is_empty());
        // 444 gives 0674, which nobody means.
        assert!(json("444")[0].contains("write \"jwt_bundle_file_mode\": 292"));
    }

    #[test]
    fn bad_modes() {
        for (conf, want) in [
            ("key_file_mode = -1", "key_file_mode must not be negative, got -1"),
            ("key_file_mode = -0644", "key_file_mode must not be negative, got -0644"),
            ("cert_file_mode = 1.5", "cert_file_mode must be an integer, not the number 1.5"),
            (
                "cert_file_mode = \"rw\"",
                "cert_file_mode must be an integer (decimal, 0-prefixed octal or 0x hex), not \"rw\"",
            ),
            (
                "cert_file_mode = 08",
                "cert_file_mode must be an integer (decimal, 0-prefixed octal or 0x hex), not \"08\"",
            ),
            (
                "cert_file_mode = 99999999999999999999",
                "cert_file_mode must be an integer (decimal, 0-prefixed octal or 0x hex), not \"99999999999999999999\"",
            ),
            (
                "jwt_svid_file_mode = true",
                "jwt_svid_file_mode must be an integer, not the boolean true",
            ),
        ] {
            assert_eq!(problem(&format!("{SVID}{conf}\n")), want, "{conf}");
        }
        assert!(error_text(&format!("{SVID}cert_file_mode = 0999\n"))
            .contains("syntax error at line 4, column 18: illegal octal number 0999"));
    }

    #[test]
    fn a_string_that_cannot_be_decoded_stops_only_the_key_that_reads_it() {
        // Read past where no key reads it, as the Go helper reads past it.
        let c = ok(&format!(
            "{SVID}health_checks {{\n  note = \"\\400\"\n}}\nhint = \"\\101\\x42\\a\"\n"
        ));
        assert_eq!(c.hint.as_deref(), Some("AB\u{7}"));
        assert_eq!(
            problem(&format!("{SVID}cmd = \"\\400\"\n")),
            "cmd cannot be read: octal escape \\400 is above \\377"
        );
        // One problem each: no "missing" partner or "nothing to write"
        // after it.
        assert_eq!(
            problem("{\"jwt_bundle_file_name\": \"\\xff\"}"),
            "jwt_bundle_file_name cannot be read: the string is not UTF-8 text once its \\x or octal escapes are applied"
        );
        assert_eq!(
            problem("svid_file_name = \"\\400\"\nsvid_key_file_name = \"k\"\nsvid_bundle_file_name = \"b\"\n"),
            "svid_file_name cannot be read: octal escape \\400 is above \\377"
        );
        assert_eq!(
            problem("svid_file_name = true\nsvid_key_file_name = \"k\"\n"),
            "svid_file_name must be a string, not the boolean true"
        );
        assert_eq!(
            problem("jwt_svids = \"x\"\n"),
            "jwt_svids must be a list of objects, not the string \"x\""
        );
        assert_eq!(
            problem("jwt_svids = [\"x\"]\n"),
            "jwt_svids[0] must be an object, not the string \"x\""
        );
        assert_eq!(
            problem("svid_file_name \"x\" {}\n"),
            "svid_file_name must be a string, not a block with the label \"x\""
        );
        assert_eq!(
            problem(&format!("{SVID}cert_file_mode = \"\\U00110000\"\n")),
            "cert_file_mode cannot be read: the escape \\U00110000 is beyond the last Unicode character"
        );
    }

    #[test]
    fn unknown_keys_name_line_and_nearest_key() {
        let p = problems(&format!("{SVID}svid_bundle_file = \"x\"\n"));
        assert_eq!(
            p,
            [Problem {
                line: Some(4),
                message:
                    "unknown key \"svid_bundle_file\"; did you mean \"svid_bundle_file_name\"?"
                        .into()
            }]
        );
        let p = problems("jwt_svids = [{ jwt_audience = \"a\",\n jwt_svid_file = \"t\" }]\n");
        assert_eq!(
            p,
            [
                Problem {
                    line: Some(1),
                    message: "jwt_svids[0]: jwt_svid_file_name is required".into()
                },
                Problem {
                    line: Some(2),
                    message: "unknown key \"jwt_svid_file\" in jwt_svids[0]; did you mean \"jwt_svid_file_name\"?".into()
                },
            ]
        );
        assert_eq!(
            problem(&format!("{SVID}jwt_audience = \"a\"\n")),
            "unknown key \"jwt_audience\"; it belongs inside a jwt_svids entry"
        );
        assert_eq!(
            problem(&format!("{SVID}listener_enabled = true\n")),
            "unknown key \"listener_enabled\"; it belongs inside the health_checks block"
        );
        assert_eq!(
            problem(&format!("{SVID}zzzzzzzz = 1\n")),
            "unknown key \"zzzzzzzz\""
        );
        // No hint for a key that is nowhere.
        assert_eq!(
            problem(
                "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\", zzzzzzzz = 1 }]\n"
            ),
            "unknown key \"zzzzzzzz\" in jwt_svids[0]"
        );
        // Unknown keys in health_checks are ignored by the Go helper: a warning here.
        assert_eq!(
            warnings(&format!("{SVID}health_checks {{\n  bind_prot = 1\n  cert_dir = \"x\"\n}}\n")),
            [
                "helper.conf line 5: unknown key \"bind_prot\" in health_checks; did you mean \"bind_port\"? (ignored)",
                "helper.conf line 6: unknown key \"cert_dir\" in health_checks; it belongs at the top level (ignored)",
            ]
        );
        // So are unknown keys in quotes, at any level.
        assert_eq!(
            warnings(&format!("{SVID}\"timeout\" = \"10s\"\n")),
            ["helper.conf line 4: unknown key \"timeout\" (ignored, as the Go helper ignores an unknown key in quotes)"]
        );
    }

    #[test]
    fn a_huge_unknown_key_is_reported_briefly() {
        let key = "k".repeat(1 << 20);
        let p = problem(&format!("{SVID}{key} = 1\n"));
        assert_eq!(
            p,
            format!("unknown key \"{}\"… (1048576 bytes in all)", "k".repeat(60))
        );
    }

    #[test]
    fn keys_match_whatever_their_case() {
        let c = ok(&format!(
            "{SVID}Agent_Address = \"/a.sock\"\n\"CERT_DIR\" = \"c\"\nHealth_Checks {{\n  LISTENER_ENABLED = true\n}}\nJWT_SVIDS = [{{ Jwt_Audience = \"x\", jwt_svid_file_NAME = \"t\" }}]\n"
        ));
        assert_eq!(c.agent_socket, PathBuf::from("/a.sock"));
        assert_eq!(c.jwt_svids[0].file.path, PathBuf::from("c/t"));
        assert!(c.health.listener_enabled);
        // As Go's EqualFold: the long s and the Kelvin sign fold too.
        let c = ok(&format!(
            "{SVID}\u{17f}vid_\u{212a}ey_file_name = \"other.pem\"\n"
        ));
        assert_eq!(
            c.x509.unwrap().files.unwrap().key.path,
            PathBuf::from("other.pem")
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let l = load_text(&format!("{SVID}hint = \"a\"\nHINT = \"b\"\nhint = \"c\"\n")).unwrap();
        assert_eq!(l.config.hint.as_deref(), Some("c"));
        assert_eq!(
            l.warnings,
            ["helper.conf line 6: hint is set 3 times (lines 4, 5 and 6); the last value is used"]
        );
        // A wrong type anywhere is still an error.
        assert_eq!(
            problem(&format!("{SVID}hint = true\nhint = \"b\"\n")),
            "hint must be a string, not the boolean true"
        );
    }

    #[test]
    fn repeated_health_checks_blocks_are_merged() {
        let l = load_text(&format!(
            "{SVID}health_checks {{\n  bind_port = 1\n  listener_enabled = true\n}}\nhealth_checks {{\n  bind_port = 2\n  liveness_path = \"/l\"\n}}\n"
        ))
        .unwrap();
        let h = &l.config.health;
        assert_eq!(
            (h.bind_port, h.listener_enabled, h.liveness_path.as_str()),
            (2, true, "/l")
        );
        assert_eq!(
            l.warnings,
            ["helper.conf line 9: health_checks.bind_port is set twice (lines 5 and 9); the last value is used"]
        );
    }

    #[test]
    fn an_empty_jwt_svids_block_is_no_entry() {
        for text in [
            format!("{SVID}jwt_svids = {{}}\n"),
            format!("{SVID}jwt_svids {{}}\n"),
            format!("{SVID}jwt_svids {{\n}}\n"),
            "{\"cert_dir\": \"c\", \"jwt_bundle_file_name\": \"b\", \"jwt_svids\": {}}".to_owned(),
        ] {
            let l = load_text(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(l.config.jwt_svids.is_empty(), "{text}");
            assert!(
                l.warnings
                    .iter()
                    .any(|w| w.contains("this jwt_svids block is empty")),
                "{text}: {:?}",
                l.warnings
            );
        }
    }

    #[test]
    fn repeated_jwt_svids_add_entries_and_extra_audiences_join() {
        let l = load_text(
            "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"a.t\" }]\njwt_svids = [{ jwt_audience = \"b\", jwt_svid_file_name = \"b.t\",\n jwt_extra_audiences = [\"x\"]\n jwt_extra_audiences = [\"y\"] }]\n",
        )
        .unwrap();
        let c = l.config;
        assert_eq!(c.jwt_svids.len(), 2);
        assert_eq!(c.jwt_svids[1].audiences(), ["b", "x", "y"]);
        assert_eq!(
            l.warnings,
            ["helper.conf line 4: jwt_svids[1].jwt_extra_audiences is set twice (lines 3 and 4); the lists are joined, as the Go helper joins them"]
        );
    }

    #[test]
    fn other_hcl_v1_forms() {
        // Repeated blocks and a single object for jwt_svids (each warned:
        // the Go helper loses their fields); health_checks as an attribute.
        let l = load_text(
            r#"
jwt_svids {
  jwt_audience = "a"
  jwt_svid_file_name = "a.token"
}
jwt_svids {
  jwt_audience = "b"
  jwt_svid_file_name = "b.token"
}
health_checks = { listener_enabled = true }
"#,
        )
        .unwrap();
        let c = l.config;
        assert_eq!(c.jwt_svids.len(), 2);
        assert_eq!(c.jwt_svids[1].audience, "b");
        assert!(c.health.listener_enabled);
        let lines: Vec<&str> = l.warnings.iter().map(|w| &w[..20]).collect();
        assert_eq!(lines, ["helper.conf line 2: ", "helper.conf line 6: "]);
        assert!(
            l.warnings[0].contains("the Go helper loses its fields"),
            "{:?}",
            l.warnings
        );
        let l = load_text("jwt_svids = { jwt_audience = \"a\", jwt_svid_file_name = \"t\" }\n")
            .unwrap();
        assert_eq!(l.config.jwt_svids.len(), 1);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        // HCL v1 reads a number into a string key as its text.
        let c = ok("jwt_bundle_file_name = 12\n");
        assert_eq!(c.jwt_bundle.unwrap().path, PathBuf::from("12"));
        // Template-like text is literal.
        let c = ok("jwt_bundle_file_name = \"${HOME}/%{x}/$${y}\"\n");
        assert_eq!(
            c.jwt_bundle.unwrap().path,
            PathBuf::from("${HOME}/%{x}/$${y}")
        );
        // A heredoc is a string.
        let c = ok("jwt_bundle_file_name = <<EOF\nb.json\nEOF\n");
        assert_eq!(c.jwt_bundle.unwrap().path, PathBuf::from("b.json\n"));
    }

    #[test]
    fn labelled_blocks() {
        let l = load_text(&format!(
            "{SVID}health_checks \"x\" {{\n  listener_enabled = true\n}}\njwt_svids \"y\" {{\n  jwt_audience = \"a\"\n  jwt_svid_file_name = \"t\"\n}}\n"
        ))
        .unwrap();
        assert!(!l.config.health.listener_enabled);
        assert_eq!(l.config.jwt_svids.len(), 1);
        assert_eq!(
            l.warnings,
            [
                "helper.conf line 4: health_checks \"x\" { } is ignored: the Go helper ignores a health_checks block with a label, and so does this one",
                "helper.conf line 7: the label \"y\" of this jwt_svids block is ignored, as the Go helper ignores it",
            ]
        );
        assert_eq!(
            problem(&format!("{SVID}cert_dir \"x\" {{ }}\n")),
            "cert_dir must be a string, not a block with the label \"x\""
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        for (conf, want) in [
            ("daemon_mode = \"sometimes\"", "daemon_mode must be true or false, not the string \"sometimes\""),
            ("cert_dir = [\"a\"]", "cert_dir must be a string, not a list"),
            ("hint = true", "hint must be a string, not the boolean true"),
            ("hint = 1.5", "hint must be a string, not the number 1.5"),
            ("jwt_svids = \"x\"", "jwt_svids must be a list of objects, not the string \"x\""),
            ("jwt_svids = [\"x\"]", "jwt_svids[0] must be an object, not the string \"x\""),
            ("jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\", jwt_extra_audiences = \"b\" }]", "jwt_svids[0].jwt_extra_audiences must be a list of strings, not the string \"b\""),
            ("health_checks = 1", "health_checks must be a block, not the number 1"),
            ("cmd = \"x\"\ncmd_args = [1.5]", "cmd_args[0] must be a string, not the number 1.5"),
            ("health_checks { bind_address = 1.5 }", "health_checks.bind_address must be a string, not the number 1.5"),
        ] {
            assert_eq!(problem(&format!("{SVID}{conf}\n")), want, "{conf}");
        }
        assert!(error_text(&format!("{SVID}cert_dir = certs\n")).contains("bare word"));
        assert_eq!(
            problem("{\"jwt_bundle_file_name\": \"b\", \"health_checks\": true}"),
            "health_checks must be an object, not the boolean true"
        );
    }

    #[test]
    fn a_nul_in_a_path_is_refused() {
        for key in [
            "agent_address",
            "cert_dir",
            "svid_file_name",
            "jwt_bundle_file_name",
            "credential_bundle_file_name",
            "trust_bundles_dir",
            "pid_file_name",
        ] {
            let p = problems(&format!(
                "jwt_bundle_file_name = \"b\"\nrenew_signal = \"HUP\"\n{key} = \"a\\x00b\"\n"
            ));
            let message = format!("{key} contains a NUL character, which a path cannot hold");
            assert!(
                p.iter().any(|p| p.message == message && p.line == Some(3)),
                "{key}: {p:?}"
            );
        }
        let p =
            problems("jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\\u0000\" }]");
        assert_eq!(
            p[0].message,
            "jwt_svids[0].jwt_svid_file_name contains a NUL character, which a path cannot hold"
        );
        assert_eq!(
            problem(&format!("{SVID}cmd = \"/bin/\\000sh\"\n")),
            "cmd contains a NUL character, which a program name cannot hold"
        );
        assert_eq!(
            problem(&format!("{SVID}cmd = \"sh\"\ncmd_args = \"-c \\x00\"\n")),
            "cmd_args contains a NUL character, which an argument cannot hold"
        );
        assert_eq!(
            problem(&format!(
                "{SVID}cmd = \"sh\"\ncmd_args = [\"-c\", \"\\x00\"]\n"
            )),
            "cmd_args[1] contains a NUL character, which an argument cannot hold"
        );
    }

    #[test]
    fn log_settings() {
        for (v, level) in [
            ("trace", tracing::Level::TRACE),
            ("DEBUG", tracing::Level::DEBUG),
            ("Info", tracing::Level::INFO),
            ("warn", tracing::Level::WARN),
            ("warning", tracing::Level::WARN),
            ("error", tracing::Level::ERROR),
        ] {
            assert_eq!(
                ok(&format!("{SVID}log_level = \"{v}\"\n")).log_level,
                Some(level),
                "{v}"
            );
        }
        assert_eq!(ok(&format!("{SVID}log_level = \"\"\n")).log_level, None);
        assert_eq!(
            problem(&format!("{SVID}log_level = \"verbose\"\n")),
            "log_level must be trace, debug, info, warn, warning or error, not \"verbose\""
        );
        assert_eq!(
            ok(&format!("{SVID}log_format = \"JSON\"\n")).log_format,
            LogFormat::Json
        );
        assert_eq!(
            ok(&format!("{SVID}log_format = \"text\"\n")).log_format,
            LogFormat::Text
        );
        assert_eq!(
            problem(&format!("{SVID}log_format = \"yaml\"\n")),
            "log_format must be text or json, not \"yaml\""
        );
    }

    #[test]
    fn oneshot_max_wait() {
        let wait = |v: &str| ok(&format!("{SVID}oneshot_max_wait = {v}\n")).oneshot_max_wait;
        assert_eq!(wait("\"90s\""), Duration::from_secs(90));
        assert_eq!(wait("\"1h30m\""), Duration::from_secs(5400));
        assert_eq!(wait("\"500ms\""), Duration::from_millis(500));
        assert_eq!(wait("120"), Duration::from_secs(120));
        assert_eq!(wait("\"120\""), Duration::from_secs(120));
        assert_eq!(wait("0"), Duration::ZERO);
        assert_eq!(wait("\"0s\""), Duration::ZERO);
        assert_eq!(wait("\"\""), DEFAULT_ONESHOT_MAX_WAIT);
        for (v, want) in [
            ("-1", "oneshot_max_wait must not be negative, got \"-1\""),
            ("\"-5m\"", "oneshot_max_wait must not be negative, got \"-5m\""),
            ("\"5 minutes\"", "oneshot_max_wait must be a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds, not \"5 minutes\": \" minutes\" is not a unit (the units are ns, us, ms, s, m and h)"),
            ("1.5", "oneshot_max_wait must be a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds, not the number 1.5"),
            ("\"300y\"", "oneshot_max_wait must be a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds, not \"300y\": \"y\" is not a unit (the units are ns, us, ms, s, m and h)"),
            ("99999999999", "oneshot_max_wait must be a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds, not \"99999999999\": it is longer than 292 years"),
            ("09", "oneshot_max_wait must be a duration such as \"90s\", \"5m\" or \"1h30m\", or a whole number of seconds, not \"09\": it is not a duration"),
        ] {
            assert_eq!(problem(&format!("{SVID}oneshot_max_wait = {v}\n")), want, "{v}");
        }
    }

    #[test]
    fn bind_address() {
        let addr = |v: &str| {
            ok(&format!(
                "{SVID}health_checks {{\n bind_address = \"{v}\"\n}}\n"
            ))
            .health
            .bind_address
        };
        assert_eq!(addr("127.0.0.1"), Some([127, 0, 0, 1].into()));
        assert_eq!(addr("::1"), Some(std::net::Ipv6Addr::LOCALHOST.into()));
        assert_eq!(addr("[::1]"), Some(std::net::Ipv6Addr::LOCALHOST.into()));
        assert_eq!(addr(""), None);
        assert_eq!(
            problem(&format!("{SVID}health_checks {{\n bind_address = \"localhost\"\n}}\n")),
            "health_checks.bind_address must be an IP address such as 127.0.0.1 or ::1, not \"localhost\" (host names are not looked up)"
        );
    }

    #[test]
    fn cmd_exit_policy_values() {
        let policy = |v: &str| {
            ok(&format!("{SVID}cmd = \"x\"\ncmd_exit_policy = \"{v}\"\n"))
                .process
                .exit_policy
        };
        assert_eq!(policy("relaunch_on_renewal"), ExitPolicy::RelaunchOnRenewal);
        assert_eq!(policy("restart"), ExitPolicy::Restart);
        assert_eq!(policy("EXIT"), ExitPolicy::Exit);
        assert_eq!(policy(""), ExitPolicy::RelaunchOnRenewal);
        assert_eq!(
            problem(&format!(
                "{SVID}cmd = \"x\"\ncmd_exit_policy = \"respawn\"\n"
            )),
            "cmd_exit_policy must be relaunch_on_renewal, restart or exit, not \"respawn\""
        );
    }

    #[test]
    fn warnings_beyond_the_shown_ones_are_counted() {
        let quoted = |n: usize| -> String { (0..n).map(|i| format!("\"zz{i}\" = 1\n")).collect() };
        let w = warnings(&format!("{SVID}{}", quoted(SHOWN_PROBLEMS)));
        assert_eq!(w.len(), SHOWN_PROBLEMS);
        assert!(w.iter().all(|w| w.contains("unknown key")), "{w:?}");
        let w = warnings(&format!("{SVID}{}", quoted(SHOWN_PROBLEMS + 2)));
        assert_eq!(w.len(), SHOWN_PROBLEMS + 1);
        assert_eq!(w[SHOWN_PROBLEMS], "helper.conf: ... and 2 more warnings");
        // The shown ones are the first, in file order.
        assert!(w[0].starts_with("helper.conf line 4: unknown key \"zz0\""));
    }

    #[test]
    fn a_json_null_string_is_empty() {
        let c = ok(r#"{"svid_file_name": "s", "svid_key_file_name": "k",
            "svid_bundle_file_name": "b", "cert_dir": null}"#);
        assert_eq!(c.cert_dir, PathBuf::new());
        assert!(problem(
            r#"{"svid_file_name": "s", "svid_key_file_name": "k",
            "svid_bundle_file_name": "b", "daemon_mode": null}"#
        )
        .contains("daemon_mode must be"));
    }

    #[test]
    fn a_message_about_a_variable_names_it() {
        let read = |vars: &[(&str, &str)]| load_env(SVID, vars);
        match read(&[("SPIFFE_HLP_KEY_FILE_MODE", "rw")]) {
            Err(ConfigError::Invalid { problems, .. }) => {
                assert_eq!(problems.len(), 1, "{problems:?}");
                assert_eq!(problems[0].line, None);
                assert!(
                    problems[0].message.starts_with(
                        "environment variable SPIFFE_HLP_KEY_FILE_MODE: key_file_mode"
                    ),
                    "{problems:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        let w = read(&[("SPIFFE_HLP_CERT_FILE_MODE", "644")])
            .unwrap()
            .warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "helper.conf: environment variable SPIFFE_HLP_CERT_FILE_MODE: cert_file_mode = 644 is the decimal number 644"
            ),
            "{w:?}"
        );
        // A message at a line of the file keeps its line beside one, the
        // first line too.
        let w = load_env(
            &format!("cert_file_mode = 644\n{SVID}jwt_bundle_file_mode = 600\n"),
            &[("SPIFFE_HLP_KEY_FILE_MODE", "0600")],
        )
        .unwrap()
        .warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("helper.conf line 1: cert_file_mode = 644"),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("helper.conf line 5: jwt_bundle_file_mode = 600"),
            "{w:?}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(rwx(0o640), "rw-r-----");
        assert_eq!(line_list(&[7]), "7");
        assert_eq!(line_list(&[1, 2]), "1 and 2");
        assert_eq!(line_list(&[1, 2, 3]), "1, 2 and 3");
        assert_eq!(line_list(&[1, 2, 3, 4, 5]), "1, 2, 3, 4 and 5");
        assert_eq!(line_list(&[1, 2, 3, 4, 5, 6]), "1, 2, 3, 4, 5, …");
        assert!(conventional(0o644) && conventional(0o755) && conventional(0o400));
        assert!(!conventional(0o674) && !conventional(0o204) && !conventional(0o046));
        assert!(same_key("Agent_ADDRESS", "agent_address"));
        assert!(!same_key("agent_addres", "agent_address"));
        assert!(!same_key("agent_addresss", "agent_address"));
    }
}
