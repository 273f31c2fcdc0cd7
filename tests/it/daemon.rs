//! Daemon mode through the real binary: rotations, reconnects, write
//! failures and recovery, JWT refresh, and readers during rotations.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_pushed_by_the_agent_reach_the_files() {
    let FakeAgent { api, pki, .. } = fake_agent().await;
    // On a disk, and on tmpfs, where a batch's files are synced in turn
    // instead of side by side.
    for w in [Workdir::new(), Workdir::in_memory()] {
        let first = pki.svid();
        api.set_x509(pki.x509_update(first.clone()));
        w.conf(&x509_conf(api.socket_path(), ""));
        let mut d = w.spawn(&["-config", "helper.conf"]);
        wait_svid(&w, &first).await;

        for _ in 0..3 {
            let next = pki.svid();
            assert_ne!(next.serial, first.serial);
            api.set_x509(pki.x509_update(next.clone()));
            wait_svid(&w, &next).await;
            assert_eq!(
                w.read_string("certs/svid_key.pem"),
                pem_block("PRIVATE KEY", &next.key_pkcs8),
                "the key must match the certificate once the certificate is in place"
            );
        }
        w.wait_listing("certs", &["svid.pem", "svid_bundle.pem", "svid_key.pem"])
            .await;
        assert!(!d.logs().contains("PRIVATE KEY"));
        d.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(d.wait_exit(Duration::from_secs(5)).await, Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_down_at_start_then_up_writes_the_files_without_restart() {
    let sockdir = tempfile::tempdir().unwrap();
    let socket = sockdir.path().join("agent.sock");
    let w = Workdir::new();
    w.conf(&x509_conf(&socket, ""));
    let d = w.spawn(&["-config", "helper.conf"]);
    d.wait_log("does not exist: is the SPIRE agent running", LONG)
        .await;
    assert!(!w.exists("certs/svid.pem"));

    let api = FakeWorkloadApi::start_at(&socket).await;
    let pki = Pki::new();
    let svid = pki.svid();
    api.set_x509(pki.x509_update(svid.clone()));
    wait_svid(&w, &svid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restarted_mid_stream_is_followed() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;

    api.stop().await;
    d.wait_log("X.509 SVID stream: ", LONG).await;
    let second = pki.svid();
    api.set_x509(pki.x509_update(second.clone()));
    api.start_again().await;
    wait_svid(&w, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_keeps_the_last_good_files_and_recovers() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    let good = w.read("certs/svid.pem");

    // Take the directory away (this works even for root, unlike chmod).
    let away = w.path().join("certs.away");
    std::fs::rename(w.certs(), &away).unwrap();
    api.set_x509(pki.x509_update(pki.svid()));
    d.wait_log("previous files are unchanged", LONG).await;
    assert_eq!(std::fs::read(away.join("svid.pem")).unwrap(), good);
    let leftovers: Vec<_> = std::fs::read_dir(&away).unwrap().collect();
    assert_eq!(leftovers.len(), 3);

    std::fs::rename(&away, w.certs()).unwrap();
    let third = pki.svid();
    api.set_x509(pki.x509_update(third.clone()));
    wait_svid(&w, &third).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_svid_is_refreshed_before_it_expires_and_bundle_updates_are_written() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(4),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    w.conf(&format!(
        r#"
agent_address = "{}"
cert_dir = "certs"
jwt_bundle_file_name = "bundle.json"
jwt_svids = [{{ jwt_audience = "db", jwt_extra_audiences = ["x"], jwt_svid_file_name = "db.token" }}]
"#,
        api.socket_path().display()
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    let path = w.certs().join("db.token");
    let first = wait_for("the first token", LONG, || read_opt(&path)).await;
    let first = String::from_utf8(first).unwrap();
    let exp = jwt_claims(&first)["exp"].as_i64().unwrap();
    // A 4 s token is refreshed after about 3 s, before it expires.
    let second = wait_for("a refreshed token", LONG, || {
        read_opt(&path).filter(|t| t != first.as_bytes())
    })
    .await;
    let second = String::from_utf8(second).unwrap();
    assert!(jwt_claims(&second)["exp"].as_i64().unwrap() > exp);
    assert_eq!(jwt_claims(&second)["aud"], serde_json::json!(["db", "x"]));
    assert!(
        api.calls("ValidateJWTSVID") >= 2,
        "tokens are validated before writing"
    );
    assert!(!d.logs().contains(&first) && !d.logs().contains(&second));

    // A new JWT bundle pushed on the stream lands in the file.
    let bundle_path = w.certs().join("bundle.json");
    wait_for("the JWT bundle", LONG, || read_opt(&bundle_path)).await;
    let extra = JwtIssuer::new("federated.test", "k9");
    api.set_jwt_bundles(vec![
        ("example.org".into(), pki.jwt.jwks_json()),
        ("federated.test".into(), extra.jwks_json()),
    ]);
    wait_for("the updated JWT bundle", LONG, || {
        read_opt(&bundle_path).filter(|b| String::from_utf8_lossy(b).contains("federated.test"))
    })
    .await;
}

/// The rotations of the torn-file test.
const ROTATIONS: usize = 40;

/// Which rotation wrote each possible content of a file.
type Index = std::collections::HashMap<String, usize>;

/// Reads the three X.509 files (the certificate first: the other two were
/// renamed into place before it) until told to stop and having seen the
/// last rotation (the stop comes once the certificate is on disk, maybe
/// while this loop was between two reads of an older one). Panics on a
/// torn or mismatched set; returns the reads and the newest rotation seen.
fn read_until_stopped(
    certs: &Path,
    leaves: &Index,
    keys: &Index,
    bundles: &Index,
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, usize) {
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).expect("file present");
    let (mut reads, mut newest) = (0u64, 0usize);
    let mut stopped_at = None;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = *stopped_at.get_or_insert_with(std::time::Instant::now);
            if newest == ROTATIONS || at.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        let cert = read("svid.pem");
        let key = read("svid_key.pem");
        let bundle = read("svid_bundle.pem");
        let i = *leaves
            .get(&cert)
            .unwrap_or_else(|| panic!("torn or unknown svid.pem: {cert:?}"));
        let k = *keys
            .get(&key)
            .unwrap_or_else(|| panic!("torn or unknown svid_key.pem: {key:?}"));
        let b = *bundles
            .get(&bundle)
            .unwrap_or_else(|| panic!("torn or unknown svid_bundle.pem: {bundle:?}"));
        assert!(
            k >= i,
            "svid.pem holds rotation {i} but svid_key.pem an older key, rotation {k}'s"
        );
        assert!(
            b >= i,
            "svid.pem holds rotation {i} but svid_bundle.pem an older bundle, rotation {b}'s"
        );
        assert!(
            i >= newest,
            "svid.pem went back from rotation {newest} to {i}"
        );
        newest = i;
        reads += 1;
    }
    (reads, newest)
}

/// A reader polling the files during fast rotations never sees an empty or
/// torn file, and since the certificate is written last, whenever it sees
/// rotation `i`'s leaf in `svid.pem` the key and bundle files already hold
/// rotation `i`'s key and bundle (or a later one's, if the next rotation
/// has begun in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_torn_file_and_the_key_matches_the_certificate_they_see() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    // Rotation i: its own SVID, and a bundle with its own extra root, so
    // every file tells which rotation wrote it.
    let updates: Vec<(Svid, X509Update)> = (0..=ROTATIONS)
        .map(|_| {
            let svid = pki.svid();
            let mut u = pki.x509_update(svid.clone());
            u.svids[0].1.push(Ca::root("example.org").cert_der());
            (svid, u)
        })
        .collect();
    let index_of = |texts: Vec<String>| -> Index {
        texts.into_iter().enumerate().map(|(i, t)| (t, i)).collect()
    };
    let leaves = index_of(
        updates
            .iter()
            .map(|(s, _)| pem_certs(&[s.leaf_der(), &pki.intermediate.cert_der()]))
            .collect(),
    );
    let keys = index_of(
        updates
            .iter()
            .map(|(s, _)| pem_block("PRIVATE KEY", &s.key_pkcs8))
            .collect(),
    );
    let bundles = index_of(
        updates
            .iter()
            .map(|(_, u)| {
                let roots: Vec<&[u8]> = u.svids[0].1.iter().map(Vec::as_slice).collect();
                pem_certs(&roots)
            })
            .collect(),
    );

    api.set_x509(updates[0].1.clone());
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let _d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &updates[0].0).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, certs) = (stop.clone(), w.certs());
        std::thread::spawn(move || read_until_stopped(&certs, &leaves, &keys, &bundles, &stop))
    };
    for (_, update) in &updates[1..] {
        api.set_x509(update.clone());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_svid(&w, &updates[ROTATIONS].0).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, newest) = reader
        .join()
        .expect("the reader saw a torn or mismatched file");
    assert!(reads > 0);
    assert_eq!(newest, ROTATIONS);
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &updates[ROTATIONS].0.key_pkcs8)
    );
}

/// `hint` in daemon mode picks the X.509 SVID and the JWT-SVID carrying it,
/// in the first update and in later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_selects_the_x509_and_jwt_svid_in_daemon_mode() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let update = |internal: &Svid| {
        let mut u = pki.x509_update(pki.svid().with_hint("external"));
        u.svids.push((internal.clone(), vec![pki.root.cert_der()]));
        u
    };
    let issue = || {
        pki.intermediate
            .issue_svid("spiffe://example.org/internal", Duration::from_secs(3600))
            .with_hint("internal")
    };
    let first = issue();
    api.set_x509(update(&first));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![
            ("spiffe://example.org/external".into(), "external".into()),
            ("spiffe://example.org/internal".into(), "internal".into()),
        ],
        Duration::from_secs(600),
    );
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "hint = \"internal\"\njwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }]\n",
    ));
    let _d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    let token_path = w.certs().join("db.token");
    let token = wait_for("the JWT-SVID", LONG, || read_opt(&token_path)).await;
    assert_eq!(
        jwt_claims(&String::from_utf8(token).unwrap())["sub"],
        "spiffe://example.org/internal"
    );
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &first.key_pkcs8)
    );

    let second = issue();
    api.set_x509(update(&second));
    wait_svid(&w, &second).await;
    assert_eq!(
        w.read_string("certs/svid.pem"),
        pem_certs(&[second.leaf_der(), &pki.intermediate.cert_der()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_over_the_grpc_limit_is_an_error_every_time_and_a_large_federation_is_written() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "include_federated_domains = true",
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_svid(&w, &first).await;
    let good = w.read("certs/svid.pem");
    let root = pki.federated.cert_der();
    let federation = |n: usize| -> Vec<(String, Vec<Vec<u8>>)> {
        (0..n)
            .map(|i| (format!("federated-{i}.test"), vec![root.clone()]))
            .collect()
    };

    // 12,000 federated roots make a message of about 6 MB.
    let mut update = pki.x509_update(pki.svid());
    update.federated = federation(12_000);
    api.set_x509(update);
    let marker = "over the 4 MiB gRPC message limit";
    wait_for("four errors about the oversized update", LONG, || {
        (d.logs().matches(marker).count() >= 4).then_some(())
    })
    .await;
    let logs = d.logs();
    for line in logs.lines().filter(|l| l.contains(marker)) {
        assert!(line.contains("ERROR"), "not an error: {line}");
        assert!(line.contains("found "), "no size: {line}");
        assert!(line.contains("the files on disk are kept"), "{line}");
    }
    assert!(
        !logs.contains("further identical messages"),
        "an oversized update must not be quietened:\n{logs}"
    );
    assert_eq!(w.read("certs/svid.pem"), good);

    // 1,000 federated trust domains fit, and all of them are written.
    let third = pki.svid();
    let mut update = pki.x509_update(third.clone());
    update.federated = federation(1_000);
    api.set_x509(update);
    wait_svid(&w, &third).await;
    let bundle = w.read_string("certs/svid_bundle.pem");
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), 1_001);
}
