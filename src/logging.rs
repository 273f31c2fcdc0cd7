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

/// The libraries under the gRPC client and the health server: at `debug`
/// they log every HTTP/2 frame, so they stay at `info` unless `RUST_LOG`
/// names them.
const CHATTY: [&str; 6] = ["h2", "hyper", "hyper_util", "tonic", "tower", "rustls"];

/// The filter: `RUST_LOG` (when set and readable) wins over `level`.
pub fn filter(rust_log: Option<&str>, level: Option<tracing::Level>) -> Targets {
    if let Some(t) = rust_log.and_then(|v| v.parse::<Targets>().ok()) {
        return t;
    }
    let level = level.map_or(LevelFilter::INFO, LevelFilter::from_level);
    let quiet = level.min(LevelFilter::INFO);
    CHATTY
        .iter()
        .fold(Targets::new().with_default(level), |t, target| {
            t.with_target(*target, quiet)
        })
}

/// The filter in force, swapped at a reload.
static FILTER: OnceLock<tracing_subscriber::reload::Handle<Targets, tracing_subscriber::Registry>> =
    OnceLock::new();
/// Whether lines are JSON (`log_format = "json"`), switched at a reload.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the global subscriber. Call once, before the first log line.
pub fn init(level: Option<tracing::Level>, format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, handle) =
        tracing_subscriber::reload::Layer::new(filter(rust_log.as_deref(), level));
    let _ = FILTER.set(handle);
    JSON.store(format == LogFormat::Json, Ordering::SeqCst);
    let writer = Queue::start(std::io::stderr());
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(Switch {
                    text: tracing_subscriber::fmt::format().with_target(false),
                })
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(writer),
        )
        .init();
}

/// Applies a reloaded configuration's `log_level` and `log_format`
/// (`RUST_LOG`, when set, still wins for the level).
pub fn apply(level: Option<tracing::Level>, format: LogFormat) {
    if let Some(h) = FILTER.get() {
        let rust_log = std::env::var("RUST_LOG").ok();
        let _ = h.reload(filter(rust_log.as_deref(), level));
    }
    JSON.store(format == LogFormat::Json, Ordering::SeqCst);
}

fn format_now() -> LogFormat {
    if JSON.load(Ordering::SeqCst) {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// Text or JSON lines, as the configuration in force says.
struct Switch {
    text: tracing_subscriber::fmt::format::Format,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Switch
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if JSON.load(Ordering::Relaxed) {
            JsonLine.format_event(ctx, writer, event)
        } else {
            self.text.format_event(ctx, writer, event)
        }
    }
}

/// One JSON object per event, with the names log shippers look for:
/// `time` (RFC 3339, UTC, microseconds), `level` (lowercase) and `msg`,
/// then the event's fields. A field whose name a shipper would read as
/// one of those (or as the level: `status`, `severity`) is written as
/// `field_<name>`, so it never takes their place.
struct JsonLine;

/// Names a field of an event never takes.
const RESERVED: [&str; 7] = [
    "time",
    "level",
    "msg",
    "status",
    "severity",
    "timestamp",
    "message",
];

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("time".into(), now_rfc3339_micros().into());
        line.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        line.insert("msg".into(), fields.message.unwrap_or_default().into());
        for (k, v) in fields.rest {
            let k = if RESERVED.contains(&k.as_str()) {
                format!("field_{k}")
            } else {
                k
            };
            line.insert(k, v);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields: its message apart.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(String, serde_json::Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.rest.push((field.name().to_owned(), text.into()));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.rest.push((field.name().to_owned(), value.into()));
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.rest.push((field.name().to_owned(), value.into()));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.rest.push((field.name().to_owned(), value.into()));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.rest.push((field.name().to_owned(), value.into()));
    }
}

/// Now as RFC 3339 in UTC with microseconds.
fn now_rfc3339_micros() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let base = crate::clock::rfc3339(secs);
    // `...:SSZ` becomes `...:SS.ffffffZ`.
    format!("{}.{:06}Z", base.trim_end_matches('Z'), now.subsec_micros())
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
    fn start<W: Write + Send + 'static>(out: W) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE_LINES);
        let dropped = dropped_counter();
        let spawned = std::thread::Builder::new()
            .name("log".to_owned())
            .stack_size(64 * 1024)
            .spawn(move || write_lines(&rx, out, &dropped));
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

/// The most the writer puts in one `write`: what a pipe takes atomically,
/// so its lines never interleave with those of `cmd`, which shares stderr.
const WRITE_AT_ONCE: usize = 4096;

/// The writer thread: writes the lines queued (those that came together in
/// one `write`, up to [`WRITE_AT_ONCE`] bytes: a rotation logs a few lines
/// at once, and each wake and write costs a system call); after lines were
/// dropped, says how many once a write succeeds again.
fn write_lines<W: Write>(rx: &Receiver<Vec<u8>>, mut out: W, dropped: &Counter) {
    let mut reported = 0;
    let mut next = None;
    loop {
        let Some(mut batch) = next.take().or_else(|| rx.recv().ok()) else {
            return;
        };
        let mut lines = 1;
        while batch.len() < WRITE_AT_ONCE {
            let Ok(line) = rx.try_recv() else { break };
            if batch.len() + line.len() > WRITE_AT_ONCE {
                next = Some(line);
                break;
            }
            batch.extend_from_slice(&line);
            lines += 1;
        }
        let ok = out.write_all(&batch).is_ok();
        PENDING.fetch_sub(lines, Ordering::SeqCst);
        let total = dropped.get();
        if ok && total > reported {
            let note = dropped_note(format_now(), total - reported);
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
            serde_json::json!({ "time": time, "level": "warn", "msg": msg })
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
        // The HTTP/2 and gRPC libraries stay at info, unless RUST_LOG asks.
        let f = filter(None, Some(tracing::Level::DEBUG));
        assert!(f.would_enable("spiffe_helper", &tracing::Level::DEBUG));
        assert!(!f.would_enable("h2::codec", &tracing::Level::DEBUG));
        assert!(f.would_enable("h2::codec", &tracing::Level::INFO));
        let f = filter(Some("h2=trace"), None);
        assert!(f.would_enable("h2::codec", &tracing::Level::TRACE));
        let f = filter(None, Some(tracing::Level::WARN));
        assert!(!f.would_enable("hyper", &tracing::Level::INFO));
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
        let q = Queue::start(Gate {
            open: std::sync::Arc::clone(&open),
            seen: std::sync::Arc::clone(&seen),
        });
        let before = dropped_counter().get();
        let started = Instant::now();
        // The queue, and what the writer took into the batch it is stuck
        // writing (at most WRITE_AT_ONCE bytes: about 450 of these lines),
        // then at least 100 more.
        for i in 0..QUEUE_LINES + 600 {
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
