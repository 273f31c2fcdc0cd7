//! One-shot mode through the real binary against the fake Workload API:
//! exact file bytes and modes, layout options, hints, retries, endpoints.

use std::time::Duration;

use crate::common::*;

/// `common::x509_conf` in one-shot mode.
fn oneshot_conf(socket: &std::path::Path, extra: &str) -> String {
    x509_conf(socket, &format!("daemon_mode = false\n{extra}"))
}

async fn agent_with_default_svid() -> (FakeWorkloadApi, Pki, Svid) {
    let FakeAgent {
        api,
        pki,
        first: svid,
    } = fake_agent().await;
    (api, pki, svid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_svid_key_and_bundle_with_exact_bytes_and_default_modes() {
    let (api, pki, svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), ""));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success();

    assert_eq!(
        w.read_string("certs/svid.pem"),
        pem_certs(&[svid.leaf_der(), &pki.intermediate.cert_der()])
    );
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &svid.key_pkcs8)
    );
    assert_eq!(
        w.read_string("certs/svid_bundle.pem"),
        pem_certs(&[&pki.root.cert_der()])
    );
    assert_eq!(w.mode("certs/svid.pem"), 0o644);
    assert_eq!(w.mode("certs/svid_bundle.pem"), 0o644);
    assert_eq!(w.mode("certs/svid_key.pem"), 0o600);
    assert_eq!(
        w.cert_listing(),
        ["svid.pem", "svid_bundle.pem", "svid_key.pem"],
        "no temporary file may be left behind"
    );
    run.assert_stderr_contains(&["spiffe://example.org/workload"]);
    assert!(!run.stderr.contains("PRIVATE KEY"), "key material in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_are_read_as_go_hcl_reads_them_and_applied_exactly() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    // 0640 is octal; 420 is decimal (= 0644); "0400" is a quoted octal.
    w.conf(&oneshot_conf(
        api.socket_path(),
        "cert_file_mode = 0640\nkey_file_mode = \"0400\"\n",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(w.mode("certs/svid.pem"), 0o640);
    assert_eq!(w.mode("certs/svid_bundle.pem"), 0o640);
    assert_eq!(w.mode("certs/svid_key.pem"), 0o400);

    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), "cert_file_mode = 420\n"));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(w.mode("certs/svid.pem"), 0o644);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_without_leading_zero_that_looks_octal_is_warned_about() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), "cert_file_mode = 644\n"));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success()
        .assert_stderr_contains(&["cert_file_mode", "0204", "0644"]);
    // Decimal 644 is 0o1204; as in the Go helper only the permission bits
    // reach the file.
    assert_eq!(w.mode("certs/svid.pem"), 0o204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wider_existing_key_file_is_replaced_with_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let (api, _pki, svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    let key = w.certs().join("svid_key.pem");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
    w.conf(&oneshot_conf(api.socket_path(), ""));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(w.mode("certs/svid_key.pem"), 0o600);
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &svid.key_pkcs8)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermediates_and_federated_roots_go_to_the_bundle_when_asked() {
    let (api, pki, svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&oneshot_conf(
        api.socket_path(),
        "add_intermediates_to_bundle = true\ninclude_federated_domains = true\n",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.read_string("certs/svid.pem"),
        pem_certs(&[svid.leaf_der()])
    );
    assert_eq!(
        w.read_string("certs/svid_bundle.pem"),
        pem_certs(&[
            &pki.root.cert_der(),
            &pki.intermediate.cert_der(),
            &pki.federated.cert_der()
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omit_expired_drops_an_expired_root_from_the_bundle() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let svid = pki.svid();
    let old = Ca::expired_root("example.org");
    let mut update = pki.x509_update(svid.clone());
    update.svids[0].1 = vec![old.cert_der(), pki.root.cert_der()];
    api.set_x509(update);

    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), ""));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.read_string("certs/svid_bundle.pem"),
        pem_certs(&[&old.cert_der(), &pki.root.cert_der()])
    );

    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), "omit_expired = true\n"));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.read_string("certs/svid_bundle.pem"),
        pem_certs(&[&pki.root.cert_der()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hint_selects_the_x509_and_jwt_svid() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let first = pki.svid().with_hint("external");
    let second = pki
        .intermediate
        .issue_svid("spiffe://example.org/internal", Duration::from_secs(3600))
        .with_hint("internal");
    let mut update = pki.x509_update(first);
    update
        .svids
        .push((second.clone(), vec![pki.root.cert_der()]));
    api.set_x509(update);
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![
            ("spiffe://example.org/external".into(), "external".into()),
            ("spiffe://example.org/internal".into(), "internal".into()),
        ],
        Duration::from_secs(600),
    );

    let w = Workdir::new();
    w.conf(&oneshot_conf(
        api.socket_path(),
        r#"hint = "internal"
jwt_svids = [{ jwt_audience = "db", jwt_svid_file_name = "db.token" }]"#,
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(
        w.read_string("certs/svid.pem"),
        pem_certs(&[second.leaf_der(), &pki.intermediate.cert_der()])
    );
    let claims = jwt_claims(&w.read_string("certs/db.token"));
    assert_eq!(claims["sub"], "spiffe://example.org/internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hint_fails_naming_it_and_writes_nothing() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&oneshot_conf(
        api.socket_path(),
        "hint = \"missing-hint\"\n",
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&["missing-hint"]);
    assert!(w.cert_listing().is_empty(), "{:?}", w.cert_listing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_svids_and_bundle_are_written_with_all_audiences() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let federated_jwt = JwtIssuer::new("federated.test", "fed-key");
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    api.set_jwt_bundles(vec![
        ("example.org".into(), pki.jwt.jwks_json()),
        ("federated.test".into(), federated_jwt.jwks_json()),
    ]);
    let w = Workdir::new();
    w.conf(&format!(
        r#"
agent_address = "{}"
cert_dir = "certs"
daemon_mode = false
jwt_bundle_file_name = "bundle.json"
jwt_bundle_file_mode = 0640
jwt_svids = [
  {{ jwt_audience = "db", jwt_extra_audiences = ["cache", "queue"], jwt_svid_file_name = "db.token" }},
  {{ jwt_audience = "web", jwt_svid_file_name = "web.token" }},
]
"#,
        api.socket_path().display()
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success();

    let db = w.read_string("certs/db.token");
    assert!(!db.ends_with('\n'));
    assert_eq!(db.split('.').count(), 3);
    let claims = jwt_claims(&db);
    assert_eq!(claims["sub"], "spiffe://example.org/workload");
    assert_eq!(claims["aud"], serde_json::json!(["db", "cache", "queue"]));
    assert_eq!(
        jwt_claims(&w.read_string("certs/web.token"))["aud"],
        serde_json::json!(["web"])
    );
    assert_eq!(w.mode("certs/db.token"), 0o600);
    // Sent side by side over the one connection, so in any order.
    let mut requests = api.jwt_requests();
    requests.sort();
    assert_eq!(
        requests,
        vec![
            vec!["db".to_owned(), "cache".to_owned(), "queue".to_owned()],
            vec!["web".to_owned()]
        ]
    );

    let bundle: serde_json::Value =
        serde_json::from_str(&w.read_string("certs/bundle.json")).unwrap();
    assert_eq!(w.mode("certs/bundle.json"), 0o640);
    let obj = bundle.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["example.org", "federated.test"]
    );
    for (td, issuer) in [
        ("example.org", &pki.jwt),
        ("federated.test", &federated_jwt),
    ] {
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            obj[td].as_str().unwrap(),
        )
        .unwrap();
        let got: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let mut want: serde_json::Value = serde_json::from_slice(&issuer.jwks_json()).unwrap();
        // As the Go helper writes it: without `use`.
        for k in want["keys"].as_array_mut().unwrap() {
            k.as_object_mut().unwrap().remove("use");
        }
        assert_eq!(got["keys"], want["keys"], "{td}");
    }
    for token in [db, w.read_string("certs/web.token")] {
        assert!(!run.stderr.contains(&token), "a JWT reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_denied_is_retried_until_the_identity_is_issued() {
    let (api, _pki, svid) = agent_with_default_svid().await;
    api.deny_next(3);
    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), ""));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success()
        .assert_stderr_contains(&["retrying in"]);
    assert!(w
        .read_string("certs/svid.pem")
        .starts_with(&pem_certs(&[svid.leaf_der()])));
    assert_eq!(api.calls("FetchX509SVID"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_starts_late_is_waited_for() {
    let sockdir = tempfile::tempdir().unwrap();
    let socket = sockdir.path().join("agent.sock");
    let w = Workdir::new();
    w.conf(&oneshot_conf(&socket, ""));
    let child = w.command(&["-config", "helper.conf"]).output();
    let starter = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let api = FakeWorkloadApi::start_at(&socket).await;
        let pki = Pki::new();
        api.set_x509(pki.x509_update(pki.svid()));
        api
    };
    let (out, _api) = tokio::join!(child, starter);
    let run = Run::from(out.unwrap());
    run.assert_success()
        .assert_stderr_contains(&["does not exist: is the SPIRE agent running", "retrying in"]);
    assert!(w.exists("certs/svid.pem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_never_comes_gives_up_with_the_reason() {
    let w = Workdir::new();
    w.conf(&oneshot_conf(
        &w.path().join("no-agent.sock"),
        "oneshot_max_wait = \"3s\"",
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&[
        "gave up after waiting",
        "oneshot_max_wait",
        "agent socket",
        "no-agent.sock does not exist: is the SPIRE agent running",
    ]);
    assert!(w.cert_listing().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_answers_are_retried() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    api.unavailable_next(2);
    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), ""));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert!(w.exists("certs/svid.pem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_address_forms_and_the_environment_variable() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let path = api.socket_path().display().to_string();
    for addr in [
        path.clone(),
        format!("unix://{path}"),
        format!("unix:{path}"),
    ] {
        let w = Workdir::new();
        w.conf(&oneshot_conf(std::path::Path::new(&addr), ""));
        w.run(&["-config", "helper.conf"]).await.assert_success();
        assert!(w.exists("certs/svid.pem"), "{addr}");
    }
    let no_address = r#"
cert_dir = "certs"
daemon_mode = false
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
"#;
    for env in [
        path.clone(),
        format!("unix://{path}"),
        format!("unix:{path}"),
    ] {
        let w = Workdir::new();
        w.conf(no_address);
        let mut c = w.command(&["-config", "helper.conf"]);
        c.env("SPIFFE_ENDPOINT_SOCKET", &env);
        w.run_cmd(c).await.assert_success();
        assert!(w.exists("certs/svid.pem"), "{env}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cert_dir_is_a_write_error_naming_it() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&oneshot_conf(api.socket_path(), "").replace("\"certs\"", "\"nowhere\""));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&["nowhere"]);
    assert!(!w.exists("nowhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_configuration_is_accepted() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(&format!(
        r#"{{
  "agent_address": "{}",
  "cert_dir": "certs",
  "daemon_mode": false,
  "svid_file_name": "svid.pem",
  "svid_key_file_name": "svid_key.pem",
  "svid_bundle_file_name": "svid_bundle.pem",
  "key_file_mode": "0640"
}}"#,
        api.socket_path().display()
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    assert_eq!(w.mode("certs/svid_key.pem"), 0o640);
}

/// `cmd` and `renew_signal` are ignored in one-shot mode. The same
/// configuration is first run in daemon mode, to show that its `cmd` does
/// leave a mark when it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_and_renew_signal_are_ignored_with_a_warning_in_one_shot_mode() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    let mark = w.path().join("ran");
    w.conf(&oneshot_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/touch\"\ncmd_args = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
            mark.display()
        ),
    ));

    let mut d = w.spawn(&["-config", "helper.conf", "-daemon-mode=true"]);
    wait_for("cmd to run in daemon mode", Duration::from_secs(20), || {
        mark.exists().then_some(())
    })
    .await;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).await, Some(0));
    std::fs::remove_file(&mark).unwrap();
    for f in w.cert_listing() {
        std::fs::remove_file(w.certs().join(f)).unwrap();
    }

    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_success()
        .assert_stderr_contains(&["cmd", "renew_signal", "daemon_mode"]);
    assert!(w.exists("certs/svid.pem"));
    // The helper has exited, so its log is complete: a cmd it started
    // would be in it.
    assert!(!run.stderr.contains("started cmd"), "{}", run.stderr);
    assert!(!mark.exists(), "cmd must not run in one-shot mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_mode_flag_overrides_the_file() {
    let (api, _pki, _svid) = agent_with_default_svid().await;
    let w = Workdir::new();
    w.conf(
        &oneshot_conf(api.socket_path(), "").replace("daemon_mode = false", "daemon_mode = true"),
    );
    for args in [
        &["-config", "helper.conf", "-daemon-mode=false"][..],
        &["--config=helper.conf", "--daemon-mode=false"][..],
    ] {
        let _ = std::fs::remove_file(w.certs().join("svid.pem"));
        w.run(args).await.assert_success();
        assert!(w.exists("certs/svid.pem"), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_x509_fetch_writes_nothing_at_all() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    // The X.509 SVID carries the hint; no JWT SVID does.
    api.set_x509(pki.x509_update(pki.svid().with_hint("internal")));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), "external".into())],
        Duration::from_secs(600),
    );
    let w = Workdir::new();
    w.conf(&oneshot_conf(
        api.socket_path(),
        "hint = \"internal\"\njwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }]\n",
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&["internal"]);
    assert_eq!(api.calls("FetchX509SVID"), 1, "the X.509 SVID was fetched");
    assert!(w.cert_listing().is_empty(), "{:?}", w.cert_listing());
}

#[tokio::test]
async fn diagnostics_say_what_to_do() {
    // No identity: the uid, gid and pid the agent attests, and the command
    // that lists the entries for that uid.
    let api = FakeWorkloadApi::start().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "daemon_mode = false\noneshot_max_wait = \"1s\"\nkey_file_mode = 644\n",
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    let uid = nix::unistd::getuid();
    run.assert_code(1).assert_stderr_contains(&[
        &format!("the agent attests this process as uid {uid}, gid {}", nix::unistd::getgid()),
        &format!("`spire-server entry show -selector unix:uid:{uid}`"),
        // A key mode that lets others read the key is pointed out at load.
        "key_file_mode gives the private key mode 0204 (-w----r--): private key material will be readable by users other than its owner",
    ]);
}
