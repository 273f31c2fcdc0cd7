//! spiffe-helper: gets a workload's SPIFFE identity from the Workload API,
//! writes it to disk, keeps it rotated and tells the program that uses it.
//!
//! # Layout
//! - `cli`: Go-style command-line flags.
//! - `config`: the HCL/JSON file, validated into [`config::Config`].
//! - `workload`: the Workload API client and its error classes.
//! - `x509`, `jwt`: rendering the credentials into file contents.
//! - `disk`: the atomic writer every file goes through.
//! - `oneshot`: `daemon_mode = false`.
//! - `app`: daemon mode: the X.509 watcher, JWT tasks, health server and
//!   process supervisor under one cancellation token.
//! - `status`, `health`: the shared write status and the HTTP probes.
//! - `supervisor`: starting and signalling `cmd` and the pid-file process.
//! - `backoff`, `secret`: small shared pieces.

/// The static musl build (release assets, container image) allocates with
/// dlmalloc, a pure-Rust port: with musl's own allocator a rotation costs
/// about 1.6 times the CPU (a 1,000-domain federation 19-21 ms instead of
/// 11-13 ms).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing::{error, info, warn};

mod app;
mod backoff;
mod cli;
mod config;
mod disk;
mod health;
mod jwt;
mod oneshot;
mod secret;
mod status;
mod supervisor;
mod workload;
mod x509;

/// Exit code for a bad command line, as Go's `flag` package uses.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::CliAction::Run(args)) => args,
        Ok(cli::CliAction::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(cli::CliAction::Version) => {
            println!("spiffe-helper {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            eprint!("{}", cli::usage());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging();

    let loaded = match config::load(&args.config, args.daemon_mode, &|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = loaded.config;
    info!(
        "using configuration file {} ({} mode)",
        cfg.source.display(),
        if cfg.daemon_mode {
            "daemon"
        } else {
            "one-shot"
        }
    );
    for w in &loaded.warnings {
        warn!("{w}");
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if cfg.daemon_mode {
        runtime.block_on(app::run(cfg)).map_err(|e| chain(&e))
    } else {
        runtime.block_on(oneshot::run(&cfg)).map_err(|e| chain(&e))
    };
    // Do not wait for blocking writes still under way at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// An error followed by each of its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Human-readable lines on stderr; the level comes from `RUST_LOG`
/// (`info` when unset or unreadable).
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}
