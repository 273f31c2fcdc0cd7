//! Measures the release binary against the fake Workload API and prints
//! the figures: binary size, one-shot wall time, idle memory and CPU,
//! rotation latency, memory after many rotations, and a rotation carrying
//! a large federation.
//!
//! ```text
//! bash .ci/bench            # builds the release binary, then runs this
//! cargo run --release --example bench -- [--idle-secs 60] [--rotations 200] [--soak 10000]
//! ```
//!
//! Nothing here asserts: the figures are for people to read.
//! `SPIFFE_HELPER_BIN` may name the Go spiffe-helper too: the configuration
//! is one both read, and it signals the pid file after each rotation as
//! this one does (docs/performance.md compares the two this way).
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "figures printed for people: microseconds and megabytes well inside f64's exact range"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_workload_api::{FakeWorkloadApi, Pki};
use tokio::signal::unix::{signal, SignalKind};

struct Args {
    idle_secs: u64,
    rotations: usize,
    soak: usize,
    federation: usize,
}

fn args() -> Args {
    let mut a = Args {
        idle_secs: 60,
        rotations: 200,
        soak: 10_000,
        federation: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match flag.as_str() {
            "--idle-secs" => a.idle_secs = value,
            "--rotations" => a.rotations = usize::try_from(value).unwrap_or(0),
            "--soak" => a.soak = usize::try_from(value).unwrap_or(0),
            "--federation" => a.federation = usize::try_from(value).unwrap_or(0),
            other => eprintln!("bench: ignoring unknown argument {other}"),
        }
    }
    a
}

/// What every figure uses: the binary, the fake agent and its PKI, the
/// pid file the helper signals (this process: its SIGUSR1 marks the end of
/// each rotation) and that signal's stream.
struct Bench {
    args: Args,
    helper: PathBuf,
    api: FakeWorkloadApi,
    pki: Pki,
    pid_file: PathBuf,
    usr1: tokio::signal::unix::Signal,
    dir: tempfile::TempDir,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let helper = helper_binary();
    println!("binary: {}", helper.display());
    if let Ok(m) = std::fs::metadata(&helper) {
        println!(
            "binary size: {:.2} MB ({} bytes)",
            m.len() as f64 / 1e6,
            m.len()
        );
    }
    let api = FakeWorkloadApi::start().await;
    let pki = Pki::new();
    api.set_x509(pki.x509_update(pki.svid()));
    api.set_jwt_svids(
        pki.jwt.clone(),
        vec![("spiffe://example.org/workload".into(), String::new())],
        Duration::from_secs(3600),
    );
    api.set_jwt_bundles(vec![("example.org".into(), pki.jwt.jwks_json())]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("bench.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).expect("pid file");
    let usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let mut b = Bench {
        args,
        helper,
        api,
        pki,
        pid_file,
        usr1,
        dir,
    };
    let certs = b.dir.path().join("certs");
    std::fs::create_dir(&certs).expect("certs");
    b.one_shot(&certs).await;
    b.daemon(&certs).await;
    b.tmpfs_rotations().await;
    for entries in [1usize, 100] {
        b.jwt_entries(entries).await;
    }
}

impl Bench {
    /// The helper in daemon mode with `conf`, quiet.
    fn spawn(&self, conf: &Path) -> tokio::process::Child {
        tokio::process::Command::new(&self.helper)
            .arg("-config")
            .arg(conf)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("start daemon")
    }

    /// Waits for the helper's renewal signal.
    async fn renewal(&mut self, limit: Duration) {
        tokio::time::timeout(limit, self.usr1.recv())
            .await
            .expect("renewal signal");
    }

    /// Push → SIGUSR1 for each of `n` new SVIDs, sorted.
    async fn rotations(&mut self, n: usize) -> Vec<Duration> {
        let updates: Vec<_> = (0..n)
            .map(|_| self.pki.x509_update(self.pki.svid()))
            .collect();
        let mut lat = Vec::with_capacity(n);
        for update in updates {
            let t = Instant::now();
            self.api.set_x509(update);
            self.renewal(Duration::from_secs(10)).await;
            lat.push(t.elapsed());
        }
        lat.sort();
        lat
    }

    /// One-shot wall time, process start to exit.
    async fn one_shot(&self, certs: &Path) {
        let conf = write_conf(
            self.dir.path(),
            "oneshot.conf",
            self.api.socket_path(),
            certs,
            false,
            None,
        );
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let st = tokio::process::Command::new(&self.helper)
                .arg("-config")
                .arg(&conf)
                .stderr(Stdio::null())
                .status()
                .await
                .expect("run helper");
            assert!(st.success(), "one-shot run failed");
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "one-shot wall time (X.509 + 2 JWT SVIDs + JWT bundle, median of 10): {:.2} ms",
            ms(times[5])
        );
    }

    /// One daemon: idle memory and CPU, rotation latency and CPU, memory
    /// after many rotations, a large federation, the metrics scrape, and
    /// the shutdown.
    async fn daemon(&mut self, certs: &Path) {
        let port = free_port();
        let conf = write_conf(
            self.dir.path(),
            "daemon.conf",
            self.api.socket_path(),
            certs,
            true,
            Some((&self.pid_file, port)),
        );
        let mut child = self.spawn(&conf);
        let pid = child.id().expect("pid");
        // The first X.509 write signals us once.
        self.renewal(Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "idle RSS after startup: {:.2} MB (anonymous {:.2} MB, file-backed {:.2} MB)",
            status_kb(pid, "VmRSS:") as f64 / 1024.0,
            status_kb(pid, "RssAnon:") as f64 / 1024.0,
            status_kb(pid, "RssFile:") as f64 / 1024.0,
        );
        if let Some(path) = std::env::var_os("BENCH_SMAPS") {
            // For digging into the idle figure: the helper's memory map, page by page.
            let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
            std::fs::write(&path, smaps).expect("write BENCH_SMAPS");
        }
        let cpu0 = cpu_ns(pid);
        tokio::time::sleep(Duration::from_secs(self.args.idle_secs)).await;
        println!(
            "CPU time while idle for {} s: {:.3} ms",
            self.args.idle_secs,
            cpu_ns(pid).saturating_sub(cpu0) as f64 / 1e6
        );
        let cpu0 = cpu_ns(pid);
        let lat = self.rotations(self.args.rotations).await;
        let cpu = cpu_ns(pid).saturating_sub(cpu0) as f64 / 1e6;
        if !lat.is_empty() {
            println!(
                "rotation latency over {} rotations: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; helper CPU {:.3} ms per rotation",
                lat.len(),
                quantile(&lat, 0.50),
                quantile(&lat, 0.99),
                ms(*lat.last().unwrap_or(&Duration::ZERO)),
                cpu / lat.len() as f64
            );
        }
        self.soak(pid).await;
        if self.args.federation > 0 {
            self.federation(certs, port).await;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t = Instant::now();
        let _ = child.wait().await;
        println!("shutdown on SIGTERM: {:.1} ms", ms(t.elapsed()));
    }

    /// Memory after many rotations. Pre-mint a pool: minting is the slow part.
    async fn soak(&mut self, pid: u32) {
        let rss_before = status_kb(pid, "VmRSS:");
        let pool: Vec<_> = (0..50)
            .map(|_| self.pki.x509_update(self.pki.svid()))
            .collect();
        for i in 0..self.args.soak {
            self.api.set_x509(pool[i % pool.len()].clone());
            self.renewal(Duration::from_secs(10)).await;
        }
        let rss_after = status_kb(pid, "VmRSS:");
        println!(
            "RSS after {} more rotations: {:.2} MB (growth {:+.2} MB)",
            self.args.soak,
            rss_after as f64 / 1024.0,
            (rss_after as f64 - rss_before as f64) / 1024.0
        );
    }

    /// A rotation carrying a large federation, and a scrape of /metrics
    /// carrying one series per trust domain.
    async fn federation(&mut self, certs: &Path, port: u16) {
        let mut update = self.pki.x509_update(self.pki.svid());
        let root = self.pki.federated.cert_der();
        update.federated = (0..self.args.federation)
            .map(|i| (format!("federated-{i}.test"), vec![root.clone()]))
            .collect();
        let t = Instant::now();
        self.api.set_x509(update);
        self.renewal(Duration::from_secs(30)).await;
        let bundle = std::fs::read_to_string(certs.join("svid_bundle.pem")).unwrap_or_default();
        println!(
            "rotation with {} federated trust domains: {:.2} ms ({} certificates in the bundle)",
            self.args.federation,
            ms(t.elapsed()),
            bundle.matches("BEGIN CERTIFICATE").count()
        );
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let body = http_get(port, "/metrics").await;
            times.push(t.elapsed());
            size = body.len();
        }
        times.sort();
        println!(
            "GET /metrics with {} trust domains: median {:.2} ms, max {:.2} ms ({} bytes)",
            self.args.federation + 1,
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            size
        );
    }

    /// Push-to-files latency with the files on tmpfs, where fsync costs
    /// nothing and the helper's own overhead shows.
    async fn tmpfs_rotations(&mut self) {
        if !Path::new("/dev/shm").is_dir() || self.args.rotations == 0 {
            return;
        }
        let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
        let conf = write_conf(
            shm.path(),
            "daemon.conf",
            self.api.socket_path(),
            shm.path(),
            true,
            Some((&self.pid_file, free_port())),
        );
        let mut child = self.spawn(&conf);
        let pid = child.id().expect("pid");
        self.api.set_x509(self.pki.x509_update(self.pki.svid()));
        self.renewal(Duration::from_secs(10)).await;
        let cpu0 = cpu_ns(pid);
        let lat = self.rotations(self.args.rotations).await;
        let cpu = cpu_ns(pid).saturating_sub(cpu0) as f64 / 1e6;
        println!(
            "rotation latency on tmpfs over {} rotations: p50 {:.2} ms, p99 {:.2} ms; helper CPU {:.3} ms per rotation",
            lat.len(),
            quantile(&lat, 0.50),
            quantile(&lat, 0.99),
            cpu / lat.len() as f64
        );
        let _ = child.kill().await;
    }

    /// One connection to the agent whatever the number of JWT-SVID entries.
    async fn jwt_entries(&self, entries: usize) {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).expect("certs");
        let list: Vec<String> = (0..entries)
            .map(|i| format!("{{ jwt_audience = \"a{i}\", jwt_svid_file_name = \"t{i}.token\" }}"))
            .collect();
        let conf = dir.path().join("jwt.conf");
        std::fs::write(
            &conf,
            format!(
                "agent_address = \"{}\"\ncert_dir = \"{}\"\nsvid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"\njwt_bundle_file_name = \"jwt_bundle.json\"\njwt_svids = [{}]\n",
                self.api.socket_path().display(),
                certs.display(),
                list.join(",\n")
            ),
        )
        .expect("conf");
        let before = self.api.connections();
        let mut child = self.spawn(&conf);
        let pid = child.id().expect("pid");
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end
            && !(0..entries).all(|i| certs.join(format!("t{i}.token")).exists())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        println!(
            "daemon with X.509, JWT bundle and {entries} JWT-SVID entr{}: {} connection(s) to the agent, idle RSS {:.2} MB (anonymous {:.2} MB), {} threads",
            if entries == 1 { "y" } else { "ies" },
            self.api.connections() - before,
            status_kb(pid, "VmRSS:") as f64 / 1024.0,
            status_kb(pid, "RssAnon:") as f64 / 1024.0,
            status_kb(pid, "Threads:")
        );
        let _ = child.kill().await;
    }
}

/// The `q` quantile of sorted durations, in milliseconds.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)])
}

fn write_conf(
    dir: &Path,
    name: &str,
    socket: &Path,
    certs: &Path,
    daemon: bool,
    extra: Option<(&Path, u16)>,
) -> PathBuf {
    let mut text = format!(
        r#"agent_address = "{}"
cert_dir = "{}"
daemon_mode = {daemon}
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
include_federated_domains = true
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [
  {{ jwt_audience = "a", jwt_svid_file_name = "a.token" }},
  {{ jwt_audience = "b", jwt_extra_audiences = ["c"], jwt_svid_file_name = "b.token" }},
]
"#,
        socket.display(),
        certs.display()
    );
    if let Some((pid_file, port)) = extra {
        let _ = write!(
            text,
            "pid_file_name = \"{}\"\nrenew_signal = \"SIGUSR1\"\nhealth_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n",
            pid_file.display()
        );
    }
    let p = dir.join(name);
    std::fs::write(&p, text).expect("conf");
    p
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One "<key> <n> kB" line of /proc/<pid>/status.
fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time used by every thread of a process, in nanoseconds
/// (`/proc/<pid>/task/*/schedstat`, finer than the clock-tick counters).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A whole HTTP/1.0 response from the loopback health server.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(18081, |a| a.port())
}

/// `$SPIFFE_HELPER_BIN` when set (e.g. the static build), else the
/// `spiffe-helper` of this build profile.
fn helper_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SPIFFE_HELPER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    dir.join("spiffe-helper")
}
