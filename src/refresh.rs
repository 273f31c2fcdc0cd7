//! One JWT-SVID refresher per `jwt_svids` entry: fetch, validate, write,
//! sleep until half the token's remaining lifetime has passed (plus a
//! second); on error retry after 1 s, doubling up to 60 s, back to the
//! normal schedule after a success. Refreshers share the agent's one
//! channel and never wait for each other.

use std::time::Duration;

use spiffe::JwtSvid;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backoff::{sleep_or_cancel, Backoff};
use crate::clock::unix_now;
use crate::config::JwtSvidOutput;
use crate::jwt::{next_refresh, render_token};
use crate::publish::{Output, PublishError, Publisher, Update};
use crate::watch::Reporter;
use crate::workload::{Agent, ErrorKind, WorkloadError, CALL_DEADLINE};

/// The first retry delay and the cap after a failed refresh.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Why one refresh failed.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("the agent rejected the fetched token: {0}")]
    Invalid(WorkloadError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// How many refreshers talk to the agent at the same moment. A hundred
/// entries all fetching at start-up would hold a hundred sets of HTTP/2 and
/// decode buffers at once, whose freed memory stays with the process; a
/// few at a time cost little, and as every call has a deadline, a call that
/// hangs holds its place for at most that long.
pub const CONCURRENT_FETCHES: usize = 8;

/// Keeps one JWT-SVID file fresh until cancelled.
pub async fn run(
    agent: Agent,
    entry: JwtSvidOutput,
    hint: Option<String>,
    publisher: Publisher,
    fetches: std::sync::Arc<tokio::sync::Semaphore>,
    token: CancellationToken,
) {
    let mut retry = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut reporter = Reporter::new("JWT SVID", agent.socket());
    let audiences = entry.audiences();
    let output = Output::Jwt(entry.file.path.clone());
    loop {
        // Boxed: the call's large state lives only while it runs, so a
        // hundred sleeping refreshers hold a few hundred bytes each.
        let call = Box::pin(async {
            let _turn = fetches.acquire().await;
            once(&agent, &entry, &audiences, hint.as_deref(), &publisher).await
        });
        let attempt = tokio::select! {
            biased;
            () = token.cancelled() => return,
            r = call => r,
        };
        let wait = match attempt {
            Ok(svid) => {
                retry.reset();
                reporter.recovered();
                let wait = next_refresh(svid.expiry().unix_timestamp(), unix_now());
                debug!(path = %entry.file.path.display(), "next JWT SVID refresh in {} s", wait.as_secs());
                wait
            }
            Err(e) => {
                let delay = retry.next_delay();
                match &e {
                    // Logged and recorded by the publisher.
                    RefreshError::Publish(_) => {}
                    RefreshError::Workload(w) if w.kind() == ErrorKind::HintNotFound => {
                        // As upstream: a hint that matches nothing fails the file.
                        publisher.mark_failed(&output);
                        reporter.failed(w);
                    }
                    RefreshError::Workload(w) | RefreshError::Invalid(w) => reporter.failed(w),
                }
                debug!(path = %entry.file.path.display(), "JWT SVID: retrying in {} ms", delay.as_millis());
                delay
            }
        };
        if sleep_or_cancel(&token, wait).await {
            return;
        }
    }
}

async fn once(
    agent: &Agent,
    entry: &JwtSvidOutput,
    audiences: &[String],
    hint: Option<&str>,
    publisher: &Publisher,
) -> Result<JwtSvid, RefreshError> {
    let svid = agent.fetch_jwt_svid(audiences, hint, CALL_DEADLINE).await?;
    agent
        .validate_jwt(&entry.audience, svid.token())
        .await
        .map_err(RefreshError::Invalid)?;
    let batch = render_token(&svid, entry);
    let update = Update::JwtSvid {
        path: entry.file.path.clone(),
        spiffe_id: svid.spiffe_id().to_string(),
        audiences: audiences.to_vec(),
        expiry: svid.expiry().unix_timestamp(),
    };
    publisher.publish(batch, update).await?;
    Ok(svid)
}
