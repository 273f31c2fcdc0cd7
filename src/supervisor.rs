//! Process supervision (SPEC §6): after each successful X.509 write, start
//! `cmd` or send it `renew_signal`, and signal the process named by
//! `pid_file_name`.
//!
//! One task owns the child. Renewals arrive as a sequence number on a
//! `watch` channel, so a burst of rotations coalesces into one signal and
//! the supervisor never falls behind. The child is signalled only through
//! its handle (`Child::id` is `None` once it has been reaped), so a recycled
//! pid is never signalled.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command as TokioCommand};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{Command, ProcessConfig};

/// How long a child may take to exit after the shutdown signal.
pub const CHILD_GRACE: Duration = Duration::from_secs(10);

/// pid-file signalling: tries and the first delay, doubling.
const PID_TRIES: u32 = 10;
const PID_FIRST_DELAY: Duration = Duration::from_millis(100);

/// Runs until `stop` carries a signal; then forwards it to the child, waits
/// up to [`CHILD_GRACE`] (then SIGKILL) and returns.
pub async fn run(
    cfg: ProcessConfig,
    mut renewals: watch::Receiver<u64>,
    mut stop: watch::Receiver<Option<Signal>>,
) {
    let mut child: Option<Child> = None;
    let mut pid_retry: Option<JoinHandle<()>> = None;
    let mut renewals_open = true;
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                let sig = if changed.is_ok() { *stop.borrow() } else { Some(Signal::SIGTERM) };
                if let Some(sig) = sig {
                    if let Some(h) = pid_retry.take() {
                        h.abort();
                    }
                    if let Some(c) = child.take() {
                        stop_child(c, sig).await;
                    }
                    return;
                }
            }
            status = wait(&mut child) => {
                child = None;
                log_exit(status);
            }
            changed = renewals.changed(), if renewals_open => {
                if changed.is_err() {
                    renewals_open = false;
                    continue;
                }
                renewals.borrow_and_update();
                if let Some(cmd) = &cfg.cmd {
                    renew_child(cmd, cfg.renew_signal, &mut child);
                }
                if let (Some(path), Some(sig)) = (&cfg.pid_file, cfg.renew_signal) {
                    // A new renewal supersedes a retry still under way.
                    if let Some(h) = pid_retry.take() {
                        h.abort();
                    }
                    pid_retry = Some(tokio::spawn(signal_pid_file(path.clone(), sig)));
                }
            }
        }
    }
}

/// Waits for the child to exit; pending forever when there is none.
async fn wait(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

fn log_exit(status: std::io::Result<ExitStatus>) {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => info!(
                code,
                "cmd exited; it will be started again at the next renewal"
            ),
            (None, Some(sig)) => {
                let name = Signal::try_from(sig)
                    .map_or_else(|_| sig.to_string(), |s| s.as_str().to_owned());
                info!(signal = %name, "cmd was killed by a signal; it will be started again at the next renewal");
            }
            _ => info!("cmd exited"),
        },
        Err(e) => error!("waiting for cmd failed: {e}"),
    }
}

/// Starts the child if none runs, else sends it the renew signal.
fn renew_child(cmd: &Command, sig: Option<Signal>, child: &mut Option<Child>) {
    if let Some(c) = child {
        let Some(sig) = sig else { return };
        // `id()` is None once the child has been reaped: never signal a stale pid.
        if let Some(pid) = c.id() {
            match kill(raw_pid(pid), sig) {
                Ok(()) => info!(pid, signal = sig.as_str(), "signalled cmd"),
                Err(e) => error!(pid, signal = sig.as_str(), "cannot signal cmd: {e}"),
            }
        }
        return;
    }
    let argv = std::iter::once(cmd.program.as_str()).chain(cmd.args.iter().map(String::as_str));
    let shown = shell_words::join(argv);
    let mut command = TokioCommand::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if let Some(sig) = sig {
        default_disposition_in_child(&mut command, sig);
    }
    match command.spawn() {
        Ok(c) => {
            info!(pid = c.id().unwrap_or(0), argv = %shown, "started cmd");
            *child = Some(c);
        }
        Err(e) => error!(argv = %shown, "cannot start cmd: {e}"),
    }
}

/// Gives `sig` its default disposition in the child. A signal ignored by
/// the helper's own parent (`nohup` ignores SIGHUP, and so may a service
/// manager or CI runner) stays ignored across `exec`, and a POSIX shell
/// cannot even trap a signal that was ignored when it started: `cmd` would
/// never see its renew signal. Caught signals are reset by `exec` anyway,
/// so only that case changes.
fn default_disposition_in_child(command: &mut TokioCommand, sig: Signal) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    // Neither can be caught or ignored, and sigaction(2) refuses them.
    if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
        return;
    }
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: sigaction(2) is one, and this
    // closure neither allocates nor takes locks. Setting SIG_DFL installs
    // no handler, so no Rust code can run from a signal.
    #[allow(
        unsafe_code,
        reason = "pre_exec is the only way to reset a signal disposition between fork and exec"
    )]
    unsafe {
        command.pre_exec(move || sigaction(sig, &dfl).map(drop).map_err(std::io::Error::from));
    }
}

/// A child's pid as the kernel's signed type (pids never exceed
/// `pid_max`, at most 2^22, so the conversion cannot fail in practice).
fn raw_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Sends `sig` to the child, waits for it up to the grace period, then
/// kills it.
async fn stop_child(mut c: Child, sig: Signal) {
    if let Some(pid) = c.id() {
        info!(
            pid,
            signal = sig.as_str(),
            "forwarding shutdown signal to cmd"
        );
        let _ = kill(raw_pid(pid), sig);
    }
    if let Ok(status) = tokio::time::timeout(CHILD_GRACE, c.wait()).await {
        log_exit(status);
    } else {
        warn!(
            "cmd did not exit within {}s; killing it",
            CHILD_GRACE.as_secs()
        );
        let _ = c.kill().await;
    }
}

/// Reads the pid file and signals that process, retrying on failure.
async fn signal_pid_file(path: PathBuf, sig: Signal) {
    let mut delay = PID_FIRST_DELAY;
    for attempt in 1..=PID_TRIES {
        match signal_pid_once(&path, sig) {
            Ok(pid) => {
                info!(pid, signal = sig.as_str(), pid_file = %path.display(), "signalled process from pid file");
                return;
            }
            Err(e) if attempt == PID_TRIES => {
                error!(pid_file = %path.display(), "giving up signalling after {PID_TRIES} tries: {e}");
                return;
            }
            Err(e) => {
                warn!(pid_file = %path.display(), "{e}; retrying in {} ms", delay.as_millis());
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}

fn signal_pid_once(path: &Path, sig: Signal) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read pid file: {e}"))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid file does not hold a process id: {:?}", text.trim()))?;
    if pid <= 0 {
        return Err(format!("pid file holds an invalid process id {pid}"));
    }
    kill(Pid::from_raw(pid), sig).map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_must_hold_a_positive_decimal_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.pid");
        assert!(signal_pid_once(&p, Signal::SIGCONT)
            .unwrap_err()
            .contains("cannot read"));
        std::fs::write(&p, "abc").unwrap();
        assert!(signal_pid_once(&p, Signal::SIGCONT)
            .unwrap_err()
            .contains("\"abc\""));
        std::fs::write(&p, "0\n").unwrap();
        assert!(signal_pid_once(&p, Signal::SIGCONT).is_err());
        // Our own pid, with surrounding whitespace; SIGCONT is harmless.
        std::fs::write(&p, format!("  {}\n", std::process::id())).unwrap();
        assert_eq!(
            signal_pid_once(&p, Signal::SIGCONT).unwrap(),
            i32::try_from(std::process::id()).unwrap()
        );
    }
}
