//! The nginx example, for real: the helper writes the files of
//! `examples/nginx/helper.conf`, nginx serves mutual TLS with them using
//! `examples/nginx/nginx.conf`, and a rotation pushed by the fake Workload
//! API reaches nginx through the pid file and SIGHUP. Needs `nginx` and
//! `openssl` (`.ci/run` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(30);

fn find_nginx() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("nginx is not installed: run `apt-get install nginx` (as .ci/run does)");
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
async fn tls_get(port: u16, client: Option<&Path>) -> (String, String) {
    let mut c = tokio::process::Command::new("openssl");
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
async fn serial_of(pem: &str) -> String {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("openssl")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_reloads_rotated_certificates_and_accepts_mtls_clients() {
    let nginx = find_nginx();
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));

    let w = Workdir::new();
    let certs = w.certs();
    let pid_file = w.path().join("nginx.pid");
    let tls_port = free_port();
    let health_port = free_port();

    // The example files, pointed at this test's socket, directory and ports.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx");
    let helper_conf = std::fs::read_to_string(root.join("helper.conf"))
        .expect("example helper.conf")
        .replace(
            "/run/spire/agent/public/api.sock",
            &api.socket_path().display().to_string(),
        )
        .replace("/etc/nginx/spiffe", &certs.display().to_string())
        .replace("/run/nginx.pid", &pid_file.display().to_string())
        .replace("8081", &health_port.to_string());
    w.conf(&helper_conf);
    let nginx_conf = std::fs::read_to_string(root.join("nginx.conf"))
        .expect("example nginx.conf")
        .replace("/etc/nginx/spiffe", &certs.display().to_string())
        .replace("/run/nginx.pid", &pid_file.display().to_string())
        .replace("8443", &tls_port.to_string());
    let nginx_conf_path = w.path().join("nginx.conf");
    std::fs::write(&nginx_conf_path, nginx_conf).unwrap();

    let d = w.spawn(&["-config", "helper.conf"]);
    let svid_path = certs.join("svid.pem");
    wait_for("the first certificate", LONG, || {
        read_opt(&svid_path).filter(|b| !b.is_empty())
    })
    .await;

    // nginx starts once the files exist, as in a real deployment.
    let started = tokio::process::Command::new(&nginx)
        .arg("-p")
        .arg(w.path())
        .arg("-c")
        .arg(&nginx_conf_path)
        .args(["-e", "stderr"])
        .status()
        .await
        .expect("start nginx");
    assert!(started.success(), "nginx failed to start");
    let _guard = Nginx {
        pid_file: pid_file.clone(),
    };
    wait_for("nginx's pid file", LONG, || read_opt(&pid_file)).await;
    // The pid file appeared after the first write: the helper's retries
    // find it and signal nginx, which reloads once.
    d.wait_log("signalled process from pid file", LONG).await;

    // A client holding the written files is let in (once the reload has
    // settled), and the server presents the SVID the helper wrote.
    let with_cert = served_ok(tls_port, &certs).await;
    assert!(with_cert.contains("hello, SPIFFE client"), "{with_cert}");
    let (_, leaf) = tls_get(tls_port, Some(&certs)).await;
    assert_eq!(leaf, pem_certs(&[first.leaf_der()]));
    assert_eq!(serial_of(&leaf).await, first.serial.trim_start_matches('0'));
    // A client without a certificate is turned away.
    let (without, _) = tls_get(tls_port, None).await;
    assert!(without.contains("400"), "{without}");
    assert!(!without.contains("hello, SPIFFE client"), "{without}");

    // A rotation reaches nginx: the helper rewrites the files and sends
    // SIGHUP through the pid file; nginx then serves the new certificate.
    let second = pki.svid();
    assert_ne!(second.serial, first.serial);
    api.set_x509(pki.x509_update(second.clone()));
    let want = second.serial.trim_start_matches('0').to_owned();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < deadline {
        let (_, leaf) = tls_get(tls_port, Some(&certs)).await;
        seen = serial_of(&leaf).await;
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen,
        want,
        "nginx never served the rotated certificate:\n{}",
        d.logs()
    );
    assert_eq!(
        d.logs().matches("signalled process from pid file").count(),
        2
    );
    // The rotated files still make a client nginx accepts.
    served_ok(tls_port, &certs).await;
}

/// Polls until nginx answers 200 to a client using the written files (a
/// connection can land on a worker that is shutting down during a reload).
async fn served_ok(port: u16, certs: &Path) -> String {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (text, _) = tls_get(port, Some(certs)).await;
        if text.contains("HTTP/1.1 200 OK") {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 200 from nginx:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
