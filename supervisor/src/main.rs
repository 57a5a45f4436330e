//! `sniffguard`: the node supervisor and its command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sniffguard::commands::{allow, doctor, events, status};
use sniffguard::daemon::{self, DaemonConfig};
use sniffguard_common::paths::DEFAULT_RUNTIME_DIR;
use sniffguard_common::policy::Policy;

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
    /// Print every alert as the supervisor raises it.
    Events {
        /// Keep following (the only mode: alerts are a live stream).
        #[arg(long, default_value_t = true)]
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
    /// Check a policy file and print what it defines.
    CheckConfig {
        /// The policy file (default: the built-in policy).
        file: Option<PathBuf>,
    },
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
    match cli.command {
        Command::Run {
            config,
            runtime_dir,
            no_ebpf,
            forensics_dir,
        } => {
            daemon::raise_priority();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("sniffguard: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(daemon::run(DaemonConfig {
                runtime_dir,
                policy: config,
                ebpf: !no_ebpf,
                forensics_dir,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("sniffguard: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status {
            runtime_dir,
            json,
            ready,
        } => match status::fetch(&runtime_dir) {
            Ok(report) if ready && !report.degraded.is_empty() => {
                eprintln!("sniffguard: not ready: {}", report.degraded.join("; "));
                ExitCode::FAILURE
            }
            Ok(report) => {
                if json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(text) => println!("{text}"),
                        Err(err) => {
                            eprintln!("sniffguard: {err}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    print!("{}", status::render(&report));
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("sniffguard: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Keeper {
            runtime_dir,
            resident,
        } => match sniffguard::keeper::run(
            &runtime_dir,
            if resident {
                sniffguard::keeper::Lifecycle::Resident
            } else {
                sniffguard::keeper::Lifecycle::Spawned
            },
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sniffguard keeper: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Events {
            follow: _,
            runtime_dir,
        } => match events::follow(&runtime_dir, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sniffguard: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Allow {
            container,
            duration,
            reason,
            by,
            runtime_dir,
        } => {
            let by = by.unwrap_or_else(allow::requester);
            match allow::allow(&runtime_dir, &container, &duration, &reason, &by) {
                Ok(granted) => {
                    println!(
                        "sniffers allowed in container {container} for {} (by {by}: {reason}); every use is alerted",
                        humantime::format_duration(granted)
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("sniffguard: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Revoke {
            container,
            runtime_dir,
        } => match allow::revoke(&runtime_dir, &container) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("sniffguard: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Doctor { config, no_ebpf } => {
            let policy = match Policy::load(config.as_deref()) {
                Ok(policy) => policy,
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::FAILURE;
                }
            };
            let checks = doctor::run(&policy, !no_ebpf);
            for check in &checks {
                println!("{check}");
            }
            if checks.iter().any(|c| c.level == doctor::Level::Missing) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::CheckConfig { file } => match Policy::load(file.as_deref()) {
            Ok(policy) => {
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
                // Exceptions a workload could grant itself: said, not refused
                // (a node where every container comes through CRI is safe).
                for warning in policy.workload_settable_warnings() {
                    println!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::FAILURE
            }
        },
    }
}
