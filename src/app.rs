//! Everything after the command line: logging, the configuration's warnings
//! and errors, the runtime, and the two modes. Daemon mode is [`run`]: one
//! token, one status channel, the watchers, refreshers, health server and
//! supervisor, and a bounded shutdown that never cuts a write.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use spiffe::{JwtBundleSet, X509Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, info_span, warn, Instrument as _};

use crate::clock::unix_now;
use crate::config::{Config, ConfigError, Loaded, X509Output};
use crate::disk::Root;
use crate::metrics::Metrics;
use crate::publish::{Output, Publisher, Update};
use crate::status::Status;
use crate::workload::{Agent, ErrorKind};
use crate::{disk, health, jwt, refresh, supervisor, watch as stream, x509};

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

/// The whole program after the flags: returns the exit code once the log
/// lines have reached stderr (or a second has passed).
pub fn main(loaded: Result<Loaded, ConfigError>, args: &crate::cli::CliArgs) -> u8 {
    let code = modes(loaded, args);
    crate::logging::flush(Duration::from_secs(1));
    code
}

fn modes(loaded: Result<Loaded, ConfigError>, args: &crate::cli::CliArgs) -> u8 {
    let (level, format) = match &loaded {
        Ok(l) => (l.config.log_level, l.config.log_format),
        // The errors come out in the format the file asked for.
        Err(e) => (None, e.log_format()),
    };
    crate::logging::init(level, format);
    if let Some(w) = args.ignored_warning() {
        warn!("{w}");
    }
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            for w in e.warnings() {
                warn!("{w}");
            }
            error!("{e}");
            if args.check {
                let doc = serde_json::json!({ "valid": false, "problems": [e.to_string()], "warnings": e.warnings() });
                println!("{doc:#}");
            }
            return 1;
        }
    };
    if args.check {
        let report = crate::check::environment(&loaded.config);
        for w in &loaded.warnings {
            warn!("{w}");
        }
        for p in &report.problems {
            error!("{p}");
        }
        let doc = crate::check::document(&loaded.config, &loaded.warnings, &report);
        println!("{doc:#}");
        return u8::from(!report.problems.is_empty());
    }
    let cfg = loaded.config;
    info!(
        version = crate::build::VERSION,
        commit = crate::build::COMMIT,
        build_date = crate::build::DATE,
        "spiffe-helper {} starting",
        crate::build::VERSION
    );
    info!(
        "using configuration file {} ({} mode)",
        cfg.source.display(),
        if cfg.daemon_mode {
            "daemon"
        } else {
            "one-shot"
        }
    );
    for w in &loaded.warnings {
        warn!("{w}");
    }
    supervisor::raise_descriptor_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // The blocking pool's threads (credential writes) are kept between
        // rotations instead of being created for each one, and there are
        // few of them: a hundred JWT-SVIDs written at start-up queue for
        // them instead of each leaving a thread (and its memory) behind.
        .thread_keep_alive(Duration::from_secs(3600))
        .max_blocking_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = if cfg.daemon_mode {
        let path = args.config.clone();
        let flag = args.daemon_mode;
        let reloader: Reloader =
            Arc::new(move || crate::config::load(&path, flag, &|k| std::env::var(k).ok()));
        match runtime.block_on(async {
            let shutdown = shutdown_signal().map_err(AppError::Signals)?;
            run_with_reload(cfg, shutdown, Some(reloader)).await
        }) {
            Ok(code) => code,
            Err(e) => {
                error!("{}", chain(&e));
                1
            }
        }
    } else {
        match runtime.block_on(crate::oneshot::run(&cfg)) {
            Ok(()) => 0,
            Err(e) => {
                error!("{}", chain(&e));
                1
            }
        }
    };
    // Writes are waited for inside the modes; nothing is left to finish.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
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

/// Every file path the configuration writes (for the start-up clean-up).
fn targets(cfg: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(x) = &cfg.x509 {
        if let Some(f) = &x.files {
            out.extend([
                f.svid.path.clone(),
                f.key.path.clone(),
                f.bundle.path.clone(),
            ]);
        }
        if let Some(c) = &x.credential_bundle {
            out.push(c.path.clone());
        }
        if let Some(p) = &x.pkcs12 {
            out.extend(
                p.keystore
                    .iter()
                    .chain(&p.truststore)
                    .map(|f| f.path.clone()),
            );
        }
    }
    if let Some(b) = &cfg.jwt_bundle {
        out.push(b.path.clone());
    }
    out.extend(cfg.jwt_svids.iter().map(|j| j.file.path.clone()));
    out
}

/// Before the first write, in both modes, off the runtime thread: removes
/// temporary files an earlier run left behind (after a SIGKILL or a power
/// loss), and warns once about directories whose files can only be
/// rewritten in place.
pub async fn prepare_outputs(cfg: &Config, root: &Arc<Root>) {
    let targets = targets(cfg);
    let own = cfg
        .x509
        .as_ref()
        .and_then(|x| x.trust_bundles.as_ref())
        .map(|t| t.dir.clone());
    let root = Arc::clone(root);
    let done = tokio::task::spawn_blocking(move || {
        let removed = disk::remove_leftovers(&root, &targets, own.as_deref());
        let unwritable = disk::unwritable_dirs(&root, &targets);
        (removed, unwritable)
    })
    .await;
    let Ok((removed, unwritable)) = done else {
        return;
    };
    for p in removed {
        info!(path = %p.display(), "removed a temporary file left by an earlier run");
    }
    for w in unwritable {
        warn!("{w}");
    }
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
        status_rx: &crate::status::StatusRx,
        metrics: &Metrics,
        parent: &CancellationToken,
    ) -> Self {
        let token = parent.child_token();
        let agent = Agent::new(cfg.agent_socket.clone());
        let mut tasks = JoinSet::new();
        if let Some((l, _)) = &listener {
            let fut = health::serve(
                Arc::clone(l),
                cfg.health.clone(),
                status_rx.clone(),
                metrics.clone(),
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
    mut cfg: Config,
    shutdown: impl Future<Output = Signal>,
    reload: Option<Reloader>,
) -> Result<u8, AppError> {
    let root = Arc::new(Root::new(&cfg.cert_dir));
    prepare_outputs(&cfg, &root).await;
    // Bound before anything is fetched, so probes answer (not ready) at once.
    let listener = health_listener(&cfg, None)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;

    let token = CancellationToken::new();
    let metrics = Metrics::new(&cfg);
    let (status_tx, status_rx) = watch::channel(Status::new(&cfg));
    let (renew_tx, renew_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(None::<Signal>);
    let (process_tx, process_rx) = watch::channel(cfg.process.clone());
    let reports = supervisor::Reports {
        status: status_tx.clone(),
        metrics: metrics.clone(),
    };
    let notifier = crate::notify::Notifier::from_env().map(Arc::new);
    let publisher = Publisher::new(status_tx.clone(), renew_tx, metrics.clone(), root);
    let mut generation = Generation::start(&cfg, publisher, listener, &status_rx, &metrics, &token);
    let mut background = JoinSet::new();
    background.spawn(supervisor::reap_orphans(token.child_token()));
    background.spawn(ignore_signals(token.child_token()));
    if let Some(n) = &notifier {
        background.spawn(crate::notify::follow(
            Arc::clone(n),
            status_rx.clone(),
            token.child_token(),
        ));
    }
    let mut has_process = cfg.process.cmd.is_some() || cfg.process.pid_file.is_some();
    let mut supervisor = tokio::spawn(
        supervisor::run(cfg.process.clone(), process_rx, renew_rx, stop_rx, reports)
            .instrument(info_span!("process")),
    );

    // The shutdown signal, (cmd_exit_policy = "exit") the child's exit, or
    // a reload.
    tokio::pin!(shutdown);
    let (sig, child_exit) = loop {
        tokio::select! {
            sig = &mut shutdown => break (sig, None),
            ended = &mut supervisor => break match ended {
                Ok(supervisor::Ended::ChildExited(code)) => (Signal::SIGTERM, Some(code)),
                _ => (Signal::SIGTERM, None),
            },
            _ = hangup.recv() => {
                let Some(reload) = reload.as_ref() else {
                    info!(signal = "SIGHUP", "received SIGHUP: ignored (no configuration file to read again)");
                    continue;
                };
                let Some(new) = read_again(reload, &cfg).await else { continue };
                if let Some(n) = &notifier {
                    n.send("RELOADING=1");
                }
                // The new listener first: if it cannot be bound, nothing
                // changes.
                let old_listener = generation.listener.take();
                let listener = match health_listener(&new, old_listener.clone()) {
                    Ok(l) => l,
                    Err(e) => {
                        error!("the configuration was not reloaded: {}", chain(&e));
                        generation.listener = old_listener;
                        if let Some(n) = &notifier {
                            n.send("READY=1");
                        }
                        continue;
                    }
                };
                drop(old_listener);
                generation.stop().await;
                crate::logging::apply(new.log_level, new.log_format);
                let root = Arc::new(Root::new(&new.cert_dir));
                prepare_outputs(&new, &root).await;
                let publisher = generation.publisher.reconfigured(root);
                status_tx.send_modify(|s| *s = s.reconfigured(&new));
                let _ = process_tx.send(new.process.clone());
                has_process = new.process.cmd.is_some() || new.process.pid_file.is_some();
                cfg = new;
                generation = Generation::start(&cfg, publisher, listener, &status_rx, &metrics, &token);
                info!("configuration reloaded");
                if let Some(n) = &notifier {
                    n.send("READY=1");
                }
            }
        }
    };
    if child_exit.is_none() {
        info!(signal = sig.as_str(), "shutting down");
    }
    generation.stop().await;
    token.cancel();
    let _ = stop_tx.send(Some(sig));
    let _ = tokio::time::timeout(DRAIN, async {
        while background.join_next().await.is_some() {}
    })
    .await;
    background.abort_all();
    if let Some(code) = child_exit {
        return Ok(code);
    }
    let grace = if has_process {
        supervisor::CHILD_GRACE + Duration::from_secs(1)
    } else {
        DRAIN
    };
    match tokio::time::timeout(grace, supervisor).await {
        Ok(Ok(supervisor::Ended::Stopped {
            child_code: Some(code),
        })) => Ok(code),
        Ok(_) => Ok(0),
        Err(_) => {
            warn!("the process supervisor did not stop in time");
            Ok(0)
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
    let changed = changes(old, &new);
    if changed.is_empty() {
        info!("the configuration is unchanged");
    } else {
        info!(changed = %changed.join(", "), "the configuration changed");
    }
    Some(new)
}

/// The parts of the configuration that differ, by name.
fn changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut differ = |name: &'static str, a: String, b: String| {
        if a != b {
            out.push(name);
        }
    };
    differ(
        "agent_address",
        old.agent_socket.display().to_string(),
        new.agent_socket.display().to_string(),
    );
    differ(
        "cert_dir",
        old.cert_dir.display().to_string(),
        new.cert_dir.display().to_string(),
    );
    differ("hint", format!("{:?}", old.hint), format!("{:?}", new.hint));
    differ(
        "x509 outputs",
        format!("{:?}", old.x509),
        format!("{:?}", new.x509),
    );
    differ(
        "jwt_svids",
        format!("{:?}", old.jwt_svids),
        format!("{:?}", new.jwt_svids),
    );
    differ(
        "jwt_bundle_file_name",
        format!("{:?}", old.jwt_bundle),
        format!("{:?}", new.jwt_bundle),
    );
    differ(
        "cmd",
        format!("{:?}", old.process.cmd),
        format!("{:?}", new.process.cmd),
    );
    differ(
        "process",
        format!(
            "{:?}",
            (
                &old.process.pid_file,
                old.process.renew_signal,
                old.process.exit_policy
            )
        ),
        format!(
            "{:?}",
            (
                &new.process.pid_file,
                new.process.renew_signal,
                new.process.exit_policy
            )
        ),
    );
    differ(
        "health_checks",
        format!("{:?}", old.health),
        format!("{:?}", new.health),
    );
    differ(
        "logging",
        format!("{:?}", (old.log_level, old.log_format)),
        format!("{:?}", (new.log_level, new.log_format)),
    );
    out
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

/// The X.509 watcher: every update is rendered and published.
async fn watch_x509(
    agent: Agent,
    out: X509Output,
    hint: Option<String>,
    publisher: Publisher,
    token: CancellationToken,
) {
    let out = &out;
    let hint = hint.as_deref();
    let publisher_ref = &publisher;
    stream::run(
        "X.509 SVID stream",
        "x509",
        agent.socket(),
        || agent.stream_x509(),
        |ctx: X509Context| async move { publish_x509(&ctx, out, hint, publisher_ref).await },
        |e| {
            if e.kind() == ErrorKind::Malformed {
                publisher.mark_failed(&Output::X509);
            }
        },
        &publisher,
        token,
    )
    .await;
}

/// Renders one X.509 context and publishes it (daemon mode).
async fn publish_x509(
    ctx: &X509Context,
    out: &X509Output,
    hint: Option<&str>,
    publisher: &Publisher,
) {
    for svid in ctx.svids() {
        info!(spiffe_id = %svid.spiffe_id(), hint = svid.hint().unwrap_or(""), "received X.509 SVID");
    }
    let rendered = match x509::render(ctx, out, hint, unix_now()) {
        Ok(r) => r,
        Err(e) => {
            publisher.failed(&Output::X509, &format!("{e}; the files on disk are kept"));
            return;
        }
    };
    // The publisher logs and records the outcome.
    let _ = publisher
        .publish(rendered.batch, Update::X509(rendered.info))
        .await;
}

/// The JWT bundle watcher.
async fn watch_jwt_bundles(
    agent: Agent,
    out: crate::config::OutputFile,
    publisher: Publisher,
    token: CancellationToken,
) {
    let out = &out;
    let publisher_ref = &publisher;
    stream::run(
        "JWT bundle stream",
        "jwt_bundle",
        agent.socket(),
        || agent.stream_jwt_bundles(),
        |set: JwtBundleSet| async move {
            let (batch, info) = jwt::render_bundles(&set, out);
            let update = Update::JwtBundle {
                path: out.path.clone(),
                info,
            };
            let _ = publisher_ref.publish(batch, update).await;
        },
        |e| {
            if e.kind() == ErrorKind::Malformed {
                publisher.mark_failed(&Output::Jwt(out.path.clone()));
            }
        },
        &publisher,
        token,
    )
    .await;
}
