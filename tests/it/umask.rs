//! Modes are exact whatever the umask: the helper run under `umask 077`
//! and `umask 000` gives every file exactly its default or configured
//! mode, in one-shot mode and across daemon-mode rotations.

use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);

/// `sh -c` that sets the umask, proves it with a probe file, then execs
/// the helper with its arguments.
fn under_umask(umask: &str) -> [String; 3] {
    [
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!("umask {umask} && : > umask-probe && exec \"$0\" \"$@\""),
    ]
}

/// The modes the probe file gets under each umask (created 0666 by the
/// shell), so a test cannot pass because the umask was never set.
fn probe_mode(umask: &str) -> u32 {
    match umask {
        "000" => 0o666,
        "077" => 0o600,
        other => panic!("no probe mode for {other}"),
    }
}

struct Agent {
    api: FakeWorkloadApi,
    pki: Pki,
}

async fn agent() -> Agent {
    let FakeAgent { api, pki, .. } = fake_agent().await;
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    Agent { api, pki }
}

const JWT: &str = r#"jwt_bundle_file_name = "bundle.json"
jwt_svids = [{ jwt_audience = "db", jwt_svid_file_name = "db.token" }]
"#;

/// The configured modes: wider than 077 allows, narrower than 000 gives.
const CONFIGURED: &str = "cert_file_mode = 0664\nkey_file_mode = 0640\njwt_bundle_file_mode = 0604\njwt_svid_file_mode = 0400\n";

/// (file, default mode, configured mode)
const FILES: [(&str, u32, u32); 5] = [
    ("certs/svid.pem", 0o644, 0o664),
    ("certs/svid_bundle.pem", 0o644, 0o664),
    ("certs/svid_key.pem", 0o600, 0o640),
    ("certs/bundle.json", 0o600, 0o604),
    ("certs/db.token", 0o600, 0o400),
];

#[track_caller]
fn assert_modes(w: &Workdir, umask: &str, configured: bool) {
    assert_eq!(
        w.mode("umask-probe"),
        probe_mode(umask),
        "umask {umask} not set"
    );
    for (f, default, conf) in FILES {
        let want = if configured { conf } else { default };
        assert_eq!(
            w.mode(f),
            want,
            "{f} under umask {umask} ({}): {:o}",
            if configured { "configured" } else { "default" },
            w.mode(f)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_modes_are_exact_under_any_umask() {
    let a = agent().await;
    for umask in ["077", "000"] {
        for configured in [false, true] {
            let w = Workdir::new();
            let extra = if configured { CONFIGURED } else { "" };
            w.conf(&x509_conf(
                a.api.socket_path(),
                &format!("daemon_mode = false\n{JWT}{extra}"),
            ));
            let wrapper = under_umask(umask);
            let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
            let c = w.command_under(&wrapper, &["-config", "helper.conf"]);
            w.run_cmd(c).await.assert_success();
            assert_modes(&w, umask, configured);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_modes_are_exact_under_any_umask_across_rotations() {
    let a = agent().await;
    for umask in ["077", "000"] {
        for configured in [false, true] {
            let w = Workdir::new();
            let extra = if configured { CONFIGURED } else { "" };
            w.conf(&x509_conf(a.api.socket_path(), &format!("{JWT}{extra}")));
            let wrapper = under_umask(umask);
            let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
            let mut d = w.spawn_under(&wrapper, &["-config", "helper.conf"]);
            wait_for("every file", LONG, || {
                FILES.iter().all(|(f, _, _)| w.exists(f)).then_some(())
            })
            .await;
            // A rotation replaces the X.509 files: still exact.
            let next = a.pki.svid();
            a.api.set_x509(a.pki.x509_update(next.clone()));
            let want = pem_certs(&[next.leaf_der()]);
            let path = w.certs().join("svid.pem");
            wait_for("the rotation", LONG, || {
                read_opt(&path)
                    .filter(|b| b.starts_with(want.as_bytes()))
                    .map(drop)
            })
            .await;
            assert_modes(&w, umask, configured);
            d.signal(nix::sys::signal::Signal::SIGTERM);
            assert_eq!(d.wait_exit(Duration::from_secs(10)).await, Some(0));
        }
    }
}
