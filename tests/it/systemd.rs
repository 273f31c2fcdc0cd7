//! Living under systemd, through the real binary: `Type=notify` readiness
//! on a datagram socket the test owns, and SIGHUP reloading the
//! configuration (applied when valid, refused with its problems when not,
//! the child restarted only when `cmd` changed).

use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(20);

/// The next message on the notify socket, if one comes within `within`.
fn receive(sock: &std::os::unix::net::UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Messages until one contains `what`; panics after [`LONG`].
async fn receive_until(
    sock: &std::os::unix::net::UnixDatagram,
    what: &str,
) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    let message = wait_until(&format!("{what:?} on the notify socket"), LONG, || {
        let got = match receive(sock, Duration::from_millis(200)) {
            Some(m) if m.contains(what) => Ok(m),
            Some(m) => {
                seen.push(m);
                Err(format!("{seen:?}"))
            }
            None => Err(format!("{seen:?}")),
        };
        std::future::ready(got)
    })
    .await;
    (message, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_sent_once_the_files_exist_and_status_follows_failures() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let notify_path = w.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    w.conf(&x509_conf(api.socket_path(), ""));
    let notify = notify_path.display().to_string();
    let _d = w.spawn_with(
        &[],
        &["-config", "helper.conf"],
        &[("NOTIFY_SOCKET", &notify)],
    );
    // No identity yet: nothing is sent.
    assert_eq!(receive(&sock, Duration::from_millis(500)), None);
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    let (ready, before) = receive_until(&sock, "READY=1").await;
    assert!(before.is_empty(), "{before:?}");
    // The files were on disk when READY=1 was sent.
    assert!(w.certs().join("svid.pem").is_file(), "{ready}");
    assert!(w.certs().join("svid_key.pem").is_file());

    let expired = pki
        .intermediate
        .issue_expired_svid("spiffe://example.org/workload");
    api.set_x509(pki.x509_update(expired));
    let (failing, _) = receive_until(&sock, "STATUS=writes failing").await;
    assert!(failing.contains("X.509"), "{failing}");
    api.set_x509(pki.x509_update(pki.svid()));
    receive_until(&sock, "STATUS=every credential file written again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_configuration() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (mut d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    assert!(!w.exists("certs/bundle.json"));

    // A new output, a new log format, the same health port.
    w.conf(&x509_conf(
        &socket,
        &format!(
            "jwt_bundle_file_name = \"bundle.json\"\nlog_format = \"json\"\n{}",
            health_conf(port, "")
        ),
    ));
    d.signal(Signal::SIGHUP);
    d.wait_log("\"msg\":\"configuration reloaded\"", LONG).await;
    wait_for("the new output", LONG, || {
        read_opt(&w.certs().join("bundle.json"))
    })
    .await;
    let logs = d.logs();
    assert!(
        logs.contains("the configuration changed") && logs.contains("jwt_bundle_file_name"),
        "{logs}"
    );
    let body = wait_http(port, "/ready", 200).await;
    assert!(body.contains("certs/bundle.json"), "{body}");
    // Rotations go on under the new configuration, logged in its format.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    d.wait_log("\"msg\":\"X.509 SVID written\"", LONG).await;
    assert!(d.child.try_wait().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_configuration_keeps_the_running_one() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    w.conf(&x509_conf(
        api.socket_path(),
        "svid_fle_name = \"x.pem\"\nrenew_signal = \"SIGNOPE\"",
    ));
    d.signal(Signal::SIGHUP);
    d.wait_log("the configuration was not reloaded", LONG).await;
    let logs = d.logs();
    for part in [
        "svid_fle_name",
        "did you mean \"svid_file_name\"",
        "SIGNOPE",
    ] {
        assert!(logs.contains(part), "{part}: {logs}");
    }
    // Still running, still rotating, with the old configuration.
    assert!(d.child.try_wait().unwrap().is_none(), "{logs}");
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_restarts_the_child_only_when_cmd_changed() {
    let FakeAgent { api, first, .. } = fake_agent().await;
    let w = Workdir::new();
    let record = w.path().join("record");
    let child = |tag: &str| {
        format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"echo start-{tag} >> {r}; trap 'echo term-{tag} >> {r}; exit 0' TERM; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done\"]\n",
            r = record.display()
        )
    };
    w.conf(&x509_conf(api.socket_path(), &child("a")));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    let lines = || std::fs::read_to_string(&record).unwrap_or_default();
    wait_for("the first child", LONG, || {
        (lines() == "start-a\n").then_some(())
    })
    .await;

    // Only the log level changes: the child runs on.
    w.conf(&x509_conf(
        api.socket_path(),
        &format!("{}log_level = \"info\"\n", child("a")),
    ));
    d.signal(Signal::SIGHUP);
    d.wait_log("configuration reloaded", LONG).await;
    // cmd changes: the old child is stopped and the new one started.
    w.conf(&x509_conf(api.socket_path(), &child("b")));
    d.signal(Signal::SIGHUP);
    wait_for("the second child", LONG, || {
        (lines() == "start-a\nterm-a\nstart-b\n").then_some(())
    })
    .await;
    assert!(d.child.try_wait().unwrap().is_none());
}
