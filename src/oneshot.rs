//! One-shot mode (`daemon_mode = false`): fetch everything once, write it,
//! and report success or the reason for failure.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::disk::WriteError;
use crate::workload::{Agent, Client, WorkloadError};
use crate::x509::RenderError;
use crate::{jwt, x509};

/// How long transient Workload API failures are retried, in all.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("giving up after {:.1}s of retries: {last}", waited.as_secs_f64())]
    GaveUp {
        waited: Duration,
        #[source]
        last: WorkloadError,
    },
    #[error("X.509 SVID: {0}")]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Fetches and writes the X.509 SVID, then the JWT bundle, then each JWT
/// SVID, retrying transient failures within [`RETRY_BUDGET`].
pub async fn run(cfg: &Config) -> Result<(), OneShotError> {
    run_with_budget(cfg, RETRY_BUDGET).await
}

pub async fn run_with_budget(cfg: &Config, budget: Duration) -> Result<(), OneShotError> {
    let mut session = Session {
        agent: Agent::new(cfg.agent_socket.clone()),
        client: None,
        started: Instant::now(),
        budget,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
    };
    let hint = cfg.hint.as_deref();

    if let Some(out) = &cfg.x509 {
        let ctx = session
            .call(|c| async move { c.fetch_x509().await })
            .await?;
        let files = x509::render(&ctx, out, hint, unix_now())?;
        x509::write(&files, out)?;
        info!(
            spiffe_id = %files.spiffe_id,
            serial = %files.serial,
            svid = %out.svid.path.display(),
            key = %out.key.path.display(),
            bundle = %out.bundle.path.display(),
            "X.509 SVID written"
        );
    }
    if let Some(out) = &cfg.jwt_bundle {
        let set = session
            .call(|c| async move { c.fetch_jwt_bundles().await })
            .await?;
        jwt::write_bundles(&jwt::render_bundles(&set), out)?;
        info!(trust_domains = set.len(), path = %out.path.display(), "JWT bundle written");
    }
    for entry in &cfg.jwt_svids {
        let audiences = entry.audiences();
        let svid = session
            .call(|c| {
                let audiences = audiences.clone();
                async move { c.fetch_jwt_svid(&audiences, hint).await }
            })
            .await?;
        jwt::write_token(&jwt::render_token(&svid), entry)?;
        info!(
            spiffe_id = %svid.spiffe_id(),
            audience = ?audiences,
            path = %entry.file.path.display(),
            "JWT SVID written"
        );
    }
    Ok(())
}

struct Session {
    agent: Agent,
    client: Option<Client>,
    started: Instant,
    budget: Duration,
    backoff: Backoff,
}

impl Session {
    /// Runs `call` with a connected client, retrying transient failures
    /// (agent not up yet, identity not issued yet) until the budget is spent.
    async fn call<T, F, Fut>(&mut self, call: F) -> Result<T, OneShotError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, WorkloadError>>,
    {
        loop {
            let connected = match &self.client {
                Some(c) => Ok(c.clone()),
                None => self.agent.connect().await,
            };
            let err = match connected {
                Ok(client) => {
                    self.client = Some(client.clone());
                    match call(client).await {
                        Ok(v) => {
                            self.backoff.reset();
                            return Ok(v);
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(err.into());
            }
            if matches!(err, WorkloadError::Unavailable { .. }) {
                self.client = None;
            }
            let waited = self.started.elapsed();
            let delay = self.backoff.next_delay();
            if waited + delay > self.budget {
                return Err(OneShotError::GaveUp { waited, last: err });
            }
            warn!("{err}; retrying in {} ms", delay.as_millis());
            tokio::time::sleep(delay).await;
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
