//! `-check`: the configuration and the environment it needs, checked
//! without contacting the agent, and the effective configuration printed
//! as JSON (defaults filled in, names cleaned and joined with `cert_dir`).
//!
//! Checked: `cert_dir` exists and this uid can create files in it (or every
//! output file exists there and can be rewritten in place); a
//! `trust_bundles_dir` that exists is a directory, not a link; `cmd`
//! resolves to an executable; the health address can be bound.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::{Config, OutputFile};

/// What `-check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems: the helper would fail with them.
    pub problems: Vec<String>,
    /// Facts worth knowing that are not problems.
    pub notes: Vec<String>,
}

/// Checks the environment of `cfg`.
pub fn environment(cfg: &Config) -> Report {
    let mut r = Report::default();
    cert_dir(cfg, &mut r);
    trust_bundles_dir(cfg, &mut r);
    if let Some(cmd) = &cfg.process.cmd {
        if let Err(why) = executable(&cmd.program) {
            r.problems.push(format!("cmd {:?}: {why}", cmd.program));
        }
    }
    if cfg.daemon_mode && cfg.health.listener_enabled {
        health(cfg, &mut r);
    }
    r
}

fn output_files(cfg: &Config) -> Vec<&OutputFile> {
    let mut out = Vec::new();
    if let Some(x) = &cfg.x509 {
        if let Some(f) = &x.files {
            out.extend([&f.svid, &f.key, &f.bundle]);
        }
        out.extend(x.credential_bundle.as_ref());
        if let Some(p) = &x.pkcs12 {
            out.extend(p.keystore.iter().chain(&p.truststore));
        }
    }
    out.extend(cfg.jwt_bundle.as_ref());
    out.extend(cfg.jwt_svids.iter().map(|j| &j.file));
    out
}

fn shown(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "(the working directory)".to_owned()
    } else {
        p.display().to_string()
    }
}

fn cert_dir(cfg: &Config, r: &mut Report) {
    use nix::unistd::{access, AccessFlags};
    let dir = if cfg.cert_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        cfg.cert_dir.as_path()
    };
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            r.problems.push(format!(
                "cert_dir {} is not a directory",
                shown(&cfg.cert_dir)
            ));
            return;
        }
        Err(e) => {
            r.problems
                .push(format!("cert_dir {}: {e}", shown(&cfg.cert_dir)));
            return;
        }
    };
    let uid = nix::unistd::geteuid();
    let facts = format!(
        "owner uid {}, mode {:04o}",
        meta.uid(),
        meta.permissions().mode() & 0o7777
    );
    if access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok() {
        return;
    }
    // Files that exist and can be written are rewritten in place.
    let missing: Vec<String> = output_files(cfg)
        .into_iter()
        .filter(|f| access(&f.path, AccessFlags::W_OK).is_err())
        .map(|f| f.path.display().to_string())
        .collect();
    if missing.is_empty() {
        r.notes.push(format!(
            "cert_dir {} ({facts}) does not let uid {uid} create files: its files are rewritten in place, without atomic replacement",
            shown(&cfg.cert_dir)
        ));
    } else {
        r.problems.push(format!(
            "cert_dir {} ({facts}) does not let uid {uid} create files, and uid {uid} cannot write {}",
            shown(&cfg.cert_dir),
            missing.join(", ")
        ));
    }
}

fn trust_bundles_dir(cfg: &Config, r: &mut Report) {
    let Some(t) = cfg.x509.as_ref().and_then(|x| x.trust_bundles.as_ref()) else {
        return;
    };
    match std::fs::symlink_metadata(&t.dir) {
        Ok(m) if m.file_type().is_symlink() => r.problems.push(format!(
            "trust_bundles_dir {} is a symbolic link: links below cert_dir are never followed",
            t.dir.display()
        )),
        Ok(m) if !m.is_dir() => r.problems.push(format!(
            "trust_bundles_dir {} exists and is not a directory",
            t.dir.display()
        )),
        Ok(_) => {}
        Err(_) => r.notes.push(format!(
            "trust_bundles_dir {} does not exist yet: it is created (mode 0755) at the first write",
            t.dir.display()
        )),
    }
}

/// Where `program` resolves (a path, or a name looked up in `PATH`), if it
/// is an executable file.
fn executable(program: &str) -> Result<PathBuf, String> {
    use nix::unistd::{access, AccessFlags};
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file()) && access(p, AccessFlags::X_OK).is_ok()
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if runnable(&p) {
            Ok(p)
        } else {
            Err("not an executable file".to_owned())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| runnable(p))
        .ok_or_else(|| "not found in PATH as an executable file".to_owned())
}

fn health(cfg: &Config, r: &mut Report) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            r.problems
                .push(format!("cannot check the health address: {e}"));
            return;
        }
    };
    if let Err(e) = rt.block_on(async { crate::health::bind(&cfg.health).map(drop) }) {
        r.problems.push(e.to_string());
    }
}

/// Where every key's value came from: `file`, `environment`, `command
/// line` or `default`.
fn sources(cfg: &Config) -> serde_json::Map<String, Value> {
    use crate::config::keys::{HEALTH_KEYS, TOP_KEYS};
    TOP_KEYS
        .iter()
        .filter(|k| **k != "health_checks")
        .map(|k| (*k).to_owned())
        .chain(HEALTH_KEYS.iter().map(|k| format!("health_checks.{k}")))
        .map(|k| {
            let from = cfg.sources.get(&k).copied().unwrap_or("default");
            (k, Value::from(from))
        })
        .collect()
}

fn mode(m: u32) -> String {
    format!("{m:04o}")
}

fn file(f: &OutputFile) -> Value {
    json!({ "path": f.path, "mode": mode(f.mode) })
}

/// `-check` with a configuration that loaded: checks its environment,
/// logs every warning and problem, prints the document on stdout, and
/// returns whether it passed.
pub fn run(loaded: &crate::config::Loaded) -> bool {
    let report = environment(&loaded.config);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for p in &report.problems {
        tracing::error!("{p}");
    }
    println!("{:#}", document(&loaded.config, &loaded.warnings, &report));
    report.problems.is_empty()
}

/// `-check` with a configuration that did not load: the problems as the
/// same JSON document's first fields.
pub fn print_invalid(e: &crate::config::ConfigError) {
    let doc = json!({ "valid": false, "problems": [e.to_string()], "warnings": e.warnings() });
    println!("{doc:#}");
}

/// The effective configuration, with the checks' outcome and the build.
pub fn document(cfg: &Config, warnings: &[String], report: &Report) -> Value {
    let x509 = cfg.x509.as_ref().map(|x| {
        json!({
            "svid_file": x.files.as_ref().map(|f| file(&f.svid)),
            "svid_key_file": x.files.as_ref().map(|f| file(&f.key)),
            "svid_bundle_file": x.files.as_ref().map(|f| file(&f.bundle)),
            "credential_bundle_file": x.credential_bundle.as_ref().map(file),
            "trust_bundles_dir": x.trust_bundles.as_ref().map(|t| json!({ "path": t.dir, "mode": mode(t.mode) })),
            "pkcs12": x.pkcs12.as_ref().map(|p| json!({
                "keystore": p.keystore.as_ref().map(file),
                "truststore": p.truststore.as_ref().map(file),
                "password_file": p.password_file,
                "profile": match p.profile {
                    crate::pkcs12::Profile::Modern => "modern",
                    crate::pkcs12::Profile::Legacy => "legacy",
                },
            })),
            "add_intermediates_to_bundle": x.add_intermediates_to_bundle,
            "include_federated_domains": x.include_federated_domains,
            "omit_expired": x.omit_expired,
        })
    });
    let p = &cfg.process;
    let h = &cfg.health;
    json!({
        "valid": report.problems.is_empty(),
        "problems": report.problems,
        "notes": report.notes,
        "warnings": warnings,
        "build": {
            "version": crate::build::VERSION,
            "commit": crate::build::COMMIT,
            "date": crate::build::DATE,
        },
        "config_file": cfg.source,
        "sources": sources(cfg),
        "effective": {
            "agent_socket": cfg.agent_socket,
            "cert_dir": shown(&cfg.cert_dir),
            "daemon_mode": cfg.daemon_mode,
            "hint": cfg.hint,
            "x509": x509,
            "jwt_bundle_file": cfg.jwt_bundle.as_ref().map(file),
            "jwt_svids": cfg.jwt_svids.iter().map(|j| json!({
                "audiences": j.audiences(),
                "file": file(&j.file),
            })).collect::<Vec<_>>(),
            "cmd": p.cmd.as_ref().map(|c| json!({ "program": c.program, "args": c.args })),
            "cmd_exit_policy": match p.exit_policy {
                crate::config::ExitPolicy::RelaunchOnRenewal => "relaunch_on_renewal",
                crate::config::ExitPolicy::Restart => "restart",
                crate::config::ExitPolicy::Exit => "exit",
            },
            "pid_file": p.pid_file,
            "renew_signal": p.renew_signal.map(nix::sys::signal::Signal::as_str),
            "health_checks": {
                "listener_enabled": h.listener_enabled,
                "bind_address": h.bind_address.map(|a| a.to_string()),
                "bind_port": h.bind_port,
                "liveness_path": h.liveness_path,
                "readiness_path": h.readiness_path,
                "metrics_path": h.metrics_path,
                "status_path": h.status_path,
            },
            "log_level": cfg.log_level.map(|l| l.as_str().to_ascii_lowercase()),
            "log_format": format!("{:?}", cfg.log_format).to_ascii_lowercase(),
            "oneshot_max_wait_seconds": cfg.oneshot_max_wait.as_secs(),
        },
    })
}
