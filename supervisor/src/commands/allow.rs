//! `sniffguard allow` / `sniffguard revoke`: break-glass grants.

use std::path::Path;
use std::time::Duration;

use sniffguard_common::client::{self, ClientError};
use sniffguard_common::wire::{Request, Response};

/// Errors granting.
#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    /// `--for` is not a duration.
    #[error("--for {0:?}: {1}")]
    Duration(String, #[source] humantime::DurationError),
    /// The supervisor is unreachable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The supervisor refused.
    #[error("refused: {0}")]
    Refused(String),
}

/// Who is asking: the user behind sudo if any, else the login name, else the uid.
pub fn requester() -> String {
    ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()))
}

fn expect_ok(response: Response) -> Result<(), AllowError> {
    match response {
        Response::Ok {} => Ok(()),
        Response::Error { message } => Err(AllowError::Refused(message)),
        other => Err(AllowError::Refused(format!("unexpected answer {other:?}"))),
    }
}

/// Grants `container` for `duration` (`15m`, `1h`, …).
pub fn allow(
    runtime_dir: &Path,
    container: &str,
    duration: &str,
    reason: &str,
    by: &str,
) -> Result<Duration, AllowError> {
    let parsed = humantime::parse_duration(duration)
        .map_err(|e| AllowError::Duration(duration.to_string(), e))?;
    let request = Request::Grant {
        container: container.to_string(),
        seconds: parsed.as_secs().max(1),
        by: by.to_string(),
        reason: reason.to_string(),
    };
    expect_ok(client::call(runtime_dir, &request, Duration::from_secs(5))?)?;
    Ok(parsed)
}

/// Ends the grant of `container`.
pub fn revoke(runtime_dir: &Path, container: &str) -> Result<(), AllowError> {
    let request = Request::Revoke {
        container: container.to_string(),
    };
    expect_ok(client::call(runtime_dir, &request, Duration::from_secs(5))?)
}
