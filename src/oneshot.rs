//! One-shot mode (`daemon_mode = false`): fetch everything once, write it as
//! one batch, and report success or the reason for failure.
//!
//! The agent may not be there yet (an init container that starts before
//! it) or may not have minted this workload's entry yet: both are retried
//! with capped exponential backoff and jitter for up to `oneshot_max_wait`
//! in all (by default longer than the Go helper's ~81 minutes). Every call
//! has a deadline, so an agent that accepts and never answers cannot hang
//! an init container. A failure writes nothing.

use std::future::Future;
use std::time::{Duration, Instant};

use spiffe::JwtSvid;
use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::clock::unix_now;
use crate::config::Config;
use crate::disk::{Batch, Root};
use crate::events::{Events, Update};
use crate::publish::{prepare_outputs, PublishError, Publisher};
use crate::stream::human;
use crate::workload::{Agent, WorkloadError, CALL_DEADLINE};
use crate::x509::RenderError;
use crate::{jwt, x509};

/// The retry delays: from 200 ms, doubling, at most 30 s (plus jitter).
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    #[error("{what}: {source}")]
    Workload {
        what: String,
        #[source]
        source: WorkloadError,
    },
    #[error("{what}: gave up after waiting {} (oneshot_max_wait): {last}", human(*waited))]
    GaveUp {
        what: String,
        waited: Duration,
        #[source]
        last: WorkloadError,
    },
    #[error("X.509 SVID: {0}")]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] PublishError),
    #[error("{what}: the agent rejected the fetched token: {source}")]
    Invalid {
        what: String,
        #[source]
        source: WorkloadError,
    },
}

/// Fetches the X.509 SVID, the JWT bundle and each JWT SVID, then writes
/// them all in one batch.
pub async fn run(cfg: &Config) -> Result<(), OneShotError> {
    let root = std::sync::Arc::new(Root::new(&cfg.cert_dir));
    prepare_outputs(cfg, &root).await;
    let agent = Agent::new(cfg.agent_socket.clone());
    let mut wait = Patience::new(cfg.oneshot_max_wait);
    let hint = cfg.hint.as_deref();

    // The first attempt sends every call at once over the one connection;
    // a call that fails transiently is then retried on its own.
    let deadline = wait.deadline();
    let (first_x509, first_bundles, first_tokens) = tokio::join!(
        async {
            match cfg.x509 {
                Some(_) => Some(agent.fetch_x509(deadline).await),
                None => None,
            }
        },
        async {
            match cfg.jwt_bundle {
                Some(_) => Some(agent.fetch_jwt_bundles(deadline).await),
                None => None,
            }
        },
        futures_util::future::join_all(cfg.jwt_svids.iter().map(|e| agent.fetch_jwt_svid_owned(
            e.audiences(),
            hint,
            deadline
        ))),
    );

    // Everything is fetched before anything is written: one batch, through
    // the same publisher as daemon mode.
    let mut parts: Vec<(Batch, Update)> = Vec::new();
    if let (Some(out), Some(first)) = (&cfg.x509, first_x509) {
        let ctx = wait
            .retry("X.509 SVID", first, |d| agent.fetch_x509(d))
            .await?;
        for svid in ctx.svids() {
            info!(spiffe_id = %svid.spiffe_id(), hint = svid.hint().unwrap_or(""), "received X.509 SVID");
        }
        let r = x509::render(&ctx, out, hint, unix_now())?;
        parts.push((r.batch, Update::X509(r.info)));
    }
    if let (Some(out), Some(first)) = (&cfg.jwt_bundle, first_bundles) {
        let set = wait
            .retry("JWT bundle", first, |d| agent.fetch_jwt_bundles(d))
            .await?;
        let (batch, info) = jwt::render_bundles(&set, out);
        let path = out.path.clone();
        parts.push((batch, Update::JwtBundle { path, info }));
    }
    for (entry, first) in cfg.jwt_svids.iter().zip(first_tokens) {
        let audiences = entry.audiences();
        let what = format!("JWT SVID for {}", entry.audience);
        let svid: JwtSvid = wait
            .retry(&what, first, |d| agent.fetch_jwt_svid(&audiences, hint, d))
            .await?;
        // As in daemon mode: the agent checks the token before it is written.
        agent
            .validate_jwt(&entry.audience, svid.token())
            .await
            .map_err(|source| OneShotError::Invalid {
                what: what.clone(),
                source,
            })?;
        let update = Update::JwtSvid {
            path: entry.file.path.clone(),
            spiffe_id: svid.spiffe_id().to_string(),
            audiences,
            expiry: svid.expiry().unix_timestamp(),
        };
        parts.push((jwt::render_token(&svid, entry), update));
    }
    Publisher::one_shot(Events::new(cfg), root)
        .publish_parts(parts)
        .await?;
    Ok(())
}

/// The one-shot wait: one budget for every call, one backoff.
struct Patience {
    started: Instant,
    max: Duration,
    backoff: Backoff,
}

impl Patience {
    fn new(max: Duration) -> Self {
        Self {
            started: Instant::now(),
            max,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
        }
    }

    /// The deadline for the next call: the usual one, or what is left of
    /// the wait when that is longer.
    fn deadline(&self) -> Duration {
        let left = self.max.saturating_sub(self.started.elapsed());
        CALL_DEADLINE.min(left.max(Duration::from_secs(5)))
    }

    /// The first attempt's result, or `call` retried while the failure is
    /// transient and the wait lasts.
    async fn retry<T, F, Fut>(
        &mut self,
        what: &str,
        first: Result<T, WorkloadError>,
        call: F,
    ) -> Result<T, OneShotError>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, WorkloadError>>,
    {
        let mut result = first;
        loop {
            let err = match result {
                Ok(v) => {
                    self.backoff.reset();
                    return Ok(v);
                }
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(OneShotError::Workload {
                    what: what.to_owned(),
                    source: err,
                });
            }
            let waited = self.started.elapsed();
            let delay = self.backoff.next_delay();
            if waited + delay > self.max {
                return Err(OneShotError::GaveUp {
                    what: what.to_owned(),
                    waited,
                    last: err,
                });
            }
            warn!(
                "waiting for the {what}: {err}; waited {} so far, retrying in {:.1}s (oneshot_max_wait {})",
                human(waited),
                delay.as_secs_f64(),
                human(self.max)
            );
            tokio::time::sleep(delay).await;
            result = call(self.deadline()).await;
        }
    }
}

impl Agent {
    /// [`Agent::fetch_jwt_svid`] with owned audiences, for joining many.
    async fn fetch_jwt_svid_owned(
        &self,
        audiences: Vec<String>,
        hint: Option<&str>,
        deadline: Duration,
    ) -> Result<JwtSvid, WorkloadError> {
        self.fetch_jwt_svid(&audiences, hint, deadline).await
    }
}
