//! One JWT-SVID refresher per `jwt_svids` entry: fetch, validate, write,
//! sleep until half the token's remaining lifetime has passed (plus a
//! second); on error retry after 1 s, doubling up to 60 s, back to the
//! normal schedule after a success. Refreshers share the agent's one
//! channel and never wait for each other.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use spiffe::JwtSvid;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::backoff::{sleep_or_cancel, Backoff};
use crate::clock::unix_now;
use crate::config::JwtSvidOutput;
use crate::events::{Output, Update};
use crate::jwt::{next_refresh, render_token};
use crate::publish::{PublishError, Publisher};
use crate::stream::Reporter;
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

/// What a refresher asks of the agent: the seam the schedule tests replace
/// with a scripted agent under paused time.
pub trait JwtSource: Send + Sync {
    /// The agent's socket, for messages.
    fn socket(&self) -> &Path;
    /// A JWT-SVID for `audiences` (the first is the main one).
    fn fetch(
        &self,
        audiences: &[String],
        hint: Option<&str>,
    ) -> impl Future<Output = Result<JwtSvid, WorkloadError>> + Send;
    /// The agent's verdict on a token it minted.
    fn validate(
        &self,
        audience: &str,
        token: &str,
    ) -> impl Future<Output = Result<(), WorkloadError>> + Send;
}

impl JwtSource for Agent {
    fn socket(&self) -> &Path {
        Agent::socket(self)
    }

    async fn fetch(
        &self,
        audiences: &[String],
        hint: Option<&str>,
    ) -> Result<JwtSvid, WorkloadError> {
        self.fetch_jwt_svid(audiences, hint, CALL_DEADLINE).await
    }

    async fn validate(&self, audience: &str, token: &str) -> Result<(), WorkloadError> {
        self.validate_jwt(audience, token).await
    }
}

/// How many refreshers talk to the agent at the same moment. A hundred
/// entries all fetching at start-up would hold a hundred sets of HTTP/2 and
/// decode buffers at once, whose freed memory stays with the process; a
/// few at a time cost little, and as every call has a deadline, a call that
/// hangs holds its place for at most that long.
pub const CONCURRENT_FETCHES: usize = 8;

/// Keeps one JWT-SVID file fresh until cancelled.
pub async fn run(
    agent: impl JwtSource,
    entry: JwtSvidOutput,
    hint: Option<String>,
    publisher: Publisher,
    fetches: std::sync::Arc<tokio::sync::Semaphore>,
    token: CancellationToken,
) {
    let mut retry = Backoff::new(RETRY_FIRST, RETRY_MAX);
    let mut reporter = Reporter::new("JWT SVID", agent.socket());
    let audiences = entry.audiences();
    let output = Output::JwtSvid(entry.file.path.clone());
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
                        publisher.events().failed(&output);
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
    agent: &impl JwtSource,
    entry: &JwtSvidOutput,
    audiences: &[String],
    hint: Option<&str>,
    publisher: &Publisher,
) -> Result<JwtSvid, RefreshError> {
    let svid = agent.fetch(audiences, hint).await?;
    agent
        .validate(&entry.audience, svid.token())
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use fake_workload_api::Pki;
    use tokio::time::Instant;

    use super::*;
    use crate::disk::Root;
    use crate::events::Events;

    /// An agent that fails the fetches it is told to and mints real tokens
    /// otherwise, recording when each fetch came (in tokio's time).
    struct Scripted {
        pki: Pki,
        ttl: Duration,
        fail_next: Mutex<u32>,
        fetches: Mutex<Vec<Instant>>,
    }

    impl JwtSource for Arc<Scripted> {
        fn socket(&self) -> &Path {
            Path::new("/scripted/agent.sock")
        }

        async fn fetch(
            &self,
            audiences: &[String],
            _hint: Option<&str>,
        ) -> Result<JwtSvid, WorkloadError> {
            self.fetches.lock().unwrap().push(Instant::now());
            {
                let mut fail = self.fail_next.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return Err(WorkloadError::timeout_for_tests(self.socket()));
                }
            }
            let token = self
                .pki
                .jwt
                .mint("spiffe://example.org/workload", audiences, self.ttl);
            Ok(JwtSvid::parse_insecure(&token).expect("a token the fake minted"))
        }

        async fn validate(&self, _audience: &str, _token: &str) -> Result<(), WorkloadError> {
            Ok(())
        }
    }

    /// The gaps between the first `n` fetches, in seconds, once there are
    /// that many (time runs only while every task waits on a timer).
    async fn gaps(agent: &Scripted, n: usize) -> Vec<f64> {
        loop {
            let t = agent.fetches.lock().unwrap().clone();
            if t.len() >= n {
                return t
                    .windows(2)
                    .take(n - 1)
                    .map(|w| (w[1] - w[0]).as_secs_f64())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[track_caller]
    fn about(what: &str, got: f64, want: f64) {
        // The jitter only lengthens a retry delay, by at most 10 %; the
        // 10 ms polling of `gaps` is not in the fetch times.
        assert!(
            got >= want && got <= want * 1.1 + 0.05,
            "{what}: {got:.3} s, expected {want} s (+10 %)"
        );
    }

    /// A refresher of one `jwt_svids` entry writing into a temporary
    /// directory, against a scripted agent that fails its first `failures`
    /// fetches and then mints tokens of 600 s.
    struct Running {
        agent: Arc<Scripted>,
        events: Events,
        dir: tempfile::TempDir,
        token: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(failures: u32) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::testing::ok(&format!(
            "cert_dir = \"{}\"\njwt_svids = [{{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }}]\n",
            dir.path().display()
        ));
        let events = Events::new(&cfg);
        let publisher =
            crate::publish::Publisher::one_shot(events.clone(), Arc::new(Root::new(&cfg.cert_dir)));
        let agent = Arc::new(Scripted {
            pki: Pki::new(),
            // Refreshed after half its remaining lifetime plus a second.
            ttl: Duration::from_secs(600),
            fail_next: Mutex::new(failures),
            fetches: Mutex::new(Vec::new()),
        });
        let token = CancellationToken::new();
        let task = tokio::spawn(run(
            Arc::clone(&agent),
            cfg.jwt_svids[0].clone(),
            None,
            publisher,
            Arc::new(tokio::sync::Semaphore::new(1)),
            token.clone(),
        ));
        Running {
            agent,
            events,
            dir,
            token,
            task,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_after_1_2_4_8_seconds_then_follows_the_lifetime_and_starts_over_at_1() {
        let Running {
            agent,
            events,
            dir,
            token,
            task,
        } = start(4);
        // Four failures, a success, then the refresh by the lifetime.
        let g = gaps(&agent, 6).await;
        for (i, want) in [1.0, 2.0, 4.0, 8.0].into_iter().enumerate() {
            about(&format!("retry {}", i + 1), g[i], want);
        }
        // 600 s of lifetime, wall-clock: half of what is left plus 1 s.
        assert!(
            (300.0..=302.0).contains(&g[4]),
            "refresh after {:.1} s",
            g[4]
        );
        assert!(dir.path().join("db.token").exists());
        assert_eq!(
            events.subscribe().borrow().jwt.values().next(),
            Some(&crate::status::WriteStatus::Written)
        );

        // A later failure starts over from 1 s, not 16 s, and the lifetime
        // rules again after the success.
        *agent.fail_next.lock().unwrap() = 1;
        let g = gaps(&agent, 9).await;
        assert!(
            (300.0..=302.0).contains(&g[5]),
            "refresh after {:.1} s",
            g[5]
        );
        about("the first retry after a later failure", g[6], 1.0);
        assert!(
            (300.0..=302.0).contains(&g[7]),
            "refresh after {:.1} s",
            g[7]
        );

        token.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_retry_delay_doubles_up_to_sixty_seconds() {
        let Running {
            agent, token, task, ..
        } = start(u32::MAX);
        let g = gaps(&agent, 11).await;
        for (i, want) in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
            .into_iter()
            .enumerate()
        {
            about(&format!("retry {}", i + 1), g[i], want);
        }
        token.cancel();
        task.await.unwrap();
    }
}
