//! PKCS#12 keystores and truststores, checked by the tools Java users run:
//! a real JDK's `keytool` lists the key entry with its chain and the trusted
//! entries, a small Java program (tests/java/Handshake.java) completes a
//! mutual TLS handshake with them and sees the SPIFFE ID on both sides, a
//! rotation shows the new serial, and `openssl pkcs12 -info` reads both
//! profiles. Without a JDK or openssl the tests say so and pass, unless
//! `SPIFFE_HELPER_REQUIRE_REAL=1` (CI), which makes that a failure.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(20);
const PASSWORD: &str = "changeit";

fn tools() -> bool {
    let missing: Vec<&str> = ["keytool", "javac", "java", "openssl"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("SPIFFE_HELPER_REQUIRE_REAL").is_none_or(|v| v != "1"),
        "{missing:?} required under CI (apt-get install default-jdk-headless openssl)"
    );
    eprintln!("skipped: {missing:?} not installed (apt-get install default-jdk-headless openssl)");
    false
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

fn keytool_list(store: &Path) -> String {
    run(
        "keytool",
        &[
            "-list",
            "-v",
            "-storetype",
            "PKCS12",
            "-keystore",
            &store.display().to_string(),
            "-storepass",
            PASSWORD,
        ],
    )
}

fn conf(w: &Workdir, socket: &Path, extra: &str) -> String {
    let pw = w.path().join("pkcs12.password");
    std::fs::write(
        &pw,
        format!("{PASSWORD}\nsecond line is not the password\n"),
    )
    .unwrap();
    format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\npkcs12_file_name = \"ks.p12\"\npkcs12_truststore_file_name = \"ts.p12\"\npkcs12_password_file = \"{}\"\ninclude_federated_domains = true\n{extra}\n",
        socket.display(),
        pw.display()
    )
}

/// The serial number as keytool prints it: lower-case hex, no leading zeros.
fn keytool_serial(hex: &str) -> String {
    let s = hex.replace(':', "").to_ascii_lowercase();
    s.trim_start_matches('0').to_owned()
}

/// Compiles and runs `tests/java/Handshake.java`: a TLS server and client
/// in one JVM, both with the keystore and truststore, each reporting the
/// SPIFFE ID the other presented.
fn java_handshake(ks: &Path, ts: &Path) {
    let java = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Handshake.java"),
        java.path().join("Handshake.java"),
    )
    .unwrap();
    let dir = java.path().display().to_string();
    run("javac", &["-d", &dir, &format!("{dir}/Handshake.java")]);
    let out = run(
        "java",
        &[
            "-cp",
            &dir,
            "Handshake",
            &ks.display().to_string(),
            &ts.display().to_string(),
            PASSWORD,
        ],
    );
    assert!(
        out.contains("client saw spiffe://example.org/workload"),
        "{out}"
    );
    assert!(
        out.contains("server saw spiffe://example.org/workload"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jvm_loads_the_keystore_and_truststore_and_completes_mutual_tls() {
    if !tools() {
        return;
    }
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&conf(&w, api.socket_path(), ""));
    let d = w.spawn(&["-config", "helper.conf"]);
    let ks = w.certs().join("ks.p12");
    let ts = w.certs().join("ts.p12");
    wait_for("the keystore", LONG, || read_opt(&ks)).await;
    assert_eq!(w.mode("certs/ks.p12"), 0o600);
    assert_eq!(w.mode("certs/ts.p12"), 0o644);

    let list = keytool_list(&ks);
    assert!(list.contains("Your keystore contains 1 entry"), "{list}");
    assert!(list.contains("Entry type: PrivateKeyEntry"), "{list}");
    assert!(list.contains("Certificate chain length: 2"), "{list}");
    assert!(list.contains("spiffe://example.org/workload"), "{list}");
    assert!(list.contains(&keytool_serial(&first.serial)), "{list}");
    let trust = keytool_list(&ts);
    assert!(
        trust.contains("Your keystore contains 2 entries"),
        "{trust}"
    );
    assert_eq!(
        trust.matches("Entry type: trustedCertEntry").count(),
        2,
        "{trust}"
    );

    // A mutual TLS handshake with these files, in a real JVM.
    java_handshake(&ks, &ts);

    // A rotation: loading the keystore again shows the new serial.
    let next = pki.svid();
    api.set_x509(pki.x509_update(next.clone()));
    let want = keytool_serial(&next.serial);
    wait_for("the new serial in the keystore", LONG, || {
        keytool_list(&ks).contains(&want).then_some(())
    })
    .await;
    drop(d);

    // openssl reads the modern profile...
    let info = run(
        "openssl",
        &[
            "pkcs12",
            "-info",
            "-noout",
            "-in",
            &ks.display().to_string(),
            "-passin",
            &format!("pass:{PASSWORD}"),
        ],
    );
    assert!(
        info.contains("PBES2") && info.contains("AES-256-CBC"),
        "{info}"
    );
    assert!(info.contains("sha256"), "{info}");
}

#[tokio::test]
async fn the_legacy_profile_is_3des_with_a_sha1_mac_and_a_password_file_is_required() {
    if !tools() {
        return;
    }
    let FakeAgent { api, .. } = fake_agent().await;
    let w = Workdir::new();
    w.conf(&conf(
        &w,
        api.socket_path(),
        "daemon_mode = false\npkcs12_profile = \"legacy\"",
    ));
    w.run(&["-config", "helper.conf"]).await.assert_success();
    let ks = w.certs().join("ks.p12").display().to_string();
    let mut info = Command::new("openssl");
    info.args([
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        &ks,
        "-passin",
        &format!("pass:{PASSWORD}"),
    ]);
    let out = info.output().unwrap();
    let mut text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // OpenSSL 3 keeps some legacy ciphers in its legacy provider.
        text = run(
            "openssl",
            &[
                "pkcs12",
                "-legacy",
                "-info",
                "-noout",
                "-in",
                &ks,
                "-passin",
                &format!("pass:{PASSWORD}"),
            ],
        );
    }
    assert!(
        text.contains("3-KeyTripleDES") || text.contains("des-ede3"),
        "{text}"
    );
    assert!(text.contains("sha1"), "{text}");
    assert!(keytool_list(Path::new(&ks)).contains("PrivateKeyEntry"));

    // No password file: refused at load, naming the key.
    w.conf(&format!(
        "agent_address = \"{}\"\ncert_dir = \"certs\"\npkcs12_file_name = \"ks2.p12\"\n",
        api.socket_path().display()
    ));
    w.run(&["-config", "helper.conf"])
        .await
        .assert_code(1)
        .assert_stderr_contains(&["a PKCS#12 output needs pkcs12_password_file"]);
}
