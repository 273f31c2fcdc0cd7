//! Faults through the real binary: a credential set changes whole or not at
//! all (an immutable file, a directory in the way, a full filesystem), bad
//! updates from the agent, leftovers of a crash, a shutdown during a slow
//! write, a health port flooded with idle connections, and one connection
//! to the agent for everything.

use std::process::Command as StdCommand;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(20);

/// Whether the tools a test needs are here; when not, the test says so
/// and passes, unless CI requires every test to run.
fn have(tool: &str, why: &str) -> bool {
    let found = StdCommand::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_none(),
            "{tool} is required for {why}"
        );
        eprintln!("skipped: {tool} is not installed ({why})");
    }
    found
}

fn is_root() -> bool {
    // The effective uid, from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn three(w: &Workdir) -> [Option<Vec<u8>>; 3] {
    ["svid.pem", "svid_key.pem", "svid_bundle.pem"].map(|n| read_opt(&w.certs().join(n)))
}

/// Names in `certs/` that are the helper's temporary or backup files.
fn temporaries(w: &Workdir) -> Vec<String> {
    w.cert_listing()
        .into_iter()
        .filter(|n| n.starts_with('.') && (n.ends_with(".tmp") || n.ends_with(".bak")))
        .collect()
}

/// Clears the immutable flag when the test ends, whatever happens.
struct Immutable(std::path::PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = StdCommand::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_certificate_file_rolls_the_whole_batch_back() {
    if !have("chattr", "making svid.pem immutable") {
        return;
    }
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    let before = three(&w);

    let svid_path = w.certs().join("svid.pem");
    let ok = StdCommand::new("chattr")
        .arg("+i")
        .arg(&svid_path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "skipped: the filesystem under the temporary directory does not support chattr +i"
        );
        return;
    }
    let guard = Immutable(svid_path.clone());

    api.set_x509(pki.x509_update(pki.svid()));
    d.wait_log("the batch was rolled back", LONG).await;
    assert_eq!(three(&w), before, "the previous three files must be intact");
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &first.key_pkcs8),
        "the key on disk must still belong to the certificate on disk"
    );
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains(r#""x509_write_status":"failed""#), "{body}");
    assert!(temporaries(&w).is_empty(), "{:?}", w.cert_listing());

    drop(guard);
    let third = pki.svid();
    api.set_x509(pki.x509_update(third.clone()));
    wait_svid(&w, &third).await;
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &third.key_pkcs8)
    );
    wait_http(port, "/live", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_in_the_way_changes_nothing_and_recovers() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    let [_, key_before, bundle_before] = three(&w);

    let svid_path = w.certs().join("svid.pem");
    std::fs::remove_file(&svid_path).unwrap();
    std::fs::create_dir(&svid_path).unwrap();
    std::fs::write(svid_path.join("inside"), b"x").unwrap();

    api.set_x509(pki.x509_update(pki.svid()));
    d.wait_log("a directory is in the way", LONG).await;
    let [_, key, bundle] = three(&w);
    assert_eq!((key, bundle), (key_before, bundle_before));
    assert!(svid_path.join("inside").exists());
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains(r#""x509_write_status":"failed""#), "{body}");
    assert!(temporaries(&w).is_empty(), "{:?}", w.cert_listing());

    std::fs::remove_dir_all(&svid_path).unwrap();
    let third = pki.svid();
    api.set_x509(pki.x509_update(third.clone()));
    wait_svid(&w, &third).await;
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &third.key_pkcs8)
    );
    wait_http(port, "/live", 200).await;
}

/// Unmounts the test's tmpfs when the test ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_keeps_the_previous_files_and_recovers() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let certs = w.certs();
    let mounted = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
        .arg(&certs)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_none(),
            "cannot mount a tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let _unmount = Mounted(certs.clone());
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    let before = three(&w);

    // Fill the filesystem to the last byte.
    let filler = certs.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    api.set_x509(pki.x509_update(pki.svid()));
    d.wait_log("X.509 update not written", LONG).await;
    assert_eq!(three(&w), before);
    assert!(temporaries(&w).is_empty(), "{:?}", w.cert_listing());
    let body = wait_http(port, "/live", 503).await;
    assert!(body.contains(r#""x509_write_status":"failed""#), "{body}");

    std::fs::remove_file(&filler).unwrap();
    let third = pki.svid();
    api.set_x509(pki.x509_update(third.clone()));
    wait_svid(&w, &third).await;
    wait_http(port, "/live", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_from_the_agent_are_refused_and_the_last_good_files_kept() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    wait_http(port, "/live", 200).await;
    let mut before = three(&w);

    let other = pki.svid();
    let mismatched = Svid {
        key_pkcs8: other.key_pkcs8.clone(),
        ..pki.svid()
    };
    let garbage = Svid {
        chain: vec![b"not a certificate".to_vec()],
        ..pki.svid()
    };
    let cases: Vec<(&str, X509Update)> = vec![
        (
            "does not match its certificate",
            pki.x509_update(mismatched),
        ),
        (
            "cannot be used",
            X509Update {
                svids: Vec::new(),
                federated: Vec::new(),
            },
        ),
        ("cannot be used", pki.x509_update(garbage)),
    ];
    for (i, (message, update)) in cases.into_iter().enumerate() {
        api.set_x509(update);
        let body = wait_http(port, "/live", 503).await;
        assert!(
            body.contains(r#""x509_write_status":"failed""#),
            "case {i}: {body}"
        );
        d.wait_log(message, LONG).await;
        assert_eq!(three(&w), before, "case {i}");
        // Back to a good update, so the next case starts from written.
        let good = pki.svid();
        api.set_x509(pki.x509_update(good.clone()));
        wait_svid(&w, &good).await;
        wait_http(port, "/live", 200).await;
        // The next case must keep these files.
        let now = three(&w);
        assert_ne!(now, before);
        before = now;
    }
    // Each bad update is one clear line at error level, not a flood.
    let logs = d.logs();
    assert_eq!(
        logs.matches("does not match its certificate").count(),
        1,
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_crash_are_removed_at_start_and_nothing_else() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    // The helper's pattern: `.<FNV-1a of the target name>-<pid>-<n>.tmp|bak`,
    // eight lowercase hex digits each.
    let fnv = |name: &str| {
        name.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    };
    let ours = [
        format!(".{:08x}-00001092-00000000.tmp", fnv("svid.pem")),
        format!(".{:08x}-00001092-00000001.tmp", fnv("svid_key.pem")),
        format!(".{:08x}-0000004d-00000003.bak", fnv("svid_bundle.pem")),
    ];
    let not_ours = [
        format!(".{:08x}-00001092-00000000.tmp", fnv("other.pem")),
        format!(".{:08x}-00001092-0000000x.tmp", fnv("svid.pem")),
        "notes.tmp".to_owned(),
    ];
    for n in ours.iter().chain(&not_ours) {
        std::fs::write(w.certs().join(n), b"left over").unwrap();
    }
    w.conf(&x509_conf(api.socket_path(), "daemon_mode = false"));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success()
        .assert_stderr_contains(&["removed a temporary file left by an earlier run"]);
    let mut want: Vec<String> = not_ours.to_vec();
    want.extend(["svid.pem", "svid_bundle.pem", "svid_key.pem"].map(str::to_owned));
    want.sort();
    assert_eq!(w.cert_listing(), want);
}

/// The pid of the helper when it runs as the only child of `parent`.
fn child_of(parent: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_slow_write_lets_the_batch_finish() {
    if !have("strace", "slowing fsync down") {
        return;
    }
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    // Every fsync waits 1.5 s: a batch takes a few seconds.
    let mut d = w.spawn_under(
        &[
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync",
            "-e",
            "inject=fsync:delay_enter=1500000",
        ],
        &["-config", "helper.conf"],
    );
    wait_svid(&w, &first).await;
    let helper = wait_for("the helper under strace", LONG, || child_of(d.pid())).await;

    let second = pki.svid();
    api.set_x509(pki.x509_update(second.clone()));
    // The batch is under way once its temporary files exist.
    wait_for("the batch to start", LONG, || {
        (!temporaries(&w).is_empty()).then_some(())
    })
    .await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper), Signal::SIGTERM).unwrap();
    assert_eq!(
        d.wait_exit(Duration::from_secs(30)).await,
        Some(0),
        "{}",
        d.logs()
    );

    assert!(
        temporaries(&w).is_empty(),
        "left behind: {:?}",
        w.cert_listing()
    );
    // The batch finished: the new key next to the new certificate.
    assert!(w
        .read_string("certs/svid.pem")
        .starts_with(&pem_certs(&[second.leaf_der()])));
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &second.key_pkcs8)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_starve_the_helper_of_descriptors() {
    if !have("prlimit", "lowering the descriptor limit") {
        return;
    }
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (mut d, port) = w
        .spawn_with_health_port_under(
            &["prlimit", "--nofile=64:64", "--"],
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
            &[],
        )
        .await;
    wait_svid(&w, &first).await;
    wait_http(port, "/ready", 200).await;

    // More idle connections than the helper has descriptors.
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 64, "only {} connections opened", idle.len());
    for _ in 0..3 {
        let next = pki.svid();
        api.set_x509(pki.x509_update(next.clone()));
        wait_svid(&w, &next).await;
        assert_eq!(
            w.read_string("certs/svid_key.pem"),
            pem_block("PRIVATE KEY", &next.key_pkcs8)
        );
    }
    assert!(d.child.try_wait().unwrap().is_none(), "the helper died");
    drop(idle);
    let body = wait_http(port, "/live", 200).await;
    assert!(body.contains(r#""x509_write_status":"written""#), "{body}");
    assert!(!d.logs().contains("Too many open files"), "{}", d.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_and_fetch_shares_one_connection_to_the_agent() {
    let FakeAgent { api, pki, .. } = fake_agent().await;
    api.set_jwt_bundles(vec![("example.org".to_owned(), pki.jwt.jwks_json())]);
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".to_owned(), String::new())],
        Duration::from_secs(600),
    );
    let w = Workdir::new();
    let entries: Vec<String> = (0..20)
        .map(|i| format!(r#"{{ jwt_audience = "a{i}", jwt_svid_file_name = "t{i}.token" }}"#))
        .collect();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "jwt_bundle_file_name = \"bundle.json\"\njwt_svids = [{}]\n",
            entries.join(",\n")
        ),
    ));
    let _d = w.spawn(&["-config", "helper.conf"]);
    wait_for("every file", LONG, || {
        (0..20)
            .all(|i| w.exists(&format!("certs/t{i}.token")))
            .then_some(())
            .filter(|()| w.exists("certs/bundle.json") && w.exists("certs/svid.pem"))
    })
    .await;
    assert_eq!(
        api.connections(),
        1,
        "one connection for every stream and fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interface_by_default_and_only_bind_address_when_set() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here to tell the listeners apart");
        return;
    }
    let FakeAgent { api, .. } = fake_agent().await;
    for (bind, v6_answers) in [("", true), ("  bind_address = \"127.0.0.1\"\n", false)] {
        let w = Workdir::new();
        let socket = api.socket_path().to_owned();
        let (_d, port) = w
            .spawn_with_health_port(
                |port| x509_conf(&socket, &health_conf(port, bind)),
                &["-config", "helper.conf"],
            )
            .await;
        // IPv4 answers either way (the default is one dual-stack socket).
        wait_http(port, "/ready", 200).await;
        let v6 = tokio::net::TcpStream::connect(("::1", port)).await;
        assert_eq!(v6.is_ok(), v6_answers, "[::1]:{port} with {bind:?}");
    }
}
