//! `ferroboot serve`: applies the command-line overrides to the config, starts every enabled
//! service on one event loop, and runs until SIGINT/SIGTERM.

use crate::cli::{DhcpArg, ServeArgs};
use crate::config::{Config, DhcpMode};
use crate::http::{HttpLimits, HttpService, Match};
use crate::lifecycle::{LifecycleService, NoLifecycle, NodeState, Observer, Step, Store, api::Api};
use crate::net::{EventLoop, iface};
use crate::orchestrate::http_api::{self, OrchestrationApi};
use crate::orchestrate::jobs::Jobs;
use crate::status::Status;
use crate::tftp::driver::{TftpService, TftpSettings, blksize_for_mtu};
use crate::tftp::options::Limits;
use std::error::Error;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::time::Duration;

type BoxError = Box<dyn Error + Send + Sync>;

/// Loads the config (or the built-in defaults) and applies the flags on top.
pub fn effective_config(args: &ServeArgs) -> Result<Config, BoxError> {
    let mut c = match &args.config {
        Some(p) => Config::load(p).map_err(|e| -> BoxError { e.to_string().into() })?,
        None => Config::default(),
    };
    if let Some(r) = &args.root {
        c.root = r.clone();
    }
    if let Some(l) = args.listen {
        c.listen = l;
    }
    if let Some(i) = &args.interface {
        c.interface = Some(i.clone());
    }
    if let Some(p) = args.tftp_port {
        c.tftp.port = p;
    }
    if let Some(p) = args.http_port {
        c.http.port = p;
    }
    if args.no_tftp {
        c.tftp.enabled = false;
    }
    if args.no_http {
        c.http.enabled = false;
    }
    if let Some(d) = args.dhcp {
        c.dhcp.mode = match d {
            DhcpArg::Off => DhcpMode::Off,
            DhcpArg::Server => DhcpMode::Server,
            DhcpArg::Proxy => DhcpMode::Proxy,
        };
    }
    if args.proxy_dhcp {
        c.dhcp.mode = DhcpMode::Proxy;
    }
    if let Some(s) = &args.state_dir {
        c.state_dir = s.clone();
    }
    Ok(c)
}

/// TFTP settings for a config: the blksize cap is the config's, else the serving MTU − 32.
pub fn tftp_settings(c: &Config) -> TftpSettings {
    let mtu = iface::serving_mtu(c.interface.as_deref(), c.listen);
    TftpSettings {
        listen: SocketAddrV4::new(c.listen, c.tftp.port),
        root: c.root.clone(),
        limits: Limits {
            max_blksize: c.tftp.max_blksize.unwrap_or_else(|| blksize_for_mtu(mtu)),
            max_windowsize: c.tftp.max_windowsize,
            max_window_bytes: c.tftp.max_window_bytes,
            default_timeout: c.tftp.timeout,
        },
        retries: c.tftp.retries,
        max_sessions: c.tftp.max_sessions,
        device: c.interface.clone(),
    }
}

/// HTTP limits from the config.
pub fn http_limits(c: &Config) -> HttpLimits {
    HttpLimits {
        max_connections: c.http.max_connections,
        max_header_bytes: c.http.max_header_bytes,
        header_timeout: c.http.header_timeout,
        keep_alive_timeout: c.http.keepalive_timeout,
        write_timeout: c.http.write_timeout,
        ..HttpLimits::default()
    }
}

/// The nodes a stopping server's provision jobs were installing: their reports of the killed
/// installs could not reach the API (it stopped serving first), so those still `installing` are
/// recorded `failed` here, in the journal, instead of staying `installing` across the restart.
fn mark_interrupted(store: &Store, macs: &[String]) {
    for mac in macs.iter().filter_map(|m| crate::lifecycle::parse_mac_query(m.as_bytes())) {
        if store.node(mac).is_some_and(|n| n.state == crate::lifecycle::State::Installing) {
            let _ = store.event(mac, Step::Failed, "install interrupted: ferroboot stopped");
        }
    }
    store.flush();
}

/// The node lifecycle store under the state dir; when it cannot be opened (no write access, held
/// by another server) the lifecycle is kept in memory only, and the log says so.
pub fn open_store(c: &Config) -> Store {
    match Store::open(c) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("lifecycle: {e}: node states are kept in memory only and lost at exit");
            let (known, files) = crate::lifecycle::store::inventory(c);
            Store::in_memory(&known, files, crate::lifecycle::store::now_ms)
        }
    }
}

/// Runs the services, with the node lifecycle, until a stop signal.
pub fn run(c: &Config) -> Result<(), BoxError> {
    run_services(c, true)
}

/// [`run`] without the node lifecycle (`ferroboot boot`: every machine boots the same images
/// every time; no journal, no `/api/v1/`).
pub fn run_without_lifecycle(c: &Config) -> Result<(), BoxError> {
    run_services(c, false)
}

fn run_services(c: &Config, keep_lifecycle: bool) -> Result<(), BoxError> {
    if let Some(i) = &c.interface {
        if iface::by_name(i).is_none() {
            return Err(format!("interface {i:?} does not exist").into());
        }
    }
    if let Err(e) = std::fs::create_dir_all(&c.state_dir) {
        log::warn!("state dir {}: {e}", c.state_dir.display());
    }
    let status = Rc::new(Status::default());
    let store = keep_lifecycle.then(|| Rc::new(open_store(c)));
    let observer: Rc<dyn Observer> = match &store {
        Some(s) => s.clone(),
        None => Rc::new(NoLifecycle),
    };
    // iPXE: the builds served from outside the root (a missing configured one stops us here),
    // the inventory the scripts come from, and the lifecycle they consult.
    let served = crate::ipxe::files::served_files(c).map_err(|e| -> BoxError { e.into() })?;
    let inventory = Rc::new(crate::ipxe::Inventory::from_config(c).map_err(|e| -> BoxError { e.into() })?);
    let lifecycle: Rc<dyn NodeState> = match &store {
        Some(s) => s.clone(),
        None => Rc::new(NoLifecycle),
    };
    let jobs = Jobs::new();
    let mut ev = EventLoop::new()?;
    if c.dhcp.mode != DhcpMode::Off {
        let s = crate::dhcp::driver::settings_from_config(c)
            .map_err(|e| -> BoxError { format!("dhcp: {e}").into() })?;
        let mut svc = crate::dhcp::driver::DhcpService::new(s, Rc::clone(&status))
            .map_err(|e| -> BoxError { format!("dhcp: {e}").into() })?;
        svc.set_observer(observer.clone());
        ev.add(Box::new(svc))?;
    }
    if c.tftp.enabled {
        let s = tftp_settings(c);
        let mut svc = TftpService::new(s.clone(), Rc::clone(&status))
            .map_err(|e| -> BoxError { format!("tftp: {e}").into() })?;
        svc.set_observer(observer.clone());
        for f in &served {
            if let Some(p) = &f.path {
                svc.add_file(&f.name, p.clone());
            }
        }
        ev.add(Box::new(svc))?;
    }
    if c.http.enabled {
        let addr = std::net::SocketAddr::from((c.listen, c.http.port));
        let mut svc = HttpService::new(addr, c.root.clone(), http_limits(c), Rc::clone(&status))
            .map_err(|e| -> BoxError { format!("http: {e}").into() })?;
        svc.set_observer(observer.clone());
        if let Some(store) = &store {
            // The orchestration paths (cluster-config, provision and check jobs) in front of the
            // lifecycle API, which answers every other /api/v1/ path.
            let route = OrchestrationApi::new(
                c.cluster.clone(),
                jobs.clone(),
                http_api::self_url(c.listen, c.http.port),
                Box::new(Api::new(store.clone())),
            );
            svc.add_route(Match::Prefix(crate::lifecycle::api::PREFIX), Box::new(route));
        }
        for f in &served {
            svc.add_file(&f.name, f.path.as_deref(), f.top_level)
                .map_err(|e| -> BoxError { format!("http: {}: {e}", f.name).into() })?;
        }
        if c.root.join("ipxe/boot.ipxe").exists() {
            log::warn!(
                "ipxe: {} is not served: /boot/ipxe/boot.ipxe is ferroboot's chain script",
                c.root.join("ipxe/boot.ipxe").display()
            );
        }
        crate::ipxe::route::register(Rc::clone(&inventory), Rc::clone(&lifecycle), |m, r| {
            svc.add_route(m, r)
        });
        log::info!(
            "ipxe: scripts at /boot.ipxe, /boot/ipxe/boot.ipxe, /ipxe/node; {} node(s), {} profile(s); serving {}",
            inventory.nodes.len(),
            inventory.profiles.len(),
            served.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        ev.add(Box::new(svc))?;
    }
    if !c.tftp.enabled && !c.http.enabled && c.dhcp.mode == DhcpMode::Off {
        return Err("no service is enabled".into());
    }
    if let Some(store) = store.clone() {
        ev.add(Box::new(LifecycleService(store)))?;
    }
    let ran = ev.run(true, || false);
    // Stop serving first (the jobs' lifecycle reports then fail at once instead of waiting),
    // then let running provision jobs kill their installs.
    drop(ev);
    if jobs.running() > 0 {
        log::info!("orchestration: stopping {} running job(s)", jobs.running());
        let macs = http_api::wait_for_jobs(&jobs, Duration::from_secs(8));
        if let Some(store) = &store {
            mark_interrupted(store, &macs);
        }
    }
    ran?;
    Ok(())
}
