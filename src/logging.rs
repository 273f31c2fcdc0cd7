//! Logging to stderr: human-readable lines (the default) or one JSON object
//! per line. The level is `RUST_LOG` when set, else `log_level` from the
//! configuration, else info.
//!
//! Logging never blocks the caller. Each line goes into a bounded queue
//! that one thread of its own writes to stderr; when stderr does not take
//! lines (a pipe nobody drains, a stuck terminal) and the queue is full, a
//! line is dropped and counted instead of stopping rotations and probes.
//! Once writing works again, one line says how many were dropped, and
//! `spiffe_helper_log_lines_dropped_total` counts them all.

use std::io::{IsTerminal as _, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Lines waiting for stderr before new ones are dropped.
const QUEUE_LINES: usize = 1024;

/// The filter: `RUST_LOG` (when set and readable) wins over `level`.
pub fn filter(rust_log: Option<&str>, level: Option<tracing::Level>) -> Targets {
    if let Some(t) = rust_log.and_then(|v| v.parse::<Targets>().ok()) {
        return t;
    }
    Targets::new().with_default(level.map_or(LevelFilter::INFO, LevelFilter::from_level))
}

/// Installs the global subscriber. Call once, before the first log line.
pub fn init(level: Option<tracing::Level>, format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(rust_log.as_deref(), level);
    let registry = tracing_subscriber::registry().with(filter);
    let writer = Queue::start(format, std::io::stderr());
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .init(),
    }
}

/// Lines dropped since start-up, for `/metrics`.
pub fn dropped_counter() -> Counter {
    static DROPPED: OnceLock<Counter> = OnceLock::new();
    DROPPED.get_or_init(Counter::default).clone()
}

/// Lines queued and not yet written.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Waits up to `limit` for the queued lines to reach stderr (before the
/// process exits).
pub fn flush(limit: Duration) {
    let end = Instant::now() + limit;
    while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The queue's sending side: what the subscriber writes through.
#[derive(Clone)]
struct Queue {
    tx: SyncSender<Vec<u8>>,
}

impl Queue {
    /// Starts the writer thread. Without a thread (none can be created),
    /// lines are written directly.
    fn start<W: Write + Send + 'static>(format: LogFormat, out: W) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_LINES);
        let dropped = dropped_counter();
        let spawned = std::thread::Builder::new()
            .name("log".to_owned())
            .stack_size(64 * 1024)
            .spawn(move || write_lines(&rx, out, format, &dropped));
        if spawned.is_err() {
            // Nothing reads the queue: every line would be dropped. Write
            // them on the caller's thread instead, as a last resort.
            let (tx2, rx2) = sync_channel::<Vec<u8>>(QUEUE_LINES);
            drop(rx2);
            return Self { tx: tx2 };
        }
        Self { tx }
    }
}

/// The writer thread: writes each line; after lines were dropped, says
/// how many once a write succeeds again.
fn write_lines<W: Write>(rx: &Receiver<Vec<u8>>, mut out: W, format: LogFormat, dropped: &Counter) {
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        let ok = out.write_all(&line).is_ok();
        PENDING.fetch_sub(1, Ordering::SeqCst);
        let total = dropped.get();
        if ok && total > reported {
            let note = dropped_note(format, total - reported);
            if out.write_all(note.as_bytes()).is_ok() {
                reported = total;
            }
        }
    }
}

/// The line that says how many lines were dropped, in the log's format.
fn dropped_note(format: LogFormat, n: u64) -> String {
    let time = crate::clock::rfc3339(crate::clock::unix_now());
    let msg = format!("{n} log line{} dropped: stderr did not take them in time (spiffe_helper_log_lines_dropped_total counts them)", if n == 1 { " was" } else { "s were" });
    match format {
        LogFormat::Text => format!("{time}  WARN {msg}\n"),
        LogFormat::Json => format!(
            "{}\n",
            serde_json::json!({ "timestamp": time, "level": "WARN", "message": msg })
        ),
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            queue: self,
            buf: Vec::new(),
        }
    }
}

/// One event's bytes, queued whole when the event is done.
struct Line<'a> {
    queue: &'a Queue,
    buf: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        PENDING.fetch_add(1, Ordering::SeqCst);
        match self.queue.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                PENDING.fetch_sub(1, Ordering::SeqCst);
                dropped_counter().inc();
            }
            Err(TrySendError::Disconnected(line)) => {
                // No writer thread: write here rather than lose the line.
                PENDING.fetch_sub(1, Ordering::SeqCst);
                let _ = std::io::stderr().write_all(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_the_configured_level() {
        let f = filter(Some("debug"), Some(tracing::Level::ERROR));
        assert!(f.would_enable("x", &tracing::Level::DEBUG));
        let f = filter(None, Some(tracing::Level::WARN));
        assert!(f.would_enable("x", &tracing::Level::WARN));
        assert!(!f.would_enable("x", &tracing::Level::INFO));
        let f = filter(None, None);
        assert!(f.would_enable("x", &tracing::Level::INFO));
        assert!(!f.would_enable("x", &tracing::Level::DEBUG));
        // An unreadable RUST_LOG falls back to the configuration.
        let f = filter(Some("=?="), Some(tracing::Level::ERROR));
        assert!(!f.would_enable("x", &tracing::Level::WARN));
    }

    /// A writer that blocks until told to go on, then records.
    struct Gate {
        open: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (lock, cv) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.seen.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_never_blocks_the_caller_and_the_drops_are_reported() {
        let open = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let q = Queue::start(
            LogFormat::Text,
            Gate {
                open: std::sync::Arc::clone(&open),
                seen: std::sync::Arc::clone(&seen),
            },
        );
        let before = dropped_counter().get();
        let started = Instant::now();
        for i in 0..QUEUE_LINES + 100 {
            let mut w = q.make_writer();
            writeln!(w, "line {i}").unwrap();
        }
        // Every line was handed over or dropped at once.
        assert!(started.elapsed() < Duration::from_secs(5));
        let dropped = dropped_counter().get() - before;
        assert!(dropped >= 99, "dropped {dropped}");
        {
            let (lock, cv) = &*open;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        flush(Duration::from_secs(5));
        let text = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{}", &text[..40]);
        assert!(
            text.contains(&format!("{dropped} log lines were dropped")),
            "{}",
            &text[text.len().saturating_sub(300)..]
        );
    }
}
