//! The one owner of the helper's state. Every task reports what happened
//! here (the publisher its writes, the stream loop its connection, the JWT
//! refreshers their failures, the supervisor its child and signals), and
//! this is the only code that changes the shared [`Status`] and the
//! [`Metrics`]: one call per event updates both, so `/status`, the probes,
//! systemd's status line and `/metrics` never disagree.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::disk::Method;
use crate::jwt::JwtBundleInfo;
use crate::metrics::Metrics;
use crate::status::{key, Status, StatusRx, StatusTx, WriteStatus};
use crate::x509::X509Info;

/// Which output an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    X509,
    JwtBundle(PathBuf),
    JwtSvid(PathBuf),
}

impl Output {
    /// The `output` label of its metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Output::X509 => "x509",
            Output::JwtBundle(_) => "jwt_bundle",
            Output::JwtSvid(_) => "jwt_svid",
        }
    }

    /// The file of a JWT output (the X.509 output is several).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Output::X509 => None,
            Output::JwtBundle(p) | Output::JwtSvid(p) => Some(p),
        }
    }
}

/// A rendered update of one output, with what the status and the log need.
#[derive(Debug, Clone)]
pub enum Update {
    X509(X509Info),
    JwtBundle {
        path: PathBuf,
        info: JwtBundleInfo,
    },
    JwtSvid {
        path: PathBuf,
        spiffe_id: String,
        audiences: Vec<String>,
        expiry: i64,
    },
}

impl Update {
    pub fn output(&self) -> Output {
        match self {
            Update::X509(_) => Output::X509,
            Update::JwtBundle { path, .. } => Output::JwtBundle(path.clone()),
            Update::JwtSvid { path, .. } => Output::JwtSvid(path.clone()),
        }
    }
}

/// A renew-signal target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Cmd,
    PidFile,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Cmd => "cmd",
            Target::PidFile => "pid_file",
        }
    }
}

/// What a write of an update did on disk.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// The file that names the output in metrics (the batch's last).
    pub label: &'a str,
    /// Whether any file changed (an unchanged update writes nothing).
    pub changed: bool,
    /// Each file written and how.
    pub methods: &'a [(PathBuf, Method)],
    /// Seconds since the epoch.
    pub now: i64,
}

/// The handle every task reports through; cheap to clone.
#[derive(Clone)]
pub struct Events {
    status: StatusTx,
    metrics: Metrics,
}

impl Events {
    /// The state of a configuration before anything happened.
    pub fn new(cfg: &Config) -> Self {
        let (status, _) = tokio::sync::watch::channel(Status::new(cfg));
        Self {
            status,
            metrics: Metrics::new(cfg),
        }
    }

    /// A reader of the status, woken at every change.
    pub fn subscribe(&self) -> StatusRx {
        self.status.subscribe()
    }

    /// The metrics, for the scrape.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The outputs of a reloaded configuration: new ones start unwritten;
    /// what is known of the child, the pid file and the streams is kept.
    pub fn reconfigured(&self, cfg: &Config) {
        self.status.send_modify(|s| *s = s.reconfigured(cfg));
    }

    /// An update reached the disk (or was identical to it).
    pub fn written(&self, update: &Update, w: Written<'_>) {
        let Written {
            label,
            changed,
            methods,
            now,
        } = w;
        self.metrics
            .written(update.output().kind(), label, now, changed);
        match update {
            Update::X509(info) => {
                self.metrics
                    .x509_svid(info.not_before, info.not_after, &info.bundles);
            }
            Update::JwtBundle { info, .. } => self.metrics.jwt_bundle(&info.trust_domains),
            Update::JwtSvid { path, expiry, .. } => self.metrics.jwt_svid(&key(path), *expiry),
        }
        self.status.send_modify(|s| {
            for (path, method) in methods {
                s.write_methods.insert(key(path), *method);
            }
            let stamp = |at: &mut Option<i64>| {
                if changed || at.is_none() {
                    *at = Some(now);
                }
            };
            match update {
                Update::X509(info) => {
                    s.x509 = Some(WriteStatus::Written);
                    s.x509_not_after = Some(info.not_after);
                    s.x509_info = Some(info.clone());
                    stamp(&mut s.x509_written_at);
                }
                Update::JwtBundle { path, info } => {
                    if let Some(b) = &mut s.jwt_bundle {
                        b.trust_domains.clone_from(&info.trust_domains);
                        stamp(&mut b.written_at);
                    }
                    set_jwt(s, path, WriteStatus::Written);
                }
                Update::JwtSvid {
                    path,
                    spiffe_id,
                    expiry,
                    ..
                } => {
                    if let Some(j) = s.jwt_svids.get_mut(&key(path)) {
                        j.sub = Some(spiffe_id.clone());
                        j.expiry = Some(*expiry);
                        stamp(&mut j.written_at);
                    }
                    set_jwt(s, path, WriteStatus::Written);
                }
            }
        });
    }

    /// An update could not be written; the files on disk were kept.
    pub fn write_failed(&self, output: &Output, label: &str) {
        self.metrics.write_failed(output.kind(), label);
        self.failed(output);
    }

    /// An output failed before its write (an update that cannot be used,
    /// a hint that matches nothing).
    pub fn failed(&self, output: &Output) {
        self.status.send_if_modified(|s| match output {
            Output::X509 => s.x509.replace(WriteStatus::Failed) != Some(WriteStatus::Failed),
            Output::JwtBundle(path) | Output::JwtSvid(path) => {
                set_jwt(s, path, WriteStatus::Failed)
            }
        });
    }

    /// A Workload API stream delivered a message.
    pub fn stream_up(&self, stream: &'static str) {
        self.metrics.stream(stream, true);
        self.stream_state(stream, None);
    }

    /// A Workload API stream broke (it is subscribed again after a delay).
    pub fn stream_down(&self, stream: &'static str, error: &str) {
        self.metrics.stream(stream, false);
        self.metrics.stream_reconnect(stream);
        self.stream_state(stream, Some(error.to_owned()));
    }

    fn stream_state(&self, stream: &'static str, error: Option<String>) {
        let connected = error.is_none();
        let now = crate::clock::unix_now();
        self.status.send_if_modified(|s| {
            let st = s.streams.entry(stream).or_default();
            let was = st.clone();
            if st.connected != connected || st.since.is_none() {
                st.since = Some(now);
            }
            st.connected = connected;
            if error.is_some() {
                st.last_error = error;
            }
            // `since` alone moving is no news to a reader.
            (was.connected, was.since.is_some(), &was.last_error)
                != (st.connected, st.since.is_some(), &st.last_error)
        });
    }

    /// `cmd` started.
    pub fn cmd_started(&self, pid: Option<u32>) {
        self.metrics.cmd_started();
        self.status.send_modify(|s| {
            if let Some(p) = &mut s.process {
                p.running = true;
                p.pid = pid;
                p.starts += 1;
            }
        });
    }

    /// `cmd` could not be started.
    pub fn cmd_not_started(&self, error: &str) {
        self.status.send_modify(|s| {
            if let Some(p) = &mut s.process {
                p.last_exit = Some(format!("not started: {error}"));
            }
        });
    }

    /// `cmd` exited: its shell-style code when known, and how, in words.
    pub fn cmd_exited(&self, code: Option<u8>, how: String) {
        self.metrics.cmd_exited(code.map(i64::from));
        self.status.send_modify(|s| {
            if let Some(p) = &mut s.process {
                p.running = false;
                p.pid = None;
                p.last_exit = Some(how);
            }
        });
    }

    /// A renew signal was sent to `cmd` (the pid file has its own, with
    /// the pid: [`Events::pid_file`]).
    pub fn renew_signal(&self, target: Target, ok: bool) {
        self.metrics.renew_signal(target.label(), ok);
    }

    /// The pid-file process was signalled (`pid` known) or given up on.
    pub fn pid_file(&self, pid: Option<i32>, result: String) {
        self.renew_signal(Target::PidFile, pid.is_some());
        let now = crate::clock::unix_now();
        self.status.send_modify(|s| {
            if let Some(p) = &mut s.pid_file {
                if pid.is_some() {
                    p.last_pid = pid;
                }
                p.last_result = Some(result);
                p.at = Some(now);
            }
        });
    }
}

/// Sets a JWT file's status; true when it changed.
fn set_jwt(s: &mut Status, path: &Path, status: WriteStatus) -> bool {
    s.jwt.insert(key(path), status) != Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::testing::ok(
            "cert_dir = \"c\"\njwt_bundle_file_name = \"b.json\"\njwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }]\n",
        )
    }

    #[test]
    fn one_event_changes_the_status_and_the_metrics_together() {
        let events = Events::new(&config());
        let rx = events.subscribe();
        let path = PathBuf::from("c/db.token");
        let update = Update::JwtSvid {
            path: path.clone(),
            spiffe_id: "spiffe://example.org/w".into(),
            audiences: vec!["db".into()],
            expiry: 2_000,
        };
        events.written(
            &update,
            Written {
                label: "c/db.token",
                changed: true,
                methods: &[(path.clone(), Method::Atomic)],
                now: 1_000,
            },
        );
        let s = rx.borrow().clone();
        assert_eq!(s.jwt["c/db.token"], WriteStatus::Written);
        assert_eq!(s.jwt_svids["c/db.token"].expiry, Some(2_000));
        assert_eq!(s.write_methods["c/db.token"], Method::Atomic);
        let text = events.metrics().encode();
        assert!(
            text.contains("spiffe_helper_writes_total{output=\"jwt_svid\",file=\"c/db.token\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "spiffe_helper_jwt_svid_expiry_timestamp_seconds{file=\"c/db.token\"} 2000.0"
        ));

        events.write_failed(&Output::JwtSvid(path), "c/db.token");
        assert_eq!(rx.borrow().jwt["c/db.token"], WriteStatus::Failed);
        assert!(events.metrics().encode().contains(
            "spiffe_helper_write_failures_total{output=\"jwt_svid\",file=\"c/db.token\"} 1"
        ));
    }

    #[test]
    fn a_failure_notifies_readers_only_when_it_changes_the_status() {
        let events = Events::new(&config());
        let mut rx = events.subscribe();
        rx.mark_unchanged();
        // The key is the path cleaned as Go cleans it.
        let out = Output::JwtSvid("./c/./db.token".into());
        events.failed(&out);
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            rx.borrow_and_update().jwt["c/db.token"],
            WriteStatus::Failed
        );
        events.failed(&out);
        assert!(!rx.has_changed().unwrap(), "no change, no notification");
        assert!(!rx.borrow().is_live(0));
    }

    #[test]
    fn a_stream_going_down_is_counted_and_its_error_kept() {
        let events = Events::new(&config());
        let rx = events.subscribe();
        events.stream_up("jwt_bundle");
        assert!(rx.borrow().streams["jwt_bundle"].connected);
        events.stream_down("jwt_bundle", "the agent closed the stream");
        let st = rx.borrow().streams["jwt_bundle"].clone();
        assert!(!st.connected);
        assert_eq!(
            st.last_error.as_deref(),
            Some("the agent closed the stream")
        );
        let text = events.metrics().encode();
        assert!(text.contains("spiffe_helper_workload_api_stream_up{stream=\"jwt_bundle\"} 0"));
        assert!(text.contains(
            "spiffe_helper_workload_api_stream_reconnects_total{stream=\"jwt_bundle\"} 1"
        ));
    }
}
