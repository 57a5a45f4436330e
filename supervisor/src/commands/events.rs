//! `sniffguard events`: the alerts the supervisor raised last, or with
//! `--follow` every alert as it is raised.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use sniffguard_common::paths;
use sniffguard_common::wire::{self, Request, Response};

/// Errors following the event stream.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The supervisor is unreachable or the stream broke.
    #[error("sniffguard supervisor at {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The supervisor refused.
    #[error("sniffguard supervisor refused the subscription: {0}")]
    Refused(String),
}

/// Copies alert lines to `out`: with `follow`, every alert from now on until
/// the supervisor stops; without, the alerts it keeps in memory (the last
/// [`RECENT_ALERTS`](crate::sinks::RECENT_ALERTS)).
pub fn print(runtime_dir: &Path, follow: bool, out: &mut dyn Write) -> Result<(), EventsError> {
    let path = paths::api_socket(runtime_dir);
    let io = |e| EventsError::Io(path.display().to_string(), e);
    let mut stream = UnixStream::connect(&path).map_err(io)?;
    let request = if follow {
        Request::Subscribe {}
    } else {
        Request::Recent {}
    };
    let request = wire::encode(&request).map_err(|e| EventsError::Refused(e.to_string()))?;
    stream.write_all(&request).map_err(io)?;
    let mut lines = BufReader::new(stream);
    let mut first = String::new();
    lines.read_line(&mut first).map_err(io)?;
    match wire::decode::<Response>(first.as_bytes()) {
        Ok(Response::Ok {}) => {}
        Ok(other) => return Err(EventsError::Refused(format!("{other:?}"))),
        Err(err) => return Err(EventsError::Refused(err.to_string())),
    }
    for line in lines.lines() {
        let line = line.map_err(io)?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(io)?;
    }
    Ok(())
}
