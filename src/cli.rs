//! The command line, read the way Go's `flag` package reads it, because
//! existing manifests and units pass flags that way: one or two dashes,
//! `-flag value` or `-flag=value`, a bare boolean flag meaning true, and
//! parsing stopping at the first argument that is not a flag.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum CliAction {
    Run(CliArgs),
    Version,
    Help,
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct CliArgs {
    /// `-config`, default `helper.conf`.
    pub config: PathBuf,
    /// `-daemon-mode`, when given; `None` lets the file decide.
    pub daemon_mode: Option<bool>,
    /// `-check`: validate the configuration and the environment, print
    /// the effective configuration, and exit.
    pub check: bool,
    /// `-expandEnv`: `$VAR` and `${VAR}` in the file replaced from the
    /// environment before it is read, as SPIRE's agent and server do.
    pub expand_env: bool,
    /// What followed the first argument that is not a flag: ignored, as
    /// Go's `flag` package leaves it (with a warning, since it is usually
    /// `-daemon-mode false` meant as `-daemon-mode=false`).
    pub ignored: Vec<String>,
}

/// A command line Go's `flag` package would refuse (exit code 2), in
/// Go's words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("bad flag syntax: {0}")]
    Syntax(String),
    #[error("flag provided but not defined: -{0}")]
    Undefined(String),
    #[error("flag provided but not defined: -{0} (the flag is not valid UTF-8)")]
    NotUtf8(String),
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    #[error("invalid boolean value {value:?} for -{flag}: use true or false")]
    NotBoolean { flag: String, value: String },
}

/// The usage text printed by `-help` and after a command-line error.
pub fn usage() -> String {
    concat!(
        "Usage: spiffe-helper [-config FILE] [-daemon-mode=BOOL] [-expandEnv] [-check] [-version] [-help]\n",
        "\n",
        "Fetches the workload's SPIFFE identity from the Workload API, writes it to\n",
        "files and keeps it rotated.\n",
        "\n",
        "  -config FILE\n",
        "        configuration file, HCL or JSON (default \"helper.conf\")\n",
        "  -daemon-mode=BOOL\n",
        "        true: keep running, rotate the files and signal or start `cmd`;\n",
        "        false: write the files once and exit (default: daemon_mode from\n",
        "        the file, else true)\n",
        "  -check\n",
        "        validate the configuration and the environment (cert_dir, cmd, the\n",
        "        health address) without contacting the agent, print the effective\n",
        "        configuration as JSON, and exit 0 or 1\n",
        "  -expandEnv\n",
        "        replace $VAR and ${VAR} in the configuration file with the\n",
        "        environment's values before reading it (unset: empty)\n",
        "  -version\n",
        "        print the version and exit\n",
        "  -help, -h\n",
        "        print this help and exit\n",
        "\n",
        "Flags take one or two dashes; values go after `=` or as the next argument.\n",
        "Logs go to stderr; set the level with RUST_LOG (error, warn, info, debug).\n",
        "SPIFFE_HLP_<KEY> environment variables override the file's keys\n",
        "(SPIFFE_HLP_CERT_DIR, SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT, ...).\n",
    )
    .to_owned()
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<CliAction, CliError> {
    parse_os(args.into_iter().map(OsString::from))
}

/// Parses the arguments after the program name as the operating system
/// gave them: a `-config` path need not be UTF-8, and any other argument
/// that is not is reported, never a panic.
pub fn parse_os<I: IntoIterator<Item = OsString>>(args: I) -> Result<CliAction, CliError> {
    let mut config = PathBuf::from("helper.conf");
    let mut daemon_mode = None;
    let mut version = false;
    let mut check = false;
    let mut expand_env = false;
    let mut ignored = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        // Go stops at the first non-flag argument; "--" ends the flags too.
        if bytes == b"--" || bytes.len() < 2 || bytes[0] != b'-' {
            if bytes != b"--" {
                ignored.push(arg.to_string_lossy().into_owned());
            }
            ignored.extend(args.map(|a| a.to_string_lossy().into_owned()));
            break;
        }
        let body = bytes.strip_prefix(b"--").unwrap_or(&bytes[1..]);
        if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
            return Err(CliError::Syntax(arg.to_string_lossy().into_owned()));
        }
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return Err(CliError::NotUtf8(
                String::from_utf8_lossy(name).into_owned(),
            ));
        };
        match name {
            "help" | "h" => return Ok(CliAction::Help),
            "config" => {
                let v = match value {
                    Some(v) => OsString::from_vec(v.to_vec()),
                    None => args
                        .next()
                        .ok_or_else(|| CliError::NeedsArgument(name.to_owned()))?,
                };
                config = PathBuf::from(v);
            }
            "daemon-mode" | "version" | "check" | "expandEnv" => {
                let value = match value.map(std::str::from_utf8) {
                    None => None,
                    Some(Ok(v)) => Some(v),
                    Some(Err(_)) => {
                        return Err(CliError::NotBoolean {
                            flag: name.to_owned(),
                            value: String::from_utf8_lossy(value.unwrap_or_default()).into_owned(),
                        })
                    }
                };
                let b = bool_value(name, value)?;
                match name {
                    "version" => version = b,
                    "check" => check = b,
                    "expandEnv" => expand_env = b,
                    _ => daemon_mode = Some(b),
                }
            }
            _ => return Err(CliError::Undefined(name.to_owned())),
        }
    }
    if version {
        return Ok(CliAction::Version);
    }
    Ok(CliAction::Run(CliArgs {
        config,
        daemon_mode,
        check,
        expand_env,
        ignored,
    }))
}

impl CliArgs {
    /// The warning for arguments left after the flags, if any.
    pub fn ignored_warning(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let shown = shell_words::join(&self.ignored);
        Some(format!(
            "arguments after the flags are ignored: {shown} (flag parsing stops at the first argument that is not a flag, as Go's does; a boolean flag takes its value with '=': write -daemon-mode=false, not -daemon-mode false)"
        ))
    }
}

/// A boolean flag: bare means true, else Go's `strconv.ParseBool` spellings.
fn bool_value(name: &str, value: Option<&str>) -> Result<bool, CliError> {
    match value {
        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(CliError::NotBoolean {
            flag: name.to_owned(),
            value: v.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse, without the ignored arguments (their own test checks
    /// them).
    fn run(args: &[&str]) -> Result<CliAction, CliError> {
        parse(args.iter().map(|s| (*s).to_owned())).map(strip)
    }

    fn strip(a: CliAction) -> CliAction {
        match a {
            CliAction::Run(mut a) => {
                a.ignored.clear();
                CliAction::Run(a)
            }
            other => other,
        }
    }

    fn args(config: &str, daemon_mode: Option<bool>) -> CliAction {
        CliAction::Run(CliArgs {
            config: config.into(),
            daemon_mode,
            ..CliArgs::default()
        })
    }

    #[test]
    fn arguments_after_the_flags_are_kept_for_a_warning() {
        let CliAction::Run(a) =
            parse(["-daemon-mode", "false", "-config", "x"].map(str::to_owned)).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.ignored, ["false", "-config", "x"]);
        let w = a.ignored_warning().unwrap();
        assert!(
            w.contains("false -config x") && w.contains("-daemon-mode=false"),
            "{w}"
        );
        let CliAction::Run(a) = parse(["-check", "--", "y"].map(str::to_owned)).unwrap() else {
            panic!()
        };
        assert!(a.check);
        assert_eq!(a.ignored, ["y"]);
        let CliAction::Run(a) = run(&["-check=false"]).unwrap() else {
            panic!()
        };
        assert!(!a.check && a.ignored_warning().is_none());
    }

    #[test]
    fn defaults() {
        assert_eq!(run(&[]).unwrap(), args("helper.conf", None));
    }

    #[test]
    fn every_go_spelling_of_config() {
        for form in [
            &["-config", "a.conf"][..],
            &["--config", "a.conf"],
            &["-config=a.conf"],
            &["--config=a.conf"],
        ] {
            assert_eq!(run(form).unwrap(), args("a.conf", None), "{form:?}");
        }
        // A value may itself contain '=' or start with a dash.
        assert_eq!(run(&["-config=a=b"]).unwrap(), args("a=b", None));
        assert_eq!(run(&["-config", "-x"]).unwrap(), args("-x", None));
    }

    #[test]
    fn daemon_mode_bare_or_with_a_value() {
        assert_eq!(
            run(&["-daemon-mode"]).unwrap(),
            args("helper.conf", Some(true))
        );
        for f in ["false", "0", "F", "FALSE", "False", "f"] {
            let a = format!("--daemon-mode={f}");
            assert_eq!(run(&[&a]).unwrap(), args("helper.conf", Some(false)), "{f}");
        }
        // Go does not take a separate value for a boolean flag.
        assert_eq!(
            run(&["-daemon-mode", "false", "-config", "x"]).unwrap(),
            args("helper.conf", Some(true))
        );
        let e = run(&["-daemon-mode=maybe"]).unwrap_err();
        assert!(e.to_string().contains("-daemon-mode"), "{e}");
    }

    #[test]
    fn version_and_help() {
        assert_eq!(run(&["-version"]).unwrap(), CliAction::Version);
        assert_eq!(run(&["--version=true"]).unwrap(), CliAction::Version);
        assert_eq!(run(&["-version=false"]).unwrap(), args("helper.conf", None));
        for h in ["-h", "-help", "--help", "--h"] {
            assert_eq!(run(&[h]).unwrap(), CliAction::Help, "{h}");
        }
        assert_eq!(run(&["-version", "-h"]).unwrap(), CliAction::Help);
    }

    #[test]
    fn errors_read_like_go() {
        assert_eq!(
            run(&["-frobnicate"]).unwrap_err().to_string(),
            "flag provided but not defined: -frobnicate"
        );
        assert_eq!(
            run(&["-config"]).unwrap_err().to_string(),
            "flag needs an argument: -config"
        );
        assert_eq!(
            run(&["---config"]).unwrap_err().to_string(),
            "bad flag syntax: ---config"
        );
        assert_eq!(
            run(&["-=x"]).unwrap_err().to_string(),
            "bad flag syntax: -=x"
        );
    }

    #[test]
    fn parsing_stops_at_the_first_non_flag() {
        assert_eq!(run(&["x", "-bogus"]).unwrap(), args("helper.conf", None));
        assert_eq!(run(&["--", "-bogus"]).unwrap(), args("helper.conf", None));
        assert_eq!(run(&["-", "-bogus"]).unwrap(), args("helper.conf", None));
    }

    #[test]
    fn arguments_that_are_not_utf8_never_panic() {
        use std::os::unix::ffi::OsStringExt as _;
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        // A config path may be any bytes, in both spellings.
        let want = CliAction::Run(CliArgs {
            config: PathBuf::from(os(b"\xff.conf")),
            ..CliArgs::default()
        });
        assert_eq!(parse_os([os(b"-config"), os(b"\xff.conf")]).unwrap(), want);
        assert_eq!(parse_os([os(b"-config=\xff.conf")]).unwrap(), want);
        let e = parse_os([os(b"-\xff")]).unwrap_err().to_string();
        assert!(e.contains("not valid UTF-8"), "{e}");
        let e = parse_os([os(b"-daemon-mode=\xff")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("-daemon-mode"), "{e}");
        // After the flags, anything goes.
        assert_eq!(
            strip(parse_os([os(b"x"), os(b"\xfe")]).unwrap()),
            args("helper.conf", None)
        );
    }

    #[test]
    fn usage_names_every_flag() {
        let u = usage();
        for f in [
            "-config",
            "-daemon-mode",
            "-expandEnv",
            "-check",
            "-version",
            "-help",
        ] {
            assert!(u.contains(f), "{f}");
        }
    }
}
