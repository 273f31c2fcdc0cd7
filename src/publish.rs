//! The one place a rendered batch goes to disk, in both modes: the
//! blocking write (whole or not at all; unchanged files skipped in daemon
//! mode), the event that records it, the log line saying what really
//! happened, and the supervisor's renewal signal.
//!
//! A shutdown waits for a batch under way ([`Publisher::close`]), so a
//! SIGTERM never cuts a write in half and never leaves a temporary file
//! holding key material behind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::clock::unix_now;
use crate::config::Config;
use crate::disk::{self, Batch, Committed, Method, Root, WriteError};
use crate::events::{Events, Output, Update, Written};

/// Why a batch was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the helper is shutting down; the update was not written")]
    ShuttingDown,
}

/// Shared by every task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    /// `cert_dir`, opened once: every batch goes through it.
    root: Arc<Root>,
    events: Events,
    /// The supervisor's renewal sequence (`None` in one-shot mode).
    renewals: Option<watch::Sender<u64>>,
    /// Daemon mode leaves a file that already holds exactly its bytes
    /// alone and logs a failed write here; one-shot mode writes every file
    /// and reports a failure as its outcome.
    daemon: bool,
    /// Whether an X.509 batch has been published since start-up: the first
    /// one starts `cmd` and signals the pid file even when the files on disk
    /// were already current, as upstream does.
    x509_seen: AtomicBool,
    /// The writes under way, waited for at shutdown.
    writes: TaskTracker,
}

impl Publisher {
    /// Daemon mode's publisher: unchanged files are skipped and every
    /// X.509 change is a renewal.
    pub fn new(events: Events, renewals: watch::Sender<u64>, root: Arc<Root>) -> Self {
        Self::build(events, Some(renewals), true, false, root)
    }

    /// One-shot mode's publisher: every file is written, nothing signalled.
    pub fn one_shot(events: Events, root: Arc<Root>) -> Self {
        Self::build(events, None, false, false, root)
    }

    fn build(
        events: Events,
        renewals: Option<watch::Sender<u64>>,
        daemon: bool,
        x509_seen: bool,
        root: Arc<Root>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                root,
                events,
                renewals,
                daemon,
                x509_seen: AtomicBool::new(x509_seen),
                writes: TaskTracker::new(),
            }),
        }
    }

    /// A publisher for a reloaded configuration: the same events and
    /// renewals, `cert_dir` as `root`, and whether the first X.509 batch
    /// was seen (so an unchanged update after a reload signals nothing).
    #[must_use]
    pub fn reconfigured(&self, root: Arc<Root>) -> Self {
        let i = &self.inner;
        Self::build(
            i.events.clone(),
            i.renewals.clone(),
            i.daemon,
            i.x509_seen.load(Ordering::SeqCst),
            root,
        )
    }

    /// Where the tasks report what is not a write.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// Writes `batch` for `update`. The supervisor hears of an X.509 batch
    /// only when something changed (or for the first one after start-up).
    pub async fn publish(&self, batch: Batch, update: Update) -> Result<Committed, PublishError> {
        self.publish_parts(vec![(batch, update)]).await
    }

    /// Writes the batches of several updates as one: every file changes,
    /// or none does (one-shot mode's single commit).
    pub async fn publish_parts(
        &self,
        parts: Vec<(Batch, Update)>,
    ) -> Result<Committed, PublishError> {
        if self.inner.writes.is_closed() {
            return Err(PublishError::ShuttingDown);
        }
        // The token lives as long as the write itself: even if this future
        // is dropped, a shutdown waits for the blocking write to finish.
        let token = self.inner.writes.token();
        let mut batch = Batch::default();
        let mut updates = Vec::with_capacity(parts.len());
        for (b, update) in parts {
            let paths: Vec<PathBuf> = b.writes.iter().map(|w| w.path.clone()).collect();
            updates.push((update, paths));
            batch.extend(b);
        }
        let root = Arc::clone(&self.inner.root);
        let skip = self.inner.daemon;
        let result = tokio::task::spawn_blocking(move || {
            let r = disk::commit(&root, &batch, skip);
            drop(token);
            r
        })
        .await
        .unwrap_or_else(|e| Err(WriteError::other(&format!("the write task failed: {e}"))));
        let now = unix_now();
        match result {
            Ok(done) => {
                for (update, paths) in &updates {
                    self.succeeded(&done, update, paths, now);
                }
                Ok(done)
            }
            Err(e) => {
                for (update, paths) in &updates {
                    let output = update.output();
                    self.inner.events.write_failed(&output, &label(paths));
                }
                if self.inner.daemon {
                    let outputs: Vec<Output> = updates.iter().map(|(u, _)| u.output()).collect();
                    log_failure(&outputs, &e.to_string());
                }
                Err(e.into())
            }
        }
    }

    /// Records and logs one update of a committed batch; `paths` are its
    /// files.
    fn succeeded(&self, done: &Committed, update: &Update, paths: &[PathBuf], now: i64) {
        // A set: a federation's trust_bundles_dir makes a batch of a
        // thousand files, and a scan per file would make it quadratic.
        let mine: std::collections::HashSet<&PathBuf> = paths.iter().collect();
        let written: Vec<(PathBuf, Method)> = done
            .written
            .iter()
            .filter(|(p, _)| mine.contains(p))
            .cloned()
            .collect();
        let is_x509 = matches!(update, Update::X509(_));
        let changed = !written.is_empty() || (is_x509 && !done.removed.is_empty());
        self.inner.events.written(
            update,
            Written {
                label: &label(paths),
                changed,
                methods: &written,
                now,
            },
        );
        log_written(update, changed, &written, done.removed.len());
        if is_x509 {
            let first = !self.inner.x509_seen.swap(true, Ordering::SeqCst);
            if let (true, Some(r)) = (changed || first, &self.inner.renewals) {
                r.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Records a failure of `output` that happened before its write, and
    /// logs it once.
    pub fn failed(&self, output: &Output, reason: &str) {
        log_failure(std::slice::from_ref(output), reason);
        self.inner.events.failed(output);
    }

    /// Refuses new batches and waits up to `limit` for the ones under way.
    /// Returns false when some were still running at the deadline.
    pub async fn close(&self, limit: Duration) -> bool {
        self.inner.writes.close();
        tokio::time::timeout(limit, self.inner.writes.wait())
            .await
            .is_ok()
    }
}

fn log_failure(outputs: &[Output], reason: &str) {
    match outputs {
        [Output::X509] => error!("X.509 update not written: {reason}"),
        [one] => {
            let path = one.path().unwrap_or_else(|| std::path::Path::new(""));
            error!(path = %path.display(), "not written: {reason}");
        }
        _ => error!("nothing was written: {reason}"),
    }
}

/// The file that names an output in metrics: its batch's last (the
/// certificate, for X.509).
fn label(paths: &[PathBuf]) -> String {
    paths
        .last()
        .map(|p| crate::status::key(p))
        .unwrap_or_default()
}

/// The log line of one written (or unchanged) update.
fn log_written(update: &Update, changed: bool, written: &[(PathBuf, Method)], removed: usize) {
    match update {
        Update::X509(info) => {
            for td in &info.refused_trust_domains {
                warn!(trust_domain = %td, "a trust domain whose name cannot be a safe file name is not written to trust_bundles_dir");
            }
            if changed {
                info!(
                    spiffe_id = %info.spiffe_id,
                    serial = %info.serial,
                    files = %paths(written),
                    removed,
                    "X.509 SVID written"
                );
            } else {
                debug!(spiffe_id = %info.spiffe_id, serial = %info.serial, "X.509 update unchanged: nothing written");
            }
        }
        Update::JwtBundle { path, info } => {
            if changed {
                info!(trust_domains = info.trust_domains.len(), path = %path.display(), "JWT bundle written");
            } else {
                debug!(path = %path.display(), "JWT bundle unchanged: nothing written");
            }
        }
        Update::JwtSvid {
            path,
            spiffe_id,
            audiences,
            ..
        } => {
            if changed {
                info!(spiffe_id = %spiffe_id, audience = ?audiences, path = %path.display(), "JWT SVID written");
            } else {
                debug!(path = %path.display(), "JWT SVID unchanged: nothing written");
            }
        }
    }
}

fn paths(p: &[(PathBuf, Method)]) -> String {
    let names: Vec<String> = p
        .iter()
        .map(|(p, m)| match m {
            Method::Atomic => p.display().to_string(),
            Method::InPlace => format!("{} (in place)", p.display()),
        })
        .collect();
    names.join(", ")
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
