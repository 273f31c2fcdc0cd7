//! Command-line forms, Go `flag` style, through the real binary.

mod common;

use common::*;

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
