//! The one watcher of a Workload API stream, for the X.509 and the JWT
//! bundle streams alike: subscribe, render and publish each message, and
//! when the stream breaks report why and subscribe again after a backoff,
//! until cancelled.
//!
//! Warnings are de-duplicated by the kind of failure, not its text: the
//! first few name the cause, then a reminder at warn level at most every
//! [`REMIND_EVERY`], never silence; a recovery is logged once.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backoff::{sleep_or_cancel, Backoff};
use crate::disk::Batch;
use crate::events::{Output, Update};
use crate::publish::Publisher;
use crate::workload::{ErrorKind, WorkloadError};

/// How long a newly opened stream may stay silent before it is abandoned
/// and opened again: an agent that answers the call and then sends nothing
/// is stuck, and waiting on it in silence would hide that.
pub const FIRST_MESSAGE: Duration = Duration::from_secs(60);

/// How many identical warnings are logged before they turn into reminders.
pub const LOUD: u32 = 3;
/// How often a reminder is logged while the same failure goes on.
pub const REMIND_EVERY: Duration = Duration::from_secs(180);

/// Which stream a watcher follows.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Its name in the log (`X.509 SVID stream`).
    pub name: &'static str,
    /// Its key in the status and the metrics (`x509`, `jwt_bundle`).
    pub key: &'static str,
    /// The output its messages are written to: a message that cannot be
    /// used fails it, and the files on disk are kept.
    pub output: Output,
}

/// The one watcher: subscribes with `open`, renders each message with
/// `render` into a batch and publishes it, until `token` is cancelled.
/// When the stream breaks it reports why (the log, the status, the
/// metrics) and subscribes again after a backoff.
pub async fn watch<T, S, Open, OpenFut, Render>(
    watched: Watched,
    socket: &std::path::Path,
    open: Open,
    render: Render,
    publisher: &Publisher,
    token: CancellationToken,
) where
    S: Stream<Item = Result<T, WorkloadError>> + Unpin,
    Open: Fn() -> OpenFut,
    OpenFut: Future<Output = Result<S, WorkloadError>>,
    Render: Fn(&T) -> Result<(Batch, Update), String>,
{
    let Watched { name, key, output } = watched;
    let events = publisher.events();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut reporter = Reporter::new(name, socket);
    loop {
        let ended = tokio::select! {
            biased;
            () = token.cancelled() => return,
            e = async {
                let mut stream = match open().await {
                    Ok(s) => s,
                    Err(e) => return e,
                };
                // The first message must come within FIRST_MESSAGE; after
                // that a stream is quiet between rotations.
                let mut first = true;
                loop {
                    let next = if first {
                        match tokio::time::timeout(FIRST_MESSAGE, stream.next()).await {
                            Ok(n) => n,
                            Err(_) => return WorkloadError::stalled(socket, FIRST_MESSAGE),
                        }
                    } else {
                        stream.next().await
                    };
                    first = false;
                    match next {
                        Some(Ok(item)) => {
                            backoff.reset();
                            reporter.recovered();
                            events.stream_up(key);
                            match render(&item) {
                                // The publisher logs and records the outcome.
                                Ok((batch, update)) => drop(publisher.publish(batch, update).await),
                                Err(reason) => publisher.failed(&output, &reason),
                            }
                        }
                        Some(Err(e)) => return e,
                        None => return WorkloadError::closed(socket),
                    }
                }
            } => e,
        };
        if ended.kind() == ErrorKind::Malformed {
            events.failed(&output);
        }
        reporter.failed(&ended);
        events.stream_down(key, &ended.to_string());
        let delay = backoff.next_delay();
        debug!("{name}: subscribing again in {} ms", delay.as_millis());
        if sleep_or_cancel(&token, delay).await {
            return;
        }
    }
}

/// How a failure was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    Error,
    Warning,
    Reminder,
    Debug,
}

/// Log de-duplication for one stream (or one refresher).
#[derive(Debug)]
pub struct Reporter {
    name: &'static str,
    socket: String,
    kind: Option<ErrorKind>,
    count: u32,
    since: Option<Instant>,
    last_loud: Option<Instant>,
}

impl Reporter {
    pub fn new(name: &'static str, socket: &std::path::Path) -> Self {
        Self {
            name,
            socket: socket.display().to_string(),
            kind: None,
            count: 0,
            since: None,
            last_loud: None,
        }
    }

    /// Logs a failure: loud the first [`LOUD`] times for a kind, then a
    /// reminder every [`REMIND_EVERY`]; debug in between. A failure that
    /// needs someone to act is an error every time.
    pub fn failed(&mut self, e: &WorkloadError) {
        self.failed_at(e, Instant::now());
    }

    /// [`Reporter::failed`] at a given time; returns how it was logged.
    pub fn failed_at(&mut self, e: &WorkloadError, now: Instant) -> Logged {
        if self.kind != Some(e.kind()) {
            self.kind = Some(e.kind());
            self.count = 0;
        }
        let since = *self.since.get_or_insert(now);
        self.count += 1;
        let name = self.name;
        if e.is_persistent() || (e.kind() == ErrorKind::Malformed && self.count == 1) {
            error!("{name}: {e}; the files on disk are kept");
            Logged::Error
        } else if self.count <= LOUD && e.kind() != ErrorKind::Malformed {
            warn!("{name}: {e}; retrying");
            if self.count == LOUD {
                warn!(
                    "{name}: further identical failures are logged at debug level, with a reminder every {} minutes",
                    REMIND_EVERY.as_secs() / 60
                );
            }
            self.last_loud = Some(now);
            Logged::Warning
        } else if self
            .last_loud
            .is_none_or(|t| now.duration_since(t) >= REMIND_EVERY)
        {
            warn!(
                "{name}: still waiting for the Workload API at {} for {}; last error: {e}",
                self.socket,
                human(now.duration_since(since))
            );
            self.last_loud = Some(now);
            Logged::Reminder
        } else {
            debug!("{name}: {e}");
            Logged::Debug
        }
    }

    /// After a success: logs the recovery once, and the next failure is
    /// loud again.
    pub fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            info!(
                "{}: the Workload API at {} answers again after {}",
                self.name,
                self.socket,
                human(since.elapsed())
            );
        }
        self.kind = None;
        self.count = 0;
        self.last_loud = None;
    }
}

/// `1h02m`, `5m03s`, `12s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::disk::{FileWrite, Root};
    use crate::events::Events;

    /// A stream that sends `items` and then stays open without a word.
    fn scripted(items: Vec<u32>) -> impl Stream<Item = Result<u32, WorkloadError>> + Unpin {
        futures_util::stream::iter(items.into_iter().map(Ok)).chain(futures_util::stream::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_silent_for_a_minute_is_abandoned_reported_and_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::testing::ok(&format!(
            "cert_dir = \"{}\"\njwt_bundle_file_name = \"b.json\"\n",
            dir.path().display()
        ));
        let events = Events::new(&cfg);
        let publisher = Publisher::one_shot(events.clone(), Arc::new(Root::new(&cfg.cert_dir)));
        let path = cfg.jwt_bundle.as_ref().unwrap().path.clone();
        let opened: Mutex<Vec<tokio::time::Instant>> = Mutex::new(Vec::new());
        let rendered: Mutex<Vec<u32>> = Mutex::new(Vec::new());
        let token = CancellationToken::new();
        let watched = Watched {
            name: "test stream",
            key: "jwt_bundle",
            output: Output::JwtBundle(path.clone()),
        };
        let open = || {
            let mut o = opened.lock().unwrap();
            o.push(tokio::time::Instant::now());
            // The first stream stays silent; the second sends 7.
            let items = if o.len() == 1 { vec![] } else { vec![7] };
            async move { Ok(scripted(items)) }
        };
        let render = |n: &u32| {
            rendered.lock().unwrap().push(*n);
            let batch = Batch {
                writes: vec![FileWrite::new(path.clone(), b"{}".to_vec(), 0o600)],
                own_dir: None,
            };
            let info = crate::jwt::JwtBundleInfo::default();
            Ok((
                batch,
                Update::JwtBundle {
                    path: PathBuf::from(&path),
                    info,
                },
            ))
        };
        let watching = watch(
            watched,
            Path::new("/scripted.sock"),
            open,
            render,
            &publisher,
            token.clone(),
        );
        let check = async {
            while rendered.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            token.cancel();
        };
        tokio::join!(watching, check);

        let opened = opened.lock().unwrap().clone();
        assert_eq!(opened.len(), 2, "opened again after the silence");
        let gap = opened[1] - opened[0];
        // The first-message deadline, then the first backoff (0.5 s + 10 %).
        assert!(gap >= FIRST_MESSAGE + Duration::from_millis(500), "{gap:?}");
        assert!(gap <= FIRST_MESSAGE + Duration::from_millis(600), "{gap:?}");
        assert_eq!(*rendered.lock().unwrap(), [7]);
        let status = events.subscribe().borrow().clone();
        let stream = &status.streams["jwt_bundle"];
        assert!(stream.connected);
        let error = stream.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("sent no message within 60s"), "{error}");
        let metrics = events.metrics().encode();
        assert!(
            metrics.contains(
                "spiffe_helper_workload_api_stream_reconnects_total{stream=\"jwt_bundle\"} 1"
            ),
            "{metrics}"
        );
        assert_eq!(std::fs::read(dir.path().join("b.json")).unwrap(), b"{}");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(303)), "5m03s");
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn loud_then_a_reminder_every_few_minutes_never_silence() {
        let socket = std::path::Path::new("/nonexistent/agent.sock");
        let mut r = Reporter::new("X.509", socket);
        let e = WorkloadError::closed(socket);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(r.failed_at(&e, at(0)), Logged::Warning);
        assert_eq!(r.failed_at(&e, at(1)), Logged::Warning);
        assert_eq!(r.failed_at(&e, at(2)), Logged::Warning);
        assert_eq!(r.failed_at(&e, at(3)), Logged::Debug);
        assert_eq!(r.failed_at(&e, at(100)), Logged::Debug);
        // Three minutes after the last loud line: a reminder.
        assert_eq!(r.failed_at(&e, at(182)), Logged::Reminder);
        assert_eq!(r.failed_at(&e, at(200)), Logged::Debug);
        assert_eq!(r.failed_at(&e, at(362)), Logged::Reminder);
        // A new kind of failure is loud again.
        let other = WorkloadError::timeout_for_tests(socket);
        assert_eq!(r.failed_at(&other, at(363)), Logged::Warning);
    }

    #[test]
    fn the_count_follows_the_kind_not_the_text() {
        let socket = std::path::Path::new("/nonexistent/agent.sock");
        let mut r = Reporter::new("X.509", socket);
        let closed = WorkloadError::closed(socket);
        r.failed(&closed);
        r.failed(&closed);
        assert_eq!(r.count, 2);
        assert!(r.since.is_some());
        r.recovered();
        assert_eq!((r.count, r.since), (0, None));
        r.failed(&closed);
        assert_eq!(r.count, 1);
    }
}
