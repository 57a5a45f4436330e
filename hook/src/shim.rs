//! The runtime shim: a drop-in for runc that prepares a bundle for sniffguard on
//! `create` and `run`, then hands every invocation to the real runtime unchanged.
//!
//! It is configured through its environment, because callers (Podman's
//! `--runtime`, containerd's `BinaryName`, Docker's `runtimes`) give a runtime no
//! room for extra flags:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SNIFFGUARD_REAL_RUNTIME` | `runc` (from `PATH`) | the runtime to hand over to |
//! | `SNIFFGUARD_RUNTIME_DIR` | `/run/sniffguard` | the supervisor's sockets |
//! | `SNIFFGUARD_CONFIG` | `/etc/sniffguard/sniffguard.toml` if present, else the built-in policy | the policy |
//! | `SNIFFGUARD_HOOK` | `sniffguard-hook` beside this binary | the hook to inject |
//!
//! One flag of its own is taken out of the command line before the real
//! runtime sees it: `--environment NAME` before the subcommand, which an engine
//! that passes fixed arguments to a runtime (Docker's `runtimeArgs`) uses to
//! give each runtime entry its environment (see [`take_environment`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sniffguard_common::paths::DEFAULT_RUNTIME_DIR;
use sniffguard_common::policy::{
    CapabilityRequests, ChosenBy, FailPolicy, Mode, Policy, PolicyError, Resolution,
};
use sniffguard_common::wire::{Request, Response};
use sniffguard_common::ENVIRONMENT_ANNOTATION;

use crate::capabilities;
use crate::inject::{self, Attachment, InjectError};
use crate::{podman, rootless, MESSAGE_PREFIX};
use sniffguard_common::client::{self, ClientError};

mod args;

pub use args::{parse_args, take_environment, ArgumentError, Invocation};

/// Where an installed policy lives.
pub const DEFAULT_POLICY_PATH: &str = "/etc/sniffguard/sniffguard.toml";

/// How long the shim waits for the supervisor to answer a ping. A supervisor
/// that does not answer in time is taken for a missing one, which starts a
/// fail-open container unsupervised for good, so this is set from the load
/// test (`tests/tests/load.rs`, 100 containers created at once on 2 vCPUs):
/// the hook's registration round trip through the same socket measured p99
/// 0.46–1.8 s, max 1.8 s. 5 s, the hook's own registration bound, leaves ~2.8x
/// headroom; an absent supervisor (no socket, nobody listening) is found at
/// once, so only a hung one costs the wait.
const PING_TIMEOUT: Duration = crate::hook::REGISTER_TIMEOUT;

/// Errors that stop the shim before it hands over.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The policy could not be loaded.
    #[error("{MESSAGE_PREFIX}-runtime: {0}")]
    Policy(#[from] PolicyError),
    /// The bundle could not be prepared.
    #[error("{MESSAGE_PREFIX}-runtime: cannot prepare bundle {bundle}: {source}")]
    Inject {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        #[source]
        source: InjectError,
    },
    /// The supervisor is unreachable and the environment fails closed.
    #[error("{MESSAGE_PREFIX}-runtime: {source}; environment {environment:?} fails closed, so the container is refused")]
    FailClosed {
        /// The environment.
        environment: String,
        /// Why the supervisor is unreachable.
        #[source]
        source: ClientError,
    },
    /// `SNIFFGUARD_REAL_RUNTIME` points back at the shim.
    #[error("{MESSAGE_PREFIX}-runtime: SNIFFGUARD_REAL_RUNTIME={0:?} is this shim itself; point it at runc or crun")]
    Loop(PathBuf),
    /// The hook binary is missing.
    #[error("{MESSAGE_PREFIX}-runtime: hook binary {0} does not exist; set SNIFFGUARD_HOOK")]
    MissingHook(PathBuf),
    /// An `exec` could not be checked against its container's capability floor.
    #[error("{MESSAGE_PREFIX}-runtime: exec into {container} refused: {message}")]
    Exec {
        /// The container.
        container: String,
        /// Why.
        message: String,
    },
    /// `restore` of a container whose environment enforces.
    #[error("{MESSAGE_PREFIX}-runtime: restore refused: environment {0:?} enforces, and a process restored from a checkpoint would not be attached to the supervisor's seccomp listener; create the container afresh")]
    Restore(String),
    /// The runtime runs where the supervisor cannot take its containers
    /// (rootless), and the environment enforces.
    #[error("{0}")]
    Unsupervisable(String),
    /// The shim's own `--environment` flag is malformed.
    #[error(transparent)]
    Argument(#[from] ArgumentError),
    /// The confined child that prepares the bundle could not run or died.
    #[error(
        "{MESSAGE_PREFIX}-runtime: preparing the bundle failed: {0}; the container is refused"
    )]
    Child(String),
}

/// The shim's configuration.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    /// The runtime to hand over to.
    pub real_runtime: PathBuf,
    /// The supervisor's runtime directory.
    pub runtime_dir: PathBuf,
    /// The policy file, or `None` for the built-in policy.
    pub policy: Option<PathBuf>,
    /// The hook binary to inject.
    pub hook: PathBuf,
    /// The environment the wiring names (`--environment` before the
    /// subcommand, see [`take_environment`]): the operator's choice in place
    /// of the policy's rules and default; a container's annotation may still
    /// make it stricter.
    pub environment: Option<String>,
}

impl ShimConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> ShimConfig {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let beside_us = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("sniffguard-hook")))
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin/sniffguard-hook"));
        ShimConfig {
            real_runtime: var("SNIFFGUARD_REAL_RUNTIME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("runc")),
            runtime_dir: var("SNIFFGUARD_RUNTIME_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR)),
            policy: var("SNIFFGUARD_CONFIG").map(PathBuf::from).or_else(|| {
                Path::new(DEFAULT_POLICY_PATH)
                    .exists()
                    .then(|| PathBuf::from(DEFAULT_POLICY_PATH))
            }),
            hook: var("SNIFFGUARD_HOOK")
                .map(PathBuf::from)
                .unwrap_or(beside_us),
            environment: None,
        }
    }

    /// The real runtime's short name (`runc`, `crun`), for alerts.
    pub fn runtime_name(&self) -> Option<String> {
        self.real_runtime
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    }

    /// Refuses a configuration that would make the shim exec itself.
    pub fn check_not_self(&self) -> Result<(), ShimError> {
        let resolved = resolve_in_path(&self.real_runtime);
        let me = std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok());
        match (resolved.and_then(|p| p.canonicalize().ok()), me) {
            (Some(a), Some(b)) if a == b => Err(ShimError::Loop(self.real_runtime.clone())),
            _ => Ok(()),
        }
    }
}

fn resolve_in_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The environment of a container whose wiring may name one (`chosen`, from
/// [`ShimConfig::environment`]): the named environment stands where the
/// policy's rules and default would, as an operator's choice, and the
/// container's `sniffguard.io/environment` annotation may only make it
/// stricter. Without `chosen`, [`Policy::resolve_environment`] decides.
pub fn resolve_environment<'a>(
    policy: &'a Policy,
    chosen: Option<&str>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<Resolution<'a>, PolicyError> {
    let Some(chosen) = chosen else {
        return policy.resolve_environment(annotations);
    };
    let (name, environment) = policy.environment(chosen)?;
    let operator = Resolution {
        name,
        environment,
        chosen_by: ChosenBy::Wiring,
        ignored_annotation: None,
    };
    let Some(wanted) = annotations.get(ENVIRONMENT_ANNOTATION) else {
        return Ok(operator);
    };
    let (wanted_name, wanted_env) = policy.environment(wanted)?;
    if wanted_name == name {
        Ok(operator)
    } else if wanted_env.strictness() > environment.strictness() {
        Ok(Resolution {
            name: wanted_name,
            environment: wanted_env,
            chosen_by: ChosenBy::AnnotationStricter {
                over: name.to_string(),
                by: Box::new(ChosenBy::Wiring),
            },
            ignored_annotation: None,
        })
    } else {
        Ok(Resolution {
            ignored_annotation: Some(wanted_name.to_string()),
            ..operator
        })
    }
}

/// How a container's environment was chosen when the wiring named `named`, in
/// the words of alerts and `status`.
fn describe_named(resolution: &Resolution<'_>, named: &str) -> String {
    let wiring = format!("the runtime's argument --environment {named} (operator wiring)");
    match (&resolution.chosen_by, &resolution.ignored_annotation) {
        (ChosenBy::AnnotationStricter { over, .. }, _) => {
            format!("annotation, stricter than {over:?} from {wiring}")
        }
        (_, Some(wanted)) => {
            format!("{wiring}; the annotation's {wanted:?} was ignored (less strict)")
        }
        _ => wiring,
    }
}

/// [`prepare_bundle`] in a child process that installs its own seccomp filter
/// ([`crate::sandbox::confine_shim_child`]) before it reads the bundle: the
/// shim itself must stay unconfined to exec the real runtime, but nothing that
/// parses `config.json` (which whoever writes the bundle controls) can exec,
/// reach the network or trace a process. The child prints its own warning or
/// error. Returns whether the bundle is ready; `Ok(false)` means the child
/// refused it and said why.
pub fn prepare_bundle_confined(
    bundle: &Path,
    config: &ShimConfig,
    restore: bool,
) -> Result<bool, ShimError> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    // Asked before the fork: the child's filter refuses the uid syscalls.
    let unsupervisable = rootless::check();
    // SAFETY: the shim starts no thread before this point, so the child is a
    // copy of a single-threaded process and may allocate and run any code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            if let Err(err) = crate::sandbox::confine_shim_child() {
                eprintln!(
                    "{MESSAGE_PREFIX}-runtime: warning: preparing the bundle unconfined: {err}"
                );
            }
            let prepared = prepare(bundle, config, restore, unsupervisable.as_ref());
            let code = match prepared {
                Ok(Some(warning)) => {
                    eprintln!("{warning}");
                    0
                }
                Ok(None) => 0,
                Err(err) => {
                    eprintln!("{err}");
                    1
                }
            };
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(true),
                Ok(WaitStatus::Exited(_, _)) => return Ok(false),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return Err(ShimError::Child(format!(
                        "the child was killed by {signal}"
                    )))
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(ShimError::Child(format!("waiting for the child: {errno}")))
                }
            }
        },
        Err(errno) => Err(ShimError::Child(format!("cannot fork: {errno}"))),
    }
}

/// Prepares the bundle of a `create`/`run` invocation. Returns a warning to print
/// when the container will start unsupervised.
pub fn prepare_bundle(bundle: &Path, config: &ShimConfig) -> Result<Option<String>, ShimError> {
    prepare(bundle, config, false, rootless::check().as_ref())
}

/// [`prepare_bundle`] for `restore`: the same injection (hooks, the
/// capability floor) where the environment audits; refused where it enforces.
pub fn prepare_restore(bundle: &Path, config: &ShimConfig) -> Result<Option<String>, ShimError> {
    prepare(bundle, config, true, rootless::check().as_ref())
}

/// Prepares the bundle; `unsupervisable` is [`rootless::check`]'s answer for
/// this process, asked by the caller (a confined child cannot ask).
fn prepare(
    bundle: &Path,
    config: &ShimConfig,
    restore: bool,
    unsupervisable: Option<&rootless::Unsupervisable>,
) -> Result<Option<String>, ShimError> {
    let inject_err = |source| ShimError::Inject {
        bundle: bundle.to_path_buf(),
        source,
    };
    let policy = Policy::load(config.policy.as_deref())?;
    let bytes = inject::read_config(bundle).map_err(inject_err)?;
    let mut spec = inject::parse_config(&bytes).map_err(inject_err)?;
    // Podman passes no name to the runtime; its store beside the bundle has it.
    match podman::name_from_storage(bundle, None) {
        Ok(Some(name)) => podman::set_name(&mut spec, &name),
        Ok(None) => {}
        Err(err) => eprintln!(
            "{MESSAGE_PREFIX}-runtime: warning: {err}; the container has no name in rules and alerts"
        ),
    }
    let resolved = resolve_environment(
        &policy,
        config.environment.as_deref(),
        &inject::annotations(&spec),
    )?;
    let resolved_by = resolved.clone();
    let (environment, settings) = (resolved.name, resolved.environment);
    if restore && settings.mode == Mode::Enforce {
        return Err(ShimError::Restore(environment.to_string()));
    }
    if let Some(why) = unsupervisable {
        // Nothing is injected: the hook could not register the container and
        // the runtime could not hand its notify fd over.
        return match rootless::decide(
            &format!("{MESSAGE_PREFIX}-runtime"),
            why,
            environment,
            settings.mode,
        ) {
            rootless::Verdict::Refuse(message) => Err(ShimError::Unsupervisable(message)),
            rootless::Verdict::Warn(warning) => {
                let name = podman::podman_bundle_id(bundle)
                    .map(str::to_string)
                    .or_else(|| bundle_name(bundle));
                let name = name.unwrap_or_else(|| "bundle".into());
                let recorded = rootless::record(&config.runtime_dir, &name, environment, why);
                Ok(Some(rootless::warning_with_record(&warning, &recorded)))
            }
        };
    }
    if !config.hook.is_file() {
        return Err(ShimError::MissingHook(config.hook.clone()));
    }
    let mut warning = None;
    let reachable = match client::call(&config.runtime_dir, &Request::Ping {}, PING_TIMEOUT) {
        Ok(Response::Pong { .. }) => Ok(()),
        Ok(other) => Err(ClientError::Exchange {
            path: config.runtime_dir.clone(),
            source: std::io::Error::other(format!("unexpected answer to ping: {other:?}")),
        }),
        Err(err) => Err(err),
    };
    if let Err(source) = reachable {
        if settings.fail == FailPolicy::Closed {
            return Err(ShimError::FailClosed {
                environment: environment.to_string(),
                source,
            });
        }
        record_unsupervised(&config.runtime_dir, bundle, environment);
        warning = Some(format!(
            "{MESSAGE_PREFIX}-runtime: warning: {source}; environment {environment:?} fails open, so this container starts without sniffing protection"
        ));
    }
    let attachment = Attachment {
        hook_path: config.hook.clone(),
        runtime_dir: config.runtime_dir.clone(),
        environment: environment.to_string(),
        fail: settings.fail,
        runtime_name: config.runtime_name(),
        environment_chosen_by: config
            .environment
            .as_deref()
            .map(|named| describe_named(&resolved_by, named)),
        seccomp_listener: settings.mode == Mode::Enforce && warning.is_none(),
        drop_capabilities: settings.dropped_capabilities(),
        refuse_capability_requests: settings.capability_requests == CapabilityRequests::Refuse,
    };
    inject::attach(&mut spec, &attachment).map_err(inject_err)?;
    inject::write_config(bundle, &spec).map_err(inject_err)?;
    Ok(warning)
}

/// Most bytes of `RUNTIME state ID` output read.
const MAX_STATE_BYTES: usize = 1024 * 1024;

/// Prepares an `exec` invocation: when it could give the new process
/// capabilities (`--cap`, `--process`) and the container is one whose
/// capabilities the shim kept out at `create`, those capabilities are kept out
/// of the new process too. Returns the arguments to hand to the real runtime
/// and a warning to print when something was taken away.
pub fn prepare_exec(
    args: &[OsString],
    invocation: &Invocation,
    config: &ShimConfig,
) -> Result<(Vec<OsString>, Option<String>), ShimError> {
    let exec = capabilities::parse_exec(args, invocation.operands_at);
    let Some(container) = exec
        .container
        .as_deref()
        .filter(|_| exec.may_add_capabilities())
    else {
        return Ok((args.to_vec(), None));
    };
    let fail = |message: String| ShimError::Exec {
        container: container.to_string(),
        message,
    };
    // The runtime knows where the container's bundle is; a container it does
    // not know fails the exec by itself.
    let globals = &args[..invocation.operands_at.saturating_sub(1)];
    let Some(bundle) = bundle_of(&config.real_runtime, globals, container) else {
        return Ok((args.to_vec(), None));
    };
    let bytes = inject::read_config(&bundle).map_err(|e| fail(e.to_string()))?;
    let spec: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("config.json: {e}")))?;
    let drop = capabilities::dropped_by_shim(&spec);
    if drop.is_empty() {
        return Ok((args.to_vec(), None));
    }
    // A break-glass grant (an operator's `sniffguard allow`) is the one way
    // to give a process of such a container a capture capability back.
    let asks = capabilities::exec_asks_for(&exec, &drop).map_err(|e| fail(e.to_string()))?;
    if !asks {
        return Ok((args.to_vec(), None));
    }
    if granted(&config.runtime_dir, container) {
        let notice = format!(
            "{MESSAGE_PREFIX}-runtime: a break-glass grant is active for {container}: the exec'd process keeps the capabilities it asks for"
        );
        return Ok((args.to_vec(), Some(notice)));
    }
    let (kept, removed) =
        capabilities::apply_to_exec(args, &exec, &drop).map_err(|e| fail(e.to_string()))?;
    let warning = (!removed.is_empty()).then(|| {
        format!(
            "{MESSAGE_PREFIX}-runtime: {} kept out of the process exec'd into {container}: its environment drops it",
            removed.join(", ")
        )
    });
    Ok((kept, warning))
}

/// Whether the supervisor holds a break-glass grant for `container`.
fn granted(runtime_dir: &Path, container: &str) -> bool {
    match client::call(runtime_dir, &Request::Status {}, PING_TIMEOUT) {
        Ok(Response::Status(report)) => report.grants.iter().any(|g| g.container == container),
        _ => false,
    }
}

/// The bundle of `container`, from `RUNTIME [globals] state ID`.
fn bundle_of(runtime: &Path, globals: &[OsString], container: &str) -> Option<PathBuf> {
    let output = std::process::Command::new(runtime)
        .args(globals)
        .arg("state")
        .arg(container)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() || output.stdout.len() > MAX_STATE_BYTES {
        return None;
    }
    let state: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    state
        .get("bundle")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
}

/// The bundle directory's own name, for notes about it.
fn bundle_name(bundle: &Path) -> Option<String> {
    bundle.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Leaves a note that a container started without supervision, so that the
/// supervisor reports it (status, metrics) once it is back: a fail-open start
/// must never go unrecorded.
fn record_unsupervised(runtime_dir: &Path, bundle: &Path, environment: &str) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = sniffguard_common::paths::unsupervised_dir(runtime_dir);
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    // The container id is not known to the shim from the bundle alone; the
    // bundle's directory name plus the time identify the start.
    let name = format!(
        "{}-{}",
        bundle
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into()),
        std::process::id()
    );
    let note = format!(
        "{{\"bundle\":{:?},\"environment\":{:?},\"time\":{}}}\n",
        bundle.display().to_string(),
        environment,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(name))
        .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
    if let Err(err) = written {
        eprintln!(
            "{MESSAGE_PREFIX}-runtime: warning: cannot record the unsupervised start in {}: {err}",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wiring_environment_stands_for_the_rules_and_annotations_only_tighten() {
        let policy = Policy::builtin().unwrap();
        let none = std::collections::BTreeMap::new();
        let chosen = resolve_environment(&policy, Some("staging"), &none).unwrap();
        assert_eq!(chosen.name, "staging");
        assert_eq!(chosen.chosen_by, ChosenBy::Wiring);
        let annotated = |env: &str| {
            std::collections::BTreeMap::from([(ENVIRONMENT_ANNOTATION.to_string(), env.into())])
        };
        let stricter =
            resolve_environment(&policy, Some("staging"), &annotated("production")).unwrap();
        assert_eq!(stricter.name, "production");
        assert!(stricter.describe().contains("stricter than \"staging\""));
        let looser = resolve_environment(&policy, Some("staging"), &annotated("ci")).unwrap();
        assert_eq!(looser.name, "staging");
        assert_eq!(looser.ignored_annotation.as_deref(), Some("ci"));
        assert!(resolve_environment(&policy, Some("nowhere"), &none).is_err());
        assert_eq!(
            resolve_environment(&policy, None, &none).unwrap().name,
            policy.default_environment
        );
    }
}
