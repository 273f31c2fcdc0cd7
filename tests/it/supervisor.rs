//! Process supervision and shutdown through the real binary: `cmd` started
//! and signalled on renewals, relaunched after it exits, pid-file processes
//! signalled, and signals forwarded on shutdown.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
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
    let what = format!("{n} line(s) in {}", p.display());
    wait_until(&what, LONG, || {
        let l = lines(p);
        std::future::ready(if l.len() >= n {
            Ok(l)
        } else {
            Err(format!("{l:?}\nhelper log:\n{}", d.logs()))
        })
    })
    .await
}

/// The helper started `cmd` `starts` times, the last time after the
/// second X.509 write: no start happened between the writes.
#[track_caller]
fn started_after_the_second_write(logs: &str, starts: usize) {
    let lines: Vec<&str> = logs.lines().collect();
    let started: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("started cmd"))
        .collect();
    let writes: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("X.509 SVID written"))
        .collect();
    assert_eq!(started.len(), starts, "{logs}");
    assert!(writes.len() >= 2, "{logs}");
    assert!(
        started[starts - 1] > writes[1],
        "started before the renewal:\n{logs}"
    );
    if starts > 1 {
        assert!(started[starts - 2] < writes[1], "{logs}");
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
    let FakeAgent { api, pki, .. } = fake_agent().await;
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
    // The signals of one supervisor arrive in order: once a fourth
    // rotation's signal is recorded, an extra one from the first three
    // would be there too.
    api.set_x509(pki.x509_update(pki.svid()));
    wait_lines(&record, 5, &d).await;
    assert_eq!(lines(&record), ["START", "HUP", "HUP", "HUP", "HUP"]);

    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(12)).await, Some(0));
    assert_eq!(lines(&record).last().map(String::as_str), Some("TERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmd_that_exits_is_started_again_at_the_next_rotation_only() {
    let FakeAgent { api, pki, .. } = fake_agent().await;
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

    api.set_x509(pki.x509_update(pki.svid()));
    wait_lines(&runs, 2, &d).await;
    // Not restarted before the renewal: its second start comes after the
    // second write.
    d.wait_log("will be started again at the next renewal", LONG)
        .await;
    started_after_the_second_write(&d.logs(), 2);
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
    let FakeAgent { api, .. } = fake_agent().await;
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
    let FakeAgent { api, .. } = fake_agent().await;
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
    let FakeAgent { api, .. } = fake_agent().await;
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

/// A shell script that records `sig` (and its start) in `rec`, ending
/// with its parent like [`recorder_script`].
fn trap_script(sig: &str, rec: &Path) -> String {
    format!(
        "trap 'echo {sig} >> {r}' {sig}; echo START >> {r}; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        r = rec.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmd_and_pid_file_set_together_are_both_signalled() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let pid_record = w.path().join("pid-record");
    let mut target = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "trap 'echo USR1 >> {r}' USR1; echo START >> {r}; while :; do sleep 0.05; done",
            r = pid_record.display()
        ))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // USR1 would kill the shell before its trap is set.
    wait_for("the pid-file process to set its trap", LONG, || {
        pid_record.exists().then_some(())
    })
    .await;
    let pid_file = w.path().join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", target.id().unwrap())).unwrap();

    let cmd_record = w.path().join("cmd-record");
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", {}]\npid_file_name = \"{}\"\nrenew_signal = \"SIGUSR1\"\n",
            serde_json::to_string(&trap_script("USR1", &cmd_record)).unwrap(),
            pid_file.display()
        ),
    ));
    api.set_x509(pki.x509_update(pki.svid()));
    let d = w.spawn(&["-config", "helper.conf"]);
    // The first renewal starts cmd and signals the pid-file process.
    assert_eq!(wait_lines(&cmd_record, 1, &d).await, ["START"]);
    assert_eq!(wait_lines(&pid_record, 2, &d).await, ["START", "USR1"]);

    // A rotation signals both.
    api.set_x509(pki.x509_update(pki.svid()));
    assert_eq!(wait_lines(&cmd_record, 2, &d).await, ["START", "USR1"]);
    assert_eq!(
        wait_lines(&pid_record, 3, &d).await,
        ["START", "USR1", "USR1"]
    );
    target.kill().await.unwrap();
}

// A pid file that never holds a pid is tried ten times on upstream's
// schedule and then given up until the next renewal: tested under paused
// time in src/supervisor.rs (through the binary it takes 51 s).

/// A `cmd` that cannot be started is logged with its path; the helper keeps
/// running and writing, and tries again at the next renewal (not before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmd_that_cannot_be_started_is_logged_and_tried_again_at_the_next_renewal() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let w = Workdir::new();
    let program = w.path().join("not-yet-there.sh");
    let record = w.path().join("record");
    w.conf(&x509_conf(
        api.socket_path(),
        &format!("cmd = \"{}\"\n", program.display()),
    ));
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    let mut d = w.spawn(&["-config", "helper.conf"]);
    d.wait_log("cannot start cmd", LONG).await;
    let logs = d.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("cannot start cmd"))
        .unwrap();
    assert!(line.contains(&program.display().to_string()), "{line}");
    assert!(line.contains("ERROR"), "{line}");
    wait_svid(&w, &first).await;

    // The program appears; nothing starts it until the next renewal.
    let tmp = w.path().join("program.tmp");
    std::fs::write(
        &tmp,
        format!("#!/bin/sh\necho ran >> {}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &program).unwrap();
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the helper keeps running"
    );

    let second = pki.svid();
    api.set_x509(pki.x509_update(second.clone()));
    wait_svid(&w, &second).await;
    assert_eq!(wait_lines(&record, 1, &d).await, ["ran"]);
    // Started by the renewal, not before it.
    started_after_the_second_write(&d.logs(), 1);
    assert_eq!(d.logs().matches("cannot start cmd").count(), 1);
}

/// `cksum` of a file, as the shell prints it.
fn cksum(p: &Path) -> String {
    let out = std::process::Command::new("cksum")
        .stdin(std::fs::File::open(p).unwrap())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Rotations faster than `cmd` handles its renew signal: it handles fewer
/// signals than there were rotations, at least one, and the last signal
/// comes after the last write, so the child's last reload sees the final
/// files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_renewals_gives_fewer_signals_and_the_last_state_is_always_signalled() {
    const ROTATIONS: usize = 10;
    let FakeAgent { api, pki, .. } = fake_agent().await;
    let w = Workdir::new();
    let record = w.path().join("record");
    let svid_path = w.certs().join("svid.pem");
    // Each reload reads the certificate, then takes 3 s.
    let script = format!(
        "trap 'cksum < {svid} >> {r}; sleep 3' HUP; echo START >> {r}; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done",
        svid = svid_path.display(),
        r = record.display()
    );
    w.conf(&x509_conf(
        api.socket_path(),
        &format!(
            "cmd = \"/bin/sh\"\ncmd_args = [\"-c\", {}]\nrenew_signal = \"SIGHUP\"\n",
            serde_json::to_string(&script).unwrap()
        ),
    ));
    let d = w.spawn(&["-config", "helper.conf"]);
    assert_eq!(wait_lines(&record, 1, &d).await, ["START"]);

    for _ in 0..ROTATIONS {
        let next = pki.svid();
        api.set_x509(pki.x509_update(next.clone()));
        wait_svid(&w, &next).await;
    }
    let last = cksum(&svid_path);
    let what = format!("the child to reload the final files ({last})");
    wait_until(&what, Duration::from_secs(60), || {
        let l = lines(&record);
        std::future::ready(if l.last() == Some(&last) {
            Ok(())
        } else {
            Err(format!("{l:?}\nhelper log:\n{}", d.logs()))
        })
    })
    .await;
    let handled = lines(&record).len() - 1;
    assert!(
        (1..ROTATIONS).contains(&handled),
        "{handled} reloads for {ROTATIONS} rotations: {:?}",
        lines(&record)
    );

    // The helper's own account: no more signals than rotations, and the
    // last one after the last write.
    let logs = d.logs();
    let sent = logs.matches("signalled cmd").count();
    assert!(
        (1..=ROTATIONS).contains(&sent),
        "{sent} signals sent:\n{logs}"
    );
    let last_write = logs.rfind("X.509 SVID written").unwrap();
    let last_signal = logs.rfind("signalled cmd").unwrap();
    assert!(
        last_signal > last_write,
        "no signal after the last write:\n{logs}"
    );
}
