//! A real SPIRE trust domain for the drop-in tests and the benchmarks
//! (`spire-up`, which `.ci/bench-real` drives): a `spire-server`
//! (sqlite datastore, in-memory keys, join-token node attestation) and a
//! `spire-agent` (unix workload attestor) in a temporary directory, with
//! registration entries for this test process's own uid, plus optional
//! extra servers in other trust domains federated with it.
//!
//! Every test builds its own deployment: entries are selected by
//! `unix:uid`, and every test of a binary runs under the same uid, so a
//! shared agent would hand one test's identities to another. A server and
//! an agent start in well under a second here, so isolation is cheap.
//!
//! The programs come from `$SPIFFE_HELPER_REAL_BIN`, else from the cache
//! `.ci/real-components` builds into. When they are missing and `go` is on
//! `PATH`, the first test that needs them runs that script (once per
//! machine at a time: a file lock), so a plain `cargo test --workspace`
//! builds them by itself. Without them a test prints `skipped: ...` and
//! passes, unless `SPIFFE_HELPER_REQUIRE_REAL=1` (set by CI), which makes a
//! missing program a failure.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_port as any_free_port, wait_until, Ca};

/// How long SPIRE gets to start, to attest, and to bring an entry to the
/// agent: generous, for a loaded 2-core machine.
pub const SPIRE_DEADLINE: Duration = Duration::from_secs(90);

/// The three programs the drop-in tests run.
#[derive(Debug)]
pub struct Binaries {
    pub spire_server: PathBuf,
    pub spire_agent: PathBuf,
    /// The Go spiffe-helper (v0.11.0), for the side-by-side tests.
    pub go_helper: PathBuf,
}

const COMPONENTS: [&str; 3] = ["spire-server", "spire-agent", "spiffe-helper-go"];

/// Whether a missing program fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("SPIFFE_HELPER_REQUIRE_REAL").is_ok_and(|v| v == "1" || v == "true")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The machine-level cache `.ci/real-components` builds into.
pub fn cache_dir() -> PathBuf {
    env_path("SPIFFE_HELPER_REAL_DIR").unwrap_or_else(|| {
        env_path("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join("spiffe-helper-rs/real")
    })
}

/// Where the programs are looked for.
pub fn bin_dir() -> PathBuf {
    env_path("SPIFFE_HELPER_REAL_BIN").unwrap_or_else(|| cache_dir().join("bin"))
}

fn look() -> Result<Binaries, Vec<&'static str>> {
    let dir = bin_dir();
    let missing: Vec<&'static str> = COMPONENTS
        .into_iter()
        .filter(|c| !dir.join(c).is_file())
        .collect();
    if missing.is_empty() {
        Ok(Binaries {
            spire_server: dir.join("spire-server"),
            spire_agent: dir.join("spire-agent"),
            go_helper: dir.join("spiffe-helper-go"),
        })
    } else {
        Err(missing)
    }
}

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `.ci/real-components` under an exclusive lock on the cache, so
/// that test binaries (or cargo invocations) running at once build once.
fn build() -> Result<(), String> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let lock_path = cache.join(".build.lock");
    let lock_file = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {}: {e}", lock_path.display()))?;
    if look().is_ok() {
        return Ok(()); // another process built them while we waited
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/real-components");
    eprintln!(
        "note: building SPIRE and the Go spiffe-helper with {} into {} \
         (the first time takes several minutes)",
        script.display(),
        cache.display()
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(&script)
        .env("SPIFFE_HELPER_REAL_DIR", &cache)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    eprintln!(
        "note: {} finished in {:.0} s",
        script.display(),
        started.elapsed().as_secs_f64()
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}); its messages are above",
            script.display(),
            out.status
        ))
    }
}

static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();

/// The programs, building them first if need be. `None` means the test
/// should return at once: it has printed why it is skipped. Panics instead
/// when `SPIFFE_HELPER_REQUIRE_REAL=1`.
pub fn binaries(test: &str) -> Option<&'static Binaries> {
    let found = BINARIES.get_or_init(|| {
        let missing = match look() {
            Ok(b) => return Ok(b),
            Err(missing) => missing,
        };
        let explain = |missing: &[&str], why: &str| {
            format!(
                "missing {} in {} ({why})",
                missing.join(", "),
                bin_dir().display()
            )
        };
        if env_path("SPIFFE_HELPER_REAL_BIN").is_some() {
            return Err(explain(&missing, "set by SPIFFE_HELPER_REAL_BIN"));
        }
        if !go_available() {
            return Err(explain(&missing, "install Go or run .ci/real-components"));
        }
        build()?;
        look().map_err(|m| explain(&m, "after running .ci/real-components"))
    });
    match found {
        Ok(b) => Some(b),
        Err(why) if required() => {
            panic!("{test}: {why}; SPIFFE_HELPER_REQUIRE_REAL=1 makes this a failure")
        }
        Err(why) => {
            eprintln!("skipped: {test} ({why})");
            None
        }
    }
}

/// SPIRE's log level: DEBUG for the tests (their failures show the
/// logs), or `$SPIFFE_HELPER_SPIRE_LOG_LEVEL` (the benchmarks use WARN).
fn log_level() -> String {
    std::env::var("SPIFFE_HELPER_SPIRE_LOG_LEVEL").unwrap_or_else(|_| "DEBUG".to_owned())
}

/// Waits until `program healthcheck -socketPath <socket>` passes, failing
/// at once if `proc` (the server or agent) has exited.
async fn healthy(what: &str, program: &Path, socket: &Path, proc: &mut Proc) {
    let socket = socket.display().to_string();
    wait_until(what, SPIRE_DEADLINE, || {
        proc.assert_running();
        let logs = proc.logs();
        let socket = &socket;
        async move {
            try_cli(program, &["healthcheck", "-socketPath", socket], None)
                .await
                .map(drop)
                .map_err(|e| format!("{e}; its log:\n{logs}"))
        }
    })
    .await;
}

/// A directory whose paths stay well inside the 108-byte limit of a Unix
/// socket path, even when `$TMPDIR` is long.
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    let base = std::env::temp_dir();
    let base = if base.as_os_str().len() <= 40 {
        base
    } else {
        PathBuf::from("/tmp")
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("tempdir")
}

/// A TCP port that was free a moment ago, never SPIRE's (and the health
/// server's) default 8081.
pub fn free_port() -> u16 {
    loop {
        let port = any_free_port();
        if port != 8081 {
            return port;
        }
    }
}

/// A long-running process, killed (with everything it did not detach)
/// when dropped.
pub struct Proc {
    name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr into `log`. The child also gets
    /// SIGKILL if this thread dies first (a test binary killed mid-run
    /// leaves no SPIRE behind).
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe and touches no memory of
        // the parent.
        #[allow(
            unsafe_code,
            reason = "SPIRE must die with the test process, and only pre_exec can ask the kernel for that"
        )]
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} exited ({status}); its log:\n{}", self.name, self.logs());
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a SPIRE command-line call to completion: its stdout, or a panic
/// naming the call and carrying what it printed.
async fn cli(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    match try_cli(program, args, stdin).await {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

async fn try_cli(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    use tokio::io::AsyncWriteExt as _;
    let what = format!(
        "{} {}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes)
            .await
            .map_err(|e| format!("{what}: writing stdin: {e}"))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| format!("{what}: no answer in 60 s"))?
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what}: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One SPIRE server: a trust domain.
pub struct Server {
    pub trust_domain: String,
    pub bins: &'static Binaries,
    pub socket: PathBuf,
    pub port: u16,
    proc: Proc,
    /// Kept for its lifetime: the server's data, config and log.
    _dir: tempfile::TempDir,
}

/// How a server signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Its own self-signed CA: SVID chains are the leaf alone.
    SelfSigned,
    /// A CA signed by an upstream root (SPIRE's `UpstreamAuthority
    /// "disk"`): SVID chains are leaf + the server's intermediate, and the
    /// bundle is the upstream root.
    Upstream,
}

impl Server {
    /// Starts a server for `trust_domain` and waits until it answers.
    pub async fn start(bins: &'static Binaries, trust_domain: &str, signing: Signing) -> Server {
        let dir = short_tempdir("spire-s");
        let port = free_port();
        let socket = dir.path().join("server.sock");
        let data = dir.path().join("data");
        let upstream = match signing {
            Signing::SelfSigned => String::new(),
            Signing::Upstream => {
                let root = Ca::root(trust_domain);
                let cert = dir.path().join("upstream.crt");
                let key = dir.path().join("upstream.key");
                std::fs::write(&cert, root.cert_pem()).expect("upstream cert");
                std::fs::write(&key, root.key_pem()).expect("upstream key");
                format!(
                    r#"  UpstreamAuthority "disk" {{
    plugin_data {{
      cert_file_path = "{}"
      key_file_path = "{}"
    }}
  }}
"#,
                    cert.display(),
                    key.display()
                )
            }
        };
        let conf = format!(
            r#"server {{
  bind_address = "127.0.0.1"
  bind_port = "{port}"
  socket_path = "{socket}"
  trust_domain = "{trust_domain}"
  data_dir = "{data}"
  log_level = "{log_level}"
  experimental {{
    cache_reload_interval = "1s"
  }}
}}
plugins {{
  DataStore "sql" {{
    plugin_data {{
      database_type = "sqlite3"
      connection_string = "{data}/datastore.sqlite3"
    }}
  }}
  KeyManager "memory" {{
    plugin_data {{}}
  }}
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
{upstream}}}
"#,
            socket = socket.display(),
            data = data.display(),
            log_level = log_level(),
        );
        let conf_path = dir.path().join("server.conf");
        std::fs::write(&conf_path, conf).expect("server.conf");
        let mut cmd = Command::new(&bins.spire_server);
        cmd.arg("run").arg("-config").arg(&conf_path);
        let proc = Proc::spawn(
            &format!("spire-server ({trust_domain})"),
            cmd,
            dir.path().join("server.log"),
        );
        let mut server = Server {
            trust_domain: trust_domain.to_owned(),
            bins,
            socket,
            port,
            proc,
            _dir: dir,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let what = format!("spire-server ({}) to be healthy", self.trust_domain);
        healthy(&what, &self.bins.spire_server, &self.socket, &mut self.proc).await;
    }

    /// `spire-server <args> -socketPath <this server>`: its stdout.
    pub async fn cli(&self, args: &[&str]) -> String {
        self.cli_stdin(args, None).await
    }

    pub async fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let socket = self.socket.display().to_string();
        let mut all = args.to_vec();
        all.extend(["-socketPath", &socket]);
        cli(&self.bins.spire_server, &all, stdin).await
    }

    /// `spiffe://<trust domain><path>`.
    pub fn id(&self, path: &str) -> String {
        format!("spiffe://{}{path}", self.trust_domain)
    }

    /// This trust domain's bundle in SPIFFE format (a JWKS document
    /// holding the X.509 roots and the JWT keys).
    pub async fn bundle_spiffe(&self) -> String {
        self.cli(&["bundle", "show", "-format", "spiffe"]).await
    }

    /// This trust domain's X.509 roots, PEM.
    pub async fn bundle_pem(&self) -> String {
        self.cli(&["bundle", "show", "-format", "pem"]).await
    }

    /// Makes each of the two servers know the other's bundle (what a
    /// federation relationship would fetch over its bundle endpoint).
    pub async fn federate(&self, other: &Server) {
        for (from, to) in [(self, other), (other, self)] {
            let bundle = from.bundle_spiffe().await;
            let id = format!("spiffe://{}", from.trust_domain);
            to.cli_stdin(
                &["bundle", "set", "-format", "spiffe", "-id", &id],
                Some(bundle.as_bytes()),
            )
            .await;
        }
    }

    pub fn logs(&self) -> String {
        self.proc.logs()
    }
}

/// One SPIRE agent attested to a server with a join token.
pub struct Agent {
    pub socket: PathBuf,
    /// The agent's own SPIFFE ID: the parent of this test's entries.
    pub node_id: String,
    bins: &'static Binaries,
    conf: PathBuf,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Attests a new agent to `server` and waits until it serves the
    /// Workload API.
    pub async fn start(server: &Server) -> Agent {
        let dir = short_tempdir("spire-a");
        let node_id = server.id("/node");
        let token = server
            .cli(&["token", "generate", "-spiffeID", &node_id])
            .await;
        let token = token
            .trim()
            .strip_prefix("Token: ")
            .unwrap_or_else(|| panic!("unexpected token output {token:?}"))
            .to_owned();
        let bundle = dir.path().join("bootstrap.pem");
        std::fs::write(&bundle, server.bundle_pem().await).expect("bootstrap bundle");
        let socket = dir.path().join("agent.sock");
        let data = dir.path().join("data");
        let conf = format!(
            r#"agent {{
  server_address = "127.0.0.1"
  server_port = "{port}"
  socket_path = "{socket}"
  trust_domain = "{td}"
  trust_bundle_path = "{bundle}"
  data_dir = "{data}"
  log_level = "{log_level}"
  experimental {{
    sync_interval = "1s"
  }}
}}
plugins {{
  NodeAttestor "join_token" {{
    plugin_data {{}}
  }}
  KeyManager "disk" {{
    plugin_data {{
      directory = "{data}"
    }}
  }}
  WorkloadAttestor "unix" {{
    plugin_data {{}}
  }}
}}
"#,
            port = server.port,
            socket = socket.display(),
            td = server.trust_domain,
            bundle = bundle.display(),
            log_level = log_level(),
            data = data.display(),
        );
        let conf_path = dir.path().join("agent.conf");
        std::fs::write(&conf_path, conf).expect("agent.conf");
        let mut agent = Agent {
            socket,
            node_id,
            bins: server.bins,
            conf: conf_path,
            proc: None,
            dir,
        };
        agent.run(Some(&token)).await;
        agent
    }

    async fn run(&mut self, join_token: Option<&str>) {
        let mut cmd = Command::new(&self.bins.spire_agent);
        cmd.arg("run").arg("-config").arg(&self.conf);
        if let Some(token) = join_token {
            cmd.arg("-joinToken").arg(token);
        }
        self.proc = Some(Proc::spawn(
            "spire-agent",
            cmd,
            self.dir.path().join("agent.log"),
        ));
        let proc = self.proc.as_mut().expect("running");
        healthy(
            "spire-agent to be healthy",
            &self.bins.spire_agent,
            &self.socket,
            proc,
        )
        .await;
    }

    /// Kills the agent (SIGKILL, as a crash would); its socket stops
    /// answering.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the agent again from its data directory (its own SVID and
    /// key are there: no new join token), and waits until it serves.
    pub async fn restart(&mut self) {
        self.kill();
        self.run(None).await;
    }

    /// The running agent's process ID.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The SPIFFE IDs the agent hands this process right now over the
    /// Workload API (`spire-agent api fetch x509`), in its order; empty
    /// when it has no identity for us.
    pub async fn x509_ids(&self) -> Vec<String> {
        let socket = self.socket.display().to_string();
        match try_cli(
            &self.bins.spire_agent,
            &[
                "api",
                "fetch",
                "x509",
                "-socketPath",
                &socket,
                "-timeout",
                "5s",
            ],
            None,
        )
        .await
        {
            Ok(out) => out
                .lines()
                .filter_map(|l| l.trim().strip_prefix("SPIFFE ID:"))
                .map(|id| id.trim().to_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until the agent hands this process exactly `ids` (in any
    /// order).
    pub async fn wait_x509_ids(&self, ids: &[&str]) {
        let mut want: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        let what = format!("the agent to hand {want:?}");
        wait_until(&what, SPIRE_DEADLINE, || async {
            let mut got = self.x509_ids().await;
            got.sort();
            if got == want {
                Ok(())
            } else {
                Err(format!("it hands {got:?}; agent log:\n{}", self.logs()))
            }
        })
        .await;
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// This process's effective uid (the owner of what it creates), which the
/// agent's unix workload attestor sees.
pub fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    let dir = short_tempdir("uid");
    std::fs::metadata(dir.path()).expect("stat").uid()
}

/// A trust domain with one agent: what a test talks to.
pub struct Spire {
    // Field order is drop order: the agent goes before its server.
    pub agent: Agent,
    pub server: Server,
    /// Servers of other trust domains federated with `server`.
    pub federated: Vec<Server>,
}

/// Options of one registration entry for this process's uid.
#[derive(Default, Clone)]
pub struct Entry<'a> {
    pub hint: Option<&'a str>,
    pub x509_ttl: Option<u32>,
    pub jwt_ttl: Option<u32>,
    /// Trust domain names (`b.test`) this identity federates with.
    pub federates_with: Vec<&'a str>,
}

impl Spire {
    /// Starts a trust domain `a.test` whose CA is signed by an upstream
    /// root (so SVIDs carry an intermediate) and one agent. `None`: the
    /// test is skipped (see [`binaries`]).
    pub async fn start(test: &str) -> Option<Spire> {
        Some(Self::start_with(binaries(test)?, Signing::Upstream).await)
    }

    pub async fn start_with(bins: &'static Binaries, signing: Signing) -> Spire {
        let server = Server::start(bins, "a.test", signing).await;
        let agent = Agent::start(&server).await;
        Spire {
            agent,
            server,
            federated: Vec::new(),
        }
    }

    /// Adds a server for `trust_domain`, federated with this one both ways.
    pub async fn add_federated(&mut self, trust_domain: &str) -> &Server {
        let other = Server::start(self.server.bins, trust_domain, Signing::SelfSigned).await;
        self.server.federate(&other).await;
        self.federated.push(other);
        self.federated.last().expect("just pushed")
    }

    pub fn socket(&self) -> &Path {
        &self.agent.socket
    }

    /// `spiffe://a.test<path>`.
    pub fn id(&self, path: &str) -> String {
        self.server.id(path)
    }

    /// Registers `spiffe://a.test<path>` for this process's uid under this
    /// agent; returns the entry ID.
    pub async fn entry(&self, path: &str, opts: &Entry<'_>) -> String {
        let id = self.id(path);
        let selector = format!("unix:uid:{}", uid());
        let mut args = vec![
            "entry".to_owned(),
            "create".to_owned(),
            "-parentID".to_owned(),
            self.agent.node_id.clone(),
            "-spiffeID".to_owned(),
            id,
            "-selector".to_owned(),
            selector,
        ];
        if let Some(h) = opts.hint {
            args.extend(["-hint".to_owned(), h.to_owned()]);
        }
        if let Some(t) = opts.x509_ttl {
            args.extend(["-x509SVIDTTL".to_owned(), t.to_string()]);
        }
        if let Some(t) = opts.jwt_ttl {
            args.extend(["-jwtSVIDTTL".to_owned(), t.to_string()]);
        }
        for td in &opts.federates_with {
            args.extend(["-federatesWith".to_owned(), format!("spiffe://{td}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.server.cli(&args).await;
        out.lines()
            .find_map(|l| l.strip_prefix("Entry ID"))
            .and_then(|rest| rest.split(':').nth(1))
            .map_or_else(|| panic!("no entry ID in {out:?}"), |s| s.trim().to_owned())
    }

    /// Everything the SPIRE processes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- spire-agent log:\n{}", self.agent.logs());
        let _ = writeln!(s, "--- spire-server log:\n{}", self.server.logs());
        s
    }
}
