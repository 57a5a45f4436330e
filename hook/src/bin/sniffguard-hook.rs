//! `sniffguard-hook`: the OCI hook that attaches a container to the sniffguard
//! supervisor, and `inject`, which prepares a bundle for people who call runc
//! directly.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sniffguard_common::paths::DEFAULT_RUNTIME_DIR;
use sniffguard_common::policy::FailPolicy;
use sniffguard_hook::hook::{self, HookArgs, Outcome, Stage};
use sniffguard_hook::shim::{self, ShimConfig};
use sniffguard_hook::{rootless, sandbox, state};

#[derive(Parser)]
#[command(version, about = "OCI hook and bundle injector for sniffguard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum StageArg {
    /// Register the container (createRuntime or prestart).
    CreateRuntime,
    /// Alias of create-runtime for the deprecated prestart slot.
    Prestart,
    /// Deregister the container.
    Poststop,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailArg {
    Open,
    Closed,
}

impl From<FailArg> for FailPolicy {
    fn from(fail: FailArg) -> FailPolicy {
        match fail {
            FailArg::Open => FailPolicy::Open,
            FailArg::Closed => FailPolicy::Closed,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run as an OCI hook (container state on stdin).
    Hook {
        #[arg(long, value_enum)]
        stage: StageArg,
        #[arg(long, default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
        /// The container's environment, as the shim resolved it. Without it
        /// (a hooks.d entry for every container), the hook resolves it from the
        /// container's annotations with the policy, as the shim would.
        #[arg(long)]
        environment: Option<String>,
        /// Fail policy; default: the environment's.
        #[arg(long, value_enum)]
        fail: Option<FailArg>,
        /// Policy file when resolving (default: /etc/sniffguard/sniffguard.toml
        /// if present, else the built-in policy).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        runtime: Option<String>,
        /// How the shim chose the environment, when its wiring named it
        /// (shown in alerts and status).
        #[arg(long)]
        environment_chosen_by: Option<String>,
    },
    /// Rewrite BUNDLE/config.json for sniffguard, as the runtime shim would.
    /// Configuration comes from the same SNIFFGUARD_* variables as the shim.
    Inject {
        /// The bundle directory.
        bundle: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Hook {
            stage,
            runtime_dir,
            environment,
            fail,
            config,
            runtime,
            environment_chosen_by,
        } => {
            let state = match state::read_state(std::io::stdin().lock()) {
                Ok(state) => state,
                Err(err) => {
                    eprintln!("sniffguard-hook: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let config = config.or_else(|| ShimConfig::from_env().policy);
            let (environment, fail) = match (environment, fail) {
                (Some(environment), Some(fail)) => (environment, fail.into()),
                (environment, fail) => {
                    match hook::resolve(config.as_deref(), &state, environment.as_deref()) {
                        Ok((name, policy_fail)) => {
                            (name, fail.map_or(policy_fail, FailPolicy::from))
                        }
                        Err(err) => {
                            // An undefined environment must not silently become
                            // the default: refuse, as the shim does.
                            eprintln!("sniffguard-hook: {err}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
            };
            let args = HookArgs {
                stage: match stage {
                    StageArg::CreateRuntime | StageArg::Prestart => Stage::CreateRuntime,
                    StageArg::Poststop => Stage::Poststop,
                },
                runtime_dir,
                environment,
                fail,
                runtime,
                environment_chosen_by,
            };
            if let Some(why) = rootless::check() {
                let mode = hook::mode_of(config.as_deref(), &args.environment);
                return report(hook::run_unsupervisable(&args, &state, mode, &why));
            }
            let request = hook::prepare(&args, &state);
            // From here on the hook only talks to the supervisor.
            if let Err(err) = sandbox::confine() {
                eprintln!("sniffguard-hook: warning: running unconfined: {err}");
            }
            report(hook::send(&args, &state, &request))
        }
        Command::Inject { bundle } => {
            match shim::prepare_bundle(&bundle, &ShimConfig::from_env()) {
                Ok(warning) => {
                    if let Some(warning) = warning {
                        eprintln!("{warning}");
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints what a hook run has to say and gives its exit status.
fn report(outcome: Result<Outcome, hook::HookError>) -> ExitCode {
    match outcome {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Unsupervised(warning)) => {
            eprintln!("{warning}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}
