//! A blocking client for the supervisor's API socket, with bounded waits, used
//! by the hook, the shim and the command line.
//!
//! The hook and the shim sit in a container's start path, so every step here has a
//! timeout: a supervisor that accepts but never answers must not hang the runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::paths;
use crate::wire::{self, Request, Response, WireError, MAX_RESPONSE_BYTES};

/// Errors talking to the supervisor.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens on the socket (or it does not exist).
    #[error("cannot connect to the sniffguard supervisor at {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke or timed out mid-exchange.
    #[error("sniffguard supervisor at {path} did not answer: {source}")]
    Exchange {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The request could not be encoded or the answer decoded.
    #[error("sniffguard supervisor at {path}: {source}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: WireError,
    },
    /// The supervisor closed the connection without answering.
    #[error("sniffguard supervisor at {0} closed the connection without answering")]
    NoAnswer(PathBuf),
}

/// Sends `request` to the supervisor in `runtime_dir` and returns its answer.
pub fn call(
    runtime_dir: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let path = paths::api_socket(runtime_dir);
    let exchange = |source| ClientError::Exchange {
        path: path.clone(),
        source,
    };
    let protocol = |source| ClientError::Protocol {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
        path: path.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    let line = wire::encode(request).map_err(protocol)?;
    stream.write_all(&line).map_err(exchange)?;
    let mut reader = BufReader::new(stream).take(MAX_RESPONSE_BYTES as u64);
    let mut answer = Vec::new();
    reader.read_until(b'\n', &mut answer).map_err(exchange)?;
    if answer.is_empty() {
        return Err(ClientError::NoAnswer(path));
    }
    wire::decode(&answer).map_err(protocol)
}
