//! The HTTP service on the mio loop: accept, read and parse request heads in place, answer from
//! the static tree with `sendfile(2)` or from a dynamic route, keep-alive and pipelining, and the
//! limits (connection cap, head size, header/idle/write timeouts).
//!
//! Memory: every connection slot (`max_connections` of them) is created at start-up; a slot's
//! receive and header buffers are allocated the first time it is used and kept. Timers live in a
//! binary heap with room reserved for them. Static responses therefore allocate nothing: the head
//! is rendered into the slot's buffer, the body goes from the page cache to the socket.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::fs::{self, Root, StaticFile};
use super::range::{self, RangeError, Ranges};
use super::request::{self, Method, Parse, Request};
use super::response::{self, ContentRange, Head, Writer};
use super::routes::{Decision, MAX_BODY, Match, Route, RouteRequest, Router, STATIC_PREFIX, split_target};
use crate::lifecycle::{NoLifecycle, Observer};
use crate::net::{Service, sock};
use crate::status::{Counters, ServiceState, Status};

/// Knobs of the HTTP service. `serve` sets the first five from `[http]` (`serve::http_limits`);
/// the backlog and the write budget keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections at most. Further ones are accepted, answered 503 and closed, without
    /// touching the others.
    pub max_connections: usize,
    /// Largest request head (request line + headers). Beyond it: 414 or 431.
    pub max_header_bytes: usize,
    /// A request head must be complete this long after its first byte (or after accept): the
    /// slowloris guard. With `max_header_bytes` it sets the minimum receive rate.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept between requests.
    pub keep_alive_timeout: Duration,
    /// A response that makes no progress for this long is abandoned.
    pub write_timeout: Duration,
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// File bytes sent to one connection per wake-up before others get a turn.
    pub write_budget: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 2048,
            max_header_bytes: 8192,
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            backlog: 1024,
            write_budget: 4 << 20,
        }
    }
}

/// Size of each slot's head buffer: response heads and multipart part headers.
const OUT_BUF: usize = 2048;

const OVERLOADED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nServer: ferroboot\r\nContent-Type: text/plain\r\n\
Content-Length: 24\r\nRetry-After: 1\r\nConnection: close\r\n\r\n503 Service Unavailable\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// The head is in `inbuf[..in_len]`; the body arrives in `req_body` (`body_need` bytes).
    ReadingBody,
    Writing,
}

/// The body of the response being written, after the head in `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    /// `dyn_body[dyn_pos..]`.
    Dynamic,
    /// The file, `off..end`, then for multipart the next part header.
    File,
}

struct Conn {
    stream: Option<TcpStream>,
    peer: SocketAddr,
    generation: u32,
    state: State,
    /// Requests completed on this connection.
    served: u32,
    keep_alive: bool,
    inbuf: Box<[u8]>,
    in_len: usize,
    /// A request body that did not arrive with its head (allocated on first use, kept).
    req_body: Vec<u8>,
    body_have: usize,
    out: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    body: Body,
    dyn_body: Vec<u8>,
    dyn_pos: usize,
    file: Option<File>,
    file_len: u64,
    off: u64,
    end: u64,
    ranges: Ranges,
    /// Index of the range being sent; `ranges.len()` once the closing delimiter is queued.
    part: usize,
    multipart: bool,
    content_type: &'static str,
    boundary: [u8; 18],
    deadline: Instant,
    /// The deadline of this slot's live heap entry, if any.
    armed: Option<Instant>,
    queued: bool,
    // Access log and counters for the response in flight.
    started: Instant,
    method: Method,
    path: (usize, usize),
    /// Offsets of the query in `inbuf` (a static file's `?mac=` names the machine).
    query: (usize, usize),
    /// Bytes of `inbuf` the request occupies (head, and its body when it came along).
    head_len: usize,
    status: u16,
    sent: u64,
    /// File bytes of the response sent so far.
    file_sent: u64,
    /// `TCP_CORK` is set for the file body in flight (see [`set_cork`]).
    corked: bool,
}

impl Conn {
    fn empty(now: Instant) -> Conn {
        Conn {
            stream: None,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            generation: 0,
            state: State::Reading,
            served: 0,
            keep_alive: false,
            inbuf: Box::default(),
            in_len: 0,
            req_body: Vec::new(),
            body_have: 0,
            out: Box::default(),
            out_pos: 0,
            out_len: 0,
            body: Body::None,
            dyn_body: Vec::new(),
            dyn_pos: 0,
            file: None,
            file_len: 0,
            off: 0,
            end: 0,
            ranges: Ranges::new(),
            part: 0,
            multipart: false,
            content_type: "",
            boundary: [0; 18],
            deadline: now,
            armed: None,
            queued: false,
            started: now,
            method: Method::Get,
            path: (0, 0),
            query: (0, 0),
            head_len: 0,
            status: 0,
            sent: 0,
            file_sent: 0,
            corked: false,
        }
    }
}

/// Everything but the connection table, so a connection and the service can be borrowed at once.
struct Shared {
    limits: HttpLimits,
    status: Rc<Status>,
    router: Router,
    root: Root,
    /// Files served from outside the root (see [`HttpService::add_file`]).
    extra: ExtraFiles,
    /// Scratch for the decoded path (NUL-terminated).
    path_buf: Box<[u8; fs::MAX_PATH + 1]>,
    shutting_down: bool,
    boundary_seq: u64,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    timer_cap: usize,
    /// Told about every static file sent to a followed peer (the node lifecycle).
    observer: Rc<dyn Observer>,
}

/// Files served below `/boot/` from other directories: looked up by their decoded name when the
/// root does not have it. Each directory is opened once, so serving them allocates nothing.
#[derive(Default)]
struct ExtraFiles {
    dirs: Vec<(PathBuf, Root)>,
    files: Vec<ExtraFile>,
}

struct ExtraFile {
    /// Decoded name below `/boot/`.
    name: Box<[u8]>,
    /// Index into `dirs`.
    dir: usize,
    /// File name in that directory, NUL-terminated.
    file: Box<[u8]>,
}

impl ExtraFiles {
    fn open(&self, name: &[u8]) -> Option<Result<StaticFile, fs::PathError>> {
        let f = self.files.iter().find(|f| *f.name == *name)?;
        let file = CStr::from_bytes_with_nul(&f.file).ok()?;
        Some(self.dirs[f.dir].1.open_file(file))
    }
}

/// The HTTP boot server. See the module docs.
pub struct HttpService {
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    base: usize,
    shared: Shared,
    conns: Vec<Conn>,
    free: Vec<usize>,
    live: usize,
    /// Connections whose write budget ran out with the socket still writable.
    ready: Vec<usize>,
    ready_spare: Vec<usize>,
    ready_since: Instant,
    /// Accept failed with a resource error (EMFILE...): retry at this instant.
    accept_retry: Option<Instant>,
}

impl HttpService {
    /// Binds `listen` (so port errors surface at start) and opens `root`, the directory served
    /// under `/boot/`. `/health` and `/metrics` are routed from the start.
    pub fn new(
        listen: SocketAddr,
        root: PathBuf,
        limits: HttpLimits,
        status: Rc<Status>,
    ) -> io::Result<HttpService> {
        let limits = HttpLimits {
            max_connections: limits.max_connections.max(1),
            max_header_bytes: limits.max_header_bytes.max(256),
            write_budget: limits.write_budget.max(64 << 10),
            ..limits
        };
        let root = Root::open(&root)?;
        let listener = sock::tcp_listener(listen, limits.backlog, None)?;
        let local_addr = listener.local_addr()?;
        let now = Instant::now();
        let n = limits.max_connections;
        let timer_cap = 4 * n + 16;
        Ok(HttpService {
            listener: Some(listener),
            local_addr,
            base: 0,
            shared: Shared {
                limits,
                router: Router::with_builtin(&status),
                status,
                root,
                extra: ExtraFiles::default(),
                path_buf: Box::new([0; fs::MAX_PATH + 1]),
                shutting_down: false,
                boundary_seq: u64::from(now.elapsed().subsec_nanos()) ^ 0x5f3d_6b2a_91c4_e807,
                timers: BinaryHeap::with_capacity(timer_cap),
                timer_cap,
                observer: Rc::new(NoLifecycle),
            },
            conns: (0..n).map(|_| Conn::empty(now)).collect(),
            free: (0..n).rev().collect(),
            live: 0,
            ready: Vec::with_capacity(n),
            ready_spare: Vec::with_capacity(n),
            ready_since: now,
            accept_retry: None,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers a dynamic route (before the service is added to the loop). Earlier routes win;
    /// `/health` and `/metrics` are registered first.
    pub fn add_route(&mut self, m: Match, route: Box<dyn Route>) {
        self.shared.router.add(m, route);
    }

    /// Who is told about static files served (the node lifecycle; nobody by default).
    pub fn set_observer(&mut self, observer: Rc<dyn Observer>) {
        self.shared.observer = observer;
    }

    /// Serves `path` (anywhere on disk) as `/boot/<name>` when the root has no `<name>`, and also
    /// as `/<name>` when `top_level`. With `path` `None` only the top-level alias is added (the
    /// root has the file).
    pub fn add_file(
        &mut self,
        name: &str,
        path: Option<&std::path::Path>,
        top_level: bool,
    ) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if top_level {
            self.shared.router.add_top_level(name);
        }
        let Some(path) = path else { return Ok(()) };
        // Resolve symlinks now (a kernel linked from a Nix store path), so the file is opened
        // beneath its real directory.
        let path =
            &path.canonicalize().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let bad =
            || io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file path", path.display()));
        let dir = path.parent().ok_or_else(bad)?;
        let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
        let file = path.file_name().ok_or_else(bad)?;
        let extra = &mut self.shared.extra;
        let idx = match extra.dirs.iter().position(|(d, _)| d == dir) {
            Some(i) => i,
            None => {
                extra.dirs.push((dir.to_path_buf(), Root::open(dir)?));
                extra.dirs.len() - 1
            }
        };
        let mut f = std::os::unix::ffi::OsStrExt::as_bytes(file).to_vec();
        f.push(0);
        extra.files.push(ExtraFile { name: name.as_bytes().into(), dir: idx, file: f.into_boxed_slice() });
        Ok(())
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.live
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        let Some(listener) = self.listener.as_ref() else { return };
        loop {
            let (mut stream, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    log::warn!("http: accept failed: {e}; retrying shortly");
                    self.accept_retry = Some(now + Duration::from_millis(100));
                    return;
                }
            };
            let counters = &self.shared.status.http_counters;
            let Some(slot) = self.free.pop() else {
                // Over the cap: a best-effort 503 on the fresh socket, then close.
                let _ = io::Write::write(&mut stream, OVERLOADED);
                let _ = stream.shutdown(Shutdown::Write);
                Counters::inc(&counters.refused);
                log::debug!("http: {peer} refused: {} connections open", self.live);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let token = Token(self.base + 1 + slot);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                log::warn!("http: cannot register connection from {peer}: {e}");
                self.free.push(slot);
                continue;
            }
            let limits = self.shared.limits;
            let c = &mut self.conns[slot];
            if c.inbuf.is_empty() {
                c.inbuf = vec![0; limits.max_header_bytes].into_boxed_slice();
                c.out = vec![0; OUT_BUF].into_boxed_slice();
            }
            c.stream = Some(stream);
            c.peer = peer;
            c.state = State::Reading;
            c.served = 0;
            c.in_len = 0;
            c.keep_alive = false;
            c.started = now;
            self.live += 1;
            Counters::inc(&counters.active);
            set_deadline(&mut self.shared, c, slot, now + limits.header_timeout);
        }
    }

    fn close(&mut self, registry: &Registry, slot: usize) {
        close_conn(&mut self.shared, &mut self.conns[slot], registry);
        self.free.push(slot);
        self.live -= 1;
    }

    /// Runs a connection's state machine as far as the socket allows.
    fn drive(&mut self, registry: &Registry, slot: usize, now: Instant) {
        if self.conns[slot].stream.is_none() {
            return;
        }
        let outcome = drive_conn(&mut self.shared, &mut self.conns[slot], slot, now);
        match outcome {
            Outcome::Wait => {}
            Outcome::Budget => {
                let c = &mut self.conns[slot];
                if !c.queued {
                    c.queued = true;
                    if self.ready.is_empty() {
                        self.ready_since = now;
                    }
                    self.ready.push(slot);
                }
            }
            Outcome::Close => self.close(registry, slot),
        }
    }

    /// Rebuilds the timer heap from the live connections when stale entries pile up.
    fn compact_timers(&mut self) {
        let sh = &mut self.shared;
        sh.timers.clear();
        for (slot, c) in self.conns.iter_mut().enumerate() {
            if c.stream.is_some() {
                c.armed = Some(c.deadline);
                sh.timers.push(Reverse((c.deadline, slot, c.generation)));
            } else {
                c.armed = None;
            }
        }
    }
}

enum Outcome {
    /// Waiting for readiness.
    Wait,
    /// Still writable, but this connection had its turn.
    Budget,
    Close,
}

fn set_deadline(sh: &mut Shared, c: &mut Conn, slot: usize, at: Instant) {
    c.deadline = at;
    if c.armed.is_none_or(|armed| at < armed) {
        c.armed = Some(at);
        if sh.timers.len() < sh.timer_cap {
            sh.timers.push(Reverse((at, slot, c.generation)));
        }
        // else: the heap is full of stale entries; `handle_timeouts` compacts it.
    }
}

fn close_conn(sh: &mut Shared, c: &mut Conn, registry: &Registry) {
    if c.state == State::Writing && c.body == Body::File {
        Counters::inc(&sh.status.http_counters.failed);
        observe_file(sh, c, false);
    }
    let counters = &sh.status.http_counters;
    if let Some(mut s) = c.stream.take() {
        let _ = registry.deregister(&mut s);
    }
    c.file = None;
    c.corked = false;
    c.generation = c.generation.wrapping_add(1);
    c.armed = None;
    c.queued = false;
    c.state = State::Reading;
    c.body = Body::None;
    c.in_len = 0;
    c.dyn_body.clear();
    Counters::dec(&counters.active);
}

fn drive_conn(sh: &mut Shared, c: &mut Conn, slot: usize, now: Instant) -> Outcome {
    loop {
        match c.state {
            State::Reading => {
                if c.in_len > 0 {
                    let inbuf = std::mem::take(&mut c.inbuf);
                    let parsed = request::parse(&inbuf[..c.in_len], sh.limits.max_header_bytes);
                    match parsed {
                        Ok(Parse::Complete(req)) => begin_request(sh, c, &inbuf, &req, now),
                        Ok(Parse::Partial) => {}
                        Err(e) => {
                            Counters::inc(&sh.status.http_counters.malformed);
                            c.head_len = c.in_len;
                            c.method = Method::Other;
                            c.path = (0, 0);
                            c.started = now;
                            error_response(c, e.status(), false, false);
                        }
                    }
                    c.inbuf = inbuf;
                    if c.state == State::Writing {
                        set_deadline(sh, c, slot, now + sh.limits.write_timeout);
                        continue;
                    }
                    if c.state == State::ReadingBody {
                        continue;
                    }
                }
                // Need more input.
                let Some(stream) = c.stream.as_mut() else { return Outcome::Close };
                match stream.read(&mut c.inbuf[c.in_len..]) {
                    Ok(0) => return Outcome::Close,
                    Ok(n) => {
                        if c.in_len == 0 && c.served > 0 {
                            // First bytes of a follow-up request: the head deadline starts now.
                            set_deadline(sh, c, slot, now + sh.limits.header_timeout);
                        }
                        c.in_len += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Outcome::Close,
                }
            }
            State::ReadingBody => {
                if c.body_have == c.req_body.len() {
                    let inbuf = std::mem::take(&mut c.inbuf);
                    let body = std::mem::take(&mut c.req_body);
                    match request::parse(&inbuf[..c.in_len], sh.limits.max_header_bytes) {
                        Ok(Parse::Complete(req)) => {
                            start_response(sh, c, &inbuf, &req, &body, now);
                            c.head_len = c.in_len;
                        }
                        // The head parsed before; cannot happen. Answer rather than panic.
                        _ => error_response(c, 400, false, false),
                    }
                    c.inbuf = inbuf;
                    c.req_body = body;
                    set_deadline(sh, c, slot, now + sh.limits.write_timeout);
                    continue;
                }
                let Some(stream) = c.stream.as_mut() else { return Outcome::Close };
                match stream.read(&mut c.req_body[c.body_have..]) {
                    Ok(0) => return Outcome::Close,
                    Ok(n) => c.body_have += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Outcome::Close,
                }
            }
            State::Writing => match write_some(sh, c) {
                WriteResult::Progress => {
                    set_deadline(sh, c, slot, now + sh.limits.write_timeout);
                    return Outcome::Wait;
                }
                WriteResult::Blocked => return Outcome::Wait,
                WriteResult::Budget => {
                    set_deadline(sh, c, slot, now + sh.limits.write_timeout);
                    return Outcome::Budget;
                }
                WriteResult::Failed => return Outcome::Close,
                WriteResult::Done => {
                    finish_response(sh, c, now);
                    if !c.keep_alive || sh.shutting_down {
                        if let Some(s) = c.stream.as_ref() {
                            let _ = s.shutdown(Shutdown::Write);
                        }
                        return Outcome::Close;
                    }
                    // Keep the pipelined remainder, if any, and go on reading.
                    c.inbuf.copy_within(c.head_len..c.in_len, 0);
                    c.in_len -= c.head_len;
                    c.head_len = 0;
                    c.state = State::Reading;
                    let timeout =
                        if c.in_len > 0 { sh.limits.header_timeout } else { sh.limits.keep_alive_timeout };
                    set_deadline(sh, c, slot, now + timeout);
                }
            },
        }
    }
}

/// Tells the observer about the static file of the response in flight, when the query names a
/// machine (`?mac=`, what the iPXE scripts put on image URLs) or the observer follows the peer.
/// Allocation-free: the path is decoded into the shared scratch buffer.
fn observe_file(sh: &mut Shared, c: &Conn, complete: bool) {
    let SocketAddr::V4(peer) = c.peer else { return };
    let query = c.inbuf.get(c.query.0..c.query.1).unwrap_or(b"");
    let mac = query
        .split(|&b| b == b'&')
        .find_map(|kv| kv.strip_prefix(b"mac="))
        .and_then(crate::lifecycle::parse_mac_query);
    if mac.is_none() && !sh.observer.follows(*peer.ip()) {
        return;
    }
    let raw = c.inbuf.get(c.path.0..c.path.1).unwrap_or(b"");
    // `/boot/X`, or a top-level alias (`/ipxe.efi`).
    let rel = raw.strip_prefix(STATIC_PREFIX).or_else(|| raw.strip_prefix(b"/")).unwrap_or(raw);
    if let Ok(n) = fs::normalize(rel, &mut sh.path_buf[..]) {
        sh.observer.http_served(*peer.ip(), mac, &sh.path_buf[..n], c.file_sent, complete);
    }
}

fn finish_response(sh: &mut Shared, c: &mut Conn, now: Instant) {
    Counters::inc(&sh.status.http_counters.packets_out);
    if c.body == Body::File {
        Counters::inc(&sh.status.http_counters.completed);
        observe_file(sh, c, true);
    }
    c.served = c.served.saturating_add(1);
    c.file = None;
    c.body = Body::None;
    let path = c.inbuf.get(c.path.0..c.path.1).and_then(|p| std::str::from_utf8(p).ok()).unwrap_or("-");
    log::info!(
        target: "ferroboot::http::access",
        "{} \"{} {}\" {} {} {}us",
        c.peer,
        c.method.as_str(),
        if path.is_empty() { "-" } else { path },
        c.status,
        c.sent,
        now.saturating_duration_since(c.started).as_micros()
    );
}

enum WriteResult {
    Done,
    /// Some bytes went out, then the socket filled up.
    Progress,
    /// Nothing could be written.
    Blocked,
    Budget,
    Failed,
}

/// `send(2)` with `MSG_NOSIGNAL`, plus `MSG_MORE` when more of the response follows.
fn send(fd: i32, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: `buf` is a valid readable slice for its length.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// `TCP_CORK` on or off. A file body is sent corked, as nginx's `tcp_nopush` does: every
/// `sendfile(2)` call would otherwise push its last, partial segment at once (the socket has
/// `TCP_NODELAY`), ~5 % more segments for the receiver to handle. Uncorking pushes the tail.
fn set_cork(fd: i32, on: bool) {
    let v: libc::c_int = on.into();
    // SAFETY: `v` outlives the call and its size is passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn write_some(sh: &mut Shared, c: &mut Conn) -> WriteResult {
    let Some(stream) = c.stream.as_ref() else { return WriteResult::Failed };
    let fd = stream.as_raw_fd();
    if c.body == Body::File && !c.corked {
        set_cork(fd, true);
        c.corked = true;
    }
    let counters = &sh.status.http_counters;
    let mut budget = sh.limits.write_budget as u64;
    let mut progressed = false;
    loop {
        let res: io::Result<usize> = if c.out_pos < c.out_len {
            let more = match c.body {
                Body::None => false,
                Body::Dynamic => c.dyn_pos < c.dyn_body.len(),
                Body::File => c.off < c.end || (c.multipart && c.part < c.ranges.len()),
            };
            send(fd, &c.out[c.out_pos..c.out_len], more).inspect(|&n| c.out_pos += n)
        } else if c.body == Body::Dynamic && c.dyn_pos < c.dyn_body.len() {
            send(fd, &c.dyn_body[c.dyn_pos..], false).inspect(|&n| c.dyn_pos += n)
        } else if c.body == Body::File && c.off < c.end {
            if budget == 0 {
                return WriteResult::Budget;
            }
            let Some(file) = c.file.as_ref() else { return WriteResult::Failed };
            let count = (c.end - c.off).min(budget).min(1 << 30) as usize;
            let mut off = c.off as libc::off_t;
            // SAFETY: both descriptors are open for the duration of the call; `off` is valid.
            let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, count) };
            if n == 0 {
                // The file shrank under us: the Content-Length promise cannot be kept.
                return WriteResult::Failed;
            }
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                budget = budget.saturating_sub(n as u64);
                c.off += n as u64;
                c.file_sent += n as u64;
                Ok(n as usize)
            }
        } else if c.body == Body::File && c.multipart && c.part < c.ranges.len() {
            // Next part header, or the closing delimiter after the last part.
            c.part += 1;
            let range = c.ranges.get(c.part).map(|r| (r.start, r.end));
            let mut w = Writer::new(&mut c.out);
            response::render_part(&mut w, &c.boundary, c.content_type, range, c.file_len);
            c.out_len = w.len();
            c.out_pos = 0;
            if let Some((start, end)) = range {
                c.off = start;
                c.end = end + 1;
            }
            continue;
        } else {
            if c.corked {
                set_cork(fd, false);
                c.corked = false;
            }
            return WriteResult::Done;
        };
        match res {
            Ok(n) => {
                progressed = true;
                c.sent += n as u64;
                Counters::add(&counters.bytes_out, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return if progressed { WriteResult::Progress } else { WriteResult::Blocked };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return WriteResult::Failed,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Offsets of `part` inside `buf`, or an empty range if it is not a sub-slice.
fn offsets(buf: &[u8], part: &[u8]) -> (usize, usize) {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    if start <= buf.len() && part.len() <= buf.len() - start { (start, start + part.len()) } else { (0, 0) }
}

/// Renders `head` into the slot's buffer and switches to writing.
fn begin(c: &mut Conn, head: &Head<'_>, body: Body) {
    let n = match head.render(&mut c.out) {
        Ok(n) => n,
        Err(_) => {
            // Cannot happen with our bounded fields; answer something valid rather than panic.
            let fallback =
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            c.out[..fallback.len()].copy_from_slice(fallback);
            c.keep_alive = false;
            c.body = Body::None;
            c.status = 500;
            c.out_pos = 0;
            c.out_len = fallback.len();
            c.state = State::Writing;
            return;
        }
    };
    c.status = head.status;
    c.out_pos = 0;
    c.out_len = n;
    c.body = body;
    c.dyn_pos = 0;
    c.state = State::Writing;
}

/// An error response with a short text body (`404 Not Found\n`).
fn error_response(c: &mut Conn, status: u16, keep_alive: bool, head_only: bool) {
    error_response_allow(c, status, keep_alive, head_only, "GET, HEAD");
}

/// [`error_response`] with the `Allow` a 405 sends.
fn error_response_allow(c: &mut Conn, status: u16, keep_alive: bool, head_only: bool, allow: &'static str) {
    c.keep_alive = keep_alive;
    let reason = response::reason(status);
    let body_len = 3 + 1 + reason.len() + 1;
    let head = Head {
        content_length: body_len as u64,
        keep_alive,
        allow: (status == 405).then_some(allow),
        ..Head::new(status, unix_now())
    };
    begin(c, &head, Body::None);
    if !head_only && c.status == status {
        let mut w = Writer::new(&mut c.out[c.out_len..]);
        w.u64(u64::from(status)).str(" ").str(reason).str("\n");
        if let Ok(n) = w.finish() {
            c.out_len += n;
        }
    }
}

/// A complete head: refuse what we cannot take (a `Transfer-Encoding` body: 411; more than
/// [`MAX_BODY`]: 413; both close the connection), else answer now when the body (if any) is
/// already in the buffer, or go and read it.
fn begin_request(sh: &mut Shared, c: &mut Conn, inbuf: &[u8], req: &Request<'_>, now: Instant) {
    let refuse = if req.transfer_encoding {
        Some(411)
    } else if req.content_length > MAX_BODY as u64 {
        Some(413)
    } else {
        None
    };
    if let Some(status) = refuse {
        Counters::inc(&sh.status.http_counters.packets_in);
        Counters::inc(&sh.status.http_counters.refused);
        let (path, _) = split_target(req.target);
        c.path = offsets(inbuf, path);
        c.started = now;
        c.method = req.method;
        c.head_len = c.in_len;
        c.sent = 0;
        return error_response(c, status, false, req.method == Method::Head);
    }
    let cl = req.content_length as usize;
    let avail = c.in_len - req.head_len;
    if avail >= cl {
        start_response(sh, c, inbuf, req, &inbuf[req.head_len..req.head_len + cl], now);
        c.head_len = req.head_len + cl;
        return;
    }
    // The body is still on its way: keep the head in `inbuf`, collect the body beside it.
    c.req_body.clear();
    c.req_body.resize(cl, 0);
    c.req_body[..avail].copy_from_slice(&inbuf[req.head_len..c.in_len]);
    c.body_have = avail;
    c.in_len = req.head_len;
    c.state = State::ReadingBody;
    if req.expect_continue {
        if let Some(s) = c.stream.as_mut() {
            // Best effort: a client that does not see it sends the body after its own timeout.
            let _ = io::Write::write(s, b"HTTP/1.1 100 Continue\r\n\r\n");
        }
    }
}

fn start_response(sh: &mut Shared, c: &mut Conn, inbuf: &[u8], req: &Request<'_>, body: &[u8], now: Instant) {
    let counters = &sh.status.http_counters;
    Counters::inc(&counters.packets_in);
    c.started = now;
    c.head_len = req.head_len;
    c.method = req.method;
    c.sent = 0;
    c.file_sent = 0;
    c.file = None;
    let keep_alive = req.keep_alive && !sh.shutting_down;
    let (path, query) = split_target(req.target);
    c.path = offsets(inbuf, path);
    c.query = offsets(inbuf, query);
    let head_only = req.method == Method::Head;
    if req.method == Method::Other {
        Counters::inc(&counters.refused);
        return error_response(c, 405, keep_alive, false);
    }
    match sh.router.decide(path) {
        Decision::NotFound => {
            Counters::inc(&counters.refused);
            error_response(c, 404, keep_alive, head_only);
        }
        Decision::Dynamic(i) => {
            let Some(route) = sh.router.route(i) else {
                return error_response(c, 404, keep_alive, head_only);
            };
            if req.method == Method::Post && !route.accepts_post() {
                Counters::inc(&counters.refused);
                return error_response_allow(c, 405, keep_alive, false, route.allow(path));
            }
            c.dyn_body.clear();
            let rreq = RouteRequest {
                method: req.method,
                path,
                query,
                peer: c.peer,
                host: req.host,
                user_agent: req.user_agent,
                body,
            };
            let reply = route.respond(&rreq, &mut c.dyn_body);
            c.keep_alive = keep_alive;
            let head = Head {
                content_type: reply.content_type,
                content_length: c.dyn_body.len() as u64,
                keep_alive,
                cache_control: reply.cache_control,
                allow: (reply.status == 405).then(|| route.allow(path)),
                ..Head::new(reply.status, unix_now())
            };
            begin(c, &head, if head_only { Body::None } else { Body::Dynamic });
        }
        Decision::Static(_) if req.method == Method::Post => {
            Counters::inc(&counters.refused);
            error_response(c, 405, keep_alive, false)
        }
        Decision::Static(rel) => static_response(sh, c, rel, req, keep_alive, head_only),
    }
}

/// Weak comparison against an `If-None-Match` list (`*` matches anything).
fn etag_list_matches(list: &[u8], etag: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .map(request::trim)
        .any(|t| t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag)
}

/// `If-Range`: an entity tag must match strongly; a date must equal `Last-Modified`.
fn if_range_matches(v: &[u8], etag: &[u8], mtime: u64) -> bool {
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        v == etag
    } else {
        response::parse_http_date(v) == Some(mtime)
    }
}

fn static_response(
    sh: &mut Shared,
    c: &mut Conn,
    rel: &[u8],
    req: &Request<'_>,
    keep_alive: bool,
    head_only: bool,
) {
    let counters = &sh.status.http_counters;
    let n = match fs::normalize(rel, &mut sh.path_buf[..]) {
        Ok(n) => n,
        Err(e) => {
            Counters::inc(&counters.refused);
            return error_response(c, e.status(), keep_alive, head_only);
        }
    };
    let opened = match CStr::from_bytes_with_nul(&sh.path_buf[..=n]) {
        Ok(p) => match sh.root.open_file(p) {
            Err(fs::PathError::NotFound) => {
                sh.extra.open(&sh.path_buf[..n]).unwrap_or(Err(fs::PathError::NotFound))
            }
            other => other,
        },
        Err(_) => Err(fs::PathError::BadEncoding),
    };
    let f: StaticFile = match opened {
        Ok(f) => f,
        Err(e) => {
            Counters::inc(&counters.refused);
            return error_response(c, e.status(), keep_alive, head_only);
        }
    };
    c.keep_alive = keep_alive;
    let content_type = response::content_type(&sh.path_buf[..n]);
    let etag = f.etag();
    let mut head = Head {
        content_type,
        content_length: f.len,
        keep_alive,
        last_modified: Some(f.mtime),
        etag: Some(etag),
        accept_ranges: true,
        ..Head::new(200, unix_now())
    };
    let not_modified = if let Some(inm) = req.if_none_match {
        etag_list_matches(inm, etag)
    } else if let Some(ims) = req.if_modified_since {
        response::parse_http_date(ims).is_some_and(|t| f.mtime <= t)
    } else {
        false
    };
    if not_modified {
        head.status = 304;
        return begin(c, &head, Body::None);
    }
    let mut ranged = false;
    if let Some(r) = req.range {
        if req.if_range.is_none_or(|v| if_range_matches(v, etag, f.mtime)) {
            match range::parse(r, f.len, &mut c.ranges) {
                Ok(()) => ranged = true,
                Err(RangeError::Unsatisfiable) => {
                    Counters::inc(&counters.refused);
                    head.status = 416;
                    head.content_length = 0;
                    head.content_range = ContentRange::Unsatisfied { len: f.len };
                    return begin(c, &head, Body::None);
                }
                Err(RangeError::Invalid) => {}
            }
        }
    }
    c.file_len = f.len;
    c.content_type = content_type;
    c.multipart = false;
    c.part = 0;
    if !ranged {
        c.ranges.clear();
        c.off = 0;
        c.end = f.len;
        begin(c, &head, Body::File);
    } else if let [r] = c.ranges.as_slice() {
        let r = *r;
        head.status = 206;
        head.content_length = r.len();
        head.content_range = ContentRange::Bytes { start: r.start, end: r.end, len: f.len };
        c.off = r.start;
        c.end = r.end + 1;
        begin(c, &head, Body::File);
    } else {
        sh.boundary_seq =
            sh.boundary_seq.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        c.boundary[..2].copy_from_slice(b"fb");
        let mut w = Writer::new(&mut c.boundary[2..]);
        w.hex(sh.boundary_seq | 1 << 63);
        let mut total = response::part_len(&c.boundary, content_type, None, f.len);
        for r in &c.ranges {
            total += response::part_len(&c.boundary, content_type, Some((r.start, r.end)), f.len) + r.len();
        }
        let boundary = c.boundary;
        head.status = 206;
        head.content_length = total;
        head.boundary = Some(&boundary);
        begin(c, &head, Body::File);
        if c.status == 206 && !head_only {
            let first = c.ranges[0];
            let mut w = Writer::new(&mut c.out[c.out_len..]);
            response::render_part(&mut w, &boundary, content_type, Some((first.start, first.end)), f.len);
            c.out_len += w.len();
            c.multipart = true;
            c.off = first.start;
            c.end = first.end + 1;
        }
    }
    if head_only {
        c.body = Body::None;
        c.multipart = false;
    } else if c.body == Body::File {
        c.file = Some(f.file);
    }
}

impl Service for HttpService {
    fn name(&self) -> &'static str {
        "http"
    }

    fn register(&mut self, registry: &Registry, base: usize) -> io::Result<()> {
        self.base = base;
        if let Some(l) = self.listener.as_mut() {
            registry.register(l, Token(base), Interest::READABLE)?;
        }
        self.shared.status.http.set(ServiceState::Running);
        log::info!("http: serving {} on {}", self.shared.root.path().display(), self.local_addr);
        Ok(())
    }

    fn handle_event(&mut self, registry: &Registry, event: &mio::event::Event, now: Instant) {
        let t = event.token().0.wrapping_sub(self.base);
        if t == 0 {
            self.accept(registry, now);
        } else if t - 1 < self.conns.len() {
            self.drive(registry, t - 1, now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timer = self.shared.timers.peek().map(|Reverse((t, _, _))| *t);
        let ready = (!self.ready.is_empty()).then_some(self.ready_since);
        [timer, ready, self.accept_retry].into_iter().flatten().min()
    }

    fn handle_timeouts(&mut self, registry: &Registry, now: Instant) {
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            self.accept(registry, now);
        }
        // Writers whose budget ran out: another turn each. Swapping with a spare list of the same
        // capacity keeps this allocation-free while `drive` queues connections again.
        std::mem::swap(&mut self.ready, &mut self.ready_spare);
        for i in 0..self.ready_spare.len() {
            let slot = self.ready_spare[i];
            self.conns[slot].queued = false;
            self.drive(registry, slot, now);
        }
        self.ready_spare.clear();
        if !self.ready.is_empty() {
            self.ready_since = now;
        }
        if self.shared.timers.len() + 1 >= self.shared.timer_cap {
            self.compact_timers();
        }
        while let Some(&Reverse((t, slot, generation))) = self.shared.timers.peek() {
            if t > now {
                break;
            }
            self.shared.timers.pop();
            let c = &mut self.conns[slot];
            if c.stream.is_none() || c.generation != generation || c.armed != Some(t) {
                continue; // stale
            }
            c.armed = None;
            if c.deadline <= now {
                Counters::inc(&self.shared.status.http_counters.timeouts);
                log::debug!("http: {} timed out ({:?})", c.peer, c.state);
                self.close(registry, slot);
            } else {
                let d = c.deadline;
                set_deadline(&mut self.shared, &mut self.conns[slot], slot, d);
            }
        }
    }

    fn begin_shutdown(&mut self, registry: &Registry, _now: Instant) {
        self.shared.shutting_down = true;
        self.shared.status.http.set(ServiceState::Stopping);
        if let Some(mut l) = self.listener.take() {
            let _ = registry.deregister(&mut l);
        }
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            if c.stream.is_none() {
                continue;
            }
            if c.state == State::Reading {
                self.close(registry, slot);
            } else {
                c.keep_alive = false;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.live == 0
    }
}
