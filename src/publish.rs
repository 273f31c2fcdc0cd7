//! The one place a rendered batch goes to disk: the blocking write (whole or
//! not at all, unchanged files skipped), the status, the log line saying
//! what really happened, and the supervisor's renewal signal.
//!
//! A shutdown waits for a batch under way ([`Publisher::close`]), so a
//! SIGTERM never cuts a write in half and never leaves a temporary file
//! holding key material behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::{debug, error, info};

use crate::clock::unix_now;
use crate::disk::{self, Batch, Committed, Method, Root, WriteError};
use crate::jwt::JwtBundleInfo;
use crate::metrics::{Metrics, OutputKind};
use crate::status::{StatusTx, WriteStatus};
use crate::x509::X509Info;

/// Which output a batch belongs to, with what the status and the log need.
#[derive(Debug, Clone)]
pub enum Update {
    X509(X509Info),
    JwtBundle {
        path: std::path::PathBuf,
        info: JwtBundleInfo,
    },
    JwtSvid {
        path: std::path::PathBuf,
        spiffe_id: String,
        audiences: Vec<String>,
        expiry: i64,
    },
}

/// The output a failure belongs to.
#[derive(Debug, Clone)]
pub enum Output {
    X509,
    Jwt(std::path::PathBuf),
}

impl Update {
    fn kind(&self) -> OutputKind {
        match self {
            Update::X509(_) => OutputKind::X509,
            Update::JwtBundle { .. } => OutputKind::JwtBundle,
            Update::JwtSvid { .. } => OutputKind::JwtSvid,
        }
    }

    fn output(&self) -> Output {
        match self {
            Update::X509(_) => Output::X509,
            Update::JwtBundle { path, .. } | Update::JwtSvid { path, .. } => {
                Output::Jwt(path.clone())
            }
        }
    }
}

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
    status: StatusTx,
    metrics: Metrics,
    renewals: watch::Sender<u64>,
    /// Whether an X.509 batch has been published since start-up: the first
    /// one starts `cmd` and signals the pid file even when the files on disk
    /// were already current, as upstream does.
    x509_seen: AtomicBool,
    gate: Mutex<Gate>,
    idle: Notify,
}

#[derive(Default)]
struct Gate {
    closed: bool,
    active: usize,
}

impl Publisher {
    pub fn new(
        status: StatusTx,
        renewals: watch::Sender<u64>,
        metrics: Metrics,
        root: Arc<Root>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                root,
                status,
                metrics,
                renewals,
                x509_seen: AtomicBool::new(false),
                gate: Mutex::new(Gate::default()),
                idle: Notify::new(),
            }),
        }
    }

    /// A publisher for a reloaded configuration: the same status, metrics
    /// and renewals, `cert_dir` as `root`, and whether the first X.509
    /// batch was seen (so an unchanged update after a reload signals
    /// nothing).
    #[must_use]
    pub fn reconfigured(&self, root: Arc<Root>) -> Self {
        Self {
            inner: Arc::new(Inner {
                root,
                status: self.inner.status.clone(),
                metrics: self.inner.metrics.clone(),
                renewals: self.inner.renewals.clone(),
                x509_seen: AtomicBool::new(self.inner.x509_seen.load(Ordering::SeqCst)),
                gate: Mutex::new(Gate::default()),
                idle: Notify::new(),
            }),
        }
    }

    /// Writes `batch` for `update`. Unchanged files are left alone; the
    /// supervisor hears of an X.509 batch only when something changed (or
    /// for the first one after start-up).
    pub async fn publish(&self, batch: Batch, update: Update) -> Result<Committed, PublishError> {
        let Some(guard) = self.enter() else {
            return Err(PublishError::ShuttingDown);
        };
        // The file that names the output in metrics: the last one written
        // (the certificate, for X.509).
        let label = batch
            .writes
            .last()
            .map(|w| crate::status::key(&w.path))
            .unwrap_or_default();
        // The guard lives as long as the write itself: even if this future
        // is dropped, a shutdown waits for the blocking write to finish.
        let root = Arc::clone(&self.inner.root);
        let result = tokio::task::spawn_blocking(move || {
            let r = disk::commit(&root, &batch, true);
            drop(guard);
            r
        })
        .await
        .unwrap_or_else(|e| Err(WriteError::other(&format!("the write task failed: {e}"))));
        match result {
            Ok(done) => {
                self.succeeded(&done, &update, &label);
                Ok(done)
            }
            Err(e) => {
                self.inner.metrics.write_failed(update.kind(), &label);
                self.failed(&update.output(), &e.to_string());
                Err(e.into())
            }
        }
    }

    fn succeeded(&self, done: &Committed, update: &Update, label: &str) {
        let changed = done.changed();
        let now = unix_now();
        if !done.written.is_empty() {
            let methods = done.written.clone();
            self.inner.status.send_if_modified(|s| {
                let mut modified = false;
                for (path, method) in methods {
                    let was = s.write_methods.insert(crate::status::key(&path), method);
                    modified |= was != Some(method);
                }
                modified
            });
        }
        let metrics = &self.inner.metrics;
        metrics.written(update.kind(), label, now, changed);
        match update {
            Update::X509(info) => {
                for td in &info.refused_trust_domains {
                    tracing::warn!(trust_domain = %td, "a trust domain whose name cannot be a safe file name is not written to trust_bundles_dir");
                }
                if changed {
                    info!(
                        spiffe_id = %info.spiffe_id,
                        serial = %info.serial,
                        files = %paths(&done.written),
                        removed = done.removed.len(),
                        "X.509 SVID written"
                    );
                } else {
                    debug!(spiffe_id = %info.spiffe_id, serial = %info.serial, "X.509 update unchanged: nothing written");
                }
                metrics.x509_svid(info.not_before, info.not_after, &info.bundles);
                let info = info.clone();
                self.inner.status.send_modify(|s| {
                    s.x509 = Some(WriteStatus::Written);
                    s.x509_not_after = Some(info.not_after);
                    s.x509_info = Some(info);
                    if changed || s.x509_written_at.is_none() {
                        s.x509_written_at = Some(now);
                    }
                });
                let first = !self.inner.x509_seen.swap(true, Ordering::SeqCst);
                if changed || first {
                    self.inner.renewals.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Update::JwtBundle { path, info } => {
                if changed {
                    info!(trust_domains = info.trust_domains.len(), path = %path.display(), "JWT bundle written");
                } else {
                    debug!(path = %path.display(), "JWT bundle unchanged: nothing written");
                }
                metrics.jwt_bundle(&info.trust_domains);
                let tds = info.trust_domains.clone();
                self.inner.status.send_modify(|s| {
                    if let Some(b) = &mut s.jwt_bundle {
                        b.trust_domains = tds;
                        if changed || b.written_at.is_none() {
                            b.written_at = Some(now);
                        }
                    }
                });
                crate::status::set_jwt(&self.inner.status, path, WriteStatus::Written);
            }
            Update::JwtSvid {
                path,
                spiffe_id,
                audiences,
                expiry,
            } => {
                if changed {
                    info!(spiffe_id = %spiffe_id, audience = ?audiences, path = %path.display(), "JWT SVID written");
                } else {
                    debug!(path = %path.display(), "JWT SVID unchanged: nothing written");
                }
                let key = crate::status::key(path);
                metrics.jwt_svid(&key, *expiry);
                let (sub, expiry) = (spiffe_id.clone(), *expiry);
                self.inner.status.send_modify(|s| {
                    if let Some(j) = s.jwt_svids.get_mut(&key) {
                        j.sub = Some(sub);
                        j.expiry = Some(expiry);
                        if changed || j.written_at.is_none() {
                            j.written_at = Some(now);
                        }
                    }
                });
                crate::status::set_jwt(&self.inner.status, path, WriteStatus::Written);
            }
        }
    }

    /// The metrics, for the tasks that report into them directly.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The shared status, for the tasks that report into it directly.
    pub fn status(&self) -> &StatusTx {
        &self.inner.status
    }

    /// Records a failure of `output` that happened before or during the
    /// write, and logs it once.
    pub fn failed(&self, output: &Output, reason: &str) {
        match output {
            Output::X509 => error!("X.509 update not written: {reason}"),
            Output::Jwt(path) => error!(path = %path.display(), "not written: {reason}"),
        }
        self.mark_failed(output);
    }

    /// Marks `output` failed without a log line (the caller logged it).
    pub fn mark_failed(&self, output: &Output) {
        match output {
            Output::X509 => {
                self.inner.status.send_if_modified(|s| {
                    s.x509.replace(WriteStatus::Failed) != Some(WriteStatus::Failed)
                });
            }
            Output::Jwt(path) => {
                crate::status::set_jwt(&self.inner.status, path, WriteStatus::Failed);
            }
        }
    }

    fn enter(&self) -> Option<GateGuard> {
        let mut g = self.inner.gate.lock().ok()?;
        if g.closed {
            return None;
        }
        g.active += 1;
        Some(GateGuard {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Refuses new batches and waits up to `limit` for the ones under way.
    /// Returns false when some were still running at the deadline.
    pub async fn close(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let Ok(mut g) = self.inner.gate.lock() else {
                        return;
                    };
                    g.closed = true;
                    if g.active == 0 {
                        return;
                    }
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

struct GateGuard {
    inner: Arc<Inner>,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        if let Ok(mut g) = self.inner.gate.lock() {
            g.active -= 1;
            if g.active == 0 {
                self.inner.idle.notify_waiters();
            }
        }
    }
}

fn paths(p: &[(std::path::PathBuf, Method)]) -> String {
    let names: Vec<String> = p
        .iter()
        .map(|(p, m)| match m {
            Method::Atomic => p.display().to_string(),
            Method::InPlace => format!("{} (in place)", p.display()),
        })
        .collect();
    names.join(", ")
}
