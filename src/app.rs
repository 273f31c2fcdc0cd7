//! Daemon mode's wiring: one state owner (`events::Events`), one publisher, the
//! two stream watchers, a JWT-SVID refresher per entry, the health server,
//! systemd's notifier and the process supervisor under one cancellation
//! token; a reload (SIGHUP) that replaces the tasks of one configuration
//! with the next; and a bounded shutdown that never cuts a write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument as _};

use crate::clock::unix_now;
use crate::config::{Config, ConfigError, Loaded, OutputFile, X509Output};
use crate::disk::{Batch, Root};
use crate::events::{Events, Output, Update};
use crate::publish::{prepare_outputs, Publisher};
use crate::stream::Watched;
use crate::workload::Agent;
use crate::{health, jwt, refresh, stream, supervisor, x509};

/// How long the tasks get to stop after the shutdown signal (a batch under
/// way is waited for first, see [`WRITE_GRACE`]).
const DRAIN: Duration = Duration::from_millis(800);
/// How long a shutdown waits for a batch that is being written.
pub const WRITE_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Health(#[from] health::BindError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// An error followed by each of its causes.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    // A cause may carry the agent's own words.
    crate::workload::escape_controls(&text)
}

/// A future that completes with the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = Signal>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => Signal::SIGTERM,
            _ = int.recv() => Signal::SIGINT,
        }
    })
}

/// Reads the configuration again, for a reload (SIGHUP).
pub type Reloader = Arc<dyn Fn() -> Result<Loaded, ConfigError> + Send + Sync>;

/// Daemon mode: runs until `shutdown` completes, then lets a batch under
/// way finish, stops the tasks and the child, and returns the exit code.
pub async fn run(cfg: Config, shutdown: impl Future<Output = Signal>) -> Result<u8, AppError> {
    run_with_reload(cfg, shutdown, None).await
}

/// The health listener and the address it was bound for.
type Bound = (
    Arc<tokio::net::TcpListener>,
    (Option<std::net::IpAddr>, u16),
);

/// The tasks of one configuration: the health server, the watchers and
/// the refreshers, stopped together at a reload.
struct Generation {
    token: CancellationToken,
    tasks: JoinSet<()>,
    publisher: Publisher,
    /// The health listener and the address it was bound for, kept across
    /// a reload that does not move it.
    listener: Option<Bound>,
}

impl Generation {
    fn start(
        cfg: &Config,
        publisher: Publisher,
        listener: Option<Bound>,
        parent: &CancellationToken,
    ) -> Self {
        let token = parent.child_token();
        let agent = Agent::new(cfg.agent_socket.clone());
        let mut tasks = JoinSet::new();
        if let Some((l, _)) = &listener {
            let events = publisher.events();
            let fut = health::serve(
                Arc::clone(l),
                cfg.health.clone(),
                events.subscribe(),
                events.metrics().clone(),
                token.child_token(),
            );
            tasks.spawn(fut.instrument(info_span!("health")));
        }
        if let Some(out) = &cfg.x509 {
            let fut = watch_x509(
                agent.clone(),
                out.clone(),
                cfg.hint.clone(),
                publisher.clone(),
                token.child_token(),
            );
            tasks.spawn(fut.instrument(info_span!("x509")));
        }
        if let Some(out) = &cfg.jwt_bundle {
            let fut = watch_jwt_bundles(
                agent.clone(),
                out.clone(),
                publisher.clone(),
                token.child_token(),
            );
            tasks.spawn(fut.instrument(info_span!("jwt_bundle")));
        }
        if !cfg.jwt_svids.is_empty() {
            // Started from a task of their own, so a shutdown signal during
            // the start of thousands of entries is acted on at once.
            let fut = start_refreshers(
                agent.clone(),
                cfg.jwt_svids.clone(),
                cfg.hint.clone(),
                publisher.clone(),
                token.child_token(),
            );
            tasks.spawn(fut);
        }
        info!(agent = %agent.socket().display(), "running in daemon mode");
        Self {
            token,
            tasks,
            publisher,
            listener,
        }
    }

    /// Lets a batch under way finish, then stops every task.
    async fn stop(&mut self) {
        if !self.publisher.close(WRITE_GRACE).await {
            warn!(
                "a credential write did not finish within {}s",
                WRITE_GRACE.as_secs()
            );
        }
        self.token.cancel();
        let tasks = &mut self.tasks;
        let drained =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!("some tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
    }
}

/// The health listener for `cfg`: `old` when it is bound where `cfg` wants
/// one, else a new one.
fn health_listener(cfg: &Config, old: Option<Bound>) -> Result<Option<Bound>, AppError> {
    if !cfg.health.listener_enabled {
        return Ok(None);
    }
    let at = (cfg.health.bind_address, cfg.health.bind_port);
    if let Some((l, was)) = old {
        if was == at {
            return Ok(Some((l, at)));
        }
    }
    Ok(Some((Arc::new(health::bind(&cfg.health)?), at)))
}

/// [`run`], with SIGHUP reading the configuration again through `reload`
/// (without one, SIGHUP is logged and ignored).
pub async fn run_with_reload(
    cfg: Config,
    shutdown: impl Future<Output = Signal>,
    reload: Option<Reloader>,
) -> Result<u8, AppError> {
    let mut daemon = Daemon::start(cfg).await?;
    // The shutdown signal, (cmd_exit_policy = "exit") the child's exit, or
    // a reload.
    tokio::pin!(shutdown);
    let (sig, child_exit) = loop {
        tokio::select! {
            sig = &mut shutdown => break (sig, None),
            ended = &mut daemon.supervisor => break match ended {
                Ok(supervisor::Ended::ChildExited(code)) => (Signal::SIGTERM, Some(code)),
                _ => (Signal::SIGTERM, None),
            },
            _ = daemon.hangup.recv() => {
                if let Some(reload) = reload.as_ref() {
                    daemon.reload(reload).await;
                } else {
                    info!(signal = "SIGHUP", "received SIGHUP: ignored (no configuration file to read again)");
                }
            }
        }
    };
    Ok(daemon.stop(sig, child_exit).await)
}

/// A running daemon: what lives as long as the process, and the tasks of
/// the current configuration.
struct Daemon {
    cfg: Config,
    token: CancellationToken,
    events: Events,
    notifier: Option<Arc<crate::notify::Notifier>>,
    generation: Generation,
    /// The orphan reaper, the SIGUSR1/2 logger, systemd's notifier.
    background: JoinSet<()>,
    supervisor: tokio::task::JoinHandle<supervisor::Ended>,
    stop_tx: watch::Sender<Option<Signal>>,
    process_tx: watch::Sender<crate::config::ProcessConfig>,
    hangup: tokio::signal::unix::Signal,
}

impl Daemon {
    async fn start(cfg: Config) -> Result<Self, AppError> {
        let root = Arc::new(Root::new(&cfg.cert_dir));
        prepare_outputs(&cfg, &root).await;
        // Bound before anything is fetched, so probes answer (not ready) at once.
        let listener = health_listener(&cfg, None)?;
        let hangup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
        let token = CancellationToken::new();
        let events = Events::new(&cfg);
        let (renew_tx, renew_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(None::<Signal>);
        let (process_tx, process_rx) = watch::channel(cfg.process.clone());
        let notifier = crate::notify::Notifier::from_env().map(Arc::new);
        let publisher = Publisher::new(events.clone(), renew_tx, root);
        let generation = Generation::start(&cfg, publisher, listener, &token);
        let mut background = JoinSet::new();
        background.spawn(supervisor::reap_orphans(token.child_token()));
        background.spawn(ignore_signals(token.child_token()));
        if let Some(n) = &notifier {
            let follow =
                crate::notify::follow(Arc::clone(n), events.subscribe(), token.child_token());
            background.spawn(follow);
        }
        let run = supervisor::run(
            cfg.process.clone(),
            process_rx,
            renew_rx,
            stop_rx,
            events.clone(),
        );
        let supervisor = tokio::spawn(run.instrument(info_span!("process")));
        Ok(Self {
            cfg,
            token,
            events,
            notifier,
            generation,
            background,
            supervisor,
            stop_tx,
            process_tx,
            hangup,
        })
    }

    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.send(state);
        }
    }

    /// One SIGHUP: a valid new configuration replaces the tasks of the
    /// old one; anything else is logged and changes nothing.
    async fn reload(&mut self, reload: &Reloader) {
        let Some(new) = read_again(reload, &self.cfg).await else {
            return;
        };
        self.notify("RELOADING=1");
        // The new listener first: if it cannot be bound, nothing changes.
        let old_listener = self.generation.listener.take();
        let listener = match health_listener(&new, old_listener.clone()) {
            Ok(l) => l,
            Err(e) => {
                error!("the configuration was not reloaded: {}", chain(&e));
                self.generation.listener = old_listener;
                self.notify("READY=1");
                return;
            }
        };
        drop(old_listener);
        self.generation.stop().await;
        crate::logging::apply(new.log_level, new.log_format);
        let root = Arc::new(Root::new(&new.cert_dir));
        prepare_outputs(&new, &root).await;
        let publisher = self.generation.publisher.reconfigured(root);
        self.events.reconfigured(&new);
        let _ = self.process_tx.send(new.process.clone());
        self.cfg = new;
        self.generation = Generation::start(&self.cfg, publisher, listener, &self.token);
        info!("configuration reloaded");
        self.notify("READY=1");
    }

    /// Lets a batch under way finish, stops every task and the child, and
    /// returns the exit code.
    async fn stop(mut self, sig: Signal, child_exit: Option<u8>) -> u8 {
        if child_exit.is_none() {
            info!(signal = sig.as_str(), "shutting down");
        }
        self.generation.stop().await;
        self.token.cancel();
        let _ = self.stop_tx.send(Some(sig));
        let background = &mut self.background;
        let _ = tokio::time::timeout(DRAIN, async {
            while background.join_next().await.is_some() {}
        })
        .await;
        self.background.abort_all();
        if let Some(code) = child_exit {
            return code;
        }
        let p = &self.cfg.process;
        let grace = if p.cmd.is_some() || p.pid_file.is_some() {
            supervisor::CHILD_GRACE + Duration::from_secs(1)
        } else {
            DRAIN
        };
        match tokio::time::timeout(grace, self.supervisor).await {
            Ok(Ok(supervisor::Ended::Stopped {
                child_code: Some(code),
            })) => code,
            Ok(_) => 0,
            Err(_) => {
                warn!("the process supervisor did not stop in time");
                0
            }
        }
    }
}

/// Reads and validates the configuration again (off the runtime thread);
/// `None`, with every problem logged, when it cannot be used.
async fn read_again(reload: &Reloader, old: &Config) -> Option<Config> {
    info!("received SIGHUP: reading the configuration again");
    // The closure reads a file: off the runtime thread.
    let reload = Arc::clone(reload);
    let loaded = match tokio::task::spawn_blocking(move || reload()).await {
        Ok(l) => l,
        Err(e) => {
            error!("the configuration was not reloaded: reading it failed ({e})");
            return None;
        }
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            for w in e.warnings() {
                warn!("{w}");
            }
            error!(
                "the configuration was not reloaded; the helper runs on with the one it has: {e}"
            );
            return None;
        }
    };
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let new = loaded.config;
    if !new.daemon_mode {
        error!(
            "the configuration was not reloaded: it turns daemon mode off, which takes a restart"
        );
        return None;
    }
    let changed = old.changes(&new);
    if changed.is_empty() {
        info!("the configuration is unchanged");
    } else {
        info!(changed = %changed.join(", "), "the configuration changed");
    }
    Some(new)
}

/// One refresher per `jwt_svids` entry, started one after another: a
/// hundred entries do not all fetch in the same instant (which would leave
/// a hundred buffers' worth of fragmented heap behind), and none waits for
/// another's answer. Returns once every refresher has stopped.
async fn start_refreshers(
    agent: Agent,
    entries: Vec<crate::config::JwtSvidOutput>,
    hint: Option<String>,
    publisher: Publisher,
    token: CancellationToken,
) {
    let fetches = Arc::new(tokio::sync::Semaphore::new(refresh::CONCURRENT_FETCHES));
    let mut running = JoinSet::new();
    for entry in entries {
        if token.is_cancelled() {
            break;
        }
        let span = info_span!("jwt_svid", audience = %entry.audience);
        let fut = refresh::run(
            agent.clone(),
            entry,
            hint.clone(),
            publisher.clone(),
            Arc::clone(&fetches),
            token.child_token(),
        );
        running.spawn(fut.instrument(span));
        tokio::task::yield_now().await;
    }
    while running.join_next().await.is_some() {}
}

/// SIGUSR1 and SIGUSR2 would end the process by default (leaving `cmd`
/// behind): they are logged and otherwise ignored. (SIGHUP reloads.)
async fn ignore_signals(token: CancellationToken) {
    let (Ok(mut usr1), Ok(mut usr2)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) else {
        warn!("cannot handle SIGUSR1 and SIGUSR2: they end the helper");
        return;
    };
    loop {
        let name = tokio::select! {
            () = token.cancelled() => return,
            _ = usr1.recv() => "SIGUSR1",
            _ = usr2.recv() => "SIGUSR2",
        };
        info!(
            signal = name,
            "received {name}: ignored (SIGTERM or SIGINT stops the helper)"
        );
    }
}

/// The X.509 watcher: each X.509 context rendered into the configured
/// files.
async fn watch_x509(
    agent: Agent,
    out: X509Output,
    hint: Option<String>,
    publisher: Publisher,
    token: CancellationToken,
) {
    let watched = Watched {
        name: "X.509 SVID stream",
        key: "x509",
        output: Output::X509,
    };
    let render = |ctx: &spiffe::X509Context| {
        for svid in ctx.svids() {
            info!(spiffe_id = %svid.spiffe_id(), hint = svid.hint().unwrap_or(""), "received X.509 SVID");
        }
        x509::render(ctx, &out, hint.as_deref(), unix_now())
            .map(|r| (r.batch, Update::X509(r.info)))
            .map_err(|e| format!("{e}; the files on disk are kept"))
    };
    let open = || agent.stream_x509();
    stream::watch(watched, agent.socket(), open, render, &publisher, token).await;
}

/// The JWT bundle watcher: each bundle set rendered into its JSON file.
async fn watch_jwt_bundles(
    agent: Agent,
    out: OutputFile,
    publisher: Publisher,
    token: CancellationToken,
) {
    let watched = Watched {
        name: "JWT bundle stream",
        key: "jwt_bundle",
        output: Output::JwtBundle(out.path.clone()),
    };
    let render = |set: &spiffe::JwtBundleSet| -> Result<(Batch, Update), String> {
        let (batch, info) = jwt::render_bundles(set, &out);
        let path = out.path.clone();
        Ok((batch, Update::JwtBundle { path, info }))
    };
    let open = || agent.stream_jwt_bundles();
    stream::watch(watched, agent.socket(), open, render, &publisher, token).await;
}
