//! Outputs beyond the Go helper, through the real binary: key and chain in
//! one file, a bundle file per trust domain, no rewrite and no signal for
//! an update that changes nothing, and the child exit policies.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

async fn wait_svid(w: &Workdir, file: &str, svid: &Svid) {
    let want = pem_certs(&[svid.leaf_der()]);
    let path = w.certs().join(file);
    wait_for("the file to hold the new leaf", LONG, || {
        read_opt(&path)
            .filter(|b| String::from_utf8_lossy(b).contains(&want))
            .map(drop)
    })
    .await;
}

fn oneshot(socket: &Path, lines: &str) -> String {
    format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\ndaemon_mode = false\n{lines}\n",
        socket.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_bundle_holds_the_key_then_the_chain() {
    let FakeAgent {
        api,
        pki,
        first: svid,
    } = fake_agent().await;
    let w = Workdir::new();
    // Alone: no svid_* files needed.
    w.conf(&oneshot(
        api.socket_path(),
        "credential_bundle_file_name = \"creds.pem\"\nkey_file_mode = 0640",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    let want = pem_block("PRIVATE KEY", &svid.key_pkcs8)
        + &pem_certs(&[svid.leaf_der(), &pki.intermediate.cert_der()]);
    assert_eq!(w.read_string("certs/creds.pem"), want);
    assert_eq!(w.mode("certs/creds.pem"), 0o640);
    assert_eq!(w.cert_listing(), ["creds.pem"]);

    // Moved intermediates leave it too, and it sits beside the svid files.
    let w = Workdir::new();
    w.conf(&oneshot(
        api.socket_path(),
        "credential_bundle_file_name = \"creds.pem\"\nadd_intermediates_to_bundle = true\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.read_string("certs/creds.pem"),
        pem_block("PRIVATE KEY", &svid.key_pkcs8) + &pem_certs(&[svid.leaf_der()])
    );
    assert_eq!(w.mode("certs/creds.pem"), 0o600);
    assert_eq!(
        w.cert_listing(),
        ["bundle.pem", "creds.pem", "key.pem", "svid.pem"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credential_bundle_follows_the_hint() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let first = pki.svid().with_hint("external");
    let other = pki
        .intermediate
        .issue_svid("spiffe://example.org/internal", Duration::from_secs(600))
        .with_hint("internal");
    let mut update = pki.x509_update(first);
    update
        .svids
        .push((other.clone(), vec![pki.root.cert_der()]));
    api.set_x509(update);
    let w = Workdir::new();
    w.conf(&oneshot(
        api.socket_path(),
        "credential_bundle_file_name = \"creds.pem\"\nhint = \"internal\"",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert!(w
        .read_string("certs/creds.pem")
        .starts_with(&pem_block("PRIVATE KEY", &other.key_pkcs8)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_per_trust_domain_never_merged_and_stale_ones_removed() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let other = Ca::root("other.test");
    let mut update = pki.x509_update(pki.svid());
    update
        .federated
        .push(("other.test".to_owned(), vec![other.cert_der()]));
    api.set_x509(update);
    let w = Workdir::new();
    // Unrelated files in the directory are never touched.
    let dir = w.certs().join("bundles");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.join("ca.crt"), b"mine").unwrap();
    w.conf(&x509_conf(
        api.socket_path(),
        "trust_bundles_dir = \"bundles\"\ncert_file_mode = 0640",
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    let own = dir.join("example.org.pem");
    // svid.pem is the batch's last rename: the whole batch is then in place.
    wait_for("the first batch", LONG, || {
        w.certs().join("svid.pem").exists().then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&own).unwrap(),
        pem_certs(&[&pki.root.cert_der()])
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("federated.test.pem")).unwrap(),
        pem_certs(&[&pki.federated.cert_der()])
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("other.test.pem")).unwrap(),
        pem_certs(&[&other.cert_der()])
    );
    assert_eq!(w.mode("certs/bundles/other.test.pem"), 0o640);
    // The merged bundle file keeps only the SVID's own roots.
    assert_eq!(
        w.read_string("certs/svid_bundle.pem"),
        pem_certs(&[&pki.root.cert_der()])
    );

    // other.test is no longer sent: its file goes, nothing else does.
    api.set_x509(pki.x509_update(pki.svid()));
    wait_for("the stale file to go", LONG, || {
        (!dir.join("other.test.pem").exists()).then_some(())
    })
    .await;
    // The removal's backup name goes just after it.
    w.wait_listing(
        "certs/bundles",
        &[
            "ca.crt",
            "example.org.pem",
            "federated.test.pem",
            "notes.txt",
        ],
    )
    .await;
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_trust_bundles_dir_is_created_with_mode_0755() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&oneshot(
        api.socket_path(),
        "trust_bundles_dir = \"by-domain\"",
    ));
    // Whatever the umask, the directory gets 0755.
    let c = w.command_under(
        &["sh", "-c", "umask 077; exec \"$0\" \"$@\""],
        &["-config", "helper.conf"],
    );
    let run = w.run_cmd(c).await;
    run.assert_success();
    let meta = std::fs::metadata(w.certs().join("by-domain")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o755);
    assert!(w.exists("certs/by-domain/example.org.pem"));
    assert!(w.exists("certs/by-domain/federated.test.pem"));
}

/// A child that counts the renew signals it gets.
fn counter_cmd(w: &Workdir) -> String {
    let rec = w.path().join("record");
    let script = format!(
        "trap 'echo HUP >> {r}' HUP; echo START >> {r}; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        r = rec.display()
    );
    format!(
        "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", {}]\nrenew_signal = \"SIGHUP\"\n",
        serde_json::to_string(&script).unwrap()
    )
}

fn record(w: &Workdir) -> Vec<String> {
    std::fs::read_to_string(w.path().join("record"))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn inodes(w: &Workdir, names: &[&str]) -> Vec<u64> {
    names
        .iter()
        .map(|n| std::fs::metadata(w.certs().join(n)).unwrap().ino())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_changes_nothing_is_neither_written_nor_signalled() {
    let FakeAgent {
        api,
        pki,
        first: svid,
    } = fake_agent().await;
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "jwt_bundle_file_name = \"bundle.json\"\n{}",
            counter_cmd(&w)
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_for("the child", LONG, || {
        (record(&w) == ["START"]).then_some(())
    })
    .await;
    wait_for("the JWT bundle", LONG, || {
        w.exists("certs/bundle.json").then_some(())
    })
    .await;
    let files = ["svid.pem", "svid_key.pem", "svid_bundle.pem", "bundle.json"];
    let before = inodes(&w, &files);

    // The stream drops and comes back with the same SVID and bundles.
    api.stop().await;
    d.wait_log("X.509 SVID stream: ", LONG).await;
    api.start_again().await;
    d.wait_log("answers again", LONG).await;
    // A federated-only change, with include_federated_domains = false.
    let mut update = pki.x509_update(svid.clone());
    update
        .federated
        .push(("new.test".to_owned(), vec![Ca::root("new.test").cert_der()]));
    api.set_x509(update);
    // A real rotation afterwards shows the helper has seen both.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    wait_svid(&w, "svid.pem", &next).await;
    wait_for("one renew signal", LONG, || {
        (record(&w) == ["START", "HUP"]).then_some(())
    })
    .await;
    let after = inodes(&w, &files);
    // The rotation rewrote the certificate and the key; the bundles hold
    // the same roots and keys as before, so they kept their inodes.
    assert_ne!(after[0], before[0], "svid.pem was not rewritten");
    assert_ne!(after[1], before[1], "svid_key.pem was not rewritten");
    assert_eq!(after[2], before[2], "the unchanged bundle was rewritten");
    assert_eq!(
        after[3], before[3],
        "the unchanged JWT bundle was rewritten"
    );
    let logs = d.logs();
    assert_eq!(logs.matches("X.509 SVID written").count(), 2, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_resends_keep_every_inode() {
    let FakeAgent {
        api,
        pki,
        first: svid,
    } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), &counter_cmd(&w)));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_for("the child", LONG, || {
        (record(&w) == ["START"]).then_some(())
    })
    .await;
    let files = ["svid.pem", "svid_key.pem", "svid_bundle.pem"];
    let before = inodes(&w, &files);
    for _ in 0..2 {
        api.stop().await;
        api.start_again().await;
        d.wait_log("answers again", LONG).await;
    }
    // The same update pushed again on the open stream.
    api.set_x509(pki.x509_update(svid.clone()));
    // Let the helper see it: the recovery lines come after the updates.
    wait_for("two recoveries", LONG, || {
        (d.logs().matches("answers again").count() >= 2).then_some(())
    })
    .await;
    assert_eq!(inodes(&w, &files), before);
    assert_eq!(record(&w), ["START"], "cmd was signalled for nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_starts_the_child_again_with_backoff() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    let rec = w.path().join("starts");
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"echo x >> {}; exit 3\"]\ncmd_exit_policy = \"restart\"\n",
            rec.display()
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    // 1 s, then 2 s: three starts within the deadline, no rotation needed.
    wait_for("three starts", LONG, || {
        let n = std::fs::read_to_string(&rec).map_or(0, |t| t.lines().count());
        (n >= 3).then_some(())
    })
    .await;
    let logs = d.logs();
    assert!(
        logs.contains("cmd exited") && logs.contains("code=3"),
        "{logs}"
    );
    assert!(logs.contains("cmd_exit_policy = \"restart\""), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_policy_passes_the_childs_exit_code_on() {
    let FakeAgent { api, .. } = fake_agent().await;
    for (script, code) in [("exit 7", 7), ("kill -TERM $$", 128 + 15)] {
        let w = Workdir::new();
        w.conf(&x509_conf(
            api.socket_path(),
            &format!(
                "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"{script}\"]\ncmd_exit_policy = \"exit\"\n"
            ),
        ));
        let mut d = w.spawn(&["-config", "helper.conf"]);
        assert_eq!(d.wait_exit(LONG).await, Some(code), "{}", d.logs());
        // The credentials were written before the child ran.
        assert!(w.exists("certs/svid.pem"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_policy_with_a_missing_program_exits_127() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "cmd = \"/nonexistent/program\"\ncmd_exit_policy = \"exit\"\n",
    ));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    assert_eq!(d.wait_exit(LONG).await, Some(127));
    assert!(d.logs().contains("/nonexistent/program"), "{}", d.logs());
}

#[tokio::test]
async fn exit_policy_contradictions_are_configuration_errors() {
    let w = Workdir::new();
    for (extra, words) in [
        ("cmd_exit_policy = \"restart\"", "cmd_exit_policy"),
        (
            "cmd = \"/bin/true\"\ncmd_exit_policy = \"exit\"\ndaemon_mode = false",
            "cmd_exit_policy",
        ),
        (
            "cmd = \"/bin/true\"\ncmd_exit_policy = \"sometimes\"",
            "relaunch_on_renewal",
        ),
    ] {
        w.conf(&x509_conf(Path::new("/nonexistent.sock"), extra));
        let run = w.run(&["-config", "helper.conf"]).await;
        run.assert_code(1)
            .assert_stderr_contains(&[words, "helper.conf"]);
        assert!(w.cert_listing().is_empty());
    }
}
