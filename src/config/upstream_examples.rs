//! The Go helper's own example and test configurations (rewritten here in
//! `testdata/`, same keys and forms): each loads, with the values and the
//! warnings expected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::testing::no_env;
use super::{parse, Command, Config, DEFAULT_ONESHOT_MAX_WAIT};

fn load(name: &str, text: &str) -> (Config, Vec<String>) {
    match parse(text, Path::new(name), None, &no_env) {
        Ok(l) => (l.config, l.warnings),
        Err(e) => panic!("{name}: {e}"),
    }
}

#[allow(
    clippy::unnecessary_wraps,
    reason = "compared with Config::process.cmd, an Option"
)]
fn command(program: &str, args: &[&str]) -> Option<Command> {
    Some(Command {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    })
}

#[test]
fn envoy_with_jwt() {
    let (c, w) = load("envoy", include_str!("testdata/envoy_with_jwt.conf"));
    let x = c.x509.unwrap();
    let files = x.files.unwrap();
    assert_eq!(files.svid.path, PathBuf::from("certs/svid.pem"));
    // 444 is decimal, 0o674, as in the Go helper.
    assert_eq!((files.svid.mode, files.key.mode), (0o674, 0o674));
    assert!(x.add_intermediates_to_bundle);
    assert_eq!(c.jwt_svids.len(), 1);
    assert_eq!(
        c.jwt_svids[0].audiences(),
        [
            "your-audience",
            "your-extra-audience-1",
            "your-extra-audience-2"
        ]
    );
    assert_eq!(c.jwt_svids[0].file.mode, 0o674);
    assert_eq!(c.jwt_bundle.unwrap().mode, 0o674);
    assert_eq!(
        c.process.cmd,
        command("hot-restarter.py", &["start_envoy.sh"])
    );
    assert_eq!(c.process.renew_signal, Some(Signal::SIGHUP));
    assert_eq!(w.len(), 6, "{w:?}");
    assert!(
        w[..4]
            .iter()
            .all(|w| w.contains("is the decimal number 444")),
        "{w:?}"
    );
    assert!(
        w[4].contains("private key material will be readable"),
        "{w:?}"
    );
    assert!(
        w[5].contains("the tokens (bearer credentials) will be readable"),
        "{w:?}"
    );
}

#[test]
fn mosquitto_without_a_final_newline() {
    let (c, w) = load("mosquitto", include_str!("testdata/mosquitto.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.x509.unwrap().files.unwrap().key.path,
        PathBuf::from("/opt/spire/certs/mosquitto/svid.key")
    );
    assert_eq!(
        c.process.cmd,
        command(
            "/usr/sbin/mosquitto",
            &["-c", "./examples/mosquitto/mosquitto.conf"]
        )
    );
}

#[test]
fn mysql() {
    let (c, w) = load("mysql", include_str!("testdata/mysql.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert!(c.x509.unwrap().add_intermediates_to_bundle);
    assert_eq!(
        c.process.cmd,
        command("/usr/bin/mysql", &["-e", "ALTER INSTANCE RELOAD TLS;"])
    );
    assert_eq!(c.process.renew_signal, None);
    let (c, w) = load(
        "mysql integration",
        include_str!("testdata/mysql_integration.conf"),
    );
    // Its key is 0644: readable by others, which is said.
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("private key material will be readable"),
        "{w:?}"
    );
    let files = c.x509.unwrap().files.unwrap();
    assert_eq!((files.svid.mode, files.key.mode), (0o644, 0o644));
    assert_eq!(c.agent_socket, PathBuf::from("/run/spire/api.sock"));
    assert_eq!(
        c.process.cmd,
        command(
            "/usr/bin/mysql",
            &[
                "--protocol=socket",
                "--socket=/run/mysqld/mysqld.sock",
                "-uroot",
                "-e",
                "ALTER INSTANCE RELOAD TLS;"
            ]
        )
    );
}

#[test]
fn postgresql() {
    let (c, w) = load("postgresql", include_str!("testdata/postgresql.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.process.cmd,
        command(
            "/usr/bin/psql",
            &["-p", "5432", "-c", "SELECT pg_reload_conf();"]
        )
    );
    let (c, w) = load(
        "postgres integration",
        include_str!("testdata/postgres_integration.conf"),
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.process.cmd,
        command(
            "/usr/libexec/postgresql16/postgres",
            &[
                "-D",
                "/var/lib/postgresql/data",
                "-c",
                "config_file=/var/lib/postgresql/data/postgresql.conf"
            ]
        )
    );
}

#[test]
fn plain_and_empty_values() {
    let (c, w) = load("plain", include_str!("testdata/plain.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.process.cmd, None);
    assert_eq!(c.process.renew_signal, Some(Signal::SIGUSR1));
    assert!(!c.x509.unwrap().add_intermediates_to_bundle);
}

#[test]
fn ghostunnel_with_jwt() {
    let (c, w) = load("ghostunnel", include_str!("testdata/ghostunnel.conf"));
    // Key and tokens at 0444: readable by others, which is said.
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(c.x509.unwrap().files.unwrap().key.mode, 0o444);
    assert_eq!(
        c.jwt_svids[0].audiences(),
        ["db-audience", "extra-1", "extra-2"]
    );
    assert_eq!(c.jwt_svids[0].file.mode, 0o444);
    let cmd = c.process.cmd.unwrap();
    assert_eq!(cmd.program, "ghostunnel");
    assert_eq!(cmd.args.len(), 11);
    assert_eq!(cmd.args[10], "spiffe://example.org/db");
}

#[test]
fn windows_pipe_name_and_inline_jwt_list() {
    let (c, w) = load("windows", include_str!("testdata/windows.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.agent_socket, PathBuf::from("spire-agent\\public\\api"));
    assert_eq!(
        c.jwt_svids[0].file.path,
        PathBuf::from("certs/jwt_svid.token")
    );
    assert_eq!(
        c.jwt_bundle.unwrap().path,
        PathBuf::from("certs/bundle.json")
    );
}

#[test]
fn one_shot_for_kubernetes() {
    let (c, w) = load("one-shot", include_str!("testdata/one_shot.conf"));
    assert!(w.is_empty(), "{w:?}");
    assert!(!c.daemon_mode);
    assert_eq!(
        c.x509.unwrap().files.unwrap().svid.path,
        PathBuf::from("tls.crt")
    );
    assert_eq!(c.jwt_svids[0].audience, "test");
    assert_eq!(c.jwt_bundle.unwrap().path, PathBuf::from("cert.jwt"));
    assert_eq!(c.oneshot_max_wait, DEFAULT_ONESHOT_MAX_WAIT);
    assert_ne!(c.oneshot_max_wait, Duration::ZERO);
}
