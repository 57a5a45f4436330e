//! The shim's command line: the runc/crun-style arguments it must understand
//! to know what it is asked to do ([`parse_args`]: the subcommand and the
//! bundle), and the one flag of its own it takes out before the real runtime
//! sees them ([`take_environment`]). Nothing here reads a file or the policy.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::MESSAGE_PREFIX;

/// The shim's own `--environment` flag is malformed.
#[derive(Debug, thiserror::Error)]
#[error("{MESSAGE_PREFIX}-runtime: {0}")]
pub struct ArgumentError(String);

/// Global flags of runc and crun that take a value as the next argument.
const GLOBAL_VALUE_FLAGS: [&str; 7] = [
    "--root",
    "--log",
    "--log-format",
    "--log-level",
    "--criu",
    "--cgroup-manager",
    "--rootless",
];

/// The shim's own flag: the environment a runtime entry stands for.
const ENVIRONMENT_FLAG: &str = "--environment";

/// Most bytes of an environment name on the command line (names are short
/// policy keys; this only bounds what is echoed in errors).
const MAX_ENVIRONMENT_NAME: usize = 64;

/// Takes `--environment NAME` (or `--environment=NAME`) out of the global
/// flags, the ones before the subcommand, and returns the name and the
/// arguments to hand to the real runtime, which knows no such flag.
///
/// Docker (`runtimeArgs` of a `daemon.json` runtime entry) puts its fixed
/// arguments first on every call of that runtime — `create`, `start`,
/// `exec`, `delete`, `state` — so the flag is taken from every subcommand,
/// and only `create`/`run`/`restore` use it. It is the operator's wiring,
/// like a policy rule (the container's author cannot set it); a flag after
/// the subcommand is the subcommand's and is left alone.
pub fn take_environment(
    args: &[OsString],
) -> Result<(Option<String>, Vec<OsString>), ArgumentError> {
    let mut environment: Option<String> = None;
    let mut kept = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if !bytes.starts_with(b"-") {
            // The subcommand: everything from here on is the runtime's.
            kept.push(arg.clone());
            kept.extend(iter.cloned());
            break;
        }
        let value = if arg == OsStr::new(ENVIRONMENT_FLAG) {
            Some(
                iter.next()
                    .ok_or_else(|| {
                        ArgumentError(format!("{ENVIRONMENT_FLAG} needs an environment name"))
                    })?
                    .as_os_str(),
            )
        } else {
            bytes.strip_prefix(b"--environment=").map(OsStr::from_bytes)
        };
        let Some(value) = value else {
            kept.push(arg.clone());
            if GLOBAL_VALUE_FLAGS.contains(&arg.to_string_lossy().as_ref()) {
                kept.extend(iter.next().cloned());
            }
            continue;
        };
        let name = value
            .to_str()
            .filter(|n| !n.is_empty() && n.len() <= MAX_ENVIRONMENT_NAME)
            .ok_or_else(|| {
                ArgumentError(format!(
                    "{ENVIRONMENT_FLAG} {value:?} is not an environment name"
                ))
            })?;
        if environment.as_deref().is_some_and(|before| before != name) {
            return Err(ArgumentError(format!(
                "{ENVIRONMENT_FLAG} is given twice ({:?} and {name:?}); a runtime entry stands for one environment",
                environment.unwrap_or_default()
            )));
        }
        environment = Some(name.to_string());
    }
    Ok((environment, kept))
}

/// What the shim understood of its command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The subcommand (`create`, `run`, `exec`, …), if any.
    pub subcommand: Option<String>,
    /// The bundle of `create`/`run` (`--bundle`, `-b`, or the working directory).
    pub bundle: Option<PathBuf>,
    /// Where the subcommand's own arguments start.
    pub operands_at: usize,
}

impl Invocation {
    /// Whether this invocation creates a container (`restore` included: it
    /// starts one from a checkpoint and a bundle).
    pub fn creates(&self) -> bool {
        matches!(
            self.subcommand.as_deref(),
            Some("create" | "run" | "restore")
        )
    }

    /// Whether this invocation restores a checkpoint.
    pub fn restores(&self) -> bool {
        self.subcommand.as_deref() == Some("restore")
    }
}

/// Finds the subcommand and, for `create`/`run`, the bundle, in runc/crun-style
/// arguments (without the program name).
pub fn parse_args(args: &[OsString]) -> Invocation {
    let mut iter = args.iter().enumerate();
    let mut invocation = Invocation::default();
    while let Some((index, arg)) = iter.next() {
        let text = arg.to_string_lossy();
        if text.starts_with('-') {
            if GLOBAL_VALUE_FLAGS.contains(&text.as_ref()) {
                iter.next();
            }
            continue;
        }
        invocation.subcommand = Some(text.into_owned());
        invocation.operands_at = index + 1;
        break;
    }
    let mut iter = iter.map(|(_, arg)| arg);
    if !invocation.creates() {
        return invocation;
    }
    while let Some(arg) = iter.next() {
        let bytes = arg.as_bytes();
        if arg == OsStr::new("--bundle") || arg == OsStr::new("-b") {
            invocation.bundle = iter.next().map(PathBuf::from);
        } else if let Some(value) = bytes
            .strip_prefix(b"--bundle=")
            .or_else(|| bytes.strip_prefix(b"-b="))
        {
            invocation.bundle = Some(PathBuf::from(OsStr::from_bytes(value)));
        } else if arg == OsStr::new("--") {
            break;
        }
    }
    if invocation.bundle.is_none() {
        invocation.bundle = std::env::current_dir().ok();
    }
    invocation
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_subcommand_after_global_flags() {
        let inv = parse_args(&args(&[
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "--debug",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1",
        ]));
        assert_eq!(inv.subcommand.as_deref(), Some("create"));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b")));
    }

    #[test]
    fn bundle_forms() {
        let inv = parse_args(&args(&["run", "-b", "/x", "id"]));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/x")));
        let inv = parse_args(&args(&["--root=/r", "run", "--bundle=/y", "id"]));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/y")));
        let inv = parse_args(&args(&["run", "id"]));
        assert_eq!(inv.bundle, std::env::current_dir().ok());
    }

    #[test]
    fn restore_is_prepared_like_create() {
        let inv = parse_args(&args(&["--root", "/r", "restore", "--bundle", "/b", "id"]));
        assert!(inv.creates() && inv.restores());
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b")));
    }

    #[test]
    fn environment_flag_is_taken_from_the_global_flags_only() {
        // Docker's runtime wrapper: runtimeArgs first, then containerd's
        // runc shim's own flags and the subcommand.
        let docker = args(&[
            "--environment",
            "staging",
            "--root",
            "/r",
            "--log",
            "/l",
            "create",
            "--bundle",
            "/b",
            "--environment",
            "kept",
            "c1",
        ]);
        let (env, rest) = take_environment(&docker).unwrap();
        assert_eq!(env.as_deref(), Some("staging"));
        // Only the leading pair goes; the one after the subcommand stays.
        assert_eq!(rest, docker[2..]);
        // A global flag's value is never taken for the flag itself.
        let (env, rest) =
            take_environment(&args(&["--root", "--environment", "exec", "c1"])).unwrap();
        assert_eq!(env, None);
        assert_eq!(rest, args(&["--root", "--environment", "exec", "c1"]));
        let (env, rest) =
            take_environment(&args(&["--environment=ci", "delete", "--force", "c1"])).unwrap();
        assert_eq!(env.as_deref(), Some("ci"));
        assert_eq!(rest, args(&["delete", "--force", "c1"]));
        assert!(take_environment(&args(&["--environment"])).is_err());
        assert!(take_environment(&args(&["--environment=", "state", "c"])).is_err());
        let twice = take_environment(&args(&[
            "--environment",
            "ci",
            "--environment",
            "production",
            "state",
        ]))
        .unwrap_err()
        .to_string();
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn other_subcommands_pass_through() {
        for sub in [
            "exec",
            "start",
            "delete",
            "state",
            "features",
            "kill",
            "checkpoint",
        ] {
            let inv = parse_args(&args(&["--root", "/r", sub, "--bundle", "/b"]));
            assert_eq!(inv.subcommand.as_deref(), Some(sub));
            assert!(!inv.creates());
            assert_eq!(inv.bundle, None);
        }
        assert_eq!(parse_args(&args(&["--version"])).subcommand, None);
    }
}
