//! The `spiffe-helper` process: parse the flags, load the configuration,
//! start logging, build the runtime, run the mode the configuration asks
//! for and turn its outcome into an exit code. All the work is in the
//! library; this file only decides which part of it runs.

/// The static musl build (release assets, container image) allocates with
/// dlmalloc, a pure-Rust port: with musl's own allocator a rotation costs
/// about 1.6 times the CPU (a 1,000-domain federation 19-21 ms instead of
/// 11-13 ms).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use spiffe_helper::config::{self, Config, ConfigError, Loaded};
use spiffe_helper::{app, build, check, cli, logging, oneshot, supervisor};
use tracing::{error, info, warn};

/// Exit code for a bad command line, as Go's `flag` package uses.
const EXIT_USAGE: u8 = 2;
/// Exit code for a bad configuration, a one-shot failure, or a daemon that
/// cannot start.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let args = match cli::parse_os(std::env::args_os().skip(1)) {
        Ok(cli::CliAction::Run(args)) => args,
        Ok(cli::CliAction::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(cli::CliAction::Version) => {
            println!("{}", build::VERSION);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            eprint!("{}", cli::usage());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let sources = config::Sources::from_process(args.expand_env);
    let loaded = config::load_with(&args.config, args.daemon_mode, &sources, &|k| {
        std::env::var(k).ok()
    });
    let code = run(loaded, &args);
    // The log lines reach stderr before the process ends (or a second
    // passes).
    logging::flush(Duration::from_secs(1));
    ExitCode::from(code)
}

/// Everything after the flags: returns the exit code.
fn run(loaded: Result<Loaded, ConfigError>, args: &cli::CliArgs) -> u8 {
    let (level, format) = match &loaded {
        Ok(l) => (l.config.log_level, l.config.log_format),
        // The errors come out in the format the file asked for.
        Err(e) => (None, e.log_format()),
    };
    logging::init(level, format);
    if let Some(w) = args.ignored_warning() {
        warn!("{w}");
    }
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            for w in e.warnings() {
                warn!("{w}");
            }
            error!("{e}");
            if args.check {
                check::print_invalid(&e);
            }
            return EXIT_FAILURE;
        }
    };
    if args.check {
        return u8::from(!check::run(&loaded));
    }
    started(&loaded);
    let cfg = loaded.config;
    supervisor::raise_descriptor_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // The blocking pool's threads (credential writes) are kept between
        // rotations instead of being created for each one, and there are
        // few of them: a hundred JWT-SVIDs written at start-up queue for
        // them instead of each leaving a thread (and its memory) behind.
        .thread_keep_alive(Duration::from_secs(3600))
        .max_blocking_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let outcome = if cfg.daemon_mode {
        runtime.block_on(daemon(cfg, args))
    } else {
        runtime
            .block_on(oneshot::run(&cfg))
            .map(|()| 0)
            .map_err(|e| app::chain(&e))
    };
    // Writes are waited for inside the modes; nothing is left to finish.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome.unwrap_or_else(|e| {
        error!("{e}");
        EXIT_FAILURE
    })
}

/// The start-up lines: the build, the file and mode, the warnings.
fn started(loaded: &Loaded) {
    let cfg: &Config = &loaded.config;
    info!(
        version = build::VERSION,
        commit = build::COMMIT,
        build_date = build::DATE,
        "spiffe-helper {} starting",
        build::VERSION
    );
    let mode = if cfg.daemon_mode {
        "daemon"
    } else {
        "one-shot"
    };
    info!(
        "using configuration file {} ({mode} mode)",
        cfg.source.display()
    );
    for w in &loaded.warnings {
        warn!("{w}");
    }
}

/// Daemon mode until SIGTERM or SIGINT, SIGHUP reading the file again.
async fn daemon(cfg: Config, args: &cli::CliArgs) -> Result<u8, String> {
    let path = args.config.clone();
    let flag = args.daemon_mode;
    let reloader: app::Reloader =
        Arc::new(move || config::load(&path, flag, &|k| std::env::var(k).ok()));
    let shutdown = app::shutdown_signal().map_err(|e| app::chain(&app::AppError::Signals(e)))?;
    app::run_with_reload(cfg, shutdown, Some(reloader))
        .await
        .map_err(|e| app::chain(&e))
}
