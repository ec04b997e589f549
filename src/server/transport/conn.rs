//! One accepted connection as tonic serves it: plain TCP or TLS over TCP,
//! holding its slot of the listener's connection cap until it closes, and
//! failing its reads if the HTTP/2 preface is not in by the deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes of the HTTP/2 connection preface every gRPC client sends first.
const PREFACE_LEN: usize = 24;

pub struct Conn {
    io: Io,
    info: TcpConnectInfo,
    preface: Option<PrefaceWait>,
    _slot: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The preface bytes still due, and when they are due by.
struct PrefaceWait {
    missing: usize,
    deadline: Pin<Box<Sleep>>,
}

impl Conn {
    pub fn plain(tcp: TcpStream, slot: OwnedSemaphorePermit, deadline: Instant) -> Conn {
        let info = connect_info(&tcp);
        Conn::new(Io::Plain(tcp), info, slot, deadline)
    }

    pub fn tls(tls: TlsStream<TcpStream>, slot: OwnedSemaphorePermit, deadline: Instant) -> Conn {
        let info = connect_info(tls.get_ref().0);
        Conn::new(Io::Tls(Box::new(tls)), info, slot, deadline)
    }

    fn new(io: Io, info: TcpConnectInfo, slot: OwnedSemaphorePermit, deadline: Instant) -> Conn {
        Conn {
            io,
            info,
            preface: Some(PrefaceWait {
                missing: PREFACE_LEN,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
            }),
            _slot: slot,
        }
    }
}

fn connect_info(tcp: &TcpStream) -> TcpConnectInfo {
    TcpConnectInfo {
        local_addr: tcp.local_addr().ok(),
        remote_addr: tcp.peer_addr().ok(),
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        };
        let Some(wait) = &mut this.preface else {
            return polled;
        };
        match &polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                wait.missing = wait.missing.saturating_sub(read);
                if wait.missing == 0 || read == 0 {
                    this.preface = None;
                }
            }
            Poll::Pending if wait.deadline.as_mut().poll(cx).is_ready() => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within header_read_timeout_secs",
                )));
            }
            _ => {}
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(tcp) => tcp.is_write_vectored(),
            Io::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
