//! One-shot mode (`daemon_mode = false`): fetch everything once, write it,
//! and report success or the reason for failure.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::clock::unix_now;

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::config::Config;
use crate::disk::{self, FileWrite, WriteError};
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

    // Fetch everything first, then write it all as one batch: a failure
    // anywhere leaves the disk as it was. The first attempt sends every
    // call at once over one connection (the JWT SVIDs in file order); a
    // call that fails transiently is retried on its own.
    let client = session
        .call(|c| async move { Ok::<_, WorkloadError>(c) })
        .await?;
    let (first_x509, first_bundles, first_tokens) = tokio::join!(
        async {
            match cfg.x509 {
                Some(_) => Some(client.fetch_x509().await),
                None => None,
            }
        },
        async {
            match cfg.jwt_bundle {
                Some(_) => Some(client.fetch_jwt_bundles().await),
                None => None,
            }
        },
        async {
            let mut out = Vec::with_capacity(cfg.jwt_svids.len());
            for entry in &cfg.jwt_svids {
                out.push(client.fetch_jwt_svid(&entry.audiences(), hint).await);
            }
            out
        },
    );

    let x509 = match (&cfg.x509, first_x509) {
        (Some(out), Some(first)) => {
            let ctx = session
                .retry(first, |c| async move { c.fetch_x509().await })
                .await?;
            Some((x509::render(&ctx, out, hint, unix_now())?, out))
        }
        _ => None,
    };
    let bundles = match (&cfg.jwt_bundle, first_bundles) {
        (Some(out), Some(first)) => {
            let set = session
                .retry(first, |c| async move { c.fetch_jwt_bundles().await })
                .await?;
            Some((jwt::render_bundles(&set), set.len(), out))
        }
        _ => None,
    };
    let mut tokens = Vec::with_capacity(cfg.jwt_svids.len());
    for (entry, first) in cfg.jwt_svids.iter().zip(first_tokens) {
        let audiences = entry.audiences();
        let svid = session
            .retry(first, |c| {
                let audiences = audiences.clone();
                async move { c.fetch_jwt_svid(&audiences, hint).await }
            })
            .await?;
        tokens.push((
            jwt::render_token(&svid),
            svid.spiffe_id().to_string(),
            audiences,
            entry,
        ));
    }

    let mut writes: Vec<FileWrite<'_>> = Vec::new();
    if let Some((files, out)) = &x509 {
        writes.extend(x509::file_writes(files, out));
    }
    if let Some((bytes, _, out)) = &bundles {
        writes.push(FileWrite {
            path: &out.path,
            bytes,
            mode: out.mode,
        });
    }
    for (token, _, _, entry) in &tokens {
        writes.push(FileWrite {
            path: &entry.file.path,
            bytes: token.expose(),
            mode: entry.file.mode,
        });
    }
    disk::write_files(&writes)?;

    if let Some((files, _)) = &x509 {
        info!(
            spiffe_id = %files.spiffe_id,
            serial = %files.serial,
            "X.509 SVID written"
        );
    }
    if let Some((_, trust_domains, out)) = &bundles {
        info!(trust_domains, path = %out.path.display(), "JWT bundle written");
    }
    for (_, spiffe_id, audiences, entry) in &tokens {
        info!(
            spiffe_id = %spiffe_id,
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
    /// The result of a first attempt, or `call` retried as [`Self::call`]
    /// does when that attempt failed transiently.
    async fn retry<T, F, Fut>(
        &mut self,
        first: Result<T, WorkloadError>,
        call: F,
    ) -> Result<T, OneShotError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, WorkloadError>>,
    {
        match first {
            Ok(v) => Ok(v),
            Err(e) if e.is_transient() => {
                if matches!(e, WorkloadError::Unavailable { .. }) {
                    self.client = None;
                }
                warn!("{e}; retrying");
                self.call(call).await
            }
            Err(e) => Err(e.into()),
        }
    }

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
