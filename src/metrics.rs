//! Prometheus metrics (OpenMetrics text), all prefixed `spiffe_helper_`.
//!
//! Values change when events happen (a write, a stream going down, a child
//! exiting); nothing is computed on a timer, so an idle helper uses no CPU.
//! A scrape only encodes what is there.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type FloatGauge = Gauge<f64, AtomicU64>;
type IntGauge = Gauge<i64, AtomicI64>;

/// Every metric the helper exports; cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    x509_expiry: FloatGauge,
    x509_not_before: FloatGauge,
    jwt_expiry: Family<JwtFileLabels, FloatGauge>,
    writes: Family<FileLabels, Counter>,
    unchanged: Family<FileLabels, Counter>,
    write_failures: Family<FileLabels, Counter>,
    last_write: Family<FileLabels, FloatGauge>,
    stream_up: Family<StreamLabels, IntGauge>,
    stream_reconnects: Family<StreamLabels, Counter>,
    bundle_certificates: Family<TrustDomainLabels, IntGauge>,
    jwt_bundle_keys: Family<TrustDomainLabels, IntGauge>,
    cmd_running: IntGauge,
    cmd_starts: Counter,
    cmd_last_exit_code: IntGauge,
    renew_signals: Family<TargetLabels, Counter>,
    renew_signal_failures: Family<TargetLabels, Counter>,
}

/// An output's series: its kind (`x509`, `jwt_bundle`, `jwt_svid`) and
/// the file that names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    output: &'static str,
    file: String,
}

/// A JWT-SVID's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JwtFileLabels {
    file: String,
}

/// A Workload API stream's series (`x509`, `jwt_bundle`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: &'static str,
}

/// A trust domain's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrustDomainLabels {
    trust_domain: String,
}

/// A renew-signal target's series (`cmd`, `pid_file`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

fn output(kind: &'static str, file: &str) -> FileLabels {
    FileLabels {
        output: kind,
        file: file.to_owned(),
    }
}

impl Metrics {
    /// The metrics of a configuration: `cmd`'s only when `cmd` is set, and
    /// every counter of a configured output, stream and signal target at 0
    /// from the start, so that `rate()` and `increase()` have a series.
    pub fn new(cfg: &crate::config::Config) -> Self {
        let m = Self::registry(cfg.process.cmd.is_some());
        let key = crate::status::key;
        let mut outputs: Vec<(&'static str, String)> = Vec::new();
        if let Some(x) = &cfg.x509 {
            // The label is the batch's last file: the certificate, or the
            // credential bundle when it is alone.
            let last = x
                .files
                .as_ref()
                .map(|f| &f.svid.path)
                .or(x.credential_bundle.as_ref().map(|c| &c.path));
            if let Some(p) = last {
                outputs.push(("x509", key(p)));
            }
            drop(
                m.inner
                    .stream_reconnects
                    .get_or_create(&StreamLabels { stream: "x509" }),
            );
        }
        if let Some(b) = &cfg.jwt_bundle {
            outputs.push(("jwt_bundle", key(&b.path)));
            drop(m.inner.stream_reconnects.get_or_create(&StreamLabels {
                stream: "jwt_bundle",
            }));
        }
        for j in &cfg.jwt_svids {
            outputs.push(("jwt_svid", key(&j.file.path)));
        }
        for (kind, file) in outputs {
            let l = output(kind, &file);
            drop(m.inner.writes.get_or_create(&l));
            drop(m.inner.unchanged.get_or_create(&l));
            drop(m.inner.write_failures.get_or_create(&l));
        }
        let p = &cfg.process;
        let targets = [
            ("cmd", p.cmd.is_some() && p.renew_signal.is_some()),
            ("pid_file", p.pid_file.is_some()),
        ];
        for (target, configured) in targets {
            if configured {
                let l = TargetLabels { target };
                drop(m.inner.renew_signals.get_or_create(&l));
                drop(m.inner.renew_signal_failures.get_or_create(&l));
            }
        }
        m
    }

    fn registry(has_cmd: bool) -> Self {
        let mut r = Registry::with_prefix("spiffe_helper");
        r.register(
            "build",
            "The helper's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_owned())]),
        );
        let inner = Inner {
            x509_expiry: FloatGauge::default(),
            x509_not_before: FloatGauge::default(),
            jwt_expiry: Family::default(),
            writes: Family::default(),
            unchanged: Family::default(),
            write_failures: Family::default(),
            last_write: Family::default(),
            stream_up: Family::default(),
            stream_reconnects: Family::default(),
            bundle_certificates: Family::default(),
            jwt_bundle_keys: Family::default(),
            cmd_running: IntGauge::default(),
            cmd_starts: Counter::default(),
            cmd_last_exit_code: IntGauge::default(),
            renew_signals: Family::default(),
            renew_signal_failures: Family::default(),
            registry: Registry::default(),
        };
        register_credentials(&mut r, &inner);
        register_writes(&mut r, &inner);
        register_streams_and_signals(&mut r, &inner, has_cmd);
        Self {
            inner: Arc::new(Inner {
                registry: r,
                ..inner
            }),
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// The Prometheus text format 0.0.4 of every metric, for scrapers and
    /// tools that do not read OpenMetrics (`promtool check metrics`).
    pub fn encode_text(&self) -> String {
        to_text_format(&self.encode())
    }

    pub fn written(&self, kind: &'static str, file: &str, now: i64, changed: bool) {
        let l = output(kind, file);
        if changed {
            self.inner.writes.get_or_create(&l).inc();
        } else {
            self.inner.unchanged.get_or_create(&l).inc();
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "seconds since the epoch are far below 2^52"
        )]
        self.inner.last_write.get_or_create(&l).set(now as f64);
    }

    pub fn write_failed(&self, kind: &'static str, file: &str) {
        self.inner
            .write_failures
            .get_or_create(&output(kind, file))
            .inc();
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "seconds since the epoch are far below 2^52"
    )]
    pub fn x509_svid(&self, not_before: i64, not_after: i64, bundles: &[(String, usize)]) {
        self.inner.x509_expiry.set(not_after as f64);
        self.inner.x509_not_before.set(not_before as f64);
        self.inner.bundle_certificates.clear();
        for (td, n) in bundles {
            self.inner
                .bundle_certificates
                .get_or_create(&TrustDomainLabels {
                    trust_domain: td.clone(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "seconds since the epoch are far below 2^52"
    )]
    pub fn jwt_svid(&self, file: &str, expiry: i64) {
        self.inner
            .jwt_expiry
            .get_or_create(&JwtFileLabels {
                file: file.to_owned(),
            })
            .set(expiry as f64);
    }

    pub fn jwt_bundle(&self, trust_domains: &[(String, Vec<String>)]) {
        self.inner.jwt_bundle_keys.clear();
        for (td, keys) in trust_domains {
            self.inner
                .jwt_bundle_keys
                .get_or_create(&TrustDomainLabels {
                    trust_domain: td.clone(),
                })
                .set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
        }
    }

    pub fn stream(&self, stream: &'static str, up: bool) {
        self.inner
            .stream_up
            .get_or_create(&StreamLabels { stream })
            .set(i64::from(up));
    }

    pub fn stream_reconnect(&self, stream: &'static str) {
        self.inner
            .stream_reconnects
            .get_or_create(&StreamLabels { stream })
            .inc();
    }

    pub fn cmd_started(&self) {
        self.inner.cmd_starts.inc();
        self.inner.cmd_running.set(1);
    }

    pub fn cmd_exited(&self, code: Option<i64>) {
        self.inner.cmd_running.set(0);
        if let Some(c) = code {
            self.inner.cmd_last_exit_code.set(c);
        }
    }

    pub fn renew_signal(&self, target: &'static str, ok: bool) {
        let l = TargetLabels { target };
        if ok {
            self.inner.renew_signals.get_or_create(&l).inc();
        } else {
            self.inner.renew_signal_failures.get_or_create(&l).inc();
        }
    }
}

/// The credentials on disk: expiry, not-before, the log's own counter.
fn register_credentials(r: &mut Registry, inner: &Inner) {
    r.register(
        "log_lines_dropped",
        "Log lines dropped because stderr did not take them in time",
        crate::logging::dropped_counter(),
    );
    r.register(
        "x509_svid_expiry_timestamp_seconds",
        "NotAfter of the X.509 SVID on disk, seconds since the epoch",
        inner.x509_expiry.clone(),
    );
    r.register(
        "x509_svid_not_before_timestamp_seconds",
        "NotBefore of the X.509 SVID on disk, seconds since the epoch",
        inner.x509_not_before.clone(),
    );
    r.register(
        "jwt_svid_expiry_timestamp_seconds",
        "Expiry of the JWT-SVID on disk, by file, seconds since the epoch",
        inner.jwt_expiry.clone(),
    );
}

/// Writes per output and file.
fn register_writes(r: &mut Registry, inner: &Inner) {
    r.register(
        "writes",
        "Updates written to disk, by output and file",
        inner.writes.clone(),
    );
    r.register(
        "unchanged_updates",
        "Updates identical to the files on disk, so not written, by output and file",
        inner.unchanged.clone(),
    );
    r.register(
        "write_failures",
        "Updates that could not be written (the previous files were kept), by output and file",
        inner.write_failures.clone(),
    );
    r.register(
        "last_write_timestamp_seconds",
        "Time of the last successful write, by output and file, seconds since the epoch",
        inner.last_write.clone(),
    );
}

/// The Workload API streams, the bundles they carry, `cmd` and the renew
/// signals.
fn register_streams_and_signals(r: &mut Registry, inner: &Inner, has_cmd: bool) {
    r.register(
        "workload_api_stream_up",
        "1 while the Workload API stream delivers updates, 0 while it is down, by stream",
        inner.stream_up.clone(),
    );
    r.register(
        "workload_api_stream_reconnects",
        "Times a Workload API stream broke and was subscribed again, by stream",
        inner.stream_reconnects.clone(),
    );
    r.register(
        "bundle_certificates",
        "Root certificates in the X.509 bundle the agent sent, by trust domain",
        inner.bundle_certificates.clone(),
    );
    r.register(
        "jwt_bundle_keys",
        "Keys in the JWT bundle the agent sent, by trust domain",
        inner.jwt_bundle_keys.clone(),
    );
    if has_cmd {
        r.register(
            "cmd_running",
            "1 while cmd runs, else 0",
            inner.cmd_running.clone(),
        );
        r.register(
            "cmd_starts",
            "Times cmd was started",
            inner.cmd_starts.clone(),
        );
        r.register(
            "cmd_last_exit_code",
            "Exit code of cmd's last exit (128 + the signal number if a signal ended it)",
            inner.cmd_last_exit_code.clone(),
        );
    }
    r.register(
        "renew_signals",
        "Renew signals sent, by target (cmd, pid_file)",
        inner.renew_signals.clone(),
    );
    r.register(
        "renew_signal_failures",
        "Renew signals that could not be sent, by target (cmd, pid_file)",
        inner.renew_signal_failures.clone(),
    );
}

/// OpenMetrics text as the Prometheus text format 0.0.4: no `# EOF` or
/// `# UNIT`; an `info` family becomes the gauge `<name>_info`; a counter
/// family is named after its `_total` sample.
pub fn to_text_format(open_metrics: &str) -> String {
    let mut families: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for line in open_metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                families.insert(name, kind);
            }
        }
    }
    let renamed = |name: &str| -> String {
        match families.get(name) {
            Some(&"info") => format!("{name}_info"),
            Some(&"counter") if !name.ends_with("_total") => format!("{name}_total"),
            _ => name.to_owned(),
        }
    };
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                let kind = if kind == "info" { "gauge" } else { kind };
                out.push_str(&format!("# TYPE {} {kind}\n", renamed(name)));
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> crate::config::Config {
        crate::config::testing::ok(text)
    }

    #[test]
    fn every_metric_is_described_and_prefixed() {
        let m = Metrics::new(&config(
            "cert_dir = \"certs\"\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"k.pem\"\nsvid_bundle_file_name = \"b.pem\"\ncmd = \"/bin/true\"\n",
        ));
        m.written("x509", "certs/svid.pem", 100, true);
        m.x509_svid(
            50,
            200,
            &[("example.org".into(), 2), ("other.test".into(), 1)],
        );
        m.stream("x509", true);
        m.cmd_started();
        m.cmd_exited(Some(3));
        m.renew_signal("pid_file", false);
        let text = m.encode();
        assert!(text.contains(&format!(
            "spiffe_helper_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(
            text.contains("spiffe_helper_x509_svid_expiry_timestamp_seconds 200.0"),
            "{text}"
        );
        assert!(
            text.contains("spiffe_helper_writes_total{output=\"x509\",file=\"certs/svid.pem\"} 1"),
            "{text}"
        );
        assert!(text.contains("spiffe_helper_bundle_certificates{trust_domain=\"example.org\"} 2"));
        assert!(text.contains("spiffe_helper_cmd_last_exit_code 3"));
        assert!(text.contains("spiffe_helper_renew_signal_failures_total{target=\"pid_file\"} 1"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(name.starts_with("spiffe_helper_"), "{line}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
        // A trust domain the agent no longer sends disappears.
        m.x509_svid(50, 200, &[("example.org".into(), 1)]);
        assert!(!m.encode().contains("other.test"));
    }

    #[test]
    fn counters_start_at_zero_and_cmd_metrics_need_cmd() {
        let m = Metrics::new(&config(
            "cert_dir = \"c\"\njwt_bundle_file_name = \"b.json\"\npid_file_name = \"/p\"\nrenew_signal = \"SIGHUP\"\n",
        ));
        let text = m.encode_text();
        for line in [
            "spiffe_helper_writes_total{output=\"jwt_bundle\",file=\"c/b.json\"} 0",
            "spiffe_helper_unchanged_updates_total{output=\"jwt_bundle\",file=\"c/b.json\"} 0",
            "spiffe_helper_workload_api_stream_reconnects_total{stream=\"jwt_bundle\"} 0",
            "spiffe_helper_renew_signals_total{target=\"pid_file\"} 0",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
        assert!(!text.contains("cmd_"), "{text}");
    }

    #[test]
    fn the_text_format_renames_info_and_counter_families() {
        let open = "# HELP a_build The version.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n# HELP a_writes Writes.\n# TYPE a_writes counter\na_writes_total 3\n# HELP a_up Up.\n# TYPE a_up gauge\n# UNIT a_up seconds\na_up 1\n# EOF\n";
        assert_eq!(
            to_text_format(open),
            "# HELP a_build_info The version.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n# HELP a_writes_total Writes.\n# TYPE a_writes_total counter\na_writes_total 3\n# HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n"
        );
    }
}
