//! Configuration from the environment, as upstream's agreed design names
//! it (issue #223, pull request #335; not released upstream yet):
//! `SPIFFE_HLP_<KEY>` overrides the file's top-level key `<key>`, so
//! `SPIFFE_HLP_CERT_DIR=/certs` is `cert_dir = "/certs"`. Where that design
//! is unsettled, this helper chooses:
//! - keys of `health_checks` are `SPIFFE_HLP_HEALTH_CHECKS_<KEY>`
//!   (`SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT=8081`);
//! - `jwt_svids` (and `cmd_args` as a list, or `health_checks` whole) take
//!   an HCL or JSON list or object: `SPIFFE_HLP_JWT_SVIDS='[{jwt_audience =
//!   "db", jwt_svid_file_name = "db.jwt"}]'`;
//! - precedence: the `-daemon-mode` flag, then the environment, then the
//!   file, then the defaults.
//!
//! Values are read as the file's are: Go's integer syntax for modes
//! (`0640` is octal), `true`/`false` (and Go's other spellings) for
//! booleans, text as it is for strings. A variable that names no key is a
//! warning naming the nearest one.
//!
//! `-expandEnv` ([`expand`]) replaces `$VAR` and `${VAR}` in the file
//! before it is read, as SPIRE's agent and server do (Go's `os.ExpandEnv`).

use super::read::{HEALTH_KEYS, TOP_KEYS};
use super::tree::{Entry, Node, Value};

pub const PREFIX: &str = "SPIFFE_HLP_";
const HEALTH_PREFIX: &str = "HEALTH_CHECKS_";

/// How a key's value is written in a variable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    /// HCL/JSON syntax when it starts with `[` or `{`, else text.
    Structured,
    /// A whole number of seconds, or a duration string.
    Duration,
}

fn kind(key: &str) -> Kind {
    match key {
        "cert_file_mode"
        | "key_file_mode"
        | "jwt_bundle_file_mode"
        | "jwt_svid_file_mode"
        | "bind_port" => Kind::Integer,
        "add_intermediates_to_bundle"
        | "include_federated_domains"
        | "omit_expired"
        | "daemon_mode"
        | "listener_enabled" => Kind::Boolean,
        "jwt_svids" | "cmd_args" | "health_checks" => Kind::Structured,
        "oneshot_max_wait" => Kind::Duration,
        _ => Kind::Text,
    }
}

/// The line numbers given to entries from the environment: far past any
/// file's, so that messages can name the variable instead of a line.
pub const FIRST_LINE: usize = usize::MAX / 2;

/// What the environment set: entries to read as the file's, the variable
/// each came from (by its line), and warnings.
#[derive(Default)]
pub struct Overlay {
    /// Top-level entries, with `health_checks` keys in one block.
    pub entries: Vec<Entry>,
    /// (line, variable name) for every entry and nested health entry.
    pub names: Vec<(usize, String)>,
    /// The keys set, as `cert_dir` or `health_checks.bind_port`.
    pub keys: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads the `SPIFFE_HLP_` variables among `vars`.
pub fn overlay(vars: &[(String, String)]) -> Overlay {
    let mut o = Overlay::default();
    let mut health: Vec<Entry> = Vec::new();
    let mut vars: Vec<&(String, String)> =
        vars.iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
    vars.sort();
    for (name, value) in vars {
        let rest = &name[PREFIX.len()..];
        let line = FIRST_LINE + o.names.len();
        let lower = rest.to_ascii_lowercase();
        if let Some(key) = lower
            .strip_prefix(&HEALTH_PREFIX.to_ascii_lowercase())
            .and_then(|k| HEALTH_KEYS.iter().find(|h| **h == k))
        {
            health.push(entry(key, value, line));
            o.names.push((line, name.clone()));
            o.keys.push(format!("health_checks.{key}"));
        } else if let Some(key) = TOP_KEYS.iter().find(|k| **k == lower) {
            o.entries.push(entry(key, value, line));
            o.names.push((line, name.clone()));
            o.keys.push((*key).to_owned());
        } else {
            // Keys are compared in lower case, as the file's are.
            let all: Vec<String> = TOP_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .chain(HEALTH_KEYS.iter().map(|k| format!("health_checks_{k}")))
                .collect();
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let hint = super::suggest::nearest(&lower, &refs)
                .map(|n| format!("; did you mean {PREFIX}{}?", n.to_ascii_uppercase()))
                .unwrap_or_default();
            o.warnings.push(format!(
                "the environment variable {name} names no configuration key and is ignored{hint}"
            ));
        }
    }
    if !health.is_empty() {
        let line = health[0].line;
        o.entries.push(Entry {
            key: "health_checks".to_owned(),
            quoted: false,
            labels: Vec::new(),
            line,
            node: Node {
                line,
                value: Value::Object(health),
            },
        });
    }
    o
}

fn entry(key: &str, raw: &str, line: usize) -> Entry {
    let value = match kind(key) {
        Kind::Integer => Value::Int(raw.trim().to_owned()),
        Kind::Boolean => match raw.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Value::Bool(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Value::Bool(false),
            // Read as text: the reader then names the key and the value.
            other => Value::Str(other.to_owned()),
        },
        Kind::Duration
            if !raw.trim().is_empty() && raw.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            Value::Int(raw.trim().to_owned())
        }
        Kind::Text | Kind::Duration => Value::Str(raw.to_owned()),
        Kind::Structured => structured(raw).unwrap_or_else(|| Value::Str(raw.to_owned())),
    };
    Entry {
        key: key.to_owned(),
        quoted: false,
        labels: Vec::new(),
        line,
        node: Node { line, value },
    }
}

/// An HCL or JSON list or object; `None` for anything else (read as text).
fn structured(raw: &str) -> Option<Value> {
    let t = raw.trim_start();
    if !(t.starts_with('[') || t.starts_with('{')) {
        return None;
    }
    let doc = super::syntax::parse(&format!("v = {t}\n")).ok()?;
    let e = doc.entries.into_iter().next()?;
    Some(e.node.value)
}

/// Replaces the file's entries for every key the environment sets (the
/// environment wins) and appends the environment's.
pub fn apply(entries: &mut Vec<Entry>, o: &Overlay) {
    let top: Vec<&str> = o
        .keys
        .iter()
        .filter(|k| !k.contains('.'))
        .map(String::as_str)
        .collect();
    let health: Vec<&str> = o
        .keys
        .iter()
        .filter_map(|k| k.strip_prefix("health_checks."))
        .collect();
    entries.retain(|e| !top.iter().any(|k| k.eq_ignore_ascii_case(&e.key)));
    for e in entries.iter_mut() {
        if e.key.eq_ignore_ascii_case("health_checks") {
            if let Value::Object(inner) = &mut e.node.value {
                inner.retain(|i| !health.iter().any(|k| k.eq_ignore_ascii_case(&i.key)));
            }
        }
    }
    entries.extend(o.entries.iter().cloned());
}

/// Go's `os.ExpandEnv`: `$NAME` and `${NAME}` replaced by the variable's
/// value, empty when unset; `$` before anything else is kept or dropped as
/// Go does.
pub fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        out.push_str(&text[copied..i]);
        let (name, used) = shell_name(&text[i + 1..]);
        if name.is_empty() && used > 0 {
            // Bad syntax (`${}` or an unclosed `${`): Go drops it.
        } else if name.is_empty() {
            // `$` before something that is not a name: kept.
            out.push('$');
        } else {
            out.push_str(&env(name).unwrap_or_default());
        }
        i += 1 + used;
        copied = i;
    }
    out.push_str(&text[copied..]);
    out
}

/// Go's `getShellName`: the name after a `$` and how many bytes it took.
/// (Go's own case for one special character in braces, `${*}`, gives what
/// the scan to the closing brace gives, so it is left out.)
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        for (i, &c) in b.iter().enumerate().skip(1) {
            if c == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if is_special(b[0]) {
        return (&s[0..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

fn is_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_go() {
        let env = |k: &str| match k {
            "A" => Some("x".to_owned()),
            "B_1" => Some("y".to_owned()),
            "1" => Some("one".to_owned()),
            "*" => Some("all".to_owned()),
            _ => None,
        };
        for (text, want) in [
            ("$A/${B_1}", "x/y"),
            ("$UNSET-", "-"),
            ("cost $", "cost $"),
            ("a $ b", "a $ b"),
            ("${}", ""),
            ("${A", "A"),
            ("$$", ""),
            // A digit or special character is a name of its own.
            ("$1x", "onex"),
            ("héllo $A", "héllo x"),
            ("${1}-${*}-${A}", "one-all-x"),
            ("${1x}", ""),
            ("${1", "1"),
        ] {
            assert_eq!(expand(text, &env), want, "{text:?}");
        }
    }

    #[test]
    fn variables_become_entries_and_unknown_ones_warn() {
        let vars = [
            ("SPIFFE_HLP_CERT_DIR", "/certs"),
            ("SPIFFE_HLP_KEY_FILE_MODE", "0640"),
            ("SPIFFE_HLP_OMIT_EXPIRED", "true"),
            ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "9000"),
            (
                "SPIFFE_HLP_JWT_SVIDS",
                "[{jwt_audience = \"a\", jwt_svid_file_name = \"t\"}]",
            ),
            ("SPIFFE_HLP_CERTDIR", "x"),
            ("OTHER", "y"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let o = overlay(&vars);
        assert_eq!(
            o.keys,
            [
                "cert_dir",
                "health_checks.bind_port",
                "jwt_svids",
                "key_file_mode",
                "omit_expired"
            ]
        );
        assert_eq!(o.warnings.len(), 1);
        assert!(
            o.warnings[0].contains("did you mean SPIFFE_HLP_CERT_DIR?"),
            "{:?}",
            o.warnings
        );
        assert!(o
            .entries
            .iter()
            .any(|e| e.key == "jwt_svids" && matches!(e.node.value, Value::List(_))));
    }

    #[test]
    fn values_are_read_by_their_key_s_type_around_blanks() {
        use super::super::testing::{load_env, SVID};
        let read = |vars: &[(&str, &str)]| match load_env(SVID, vars) {
            Ok(l) => l.config,
            Err(e) => panic!("{vars:?}: {e}"),
        };
        let c = read(&[
            ("SPIFFE_HLP_KEY_FILE_MODE", " 0640 "),
            ("SPIFFE_HLP_OMIT_EXPIRED", " T "),
            ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", " 9000"),
            ("SPIFFE_HLP_HEALTH_CHECKS_LISTENER_ENABLED", "1"),
            ("SPIFFE_HLP_ONESHOT_MAX_WAIT", " 90 "),
        ]);
        let x509 = c.x509.unwrap();
        assert_eq!(x509.files.unwrap().key.mode, 0o640);
        assert!(x509.omit_expired);
        assert_eq!(c.health.bind_port, 9000);
        assert!(c.health.listener_enabled);
        assert_eq!(c.oneshot_max_wait, std::time::Duration::from_secs(90));
        // A duration with a unit is a duration string; empty is unset.
        let c = read(&[("SPIFFE_HLP_ONESHOT_MAX_WAIT", "1m30s")]);
        assert_eq!(c.oneshot_max_wait, std::time::Duration::from_secs(90));
        let c = read(&[("SPIFFE_HLP_ONESHOT_MAX_WAIT", "")]);
        assert_eq!(c.oneshot_max_wait, super::super::DEFAULT_ONESHOT_MAX_WAIT);
    }

    #[test]
    fn a_variable_replaces_the_file_s_entries_of_its_key() {
        use super::super::testing::load_env;
        // Repeated jwt_svids in a file add up; the environment's replace
        // them all.
        let file = "jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"a.jwt\" }]\n\
                    jwt_svids = [{ jwt_audience = \"b\", jwt_svid_file_name = \"b.jwt\" }]\n\
                    health_checks {\n  bind_port = 1\n  listener_enabled = true\n}\n";
        let c = load_env(
            file,
            &[
                (
                    "SPIFFE_HLP_JWT_SVIDS",
                    "[{jwt_audience = \"c\", jwt_svid_file_name = \"c.jwt\"}]",
                ),
                ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "9000"),
            ],
        )
        .unwrap()
        .config;
        let audiences: Vec<&str> = c.jwt_svids.iter().map(|j| j.audience.as_str()).collect();
        assert_eq!(audiences, ["c"]);
        assert_eq!(c.health.bind_port, 9000);
        assert!(c.health.listener_enabled);
    }
}
