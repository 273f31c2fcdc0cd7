//! Process supervision (docs/modes.md, "Starting or signalling your
//! program"): after each successful X.509 write, start `cmd` or send it `renew_signal`, and signal the process named by
//! `pid_file_name`; when `cmd` exits, follow `cmd_exit_policy`.
//!
//! One task owns the child. Renewals arrive as a sequence number on a
//! `watch` channel, so a burst of rotations coalesces into one signal and
//! the supervisor never falls behind. The child is signalled only through
//! its handle (`Child::id` is `None` once it has been reaped), so a recycled
//! pid is never signalled.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command as TokioCommand};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::config::{Command, ExitPolicy, ProcessConfig};
use crate::events::{Events, Target};

/// How long a child may take to exit after the shutdown signal.
pub const CHILD_GRACE: Duration = Duration::from_secs(10);

/// pid-file signalling: tries and the first delay, doubling.
const PID_TRIES: u32 = 10;
const PID_FIRST_DELAY: Duration = Duration::from_millis(100);

/// `cmd_exit_policy = "restart"`: the delays, and how long a child must
/// have run for the next crash to start from the first delay again.
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

/// The exit code of a shell for a program that cannot be found or run.
const EXIT_CANNOT_RUN: u8 = 127;

/// The argv as the log shows it, quoted unambiguously.
pub fn shown(cmd: &Command) -> String {
    shell_words::join(
        std::iter::once(cmd.program.as_str()).chain(cmd.args.iter().map(String::as_str)),
    )
}

/// How the supervisor ended, for the helper's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped by the shutdown signal.
    Stopped {
        /// With `cmd_exit_policy = "exit"`, the child's exit code.
        child_code: Option<u8>,
    },
    /// `cmd_exit_policy = "exit"` and the child exited by itself.
    ChildExited(u8),
}

/// Runs until `stop` carries a signal (then forwards it to the child, waits
/// up to [`CHILD_GRACE`], then SIGKILL) or, with `cmd_exit_policy = "exit"`,
/// until the child exits.
pub async fn run(
    cfg: ProcessConfig,
    mut updates: watch::Receiver<ProcessConfig>,
    mut renewals: watch::Receiver<u64>,
    mut stop: watch::Receiver<Option<Signal>>,
    events: Events,
) -> Ended {
    let mut s = Supervisor {
        cfg,
        child: ChildState::Idle,
        restart_backoff: Backoff::new(RESTART_FIRST, RESTART_MAX),
        pid_retry: None,
        events,
    };
    let (mut updates_open, mut renewals_open) = (true, true);
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                let sig = if changed.is_ok() { *stop.borrow() } else { Some(Signal::SIGTERM) };
                if let Some(sig) = sig {
                    return s.stop(sig).await;
                }
            }
            changed = updates.changed(), if updates_open => {
                if changed.is_ok() {
                    let new = updates.borrow_and_update().clone();
                    s.reconfigure(new).await;
                } else {
                    updates_open = false;
                }
            }
            event = next(&mut s.child) => {
                if let Some(ended) = s.on_child(event) {
                    return ended;
                }
            }
            changed = renewals.changed(), if renewals_open => {
                if changed.is_ok() {
                    renewals.borrow_and_update();
                    if let Some(ended) = s.renewal() {
                        return ended;
                    }
                } else {
                    renewals_open = false;
                }
            }
        }
    }
}

/// Where `cmd` is in its life.
enum ChildState {
    /// Not started yet, or exited and waiting for the next renewal.
    Idle,
    /// Running.
    Running(Running),
    /// Exited under `cmd_exit_policy = "restart"`: started again at `at`.
    Restarting { at: tokio::time::Instant },
}

/// What happened to the child.
enum ChildEvent {
    Exited(std::io::Result<ExitStatus>),
    RestartDue,
}

/// The child's next event; pending forever while it is idle.
async fn next(child: &mut ChildState) -> ChildEvent {
    match child {
        ChildState::Running(r) => ChildEvent::Exited(r.child.wait().await),
        ChildState::Restarting { at } => {
            tokio::time::sleep_until(*at).await;
            ChildEvent::RestartDue
        }
        ChildState::Idle => std::future::pending().await,
    }
}

/// The supervisor's state: the configuration, the child, and the pid-file
/// retry under way.
struct Supervisor {
    cfg: ProcessConfig,
    child: ChildState,
    restart_backoff: Backoff,
    pid_retry: Option<JoinHandle<()>>,
    events: Events,
}

impl Supervisor {
    fn exit_mode(&self) -> bool {
        self.cfg.exit_policy == ExitPolicy::Exit
    }

    /// Starts `cmd` now (it is configured and not running).
    fn start(&mut self) {
        if let Some(cmd) = &self.cfg.cmd {
            self.child = match start(cmd, self.cfg.renew_signal, &self.events) {
                Some(r) => ChildState::Running(r),
                None => ChildState::Idle,
            };
        }
    }

    /// Takes the running child out of the state, leaving it idle.
    fn take_running(&mut self) -> Option<Running> {
        match std::mem::replace(&mut self.child, ChildState::Idle) {
            ChildState::Running(r) => Some(r),
            other => {
                self.child = other;
                None
            }
        }
    }

    /// The shutdown signal: the pid-file retry ends, the child gets `sig`.
    async fn stop(&mut self, sig: Signal) -> Ended {
        if let Some(h) = self.pid_retry.take() {
            h.abort();
        }
        let code = match self.take_running() {
            Some(c) => stop_child(c, sig, &self.events).await,
            None => None,
        };
        Ended::Stopped {
            child_code: code.filter(|_| self.exit_mode()),
        }
    }

    /// A reloaded configuration. The child is restarted only when `cmd` or
    /// `cmd_args` changed; everything else applies from the next renewal.
    async fn reconfigure(&mut self, new: ProcessConfig) {
        if new.cmd == self.cfg.cmd {
            self.cfg = new;
            return;
        }
        // The new one starts now where the old one ran (the credentials are
        // on disk), else at the next renewal.
        let running = self.take_running();
        let was_running = running.is_some();
        if let Some(c) = running {
            info!("cmd changed in the reloaded configuration: stopping the running one");
            stop_child(c, Signal::SIGTERM, &self.events).await;
        }
        self.child = ChildState::Idle;
        self.cfg = new;
        if was_running {
            self.start();
        }
    }

    /// The child exited, or its restart is due.
    fn on_child(&mut self, event: ChildEvent) -> Option<Ended> {
        match event {
            ChildEvent::RestartDue => {
                self.child = ChildState::Idle;
                self.start();
                None
            }
            ChildEvent::Exited(status) => {
                let ran = self.take_running()?;
                let code = record_exit(&status, &self.events);
                match self.cfg.exit_policy {
                    ExitPolicy::Exit => {
                        info!("cmd exited; the helper exits with its code (cmd_exit_policy = \"exit\")");
                        return Some(Ended::ChildExited(code.unwrap_or(1)));
                    }
                    ExitPolicy::Restart => {
                        if ran.started.elapsed() >= RESTART_RESET_AFTER {
                            self.restart_backoff.reset();
                        }
                        let delay = self.restart_backoff.next_delay();
                        info!(
                            "cmd will be started again in {:.1}s (cmd_exit_policy = \"restart\")",
                            delay.as_secs_f64()
                        );
                        self.child = ChildState::Restarting {
                            at: tokio::time::Instant::now() + delay,
                        };
                    }
                    ExitPolicy::RelaunchOnRenewal => {
                        info!("cmd will be started again at the next renewal");
                    }
                }
                None
            }
        }
    }

    /// New credentials are on disk: signal (or start) `cmd`, and signal
    /// the pid-file process.
    fn renewal(&mut self) -> Option<Ended> {
        if self.cfg.cmd.is_some() {
            if let ChildState::Running(c) = &self.child {
                signal_child(c, self.cfg.renew_signal, &self.events);
            } else {
                // A renewal starts it at once, even during a restart delay.
                self.start();
                if matches!(self.child, ChildState::Idle) && self.exit_mode() {
                    return Some(Ended::ChildExited(EXIT_CANNOT_RUN));
                }
            }
        }
        if let (Some(path), Some(sig)) = (&self.cfg.pid_file, self.cfg.renew_signal) {
            // A new renewal supersedes a retry still under way.
            if let Some(h) = self.pid_retry.take() {
                h.abort();
            }
            let retry = signal_pid_file(path.clone(), sig, self.events.clone());
            self.pid_retry = Some(tokio::spawn(retry));
        }
        None
    }
}

/// A running child and when it started.
struct Running {
    child: Child,
    started: Instant,
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: &ExitStatus) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => Some(u8::try_from(code & 0xff).unwrap_or(1)),
        (None, Some(sig)) => Some(u8::try_from(128 + (sig & 0x7f)).unwrap_or(255)),
        _ => None,
    }
}

/// Logs an exit and records it; returns the exit code.
fn record_exit(status: &std::io::Result<ExitStatus>, events: &Events) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt as _;
    CHILD_PID.store(0, std::sync::atomic::Ordering::SeqCst);
    let (code, text) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => {
                info!(code, "cmd exited");
                (exit_code(s), format!("exit code {code}"))
            }
            (None, Some(sig)) => {
                let name = Signal::try_from(sig)
                    .map_or_else(|_| sig.to_string(), |s| s.as_str().to_owned());
                info!(signal = %name, "cmd was killed by a signal");
                (exit_code(s), format!("signal {name}"))
            }
            _ => {
                info!("cmd exited");
                (None, "exited".to_owned())
            }
        },
        Err(e) => {
            error!("waiting for cmd failed: {e}");
            (None, format!("unknown ({e})"))
        }
    };
    events.cmd_exited(code, text);
    code
}

/// Sends the renew signal to the running child (none set: nothing).
fn signal_child(c: &Running, sig: Option<Signal>, events: &Events) {
    let Some(sig) = sig else { return };
    // `id()` is None once the child has been reaped: never signal a stale pid.
    if let Some(pid) = c.child.id() {
        match kill(raw_pid(pid), sig) {
            Ok(()) => {
                info!(pid, signal = sig.as_str(), "signalled cmd");
                events.renew_signal(Target::Cmd, true);
            }
            Err(e) => {
                error!(pid, signal = sig.as_str(), "cannot signal cmd: {e}");
                events.renew_signal(Target::Cmd, false);
            }
        }
    }
}

/// Starts `cmd`; `None` (logged) when it cannot be started.
fn start(cmd: &Command, sig: Option<Signal>, events: &Events) -> Option<Running> {
    let argv = shown(cmd);
    let mut command = TokioCommand::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    prepare_child(&mut command, sig);
    match command.spawn() {
        Ok(c) => {
            let pid = c.id();
            CHILD_PID.store(
                pid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0),
                std::sync::atomic::Ordering::SeqCst,
            );
            info!(pid = pid.unwrap_or(0), argv = %argv, "started cmd");
            events.cmd_started(pid);
            Some(Running {
                child: c,
                started: Instant::now(),
            })
        }
        Err(e) => {
            error!(argv = %argv, program = %cmd.program, "cannot start cmd: {e}");
            events.cmd_not_started(&e.to_string());
            None
        }
    }
}

/// Between fork and exec: gives the renew signal its default disposition,
/// and the descriptor limit the helper started with back.
///
/// A signal ignored by the helper's own parent (`nohup` ignores SIGHUP,
/// and so may a service manager or CI runner) stays ignored across `exec`,
/// and a POSIX shell cannot even trap a signal that was ignored when it
/// started: `cmd` would never see its renew signal. Caught signals are
/// reset by `exec` anyway, so only that case changes.
fn prepare_child(command: &mut TokioCommand, sig: Option<Signal>) {
    use nix::sys::resource::{setrlimit, Resource};
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    // Neither can be caught or ignored, and sigaction(2) refuses them.
    let sig = sig.filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP));
    let nofile = ORIGINAL_NOFILE.get().copied();
    if sig.is_none() && nofile.is_none() {
        return;
    }
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: sigaction(2) and setrlimit(2)
    // are, and this closure neither allocates nor takes locks. Setting
    // SIG_DFL installs no handler, so no Rust code can run from a signal.
    #[allow(
        unsafe_code,
        reason = "pre_exec is the only way to reset a signal disposition and a limit between fork and exec"
    )]
    unsafe {
        command.pre_exec(move || {
            if let Some(sig) = sig {
                sigaction(sig, &dfl).map_err(std::io::Error::from)?;
            }
            if let Some((soft, hard)) = nofile {
                setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// A child's pid as the kernel's signed type (pids never exceed
/// `pid_max`, at most 2^22, so the conversion cannot fail in practice).
fn raw_pid(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Sends `sig` to the child, waits for it up to the grace period, then
/// kills it. Returns its exit code.
async fn stop_child(mut c: Running, sig: Signal, events: &Events) -> Option<u8> {
    if let Some(pid) = c.child.id() {
        info!(
            pid,
            signal = sig.as_str(),
            "forwarding shutdown signal to cmd"
        );
        let _ = kill(raw_pid(pid), sig);
    }
    let status = if let Ok(status) = tokio::time::timeout(CHILD_GRACE, c.child.wait()).await {
        status
    } else {
        warn!(
            "cmd did not exit within {}s; killing it",
            CHILD_GRACE.as_secs()
        );
        let _ = c.child.kill().await;
        c.child.wait().await
    };
    record_exit(&status, events)
}

/// Reads the pid file and signals that process, retrying on failure.
async fn signal_pid_file(path: PathBuf, sig: Signal, events: Events) {
    // Upstream's schedule, exactly: 100 ms doubling, no jitter.
    let mut delays = Backoff::exact(PID_FIRST_DELAY, PID_FIRST_DELAY * 2u32.pow(PID_TRIES));
    for attempt in 1..=PID_TRIES {
        // Off the runtime thread: the file may sit on a stuck network
        // filesystem.
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || read_pid_file(&p))
            .await
            .unwrap_or_else(|e| Err(format!("reading the pid file failed: {e}")));
        match read.and_then(|pid| send(pid, sig)) {
            Ok(pid) => {
                info!(pid, signal = sig.as_str(), pid_file = %path.display(), "signalled process from pid file");
                events.pid_file(Some(pid), format!("signalled {}", sig.as_str()));
                return;
            }
            Err(e) if attempt == PID_TRIES => {
                error!(pid_file = %path.display(), "giving up signalling after {PID_TRIES} tries: {e}");
                events.pid_file(None, format!("gave up after {PID_TRIES} tries: {e}"));
                return;
            }
            Err(e) => {
                let delay = delays.next_delay();
                warn!(pid_file = %path.display(), "{e}; retrying in {} ms", delay.as_millis());
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The most a pid file may hold: a pid and some white space.
const PID_FILE_MAX: usize = 64;

/// Reads a pid file: a regular file of at most [`PID_FILE_MAX`] bytes
/// holding a decimal pid. Opened without blocking, so a FIFO or a device
/// put in its place is refused instead of waited on or read forever.
fn read_pid_file(path: &Path) -> Result<i32, String> {
    use nix::fcntl::OFlag;
    use std::io::Read as _;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("cannot read pid file: {e}"))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("cannot read pid file: {e}"))?;
    let kind =
        nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
    if kind != nix::sys::stat::SFlag::S_IFREG {
        return Err(
            "the pid file is not a regular file (a FIFO, a device or a directory is never read)"
                .to_owned(),
        );
    }
    let mut text = Vec::with_capacity(PID_FILE_MAX + 1);
    std::fs::File::from(fd)
        .take(PID_FILE_MAX as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read pid file: {e}"))?;
    if text.len() > PID_FILE_MAX {
        return Err(format!(
            "the pid file holds more than {PID_FILE_MAX} bytes: it is not a pid file"
        ));
    }
    let text = String::from_utf8_lossy(&text);
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid file does not hold a process id: {:?}", text.trim()))?;
    let own = i32::try_from(crate::own_pid()).unwrap_or(i32::MAX);
    match pid {
        ..=0 => Err(format!("pid file holds an invalid process id {pid}")),
        1 => Err("pid file holds pid 1 (init): it is never signalled".to_owned()),
        p if p == own => Err(format!(
            "pid file holds the helper's own pid {pid}: it is never signalled"
        )),
        p => Ok(p),
    }
}

fn send(pid: i32, sig: Signal) -> Result<i32, String> {
    kill(Pid::from_raw(pid), sig).map_err(|e| format!("cannot signal pid {pid}: {e}"))?;
    Ok(pid)
}

// === PID 1 ===

/// The pid of the running child, for the reaper (0: none).
static CHILD_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// As PID 1 (a container's entrypoint), orphaned processes are re-parented
/// to the helper: reaps them as they exit, so zombies never pile up. The
/// direct child's exit status is never taken: a zombie is looked at first
/// (`WNOWAIT`) and left alone when it is the child, whose owner task
/// collects it.
pub async fn reap_orphans(token: tokio_util::sync::CancellationToken) {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
    use tokio::signal::unix::{signal, SignalKind};
    if std::process::id() != 1 {
        return;
    }
    let Ok(mut sigchld) = signal(SignalKind::child()) else {
        warn!("running as PID 1 but cannot watch for exited processes: orphans will not be reaped");
        return;
    };
    let mut blocked = false;
    loop {
        // While the child's own zombie waits for its owner, look again
        // shortly for the ones behind it.
        let again = if blocked {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            () = token.cancelled() => return,
            _ = sigchld.recv() => {}
            () = tokio::time::sleep(again) => {}
        }
        blocked = false;
        loop {
            let peek = waitid(
                Id::All,
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            );
            let pid = match peek {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => match st.pid() {
                    Some(p) => p,
                    None => break,
                },
            };
            if pid.as_raw() == CHILD_PID.load(std::sync::atomic::Ordering::SeqCst) {
                blocked = true;
                break;
            }
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            tracing::debug!(pid = pid.as_raw(), "reaped an orphaned process");
        }
    }
}

// === descriptor limit ===

/// The soft `RLIMIT_NOFILE` the helper started with, before it raised its
/// own: given back to `cmd`, as programs that use `select()` or close every
/// descriptor up to the limit expect the usual one.
static ORIGINAL_NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft descriptor limit to the hard one, so probe connections
/// and credential writes have room, and remembers the original for `cmd`.
pub fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = ORIGINAL_NOFILE.set((soft, hard));
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            tracing::debug!("cannot raise the descriptor limit from {soft} to {hard}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_file_config(path: &Path) -> crate::config::Config {
        crate::config::testing::ok(&format!(
            "cert_dir = \"c\"\njwt_bundle_file_name = \"b.json\"\npid_file_name = \"{}\"\nrenew_signal = \"SIGUSR1\"\n",
            path.display()
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_that_keeps_failing_is_restarted_after_1_2_4_8_seconds() {
        let cfg = crate::config::testing::ok(
            "cert_dir = \"c\"\njwt_bundle_file_name = \"b.json\"\ncmd = \"/bin/false\"\ncmd_exit_policy = \"restart\"\n",
        );
        let events = Events::new(&cfg);
        let mut status = events.subscribe();
        let (_, updates) = watch::channel(cfg.process.clone());
        let (renew, renewals) = watch::channel(0u64);
        let (stop, stopped) = watch::channel(None);
        let task = tokio::spawn(run(
            cfg.process.clone(),
            updates,
            renewals,
            stopped,
            events.clone(),
        ));
        // The first renewal starts it; each exit schedules the next start.
        renew.send_modify(|n| *n += 1);
        let mut starts = Vec::new();
        while starts.len() < 5 {
            status.changed().await.unwrap();
            let n = status.borrow_and_update().process.as_ref().unwrap().starts;
            if usize::try_from(n).unwrap() > starts.len() {
                starts.push(tokio::time::Instant::now());
            }
        }
        for (i, want) in [1.0, 2.0, 4.0, 8.0].into_iter().enumerate() {
            let gap = (starts[i + 1] - starts[i]).as_secs_f64();
            // The delay, stretched by at most 10 % of jitter; the child's
            // own run takes no time on the paused clock.
            assert!(
                gap >= want && gap <= want * 1.1 + 0.01,
                "start {}: after {gap:.3} s",
                i + 2
            );
        }
        let _ = stop.send(Some(Signal::SIGTERM));
        assert_eq!(task.await.unwrap(), Ended::Stopped { child_code: None });
    }

    #[tokio::test(start_paused = true)]
    async fn a_pid_file_that_never_holds_a_pid_is_tried_ten_times_on_upstreams_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        std::fs::write(&path, "not-a-pid\n").unwrap();
        let events = Events::new(&pid_file_config(&path));
        let started = tokio::time::Instant::now();
        signal_pid_file(path.clone(), Signal::SIGUSR1, events.clone()).await;
        // Nine waits: 100 ms doubling, exactly (no jitter), 51.1 s in all.
        assert_eq!(started.elapsed(), Duration::from_millis(51_100));
        let status = events.subscribe().borrow().pid_file.clone().unwrap();
        let result = status.last_result.unwrap();
        assert!(result.starts_with("gave up after 10 tries"), "{result}");
        assert!(result.contains("not-a-pid"), "the last reason: {result}");
        assert_eq!(status.last_pid, None);
        let metrics = events.metrics().encode();
        assert!(
            metrics.contains("spiffe_helper_renew_signal_failures_total{target=\"pid_file\"} 1")
        );
        assert!(metrics.contains("spiffe_helper_renew_signals_total{target=\"pid_file\"} 0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pid_file_that_becomes_valid_during_the_retries_is_signalled_then() {
        use std::os::unix::process::ExitStatusExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pid");
        // A process whose default SIGUSR1 disposition ends it: the signal
        // shows as its exit status.
        let mut target = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let events = Events::new(&pid_file_config(&path));
        let started = tokio::time::Instant::now();
        let retrying = signal_pid_file(path.clone(), Signal::SIGUSR1, events.clone());
        let appears = async {
            // After the 100, 200 and 400 ms waits (0.7 s), before the fourth try.
            tokio::time::sleep(Duration::from_secs(1)).await;
            std::fs::write(&path, format!("{}\n", target.id())).unwrap();
        };
        tokio::join!(retrying, appears);
        // The fifth try (after 0.1 + 0.2 + 0.4 + 0.8 s) found it.
        assert_eq!(started.elapsed(), Duration::from_millis(1_500));
        let status = target.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGUSR1 as i32));
        let st = events.subscribe().borrow().pid_file.clone().unwrap();
        assert_eq!(st.last_pid, i32::try_from(target.id()).ok());
        assert_eq!(st.last_result.as_deref(), Some("signalled SIGUSR1"));
    }

    #[test]
    fn pid_file_must_hold_a_positive_decimal_pid_of_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.pid");
        assert!(read_pid_file(&p).unwrap_err().contains("cannot read"));
        std::fs::write(&p, "abc").unwrap();
        assert!(read_pid_file(&p).unwrap_err().contains("\"abc\""));
        std::fs::write(&p, "0\n").unwrap();
        assert!(read_pid_file(&p).is_err());
        std::fs::write(&p, "1\n").unwrap();
        assert!(read_pid_file(&p).unwrap_err().contains("pid 1"));
        std::fs::write(&p, format!("{}\n", std::process::id())).unwrap();
        assert!(read_pid_file(&p).unwrap_err().contains("own pid"));
        std::fs::write(&p, format!("  {}\n", 4_194_300)).unwrap();
        assert_eq!(read_pid_file(&p).unwrap(), 4_194_300);
        std::fs::write(&p, " ".repeat(65)).unwrap();
        assert!(read_pid_file(&p)
            .unwrap_err()
            .contains("more than 64 bytes"));
        assert!(read_pid_file(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read_pid_file(dir.path())
            .unwrap_err()
            .contains("not a regular file"));
    }
}
