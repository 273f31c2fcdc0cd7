//! Seeing inside the helper, through the real binary: Prometheus metrics
//! scraped after real events, the `/status` document checked against the
//! files on disk (and for secrets), and the log level and format keys.
#![allow(
    clippy::float_cmp,
    reason = "metric values are whole numbers (counts, seconds) that f64 holds exactly"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(20);

/// A scrape: every sample line as `name{labels}` → value (empty while the
/// listener is not up yet).
async fn scrape(port: u16, path: &str) -> BTreeMap<String, f64> {
    let Some((code, body)) = http_get(port, path).await else {
        return BTreeMap::new();
    };
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

async fn wait_metric(port: u16, key: &str, want: f64) -> BTreeMap<String, f64> {
    let what = format!("{key} to be {want}");
    wait_until(&what, LONG, || async {
        let m = scrape(port, "/metrics").await;
        if m.get(key) == Some(&want) {
            Ok(m)
        } else {
            Err(format!("{:?}", m.get(key)))
        }
    })
    .await
}

fn not_after(pem_text: &str) -> (f64, f64) {
    let der = pem::parse(pem_text).expect("PEM").into_contents();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("certificate");
    #[allow(clippy::cast_precision_loss, reason = "seconds since the epoch")]
    (
        cert.validity().not_after.timestamp() as f64,
        cert.validity().not_before.timestamp() as f64,
    )
}

/// The metrics after the first X.509 write: the SVID on disk, the bundle,
/// the child and the stream.
fn first_write_metrics(m: &BTreeMap<String, f64>, w: &Workdir) {
    let (after, before) = not_after(&w.read_string("certs/svid.pem"));
    assert_eq!(m["spiffe_helper_x509_svid_expiry_timestamp_seconds"], after);
    assert_eq!(
        m["spiffe_helper_x509_svid_not_before_timestamp_seconds"],
        before
    );
    assert_eq!(
        m[r#"spiffe_helper_bundle_certificates{trust_domain="example.org"}"#],
        1.0
    );
    assert_eq!(
        m[r#"spiffe_helper_bundle_certificates{trust_domain="federated.test"}"#],
        1.0
    );
    assert_eq!(m["spiffe_helper_cmd_running"], 1.0);
    assert_eq!(m["spiffe_helper_cmd_starts_total"], 1.0);
    assert_eq!(
        m[r#"spiffe_helper_workload_api_stream_up{stream="x509"}"#],
        1.0
    );
    assert_eq!(
        m[&format!(
            "spiffe_helper_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )],
        1.0
    );
}

/// Stops the agent until the X.509 stream is counted down, then starts it
/// again until the stream is up.
async fn agent_away_and_back(api: &FakeWorkloadApi, port: u16) {
    api.stop().await;
    let m = wait_metric(
        port,
        r#"spiffe_helper_workload_api_stream_up{stream="x509"}"#,
        0.0,
    )
    .await;
    assert!(m[r#"spiffe_helper_workload_api_stream_reconnects_total{stream="x509"}"#] >= 1.0);
    api.start_again().await;
    wait_metric(
        port,
        r#"spiffe_helper_workload_api_stream_up{stream="x509"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_rotations_streams_and_the_child() {
    let FakeAgent { api, pki, .. } = fake_agent().await;
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    let marker = w.path().join("child.pid");
    let socket = api.socket_path().to_owned();
    let conf = |port| {
        x509_conf(
            &socket,
            &format!(
                "jwt_bundle_file_name = \"bundle.json\"\njwt_svids = [{{ jwt_audience = \"db\", jwt_svid_file_name = \"db.token\" }}]\ncmd = \"/bin/sh\"\ncmd_args = [\"-c\", \"echo $$ > {}; trap 'exit 3' TERM; trap ':' USR1; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done\"]\nrenew_signal = \"SIGUSR1\"\n{}",
                marker.display(),
                health_conf(port, "")
            ),
        )
    };
    let (d, port) = w
        .spawn_with_health_port(conf, &["-config", "helper.conf"])
        .await;
    wait_for("the child", LONG, || read_opt(&marker)).await;
    let m = wait_metric(
        port,
        r#"spiffe_helper_writes_total{output="x509",file="certs/svid.pem"}"#,
        1.0,
    )
    .await;
    first_write_metrics(&m, &w);
    let m = wait_metric(
        port,
        r#"spiffe_helper_jwt_bundle_keys{trust_domain="example.org"}"#,
        1.0,
    )
    .await;
    let exp = jwt_claims(&w.read_string("certs/db.token"))["exp"]
        .as_f64()
        .unwrap();
    let jwt_key = r#"spiffe_helper_jwt_svid_expiry_timestamp_seconds{file="certs/db.token"}"#;
    assert_eq!(m.get(jwt_key), Some(&exp), "{m:?}");

    // Three rotations, one at a time: three more writes, three signals.
    for i in 1..=3 {
        let next = pki.svid();
        api.set_x509(pki.x509_update(next.clone()));
        wait_svid(&w, &next).await;
        wait_metric(
            port,
            r#"spiffe_helper_renew_signals_total{target="cmd"}"#,
            f64::from(i),
        )
        .await;
    }
    let m = wait_metric(
        port,
        r#"spiffe_helper_writes_total{output="x509",file="certs/svid.pem"}"#,
        4.0,
    )
    .await;
    let (after, _) = not_after(&w.read_string("certs/svid.pem"));
    assert_eq!(m["spiffe_helper_x509_svid_expiry_timestamp_seconds"], after);
    wait_metric(
        port,
        r#"spiffe_helper_renew_signals_total{target="cmd"}"#,
        3.0,
    )
    .await;

    // The agent goes away: the stream is down and reconnects are counted.
    agent_away_and_back(&api, port).await;

    // The child ends: not running, its exit code recorded.
    let pid: i32 = String::from_utf8(read_opt(&marker).unwrap())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let m = wait_metric(port, "spiffe_helper_cmd_running", 0.0).await;
    assert_eq!(m["spiffe_helper_cmd_last_exit_code"], 3.0);
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_federation_scrapes_whole() {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let mut update = pki.x509_update(pki.svid());
    let root = pki.federated.cert_der();
    update.federated = (0..1000)
        .map(|i| (format!("federated-{i}.test"), vec![root.clone()]))
        .collect();
    api.set_x509(update);
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &health_conf(port, "")),
            &["-config", "helper.conf"],
        )
        .await;
    let m = wait_metric(
        port,
        r#"spiffe_helper_bundle_certificates{trust_domain="federated-999.test"}"#,
        1.0,
    )
    .await;
    let domains = m
        .keys()
        .filter(|k| k.starts_with("spiffe_helper_bundle_certificates{"))
        .count();
    assert_eq!(domains, 1001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_document_matches_the_files_and_holds_no_secret() {
    let FakeAgent {
        api,
        pki,
        first: svid,
    } = fake_agent().await;
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    let pid_file = w.path().join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    let socket = api.socket_path().to_owned();
    let conf = |port| {
        x509_conf(
            &socket,
            &format!(
                "jwt_bundle_file_name = \"bundle.json\"\njwt_svids = [{{ jwt_audience = \"db\", jwt_extra_audiences = [\"cache\"], jwt_svid_file_name = \"db.token\" }}]\npid_file_name = \"{}\"\nrenew_signal = \"SIGCONT\"\n{}",
                pid_file.display(),
                health_conf(port, "")
            ),
        )
    };
    let (d, port) = w
        .spawn_with_health_port(conf, &["-config", "helper.conf"])
        .await;
    let doc = wait_for_status(port, |d| {
        d["x509"]["status"] == "written"
            && d["jwt_svids"][0]["status"] == "written"
            && d["jwt_bundle"]["status"] == "written"
            && d["pid_file"]["last_pid"].is_number()
    })
    .await;
    // The build, as the start-up line logs it.
    assert_eq!(doc["build"]["version"], env!("CARGO_PKG_VERSION"));
    let commit = doc["build"]["commit"].as_str().unwrap();
    let date = doc["build"]["date"].as_str().unwrap();
    d.wait_log(&format!("commit=\"{commit}\" build_date=\"{date}\""), LONG)
        .await;

    let x = &doc["x509"];
    assert_eq!(x["spiffe_id"], "spiffe://example.org/workload");
    assert_eq!(x["serial"].as_str().unwrap().replace(':', ""), svid.serial);
    assert_eq!(x["trust_domains"]["example.org"], 1);
    assert_eq!(x["trust_domains"]["federated.test"], 1);
    assert!(x["not_after"].as_str().unwrap().ends_with('Z'));
    let j = &doc["jwt_svids"][0];
    assert_eq!(j["path"], "certs/db.token");
    assert_eq!(j["audiences"], serde_json::json!(["db", "cache"]));
    assert_eq!(j["sub"], "spiffe://example.org/workload");
    assert_eq!(
        doc["jwt_bundle"]["trust_domains"]["example.org"],
        serde_json::json!(["example-key-1"])
    );
    assert_eq!(doc["workload_api_streams"]["x509"]["connected"], true);
    assert_eq!(doc["pid_file"]["last_pid"], std::process::id());
    assert_eq!(doc["pid_file"]["last_result"], "signalled SIGCONT");

    // No byte of a secret: neither the key's base64 lines nor any JWT part.
    let (_, text) = http_get(port, "/status").await.unwrap();
    let key = w.read_string("certs/svid_key.pem");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !text.contains(line),
            "a line of the private key is in /status"
        );
    }
    let token = w.read_string("certs/db.token");
    for part in token.split('.') {
        assert!(!text.contains(part), "a part of the JWT is in /status");
    }
}

async fn wait_for_status(port: u16, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_until("/status to settle", LONG, || async {
        let Some((200, body)) = http_get(port, "/status").await else {
            return Err("no /status".to_owned());
        };
        let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if ok(&doc) {
            Ok(doc)
        } else {
            Err(format!("{doc:#}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_paths_can_be_moved_or_turned_off() {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &health_conf(port, "  metrics_path = \"/m\"\n  status_path = \"\"\n"),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;
    wait_http(port, "/ready", 200).await;
    assert!(scrape(port, "/m")
        .await
        .contains_key("spiffe_helper_x509_svid_expiry_timestamp_seconds"));
    assert_eq!(http_get(port, "/metrics").await.unwrap().0, 404);
    assert_eq!(http_get(port, "/status").await.unwrap().0, 404);
}

async fn oneshot_logs(extra: &str, rust_log: Option<&str>) -> String {
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!("daemon_mode = false\n{extra}"),
    ));
    let mut c = w.command(&["-config", "helper.conf"]);
    match rust_log {
        Some(v) => c.env("RUST_LOG", v),
        None => c.env_remove("RUST_LOG"),
    };
    let run = w.run_cmd(c).await;
    run.assert_success();
    run.stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_applies_unless_rust_log_is_set() {
    let info = oneshot_logs("", None).await;
    assert!(info.contains("X.509 SVID written"), "{info}");
    let quiet = oneshot_logs("log_level = \"WARNING\"", None).await;
    assert!(!quiet.contains("X.509 SVID written"), "{quiet}");
    assert!(!quiet.contains("INFO"), "{quiet}");
    // The configuration's own warnings obey it too: a decimal mode that
    // looks octal is warned about at warn level, so it still shows.
    let warned = oneshot_logs("log_level = \"warn\"\ncert_file_mode = 644", None).await;
    assert!(warned.contains("cert_file_mode"), "{warned}");
    let errors_only = oneshot_logs("log_level = \"error\"\ncert_file_mode = 644", None).await;
    assert!(errors_only.trim().is_empty(), "{errors_only}");
    let debug = oneshot_logs("log_level = \"error\"", Some("debug")).await;
    assert!(
        debug.contains("DEBUG") || debug.contains("X.509 SVID written"),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let logs = oneshot_logs("log_format = \"json\"\ncert_file_mode = 644", None).await;
    let mut levels = Vec::new();
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in ["time", "level", "msg"] {
            assert!(v.get(field).is_some(), "no {field} in {line}");
        }
        for shadow in ["timestamp", "message", "status", "severity"] {
            assert!(v.get(shadow).is_none(), "{shadow} in {line}");
        }
        let time = v["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 27, "{time}");
        levels.push(v["level"].as_str().unwrap().to_owned());
    }
    assert!(levels.contains(&"warn".to_owned()), "{logs}");
    assert!(levels.contains(&"info".to_owned()), "{logs}");
    assert!(
        logs.contains("\"spiffe_id\":\"spiffe://example.org/workload\""),
        "fields are JSON members: {logs}"
    );
}

#[tokio::test]
async fn configuration_errors_are_json_lines_under_log_format_json() {
    let w = Workdir::new();
    w.conf(&x509_conf(
        Path::new("/nonexistent.sock"),
        "log_format = \"json\"\ncert_file_mode = 644\nbogus_key = 1\n",
    ));
    let run = w.run(&["-config", "helper.conf"]).await;
    run.assert_code(1);
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let error = lines
        .iter()
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line: {}", run.stderr));
    assert!(
        error["msg"].as_str().unwrap().contains("bogus_key"),
        "{error}"
    );
    assert!(lines.iter().any(
        |v| v["level"] == "warn" && v["msg"].as_str().unwrap().contains("cert_file_mode = 644")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_level_does_not_dump_http2_frames() {
    // What the HTTP/2 and gRPC libraries say at debug level.
    let chatty = |l: &&str| l.contains("frame=") || l.contains("processing request");
    let asked = oneshot_logs("", Some("debug")).await;
    assert!(
        asked.lines().any(|l| chatty(&l)),
        "RUST_LOG=debug shows them:\n{asked}"
    );
    let logs = oneshot_logs("log_level = \"debug\"", None).await;
    let shown: Vec<&str> = logs.lines().filter(chatty).collect();
    assert!(shown.is_empty(), "{shown:#?}");
}

#[tokio::test]
async fn an_unknown_log_level_or_format_is_a_configuration_error() {
    let w = Workdir::new();
    for (line, key) in [
        ("log_level = \"loud\"", "log_level"),
        ("log_format = \"xml\"", "log_format"),
    ] {
        w.conf(&x509_conf(Path::new("/nonexistent.sock"), line));
        let run = w.run(&["-config", "helper.conf"]).await;
        run.assert_code(1)
            .assert_stderr_contains(&[key, "helper.conf"]);
        assert!(w.cert_listing().is_empty());
    }
}

/// A tool from Debian's `prometheus` package, or a skip (a failure under
/// CI).
fn prometheus_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_none_or(|v| v != "1"),
            "{name} is required under CI (apt-get install prometheus, as .ci/run does)"
        );
        eprintln!("skipped: {name} is not installed (apt-get install prometheus)");
    }
    found
}

/// `GET path` with an `Accept` header: (status, content type, body).
async fn get_accepting(port: u16, path: &str, accept: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: {accept}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (code, ctype, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_in_the_text_format_with_counters_at_zero() {
    let Some(promtool) = prometheus_tool("promtool") else {
        return;
    };
    let api = FakeWorkloadApi::start().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &format!(
                        "jwt_bundle_file_name = \"bundle.json\"\npid_file_name = \"/nonexistent.pid\"\nrenew_signal = \"SIGHUP\"\n{}",
                        health_conf(port, "")
                    ),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;
    // Nothing written yet (the agent has no identity): the counters are
    // there, at 0; cmd is not configured, so no cmd metric.
    let (code, ctype, body) = get_accepting(port, "/metrics", "text/plain;version=0.0.4").await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    for zero in [
        r#"spiffe_helper_writes_total{output="x509",file="certs/svid.pem"} 0"#,
        r#"spiffe_helper_write_failures_total{output="jwt_bundle",file="certs/bundle.json"} 0"#,
        r#"spiffe_helper_workload_api_stream_reconnects_total{stream="x509"}"#,
        r#"spiffe_helper_renew_signals_total{target="pid_file"} 0"#,
        "spiffe_helper_log_lines_dropped_total 0",
    ] {
        assert!(body.contains(zero), "{zero} missing:\n{body}");
    }
    assert!(!body.contains("spiffe_helper_cmd_"), "{body}");
    assert!(
        !body.contains("# EOF") && !body.contains(" info\n"),
        "{body}"
    );

    let check = |text: String| {
        let promtool = promtool.clone();
        async move {
            let mut child = tokio::process::Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes())
                .await
                .unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let out = check(body).await;
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // After writes, with every family filled in, it still passes; without
    // an Accept for the text format the answer is OpenMetrics.
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    wait_metric(
        port,
        r#"spiffe_helper_writes_total{output="jwt_bundle",file="certs/bundle.json"}"#,
        1.0,
    )
    .await;
    let (_, _, body) = get_accepting(port, "/metrics", "text/plain").await;
    let out = check(body).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (_, ctype, body) = get_accepting(port, "/metrics", "*/*").await;
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(body.ends_with("# EOF\n"), "{body}");
}

/// Prometheus with `dir/prometheus.yml`, on a loopback port of its own
/// (tried until one is free): the process and its port.
async fn start_prometheus(prometheus: &Path, dir: &Path) -> (tokio::process::Child, u16) {
    for _ in 0..10 {
        let web = free_port();
        let mut child = tokio::process::Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let up = wait_for("Prometheus to listen or exit", LONG, || {
            if child.try_wait().ok().flatten().is_some() {
                return Some(false);
            }
            std::net::TcpStream::connect(("127.0.0.1", web))
                .ok()
                .map(|_| true)
        })
        .await;
        if up {
            return (child, web);
        }
    }
    panic!("Prometheus never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scrapes_the_svid_expiry_on_disk() {
    let Some(prometheus) = prometheus_tool("prometheus") else {
        return;
    };
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (_d, port) = w
        .spawn_with_health_port(
            |port| {
                x509_conf(
                    &socket,
                    &health_conf(port, "  bind_address = \"127.0.0.1\"\n"),
                )
            },
            &["-config", "helper.conf"],
        )
        .await;
    let (after, _) = {
        let pem_text = wait_for("the SVID", LONG, || {
            std::fs::read_to_string(w.certs().join("svid.pem")).ok()
        })
        .await;
        not_after(&pem_text)
    };
    let prom_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        prom_dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: helper\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let (_server, web) = start_prometheus(&prometheus, prom_dir.path()).await;

    let query = "/api/v1/query?query=spiffe_helper_x509_svid_expiry_timestamp_seconds";
    let value = wait_until(
        "Prometheus to have the metric",
        Duration::from_secs(60),
        || async {
            if let Some((200, body)) = http_get(web, query).await {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if let Some(s) = v["data"]["result"][0]["value"][1].as_str() {
                    return Ok(s.parse::<f64>().unwrap());
                }
            }
            Err(std::fs::read_to_string(prom_dir.path().join("prometheus.log")).unwrap_or_default())
        },
    )
    .await;
    assert_eq!(value, after);
}
