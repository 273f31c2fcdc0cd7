//! A hostile or unusual node, through the real binary: links planted below
//! `cert_dir`, FIFOs and devices as pid files, a stderr nobody drains, a
//! slow-header flood on the health port, an agent that stalls, sends an
//! expired SVID or forges log lines, supervision as PID 1, and the Go
//! helper's read-only `cert_dir` layout served as a non-root user.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(20);

fn required() -> bool {
    std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_some_and(|v| v == "1")
}

/// Whether a test that needs `what` can run; a skip says why, and under
/// CI (`SPIFFE_HELPER_REQUIRE_REAL=1`) a missing piece is a failure.
fn can(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!required(), "{what} is required under CI");
        eprintln!("skipped: {what}");
    }
    ok
}

fn have(tool: &str) -> bool {
    StdCommand::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// A value from `/proc/<pid>/status` (such as `VmHWM`), in kB.
fn proc_status_kb(pid: i32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

// === 1. confined to cert_dir ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_at_trust_bundles_dir_fails_and_nothing_outside_is_written_or_removed() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    let foreign = w.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("victim.pem"), b"theirs").unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&foreign, w.certs().join("bundles")).unwrap();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &format!("trust_bundles_dir = \"bundles\"\n{}", health_conf(port, "")),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;
    d.wait_log("is a symbolic link or not a directory", LONG)
        .await;
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains("\"x509_write_status\":\"failed\""), "{body}");
    assert_eq!(listing(&foreign), ["victim.pem"]);
    assert_eq!(
        std::fs::read(foreign.join("victim.pem")).unwrap(),
        b"theirs"
    );
    assert_eq!(mode(&foreign), 0o700);
    // The batch changed whole or not at all: no SVID file either.
    assert_eq!(w.cert_listing(), ["bundles"]);
}

#[tokio::test]
async fn trust_bundles_dir_must_be_a_directory_of_its_own() {
    let w = Workdir::new();
    std::fs::write(w.certs().join("mine.pem"), b"the user's own").unwrap();
    for (extra, says) in [
        (
            "trust_bundles_dir = \".\"",
            "trust_bundles_dir is cert_dir itself",
        ),
        (
            "trust_bundles_dir = \"sub\"\njwt_bundle_file_name = \"sub/jwt.json\"",
            "is the directory jwt_bundle_file_name is written to",
        ),
    ] {
        w.conf(&x509_conf(
            Path::new("/nonexistent.sock"),
            &format!("daemon_mode = false\n{extra}\n"),
        ));
        w.run(&["-config", "helper.conf"])
            .await
            .assert_code(1)
            .assert_stderr_contains(&[says]);
        assert_eq!(w.cert_listing(), ["mine.pem"]);
    }
}

#[tokio::test]
async fn long_names_fit_and_a_trust_domain_too_long_for_a_file_name_is_skipped() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let fits = format!("{}.test", "a".repeat(245)); // 250 bytes, 254 with .pem
    let too_long = format!("{}.test", "b".repeat(247)); // 256 with .pem
    let mut update = pki.x509_update(pki.svid());
    update
        .federated
        .push((fits.clone(), vec![Ca::root(&fits).cert_der()]));
    update
        .federated
        .push((too_long.clone(), vec![Ca::root(&too_long).cert_der()]));
    api.set_x509(update);
    let w = Workdir::new();
    let long_name = format!("{}.pem", "s".repeat(241)); // 245 bytes
    w.conf(&format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\ndaemon_mode = false\nsvid_file_name = \"{long_name}\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"\ntrust_bundles_dir = \"bundles\"\n",
        api.socket_path().display()
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success()
        .assert_stderr_contains(&["cannot be a safe file name", &too_long[..40]]);
    assert!(w.certs().join(&long_name).is_file());
    let bundles = listing(&w.certs().join("bundles"));
    assert_eq!(
        bundles,
        [
            format!("{fits}.pem"),
            "example.org.pem".to_owned(),
            "federated.test.pem".to_owned()
        ]
    );

    // An output name longer than a file name can be is refused at load.
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "daemon_mode = false\njwt_bundle_file_name = \"{}\"\n",
            "j".repeat(256)
        ),
    ));
    w.run(&["-config", "helper.conf"])
        .await
        .assert_code(1)
        .assert_stderr_contains(&["is 256 bytes, more than a file name can hold (255)"]);
}

// === 2. nothing blocks the runtime thread ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_pid_file_is_refused_and_rotations_probes_and_shutdown_go_on() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let fifo = w.path().join("app.pid");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let socket = api.socket_path().to_owned();
    let (mut d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &format!(
                        "pid_file_name = \"{}\"\nrenew_signal = \"SIGUSR1\"\n{}",
                        fifo.display(),
                        health_conf(port, "")
                    ),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    d.wait_log("the pid file is not a regular file", LONG).await;
    wait_http(port, "/live", 200).await;
    let second = pki.svid();
    api.set_x509(pki.x509_update(second.clone()));
    wait_svid(&w, &second).await;
    wait_http(port, "/ready", 200).await;
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_as_pid_file_is_never_read_whole() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "pid_file_name = \"/dev/zero\"\nrenew_signal = \"SIGUSR1\"\n",
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    d.wait_log("the pid file is not a regular file", LONG).await;
    d.wait_log("retrying in 200 ms", LONG).await;
    // Reading /dev/zero whole would take all the memory there is.
    let peak_mb = proc_status_kb(d.pid(), "VmHWM:") / 1024;
    assert!(peak_mb < 64, "peak RSS {peak_mb} MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_drains_drops_log_lines_instead_of_stopping_the_helper() {
    let FakeAgent { api, pki, .. } = fake_agent().await;
    let w = Workdir::new();
    let port = free_port();
    w.conf(&x509_conf(api.socket_path(), &health_conf(port, "")));
    let mut c = w.command(&["-config", "helper.conf"]);
    // Trace level: every rotation writes many lines.
    c.env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().unwrap();
    // The pipe is not read until lines have been dropped: it fills
    // (64 KiB), then the helper's queue fills, then lines are dropped.
    // Every rotation meanwhile is written and every probe answered.
    let dropped = |metrics: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with("spiffe_helper_log_lines_dropped_total "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no dropped-lines counter:\n{metrics}"))
    };
    let mut rotations = 0;
    loop {
        let next = pki.svid();
        api.set_x509(pki.x509_update(next.clone()));
        wait_svid(&w, &next).await;
        rotations += 1;
        let metrics = tokio::time::timeout(LONG, http_get(port, "/metrics")).await;
        let Ok(Some((200, metrics))) = metrics else {
            panic!("no answer from /metrics after {rotations} rotations: {metrics:?}");
        };
        if dropped(&metrics) > 0.0 {
            break;
        }
        assert!(
            rotations < 2000,
            "nothing dropped after {rotations} rotations"
        );
    }
    // Once stderr is read again, one line says how many were dropped.
    let mut err = child.stderr.take().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // Something new to log, after the queue has drained.
    wait_for("the queued lines to be read", LONG, || {
        (seen.lock().unwrap().len() > 65536).then_some(())
    })
    .await;
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    wait_for("the dropped-lines note", LONG, || {
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        text.lines()
            .any(|l| l.contains("log lines were dropped") && l.contains("WARN"))
            .then_some(())
    })
    .await;
    let _ = child.kill().await;
}

// === 3. the health port under a slow-header flood ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_through_a_slow_header_flood() {
    use tokio::io::AsyncWriteExt as _;
    let HealthyDaemon {
        api,
        pki,
        w,
        d,
        port,
        ..
    } = healthy_daemon("").await;

    // 300 connections, each trickling a request head one byte every 50 ms
    // and never finishing it; one that is closed connects again.
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..300 {
        let stop = Arc::clone(&stop);
        flood.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if s.write_all(b"GET /live HTTP/1.1\r\nX-Slow: ")
                    .await
                    .is_err()
                {
                    continue;
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if s.write_all(b"a").await.is_err() {
                        break;
                    }
                }
            }
        }));
    }
    // The flood holds the helper's connection cap (256) full.
    let pid = d.pid();
    wait_for("the flood to fill the connection cap", LONG, || {
        let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count();
        (sockets >= 250).then_some(())
    })
    .await;

    let probes = 40;
    let mut answered = 0;
    for i in 0..probes {
        if i == probes / 2 {
            // Rotations go on meanwhile.
            let next = pki.svid();
            api.set_x509(pki.x509_update(next.clone()));
            wait_svid(&w, &next).await;
        }
        if let Ok(Some((200, _))) =
            tokio::time::timeout(Duration::from_secs(1), http_get(port, "/live")).await
        {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.abort();
    }
    assert!(
        answered * 100 >= probes * 95,
        "{answered} of {probes} probes answered within 1 s"
    );
}

// === 4. the Workload API stream ===

// A stream that stays silent after it opened is abandoned after a minute:
// tested under paused time in src/stream.rs.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_svid_never_replaces_the_files_on_disk() {
    let HealthyDaemon {
        api,
        pki,
        w,
        d,
        port,
        ..
    } = healthy_daemon("").await;
    let before = [
        w.read("certs/svid.pem"),
        w.read("certs/svid_key.pem"),
        w.read("certs/svid_bundle.pem"),
    ];
    let expired = pki
        .intermediate
        .issue_expired_svid("spiffe://example.org/workload");
    api.set_x509(pki.x509_update(expired));
    d.wait_log("expired at", LONG).await;
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains("\"x509_write_status\":\"failed\""), "{body}");
    let after = [
        w.read("certs/svid.pem"),
        w.read("certs/svid_key.pem"),
        w.read("certs/svid_bundle.pem"),
    ];
    assert_eq!(before, after);
    // A good one afterwards is written and the helper is live again.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    wait_http(port, "/live", 200).await;
}

#[tokio::test]
async fn text_from_the_agent_cannot_forge_a_log_line() {
    let api = FakeWorkloadApi::start().await;
    api.fail_next_with(
        tonic::Code::Internal,
        "boom\n2026-01-01T00:00:00Z  INFO X.509 SVID written spiffe_id=spiffe://forged",
    );
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), "daemon_mode = false"));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1)
        .assert_stderr_contains(&["boom\\n2026-01-01T00:00:00Z"]);
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "{}",
        run.stderr
    );
}

// === 5. supervision ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_gets_the_descriptor_limit_the_helper_started_with() {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if !can(
        have("prlimit"),
        "prlimit (util-linux) sets the helper's limit",
    ) || !can(hard > 512, "a hard descriptor limit above 512")
    {
        return;
    }
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"ulimit -Sn > limit.txt; exec sleep 30\"]\n",
    ));
    let limit = format!("--nofile=512:{hard}");
    let _d = w.spawn_under(&["prlimit", &limit], &["-config", "helper.conf"]);
    let got = wait_for("cmd to record its limit", LONG, || {
        std::fs::read_to_string(w.path().join("limit.txt"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    })
    .await;
    assert_eq!(got.trim(), "512");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid_1_orphans_are_reaped() {
    if !can(
        is_root() && have("unshare"),
        "root and unshare(1) for a PID namespace",
    ) {
        return;
    }
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    // Five grandchildren orphaned at once; they exit a second later.
    w.conf(&x509_conf(
        api.socket_path(),
        "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"for i in 1 2 3 4 5; do (sleep 1 &); done; exec sleep 60\"]\n",
    ));
    let d = w.spawn_under(
        &["unshare", "--pid", "--fork", "--kill-child"],
        &["-config", "helper.conf"],
    );
    let outer = d.pid();
    let helper = wait_for("the helper inside the namespace", LONG, || {
        let text = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).ok()?;
        text.split_whitespace().next()?.parse::<i32>().ok()
    })
    .await;
    let children = |state: Option<char>| -> Vec<i32> {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{helper}/task/{helper}/children"))
        else {
            return Vec::new();
        };
        text.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|p: &i32| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let st = stat.rsplit(") ").next().and_then(|r| r.chars().next());
                state.is_none_or(|s| st == Some(s))
            })
            .collect()
    };
    // The orphans become the helper's children...
    wait_for("orphans re-parented to the helper", LONG, || {
        (children(None).len() >= 5).then_some(())
    })
    .await;
    // ...and once they exit, none stays a zombie; the direct child runs on.
    wait_for("every orphan reaped", LONG, || {
        let all = children(None);
        (children(Some('Z')).is_empty() && all.len() == 1).then_some(())
    })
    .await;
    assert!(d.logs().contains("started cmd"), "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_and_sigusr2_are_logged_and_ignored_and_sighup_reloads() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"echo started >> started.txt; exec sleep 60\"]\n",
    ));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    d.wait_log("started cmd", LONG).await;
    for (sig, name) in [(Signal::SIGUSR1, "SIGUSR1"), (Signal::SIGUSR2, "SIGUSR2")] {
        d.signal(sig);
        d.wait_log(&format!("received {name}: ignored"), LONG).await;
    }
    // SIGHUP reads the (unchanged) configuration again.
    d.signal(Signal::SIGHUP);
    d.wait_log("the configuration is unchanged", LONG).await;
    d.wait_log("configuration reloaded", LONG).await;
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.logs());
    // Still rotating, and the child was never started twice.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    assert_eq!(w.read_string("started.txt"), "started\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_file_naming_the_helper_itself_or_init_is_never_signalled() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let pid_file = w.path().join("app.pid");
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "pid_file_name = \"{}\"\nrenew_signal = \"SIGTERM\"\n",
            pid_file.display()
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    std::fs::write(&pid_file, format!("{}\n", d.pid())).unwrap();
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    wait_svid(&w, &first).await;
    d.wait_log("the helper's own pid", LONG).await;
    std::fs::write(&pid_file, "1\n").unwrap();
    d.wait_log("pid 1 (init): it is never signalled", LONG)
        .await;
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    assert!(!d.logs().contains("signalled process from pid file"));
}

#[tokio::test]
async fn renew_signals_that_stop_a_process_are_refused_at_load() {
    let w = Workdir::new();
    w.conf(&x509_conf(
        Path::new("/nonexistent.sock"),
        "cmd = \"/bin/true\"\nrenew_signal = \"SIGTSTP\"\n",
    ));
    w.run(&["-config", "helper.conf"])
        .await
        .assert_code(1)
        .assert_stderr_contains(&["renew_signal SIGTSTP stops the process"]);
    assert!(w.cert_listing().is_empty());
}

// === 6. what is exposed, and how much ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_program_and_how_many_arguments_never_their_values() {
    let running =
        healthy_daemon("cmd = \"/bin/sleep\"\ncmd_args = \"60 --db-password=hunter2\"").await;
    // The files are on disk before the write is recorded; ready means it
    // is, and how each file was written with it.
    wait_http(running.port, "/ready", 200).await;
    let body = wait_http(running.port, "/status", 200).await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["process"]["program"], "/bin/sleep");
    assert_eq!(doc["process"]["args"], 2);
    assert!(!body.contains("hunter2"), "{body}");
    assert_eq!(doc["write_methods"]["certs/svid.pem"], "atomic");
}

#[tokio::test]
async fn two_jwt_svids_writing_one_file_are_refused() {
    let w = Workdir::new();
    w.conf(
        "cert_dir = \"certs\"\njwt_svids = [\n  { jwt_audience = \"a\", jwt_svid_file_name = \"t.jwt\" },\n  { jwt_audience = \"b\", jwt_svid_file_name = \"t.jwt\" },\n]\n",
    );
    w.run(&["-config", "helper.conf"])
        .await
        .assert_code(1)
        .assert_stderr_contains(&[
        "helper.conf",
        "jwt_svids[1].jwt_svid_file_name writes \"t.jwt\" as jwt_svids[0].jwt_svid_file_name does",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_the_start_of_thousands_of_entries_is_acted_on_at_once() {
    let api = FakeWorkloadApi::start().await;
    let w = Workdir::new();
    let mut conf = format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\njwt_svids = [\n",
        api.socket_path().display()
    );
    for i in 0..20_000 {
        conf.push_str(&format!(
            "{{jwt_audience=\"a{i}\",jwt_svid_file_name=\"t{i}\"}},\n"
        ));
    }
    conf.push_str("]\n");
    let (mut d, _port) = w
        .spawn_with_health_port(
            |port| format!("{conf}{}", health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    let sent = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).await, Some(0));
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
}

#[tokio::test]
async fn one_shot_validates_each_jwt_svid_with_the_agent() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    let w = Workdir::new();
    w.conf(&format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\ndaemon_mode = false\njwt_svids = [{{ jwt_audience = \"db\", jwt_svid_file_name = \"db.jwt\" }}]\n",
        api.socket_path().display()
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert!(w.exists("certs/db.jwt"));
    assert_eq!(api.calls("ValidateJWTSVID"), 1);
}

// === 7. the Go helper's read-only cert_dir layout ===

/// The helper's user in the read-only layout test (the image's uid).
const UID: u32 = 65_532;

/// A directory every user can reach (the test's temporary directories are
/// private to root).
fn open_up(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cert_dir_owned_by_root_with_files_given_to_the_helper_is_rewritten_in_place() {
    if !can(
        is_root() && have("setpriv"),
        "root and setpriv(1) to run as another uid",
    ) {
        return;
    }
    let (_agent_dir, FakeAgent { api, pki, first }) = agent_for_everyone().await;

    let (w, inodes) = read_only_layout();
    let socket = api.socket_path().to_owned();
    let uid = format!("--reuid={UID}");
    let gid = format!("--regid={UID}");
    let (d, port) = w
        .spawn_with_health_port_under(
            &["setpriv", &uid, &gid, "--clear-groups"],
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
            &[],
        )
        .await;
    // One warning at start-up: the directory, the uid, what is lost.
    d.wait_log("does not let the helper (uid 65532) create files", LONG)
        .await;
    let warning = d
        .logs()
        .lines()
        .find(|l| l.contains("does not let the helper"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("certs") && warning.contains("owner uid 0, mode 0755"),
        "{warning}"
    );
    assert!(warning.contains("rewritten in place"), "{warning}");
    wait_svid(&w, &first).await;
    // A rotation, in place as well.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, &next).await;
    wait_http(port, "/ready", 200).await;
    let after: Vec<u64> = ["svid.pem", "svid_key.pem", "svid_bundle.pem"]
        .iter()
        .map(|n| std::fs::metadata(w.certs().join(n)).unwrap().ino())
        .collect();
    assert_eq!(after, inodes, "the same files, rewritten in place");
    assert_eq!(mode(&w.certs().join("svid_key.pem")), 0o600);
    assert_eq!(mode(&w.certs().join("svid.pem")), 0o644);
    assert_eq!(
        w.read("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &next.key_pkcs8).into_bytes()
    );
    assert_eq!(
        w.cert_listing(),
        ["svid.pem", "svid_bundle.pem", "svid_key.pem"]
    );
    let status = wait_http(port, "/status", 200).await;
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        doc["write_methods"]["certs/svid_key.pem"], "in_place",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_in_a_read_only_cert_dir_fails_naming_the_directory_its_owner_and_the_uid() {
    if !can(
        is_root() && have("setpriv"),
        "root and setpriv(1) to run as another uid",
    ) {
        return;
    }
    let (_agent_dir, FakeAgent { api, .. }) = agent_for_everyone().await;
    let (w, _) = read_only_layout();
    // A file that does not exist there yet cannot be created: the error
    // names the directory, its owner and mode, and the helper's uid.
    std::fs::remove_file(w.certs().join("svid_bundle.pem")).unwrap();
    w.conf(&x509_conf(api.socket_path(), "daemon_mode = false"));
    let (uid, gid) = (format!("--reuid={UID}"), format!("--regid={UID}"));
    let mut c = w.command_under(
        &["setpriv", &uid, &gid, "--clear-groups"],
        &["-config", "helper.conf"],
    );
    c.kill_on_drop(true);
    let run = w.run_cmd(c).await;
    run.assert_code(1).assert_stderr_contains(&[
        "the helper (uid 65532) cannot create files in directory",
        "(owner uid 0, mode 0755)",
        "the file does not exist yet",
    ]);
    assert!(
        !w.certs().join("svid_bundle.pem").exists(),
        "nothing is written"
    );
}

/// A fake agent whose socket every user can reach (the helper runs as
/// another uid), serving its first SVID; its directory lives as long as the
/// first value.
async fn agent_for_everyone() -> (tempfile::TempDir, FakeAgent) {
    let agent_dir = tempfile::tempdir().unwrap();
    open_up(agent_dir.path());
    let api = FakeWorkloadApi::start_at(&agent_dir.path().join("agent.sock")).await;
    std::fs::set_permissions(api.socket_path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pki = Pki::new();
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    (agent_dir, FakeAgent { api, pki, first })
}

/// The Go helper's images' layout: `cert_dir` made by root (0755), the
/// three X.509 files created there (empty) and handed to the helper's
/// user. Returns the work directory and the files' inodes.
fn read_only_layout() -> (Workdir, Vec<u64>) {
    let w = Workdir::new();
    open_up(w.path());
    open_up(&w.certs());
    let names = ["svid.pem", "svid_key.pem", "svid_bundle.pem"];
    for name in names {
        let p = w.certs().join(name);
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(UID)), None).unwrap();
    }
    let inodes = names
        .iter()
        .map(|n| std::fs::metadata(w.certs().join(n)).unwrap().ino())
        .collect();
    (w, inodes)
}
