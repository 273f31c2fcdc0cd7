//! The container image, run as its users run it: `.ci/image` builds it
//! with buildah from the static binary and runs this test with
//! `SPIFFE_HELPER_IMAGE` naming it. The image's helper (uid 65532, FROM
//! scratch) writes the credentials from the fake Workload API, mounted in
//! as a Kubernetes volume would be. Without `SPIFFE_HELPER_IMAGE` it says
//! so and passes: `cargo test` builds no image.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::process::Command;

use crate::common::*;

fn buildah(args: &[&str]) -> std::process::Output {
    Command::new("buildah")
        .args(args)
        .output()
        .expect("buildah runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_writes_the_credentials_as_its_user_with_exact_modes() {
    let Some(image) = std::env::var("SPIFFE_HELPER_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
    else {
        eprintln!(
            "skipped: SPIFFE_HELPER_IMAGE is not set (.ci/image builds the image and sets it)"
        );
        return;
    };
    let open = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let agent_dir = tempfile::tempdir().unwrap();
    open(agent_dir.path(), 0o755);
    let api = FakeWorkloadApi::start_at(&agent_dir.path().join("api.sock")).await;
    open(api.socket_path(), 0o777);
    let pki = Pki::new();
    let svid = pki.svid();
    api.set_x509(pki.x509_update(svid.clone()));

    let w = Workdir::new();
    open(&w.certs(), 0o777);
    std::fs::create_dir(w.path().join("conf")).unwrap();
    std::fs::write(
        w.path().join("conf/helper.conf"),
        "agent_address = \"/spiffe-workload-api/api.sock\"\ncert_dir = \"/certs\"\ndaemon_mode = false\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"svid_key.pem\"\nsvid_bundle_file_name = \"svid_bundle.pem\"\noneshot_max_wait = \"20s\"\n",
    )
    .unwrap();

    let from = buildah(&["from", "--quiet", &image]);
    assert!(
        from.status.success(),
        "{}",
        String::from_utf8_lossy(&from.stderr)
    );
    let ctr = String::from_utf8(from.stdout).unwrap().trim().to_owned();
    let mounts = [
        format!("{}:/spiffe-workload-api", agent_dir.path().display()),
        format!("{}:/certs", w.certs().display()),
        format!("{}:/etc/spiffe-helper:ro", w.path().join("conf").display()),
    ];
    let run = buildah(&[
        "run",
        "--isolation",
        "chroot",
        "-v",
        &mounts[0],
        "-v",
        &mounts[1],
        "-v",
        &mounts[2],
        &ctr,
        "--",
        "/spiffe-helper",
        "-config",
        "/etc/spiffe-helper/helper.conf",
    ]);
    let _ = buildah(&["rm", &ctr]);
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        w.cert_listing(),
        ["svid.pem", "svid_bundle.pem", "svid_key.pem"]
    );
    assert_eq!(
        w.read("certs/svid_key.pem"),
        pem_block("PRIVATE KEY", &svid.key_pkcs8).into_bytes()
    );
    for (name, mode) in [
        ("svid.pem", 0o644),
        ("svid_bundle.pem", 0o644),
        ("svid_key.pem", 0o600),
    ] {
        let meta = std::fs::metadata(w.certs().join(name)).unwrap();
        assert_eq!(meta.uid(), 65532, "{name} is the image user's");
        assert_eq!(meta.mode() & 0o7777, mode, "{name}");
    }
}
