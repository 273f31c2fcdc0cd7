//! Checks across keys, and the [`Config`] they leave: which outputs are
//! set and complete, what daemon mode allows, how `cmd` runs, which health
//! paths are served, where the agent is.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::read::{Raw, RawArgs, RawHealth, Report, Text};
use super::tree::{floor_char_boundary, quote, shorten};
use super::{
    cmd_args, endpoint, join_go, parse_signal, Command, Config, ExitPolicy, HealthConfig,
    JwtSvidOutput, OutputFile, ProcessConfig, SvidFiles, TrustBundlesDir, X509Output,
    DEFAULT_BIND_PORT, DEFAULT_LIVENESS_PATH, DEFAULT_METRICS_PATH, DEFAULT_READINESS_PATH,
    DEFAULT_STATUS_PATH,
};

#[allow(
    clippy::needless_pass_by_value,
    reason = "the raw configuration is used up here: nothing reads it after validation"
)]
pub(super) fn validate(
    raw: Raw,
    origin: &Path,
    daemon_mode_flag: Option<bool>,
    env: &dyn Fn(&str) -> Option<String>,
    r: &mut Report,
) -> Config {
    let daemon_mode = daemon_mode_flag.or(raw.daemon_mode).unwrap_or(true);
    let daemon_off_by = if daemon_mode_flag == Some(false) {
        "-daemon-mode=false is given"
    } else {
        "daemon_mode is false"
    };
    let (x509, jwt_svids, jwt_bundle) = outputs(&raw, r);
    let process = process(&raw, daemon_mode, daemon_off_by, r);
    let agent_socket = agent_socket(&raw.agent_address, env, r);
    Config {
        source: origin.to_owned(),
        cert_dir: PathBuf::from(&raw.cert_dir.value),
        agent_socket,
        hint: raw.hint.get().map(str::to_owned),
        x509,
        jwt_svids,
        jwt_bundle,
        daemon_mode,
        process,
        health: health(&raw.health, r),
        log_level: raw.log_level,
        log_format: raw.log_format,
        oneshot_max_wait: raw.oneshot_max_wait,
        sources: std::collections::BTreeMap::new(),
    }
}

/// The files to write, and the rules on which names go together.
fn outputs(
    raw: &Raw,
    r: &mut Report,
) -> (Option<X509Output>, Vec<JwtSvidOutput>, Option<OutputFile>) {
    let cert_dir = PathBuf::from(&raw.cert_dir.value);
    // Every name is checked once, with the key it came from: the cleaned
    // name relative to cert_dir, or a problem.
    let mut names = Names {
        cert_dir: raw.cert_dir.value.clone(),
        files: Vec::new(),
    };
    let mut out = |key: &str, name: &str, line: Option<usize>, mode: u32, r: &mut Report| {
        let rel = names.check(key, name, line, r)?;
        Some(OutputFile {
            path: join_go(&cert_dir, &rel),
            mode,
        })
    };
    let (files, any_svid_name) = svid_files(raw, &mut out, r);
    let credential_bundle = raw.credential_bundle_file_name.get().and_then(|name| {
        let line = raw.credential_bundle_file_name.line;
        out(
            "credential_bundle_file_name",
            name,
            line,
            raw.key_file_mode,
            r,
        )
    });
    let jwt_svids: Vec<JwtSvidOutput> = raw
        .jwt_svids
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, j)| {
            let key = format!("jwt_svids[{i}].jwt_svid_file_name");
            let file = out(&key, &j.file_name, None, raw.jwt_svid_file_mode, r)?;
            Some(JwtSvidOutput {
                audience: j.audience.clone(),
                extra_audiences: j.extra.clone(),
                file,
            })
        })
        .collect();
    let jwt_bundle = raw.jwt_bundle_file_name.get().and_then(|name| {
        let line = raw.jwt_bundle_file_name.line;
        out(
            "jwt_bundle_file_name",
            name,
            line,
            raw.jwt_bundle_file_mode,
            r,
        )
    });
    let pkcs12 = pkcs12(raw, &mut out, r);
    let trust_bundles = raw.trust_bundles_dir.get().and_then(|dir| {
        let rel = names.check_dir("trust_bundles_dir", dir, raw.trust_bundles_dir.line, r)?;
        Some(TrustBundlesDir {
            dir: join_go(&cert_dir, &rel),
            mode: raw.cert_file_mode,
        })
    });
    nothing_to_write(raw, any_svid_name, r);
    let keystore = pkcs12.as_ref().is_some_and(|p| p.keystore.is_some());
    let writes_key = files.is_some() || credential_bundle.is_some() || keystore;
    readable_secrets(raw, writes_key, !jwt_svids.is_empty(), r);
    let x509 = (files.is_some()
        || credential_bundle.is_some()
        || trust_bundles.is_some()
        || pkcs12.is_some())
    .then_some(X509Output {
        files,
        credential_bundle,
        trust_bundles,
        pkcs12,
        add_intermediates_to_bundle: raw.add_intermediates_to_bundle,
        include_federated_domains: raw.include_federated_domains,
        omit_expired: raw.omit_expired,
    });
    (x509, jwt_svids, jwt_bundle)
}

/// At least one output is required.
fn nothing_to_write(raw: &Raw, any_svid_name: bool, r: &mut Report) {
    let names = [
        &raw.jwt_bundle_file_name,
        &raw.credential_bundle_file_name,
        &raw.trust_bundles_dir,
        &raw.pkcs12_file_name,
        &raw.pkcs12_truststore_file_name,
    ];
    if !any_svid_name
        && raw.jwt_svids.entries.is_empty()
        && !raw.jwt_svids.invalid
        && names.iter().all(|t| t.is_empty() && !t.invalid)
    {
        r.problem(
            None,
            "nothing to write: set svid_file_name, svid_key_file_name and svid_bundle_file_name, or jwt_svids, or jwt_bundle_file_name (or credential_bundle_file_name or trust_bundles_dir)".to_owned(),
        );
    }
}

/// The three X.509 files, which go together: all or none. Also whether any
/// of their names is set.
fn svid_files(
    raw: &Raw,
    out: &mut impl FnMut(&str, &str, Option<usize>, u32, &mut Report) -> Option<OutputFile>,
    r: &mut Report,
) -> (Option<SvidFiles>, bool) {
    let trio = [
        ("svid_file_name", &raw.svid_file_name, raw.cert_file_mode),
        (
            "svid_key_file_name",
            &raw.svid_key_file_name,
            raw.key_file_mode,
        ),
        (
            "svid_bundle_file_name",
            &raw.svid_bundle_file_name,
            raw.cert_file_mode,
        ),
    ];
    if trio.iter().any(|(_, t, _)| t.invalid) {
        return (None, true);
    }
    let (set, missing): (Vec<_>, Vec<_>) = trio.iter().partition(|(_, t, _)| !t.is_empty());
    if set.is_empty() {
        return (None, false);
    }
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(|(k, _, _)| *k).collect();
        r.problem(
            set[0].1.line,
            format!(
                "svid_file_name, svid_key_file_name and svid_bundle_file_name must be set together: {} {} missing",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
        );
        return (None, true);
    }
    let [svid, key, bundle] = trio.map(|(k, t, mode)| out(k, &t.value, t.line, mode, r));
    let files = match (svid, key, bundle) {
        (Some(svid), Some(key), Some(bundle)) => Some(SvidFiles { svid, key, bundle }),
        _ => None,
    };
    (files, true)
}

/// Key material or tokens readable by others is almost always a mistake
/// (often a decimal 644, which is mode 0204): say so, without refusing it.
fn readable_secrets(raw: &Raw, writes_key: bool, writes_jwt_svids: bool, r: &mut Report) {
    if writes_key && raw.key_file_mode & 0o044 != 0 {
        r.warn(
            None,
            format!(
                "key_file_mode gives the private key mode {:04o} ({}): private key material will be readable by users other than its owner",
                raw.key_file_mode,
                super::read::rwx(raw.key_file_mode)
            ),
        );
    }
    if writes_jwt_svids && raw.jwt_svid_file_mode & 0o044 != 0 {
        r.warn(
            None,
            format!(
                "jwt_svid_file_mode gives the JWT-SVID files mode {:04o} ({}): the tokens (bearer credentials) will be readable by users other than their owner",
                raw.jwt_svid_file_mode,
                super::read::rwx(raw.jwt_svid_file_mode)
            ),
        );
    }
}

/// The PKCS#12 outputs, with the password read from its file (first line).
fn pkcs12(
    raw: &Raw,
    out: &mut impl FnMut(&str, &str, Option<usize>, u32, &mut Report) -> Option<OutputFile>,
    r: &mut Report,
) -> Option<super::Pkcs12Output> {
    let keystore = raw.pkcs12_file_name.get().and_then(|n| {
        out(
            "pkcs12_file_name",
            n,
            raw.pkcs12_file_name.line,
            raw.key_file_mode,
            r,
        )
    });
    let truststore = raw.pkcs12_truststore_file_name.get().and_then(|n| {
        out(
            "pkcs12_truststore_file_name",
            n,
            raw.pkcs12_truststore_file_name.line,
            raw.cert_file_mode,
            r,
        )
    });
    let wanted = !raw.pkcs12_file_name.is_empty() || !raw.pkcs12_truststore_file_name.is_empty();
    if !wanted {
        if let Some(line) = raw
            .pkcs12_password_file
            .line
            .or(raw.pkcs12_profile.map(|(_, l)| l))
        {
            r.warn(
                Some(line),
                "pkcs12_password_file and pkcs12_profile are ignored without pkcs12_file_name or pkcs12_truststore_file_name".to_owned(),
            );
        }
        return None;
    }
    let line = raw
        .pkcs12_file_name
        .line
        .or(raw.pkcs12_truststore_file_name.line);
    let Some(file) = raw.pkcs12_password_file.get() else {
        r.problem(
            line,
            "a PKCS#12 output needs pkcs12_password_file: a file whose first line is the password (a well-known one such as changeit, with a tight file mode, is common practice)".to_owned(),
        );
        return None;
    };
    let password = match read_password(std::path::Path::new(file)) {
        Ok(p) => p,
        Err(why) => {
            r.problem(
                raw.pkcs12_password_file.line,
                format!("pkcs12_password_file {}: {why}", quote(file)),
            );
            return None;
        }
    };
    Some(super::Pkcs12Output {
        keystore,
        truststore,
        password,
        password_file: PathBuf::from(file),
        profile: raw.pkcs12_profile.map(|(p, _)| p).unwrap_or_default(),
    })
}

/// The first line of a password file (at most 4 KiB read).
fn read_password(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_end(&mut text))
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(text).map_err(|_| "the password is not UTF-8 text".to_owned())?;
    let first = text.lines().next().unwrap_or("").to_owned();
    if first.is_empty() {
        return Err("its first line, the password, is empty".to_owned());
    }
    Ok(first)
}

/// The output names seen so far, cleaned and relative to `cert_dir`, with
/// the key each came from: for the rules between them.
struct Names {
    cert_dir: String,
    files: Vec<(String, String)>,
}

impl Names {
    /// A file name: cleaned as Go's `filepath.Join` cleans it, inside
    /// `cert_dir`, each element at most 255 bytes, not written twice.
    fn check(
        &mut self,
        key: &str,
        name: &str,
        line: Option<usize>,
        r: &mut Report,
    ) -> Option<String> {
        // A missing name was reported where it was read.
        if name.is_empty() {
            return None;
        }
        let rel = clean_below(key, name, &self.cert_dir, line, r)?;
        if rel == "." {
            r.problem(
                line,
                format!(
                    "{key} {} names cert_dir itself, not a file in it",
                    quote(name)
                ),
            );
            return None;
        }
        if let Some((other, _)) = self.files.iter().find(|(_, n)| *n == rel) {
            r.problem(
                line,
                format!(
                    "{key} writes {} as {other} does: each output needs a file of its own",
                    quote(&rel)
                ),
            );
            return None;
        }
        self.files.push((key.to_owned(), rel.clone()));
        Some(rel)
    }

    /// `trust_bundles_dir`: a directory of its own, since the helper removes
    /// the `<trust domain>.pem` files in it that the agent no longer sends.
    fn check_dir(
        &self,
        key: &str,
        name: &str,
        line: Option<usize>,
        r: &mut Report,
    ) -> Option<String> {
        let rel = clean_below(key, name, &self.cert_dir, line, r)?;
        if rel == "." {
            r.problem(
                line,
                format!("{key} is cert_dir itself: it must be a directory of its own, since the helper removes the .pem files in it that the agent no longer sends"),
            );
            return None;
        }
        let parent = |n: &str| n.rsplit_once('/').map_or(".", |(d, _)| d).to_owned();
        if let Some((other, _)) = self.files.iter().find(|(_, n)| parent(n) == rel) {
            r.problem(
                line,
                format!("{key} {} is the directory {other} is written to: it must be a directory of its own, since the helper removes the .pem files in it that the agent no longer sends", quote(name)),
            );
            return None;
        }
        Some(rel)
    }
}

/// The longest name a directory entry can have on Linux.
const NAME_MAX: usize = 255;

/// `name` cleaned as Go's `filepath.Join(cert_dir, name)` cleans it,
/// relative to `cert_dir` (`.` for `cert_dir` itself); a problem when it
/// leaves `cert_dir` or an element is too long for a file name.
fn clean_below(
    key: &str,
    name: &str,
    cert_dir: &str,
    line: Option<usize>,
    r: &mut Report,
) -> Option<String> {
    if cert_dir.is_empty() && name.starts_with('/') {
        r.problem(
            line,
            format!("{key} {} is an absolute path and cert_dir is not set: set cert_dir to its directory (outputs stay inside cert_dir)", quote(name)),
        );
        return None;
    }
    // Go's filepath.Join(cert_dir, name) cleans cert_dir + "/" + name as one
    // path, so a leading slash on the name protects nothing: `/../x` climbs
    // out as `../x` does.
    let cleaned = super::go_clean(name.trim_start_matches('/'));
    let rel = cleaned.as_str();
    if rel == ".." || rel.starts_with("../") {
        r.problem(
            line,
            format!(
                "{key} {} leaves cert_dir (cleaned: {}): outputs stay inside cert_dir",
                quote(name),
                quote(rel)
            ),
        );
        return None;
    }
    if let Some(long) = rel.split('/').find(|e| e.len() > NAME_MAX) {
        r.problem(
            line,
            format!(
                "{key} {}: the name {} is {} bytes, more than a file name can hold ({NAME_MAX})",
                quote(name),
                quote(long),
                long.len()
            ),
        );
        return None;
    }
    Some(rel.to_owned())
}

/// `cmd`, `cmd_args`, `cmd_exit_policy`, `pid_file_name`, `renew_signal`.
fn process(raw: &Raw, daemon_mode: bool, daemon_off_by: &str, r: &mut Report) -> ProcessConfig {
    let renew_signal = renew_signal(raw, daemon_mode, daemon_off_by, r);
    if !raw.pid_file_name.is_empty() {
        if !daemon_mode {
            r.problem(
                raw.pid_file_name.line,
                format!("pid_file_name is set but {daemon_off_by}. pid_file_name is only supported in daemon_mode"),
            );
        } else if raw.renew_signal.is_empty() {
            r.problem(
                raw.pid_file_name.line,
                "pid_file_name is set without renew_signal: set renew_signal to the signal the process expects".to_owned(),
            );
        }
    }

    let mut exit_policy = ExitPolicy::default();
    if let Some((policy, at)) = raw.cmd_exit_policy {
        exit_policy = policy;
        if raw.cmd.is_empty() {
            r.problem(
                Some(at),
                "cmd_exit_policy is set but cmd is not: it says what happens when cmd exits"
                    .to_owned(),
            );
        } else if !daemon_mode && policy != ExitPolicy::default() {
            r.problem(
                Some(at),
                format!(
                    "cmd_exit_policy = {} needs daemon mode, but {daemon_off_by}",
                    policy.name()
                ),
            );
        }
    }

    let mut cmd = None;
    if let Some(program) = raw.cmd.get() {
        if daemon_mode {
            cmd = Some(Command {
                program: program.to_owned(),
                args: args(&raw.cmd_args, r),
            });
        } else {
            r.warn(
                raw.cmd.line,
                format!("cmd is set but {daemon_off_by}: cmd is not run"),
            );
        }
    } else if let RawArgs::Text(_, at) | RawArgs::List(_, at) = raw.cmd_args {
        r.warn(
            Some(at),
            "cmd_args is set but cmd is not: it is ignored".to_owned(),
        );
    }

    ProcessConfig {
        cmd,
        pid_file: (daemon_mode && !raw.pid_file_name.is_empty())
            .then(|| PathBuf::from(&raw.pid_file_name.value)),
        renew_signal,
        exit_policy,
    }
}

/// `renew_signal`, checked now rather than at the first renewal.
fn renew_signal(
    raw: &Raw,
    daemon_mode: bool,
    daemon_off_by: &str,
    r: &mut Report,
) -> Option<Signal> {
    let name = raw.renew_signal.get()?;
    let line = raw.renew_signal.line;
    if !daemon_mode {
        r.warn(
            line,
            format!("renew_signal is set but {daemon_off_by}: renew_signal is ignored"),
        );
        return None;
    }
    match parse_signal(name) {
        Some(s @ (Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU)) => {
            r.problem(
                line,
                format!(
                    "renew_signal {} stops the process instead of telling it to reload: choose a signal such as SIGHUP or SIGUSR1",
                    s.as_str()
                ),
            );
            None
        }
        Some(Signal::SIGKILL) => {
            r.warn(
                line,
                "renew_signal SIGKILL kills the process at every renewal (cmd is started again at the next one): make sure that is what you want".to_owned(),
            );
            Some(Signal::SIGKILL)
        }
        Some(s) => Some(s),
        None => {
            r.problem(
                line,
                format!(
                    "renew_signal {} is not a signal name (for example SIGHUP or SIGUSR1)",
                    quote(name)
                ),
            );
            None
        }
    }
}

impl ExitPolicy {
    /// The word `cmd_exit_policy` takes for it.
    fn name(self) -> &'static str {
        match self {
            ExitPolicy::RelaunchOnRenewal => "\"relaunch_on_renewal\"",
            ExitPolicy::Restart => "\"restart\"",
            ExitPolicy::Exit => "\"exit\"",
        }
    }
}

/// The argv after `cmd`.
fn args(raw: &RawArgs, r: &mut Report) -> Vec<String> {
    let (text, at) = match raw {
        RawArgs::None => return Vec::new(),
        RawArgs::List(args, _) => return args.clone(),
        RawArgs::Text(text, at) => (text, Some(*at)),
    };
    match cmd_args::split(text) {
        Ok(split) => {
            if split.args.iter().any(String::is_empty) {
                r.warn(
                    at,
                    format!(
                        "cmd_args {} gives an empty argument (two spaces in a row?): the argv is {}",
                        quote(text),
                        shorten(&shell_words::join(&split.args))
                    ),
                );
            }
            if split.ignored_rest {
                r.warn(
                    at,
                    "cmd_args: only its first line is used, as in the Go helper; use a list for more arguments".to_owned(),
                );
            }
            split.args
        }
        Err(e) => {
            r.problem(
                at,
                format!(
                    "cmd_args cannot be split into arguments: {e}, here: {} (double quotes group an argument; write \"\" for a literal quote inside them, or give cmd_args as a list)",
                    excerpt(text, e.line, e.column)
                ),
            );
            Vec::new()
        }
    }
}

/// At most 30 characters either side of a one-based line and (byte)
/// column, control characters escaped, cuts marked with `…`.
fn excerpt(text: &str, line: usize, column: usize) -> String {
    const SIDE: usize = 30;
    let line = text
        .split('\n')
        .nth(line.saturating_sub(1))
        .unwrap_or(text)
        .trim_end_matches('\r');
    let at = floor_char_boundary(line, column.saturating_sub(1));
    let start = line[..at]
        .char_indices()
        .rev()
        .nth(SIDE - 1)
        .map_or(0, |(i, _)| i);
    let end = line[at..]
        .char_indices()
        .nth(SIDE)
        .map_or(line.len(), |(i, _)| at + i);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    for c in line[start..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < line.len() {
        out.push('…');
    }
    out
}

/// The health listener's settings. The port is checked only when the
/// listener is on, as in the Go helper.
fn health(h: &RawHealth, r: &mut Report) -> HealthConfig {
    let mut out = HealthConfig {
        listener_enabled: h.listener_enabled,
        bind_port: DEFAULT_BIND_PORT,
        liveness_path: DEFAULT_LIVENESS_PATH.to_owned(),
        readiness_path: DEFAULT_READINESS_PATH.to_owned(),
        bind_address: h.bind_address,
        metrics_path: Some(DEFAULT_METRICS_PATH.to_owned()),
        status_path: Some(DEFAULT_STATUS_PATH.to_owned()),
    };
    if let Some(port) = &h.bind_port {
        match u16::try_from(port.value) {
            Ok(0) => {}
            Ok(p) => out.bind_port = p,
            Err(_) => {
                let why = if port.value < 0 {
                    "must not be negative"
                } else {
                    "must be at most 65535"
                };
                if h.listener_enabled {
                    r.problem(
                        Some(port.line),
                        format!("health_checks.bind_port {why}, got {}", port.text),
                    );
                } else {
                    r.warn(
                        Some(port.line),
                        format!("health_checks.bind_port {why}, got {}; accepted, as the Go helper accepts it, only because listener_enabled is false", port.text),
                    );
                }
            }
        }
    }
    for (key, given, slot) in [
        ("liveness_path", &h.liveness_path, &mut out.liveness_path),
        ("readiness_path", &h.readiness_path, &mut out.readiness_path),
    ] {
        if let Some(path) = given.get() {
            if !path.starts_with('/') {
                r.warn(
                    given.line,
                    format!("health_checks.{key} = {} does not start with '/', so no request can match it", quote(path)),
                );
            }
            path.clone_into(slot);
        }
    }
    for (key, given, slot) in [
        ("metrics_path", &h.metrics_path, &mut out.metrics_path),
        ("status_path", &h.status_path, &mut out.status_path),
    ] {
        if given.line.is_none() {
            continue;
        }
        *slot = given.get().map(str::to_owned);
        if let Some(path) = given.get().filter(|p| !p.starts_with('/')) {
            r.problem(
                given.line,
                format!(
                    "health_checks.{key} must start with '/' (or be \"\" to turn it off), not {}",
                    quote(path)
                ),
            );
        }
    }
    if out.listener_enabled {
        distinct_paths(h, &mut out, r);
    }
    out
}

/// Every endpoint needs a path of its own. A default `/metrics` or
/// `/status` that another path takes is turned off; any other clash is an
/// error (the Go helper would fail to start on two equal paths).
fn distinct_paths(h: &RawHealth, out: &mut HealthConfig, r: &mut Report) {
    // (key, path, whether it is a default that may step aside, line)
    let mut slots = [
        (
            "liveness_path",
            Some(out.liveness_path.clone()),
            false,
            h.liveness_path.line,
        ),
        (
            "readiness_path",
            Some(out.readiness_path.clone()),
            false,
            h.readiness_path.line,
        ),
        (
            "metrics_path",
            out.metrics_path.clone(),
            h.metrics_path.line.is_none(),
            h.metrics_path.line,
        ),
        (
            "status_path",
            out.status_path.clone(),
            h.status_path.line.is_none(),
            h.status_path.line,
        ),
    ];
    for i in 1..slots.len() {
        for j in 0..i {
            let Some(path) = slots[i].1.clone() else {
                continue;
            };
            if slots[j].1.as_ref() != Some(&path) {
                continue;
            }
            let (off, kept) = if slots[i].2 {
                (i, j)
            } else if slots[j].2 {
                (j, i)
            } else {
                r.problem(
                    slots[i].3.or(slots[j].3),
                    format!(
                        "health_checks.{} {} is also the {}: each endpoint needs a path of its own",
                        slots[i].0,
                        quote(&path),
                        slots[j].0
                    ),
                );
                continue;
            };
            r.warn(
                slots[kept].3,
                format!(
                    "health_checks.{} takes {}, the default of {}: that endpoint is off; set {} to serve it at another path",
                    slots[kept].0,
                    quote(&path),
                    slots[off].0,
                    slots[off].0
                ),
            );
            slots[off].1 = None;
        }
    }
    out.metrics_path = slots[2].1.take();
    out.status_path = slots[3].1.take();
}

/// The socket from `agent_address`, the environment, or the default.
fn agent_socket(
    agent_address: &Text,
    env: &dyn Fn(&str) -> Option<String>,
    r: &mut Report,
) -> PathBuf {
    let (address, from) = endpoint::resolve(&agent_address.value, env);
    match endpoint::socket_path(&address) {
        Ok(p) => p,
        Err(e) => {
            let what = match from {
                endpoint::Origin::Key => "agent_address".to_owned(),
                _ => format!("the environment variable {}", endpoint::ENV),
            };
            r.problem(agent_address.line, format!("{what}: {e}"));
            PathBuf::from(address)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use nix::sys::signal::Signal;

    use super::super::testing::*;
    use super::super::{parse, OutputFile};
    use super::*;

    #[test]
    fn pkcs12_outputs_read_the_first_line_of_their_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "changeit\nnot this\n").unwrap();
        let conf = |outputs: &str| {
            format!(
                "cert_dir = \"c\"\n{outputs}pkcs12_password_file = \"{}\"\n",
                pw.display()
            )
        };
        let p = ok(&conf("pkcs12_file_name = \"ks.p12\"\n"))
            .x509
            .unwrap()
            .pkcs12
            .unwrap();
        assert_eq!(p.password, "changeit");
        assert_eq!(p.password_file, pw);
        assert_eq!(p.keystore.unwrap().path, PathBuf::from("c/ks.p12"));
        assert!(p.truststore.is_none());
        // A truststore alone is an output too, and holds no key.
        let ts = conf("pkcs12_truststore_file_name = \"ts.p12\"\nkey_file_mode = 0644\n");
        let p = ok(&ts).x509.unwrap().pkcs12.unwrap();
        assert!(p.keystore.is_none());
        assert_eq!(p.truststore.unwrap().path, PathBuf::from("c/ts.p12"));
        assert!(warnings(&ts).is_empty(), "{:?}", warnings(&ts));
        // A keystore holds the key, so its mode is warned about.
        let w = warnings(&conf(
            "pkcs12_file_name = \"ks.p12\"\nkey_file_mode = 0644\n",
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("key_file_mode gives the private key mode 0644"),
            "{w:?}"
        );
        // An empty first line, bytes that are not text, no file.
        let ks = conf("pkcs12_file_name = \"ks.p12\"\n");
        std::fs::write(&pw, "\nchangeit\n").unwrap();
        assert!(
            problem(&ks).ends_with(": its first line, the password, is empty"),
            "{}",
            problem(&ks)
        );
        std::fs::write(&pw, b"\xff\xfe\n").unwrap();
        assert!(problem(&ks).ends_with(": the password is not UTF-8 text"));
        std::fs::remove_file(&pw).unwrap();
        assert!(problem(&ks).starts_with(&format!(
            "pkcs12_password_file \"{}\": No such file",
            pw.display()
        )));
    }

    #[test]
    fn output_rules() {
        assert_eq!(
            problem("svid_file_name = \"s\"\nsvid_key_file_name = \"k\"\n"),
            "svid_file_name, svid_key_file_name and svid_bundle_file_name must be set together: svid_bundle_file_name is missing"
        );
        assert_eq!(
            problem("svid_key_file_name = \"k\"\n"),
            "svid_file_name, svid_key_file_name and svid_bundle_file_name must be set together: svid_file_name and svid_bundle_file_name are missing"
        );
        let p = problems("cert_dir = \"c\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, None);
        assert!(p[0].message.starts_with("nothing to write: "), "{p:?}");
        assert_eq!(
            problem("jwt_svids = [{ jwt_svid_file_name = \"t\" }]\n"),
            "jwt_svids[0]: jwt_audience is required"
        );
        assert_eq!(
            problem("jwt_svids = [{ jwt_audience = \"a\" }]\n"),
            "jwt_svids[0]: jwt_svid_file_name is required"
        );
        assert!(ok("jwt_bundle_file_name = \"b.json\"\n")
            .jwt_bundle
            .is_some());
    }

    #[test]
    fn the_new_x509_outputs_count_on_their_own() {
        let c = ok(
            "cert_dir = \"c\"\ncredential_bundle_file_name = \"cred.pem\"\nkey_file_mode = 0400\n",
        );
        let x = c.x509.unwrap();
        assert!(x.files.is_none() && x.trust_bundles.is_none());
        assert_eq!(
            x.credential_bundle,
            Some(OutputFile {
                path: "c/cred.pem".into(),
                mode: 0o400
            })
        );
        let c = ok("trust_bundles_dir = \"/bundles\"\ncert_dir = \"c\"\ncert_file_mode = 0444\n");
        let x = c.x509.unwrap();
        assert!(x.files.is_none() && x.credential_bundle.is_none());
        assert_eq!(
            x.trust_bundles,
            Some(TrustBundlesDir {
                dir: "c/bundles".into(),
                mode: 0o444
            })
        );
        assert!(ok("jwt_bundle_file_name = \"b\"\n").x509.is_none());
        // The trio rule still holds beside them.
        assert!(
            problem("credential_bundle_file_name = \"c\"\nsvid_file_name = \"s\"\n")
                .contains("must be set together")
        );
    }

    #[test]
    fn output_names_are_cleaned_as_go_joins_them_and_stay_in_cert_dir() {
        let c = ok("cert_dir = \"certs\"\nsvid_file_name = \"nope/../s.pem\"\nsvid_key_file_name = \"k.pem/.\"\nsvid_bundle_file_name = \"/b.pem\"\n");
        let f = c.x509.unwrap().files.unwrap();
        assert_eq!(f.svid.path, Path::new("certs/s.pem"));
        assert_eq!(f.key.path, Path::new("certs/k.pem"));
        assert_eq!(f.bundle.path, Path::new("certs/b.pem"));
        assert_eq!(
            problem("cert_dir = \"certs\"\njwt_bundle_file_name = \"a/../../x.json\"\n"),
            "jwt_bundle_file_name \"a/../../x.json\" leaves cert_dir (cleaned: \"../x.json\"): outputs stay inside cert_dir"
        );
        // A leading slash protects nothing: Go cleans cert_dir + "/" + name.
        assert!(
            problem("cert_dir = \"certs\"\njwt_bundle_file_name = \"/../x.json\"\n")
                .contains("leaves cert_dir (cleaned: \"../x.json\")")
        );
        assert!(problem("jwt_bundle_file_name = \"/etc/x.json\"\n")
            .contains("is an absolute path and cert_dir is not set"));
        let long = "n".repeat(256);
        assert!(problem(&format!("jwt_bundle_file_name = \"{long}\"\n"))
            .contains("is 256 bytes, more than a file name can hold (255)"));
        assert!(
            ok(&format!("jwt_bundle_file_name = \"{}\"\n", "n".repeat(255)))
                .jwt_bundle
                .is_some()
        );
    }

    #[test]
    fn key_material_readable_by_others_is_warned_about() {
        let w = warnings(&format!("{SVID}key_file_mode = 644\n"));
        assert!(
            w.iter().any(|w| w.contains("gives the private key mode 0204 (-w----r--): private key material will be readable")),
            "{w:?}"
        );
        let w = warnings("jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"t\" }]\njwt_svid_file_mode = 0640\n");
        assert!(
            w.iter().any(|w| w.contains("JWT-SVID files mode 0640")),
            "{w:?}"
        );
        assert!(warnings(&format!("{SVID}key_file_mode = 0400\n")).is_empty());
    }

    #[test]
    fn two_outputs_never_write_one_file() {
        let text = "jwt_svids = [\n  { jwt_audience = \"a\", jwt_svid_file_name = \"t.jwt\" },\n  { jwt_audience = \"b\", jwt_svid_file_name = \"./t.jwt\" },\n]\n";
        assert_eq!(
            problem(text),
            "jwt_svids[1].jwt_svid_file_name writes \"t.jwt\" as jwt_svids[0].jwt_svid_file_name does: each output needs a file of its own"
        );
    }

    #[test]
    fn trust_bundles_dir_is_a_directory_of_its_own() {
        for dir in [".", "./", "x/.."] {
            let p = problem(&format!(
                "cert_dir = \"c\"\ntrust_bundles_dir = \"{dir}\"\n"
            ));
            assert!(
                p.starts_with("trust_bundles_dir is cert_dir itself"),
                "{dir}: {p}"
            );
        }
        let p = problem(&format!(
            "{SVID}trust_bundles_dir = \"sub\"\njwt_bundle_file_name = \"sub/b.json\"\n"
        ));
        assert!(
            p.contains("is the directory jwt_bundle_file_name is written to"),
            "{p}"
        );
        assert!(ok(&format!("{SVID}trust_bundles_dir = \"bundles\"\n"))
            .x509
            .unwrap()
            .trust_bundles
            .is_some());
    }

    #[test]
    fn signals_that_stop_a_process_are_refused_and_sigkill_warns() {
        for s in ["SIGSTOP", "SIGTSTP", "ttin", "SIGTTOU"] {
            let p = problem(&format!("{SVID}renew_signal = \"{s}\"\n"));
            assert!(
                p.contains("stops the process instead of telling it to reload"),
                "{s}: {p}"
            );
        }
        let l = load_text(&format!("{SVID}renew_signal = \"SIGKILL\"\n")).unwrap();
        assert_eq!(l.config.process.renew_signal, Some(Signal::SIGKILL));
        assert!(
            l.warnings[0].contains("kills the process at every renewal"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn process_rules() {
        assert_eq!(
            problem(&format!("{SVID}pid_file_name = \"p\"\n")),
            "pid_file_name is set without renew_signal: set renew_signal to the signal the process expects"
        );
        assert_eq!(
            problem(&format!(
                "{SVID}pid_file_name = \"p\"\nrenew_signal = \"SIGHUP\"\ndaemon_mode = false\n"
            )),
            "pid_file_name is set but daemon_mode is false. pid_file_name is only supported in daemon_mode"
        );
        assert_eq!(
            problem(&format!("{SVID}renew_signal = \"SIGBOGUS\"\n")),
            "renew_signal \"SIGBOGUS\" is not a signal name (for example SIGHUP or SIGUSR1)"
        );
        // One-shot: cmd and renew_signal are ignored with warnings, even a bogus signal.
        let l = load_text(&format!(
            "{SVID}daemon_mode = false\ncmd = \"x\"\nrenew_signal = \"BOGUS\"\n"
        ))
        .unwrap();
        assert!(l.config.process.cmd.is_none() && l.config.process.renew_signal.is_none());
        assert_eq!(
            l.warnings,
            [
                "helper.conf line 5: cmd is set but daemon_mode is false: cmd is not run",
                "helper.conf line 6: renew_signal is set but daemon_mode is false: renew_signal is ignored",
            ]
        );
        // The flag overrides the file, and messages say so.
        let l = parse(
            &format!("{SVID}cmd = \"x\"\n"),
            Path::new("h.conf"),
            Some(false),
            &no_env,
        )
        .unwrap();
        assert!(!l.config.daemon_mode);
        assert_eq!(
            l.warnings,
            ["h.conf line 4: cmd is set but -daemon-mode=false is given: cmd is not run"]
        );
        let l = parse(
            &format!("{SVID}daemon_mode = false\n"),
            Path::new("h.conf"),
            Some(true),
            &no_env,
        )
        .unwrap();
        assert!(l.config.daemon_mode);
        let c = ok(&format!(
            "{SVID}pid_file_name = \"p\"\nrenew_signal = \"USR1\"\n"
        ));
        assert_eq!(c.process.pid_file, Some(PathBuf::from("p")));
        assert_eq!(c.process.renew_signal, Some(Signal::SIGUSR1));
    }

    #[test]
    fn cmd_exit_policy_rules() {
        assert_eq!(
            problem(&format!("{SVID}cmd_exit_policy = \"exit\"\n")),
            "cmd_exit_policy is set but cmd is not: it says what happens when cmd exits"
        );
        assert_eq!(
            problem(&format!(
                "{SVID}cmd_exit_policy = \"relaunch_on_renewal\"\n"
            )),
            "cmd_exit_policy is set but cmd is not: it says what happens when cmd exits"
        );
        assert_eq!(
            problem(&format!(
                "{SVID}cmd = \"x\"\ncmd_exit_policy = \"restart\"\ndaemon_mode = false\n"
            )),
            "cmd_exit_policy = \"restart\" needs daemon mode, but daemon_mode is false"
        );
        // The default is fine in one-shot mode (cmd is ignored there anyway).
        let l = load_text(&format!(
            "{SVID}cmd = \"x\"\ncmd_exit_policy = \"relaunch_on_renewal\"\ndaemon_mode = false\n"
        ))
        .unwrap();
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
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
        assert!(cmd("cmd_args = \"\"").is_empty());
        assert_eq!(cmd(r#"cmd_args = "-c 'echo hi'""#), ["-c", "'echo", "hi'"]);
        assert_eq!(
            cmd(r#"cmd_args = ["-c", "echo 'hi there'"]"#),
            ["-c", "echo 'hi there'"]
        );
        assert_eq!(
            problem(&format!(
                "{SVID}cmd = \"x\"\ncmd_args = \"-c \\\"unterminated\"\n"
            )),
            "cmd_args cannot be split into arguments: parse error on line 1, column 17: extraneous or missing \" in quoted-field, here: -c \"unterminated (double quotes group an argument; write \"\" for a literal quote inside them, or give cmd_args as a list)"
        );
        assert_eq!(
            warnings(&format!("{SVID}cmd = \"x\"\ncmd_args = \"a  b\"\n")),
            ["helper.conf line 5: cmd_args \"a  b\" gives an empty argument (two spaces in a row?): the argv is a '' b"]
        );
        assert_eq!(
            warnings(&format!("{SVID}cmd_args = \"a\"\n")),
            ["helper.conf line 4: cmd_args is set but cmd is not: it is ignored"]
        );
        // Empty cmd and cmd_args, as upstream's own example has them: quiet.
        assert!(warnings(&format!("{SVID}cmd = \"\"\ncmd_args = \"\"\n")).is_empty());
        // An empty list is unset too; a list with an argument is not.
        assert!(warnings(&format!("{SVID}cmd_args = []\n")).is_empty());
        assert_eq!(
            warnings(&format!("{SVID}cmd_args = [\"a\"]\n")),
            ["helper.conf line 4: cmd_args is set but cmd is not: it is ignored"]
        );
    }

    #[test]
    fn an_unsplittable_cmd_args_is_shown_in_part() {
        let long = format!("{} \"{}", "a".repeat(5000), "b".repeat(5000));
        let p = problem(&format!(
            "{SVID}cmd = \"x\"\ncmd_args = {}\n",
            quote_hcl(&long)
        ));
        assert_eq!(
            p,
            format!(
                "cmd_args cannot be split into arguments: parse error on line 1, column 10003: extraneous or missing \" in quoted-field, here: …{} (double quotes group an argument; write \"\" for a literal quote inside them, or give cmd_args as a list)",
                "b".repeat(30)
            )
        );
        assert!(p.len() < 300, "{}", p.len());
        assert_eq!(excerpt("ab\"c", 1, 3), "ab\"c");
        assert_eq!(excerpt("x\ny\tz", 2, 2), "y\\tz");
        assert_eq!(
            excerpt(&"é".repeat(100), 1, 101),
            format!("…{}…", "é".repeat(60))
        );
    }

    fn quote_hcl(s: &str) -> String {
        format!("\"{}\"", s.replace('"', "\\\""))
    }

    #[test]
    fn health_port_is_checked_only_with_the_listener_on() {
        for (conf, want) in [
            (
                "bind_port = -5",
                "health_checks.bind_port must not be negative, got -5",
            ),
            (
                "bind_port = 70000",
                "health_checks.bind_port must be at most 65535, got 70000",
            ),
        ] {
            assert_eq!(
                problem(&format!(
                    "{SVID}health_checks {{\n listener_enabled = true\n {conf}\n}}\n"
                )),
                want
            );
            let l = load_text(&format!("{SVID}health_checks {{\n {conf}\n}}\n")).unwrap();
            assert_eq!(l.config.health.bind_port, 8081);
            assert_eq!(
                l.warnings,
                [format!("helper.conf line 5: {want}; accepted, as the Go helper accepts it, only because listener_enabled is false")]
            );
        }
        // A port that is not a number is an error either way.
        assert!(
            problem(&format!("{SVID}health_checks {{\n bind_port = \"x\"\n}}\n"))
                .starts_with("health_checks.bind_port must be an integer")
        );
        let c = ok(&format!(
            "{SVID}health_checks {{\n listener_enabled = true\n bind_port = 0\n}}\n"
        ));
        assert_eq!(c.health.bind_port, 8081);
    }

    #[test]
    fn health_paths() {
        let health = |conf: &str| {
            ok(&format!(
                "{SVID}health_checks {{\n listener_enabled = true\n{conf}\n}}\n"
            ))
            .health
        };
        let h = health("metrics_path = \"/m\"\nstatus_path = \"\"");
        assert_eq!(h.metrics_path.as_deref(), Some("/m"));
        assert_eq!(h.status_path, None);
        for (conf, want) in [
            (
                "metrics_path = \"metrics\"",
                "health_checks.metrics_path must start with '/' (or be \"\" to turn it off), not \"metrics\"",
            ),
            (
                "status_path = \"s\"",
                "health_checks.status_path must start with '/' (or be \"\" to turn it off), not \"s\"",
            ),
            (
                "readiness_path = \"/live\"",
                "health_checks.readiness_path \"/live\" is also the liveness_path: each endpoint needs a path of its own",
            ),
            (
                "status_path = \"/ready\"",
                "health_checks.status_path \"/ready\" is also the readiness_path: each endpoint needs a path of its own",
            ),
            (
                "metrics_path = \"/x\"\nstatus_path = \"/x\"",
                "health_checks.status_path \"/x\" is also the metrics_path: each endpoint needs a path of its own",
            ),
        ] {
            assert_eq!(
                problem(&format!(
                    "{SVID}health_checks {{\n listener_enabled = true\n{conf}\n}}\n"
                )),
                want,
                "{conf}"
            );
        }
        // With the listener off, the Go helper never registers the paths.
        let l = load_text(&format!(
            "{SVID}health_checks {{\nreadiness_path = \"/live\"\n}}\n"
        ));
        assert!(l.is_ok(), "{l:?}");
        // A default that another path takes steps aside.
        let l = load_text(&format!(
            "{SVID}health_checks {{\n listener_enabled = true\n liveness_path = \"/metrics\"\n}}\n"
        ))
        .unwrap();
        assert_eq!(l.config.health.metrics_path, None);
        assert_eq!(l.config.health.status_path.as_deref(), Some("/status"));
        assert_eq!(
            l.warnings,
            ["helper.conf line 6: health_checks.liveness_path takes \"/metrics\", the default of metrics_path: that endpoint is off; set metrics_path to serve it at another path"]
        );
        // The upstream keys keep their old leniency: a warning.
        assert_eq!(
            warnings(&format!("{SVID}health_checks {{\n liveness_path = \"live\"\n}}\n")),
            ["helper.conf line 5: health_checks.liveness_path = \"live\" does not start with '/', so no request can match it"]
        );
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
        assert_eq!(
            problem(&format!("{SVID}agent_address = \"tcp:1.2.3.4:5\"\n")),
            "agent_address: \"tcp:1.2.3.4:5\" is a TCP address; only a Unix socket is supported"
        );
        let bad = |_: &str| Some("tcp:1.2.3.4:5".to_owned());
        let e = parse(SVID, Path::new("h"), None, &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the environment variable SPIFFE_ENDPOINT_SOCKET"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems("svid_file_nam = \"a\"\nkey_file_mode = -1\npid_file_name = \"p\"\n");
        let text: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            text,
            [
                "unknown key \"svid_file_nam\"; did you mean \"svid_file_name\"?",
                "key_file_mode must not be negative, got -1",
                "pid_file_name is set without renew_signal: set renew_signal to the signal the process expects",
                "nothing to write: set svid_file_name, svid_key_file_name and svid_bundle_file_name, or jwt_svids, or jwt_bundle_file_name (or credential_bundle_file_name or trust_bundles_dir)",
            ]
        );
        let e = error_text("svid_file_nam = \"a\"\nkey_file_mode = -1\n");
        assert!(
            e.starts_with("invalid configuration file helper.conf (3 problems):\n  helper.conf line 1: unknown key \"svid_file_nam\""),
            "{e}"
        );
    }
}
