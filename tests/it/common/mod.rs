//! Shared pieces of the integration tests: a scratch directory with a
//! config file, and the real `spiffe-helper` binary run against it.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

pub use fake_workload_api::{Ca, FakeWorkloadApi, JwtIssuer, Pki, Svid, X509Update};

pub mod spire;

/// The binary under test: `$SPIFFE_HELPER_BIN` when set (`.ci/run` runs
/// the suite a second time against the static release build), else the
/// one cargo built for these tests.
pub fn bin() -> PathBuf {
    std::env::var_os("SPIFFE_HELPER_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_spiffe-helper").into(), PathBuf::from)
}

/// A daemon-mode configuration writing the three X.509 files to `certs/`,
/// plus `extra` lines.
pub fn x509_conf(socket: &Path, extra: &str) -> String {
    format!(
        r#"
agent_address = "{}"
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
{extra}
"#,
        socket.display()
    )
}

/// A temporary working directory holding `helper.conf` and a `certs/` folder.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Self::at(tempfile::tempdir().expect("tempdir"))
    }

    /// A working directory on tmpfs (`/dev/shm`), as a Kubernetes
    /// `emptyDir` with `medium: Memory` is.
    pub fn in_memory() -> Self {
        Self::at(tempfile::tempdir_in("/dev/shm").expect("tempdir in /dev/shm"))
    }

    fn at(dir: tempfile::TempDir) -> Self {
        std::fs::create_dir(dir.path().join("certs")).expect("certs dir");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Writes `helper.conf` and returns its path.
    pub fn conf(&self, text: &str) -> PathBuf {
        let p = self.dir.path().join("helper.conf");
        std::fs::write(&p, text).expect("write conf");
        p
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn read_string(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).expect("utf-8")
    }

    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.dir.path().join(rel))
            .unwrap_or_else(|e| panic!("stat {rel}: {e}"))
            .mode()
            & 0o7777
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.dir.path().join(rel).exists()
    }

    /// Every entry of `certs/`, sorted.
    pub fn cert_listing(&self) -> Vec<String> {
        self.listing("certs")
    }

    /// The sorted names in a directory below this one.
    pub fn listing(&self, rel: &str) -> Vec<String> {
        listing(&self.path().join(rel))
    }

    /// Waits until the directory `rel` below this one holds exactly `names`
    /// (a batch's backup names are removed just after its last rename or
    /// removal), failing with the listing.
    pub async fn wait_listing(&self, rel: &str, names: &[&str]) {
        let want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        wait_until(
            &format!("{rel}/ to hold exactly those files"),
            Duration::from_secs(10),
            || {
                let got = self.listing(rel);
                std::future::ready(if got == want {
                    Ok(())
                } else {
                    Err(format!("{rel}/ holds {got:?}, expected {want:?}"))
                })
            },
        )
        .await;
    }

    /// A command for the helper, run in this directory with a clean
    /// environment for the Workload API variable.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_under(&[], args)
    }

    /// `command`, run through `wrapper` (e.g. `["nohup"]`).
    pub fn command_under(&self, wrapper: &[&str], args: &[&str]) -> tokio::process::Command {
        let mut c = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => tokio::process::Command::new(bin()),
        };
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("SPIFFE_ENDPOINT_SOCKET")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs the helper to completion (with a generous deadline).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(args)).await
    }

    pub async fn run_cmd(&self, mut c: tokio::process::Command) -> Run {
        let out = tokio::time::timeout(Duration::from_secs(90), c.output())
            .await
            .expect("helper did not finish in 90 s")
            .expect("spawn helper");
        Run::from(out)
    }
}

/// What a finished helper left behind.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "helper failed:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}:\n{}",
                self.stderr
            );
        }
        self
    }
}

pub use fake_workload_api::{free_port, wait_until};

/// [`wait_until`] for a synchronous check that has nothing to say while
/// it waits.
pub async fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    wait_until(what, deadline, || std::future::ready(f().ok_or("not yet"))).await
}

/// PEM `CERTIFICATE` blocks for DER certificates, as the helper writes them.
pub fn pem_certs(ders: &[&[u8]]) -> String {
    ders.iter()
        .map(|d| pem_block("CERTIFICATE", d))
        .collect::<String>()
}

pub fn pem_block(tag: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {tag}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("ascii"));
        s.push('\n');
    }
    s.push_str("-----END ");
    s.push_str(tag);
    s.push_str("-----\n");
    s
}

/// The claims of a compact JWT (no signature check: the fake signed it).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("JWT has a payload");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&raw).expect("JSON claims")
}

/// A helper running in daemon mode; killed when dropped.
pub struct Daemon {
    pub child: tokio::process::Child,
    /// Its stderr.
    pub log: PathBuf,
    /// Its stdout.
    pub out: PathBuf,
}

impl Workdir {
    /// Starts the helper in the background; its stderr goes to
    /// `helper.log`, its stdout to `helper.out`.
    pub fn spawn(&self, args: &[&str]) -> Daemon {
        self.spawn_with(&[], args, &[])
    }

    /// `spawn`, through `wrapper` (e.g. `["nohup"]`).
    pub fn spawn_under(&self, wrapper: &[&str], args: &[&str]) -> Daemon {
        self.spawn_with(wrapper, args, &[])
    }

    /// `spawn` through `wrapper` (may be empty), with `env` set.
    pub fn spawn_with(&self, wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = self.dir.path().join("helper.log");
        let out = self.dir.path().join("helper.out");
        let err_file = std::fs::File::create(&log).expect("log file");
        let out_file = std::fs::File::create(&out).expect("stdout file");
        let mut c = self.command_under(wrapper, args);
        c.stderr(err_file).stdout(out_file);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("spawn helper");
        Daemon { child, log, out }
    }
}

impl Workdir {
    /// Starts the helper with `conf(port)` as `helper.conf`, the health
    /// server on `port`. A port found free can be taken by another test
    /// before the helper binds it: then the helper exits 1 saying it
    /// cannot listen, and the whole start is tried again with a fresh
    /// port. Returns once the health server listens.
    pub async fn spawn_with_health_port(
        &self,
        conf: impl Fn(u16) -> String,
        args: &[&str],
    ) -> (Daemon, u16) {
        self.spawn_with_health_port_env(conf, args, &[]).await
    }

    /// `spawn_with_health_port` with `env` set.
    pub async fn spawn_with_health_port_env(
        &self,
        conf: impl Fn(u16) -> String,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Daemon, u16) {
        self.spawn_with_health_port_under(&[], conf, args, env)
            .await
    }

    /// `spawn_with_health_port_env` through `wrapper` (e.g. `setpriv`).
    pub async fn spawn_with_health_port_under(
        &self,
        wrapper: &[&str],
        conf: impl Fn(u16) -> String,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Daemon, u16) {
        for _ in 0..20 {
            let port = free_port();
            self.conf(&conf(port));
            let mut d = self.spawn_with(wrapper, args, env);
            let pid = d.child.id().expect("running");
            // Listening (true), or gone because another test took the port
            // first (false).
            let listening = wait_until(
                "the health server to listen",
                Duration::from_secs(20),
                || {
                    let state = if listens_on(pid, port) {
                        Ok(true)
                    } else if let Some(status) = d.child.try_wait().expect("try_wait") {
                        let logs = d.logs();
                        assert!(
                        status.code() == Some(1) && logs.contains("cannot listen"),
                        "the helper exited ({status}) before its health server listened:\n{logs}"
                    );
                        Ok(false)
                    } else {
                        Err(format!(
                            "not listening on {port}; helper log:\n{}",
                            d.logs()
                        ))
                    };
                    std::future::ready(state)
                },
            )
            .await;
            if listening {
                return (d, port);
            }
        }
        panic!("no free port for the health server after 20 tries");
    }
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id().expect("running")).expect("pid fits")
    }

    /// What it printed on stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Waits for the log to contain `text`.
    pub async fn wait_log(&self, text: &str, deadline: Duration) {
        let what = format!("log line {text:?}");
        let log = self.log.clone();
        wait_for(&what, deadline, || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains(text))
                .map(drop)
        })
        .await;
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("helper did not exit in {deadline:?}:\n{}", self.logs()))
            .expect("wait");
        status.code()
    }
}

/// Whether process `pid` holds a TCP socket listening on `port` (any
/// address): its socket descriptors matched against the kernel's TCP
/// tables, so it does not depend on the log level or a log line.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let port_hex = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // local_address, st (0A = LISTEN), inode
                f.len() > 9 && f[1].ends_with(&port_hex) && f[3] == "0A" && inodes.contains(f[9])
            })
        })
    })
}

/// A minimal HTTP/1.0 GET on loopback: (status code, body); None if the
/// connection failed.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// The sorted names in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Reads a file if it exists.
pub fn read_opt(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

/// Waits until `certs/svid.pem` starts with `svid`'s leaf.
pub async fn wait_svid(w: &Workdir, svid: &Svid) {
    let want = pem_certs(&[svid.leaf_der()]);
    let path = w.certs().join("svid.pem");
    wait_for(
        "the SVID file to hold the new leaf",
        Duration::from_secs(20),
        || {
            read_opt(&path)
                .filter(|b| b.starts_with(want.as_bytes()))
                .map(drop)
        },
    )
    .await;
}

/// Polls `GET path` on loopback until it answers `code`; returns the body.
pub async fn wait_http(port: u16, path: &str, code: u16) -> String {
    let what = format!("{path} to answer {code}");
    wait_until(&what, Duration::from_secs(20), || async {
        match http_get(port, path).await {
            Some((c, body)) if c == code => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// A fake agent with a fresh PKI, serving its first X.509 SVID.
pub struct FakeAgent {
    pub api: FakeWorkloadApi,
    pub pki: Pki,
    pub first: Svid,
}

/// Starts a [`FakeAgent`].
pub async fn fake_agent() -> FakeAgent {
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    let first = pki.svid();
    api.set_x509(pki.x509_update(first.clone()));
    FakeAgent { api, pki, first }
}

/// A `health_checks` block with the listener on `port`, plus `extra` lines.
pub fn health_conf(port: u16, extra: &str) -> String {
    format!("health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n{extra}}}\n")
}

/// A fake agent with a fresh PKI serving its first SVID, and the helper in
/// daemon mode against it with the health server on `port`.
pub struct HealthyDaemon {
    pub api: FakeWorkloadApi,
    pub pki: Pki,
    pub w: Workdir,
    pub d: Daemon,
    pub port: u16,
}

/// Starts a [`HealthyDaemon`] whose configuration is the X.509 files plus
/// `extra` lines, and returns once the first SVID is on disk.
pub async fn healthy_daemon(extra: &str) -> HealthyDaemon {
    let FakeAgent { api, pki, first } = fake_agent().await;
    let w = Workdir::new();
    let socket = api.socket_path().to_owned();
    let (d, port) = w
        .spawn_with_health_port(
            |port| x509_conf(&socket, &format!("{extra}\n{}", health_conf(port, ""))),
            &["-config", "helper.conf"],
        )
        .await;
    wait_svid(&w, &first).await;
    HealthyDaemon {
        api,
        pki,
        w,
        d,
        port,
    }
}
