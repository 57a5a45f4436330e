//! `sniffguard`: the node supervisor and its command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sniffguard::commands::{allow, doctor, events, status};
use sniffguard::daemon::{self, DaemonConfig};
use sniffguard_common::paths::DEFAULT_RUNTIME_DIR;
use sniffguard_common::policy::{Policy, PolicyError};

#[derive(Parser)]
#[command(version, about = "Stops network sniffing tools inside containers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the supervisor: alerts as JSON lines on stdout, logs on stderr.
    Run {
        /// Policy file (default: the built-in policy).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory for the supervisor's sockets.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
        /// Do not load the eBPF probes (seccomp enforcement only).
        #[arg(long)]
        no_ebpf: bool,
        /// Write forensic records here instead of the policy's `[forensics] dir`.
        #[arg(long)]
        forensics_dir: Option<PathBuf>,
    },
    /// Show what a running supervisor watches.
    Status {
        /// The supervisor's runtime directory.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit non-zero, saying why, unless the supervisor is whole (its
        /// eBPF probes and ring reader up): a readiness probe.
        #[arg(long)]
        ready: bool,
    },
    /// Print the alerts the supervisor raised last (it keeps the last 100 in
    /// memory), or with --follow every alert as it is raised.
    Events {
        /// Keep printing every alert as it is raised, until interrupted.
        #[arg(long)]
        follow: bool,
        /// The supervisor's runtime directory.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
    },
    /// Break-glass: let sniffers run in one container for a bounded time; every
    /// use is alerted.
    Allow {
        /// The container id.
        #[arg(long)]
        container: String,
        /// How long (`15m`, `1h`; at most 24h).
        #[arg(long = "for")]
        duration: String,
        /// Why (recorded in every alert).
        #[arg(long)]
        reason: String,
        /// Who asks (default: the user behind sudo, else the login name).
        #[arg(long)]
        by: Option<String>,
        /// The supervisor's runtime directory.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
    },
    /// End a break-glass grant early.
    Revoke {
        /// The container id.
        #[arg(long)]
        container: String,
        /// The supervisor's runtime directory.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
    },
    /// Check what this host supports; exits non-zero when the policy needs
    /// something that is missing.
    Doctor {
        /// Policy file (default: the built-in policy).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Skip loading the eBPF programs.
        #[arg(long)]
        no_ebpf: bool,
    },
    /// Hold seccomp notify fds across supervisor restarts (started by `run`,
    /// or on its own with --resident).
    Keeper {
        /// The supervisor's runtime directory.
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
        /// Run as a service of its own (the keeper DaemonSet): never exit
        /// when idle; take over from a keeper already running.
        #[arg(long)]
        resident: bool,
    },
    /// The network broker `run` starts for itself (not for use by hand).
    #[command(hide = true)]
    NetBroker,
    /// Check a policy file and print what it defines.
    CheckConfig {
        /// The policy file (default: the built-in policy).
        file: Option<PathBuf>,
    },
}

/// Why a command failed; `main` prints it once.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(#[source] std::io::Error),
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
    #[error("keeper: {0}")]
    Keeper(#[from] sniffguard::keeper::KeeperError),
    #[error(transparent)]
    NetBroker(#[from] sniffguard::netbroker::BrokerError),
    #[error(transparent)]
    Status(#[from] status::StatusError),
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("cannot print the status as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Events(#[from] events::EventsError),
    #[error(transparent)]
    Allow(#[from] allow::AllowError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("this host lacks what the policy needs (the lines marked missing above)")]
    Missing,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal: a file or the journal gets plain text.
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(on_terminal)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SNIFFGUARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sniffguard: {err}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            config,
            runtime_dir,
            no_ebpf,
            forensics_dir,
        } => {
            daemon::raise_priority();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(Failure::AsyncRuntime)?;
            runtime.block_on(daemon::run(DaemonConfig {
                runtime_dir,
                policy: config,
                ebpf: !no_ebpf,
                forensics_dir,
            }))?;
        }
        Command::Status {
            runtime_dir,
            json,
            ready,
        } => {
            let report = status::fetch(&runtime_dir)?;
            if ready && !report.degraded.is_empty() {
                return Err(Failure::NotReady(report.degraded.join("; ")));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::render(&report));
            }
        }
        Command::NetBroker => sniffguard::netbroker::serve()?,
        Command::Keeper {
            runtime_dir,
            resident,
        } => {
            let lifecycle = if resident {
                sniffguard::keeper::Lifecycle::Resident
            } else {
                sniffguard::keeper::Lifecycle::Spawned
            };
            sniffguard::keeper::run(&runtime_dir, lifecycle)?;
        }
        Command::Events {
            follow,
            runtime_dir,
        } => events::print(&runtime_dir, follow, &mut std::io::stdout())?,
        Command::Allow {
            container,
            duration,
            reason,
            by,
            runtime_dir,
        } => {
            let by = by.unwrap_or_else(allow::requester);
            let granted = allow::allow(&runtime_dir, &container, &duration, &reason, &by)?;
            println!(
                "sniffers allowed in container {container} for {} (by {by}: {reason}); every use is alerted",
                humantime::format_duration(granted)
            );
        }
        Command::Revoke {
            container,
            runtime_dir,
        } => allow::revoke(&runtime_dir, &container)?,
        Command::Doctor { config, no_ebpf } => {
            let policy = Policy::load(config.as_deref())?;
            let checks = doctor::run(&policy, !no_ebpf);
            for check in &checks {
                println!("{check}");
            }
            if checks.iter().any(|c| c.level == doctor::Level::Missing) {
                return Err(Failure::Missing);
            }
        }
        Command::CheckConfig { file } => check_config(&Policy::load(file.as_deref())?),
    }
    Ok(())
}

/// Prints what a valid policy defines, and the exceptions a workload could
/// grant itself: said, not refused (a node where every container comes
/// through CRI is safe).
fn check_config(policy: &Policy) {
    println!("{}: ok", policy.origin);
    for (name, env) in &policy.environments {
        let default = if *name == policy.default_environment {
            " (default)"
        } else {
            ""
        };
        let dropped = env.dropped_capabilities();
        println!(
            "  {name}{default}: mode={} fail={} drops={}",
            env.mode.as_str(),
            env.fail.as_str(),
            if dropped.is_empty() {
                "none".to_string()
            } else {
                dropped.join(",")
            }
        );
    }
    for warning in policy.workload_settable_warnings() {
        println!("warning: {warning}");
    }
}
