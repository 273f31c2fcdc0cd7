//! The shared write status that every task reports into and the health
//! server reads: one `watch` channel, so no lock is ever held across an
//! `.await` and readers always see a consistent snapshot.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::Config;

/// The state of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteStatus {
    Unwritten,
    Written,
    Failed,
}

/// Every configured output's status and what the helper knows of its
/// credentials, streams and child: the health probes, `/status` and the
/// logs all read this one snapshot. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `None` when no X.509 output is configured.
    pub x509: Option<WriteStatus>,
    /// `NotAfter` (seconds since the epoch) of the last X.509 SVID written.
    pub x509_not_after: Option<i64>,
    /// What the last X.509 batch written holds.
    pub x509_info: Option<crate::x509::X509Info>,
    /// When the X.509 files last changed on disk (seconds since the epoch).
    pub x509_written_at: Option<i64>,
    /// Keyed by `cert_dir` joined with the file name: the JWT bundle file
    /// and every JWT SVID file.
    pub jwt: BTreeMap<String, WriteStatus>,
    /// Each JWT-SVID file, by the same key.
    pub jwt_svids: BTreeMap<String, JwtSvidState>,
    /// The JWT bundle file, when configured.
    pub jwt_bundle: Option<JwtBundleState>,
    /// Each Workload API stream, by name (`x509`, `jwt_bundle`).
    pub streams: BTreeMap<&'static str, StreamState>,
    /// `cmd`, when configured.
    pub process: Option<ProcessState>,
    /// `pid_file_name`, when configured.
    pub pid_file: Option<PidFileState>,
    /// How each file was last written (by the same key as `jwt`): atomic
    /// replacement, or in place where its directory refuses new files.
    pub write_methods: BTreeMap<String, crate::disk::Method>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtSvidState {
    pub audiences: Vec<String>,
    /// The token's `sub` (the SPIFFE ID) and expiry, once one was written.
    pub sub: Option<String>,
    pub expiry: Option<i64>,
    pub written_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtBundleState {
    pub key: String,
    /// Trust domains with their key IDs.
    pub trust_domains: Vec<(String, Vec<String>)>,
    pub written_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamState {
    pub connected: bool,
    /// Since when it has been connected (or not), seconds since the epoch.
    pub since: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProcessState {
    /// The program; its arguments are counted, never shown (they may hold
    /// a password).
    pub program: String,
    pub args: usize,
    pub pid: Option<u32>,
    pub running: bool,
    pub starts: u64,
    /// How it last ended: `exit code N` or `signal SIGX`.
    pub last_exit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PidFileState {
    pub path: String,
    pub last_pid: Option<i32>,
    /// `signalled SIGHUP`, or the last error.
    pub last_result: Option<String>,
    pub at: Option<i64>,
}

pub type StatusTx = watch::Sender<Status>;
pub type StatusRx = watch::Receiver<Status>;

/// The key under which a file's status is reported: the path cleaned as
/// Go's `path.Join` cleans it (`./certs/./jwt.token` is `certs/jwt.token`),
/// as upstream reports it.
pub fn key(path: &std::path::Path) -> String {
    go_clean(&path.to_string_lossy())
}

pub use crate::config::go_clean;

impl Status {
    /// Everything configured, nothing written yet.
    pub fn new(cfg: &Config) -> Self {
        let mut jwt = BTreeMap::new();
        if let Some(b) = &cfg.jwt_bundle {
            jwt.insert(key(&b.path), WriteStatus::Unwritten);
        }
        for s in &cfg.jwt_svids {
            jwt.insert(key(&s.file.path), WriteStatus::Unwritten);
        }
        let jwt_svids = cfg
            .jwt_svids
            .iter()
            .map(|s| {
                (
                    key(&s.file.path),
                    JwtSvidState {
                        audiences: s.audiences(),
                        ..JwtSvidState::default()
                    },
                )
            })
            .collect();
        let mut streams = BTreeMap::new();
        if cfg.x509.is_some() {
            streams.insert("x509", StreamState::default());
        }
        if cfg.jwt_bundle.is_some() {
            streams.insert("jwt_bundle", StreamState::default());
        }
        Self {
            x509: cfg.x509.as_ref().map(|_| WriteStatus::Unwritten),
            jwt,
            jwt_svids,
            jwt_bundle: cfg.jwt_bundle.as_ref().map(|b| JwtBundleState {
                key: key(&b.path),
                ..JwtBundleState::default()
            }),
            streams,
            process: cfg.process.cmd.as_ref().map(|c| ProcessState {
                program: c.program.clone(),
                args: c.args.len(),
                ..ProcessState::default()
            }),
            pid_file: cfg.process.pid_file.as_ref().map(|p| PidFileState {
                path: p.display().to_string(),
                ..PidFileState::default()
            }),
            ..Self::default()
        }
    }

    /// The status for a reloaded configuration: its outputs as new, what
    /// is known of the child and the pid file kept where they are still
    /// configured, the streams' history kept.
    #[must_use]
    pub fn reconfigured(&self, cfg: &Config) -> Self {
        let mut new = Self::new(cfg);
        if let (Some(n), Some(o)) = (&mut new.process, &self.process) {
            n.pid = o.pid;
            n.running = o.running;
            n.starts = o.starts;
            n.last_exit.clone_from(&o.last_exit);
        }
        if let (Some(n), Some(o)) = (&mut new.pid_file, &self.pid_file) {
            if n.path == o.path {
                *n = o.clone();
            }
        }
        for (name, st) in &self.streams {
            if let Some(n) = new.streams.get_mut(name) {
                *n = st.clone();
            }
        }
        new
    }

    fn all(&self) -> impl Iterator<Item = WriteStatus> + '_ {
        self.x509.into_iter().chain(self.jwt.values().copied())
    }

    /// Live unless some write failed, or the X.509 SVID on disk has expired
    /// (`now` in seconds since the epoch).
    pub fn is_live(&self, now: i64) -> bool {
        let expired = self.x509_not_after.is_some_and(|t| t < now);
        !expired && self.all().all(|s| s != WriteStatus::Failed)
    }

    /// Ready once every configured output has been written.
    pub fn is_ready(&self) -> bool {
        self.all().all(|s| s == WriteStatus::Written)
    }

    /// The health endpoints' JSON body, as the Go helper writes it.
    pub fn body(&self, ok: bool) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            status: &'static str,
            health: Health<'a>,
        }
        #[derive(Serialize)]
        struct Health<'a> {
            file_write_statuses: Files<'a>,
        }
        #[derive(Serialize)]
        struct Files<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            x509_write_status: Option<WriteStatus>,
            jwt_write_status: &'a BTreeMap<String, WriteStatus>,
        }
        let body = Body {
            status: if ok { "OK" } else { "Service Unavailable" },
            health: Health {
                file_write_statuses: Files {
                    x509_write_status: self.x509,
                    jwt_write_status: &self.jwt,
                },
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl Status {
    /// The `/status` document: everything the helper knows, for a person or
    /// a script; never a key or a token.
    pub fn document(&self, now: i64) -> String {
        let mut text = serde_json::to_string_pretty(&Document::new(self, now)).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A time in the document: RFC 3339, UTC.
fn time(t: Option<i64>) -> Option<String> {
    t.map(crate::clock::rfc3339)
}

/// The `/status` document, in the order a person reads it.
#[derive(Serialize)]
struct Document<'a> {
    time: String,
    build: Build,
    live: bool,
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    x509: Option<X509Doc<'a>>,
    jwt_svids: Vec<JwtSvidDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_bundle: Option<JwtBundleDoc<'a>>,
    workload_api_streams: BTreeMap<&'a str, StreamDoc<'a>>,
    write_methods: &'a BTreeMap<String, crate::disk::Method>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a ProcessState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid_file: Option<PidFileDoc<'a>>,
}

#[derive(Serialize)]
struct Build {
    version: &'static str,
    commit: &'static str,
    date: &'static str,
}

#[derive(Serialize)]
struct X509Doc<'a> {
    status: WriteStatus,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    svid: Option<SvidDoc<'a>>,
    last_written: Option<String>,
}

#[derive(Serialize)]
struct SvidDoc<'a> {
    spiffe_id: &'a str,
    hint: Option<&'a str>,
    serial: &'a str,
    not_before: String,
    not_after: String,
    /// Each trust domain of the bundle with its number of roots.
    trust_domains: BTreeMap<&'a str, usize>,
}

#[derive(Serialize)]
struct JwtSvidDoc<'a> {
    path: &'a str,
    status: Option<WriteStatus>,
    audiences: &'a [String],
    sub: Option<&'a str>,
    expiry: Option<String>,
    last_written: Option<String>,
}

#[derive(Serialize)]
struct JwtBundleDoc<'a> {
    path: &'a str,
    status: Option<WriteStatus>,
    /// Each trust domain with its key IDs.
    trust_domains: BTreeMap<&'a str, &'a [String]>,
    last_written: Option<String>,
}

#[derive(Serialize)]
struct StreamDoc<'a> {
    connected: bool,
    since: Option<String>,
    last_error: Option<&'a str>,
}

#[derive(Serialize)]
struct PidFileDoc<'a> {
    path: &'a str,
    last_pid: Option<i32>,
    last_result: Option<&'a str>,
    at: Option<String>,
}

impl<'a> Document<'a> {
    fn new(s: &'a Status, now: i64) -> Self {
        let x509 = s.x509.map(|status| X509Doc {
            status,
            svid: s.x509_info.as_ref().map(|i| SvidDoc {
                spiffe_id: &i.spiffe_id,
                hint: i.hint.as_deref(),
                serial: &i.serial,
                not_before: crate::clock::rfc3339(i.not_before),
                not_after: crate::clock::rfc3339(i.not_after),
                trust_domains: i.bundles.iter().map(|(td, n)| (td.as_str(), *n)).collect(),
            }),
            last_written: time(s.x509_written_at),
        });
        let jwt_svids = s
            .jwt_svids
            .iter()
            .map(|(path, j)| JwtSvidDoc {
                path,
                status: s.jwt.get(path).copied(),
                audiences: &j.audiences,
                sub: j.sub.as_deref(),
                expiry: time(j.expiry),
                last_written: time(j.written_at),
            })
            .collect();
        let jwt_bundle = s.jwt_bundle.as_ref().map(|b| JwtBundleDoc {
            path: &b.key,
            status: s.jwt.get(&b.key).copied(),
            trust_domains: b
                .trust_domains
                .iter()
                .map(|(td, kids)| (td.as_str(), kids.as_slice()))
                .collect(),
            last_written: time(b.written_at),
        });
        let workload_api_streams = s
            .streams
            .iter()
            .map(|(name, st)| {
                let doc = StreamDoc {
                    connected: st.connected,
                    since: time(st.since),
                    last_error: st.last_error.as_deref(),
                };
                (*name, doc)
            })
            .collect();
        Document {
            time: crate::clock::rfc3339(now),
            build: Build {
                version: crate::build::VERSION,
                commit: crate::build::COMMIT,
                date: crate::build::DATE,
            },
            live: s.is_live(now),
            ready: s.is_ready(),
            x509,
            jwt_svids,
            jwt_bundle,
            workload_api_streams,
            write_methods: &s.write_methods,
            process: s.process.as_ref(),
            pid_file: s.pid_file.as_ref().map(|p| PidFileDoc {
                path: &p.path,
                last_pid: p.last_pid,
                last_result: p.last_result.as_deref(),
                at: time(p.at),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        let mut jwt = BTreeMap::new();
        jwt.insert("certs/jwt.token".to_owned(), WriteStatus::Unwritten);
        Status {
            x509: Some(WriteStatus::Unwritten),
            jwt,
            ..Status::default()
        }
    }

    #[test]
    fn unwritten_is_live_but_not_ready() {
        let s = status();
        assert!(s.is_live(0));
        assert!(!s.is_ready());
    }

    #[test]
    fn all_written_is_ready_and_one_failure_is_not_live() {
        let mut s = status();
        s.x509 = Some(WriteStatus::Written);
        s.jwt.insert("certs/jwt.token".into(), WriteStatus::Written);
        assert!(s.is_ready() && s.is_live(0));
        s.jwt.insert("certs/jwt.token".into(), WriteStatus::Failed);
        assert!(!s.is_ready() && !s.is_live(0));
    }

    #[test]
    fn expired_svid_on_disk_is_not_live() {
        let mut s = status();
        s.x509 = Some(WriteStatus::Written);
        s.x509_not_after = Some(100);
        assert!(s.is_live(100));
        assert!(!s.is_live(101));
    }

    #[test]
    fn keys_are_cleaned_as_go_cleans_paths() {
        for (raw, want) in [
            ("certs/./jwt.token", "certs/jwt.token"),
            ("./certs/jwt.token", "certs/jwt.token"),
            ("certs//jwt.token", "certs/jwt.token"),
            ("a/../jwt.token", "jwt.token"),
            ("../x", "../x"),
            ("/a/../../x", "/x"),
            ("jwt.token", "jwt.token"),
            ("", "."),
        ] {
            assert_eq!(go_clean(raw), want, "{raw}");
        }
    }

    #[test]
    fn body_matches_the_go_helper() {
        let mut s = status();
        s.x509 = Some(WriteStatus::Written);
        s.jwt.insert("certs/jwt.token".into(), WriteStatus::Written);
        assert_eq!(
            s.body(true),
            r#"{"status":"OK","health":{"file_write_statuses":{"x509_write_status":"written","jwt_write_status":{"certs/jwt.token":"written"}}}}"#
        );
        let none = Status::default();
        assert_eq!(
            none.body(false),
            r#"{"status":"Service Unavailable","health":{"file_write_statuses":{"jwt_write_status":{}}}}"#
        );
    }
    #[test]
    fn file_keys_are_the_cleaned_path() {
        assert_eq!(
            key(std::path::Path::new("./certs/./jwt.token")),
            "certs/jwt.token"
        );
        assert_eq!(key(std::path::Path::new("/a//b/")), "/a/b");
    }

    #[test]
    fn without_x509_output_only_the_jwt_files_count() {
        let mut s = status();
        s.x509 = None;
        assert!(!s.is_ready());
        s.jwt.insert("certs/jwt.token".into(), WriteStatus::Written);
        assert!(s.is_ready() && s.is_live(0));
        s.jwt.clear();
        assert!(s.is_ready() && s.is_live(0), "nothing configured: ready");
        s.x509 = Some(WriteStatus::Failed);
        assert!(!s.is_live(0) && !s.is_ready());
        s.x509 = Some(WriteStatus::Unwritten);
        assert!(s.is_live(0) && !s.is_ready());
    }
}
