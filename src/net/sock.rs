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

/// Metadata of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    pub len: usize,
    pub src: std::net::SocketAddrV4,
    /// The local address the datagram was addressed to (IP_PKTINFO `ipi_spec_dst`).
    pub local: Option<std::net::Ipv4Addr>,
    /// The interface it arrived on (0: unknown).
    pub ifindex: u32,
}

/// Asks the kernel to report each datagram's local address and interface (IP_PKTINFO).
pub fn set_pktinfo(sock: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// recvmsg(2) on an IPv4 UDP socket with IP_PKTINFO enabled. Never allocates.
pub fn recv_pktinfo(sock: &impl std::os::fd::AsRawFd, buf: &mut [u8]) -> io::Result<RecvMeta> {
    // SAFETY: every pointer handed to recvmsg points at a live local of the stated size; the
    // control buffer is 8-byte aligned (u64 array) as CMSG_* require; cmsg headers are read only
    // within msg_controllen as reported by the kernel.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = &mut addr as *mut libc::sockaddr_in as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let src = std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        );
        let mut meta = RecvMeta { len: n as usize, src, local: None, ifindex: 0 };
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
                meta.local = Some(std::net::Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)));
                meta.ifindex = info.ipi_ifindex as u32;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(meta)
    }
}

/// Largest UDP GSO batch: the kernel caps a GSO send at 64 segments and one IP datagram's size.
pub const GSO_MAX_BYTES: usize = 65_000;
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Sends `buf` as consecutive datagrams of `segment` bytes each (the last may be shorter) in one
/// sendmsg(2) with UDP generic segmentation offload (UDP_SEGMENT, Linux ≥ 4.18). The receiver
/// sees ordinary datagrams. `dst` must be IPv4. Never allocates.
pub fn send_gso(
    sock: &impl std::os::fd::AsRawFd,
    buf: &[u8],
    segment: u16,
    dst: std::net::SocketAddr,
) -> io::Result<usize> {
    let std::net::SocketAddr::V4(dst) = dst else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "GSO send to IPv6"));
    };
    // SAFETY: all pointers point at live locals of the stated sizes; the control buffer is
    // 8-byte aligned and CMSG_SPACE(2) bytes of it are used, as CMSG_* require.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = dst.port().to_be();
        addr.sin_addr.s_addr = u32::from(*dst.ip()).to_be();
        let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = &mut addr as *mut libc::sockaddr_in as *mut libc::c_void;
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
        let n = libc::sendmsg(sock.as_raw_fd(), &msg, 0);
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}
