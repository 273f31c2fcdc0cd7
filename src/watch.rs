//! The one stream loop, shared by the X.509 and JWT bundle watchers:
//! subscribe, hand each message on, and when the stream breaks report why
//! and subscribe again after a backoff, until cancelled.
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

/// Subscribes with `open` and calls `handle` for each message until `token`
/// is cancelled. `on_failure` is told of every failure (to mark a status);
/// the stream's state goes to the status (`key`) and the metrics.
#[allow(
    clippy::too_many_arguments,
    reason = "the one loop's seams, each used once"
)]
pub async fn run<T, S, Open, OpenFut, Handle, HandleFut>(
    name: &'static str,
    key: &'static str,
    socket: &std::path::Path,
    open: Open,
    mut handle: Handle,
    mut on_failure: impl FnMut(&WorkloadError),
    publisher: &Publisher,
    token: CancellationToken,
) where
    S: Stream<Item = Result<T, WorkloadError>> + Unpin,
    Open: Fn() -> OpenFut,
    OpenFut: Future<Output = Result<S, WorkloadError>>,
    Handle: FnMut(T) -> HandleFut,
    HandleFut: Future<Output = ()>,
{
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
                            stream_state(publisher, key, None);
                            handle(item).await;
                        }
                        Some(Err(e)) => return e,
                        None => return WorkloadError::closed(socket),
                    }
                }
            } => e,
        };
        on_failure(&ended);
        reporter.failed(&ended);
        stream_state(publisher, key, Some(&ended));
        publisher.metrics().stream_reconnect(key);
        let delay = backoff.next_delay();
        debug!("{name}: subscribing again in {} ms", delay.as_millis());
        if sleep_or_cancel(&token, delay).await {
            return;
        }
    }
}

/// Records a stream as up (`None`) or down with its error.
fn stream_state(publisher: &Publisher, key: &'static str, error: Option<&WorkloadError>) {
    let connected = error.is_none();
    publisher.metrics().stream(key, connected);
    let now = crate::clock::unix_now();
    let text = error.map(ToString::to_string);
    publisher.status().send_if_modified(|s| {
        let st = s.streams.entry(key).or_default();
        let was = (st.connected, st.since.is_some(), st.last_error.clone());
        if st.connected != connected || st.since.is_none() {
            st.since = Some(now);
        }
        st.connected = connected;
        if text.is_some() {
            st.last_error.clone_from(&text);
        }
        was != (st.connected, st.since.is_some(), st.last_error.clone())
    });
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
    use super::*;

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
