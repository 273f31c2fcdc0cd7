//! The health server through the real binary: status codes and exact
//! bodies as the credentials move from unwritten to written, to failed and
//! back; a JWT hint that matches nothing; the exit code when the port is
//! taken.

use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// Waits for `path` to answer exactly `code` and `body`; on a timeout the
/// panic shows the last answer and the helper's log.
async fn wait_answer(port: u16, path: &str, code: u16, body: &str, d: &Daemon) {
    let what = format!("GET {path} to answer {code} {body}");
    wait_until(&what, LONG, || async {
        match http_get(port, path).await {
            Some((c, b)) if c == code && b == body => Ok(()),
            got => Err(format!("answer: {got:?}\nhelper log:\n{}", d.logs())),
        }
    })
    .await;
}

fn health_block(port: u16, extra: &str) -> String {
    format!("health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n{extra}}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_move_from_unwritten_to_written_to_failed_and_back() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &format!(
                        "jwt_svids = [{{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }}]\n{}",
                        health_block(
                            port,
                            "  liveness_path = \"/healthz\"\n  readiness_path = \"/readyz\"\n"
                        )
                    ),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;

    // Nothing issued yet: alive, not ready.
    let body = wait_http(port, "/readyz", 503).await;
    assert_eq!(
        body,
        r#"{"status":"Service Unavailable","health":{"file_write_statuses":{"x509_write_status":"unwritten","jwt_write_status":{"certs/db.token":"unwritten"}}}}"#
    );
    let body = wait_http(port, "/healthz", 200).await;
    assert!(body.starts_with(r#"{"status":"OK""#), "{body}");
    assert_eq!(http_get(port, "/live").await.map(|r| r.0), Some(404));

    api.set_x509(pki.x509_update(pki.svid()));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    let body = wait_http(port, "/readyz", 200).await;
    assert_eq!(
        body,
        r#"{"status":"OK","health":{"file_write_statuses":{"x509_write_status":"written","jwt_write_status":{"certs/db.token":"written"}}}}"#
    );

    // The directory disappears: the next update fails, liveness fails.
    let away = w.path().join("certs.away");
    std::fs::rename(w.certs(), &away).unwrap();
    api.set_x509(pki.x509_update(pki.svid()));
    let body = wait_http(port, "/healthz", 503).await;
    assert!(body.contains(r#""x509_write_status":"failed""#), "{body}");
    wait_http(port, "/readyz", 503).await;

    // It comes back: the next update is written and both probes pass.
    std::fs::rename(&away, w.certs()).unwrap();
    api.set_x509(pki.x509_update(pki.svid()));
    wait_http(port, "/healthz", 200).await;
    wait_http(port, "/readyz", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_fails_once_the_svid_on_disk_has_expired() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    // A short-lived SVID and nothing after it.
    let svid = pki
        .intermediate
        .issue_svid("spiffe://example.org/workload", Duration::from_secs(2));
    api.set_x509(pki.x509_update(svid));
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_block(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_http(port, "/ready", 200).await;
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains(r#""x509_write_status":"written""#), "{body}");
}

/// A JWT `hint` that matches none of the agent's JWT-SVIDs marks that file
/// `failed` (liveness and readiness both fail); the JWT bundle file has its
/// own key, cleaned as Go's `path.Join` cleans it; once the agent issues a
/// JWT-SVID with that hint the retries find it and both probes pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_hint_that_matches_nothing_marks_that_file_failed_until_it_matches() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let svids = |hints: &[&str]| -> Vec<(String, String)> {
        hints
            .iter()
            .map(|h| (format!("spiffe://example.org/{h}"), (*h).to_owned()))
            .collect()
    };
    api.set_jwt_svids(
        pki.jwt.clone(),
        svids(&["external", "internal"]),
        Duration::from_secs(600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| {
                format!(
                    r#"
agent_address = "{}"
cert_dir = "./certs"
hint = "backend"
jwt_bundle_file_name = "./bundle.json"
jwt_svids = [{{ jwt_audience = "db", jwt_svid_file_name = "db.token" }}]
{}"#,
                    socket.display(),
                    health_block(port, "")
                )
            },
            &["-config", "helper.conf"],
        )
        .await;

    let failed = r#"{"status":"Service Unavailable","health":{"file_write_statuses":{"jwt_write_status":{"certs/bundle.json":"written","certs/db.token":"failed"}}}}"#;
    wait_answer(port, "/live", 503, failed, &d).await;
    wait_answer(port, "/ready", 503, failed, &d).await;
    assert!(
        d.logs().contains("\"backend\""),
        "the hint is named:\n{}",
        d.logs()
    );
    assert!(!w.exists("certs/db.token"));

    api.set_jwt_svids(
        pki.jwt.clone(),
        svids(&["external", "backend"]),
        Duration::from_secs(600),
    );
    let ok = r#"{"status":"OK","health":{"file_write_statuses":{"jwt_write_status":{"certs/bundle.json":"written","certs/db.token":"written"}}}}"#;
    wait_answer(port, "/live", 200, ok, &d).await;
    wait_answer(port, "/ready", 200, ok, &d).await;
    assert_eq!(
        jwt_claims(&w.read_string("certs/db.token"))["sub"],
        "spiffe://example.org/backend"
    );
}

/// Holds a listening socket on every interface (dual-stack where IPv6
/// exists) on a port the kernel picks.
fn taken_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("[::]:0")
        .or_else(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .expect("bind a port to hold")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_health_port_exits_one_naming_the_port() {
    let FakeAgent { api, .. } = fake_agent().await;
    let held = taken_port();
    let port = held.local_addr().unwrap().port();
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), &health_block(port, "")));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    assert_eq!(d.wait_exit(LONG).await, Some(1), "{}", d.logs());
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("cannot listen"))
        .unwrap_or_else(|| panic!("no line says the port cannot be bound:\n{logs}"));
    assert!(line.contains(&format!(":{port}")), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    drop(held);
}
