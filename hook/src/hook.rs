//! The OCI hook: registers a container with the supervisor when it is created and
//! deregisters it when it stops.
//!
//! Runtimes run a hook with only the arguments and environment of its entry in
//! `config.json`, the bundle as working directory, and the container state on
//! stdin. Everything the hook needs therefore travels in its arguments, written
//! there by the shim or by `sniffguard-hook inject`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::State;
use sniffguard_common::policy::{FailPolicy, Mode};
use sniffguard_common::wire::{Registration, Request, Response};

use crate::{inject, inspect, podman, rootless, MESSAGE_PREFIX};
use sniffguard_common::client::{self, ClientError};

/// How long the hook waits for the supervisor's acknowledgement.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// The OCI lifecycle points the hook handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `createRuntime` (or the deprecated `prestart`): register.
    CreateRuntime,
    /// `poststop`: deregister.
    Poststop,
}

/// What the hook was told by its entry's arguments.
#[derive(Debug, Clone)]
pub struct HookArgs {
    /// Which lifecycle point this is.
    pub stage: Stage,
    /// The supervisor's runtime directory.
    pub runtime_dir: PathBuf,
    /// The container's environment, as the shim resolved it.
    pub environment: String,
    /// What to do when the supervisor is unreachable.
    pub fail: FailPolicy,
    /// The real runtime's name, for alerts.
    pub runtime: Option<String>,
    /// How the shim chose the environment when its wiring named it.
    pub environment_chosen_by: Option<String>,
}

/// Errors that make the hook fail (and so the runtime refuse the container).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The supervisor could not be reached and the environment fails closed.
    #[error("{MESSAGE_PREFIX}: {source}; environment {environment:?} fails closed, so container {id} is refused")]
    FailClosed {
        /// The container.
        id: String,
        /// Its environment.
        environment: String,
        /// What went wrong.
        #[source]
        source: ClientError,
    },
    /// The hook runs where the supervisor cannot take the container
    /// (rootless) and its environment enforces.
    #[error("{message} (container {id})")]
    Unsupervisable {
        /// The container.
        id: String,
        /// Why, and what to do.
        message: String,
    },
    /// The supervisor answered with a refusal.
    #[error("{MESSAGE_PREFIX}: supervisor refused container {id}: {message}")]
    Refused {
        /// The container.
        id: String,
        /// The supervisor's reason.
        message: String,
    },
}

/// Outcome of a hook run that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The supervisor acknowledged.
    Done,
    /// The supervisor could not be reached; the container goes on unsupervised.
    /// The string is the warning to print.
    Unsupervised(String),
}

/// Runs one hook invocation for the container described by `state`.
pub fn run(args: &HookArgs, state: &State) -> Result<Outcome, HookError> {
    let request = prepare(args, state);
    send(args, state, &request)
}

/// The environment (and its fail policy) of the container in `state`, from the
/// policy at `config` (or the built-in one): `wanted` if given, else its
/// annotations and the policy's rules, as the shim resolves it.
pub fn resolve(
    config: Option<&Path>,
    state: &State,
    wanted: Option<&str>,
) -> Result<(String, FailPolicy), sniffguard_common::policy::PolicyError> {
    let policy = sniffguard_common::policy::Policy::load(config)?;
    let annotations = sniffguard_common::wire::annotation_map(state.annotations().as_ref());
    let resolved = policy.resolve(wanted, &annotations)?;
    Ok((resolved.name.to_string(), resolved.environment.fail))
}

/// The mode of `environment` in the policy at `config` (or the built-in
/// one). A policy that cannot be loaded or does not define the environment
/// gives `Enforce`: where the answer is unknown, the strict one is taken.
pub fn mode_of(config: Option<&Path>, environment: &str) -> Mode {
    sniffguard_common::policy::Policy::load(config)
        .ok()
        .and_then(|policy| policy.environment(environment).ok().map(|(_, e)| e.mode))
        .unwrap_or(Mode::Enforce)
}

/// The hook's answer where it runs without root or in a user namespace
/// (rootless Podman reads the same hooks.d files): nothing can be registered,
/// so at `createRuntime` an enforce environment (`mode`) refuses the
/// container and an audit one starts it with a warning and a note; at
/// `poststop` there is nothing to deregister.
pub fn run_unsupervisable(
    args: &HookArgs,
    state: &State,
    mode: Mode,
    why: &rootless::Unsupervisable,
) -> Result<Outcome, HookError> {
    if args.stage == Stage::Poststop {
        return Ok(Outcome::Done);
    }
    let who = format!("{MESSAGE_PREFIX}-hook");
    match rootless::decide(&who, why, &args.environment, mode) {
        rootless::Verdict::Refuse(message) => Err(HookError::Unsupervisable {
            id: state.id().to_string(),
            message,
        }),
        rootless::Verdict::Warn(warning) => {
            let recorded = rootless::record(&args.runtime_dir, state.id(), &args.environment, why);
            Ok(Outcome::Unsupervised(rootless::warning_with_record(
                &format!("{warning} (container {})", state.id()),
                &recorded,
            )))
        }
    }
}

/// Everything the hook does before it talks to the supervisor: it reads the
/// host (`/proc`, cgroups, the bundle) and builds the request. After this, the
/// hook only needs a Unix socket (see [`crate::sandbox`]).
pub fn prepare(args: &HookArgs, state: &State) -> Request {
    let id = state.id().to_string();
    match args.stage {
        Stage::CreateRuntime => {
            let registration = registration(args, state);
            leave_pending(&args.runtime_dir, &registration);
            Request::Register(registration)
        }
        Stage::Poststop => {
            inspect::remove_own_cgroup(&id);
            Request::Deregister { id }
        }
    }
}

/// Sends the prepared request and applies the fail policy to the outcome.
pub fn send(args: &HookArgs, state: &State, request: &Request) -> Result<Outcome, HookError> {
    let id = state.id().to_string();
    match client::call(&args.runtime_dir, request, REGISTER_TIMEOUT) {
        Ok(Response::Ok {} | Response::Pong { .. } | Response::Status(_)) => Ok(Outcome::Done),
        Ok(Response::Error { message }) => match args.stage {
            Stage::CreateRuntime => Err(HookError::Refused { id, message }),
            Stage::Poststop => Ok(Outcome::Unsupervised(format!(
                "{MESSAGE_PREFIX}: warning: supervisor did not deregister container {id}: {message}"
            ))),
        },
        Err(source) => match (args.stage, args.fail) {
            (Stage::CreateRuntime, FailPolicy::Closed) => Err(HookError::FailClosed {
                id,
                environment: args.environment.clone(),
                source,
            }),
            (Stage::CreateRuntime, FailPolicy::Open) => Ok(Outcome::Unsupervised(format!(
                "{MESSAGE_PREFIX}: warning: {source}; environment {:?} fails open, so container {id} starts without sniffing detection",
                args.environment
            ))),
            (Stage::Poststop, _) => Ok(Outcome::Unsupervised(format!(
                "{MESSAGE_PREFIX}: warning: could not deregister container {id}: {source}"
            ))),
        },
    }
}

/// Leaves the registration under the runtime directory before it is sent
/// (the hook cannot write once it has confined itself): the supervisor removes
/// it when it registers the container; if the supervisor is unreachable and
/// the environment fails open, the next supervisor finds it and attaches the
/// running container to its probes. A failure to write is only a warning: the
/// registration itself goes on.
fn leave_pending(runtime_dir: &Path, registration: &Registration) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = sniffguard_common::paths::pending_dir(runtime_dir);
    let written = (|| -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let json = serde_json::to_vec(registration).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{}.{}", registration.id, std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&json)?;
        std::fs::rename(&tmp, dir.join(format!("{}.json", registration.id)))
    })();
    if let Err(err) = written {
        eprintln!(
            "{MESSAGE_PREFIX}: warning: cannot leave the registration of {} in {}: {err}",
            registration.id,
            dir.display()
        );
    }
}

fn registration(args: &HookArgs, state: &State) -> Registration {
    let pid = (*state.pid())
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 1);
    let mut annotations = sniffguard_common::wire::annotation_map(state.annotations().as_ref());
    // Without the shim (hooks.d) nothing else gives a Podman container its name.
    match podman::name_from_storage(state.bundle(), Some(state.id())) {
        Ok(Some(name)) => {
            annotations.insert(podman::NAME_ANNOTATION.to_string(), name);
        }
        Ok(None) => {}
        Err(err) => eprintln!(
            "{MESSAGE_PREFIX}: warning: {err}; container {} has no name in alerts",
            state.id()
        ),
    }
    Registration {
        id: state.id().to_string(),
        bundle: state.bundle().display().to_string(),
        pid,
        cgroup_id: pid.and_then(|pid| inspect::ensure_own_cgroup(pid, state.id())),
        namespaces: pid.map(inspect::namespaces).unwrap_or_default(),
        annotations,
        environment: args.environment.clone(),
        runtime: args.runtime.clone(),
        pipeline: pipeline_from_bundle(state.bundle()),
        environment_chosen_by: args.environment_chosen_by.clone(),
    }
}

/// CI identifiers from the container process's environment in `config.json`;
/// nothing when the file cannot be read (the alert just lacks them).
fn pipeline_from_bundle(bundle: &Path) -> std::collections::BTreeMap<String, String> {
    let Ok(bytes) = inject::read_config(bundle) else {
        return Default::default();
    };
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Default::default();
    };
    let env = config
        .pointer("/process/env")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    inspect::pipeline_ids(env)
}
