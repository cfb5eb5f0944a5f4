//! Socket construction with socket2, handed to mio.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Options for a UDP socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdpOpts {
    pub reuse_addr: bool,
    pub broadcast: bool,
    /// SO_RCVBUF / SO_SNDBUF in bytes (0: leave the kernel default).
    pub recv_buffer: usize,
    pub send_buffer: usize,
}

/// A non-blocking UDP socket bound to `addr`, ready for mio.
pub fn udp(addr: SocketAddr, opts: UdpOpts, device: Option<&str>) -> io::Result<mio::net::UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if opts.reuse_addr {
        sock.set_reuse_address(true)?;
    }
    if opts.broadcast {
        sock.set_broadcast(true)?;
    }
    if opts.recv_buffer > 0 {
        sock.set_recv_buffer_size(opts.recv_buffer)?;
    }
    if opts.send_buffer > 0 {
        sock.set_send_buffer_size(opts.send_buffer)?;
    }
    if let Some(dev) = device {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {addr}: {e}")))?;
    Ok(mio::net::UdpSocket::from_std(sock.into()))
}

/// A non-blocking TCP listener bound to `addr`, ready for mio.
pub fn tcp_listener(
    addr: SocketAddr,
    backlog: i32,
    device: Option<&str>,
) -> io::Result<mio::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if let Some(dev) = device {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind TCP {addr}: {e}")))?;
    sock.listen(backlog)?;
    Ok(mio::net::TcpListener::from_std(sock.into()))
}
