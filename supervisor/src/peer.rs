//! Who is on the other end of a socket: only root may talk to the supervisor.

use tokio::net::UnixStream;

/// Checks with `SO_PEERCRED` that the peer runs as root. The supervisor's
/// sockets change what containers may do, so an unprivileged local user must not
/// reach them even if the directory's permissions were loosened.
pub fn require_root(stream: &UnixStream) -> Result<(), String> {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 => Ok(()),
        Ok(cred) => Err(format!(
            "peer uid {} (pid {:?}) is not root",
            cred.uid(),
            cred.pid()
        )),
        Err(err) => Err(format!("cannot read peer credentials: {err}")),
    }
}
