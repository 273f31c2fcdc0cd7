//! Bad configurations and command lines through the real binary: each
//! exits non-zero, names the key and the file, and writes nothing.

mod common;

use common::*;

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
        &["line"],
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
        &format!("{SVID}health_checks {{\n  bind_port = -5\n}}\n"),
        &["bind_port"],
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
