//! Daemon mode wiring: one token, one status channel, the tasks, the
//! supervisor, and a bounded shutdown on SIGTERM or SIGINT.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument as _};

use crate::config::Config;
use crate::status::Status;
use crate::workload::Agent;
use crate::{health, jwt, supervisor, x509};

/// How long the tasks get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_millis(800);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Health(#[from] health::BindError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Everything after the command line: logging, the configuration's
/// warnings and errors, the runtime, and the mode. Returns the exit code.
pub fn main(loaded: Result<crate::config::Loaded, crate::config::ConfigError>) -> u8 {
    let (level, format) = match &loaded {
        Ok(l) => (l.config.log_level, l.config.log_format),
        Err(_) => (None, crate::config::LogFormat::Text),
    };
    crate::logging::init(level, format);
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let cfg = loaded.config;
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
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = if cfg.daemon_mode {
        runtime.block_on(run(cfg)).map_err(|e| chain(&e))
    } else {
        runtime
            .block_on(crate::oneshot::run(&cfg))
            .map_err(|e| chain(&e))
    };
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
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
    text
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), AppError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    // Bound before anything is fetched, so probes answer (not ready) at once.
    let listener = if cfg.health.listener_enabled {
        Some(health::bind(&cfg.health).await?)
    } else {
        None
    };

    let token = CancellationToken::new();
    let (status_tx, status_rx) = watch::channel(Status::new(&cfg));
    let (renew_tx, renew_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(None::<Signal>);
    let agent = Agent::new(cfg.agent_socket.clone());
    let mut tasks = JoinSet::new();

    if let Some(listener) = listener {
        let fut = health::serve(listener, cfg.health.clone(), status_rx, token.child_token());
        tasks.spawn(fut.instrument(info_span!("health")));
    }
    if let Some(out) = &cfg.x509 {
        let watcher = x509::Watcher {
            agent: agent.clone(),
            out: Arc::new(out.clone()),
            hint: cfg.hint.clone(),
            status: status_tx.clone(),
            renewals: renew_tx,
        };
        tasks.spawn(
            watcher
                .run(token.child_token())
                .instrument(info_span!("x509")),
        );
    } else {
        drop(renew_tx);
    }
    if let Some(out) = &cfg.jwt_bundle {
        let fut = jwt::watch_bundles(
            agent.clone(),
            Arc::new(out.clone()),
            status_tx.clone(),
            token.child_token(),
        );
        tasks.spawn(fut.instrument(info_span!("jwt_bundle")));
    }
    for entry in &cfg.jwt_svids {
        let span = info_span!("jwt_svid", audience = %entry.audience);
        let fut = jwt::refresh(
            agent.clone(),
            entry.clone(),
            cfg.hint.clone(),
            status_tx.clone(),
            token.child_token(),
        );
        tasks.spawn(fut.instrument(span));
    }
    let has_process = cfg.process.cmd.is_some() || cfg.process.pid_file.is_some();
    let supervisor = tokio::spawn(
        supervisor::run(cfg.process.clone(), renew_rx, stop_rx).instrument(info_span!("process")),
    );
    info!(agent = %agent.socket().display(), "running in daemon mode");

    let sig = tokio::select! {
        _ = sigterm.recv() => Signal::SIGTERM,
        _ = sigint.recv() => Signal::SIGINT,
    };
    info!(signal = sig.as_str(), "shutting down");
    token.cancel();
    let _ = stop_tx.send(Some(sig));

    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!("some tasks did not stop in time; aborting them");
        tasks.abort_all();
    }
    let grace = if has_process {
        supervisor::CHILD_GRACE + Duration::from_secs(1)
    } else {
        DRAIN
    };
    if tokio::time::timeout(grace, supervisor).await.is_err() {
        warn!("the process supervisor did not stop in time");
    }
    Ok(())
}
