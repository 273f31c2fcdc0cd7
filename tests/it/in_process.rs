//! The daemon driven in-process through its seam, `app::run(cfg, shutdown)`:
//! no binary, no signal, and a shutdown the test decides, so the daemon's
//! whole life fits in a fraction of a second.

use std::path::Path;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_in_process_until_the_shutdown_future_completes() {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let text = format!(
        "agent_address = \"{}\"\ncert_dir = \"{}\"\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"\n",
        api.socket_path().display(),
        certs.display()
    );
    let cfg = spiffe_helper::config::parse(&text, Path::new("in-process.conf"), None, &|_| None)
        .unwrap()
        .config;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(spiffe_helper::app::run(cfg, async move {
        let _ = stopped.await;
        nix::sys::signal::Signal::SIGTERM
    }));

    let svid_path = certs.join("svid.pem");
    for svid in [first, pki.svid()] {
        api.set_x509(pki.x509_update(svid.clone()));
        let want = pem_certs(&[svid.leaf_der()]);
        wait_for("the SVID on disk", Duration::from_secs(10), || {
            read_opt(&svid_path)
                .filter(|b| b.starts_with(want.as_bytes()))
                .map(drop)
        })
        .await;
        assert_eq!(
            std::fs::read_to_string(certs.join("key.pem")).unwrap(),
            pem_block("PRIVATE KEY", &svid.key_pkcs8)
        );
    }

    stop.send(()).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(5), daemon)
        .await
        .expect("the daemon stops when its shutdown future completes")
        .unwrap()
        .unwrap();
    assert_eq!(code, 0);
}
