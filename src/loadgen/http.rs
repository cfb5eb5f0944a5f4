//! A small blocking HTTP/1.1 GET client (std `TcpStream`): one keep-alive connection per node,
//! response heads parsed with httparse, bodies by Content-Length (or to EOF with
//! `Connection: close`), streamed to a sink through one reusable buffer. Plus the URL and iPXE
//! script helpers the boot sequence needs.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `http://host[:port]/path` split up. Only plain HTTP and IPv4 literals or names the resolver
/// knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = s.strip_prefix("http://").ok_or_else(|| format!("not an http:// URL: {s}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {s}"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("no host in {s}"));
        }
        Ok(Url { host: host.to_string(), port, path: path.to_string() })
    }

    /// `target` relative to this URL: absolute URLs as they are, `/x` on the same host, `x`
    /// beside this URL's path.
    pub fn join(&self, target: &str) -> Result<Url, String> {
        if target.starts_with("http://") {
            return Url::parse(target);
        }
        if target.contains("://") {
            return Err(format!("unsupported URL scheme: {target}"));
        }
        let path = if target.starts_with('/') {
            target.to_string()
        } else {
            let dir = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{target}")
        };
        Ok(Url { host: self.host.clone(), port: self.port, path })
    }

    pub fn authority(&self) -> String {
        if self.port == 80 { self.host.clone() } else { format!("{}:{}", self.host, self.port) }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// What an iPXE script does on its success path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptPlan {
    /// `kernel`, `initrd`, `module`, `imgfetch` downloads, in order.
    pub fetches: Vec<Url>,
    /// A `chain` to another script (its own plan follows), if the script ends with one.
    pub chain: Option<Url>,
}

/// Runs an iPXE script the way iPXE does when every command succeeds: lines in order, an
/// unconditional `goto` jumps to its `:label` (`cmd || goto x` is a failure branch and not
/// taken), `kernel`/`initrd`/`module`/`imgfetch` download their URL (options such as
/// `--name X` skipped, the rest of the line is the command line), `chain` hands over to another
/// script, `boot` ends it. `exit` (boot from disk), `menu`/`choose` (a human's choice) and a
/// runaway `goto` are errors for a load run. URLs are resolved against `base` with
/// `${name}` / `${name:type}` taken from `vars` (an unknown one is an error).
pub fn script_plan(script: &str, base: &Url, vars: &[(&str, String)]) -> Result<ScriptPlan, String> {
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    let mut plan = ScriptPlan { fetches: Vec::new(), chain: None };
    let (mut pc, mut steps) = (0usize, 0u32);
    while pc < lines.len() {
        steps += 1;
        if steps > 10_000 {
            return Err("script loops (10,000 steps without boot)".into());
        }
        let line = lines[pc];
        pc += 1;
        // The success path: drop `|| ...` failure branches; `&&` chains run left to right.
        let head = line.split("||").next().unwrap_or("").trim();
        for cmdline in head.split("&&") {
            let mut words = cmdline.split_whitespace();
            let Some(cmd) = words.next() else { continue };
            match cmd {
                "kernel" | "initrd" | "module" | "imgfetch" | "chain" | "imgexec" => {
                    let mut target = None;
                    while let Some(w) = words.next() {
                        if matches!(w, "--name" | "-n" | "--timeout" | "-t") {
                            words.next();
                        } else if !w.starts_with('-') {
                            target = Some(w);
                            break;
                        }
                    }
                    let Some(target) = target else {
                        return Err(format!("script line {line:?}: no URL"));
                    };
                    let url =
                        base.join(&expand(target, vars).map_err(|v| format!("script line {line:?}: {v}"))?)?;
                    if matches!(cmd, "chain" | "imgexec") {
                        plan.chain = Some(url);
                        return Ok(plan);
                    }
                    plan.fetches.push(url);
                }
                "boot" => return Ok(plan),
                "goto" => {
                    let label = words.next().unwrap_or("");
                    let label = expand(label, vars).map_err(|v| format!("script line {line:?}: {v}"))?;
                    let at = lines.iter().position(|l| l.strip_prefix(':') == Some(label.as_str()));
                    pc = at.ok_or_else(|| format!("script line {line:?}: no label :{label}"))? + 1;
                    break;
                }
                "exit" => return Err("script exits (boot from the local disk)".into()),
                "menu" | "choose" => return Err("script shows an interactive menu".into()),
                "shell" => return Err("script drops to the iPXE shell".into()),
                _ => {} // echo, sleep, imgfree, set, prompt, comments, labels, ...
            }
        }
    }
    Err("script ended without boot or chain".into())
}

/// `${name}` and `${name:type}` from `vars` (looked up by `name:type`, then `name`).
fn expand(s: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated ${{ in {s}"))?;
        let name = &after[..end];
        let base = name.split(':').next().unwrap_or(name);
        let v = vars
            .iter()
            .find(|(k, _)| *k == name)
            .or_else(|| vars.iter().find(|(k, _)| *k == base))
            .ok_or_else(|| format!("unknown variable ${{{name}}}"))?;
        out.push_str(&v.1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The iPXE settings a simulated machine has, for [`script_plan`].
pub fn ipxe_vars(
    mac: &[u8; 6],
    ip: std::net::Ipv4Addr,
    next_server: std::net::Ipv4Addr,
    arch: u16,
    uuid: &[u8; 16],
) -> Vec<(&'static str, String)> {
    let colon: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    let u: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!("{}-{}-{}-{}-{}", &u[..8], &u[8..12], &u[12..16], &u[16..20], &u[20..]);
    let (buildarch, platform) = match arch {
        0 => ("i386", "pcbios"),
        6 => ("i386", "efi"),
        10 => ("arm32", "efi"),
        11 => ("arm64", "efi"),
        _ => ("x86_64", "efi"),
    };
    vec![
        ("net0/mac:hexhyp", colon.join("-")),
        ("mac:hexhyp", colon.join("-")),
        ("net0/mac", colon.join(":")),
        ("mac", colon.join(":")),
        ("net0/ip", ip.to_string()),
        ("ip", ip.to_string()),
        ("next-server", next_server.to_string()),
        ("uuid", uuid),
        ("buildarch", buildarch.into()),
        ("platform", platform.into()),
        ("hostname", String::new()),
    ]
}

/// One keep-alive connection.
pub struct Connection {
    stream: Option<TcpStream>,
    peer: Option<SocketAddr>,
    buf: Vec<u8>,
    timeout: Duration,
    /// Connections opened (1 + reconnects).
    pub connects: u32,
}

/// What one GET returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub bytes: u64,
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

impl Connection {
    pub fn new(timeout: Duration, buf_size: usize) -> Connection {
        Connection { stream: None, peer: None, buf: vec![0u8; buf_size.max(16 * 1024)], timeout, connects: 0 }
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let s = TcpStream::connect_timeout(&addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        self.peer = Some(addr);
        self.connects += 1;
        Ok(())
    }

    /// GETs `url` from `addr` (the resolved host), streaming the body to `sink`. A non-200
    /// status is returned (with the body drained), not an error.
    pub fn get(&mut self, addr: SocketAddr, url: &Url, sink: &mut dyn FnMut(&[u8])) -> io::Result<Fetched> {
        if self.peer != Some(addr) {
            self.stream = None;
        }
        if self.stream.is_none() {
            self.connect(addr)?;
        }
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ferroboot-loadgen\r\nAccept: */*\r\n\r\n",
            url.path,
            url.authority()
        );
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(req.as_bytes())?;
        // Read the head.
        let mut have = 0;
        let (status, length, close, head_len) = loop {
            let n = stream.read(&mut self.buf[have..])?;
            if n == 0 {
                self.stream = None;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response head",
                ));
            }
            have += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf[..have]) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut length = None;
                    let mut close = resp.version == Some(0);
                    for h in resp.headers.iter() {
                        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = Some(
                                v.parse::<u64>().map_err(|_| invalid(format!("bad Content-Length {v:?}")))?,
                            );
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && !v.eq_ignore_ascii_case("identity")
                        {
                            return Err(invalid(format!("Transfer-Encoding {v} is not supported")));
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = v.eq_ignore_ascii_case("close");
                        }
                    }
                    break (status, length, close, head_len);
                }
                Ok(httparse::Status::Partial) if have < self.buf.len() => continue,
                Ok(httparse::Status::Partial) => return Err(invalid("response head too large".into())),
                Err(e) => return Err(invalid(format!("bad response head: {e}"))),
            }
        };
        // The body: what followed the head in the buffer, then the rest from the socket.
        let mut got = (have - head_len) as u64;
        if let Some(len) = length {
            if got > len {
                return Err(invalid("more bytes than Content-Length (pipelining is not used)".into()));
            }
        }
        sink(&self.buf[head_len..have]);
        loop {
            let want = match length {
                Some(len) if got >= len => break,
                Some(len) => ((len - got) as usize).min(self.buf.len()),
                None => self.buf.len(),
            };
            let n = stream.read(&mut self.buf[..want])?;
            if n == 0 {
                if length.is_none() {
                    break;
                }
                self.stream = None;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {got} of {} body bytes", length.unwrap_or(0)),
                ));
            }
            sink(&self.buf[..n]);
            got += n as u64;
        }
        if close || length.is_none() {
            self.stream = None;
        }
        Ok(Fetched { status, bytes: got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("http://10.0.0.1:8080/boot.ipxe").unwrap();
        assert_eq!(u, Url { host: "10.0.0.1".into(), port: 8080, path: "/boot.ipxe".into() });
        assert_eq!(Url::parse("http://h").unwrap().path, "/");
        assert_eq!(Url::parse("http://h/x").unwrap().port, 80);
        assert!(Url::parse("https://h/x").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
        assert_eq!(u.join("/boot/k").unwrap().to_string(), "http://10.0.0.1:8080/boot/k");
        let s = Url::parse("http://h:1/boot/nixos/script.ipxe").unwrap();
        assert_eq!(s.join("bzImage").unwrap().path, "/boot/nixos/bzImage");
        assert_eq!(s.join("http://o/x").unwrap().host, "o");
        assert!(s.join("tftp://o/x").is_err());
    }

    fn vars() -> Vec<(&'static str, String)> {
        ipxe_vars(
            &[2, 0xfb, 0, 0, 0, 1],
            "10.0.0.100".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            7,
            &[0x11; 16],
        )
    }

    #[test]
    fn script_success_path_becomes_fetches() {
        let base = Url::parse("http://10.0.0.1:8080/boot.ipxe").unwrap();
        let script = "#!ipxe\nimgfree\nkernel --name k /boot/nixos/bzImage?mac=${net0/mac:hexhyp} ip=${net0/ip} || goto fail1\n\
                      initrd --name initrd http://10.0.0.1:8080/boot/${mac}/initrd || goto fail1\n\
                      initrd firmware.cpio\nboot || goto fail1\n:fail1\nkernel /never\nboot\n";
        let p = script_plan(script, &base, &vars()).unwrap();
        let got: Vec<String> = p.fetches.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            got,
            [
                "http://10.0.0.1:8080/boot/nixos/bzImage?mac=02-fb-00-00-00-01",
                "http://10.0.0.1:8080/boot/02:fb:00:00:00:01/initrd",
                "http://10.0.0.1:8080/firmware.cpio"
            ]
        );
        assert_eq!(p.chain, None);
    }

    #[test]
    fn chain_goto_and_the_ends_that_are_not_a_boot() {
        let base = Url::parse("http://10.0.0.1:8080/boot.ipxe").unwrap();
        let chain = "#!ipxe\necho ${net0/mac} (${platform} ${buildarch})\ngoto go\nkernel /skipped\n:go\n\
                     chain --replace --autofree http://10.0.0.1:8080/ipxe/node?mac=${net0/mac:hexhyp}&uuid=${uuid}&buildarch=${buildarch}&platform=${platform}&hostname=${hostname:uristring} || goto fail1\n";
        let p = script_plan(chain, &base, &vars()).unwrap();
        assert!(p.fetches.is_empty());
        assert_eq!(
            p.chain.unwrap().path,
            "/ipxe/node?mac=02-fb-00-00-00-01&uuid=11111111-1111-1111-1111-111111111111&buildarch=x86_64&platform=efi&hostname="
        );
        let err = |s: &str| script_plan(s, &base, &vars()).unwrap_err();
        assert!(err("kernel ${unknown}/k\nboot\n").contains("unknown variable ${unknown}"));
        assert!(err("#!ipxe\necho hi\n").contains("without boot"));
        assert!(err("echo local\nexit\n").contains("local disk"));
        assert!(err("menu x\nchoose t\n").contains("menu"));
        assert!(err(":a\ngoto a\n").contains("loops"));
        assert!(err("goto nowhere\n").contains("no label"));
    }

    /// A canned server: answers each accepted connection with `responses`, in order.
    fn serve(responses: Vec<Vec<u8>>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for r in responses {
                let mut b = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut b).unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&b[..n]);
                }
                s.write_all(&r).unwrap();
            }
        });
        addr
    }

    #[test]
    fn keep_alive_content_length_and_status() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nrest of it".to_vec(),
        ]);
        let mut c = Connection::new(Duration::from_secs(5), 16 * 1024);
        let url = Url::parse(&format!("http://{addr}/boot/a")).unwrap();
        let mut body = Vec::new();
        let f = c.get(addr, &url, &mut |b| body.extend_from_slice(b)).unwrap();
        assert_eq!((f.status, f.bytes, &body[..]), (200, 5, &b"hello"[..]));
        let f = c.get(addr, &url, &mut |_| {}).unwrap();
        assert_eq!((f.status, f.bytes), (404, 3));
        body.clear();
        let f = c.get(addr, &url, &mut |b| body.extend_from_slice(b)).unwrap();
        assert_eq!((f.status, &body[..]), (200, &b"rest of it"[..]));
        assert_eq!(c.connects, 1, "one connection for all three");
    }

    #[test]
    fn short_body_and_chunked_are_errors() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()]);
        let mut c = Connection::new(Duration::from_secs(5), 16 * 1024);
        let url = Url::parse(&format!("http://{addr}/x")).unwrap();
        let e = c.get(addr, &url, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("after 3 of 10"), "{e}");
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()]);
        let e = c.get(addr, &url, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("chunked"), "{e}");
    }
}
