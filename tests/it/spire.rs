//! The helper against a real SPIRE server and agent (see
//! `common/spire.rs`): one-shot and daemon mode, rotation at SPIRE's own
//! pace, JWT refresh, hints, an entry created after the helper started, an
//! agent restarted under the daemon, federation, and nginx serving mutual
//! TLS with the files. Each test runs its own server and agent; without the
//! SPIRE programs the tests print `skipped:` and pass (unless
//! `SPIFFE_HELPER_REQUIRE_REAL=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::spire::{certs_in, key_matches, CertInfo, Entry, Spire, SPIRE_DEADLINE};
use crate::common::*;
use base64::Engine as _;

/// Deadline for anything that waits on SPIRE's clock (a rotation, a
/// refresh): a few of its periods, with room for a loaded machine.
const ROTATION: Duration = Duration::from_secs(90);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .try_into()
        .expect("i64")
}

/// X.509 files plus a JWT bundle and one JWT-SVID, in one-shot or daemon
/// mode, with `extra` lines.
fn full_conf(socket: &Path, daemon: bool, extra: &str) -> String {
    x509_conf(
        socket,
        &format!(
            r#"
daemon_mode = {daemon}
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [{{ jwt_audience = "db", jwt_extra_audiences = ["cache"], jwt_svid_file_name = "jwt.token" }}]
{extra}
"#
        ),
    )
}

/// The SVID file's chain, after checking it is well formed for `id`: a
/// leaf with that URI SAN that is not a CA, then the server's
/// intermediate, each issued by the next; and that the key file holds the
/// leaf's key.
#[track_caller]
fn check_x509(w: &Workdir, id: &str) -> Vec<CertInfo> {
    let chain = certs_in(&w.read("certs/svid.pem"));
    assert_eq!(chain.len(), 2, "leaf + SPIRE's intermediate: {chain:?}");
    assert_eq!(chain[0].spiffe_id.as_deref(), Some(id));
    assert!(!chain[0].is_ca);
    assert!(chain[1].is_ca);
    assert_eq!(chain[0].issuer, chain[1].subject);
    assert!(chain[0].not_after > unix_now());
    assert!(
        key_matches(&w.read("certs/svid_key.pem"), &chain[0].der),
        "the key file does not hold the leaf's key"
    );
    let bundle = certs_in(&w.read("certs/svid_bundle.pem"));
    assert!(!bundle.is_empty());
    assert_eq!(
        chain[1].issuer, bundle[0].subject,
        "the bundle's root issued the intermediate"
    );
    chain
}

/// The JWT bundle file: trust domain → JWKS document.
#[track_caller]
fn jwt_bundles(w: &Workdir, rel: &str) -> BTreeMap<String, serde_json::Value> {
    let doc: BTreeMap<String, String> =
        serde_json::from_slice(&w.read(rel)).expect("JWT bundle file is a JSON object of strings");
    doc.into_iter()
        .map(|(td, b64)| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .expect("standard base64");
            let jwks: serde_json::Value = serde_json::from_slice(&raw).expect("JWKS JSON");
            (td, jwks)
        })
        .collect()
}

/// The `kid`s of a JWKS document.
fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

fn jwt_header(token: &str) -> serde_json::Value {
    let head = token.split('.').next().expect("header");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url header");
    serde_json::from_slice(&raw).expect("JSON header")
}

/// The serial of the leaf in `certs/svid.pem`, if the file is there.
fn serial_on_disk(w: &Workdir) -> Option<String> {
    let bytes = read_opt(&w.certs().join("svid.pem"))?;
    certs_in(&bytes).first().map(|c| c.serial.clone())
}

/// Waits for the leaf on disk to have a serial other than `old` and
/// returns it (with the chain checked).
async fn wait_rotation(w: &Workdir, id: &str, old: &str, what: &str) -> String {
    let serial = wait_for(what, ROTATION, || serial_on_disk(w).filter(|s| s != old)).await;
    // The helper writes the bundle and key before the certificate: once
    // the new certificate is in place, the key on disk is its key.
    check_x509(w, id);
    serial
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_writes_every_file_from_the_real_agent() {
    let Some(spire) = Spire::start("oneshot_writes_every_file_from_the_real_agent").await else {
        return;
    };
    spire.entry("/workload", &Entry::default()).await;
    let id = spire.id("/workload");
    spire.agent.wait_x509_ids(&[&id]).await;

    let w = Workdir::new();
    w.conf(&full_conf(
        spire.socket(),
        false,
        r"
cert_file_mode = 0640
key_file_mode = 0600
jwt_bundle_file_mode = 0644
jwt_svid_file_mode = 0440
",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.cert_listing(),
        [
            "jwt.token",
            "jwt_bundle.json",
            "svid.pem",
            "svid_bundle.pem",
            "svid_key.pem"
        ]
    );

    check_x509(&w, &id);
    // The bundle file is exactly the server's roots.
    let roots = certs_in(spire.server.bundle_pem().await.as_bytes());
    let bundle = certs_in(&w.read("certs/svid_bundle.pem"));
    assert_eq!(
        bundle.iter().map(|c| &c.der).collect::<Vec<_>>(),
        roots.iter().map(|c| &c.der).collect::<Vec<_>>()
    );

    // The JWT-SVID: for our identity and both audiences, signed by a key
    // the JWT bundle file publishes.
    let token = w.read_string("certs/jwt.token");
    assert!(!token.ends_with('\n'));
    let claims = jwt_claims(&token);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["aud"], serde_json::json!(["db", "cache"]));
    assert!(claims["exp"].as_i64().expect("exp") > unix_now());
    let bundles = jwt_bundles(&w, "certs/jwt_bundle.json");
    assert_eq!(bundles.keys().collect::<Vec<_>>(), ["a.test"]);
    let kid = jwt_header(&token)["kid"].as_str().expect("kid").to_owned();
    assert!(kids(&bundles["a.test"]).contains(&kid), "{bundles:?}");

    assert_eq!(w.mode("certs/svid.pem"), 0o640);
    assert_eq!(w.mode("certs/svid_bundle.pem"), 0o640);
    assert_eq!(w.mode("certs/svid_key.pem"), 0o600);
    assert_eq!(w.mode("certs/jwt_bundle.json"), 0o644);
    assert_eq!(w.mode("certs/jwt.token"), 0o440);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_follows_rotations_at_spires_own_pace() {
    let Some(spire) = Spire::start("daemon_follows_rotations_at_spires_own_pace").await else {
        return;
    };
    // A 20 s SVID (valid 30 s with SPIRE's 10 s backdating): the agent
    // renews it at about half its life, every few seconds.
    spire
        .entry(
            "/rotating",
            &Entry {
                x509_ttl: Some(20),
                ..Entry::default()
            },
        )
        .await;
    let id = spire.id("/rotating");
    let w = Workdir::new();
    w.conf(&x509_conf(spire.socket(), ""));
    let mut d = w.spawn(&["-config", "helper.conf"]);

    let first = wait_for("the first SVID", SPIRE_DEADLINE, || serial_on_disk(&w)).await;
    check_x509(&w, &id);
    let second = wait_rotation(&w, &id, &first, "the first rotation").await;
    let third = wait_rotation(&w, &id, &second, "the second rotation").await;
    assert_ne!(first, third);
    // The log line follows the write: wait for it rather than race it.
    wait_for("three logged writes", SPIRE_DEADLINE, || {
        (d.logs().matches("X.509 SVID written").count() >= 3).then_some(())
    })
    .await;
    assert!(!d.logs().contains("PRIVATE KEY"));
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_refreshes_a_short_lived_jwt_svid() {
    let Some(spire) = Spire::start("daemon_refreshes_a_short_lived_jwt_svid").await else {
        return;
    };
    spire
        .entry(
            "/jwt",
            &Entry {
                jwt_ttl: Some(10),
                ..Entry::default()
            },
        )
        .await;
    let id = spire.id("/jwt");
    spire.agent.wait_x509_ids(&[&id]).await;
    let w = Workdir::new();
    w.conf(&format!(
        r#"
agent_address = "{}"
cert_dir = "certs"
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [{{ jwt_audience = "api", jwt_svid_file_name = "api.token" }}]
"#,
        spire.socket().display()
    ));
    let _d = w.spawn(&["-config", "helper.conf"]);
    let token_path = w.certs().join("api.token");
    let mut last = wait_for("the first JWT-SVID", SPIRE_DEADLINE, || {
        read_opt(&token_path).filter(|t| !t.is_empty())
    })
    .await;
    for round in 1..=2 {
        let before = last.clone();
        last = wait_for(&format!("JWT refresh {round}"), ROTATION, || {
            read_opt(&token_path).filter(|t| !t.is_empty() && *t != before)
        })
        .await;
        let old = jwt_claims(std::str::from_utf8(&before).expect("utf-8"));
        let new = jwt_claims(std::str::from_utf8(&last).expect("utf-8"));
        assert_eq!(new["sub"], id.as_str());
        assert_eq!(new["aud"], serde_json::json!(["api"]));
        let (old_exp, new_exp) = (
            old["exp"].as_i64().expect("exp"),
            new["exp"].as_i64().expect("exp"),
        );
        assert!(new_exp > old_exp, "a refresh brings a later expiry");
    }
    let bundles = jwt_bundles(&w, "certs/jwt_bundle.json");
    let kid = jwt_header(std::str::from_utf8(&last).expect("utf-8"))["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert!(kids(&bundles["a.test"]).contains(&kid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_chooses_between_two_identities() {
    let Some(spire) = Spire::start("hint_chooses_between_two_identities").await else {
        return;
    };
    for name in ["one", "two"] {
        spire
            .entry(
                &format!("/{name}"),
                &Entry {
                    hint: Some(name),
                    ..Entry::default()
                },
            )
            .await;
    }
    let (one, two) = (spire.id("/one"), spire.id("/two"));
    spire.agent.wait_x509_ids(&[&one, &two]).await;

    for (hint, id) in [("two", &two), ("one", &one)] {
        let w = Workdir::new();
        w.conf(&full_conf(
            spire.socket(),
            false,
            &format!("hint = \"{hint}\""),
        ));
        w.run(&["-config", "helper.conf"]).await.assert_success();
        check_x509(&w, id);
        let claims = jwt_claims(&w.read_string("certs/jwt.token"));
        assert_eq!(claims["sub"], id.as_str(), "hint {hint}");
    }

    // A hint no identity carries: an error naming it, nothing written.
    let w = Workdir::new();
    w.conf(&full_conf(spire.socket(), false, "hint = \"three\""));
    w.run(&["-config", "helper.conf"])
        .await
        .assert_code(1)
        .assert_stderr_contains(&["three"]);
    assert!(w.cert_listing().is_empty(), "{:?}", w.cert_listing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_started_before_its_entry_exists_waits_for_it() {
    let Some(spire) = Spire::start("oneshot_started_before_its_entry_exists_waits_for_it").await
    else {
        return;
    };
    let w = Workdir::new();
    w.conf(&full_conf(
        spire.socket(),
        false,
        "oneshot_max_wait = \"2m\"",
    ));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    // The real agent answers PermissionDenied "no identity issued": the
    // helper says so and keeps trying.
    d.wait_log(
        "has no identity for this workload yet: no registration entry matches it",
        SPIRE_DEADLINE,
    )
    .await;
    assert!(w.cert_listing().is_empty());

    spire.entry("/late", &Entry::default()).await;
    let code = d.wait_exit(SPIRE_DEADLINE).await;
    assert_eq!(code, Some(0), "{}\n{}", d.logs(), spire.logs());
    check_x509(&w, &spire.id("/late"));
    assert_eq!(
        jwt_claims(&w.read_string("certs/jwt.token"))["sub"],
        spire.id("/late").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_and_restarted_under_a_running_daemon() {
    let Some(mut spire) = Spire::start("agent_killed_and_restarted_under_a_running_daemon").await
    else {
        return;
    };
    spire
        .entry(
            "/steady",
            &Entry {
                x509_ttl: Some(30),
                ..Entry::default()
            },
        )
        .await;
    let id = spire.id("/steady");
    let w = Workdir::new();
    w.conf(&x509_conf(spire.socket(), ""));
    let d = w.spawn(&["-config", "helper.conf"]);
    let first = wait_for("the first SVID", SPIRE_DEADLINE, || serial_on_disk(&w)).await;
    check_x509(&w, &id);
    // Let the write batch finish before taking the snapshot.
    d.wait_log("X.509 SVID written", SPIRE_DEADLINE).await;
    let snapshot: Vec<Vec<u8>> = ["svid.pem", "svid_key.pem", "svid_bundle.pem"]
        .iter()
        .map(|f| w.read(&format!("certs/{f}")))
        .collect();

    // (The daemon may have reconnected before, while the entry reached
    // the agent: wait for a new line.)
    let reconnects = d.logs().matches("X.509 SVID stream: ").count();
    spire.agent.kill();
    wait_for(
        "the daemon to notice the agent is gone",
        SPIRE_DEADLINE,
        || (d.logs().matches("X.509 SVID stream: ").count() > reconnects).then_some(()),
    )
    .await;
    // The agent is gone: the files stay as they were.
    let now: Vec<Vec<u8>> = ["svid.pem", "svid_key.pem", "svid_bundle.pem"]
        .iter()
        .map(|f| w.read(&format!("certs/{f}")))
        .collect();
    assert!(now == snapshot, "files changed while the agent was down");

    spire.agent.restart().await;
    // The restarted agent mints a new SVID; the daemon picks it up without
    // a restart of its own, then keeps following rotations.
    let second = wait_rotation(&w, &id, &first, "an SVID from the restarted agent").await;
    wait_rotation(&w, &id, &second, "a rotation after the restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_bundles_are_appended_on_request() {
    let Some(mut spire) = Spire::start("federated_bundles_are_appended_on_request").await else {
        return;
    };
    spire.add_federated("b.test").await;
    spire
        .entry(
            "/federated",
            &Entry {
                federates_with: vec!["b.test"],
                ..Entry::default()
            },
        )
        .await;
    let id = spire.id("/federated");
    spire.agent.wait_x509_ids(&[&id]).await;
    let own = certs_in(spire.server.bundle_pem().await.as_bytes());
    let theirs = certs_in(spire.federated[0].bundle_pem().await.as_bytes());

    for include in [false, true] {
        let w = Workdir::new();
        w.conf(&full_conf(
            spire.socket(),
            false,
            &format!("include_federated_domains = {include}"),
        ));
        // The agent may take a sync or two to pass the federated bundle on.
        let want: Vec<Vec<u8>> = own
            .iter()
            .chain(if include { theirs.iter() } else { [].iter() })
            .map(|c| c.der.clone())
            .collect();
        let what = format!("the bundles with include_federated_domains = {include}");
        wait_until(&what, SPIRE_DEADLINE, || async {
            w.run(&["-config", "helper.conf"]).await.assert_success();
            let got: Vec<Vec<u8>> = certs_in(&w.read("certs/svid_bundle.pem"))
                .into_iter()
                .map(|c| c.der)
                .collect();
            let bundles = jwt_bundles(&w, "certs/jwt_bundle.json");
            if got == want && bundles.contains_key("b.test") {
                assert_eq!(
                    bundles.keys().collect::<Vec<_>>(),
                    ["a.test", "b.test"],
                    "the JWT bundle file holds every trust domain the agent sends"
                );
                return Ok(());
            }
            Err(format!(
                "the bundle file has {} certificates (want {}), JWT bundles for {:?}",
                got.len(),
                want.len(),
                bundles.keys().collect::<Vec<_>>()
            ))
        })
        .await;
        check_x509(&w, &id);
    }
}

// === nginx ===

fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
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

/// One GET over TLS with `openssl s_client`, presenting the certificate in
/// `client` (a copy of the helper's files): (`s_client`'s output, the
/// server's leaf).
async fn tls_get(port: u16, client: Option<&Path>) -> (String, Option<CertInfo>) {
    use tokio::io::AsyncWriteExt as _;
    let mut c = tokio::process::Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-ign_eof",
    ]);
    if let Some(dir) = client {
        c.arg("-cert")
            .arg(dir.join("svid.pem"))
            .arg("-cert_chain")
            .arg(dir.join("svid.pem"))
            .arg("-key")
            .arg(dir.join("svid_key.pem"))
            .arg("-CAfile")
            .arg(dir.join("svid_bundle.pem"));
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("openssl s_client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("s_client finished")
        .expect("s_client output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let leaf = text.find("-----BEGIN CERTIFICATE-----").and_then(|a| {
        let end = "-----END CERTIFICATE-----";
        text[a..]
            .find(end)
            .map(|b| certs_in(&text.as_bytes()[a..a + b + end.len()]).remove(0))
    });
    (text, leaf)
}

/// A consistent copy of the helper's three files for a TLS client (the
/// helper may be replacing them while they are read): the key read before
/// and after the certificate is the same and matches it.
async fn client_copy(certs: &Path, into: &Path) {
    wait_for("a consistent set of files", SPIRE_DEADLINE, || {
        let key = read_opt(&certs.join("svid_key.pem"))?;
        let svid = read_opt(&certs.join("svid.pem"))?;
        let bundle = read_opt(&certs.join("svid_bundle.pem"))?;
        let key_again = read_opt(&certs.join("svid_key.pem"))?;
        let leaf = certs_in(&svid).first()?.der.clone();
        (key == key_again && key_matches(&key, &leaf)).then_some(())?;
        std::fs::create_dir_all(into).ok()?;
        std::fs::write(into.join("svid_key.pem"), &key).ok()?;
        std::fs::write(into.join("svid.pem"), &svid).ok()?;
        std::fs::write(into.join("svid_bundle.pem"), &bundle).ok()?;
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_mutual_tls_with_spire_files_and_reloads_on_rotation() {
    let test = "nginx_serves_mutual_tls_with_spire_files_and_reloads_on_rotation";
    let Some(nginx) = find_nginx() else {
        assert!(
            !crate::common::spire::required(),
            "{test}: nginx is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: {test} (nginx is not installed)");
        return;
    };
    let Some(spire) = Spire::start(test).await else {
        return;
    };
    spire
        .entry(
            "/nginx",
            &Entry {
                x509_ttl: Some(20),
                ..Entry::default()
            },
        )
        .await;
    let id = spire.id("/nginx");

    let w = Workdir::new();
    let certs = w.certs();
    let pid_file = w.path().join("nginx.pid");
    let tls_port = crate::common::spire::free_port();
    let health_port = crate::common::spire::free_port();
    // The example files, pointed at this test's agent, directory and ports.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx");
    let helper_conf = std::fs::read_to_string(root.join("helper.conf"))
        .expect("example helper.conf")
        .replace(
            "/run/spire/agent/public/api.sock",
            &spire.socket().display().to_string(),
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
    std::fs::write(&nginx_conf_path, nginx_conf).expect("nginx.conf");

    let d = w.spawn(&["-config", "helper.conf"]);
    wait_for("the first SVID", SPIRE_DEADLINE, || serial_on_disk(&w)).await;
    d.wait_log("X.509 SVID written", SPIRE_DEADLINE).await;

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
    wait_for("nginx's pid file", SPIRE_DEADLINE, || read_opt(&pid_file)).await;

    // A client holding a copy of the helper's files is let in and sees
    // the SPIRE-issued server certificate; one without a certificate is
    // turned away.
    let client = w.path().join("client");
    let first = served(tls_port, &certs, &client, None).await;
    assert_eq!(first.spiffe_id.as_deref(), Some(id.as_str()));
    let (without, _) = tls_get(tls_port, None).await;
    assert!(without.contains("400"), "{without}");
    assert!(!without.contains("hello, SPIFFE client"), "{without}");

    // SPIRE rotates the SVID; the helper rewrites the files and signals
    // nginx through the pid file; nginx serves the new certificate, and a
    // client with the new files is still let in.
    let second = served(tls_port, &certs, &client, Some(&first.serial)).await;
    assert_eq!(second.spiffe_id.as_deref(), Some(id.as_str()));
    wait_for("a second logged signal", SPIRE_DEADLINE, || {
        (d.logs().matches("signalled process from pid file").count() >= 2).then_some(())
    })
    .await;
}

/// Polls nginx with a fresh copy of the helper's files until it answers
/// 200 with a leaf whose serial is not `not_serial`; returns that leaf.
async fn served(port: u16, certs: &Path, client: &Path, not_serial: Option<&str>) -> CertInfo {
    wait_until(
        "nginx to answer 200 with a new certificate",
        ROTATION,
        || async {
            client_copy(certs, client).await;
            let (text, leaf) = tls_get(port, Some(client)).await;
            match leaf.filter(|l| Some(l.serial.as_str()) != not_serial) {
                Some(leaf)
                    if text.contains("HTTP/1.1 200 OK")
                        && text.contains("hello, SPIFFE client") =>
                {
                    Ok(leaf)
                }
                _ => Err(text),
            }
        },
    )
    .await
}
