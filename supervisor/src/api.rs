//! The hook API socket: register, deregister, ping.

use std::sync::Arc;
use std::time::Duration;

use sniffguard_common::wire::{self, Request, Response, MAX_MESSAGE_BYTES};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::peer;
use crate::Shared;

/// A client that sends nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections until the listener fails.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { handle(stream, shared).await });
            }
            Err(err) => {
                tracing::error!(%err, "api socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, shared: Arc<Shared>) {
    if let Err(why) = peer::require_root(&stream) {
        tracing::warn!(why, "api: refused a client");
        let _ = reply(
            &mut stream,
            &Response::Error {
                message: format!("permission denied: {why}"),
            },
        )
        .await;
        return;
    }
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read).take(MAX_MESSAGE_BYTES as u64 + 1);
    let mut line = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
    let response = match read {
        Err(_) => return,
        Ok(Err(err)) => {
            tracing::debug!(%err, "api: read failed");
            return;
        }
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => match wire::decode::<Request>(&line) {
            Ok(request) => answer(request, &shared),
            Err(err) => {
                tracing::warn!(%err, "api: bad request");
                Response::Error {
                    message: format!("bad request: {err}"),
                }
            }
        },
    };
    if let Ok(bytes) = wire::encode(&response) {
        let _ = write.write_all(&bytes).await;
    }
}

async fn reply(stream: &mut UnixStream, response: &Response) -> std::io::Result<()> {
    let bytes = wire::encode(response).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await
}

fn answer(request: Request, shared: &Shared) -> Response {
    match request {
        Request::Ping {} => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Register(registration) => {
            if let Err(err) = wire::validate_container_id(&registration.id) {
                return Response::Error {
                    message: err.to_string(),
                };
            }
            let policy = shared.policy.load();
            if let Err(err) = policy.environment(&registration.environment) {
                return Response::Error {
                    message: err.to_string(),
                };
            }
            shared.registry.register(&registration);
            tracing::info!(
                container = registration.id,
                environment = registration.environment,
                pid = registration.pid,
                cgroup_id = registration.cgroup_id,
                "container registered"
            );
            Response::Ok {}
        }
        Request::Deregister { id } => {
            if shared.registry.deregister(&id) {
                tracing::info!(container = id, "container deregistered");
            }
            Response::Ok {}
        }
    }
}
