//! One row's world: a network namespace with a bridge (`br0`, the server's address) and a tap
//! (`tap0`) that QEMU attaches to, plus an IPv6 router-advertisement sender so iPXE does not
//! wait ~13 s for a router on this IPv4-only LAN. Everything is removed on drop.

use crate::common::{Netns, run};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Lab {
    pub ns: Netns,
    pub n: u8,
    ra: Option<RaSender>,
}

impl Lab {
    /// Namespace `name` (prefix `e2e`), bridge `br0` with `10.<n>.0.1/24`, tap `tap0` on it.
    pub fn new(name: &str, n: u8) -> Lab {
        assert!(name.starts_with("e2e"), "namespace names of this suite start with e2e");
        // A run killed outright (no Drop) leaves its namespaces and their processes behind:
        // end those processes first (Netns::new then replaces the namespace itself).
        for leftover in [name.to_string(), format!("{name}d")] {
            kill_netns_pids(&leftover);
            let _ = Command::new("ip")
                .args(["netns", "del", &leftover])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let ns = Netns::new(name);
        // Link-local addresses usable at once (no DAD wait) for the RA sender.
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        ns.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        ns.exec_ok(&["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
        ns.exec_ok(&["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"]);
        ns.exec_ok(&["ip", "link", "set", "tap0", "master", "br0"]);
        ns.exec_ok(&["ip", "link", "set", "tap0", "up"]);
        ns.exec_ok(&["ip", "link", "set", "br0", "up"]);
        ns.exec_ok(&["ip", "addr", "add", &format!("10.{n}.0.1/24"), "dev", "br0"]);
        Lab { ns, n, ra: None }
    }

    pub fn server_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.n, 0, 1)
    }

    /// Starts sending router advertisements (no prefix, router lifetime 0) on `br0`.
    pub fn send_router_advertisements(&mut self) {
        self.ra = Some(RaSender::start(&self.ns.name, "br0"));
    }

    /// `curl -s` inside the namespace; (HTTP status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let mut a = vec!["curl", "-s", "-m", "10", "-w", "\n%{http_code}"];
        a.extend_from_slice(args);
        let (_, out) = self.ns.exec(&a);
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// `GET /api/v1/nodes/{mac}` as JSON (panics with the answer when it is not 200).
    pub fn node(&self, mac: &str) -> serde_json::Value {
        let url = format!("http://{}:8080/api/v1/nodes/{mac}", self.server_ip());
        let (code, body) = self.curl(&[&url]);
        assert_eq!(code, 200, "GET {url}: {code} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
    }
}

/// SIGKILL to every process inside namespace `name` (if it exists).
fn kill_netns_pids(name: &str) {
    if let Ok(out) =
        Command::new("ip").args(["netns", "pids", name]).stderr(std::process::Stdio::null()).output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.ra = None;
    }
}

/// A thread inside the namespace sending an ICMPv6 router advertisement to ff02::1 every
/// 500 ms: no prefix, M/O flags clear, router lifetime 0. iPXE's IPv6 autoconfiguration then
/// finishes at once instead of soliciting for ~13 s (fixtures README point 16).
struct RaSender {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RaSender {
    fn start(ns: &str, dev: &str) -> RaSender {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, dev, flag) = (format!("/var/run/netns/{ns}"), dev.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a valid namespace fd; affects only this thread.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let cdev = std::ffi::CString::new(dev).unwrap();
            // SAFETY: plain socket calls on values we own; errors are checked.
            let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
            assert!(fd >= 0, "raw ICMPv6 socket: {}", std::io::Error::last_os_error());
            let ifindex = unsafe { libc::if_nametoindex(cdev.as_ptr()) };
            let hops: libc::c_int = 255;
            for opt in [libc::IPV6_MULTICAST_HOPS, libc::IPV6_UNICAST_HOPS] {
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IPV6,
                        opt,
                        (&hops as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as u32,
                    )
                };
            }
            let idx = ifindex as libc::c_int;
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_IF,
                    (&idx as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                )
            };
            // type 134, code 0, checksum (the kernel fills it), hop limit 64, flags 0,
            // router lifetime 0, reachable 0, retrans timer 0.
            let ra: [u8; 16] = [134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let mut dst: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            dst.sin6_family = libc::AF_INET6 as u16;
            dst.sin6_addr.s6_addr = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            dst.sin6_scope_id = ifindex;
            while !flag.load(Ordering::Relaxed) {
                // Fails (no link-local yet) until QEMU brings the tap's carrier up: retried.
                unsafe {
                    libc::sendto(
                        fd,
                        ra.as_ptr().cast(),
                        ra.len(),
                        0,
                        (&dst as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of::<libc::sockaddr_in6>() as u32,
                    )
                };
                std::thread::sleep(Duration::from_millis(500));
            }
            unsafe { libc::close(fd) };
        });
        RaSender { stop, thread: Some(thread) }
    }
}

impl Drop for RaSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A child process (QEMU, dnsmasq) killed and reaped on drop, even when the row panics.
pub struct Guard {
    pub child: std::process::Child,
    pub what: &'static str,
}

impl Guard {
    pub fn spawn(what: &'static str, cmd: &mut Command) -> Guard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        Guard { child, what }
    }
    /// Waits up to `t` for the process to exit by itself.
    pub fn wait_exit(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + t;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = run(Command::new("kill").args(["-KILL", &self.child.id().to_string()]));
            let _ = self.child.wait();
        }
    }
}
