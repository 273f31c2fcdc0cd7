//! A self-contained demonstration: starts a fake SPIFFE Workload API (its own
//! CA, an X.509 SVID, JWT-SVIDs and JWT bundles) on a temporary Unix socket,
//! runs the real `spiffe-helper` binary against it in one-shot mode, and
//! shows what it wrote into `demo-output/`.
//!
//! ```text
//! cargo run --example demo
//! ```

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use fake_workload_api::{FakeWorkloadApi, Pki};

#[tokio::main]
async fn main() -> ExitCode {
    let helper = match helper_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };

    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(300),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    println!(
        "demo: fake Workload API for trust domain example.org on {}",
        api.socket_path().display()
    );

    let out = PathBuf::from("demo-output");
    let certs = out.join("certs");
    // The configuration names the demo's temporary socket, which is gone
    // once the demo ends: it lives in a temporary directory, so nothing
    // left in demo-output points at a socket that no longer exists.
    let Ok(conf_dir) = tempfile::tempdir() else {
        eprintln!("demo: cannot create a temporary directory");
        return ExitCode::FAILURE;
    };
    let conf = match write_conf(conf_dir.path(), api.socket_path(), &certs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };

    println!(
        "demo: running {} -config {}",
        helper.display(),
        conf.display()
    );
    let started = Instant::now();
    let status = tokio::process::Command::new(&helper)
        .arg("-config")
        .arg(&conf)
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .status()
        .await;
    let elapsed = started.elapsed();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("demo: spiffe-helper failed: {s}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("demo: cannot run {}: {e}", helper.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "demo: spiffe-helper exited 0 after {:.1} ms; files in {}:",
        elapsed.as_secs_f64() * 1000.0,
        certs.display()
    );
    show(&certs);
    ExitCode::SUCCESS
}

/// Creates `certs` and writes the demo's configuration (one-shot mode,
/// every kind of output) into `dir`.
fn write_conf(dir: &Path, socket: &Path, certs: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(certs)
        .map_err(|e| format!("cannot create {}: {e}", certs.display()))?;
    let conf = dir.join("helper.conf");
    let text = format!(
        r#"# Written by the demo: one-shot mode, every kind of output.
agent_address = "{socket}"
cert_dir = "{certs}"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
include_federated_domains = true
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [
  {{ jwt_audience = "demo-audience", jwt_extra_audiences = ["other"], jwt_svid_file_name = "jwt_svid.token" }},
]
credential_bundle_file_name = "credentials.pem"
trust_bundles_dir = "trust-bundles"
"#,
        socket = socket.display(),
        certs = certs.display(),
    );
    std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    Ok(conf)
}

/// Lists the written files with their modes and a safe peek at each,
/// directories (the per-trust-domain bundles) included.
fn show(dir: &Path) {
    show_in(dir, "");
}

fn show_in(dir: &Path, prefix: &str) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).collect())
        .unwrap_or_default();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            println!("  {:o}  {:>8}  {name}/", meta.mode() & 0o7777, "");
            show_in(&e.path(), &format!("{name}/"));
            continue;
        }
        let content = std::fs::read_to_string(e.path()).unwrap_or_default();
        let peek = if name.ends_with(".pem") {
            let kinds: Vec<&str> = content
                .lines()
                .filter_map(|l| l.strip_prefix("-----BEGIN "))
                .map(|l| l.trim_end_matches('-'))
                .collect();
            format!("PEM: {}", kinds.join(", "))
        } else if name.ends_with(".token") {
            format!("a JWT of {} bytes (not shown)", content.len())
        } else {
            content.chars().take(60).collect::<String>() + "…"
        };
        println!(
            "  {:o}  {:>6} B  {name:<34} {peek}",
            meta.mode() & 0o7777,
            meta.len()
        );
    }
}

/// The `spiffe-helper` binary: `$SPIFFE_HELPER_BIN` when set (e.g. a
/// static build), else the one of this build profile, built if needed.
fn helper_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SPIFFE_HELPER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    // target/<profile>/examples/demo → target/<profile>/spiffe-helper
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected location of the demo binary")?;
    let helper = profile_dir.join("spiffe-helper");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "spiffe-helper"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build
            .status()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() {
            return Err("building spiffe-helper failed".into());
        }
    }
    if helper.exists() {
        Ok(helper)
    } else {
        Err(format!(
            "{} not found; run `cargo build` first",
            helper.display()
        ))
    }
}
