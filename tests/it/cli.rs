//! Command-line forms, Go `flag` style, through the real binary.

use crate::common::*;

#[tokio::test]
async fn version_prints_the_version_and_exits_zero() {
    let w = Workdir::new();
    for flag in ["-version", "--version"] {
        let run = w.run(&[flag]).await;
        run.assert_success();
        assert_eq!(run.stdout.trim(), env!("CARGO_PKG_VERSION").to_owned());
    }
}

#[tokio::test]
async fn help_prints_usage_naming_every_flag_and_exits_zero() {
    let w = Workdir::new();
    for flag in ["-help", "-h", "--help"] {
        let run = w.run(&[flag]).await;
        run.assert_success();
        for f in ["-config", "-daemon-mode", "-version"] {
            assert!(
                run.stdout.contains(f),
                "{flag}: usage lacks {f}:\n{}",
                run.stdout
            );
        }
    }
}

#[tokio::test]
async fn unknown_flag_prints_usage_and_exits_two() {
    let w = Workdir::new();
    let run = w.run(&["-frobnicate"]).await;
    run.assert_code(2)
        .assert_stderr_contains(&["frobnicate", "-config"]);
}

#[tokio::test]
async fn config_defaults_to_helper_conf_in_the_working_directory() {
    let w = Workdir::new();
    // No helper.conf here: the error names the default file.
    let run = w.run(&[]).await;
    run.assert_code(1).assert_stderr_contains(&["helper.conf"]);
}

#[tokio::test]
async fn every_config_flag_form_reads_the_named_file() {
    let w = Workdir::new();
    // An invalid file, so each form proves which file it read by failing on it.
    std::fs::write(w.path().join("x.conf"), "bogus_key = 1\n").unwrap();
    for args in [
        &["-config", "x.conf"][..],
        &["--config", "x.conf"][..],
        &["-config=x.conf"][..],
        &["--config=x.conf"][..],
    ] {
        let run = w.run(args).await;
        run.assert_code(1)
            .assert_stderr_contains(&["x.conf", "bogus_key"]);
    }
}

#[tokio::test]
async fn bad_boolean_for_daemon_mode_is_a_usage_error() {
    let w = Workdir::new();
    let run = w.run(&["-daemon-mode=maybe"]).await;
    run.assert_code(2).assert_stderr_contains(&["daemon-mode"]);
}

/// `-check` in `w`: (exit code, the JSON document, stderr).
async fn check(w: &Workdir) -> (Option<i32>, serde_json::Value, String) {
    let run = w.run(&["-check", "-config", "helper.conf"]).await;
    let doc = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run.code, doc, run.stderr)
}

#[tokio::test]
async fn check_prints_the_effective_configuration_without_contacting_the_agent() {
    let api = FakeWorkloadApi::start().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        "cmd = \"sh\"\ncmd_args = \"-c \\\"echo hi\\\"\"\njwt_bundle_file_name = \"./sub/../b.json\"\n",
    ));
    let (code, doc, _) = check(&w).await;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["valid"], true);
    let e = &doc["effective"];
    assert_eq!(e["x509"]["svid_file"]["path"], "certs/svid.pem");
    assert_eq!(e["x509"]["svid_key_file"]["mode"], "0600");
    assert_eq!(e["jwt_bundle_file"]["path"], "certs/b.json");
    assert_eq!(e["cmd"]["args"], serde_json::json!(["-c", "echo hi"]));
    assert_eq!(e["agent_socket"], api.socket_path().display().to_string());
    assert_eq!(doc["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!doc["build"]["commit"].as_str().unwrap().is_empty());
    // Nothing was asked of the agent, nothing was written.
    assert_eq!(api.calls("FetchX509SVID") + api.connections(), 0);
    assert!(w.cert_listing().is_empty());
}

#[tokio::test]
async fn check_names_what_the_environment_lacks() {
    let w = Workdir::new();
    // The health port taken by someone else, on the address configured.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::os::unix::fs::symlink("/tmp", w.certs().join("bundles")).unwrap();
    w.conf(&format!(
        "cert_dir = \"missing\"\nsvid_file_name = \"s.pem\"\nsvid_key_file_name = \"k.pem\"\nsvid_bundle_file_name = \"b.pem\"\ncmd = \"no-such-program-anywhere\"\n{}",
        health_conf(port, "  bind_address = \"127.0.0.1\"\n")
    ));
    let (code, doc, _) = check(&w).await;
    assert_eq!(code, Some(1));
    let problems = doc["problems"].to_string();
    for part in [
        "cert_dir missing",
        "no-such-program-anywhere",
        "not found in PATH",
        "cannot listen on 127.0.0.1",
    ] {
        assert!(problems.contains(part), "{part}: {problems}");
    }
    w.conf("cert_dir = \"certs\"\ntrust_bundles_dir = \"bundles\"\n");
    let (code, doc, _) = check(&w).await;
    assert_eq!(code, Some(1));
    assert!(
        doc["problems"].to_string().contains("is a symbolic link"),
        "{doc:#}"
    );
    // An invalid file is a problem too, and says why.
    w.conf("cert_dir = \"certs\"\nbogus = 1\n");
    let (code, doc, stderr) = check(&w).await;
    assert_eq!(code, Some(1));
    assert_eq!(doc["valid"], false);
    assert!(stderr.contains("bogus"), "{stderr}");
}

#[tokio::test]
async fn arguments_left_after_the_flags_are_named_in_a_warning() {
    let w = Workdir::new();
    w.conf(&x509_conf(
        std::path::Path::new("/nonexistent.sock"),
        "bogus = 1",
    ));
    let run = w
        .run(&["-daemon-mode", "false", "-config", "helper.conf"])
        .await;
    // As Go: parsing stopped at "false", so helper.conf was read by default.
    run.assert_code(1).assert_stderr_contains(&[
        "arguments after the flags are ignored: false -config helper.conf",
        "write -daemon-mode=false",
    ]);
}

/// `-check` with `env` set (`args` before `-check`).
async fn check_env(
    w: &Workdir,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-check", "-config", "helper.conf"]);
    let mut c = w.command(&all);
    for (k, v) in env {
        c.env(k, v);
    }
    let run = w.run_cmd(c).await;
    let doc = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run.code, doc, run.stderr)
}

#[tokio::test]
async fn spiffe_hlp_variables_override_the_file_and_check_says_where_values_came_from() {
    let w = Workdir::new();
    std::fs::create_dir(w.path().join("other")).unwrap();
    w.conf(&x509_conf(
        std::path::Path::new("/run/agent.sock"),
        "key_file_mode = 0600\n",
    ));
    let (code, doc, stderr) = check_env(
        &w,
        &[],
        &[
            ("SPIFFE_HLP_CERT_DIR", "other"),
            ("SPIFFE_HLP_KEY_FILE_MODE", "0640"),
            ("SPIFFE_HLP_OMIT_EXPIRED", "true"),
            ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "9123"),
            (
                "SPIFFE_HLP_JWT_SVIDS",
                "[{ jwt_audience = \"db\", jwt_svid_file_name = \"db.jwt\" }]",
            ),
            ("SPIFFE_HLP_CERTDIR", "typo"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{doc:#}\n{stderr}");
    let e = &doc["effective"];
    assert_eq!(e["cert_dir"], "other");
    assert_eq!(
        e["x509"]["svid_key_file"],
        serde_json::json!({"path": "other/svid_key.pem", "mode": "0640"})
    );
    assert_eq!(e["x509"]["omit_expired"], true);
    assert_eq!(e["health_checks"]["bind_port"], 9123);
    assert_eq!(e["jwt_svids"][0]["file"]["path"], "other/db.jwt");
    let s = &doc["sources"];
    assert_eq!(s["cert_dir"], "environment");
    assert_eq!(s["key_file_mode"], "environment");
    assert_eq!(s["svid_file_name"], "file");
    assert_eq!(s["cert_file_mode"], "default");
    assert_eq!(s["health_checks.bind_port"], "environment");
    // A variable that names no key: a warning naming the nearest.
    assert!(
        doc["warnings"].to_string().contains("SPIFFE_HLP_CERTDIR names no configuration key and is ignored; did you mean SPIFFE_HLP_CERT_DIR?"),
        "{doc:#}"
    );
    // A bad value names the variable.
    let (code, doc, _) = check_env(&w, &[], &[("SPIFFE_HLP_KEY_FILE_MODE", "rw")]).await;
    assert_eq!(code, Some(1));
    assert!(
        doc["problems"]
            .to_string()
            .contains("environment variable SPIFFE_HLP_KEY_FILE_MODE: "),
        "{doc:#}"
    );
    // The flag wins over the environment.
    let (_, doc, _) = check_env(
        &w,
        &["-daemon-mode=false"],
        &[("SPIFFE_HLP_DAEMON_MODE", "true")],
    )
    .await;
    assert_eq!(doc["effective"]["daemon_mode"], false);
    assert_eq!(doc["sources"]["daemon_mode"], "command line");
}

#[tokio::test]
async fn expand_env_replaces_variables_in_the_file_before_it_is_read() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(
        "agent_address = \"${AGENT_SOCKET}\"\ncert_dir = \"$CERTS\"\ndaemon_mode = false\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"\ncmd_args = \"$UNSET_VARIABLE\"\n",
    );
    let socket = api.socket_path().display().to_string();
    let mut c = w.command(&["-expandEnv", "-config", "helper.conf"]);
    c.env("AGENT_SOCKET", &socket).env("CERTS", "certs");
    w.run_cmd(c).await.assert_success();
    assert_eq!(w.cert_listing(), ["bundle.pem", "key.pem", "svid.pem"]);
    // Without the flag the text is read as written (HCL v1 has no templates).
    let (_, doc, _) = check_env(&w, &[], &[("CERTS", "certs")]).await;
    assert_eq!(doc["effective"]["cert_dir"], "$CERTS");
}
