//! The health server through the real binary: status codes and exact
//! bodies as the credentials move from unwritten to written, to failed and
//! back.

mod common;

use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(20);

async fn wait_http(port: u16, path: &str, code: u16) -> String {
    let what = format!("GET {path} to answer {code}");
    let end = std::time::Instant::now() + LONG;
    loop {
        if let Some((c, body)) = http_get(port, path).await {
            if c == code {
                return body;
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_move_from_unwritten_to_written_to_failed_and_back() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let port = free_port();
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            r#"jwt_svids = [{{ jwt_audience = "db", jwt_svid_file_name = "db.token" }}]
health_checks {{
  listener_enabled = true
  bind_port = {port}
  liveness_path = "/healthz"
  readiness_path = "/readyz"
}}"#
        ),
    ));
    let _d = w.spawn(&["-config", "helper.conf"]);

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
    let port = free_port();
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!("health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}"),
    ));
    let _d = w.spawn(&["-config", "helper.conf"]);
    wait_http(port, "/ready", 200).await;
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains(r#""x509_write_status":"written""#), "{body}");
}
