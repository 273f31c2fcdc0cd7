//! Private keys and JWTs never reach the helper's output, at any log
//! level, in one-shot or daemon mode (rotations, JWT refreshes, JWT bundle
//! updates, health probes): no line of a key's base64 body, no key bytes in
//! hex or as a byte list, no JWT and no JWT signature segment appear on
//! stdout or stderr.

use std::time::Duration;

use crate::common::*;
use base64::Engine as _;

const LONG: Duration = Duration::from_secs(30);

/// Text that must never be printed, each with what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn key(&mut self, svid: &Svid) {
        let pem = pem_block("PRIVATE KEY", &svid.key_pkcs8);
        let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body.len() >= 2, "{pem}");
        for line in &body {
            assert!(line.len() >= 16, "a line too short to search for: {line:?}");
            self.0.push((
                (*line).to_owned(),
                format!("key {} base64 line", svid.serial),
            ));
        }
        self.0.push((
            base64::engine::general_purpose::STANDARD.encode(&svid.key_pkcs8),
            format!("key {} as one base64 string", svid.serial),
        ));
        // The private scalar of the RFC 5915 key inside the PKCS#8 wrapper:
        // INTEGER 1, then OCTET STRING of 32 bytes.
        let at = svid
            .key_pkcs8
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .expect("a P-256 private key");
        let scalar = &svid.key_pkcs8[at + 5..at + 5 + 32];
        let hex: String = scalar.iter().map(|b| format!("{b:02x}")).collect();
        self.0
            .push((hex.clone(), format!("key {} scalar in hex", svid.serial)));
        self.0.push((
            hex.to_uppercase(),
            format!("key {} scalar in upper-case hex", svid.serial),
        ));
        let list: Vec<String> = scalar[..8].iter().map(u8::to_string).collect();
        self.0.push((
            list.join(", "),
            format!("key {} scalar as a byte list", svid.serial),
        ));
    }

    fn jwt(&mut self, token: &str) {
        let signature = token.rsplit('.').next().expect("a compact JWT");
        assert!(signature.len() >= 40, "{token}");
        self.0.push((token.to_owned(), "a JWT".to_owned()));
        self.0
            .push((signature.to_owned(), "a JWT signature segment".to_owned()));
    }

    #[track_caller]
    fn assert_absent(&self, level: &str, output: &str) {
        for (text, what) in &self.0 {
            if let Some(line) = output.lines().find(|l| l.contains(text.as_str())) {
                panic!("RUST_LOG={level}: {what} was printed:\n{line}");
            }
        }
    }
}

const TAGS: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The level of each log line (the word after the timestamp).
fn line_levels(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let time = words.next()?;
            let level = words.next()?;
            (time.ends_with('Z') && TAGS.contains(&level)).then_some(level)
        })
        .collect()
}

/// The level really applied: nothing more verbose was printed, and at the
/// debug and trace levels, lines of that level were.
#[track_caller]
fn assert_level_applied(level: &str, output: &str) {
    let tag = level.to_uppercase();
    let rank = |t: &str| TAGS.iter().position(|x| *x == t).expect("a level");
    let levels = line_levels(output);
    if let Some(l) = levels.iter().find(|l| rank(l) > rank(&tag)) {
        panic!("RUST_LOG={level} printed a {l} line:\n{output}");
    }
    if matches!(level, "debug" | "trace") {
        assert!(
            levels.contains(&tag.as_str()),
            "RUST_LOG={level} printed no {tag} line:\n{output}"
        );
    }
}

fn jwt_conf(extra: &str) -> String {
    format!(
        r#"jwt_bundle_file_name = "bundle.json"
jwt_svids = [
  {{ jwt_audience = "db", jwt_extra_audiences = ["cache"], jwt_svid_file_name = "db.token" }},
  {{ jwt_audience = "web", jwt_svid_file_name = "web.token" }},
]
{extra}"#
    )
}

async fn one_shot(level: &str) {
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
    // Permission denied first: the retry path logs too.
    api.deny_next(1);
    let w = Workdir::new();
    w.conf(&x509_conf(
        api.socket_path(),
        &format!("daemon_mode = false\n{}", jwt_conf("")),
    ));
    let mut c = w.command(&["-config", "helper.conf"]);
    c.env("RUST_LOG", level);
    let run = w.run_cmd(c).await;
    run.assert_success();

    // The secrets searched for are the ones written.
    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &svid.key_pkcs8)
    );
    let tokens = api.jwt_tokens();
    for f in ["certs/db.token", "certs/web.token"] {
        assert!(tokens.contains(&w.read_string(f)), "{f}");
    }
    let mut secrets = Secrets::default();
    secrets.key(&svid);
    for t in &tokens {
        secrets.jwt(t);
    }
    let output = format!("{}\n{}", run.stdout, run.stderr);
    assert_level_applied(level, &output);
    secrets.assert_absent(level, &output);
}

async fn daemon(level: &str) {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let mut svids = vec![pki.svid()];
    api.set_x509(pki.x509_update(svids[0].clone()));
    // Short-lived tokens: refreshed every two seconds or so.
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(3),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (mut d, port) = w
        .spawn_with_health_port_env(
            |port| {
                x509_conf(
                    &socket,
                    &jwt_conf(&format!(
                        "health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n"
                    )),
                )
            },
            &["-config", "helper.conf"],
            &[("RUST_LOG", level)],
        )
        .await;

    // Rotations, a JWT bundle update, a failed JWT fetch and probes.
    for _ in 0..3 {
        let next = pki.svid();
        api.set_x509(pki.x509_update(next.clone()));
        let want = pem_certs(&[next.leaf_der()]);
        let path = w.certs().join("svid.pem");
        wait_for("a rotation", LONG, || {
            read_opt(&path)
                .filter(|b| b.starts_with(want.as_bytes()))
                .map(drop)
        })
        .await;
        svids.push(next);
        let _ = http_get(port, "/live").await;
        let _ = http_get(port, "/ready").await;
    }
    let extra = JwtIssuer::new("federated.test", "k2");
    api.set_jwt_bundles(vec![
        ("example.org".into(), pki.jwt.jwks_json()),
        ("federated.test".into(), extra.jwks_json()),
    ]);
    api.fail_jwt_next(1);
    // Two refreshes of each token after the first ones.
    wait_for("JWT refreshes", LONG, || {
        (api.jwt_tokens().len() >= 6).then_some(())
    })
    .await;
    let bundle = w.certs().join("bundle.json");
    wait_for("the JWT bundle update", LONG, || {
        read_opt(&bundle).filter(|b| String::from_utf8_lossy(b).contains("federated.test"))
    })
    .await;
    let _ = http_get(port, "/live").await;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).await, Some(0));

    assert_eq!(
        w.read_string("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &svids[3].key_pkcs8)
    );
    let mut secrets = Secrets::default();
    for s in &svids {
        secrets.key(s);
    }
    for t in api.jwt_tokens() {
        secrets.jwt(&t);
    }
    let output = format!("{}\n{}", d.stdout(), d.logs());
    assert_level_applied(level, &output);
    secrets.assert_absent(level, &output);
}

macro_rules! at_every_level {
    ($($name:ident: $mode:ident($level:expr);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $mode($level).await;
        }
    )*};
}

at_every_level! {
    one_shot_at_error_level: one_shot("error");
    one_shot_at_warn_level: one_shot("warn");
    one_shot_at_info_level: one_shot("info");
    one_shot_at_debug_level: one_shot("debug");
    one_shot_at_trace_level: one_shot("trace");
    daemon_at_error_level: daemon("error");
    daemon_at_warn_level: daemon("warn");
    daemon_at_info_level: daemon("info");
    daemon_at_debug_level: daemon("debug");
    daemon_at_trace_level: daemon("trace");
}

/// The search itself finds a printed secret in each form, so the tests
/// above can fail.
#[test]
fn a_printed_secret_is_found_in_every_form() {
    let pki = Pki::new();
    let svid = pki.svid();
    let token = pki.jwt.mint(
        "spiffe://example.org/workload",
        &["db".to_owned()],
        Duration::from_secs(60),
    );
    let mut s = Secrets::default();
    s.key(&svid);
    s.jwt(&token);
    let pem = pem_block("PRIVATE KEY", &svid.key_pkcs8);
    let hex: String = svid.key_pkcs8.iter().map(|b| format!("{b:02X}")).collect();
    let leaks = [
        format!(
            "2026-01-01T00:00:00Z  INFO written key={}",
            pem.lines().nth(2).unwrap()
        ),
        format!("key {}", pem.lines().nth(3).unwrap()),
        format!("key {:?}", svid.key_pkcs8),
        format!("key {hex}"),
        format!("token={token}"),
        format!("sig {}", token.rsplit('.').next().unwrap()),
    ];
    for leak in &leaks {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.assert_absent("info", &format!("harmless\n{leak}\nharmless"));
        }));
        assert!(found.is_err(), "not found: {leak}");
    }
    s.assert_absent("info", "nothing secret here\nspiffe://example.org/workload");

    let more_verbose = std::panic::catch_unwind(|| {
        assert_level_applied("warn", "2026-01-01T00:00:00.1Z  INFO something");
    });
    assert!(more_verbose.is_err(), "an INFO line at the warn level");
    let missing = std::panic::catch_unwind(|| {
        assert_level_applied("trace", "2026-01-01T00:00:00.1Z DEBUG something");
    });
    assert!(missing.is_err(), "no TRACE line at the trace level");
    assert_level_applied("trace", "2026-01-01T00:00:00.1Z TRACE something");
}
