//! The nginx example, for real: the helper writes the files of
//! `examples/nginx/helper.conf`, nginx serves mutual TLS with them using
//! `examples/nginx/nginx.conf`, and a rotation pushed by the fake Workload
//! API reaches nginx through the pid file and SIGHUP. Needs `nginx` and
//! `openssl` (`.ci/run` installs them); without them the test is skipped
//! with a message, unless `SPIFFE_HELPER_REQUIRE_REAL=1` (set by CI).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

/// The first of `candidates` that exists, or one found on `PATH`.
fn find_program(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
}

/// nginx and openssl, when both are installed. When one is missing the
/// test is skipped with a message, unless `SPIFFE_HELPER_REQUIRE_REAL=1`
/// (CI sets it): then a missing program fails the test.
fn real_programs() -> Option<(PathBuf, PathBuf)> {
    let nginx = find_program(
        "nginx",
        &["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"],
    );
    let openssl = find_program("openssl", &["/usr/bin/openssl"]);
    if let (Some(n), Some(o)) = (&nginx, &openssl) {
        return Some((n.clone(), o.clone()));
    }
    let missing: Vec<&str> = [("nginx", nginx.is_none()), ("openssl", openssl.is_none())]
        .into_iter()
        .filter_map(|(n, m)| m.then_some(n))
        .collect();
    let message = format!(
        "{} not installed: run `apt-get install nginx openssl` (as .ci/run does)",
        missing.join(" and ")
    );
    assert!(
        std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_none_or(|v| v != "1"),
        "SPIFFE_HELPER_REQUIRE_REAL=1 and {message}"
    );
    eprintln!("SKIPPED: {message}; set SPIFFE_HELPER_REQUIRE_REAL=1 to make this a failure");
    None
}

/// Stops nginx when the test ends, however it ends.
struct Nginx {
    pid_file: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// One TLS connection with `openssl s_client`, sending a GET: (everything
/// `s_client` printed, the server's leaf certificate in PEM).
async fn tls_get(openssl: &Path, port: u16, client: Option<&Path>) -> (String, String) {
    let mut c = tokio::process::Command::new(openssl);
    c.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-ign_eof",
    ]);
    if let Some(certs) = client {
        // -cert sends only the leaf; -cert_chain adds the intermediates.
        c.arg("-cert")
            .arg(certs.join("svid.pem"))
            .arg("-cert_chain")
            .arg(certs.join("svid.pem"))
            .arg("-key")
            .arg(certs.join("svid_key.pem"))
            .arg("-CAfile")
            .arg(certs.join("svid_bundle.pem"));
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("openssl s_client");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
    }
    let out = tokio::time::timeout(LONG, child.wait_with_output())
        .await
        .expect("s_client finished")
        .expect("s_client output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let leaf = text
        .find("-----BEGIN CERTIFICATE-----")
        .and_then(|a| {
            let end = "-----END CERTIFICATE-----";
            text[a..]
                .find(end)
                .map(|b| text[a..a + b + end.len()].to_owned() + "\n")
        })
        .unwrap_or_default();
    (text, leaf)
}

/// `openssl x509 -serial` of a PEM certificate, as lowercase hex.
async fn serial_of(openssl: &Path, pem: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(openssl)
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .await
        .expect("write pem");
    let out = child.wait_with_output().await.expect("serial");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    text.trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_owned()
}

/// Starts nginx on a port that was free a moment ago; another test may
/// take it first, so on a failed start nginx is tried again with a fresh
/// port. Returns the port and the guard that stops nginx.
async fn start_nginx(nginx: &Path, w: &Workdir, root: &Path, pid_file: &Path) -> (u16, Nginx) {
    let certs = w.certs();
    let nginx_conf_path = w.path().join("nginx.conf");
    let mut last = String::new();
    for _ in 0..10 {
        let tls_port = free_port();
        let nginx_conf = std::fs::read_to_string(root.join("nginx.conf"))
            .expect("example nginx.conf")
            .replace("/etc/nginx/spiffe", &certs.display().to_string())
            .replace("/run/nginx.pid", &pid_file.display().to_string())
            .replace("8443", &tls_port.to_string());
        std::fs::write(&nginx_conf_path, nginx_conf).unwrap();
        // To a file, not a pipe: the daemonized master keeps its stderr
        // open, so reading a pipe to its end would never finish.
        let errors = w.path().join("nginx.stderr");
        let status = tokio::process::Command::new(nginx)
            .arg("-p")
            .arg(w.path())
            .arg("-c")
            .arg(&nginx_conf_path)
            .args(["-e", "stderr"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors).unwrap())
            .status()
            .await
            .expect("start nginx");
        if status.success() {
            return (
                tls_port,
                Nginx {
                    pid_file: pid_file.to_owned(),
                },
            );
        }
        last = std::fs::read_to_string(&errors).unwrap_or_default();
        assert!(
            last.contains("Address already in use"),
            "nginx failed to start:\n{last}"
        );
    }
    panic!("nginx found no free port in 10 tries:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reloads_rotated_certificates_and_accepts_mtls_clients() {
    let Some((nginx, openssl)) = real_programs() else {
        return;
    };
    let openssl = openssl.as_path();
    let FakeAgent { api, pki, first } = fake_agent().await;

    let w = Workdir::new();
    let certs = w.certs();
    let pid_file = w.path().join("nginx.pid");

    // The example files, pointed at this test's socket, directory and ports.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx");
    let example = std::fs::read_to_string(root.join("helper.conf")).expect("example helper.conf");
    assert!(example.contains("8081"), "the example sets the health port");
    let socket = api.socket_path().display().to_string();
    let (d, _health_port) = w
        .spawn_with_health_port(
            |port| {
                example
                    .replace("/run/spire/agent/public/api.sock", &socket)
                    .replace("/etc/nginx/spiffe", &certs.display().to_string())
                    .replace("/run/nginx.pid", &pid_file.display().to_string())
                    .replace("8081", &port.to_string())
            },
            &["-config", "helper.conf"],
        )
        .await;
    let svid_path = certs.join("svid.pem");
    wait_for("the first certificate", LONG, || {
        read_opt(&svid_path).filter(|b| !b.is_empty())
    })
    .await;

    // nginx starts once the files exist, as in a real deployment.
    let (tls_port, _guard) = start_nginx(&nginx, &w, &root, &pid_file).await;
    wait_for("nginx's pid file", LONG, || read_opt(&pid_file)).await;
    // The pid file appeared after the first write: the helper's retries
    // find it and signal nginx, which reloads once.
    d.wait_log("signalled process from pid file", LONG).await;

    // A client holding the written files is let in (once the reload has
    // settled), and the server presents the SVID the helper wrote.
    let with_cert = served_ok(openssl, tls_port, &certs).await;
    assert!(with_cert.contains("hello, SPIFFE client"), "{with_cert}");
    let (_, leaf) = tls_get(openssl, tls_port, Some(&certs)).await;
    assert_eq!(leaf, pem_certs(&[first.leaf_der()]));
    assert_eq!(
        serial_of(openssl, &leaf).await,
        first.serial.trim_start_matches('0')
    );
    // A client without a certificate is turned away.
    let (without, _) = tls_get(openssl, tls_port, None).await;
    assert!(without.contains("400"), "{without}");
    assert!(!without.contains("hello, SPIFFE client"), "{without}");

    // A rotation reaches nginx: the helper rewrites the files and sends
    // SIGHUP through the pid file; nginx then serves the new certificate.
    let second = pki.svid();
    assert_ne!(second.serial, first.serial);
    api.set_x509(pki.x509_update(second.clone()));
    let want = second.serial.trim_start_matches('0').to_owned();
    wait_until("nginx to serve the rotated certificate", LONG, || async {
        let (_, leaf) = tls_get(openssl, tls_port, Some(&certs)).await;
        let seen = serial_of(openssl, &leaf).await;
        if seen == want {
            Ok(())
        } else {
            Err(format!("serial {seen}; helper log:\n{}", d.logs()))
        }
    })
    .await;
    assert_eq!(
        d.logs().matches("signalled process from pid file").count(),
        2
    );
    // The rotated files still make a client nginx accepts.
    served_ok(openssl, tls_port, &certs).await;
}

/// Polls until nginx answers 200 to a client using the written files (a
/// connection can land on a worker that is shutting down during a reload).
async fn served_ok(openssl: &Path, port: u16, certs: &Path) -> String {
    wait_until("a 200 from nginx", LONG, || async {
        let (text, _) = tls_get(openssl, port, Some(certs)).await;
        if text.contains("HTTP/1.1 200 OK") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await
}
