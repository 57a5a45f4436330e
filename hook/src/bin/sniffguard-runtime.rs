//! `sniffguard-runtime`: a drop-in for runc that attaches containers to the
//! sniffguard supervisor, then runs the real runtime with the same arguments.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use sniffguard_hook::shim::{self, ShimConfig};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mut config = ShimConfig::from_env();
    let args = match shim::take_environment(&args) {
        Ok((environment, rest)) => {
            config.environment = environment;
            rest
        }
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = config.check_not_self() {
        eprintln!("{err}");
        return ExitCode::FAILURE;
    }
    let invocation = shim::parse_args(&args);
    let mut args = args;
    if invocation.subcommand.as_deref() == Some("exec") {
        match shim::prepare_exec(&args, &invocation, &config) {
            Ok((prepared, warning)) => {
                if let Some(warning) = warning {
                    eprintln!("{warning}");
                }
                args = prepared;
            }
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(bundle) = invocation
        .bundle
        .as_deref()
        .filter(|_| invocation.creates())
    {
        match shim::prepare_bundle_confined(bundle, &config, invocation.restores()) {
            Ok(true) => {}
            // The child said why.
            Ok(false) => return ExitCode::FAILURE,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let err = Command::new(&config.real_runtime).args(&args).exec();
    eprintln!(
        "sniffguard-runtime: cannot run {}: {err}",
        config.real_runtime.display()
    );
    ExitCode::from(127)
}
