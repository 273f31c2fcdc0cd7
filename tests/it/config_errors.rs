//! Bad configurations and command lines through the real binary: each
//! exits non-zero, names the key and the file, and writes nothing.

use crate::common::*;

/// Runs the helper one-shot on `conf` (no agent needed: it must fail
/// before touching one) and checks the failure.
async fn rejects(conf: &str, expect: &[&str]) -> Run {
    let w = Workdir::new();
    w.conf(conf);
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1);
    let mut parts = vec!["helper.conf"];
    parts.extend_from_slice(expect);
    run.assert_stderr_contains(&parts);
    assert!(w.cert_listing().is_empty(), "wrote {:?}", w.cert_listing());
    run
}

const SVID: &str = r#"
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "key.pem"
svid_bundle_file_name = "bundle.pem"
"#;

#[tokio::test]
async fn unknown_top_level_key_names_line_and_nearest_key() {
    let conf = format!("{SVID}svid_bundle_file = \"x\"\n");
    rejects(
        &conf,
        &["svid_bundle_file", "line 6", "svid_bundle_file_name"],
    )
    .await;
}

#[tokio::test]
async fn unknown_key_inside_jwt_svids() {
    let conf = format!("{SVID}jwt_svids = [{{ jwt_audience = \"a\", jwt_svid_file = \"t\" }}]\n");
    rejects(&conf, &["jwt_svid_file", "jwt_svid_file_name"]).await;
}

#[tokio::test]
async fn syntax_error_names_line_and_column() {
    rejects(
        "cert_dir = \"certs\"\nsvid_file_name = \n= oops\n",
        &["helper.conf line 3: syntax error at line 3, column 1:"],
    )
    .await;
    // An unterminated string is reported on its own line, not the next.
    rejects(
        "cert_dir = \"certs\"\nhint = \"h\"\nsvid_file_name = \"svid.pem\ncmd = \"x\"\n",
        &["helper.conf line 3: syntax error at line 3, column 18: string not terminated"],
    )
    .await;
}

#[tokio::test]
async fn wrong_type_names_the_key() {
    let conf = format!("{SVID}daemon_mode = \"sometimes\"\n");
    rejects(&conf, &["daemon_mode"]).await;
    let conf = format!("{SVID}cert_dir = [\"a\"]\n").replace("cert_dir = \"certs\"\n", "");
    rejects(&conf, &["cert_dir"]).await;
}

#[tokio::test]
async fn partial_svid_names_are_rejected() {
    rejects(
        "svid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\n",
        &["svid_bundle_file_name"],
    )
    .await;
}

#[tokio::test]
async fn nothing_to_write_is_rejected() {
    rejects(
        "cert_dir = \"certs\"\n",
        &["svid_file_name", "jwt_svids", "jwt_bundle_file_name"],
    )
    .await;
}

#[tokio::test]
async fn jwt_svid_entry_needs_audience_and_file_name() {
    rejects(
        "jwt_svids = [{ jwt_svid_file_name = \"t\" }]\n",
        &["jwt_audience"],
    )
    .await;
    rejects(
        "jwt_svids = [{ jwt_audience = \"a\" }]\n",
        &["jwt_svid_file_name"],
    )
    .await;
}

#[tokio::test]
async fn negative_mode_and_port_are_rejected() {
    rejects(&format!("{SVID}key_file_mode = -1\n"), &["key_file_mode"]).await;
    rejects(
        &format!("{SVID}health_checks {{\n  listener_enabled = true\n  bind_port = -5\n}}\n"),
        &["health_checks.bind_port must not be negative, got -5"],
    )
    .await;
}

#[tokio::test]
async fn pid_file_rules() {
    rejects(
        &format!("{SVID}pid_file_name = \"app.pid\"\n"),
        &["renew_signal"],
    )
    .await;
    rejects(
        &format!(
            "{SVID}pid_file_name = \"app.pid\"\nrenew_signal = \"SIGHUP\"\ndaemon_mode = false\n"
        ),
        &["pid_file_name", "daemon_mode"],
    )
    .await;
}

#[tokio::test]
async fn unknown_signal_name_is_rejected_at_load_time() {
    rejects(
        &format!("{SVID}renew_signal = \"SIGBOGUS\"\n"),
        &["renew_signal", "SIGBOGUS"],
    )
    .await;
}

#[tokio::test]
async fn malformed_cmd_args_is_rejected_at_load_time() {
    rejects(
        &format!("{SVID}cmd = \"/bin/echo\"\ncmd_args = \"-c \\\"unterminated\"\n"),
        &["cmd_args"],
    )
    .await;
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let run = rejects(
        "svid_file_nam = \"a\"\nkey_file_mode = -1\npid_file_name = \"p\"\n",
        &["svid_file_nam", "key_file_mode", "renew_signal"],
    )
    .await;
    assert!(run.stderr.lines().count() >= 3, "{}", run.stderr);
}

#[tokio::test]
async fn missing_config_file_is_named() {
    let w = Workdir::new();
    let run = w.run(&["-config", "absent.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&["absent.conf"]);
}

#[tokio::test]
async fn an_endless_file_is_refused_at_the_size_limit() {
    let w = Workdir::new();
    let run = w.run(&["-config", "/dev/zero"]).await;
    run.assert_code(1).assert_stderr_contains(&[
        "cannot read configuration file /dev/zero: it is larger than 1048576 bytes (1 MiB)",
    ]);
    assert!(w.cert_listing().is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_utf8_is_named_with_the_byte() {
    let w = Workdir::new();
    std::fs::write(
        w.path().join("helper.conf"),
        b"cert_dir = \"certs\"\njwt_bundle_file_name = \"b\xff.json\"\n",
    )
    .unwrap();
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1).assert_stderr_contains(&[
        "helper.conf line 2: the file is not UTF-8 text: byte 44 (line 2, column 26) is 0xff",
    ]);
    assert!(w.cert_listing().is_empty());
}

#[tokio::test]
async fn a_nul_in_a_path_is_refused() {
    rejects(
        "cert_dir = \"certs\"\njwt_bundle_file_name = \"bundle\\x00.json\"\n",
        &["line 2: jwt_bundle_file_name contains a NUL character, which a path cannot hold"],
    )
    .await;
    rejects(
        &format!("{SVID}cmd = \"/bin/echo\"\ncmd_args = [\"a\\u0000b\"]\n"),
        &["cmd_args[0] contains a NUL character"],
    )
    .await;
}

#[tokio::test]
async fn at_most_forty_problems_are_listed() {
    let conf: String = (0..500).map(|i| format!("bogus_{i} = 1\n")).collect();
    let run = rejects(&conf, &["(501 problems)", "... and 461 more problems"]).await;
    assert!(run.stderr.contains("bogus_39"), "{}", run.stderr);
    assert!(!run.stderr.contains("bogus_40 "), "{}", run.stderr);
}

#[tokio::test]
async fn hostile_files_end_quickly_with_a_clear_error() {
    // 172 bytes that took an HCL 2 parser 13.9 s.
    let conf = format!("x = {}", "a%{b=c/".repeat(24));
    rejects(&conf, &["line 1, column 5", "bare word"]).await;
    // A 1 MB unknown key: named briefly, no suggestion worked out.
    let conf = format!("{SVID}{} = 1\n", "k".repeat(1_000_000));
    let run = rejects(&conf, &["unknown key", "(1000000 bytes in all)"]).await;
    assert!(run.stderr.len() < 2000, "{} bytes", run.stderr.len());
    // Deep nesting.
    let conf = format!("{SVID}x = {}", "[".repeat(100_000));
    rejects(&conf, &["nest more than 64 levels deep"]).await;
    // A JSON file of 50,000 keys, each an error.
    let body: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\": {i}")).collect();
    let conf = format!("{{\n{}\n}}", body.join(",\n"));
    rejects(
        &conf,
        &[
            "(50001 problems)",
            "helper.conf line 2: unknown key \"k0\"",
            "... and 49961 more problems",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_long_unsplittable_cmd_args_is_shown_in_part() {
    let args = format!("{} \\\"{}", "a".repeat(3000), "b".repeat(3000));
    let run = rejects(
        &format!("{SVID}cmd = \"/bin/echo\"\ncmd_args = \"{args}\"\n"),
        &["cmd_args cannot be split into arguments: parse error on line 1, column 6003"],
    )
    .await;
    assert!(run.stderr.len() < 2000, "{} bytes", run.stderr.len());
}

#[tokio::test]
async fn new_keys_are_checked_with_their_valid_values() {
    for (conf, expect) in [
        (
            "log_level = \"loud\"",
            "line 6: log_level must be trace, debug, info, warn, warning or error, not \"loud\"",
        ),
        (
            "log_format = \"xml\"",
            "log_format must be text or json, not \"xml\"",
        ),
        (
            "oneshot_max_wait = \"-1m\"",
            "oneshot_max_wait must not be negative, got \"-1m\"",
        ),
        (
            "cmd_exit_policy = \"exit\"",
            "cmd_exit_policy is set but cmd is not",
        ),
        (
            "cmd = \"/bin/true\"\ncmd_exit_policy = \"restart\"\ndaemon_mode = false",
            "cmd_exit_policy = \"restart\" needs daemon mode, but daemon_mode is false",
        ),
        (
            "health_checks {\n  bind_address = \"localhost\"\n}",
            "health_checks.bind_address must be an IP address",
        ),
        (
            "health_checks {\n  listener_enabled = true\n  metrics_path = \"/live\"\n}",
            "health_checks.metrics_path \"/live\" is also the liveness_path",
        ),
        (
            "health_checks {\n  status_path = \"status\"\n}",
            "health_checks.status_path must start with '/'",
        ),
    ] {
        rejects(&format!("{SVID}{conf}\n"), &[expect]).await;
    }
}

#[tokio::test]
async fn the_binary_prints_warnings_together_with_the_errors() {
    let run = rejects(
        &format!(
            "{SVID}health_checks {{\n  listner_enabled = true\n}}\nrenew_signal = \"SIGNOPE\"\n"
        ),
        &["renew_signal \"SIGNOPE\" is not a signal name"],
    )
    .await;
    assert!(
        run.stderr.contains("did you mean \"listener_enabled\"?"),
        "{}",
        run.stderr
    );
}

#[test]
fn warnings_come_with_the_errors() {
    let e = spiffe_helper::config::parse(
        &format!(
            "{SVID}health_checks {{\n  listner_enabled = true\n}}\nrenew_signal = \"SIGNOPE\"\n"
        ),
        std::path::Path::new("helper.conf"),
        None,
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(
        e.warnings(),
        ["helper.conf line 7: unknown key \"listner_enabled\" in health_checks; did you mean \"listener_enabled\"? (ignored)"]
    );
    assert!(
        e.to_string()
            .contains("renew_signal \"SIGNOPE\" is not a signal name"),
        "{e}"
    );
}
