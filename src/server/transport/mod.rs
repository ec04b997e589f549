//! City's listeners: accepting TCP connections under a cap, TLS handshakes
//! (off the accept loop, each under the header-read deadline), TCP_NODELAY,
//! and the request-size limit every service shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

mod conn;
mod limit;
mod tls;

pub use conn::Conn;
pub use limit::RequestSizeLimit;
pub use tls::Tls;

/// Connections handed to tonic, already past TLS.
pub type Incoming = ReceiverStream<Result<Conn, std::io::Error>>;

/// How a listener accepts connections.
#[derive(Clone)]
pub struct AcceptPolicy {
    pub tls: Option<Arc<Tls>>,
    /// Open connections allowed at once; beyond it new ones are closed.
    pub max_connections: usize,
    /// From accept to the end of the TLS handshake and the HTTP/2 preface.
    pub header_read_timeout: Duration,
}

/// Accepts on `listener` until tonic drops the returned stream (at
/// shutdown), which also closes the listening socket.
pub fn incoming(listener: TcpListener, policy: AcceptPolicy) -> Incoming {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, policy, tx));
    ReceiverStream::new(rx)
}

type Sender = mpsc::Sender<Result<Conn, std::io::Error>>;

async fn accept_loop(listener: TcpListener, policy: AcceptPolicy, tx: Sender) {
    let slots = Arc::new(Semaphore::new(
        policy.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                // Out of file descriptors and the like: let it pass, not spin.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max_connections = policy.max_connections,
                "connection refused: too many open connections"
            );
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let deadline = Instant::now() + policy.header_read_timeout;
        tokio::spawn(start(tcp, slot, deadline, policy.tls.clone(), tx.clone()));
    }
}

/// Hands the connection to tonic, after the TLS handshake when there is TLS.
async fn start(
    tcp: TcpStream,
    slot: OwnedSemaphorePermit,
    deadline: Instant,
    tls: Option<Arc<Tls>>,
    tx: Sender,
) {
    let conn = match tls {
        None => Conn::plain(tcp, slot, deadline),
        Some(tls) => {
            let peer = tcp.peer_addr().ok();
            match tokio::time::timeout_at(deadline, tls.acceptor().accept(tcp)).await {
                Ok(Ok(stream)) => Conn::tls(stream, slot, deadline),
                Ok(Err(err)) => {
                    tracing::debug!(?peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(?peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let _ = tx.send(Ok(conn)).await;
}
