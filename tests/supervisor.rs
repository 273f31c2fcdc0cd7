//! Process supervision and shutdown through the real binary: `cmd` started
//! and signalled on renewals, relaunched after it exits, pid-file processes
//! signalled, and signals forwarded on shutdown.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(20);

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Waits for `p` to hold `n` lines; on a timeout the panic shows the
/// file and the helper's log.
async fn wait_lines(p: &Path, n: usize, d: &Daemon) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let l = lines(p);
        if l.len() >= n {
            return l;
        }
        assert!(
            start.elapsed() < LONG,
            "timed out waiting for {n} line(s) in {}: {l:?}\nhelper log:\n{}",
            p.display(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A shell script that records its start and every HUP/TERM/INT it
/// receives; it also ends when its parent (the helper) is gone, so a failed
/// test leaves no process behind.
fn recorder_script(dir: &Path) -> String {
    let rec = dir.join("record");
    format!(
        "trap 'echo HUP >> {r}' HUP; trap 'echo TERM >> {r}; exit 0' TERM; trap 'echo INT >> {r}; exit 0' INT; echo START >> {r}; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        r = rec.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_starts_once_and_gets_exactly_one_signal_per_rotation() {
    one_signal_per_rotation(&[]).await;
}

/// Under `nohup` the helper starts with SIGHUP ignored, which a child would
/// inherit, and a shell cannot trap an inherited ignored signal: the helper
/// must hand `cmd` its renew signal with the default disposition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_can_trap_the_renew_signal_even_when_the_helper_runs_under_nohup() {
    one_signal_per_rotation(&["nohup"]).await;
}

async fn one_signal_per_rotation(wrapper: &[&str]) {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let w = Workdir::new();
    let script = recorder_script(w.path());
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", {}]\nrenew_signal = \"SIGHUP\"\n",
            serde_json::to_string(&script).unwrap()
        ),
    ));
    let mut d = w.spawn_under(wrapper, &["-config", "helper.conf"]);
    let record = w.path().join("record");
    assert_eq!(wait_lines(&record, 1, &d).await, ["START"]);

    for n in 1..=3 {
        api.set_x509(pki.x509_update(pki.svid()));
        let got = wait_lines(&record, 1 + n, &d).await;
        assert_eq!(got.iter().filter(|l| *l == "HUP").count(), n, "{got:?}");
    }
    // Give any extra signal time to show up, then check there was none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&record), ["START", "HUP", "HUP", "HUP"]);

    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(12)).await, Some(0));
    assert_eq!(lines(&record).last().map(String::as_str), Some("TERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmd_that_exits_is_started_again_at_the_next_rotation_only() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let w = Workdir::new();
    let runs = w.path().join("runs");
    // The upstream string form: double quotes group words.
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = \"-c \\\"echo run >> {}; exit 3\\\"\"\nrenew_signal = \"SIGHUP\"\n",
            runs.display()
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    wait_lines(&runs, 1, &d).await;
    d.wait_log("exited", LONG).await;
    assert!(d.logs().contains('3'), "exit code logged:\n{}", d.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&runs).len(), 1, "not restarted before a renewal");

    api.set_x509(pki.x509_update(pki.svid()));
    wait_lines(&runs, 2, &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pid_file_process_is_signalled_even_when_the_pid_file_appears_late() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let pid_file = w.path().join("app.pid");
    let record = w.path().join("record");
    let ready = w.path().join("ready");
    let mut target = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "trap 'echo USR1 >> {}' USR1; echo ready > {}; while :; do sleep 0.05; done",
            record.display(),
            ready.display()
        ))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // USR1 would kill the shell before its trap is set.
    wait_for("the pid-file process to set its trap", LONG, || {
        ready.exists().then_some(())
    })
    .await;
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "pid_file_name = \"{}\"\nrenew_signal = \"SIGUSR1\"\n",
            pid_file.display()
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    // First renewal with no pid file yet: the helper retries.
    api.set_x509(pki.x509_update(pki.svid()));
    d.wait_log("retrying in", LONG).await;
    std::fs::write(&pid_file, format!("{}\n", target.id().unwrap())).unwrap();
    assert_eq!(wait_lines(&record, 1, &d).await, ["USR1"]);

    // Every later renewal reads the file again.
    api.set_x509(pki.x509_update(pki.svid()));
    assert_eq!(wait_lines(&record, 2, &d).await, ["USR1", "USR1"]);
    target.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_is_forwarded_to_the_child_and_the_helper_exits_zero() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let w = Workdir::new();
    let script = recorder_script(w.path());
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", {}]\n",
            serde_json::to_string(&script).unwrap()
        ),
    ));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    let record = w.path().join("record");
    wait_lines(&record, 1, &d).await;
    d.signal(Signal::SIGINT);
    assert_eq!(d.wait_exit(Duration::from_secs(12)).await, Some(0));
    assert_eq!(lines(&record), ["START", "INT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_child_sigterm_exits_zero_promptly() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let w = Workdir::new();
    w.conf(&x509_conf(api.socket_path(), ""));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    wait_for("the SVID", LONG, || read_opt(&w.certs().join("svid.pem"))).await;
    d.signal(Signal::SIGTERM);
    // Generous deadline for a loaded machine; the figure itself is benchmarked.
    assert_eq!(d.wait_exit(Duration::from_secs(5)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_ignoring_the_signal_is_killed_after_the_grace_period() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    let w = Workdir::new();
    let started = w.path().join("started");
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"trap '' TERM; echo up > {}; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done\"]\n",
            started.display()
        ),
    ));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    wait_lines(&started, 1, &d).await;
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).await, Some(0));
    assert!(d.logs().contains("killing it"), "{}", d.logs());
}
