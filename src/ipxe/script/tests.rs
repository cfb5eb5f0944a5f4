//! Golden tests: every script, per profile and per architecture, byte for byte against
//! `src/ipxe/golden/*.ipxe`. `UPDATE_GOLDEN=1 cargo test --lib ipxe` rewrites them; review the diff.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::Path;
use std::rc::Rc;

use crate::config::Config;
use crate::http::request::Method;
use crate::http::{Match, Route, RouteRequest};
use crate::ipxe::Inventory;
use crate::lifecycle::NodeState;

const CONFIG: &str = r#"
server_address = "10.0.100.10"
[nodes."52:54:00:12:34:56"]
profile = "control-plane"
hostname = "node01"
ip_address = "10.0.100.50"
[nodes."52:54:00:12:34:57"]
profile = "worker"
hostname = "node02"
ip_address = "10.0.100.51"
role = "storage"
uuid = "4c4c4544-0000-1000-8000-000000000002"
[nodes."52:54:00:12:34:58"]
hostname = "node03"
[profiles.control-plane]
kernel = "nixos/control-plane/bzImage"
initrd = "nixos/control-plane/initrd"
cmdline = "init=/nix/store/init console=ttyS0,115200 hostname={hostname} ip={ip}::{server}:255.255.255.0::eth0:off ferroboot={server_url}/api/v1/nodes/{mac}/events role={role}"
[profiles.worker]
kernel = "nixos/worker/bzImage"
initrd = ["nixos/worker/initrd", "nixos/worker/modules/initrd", "extra/firmware.cpio"]
cmdline = "console=ttyS0 ip=${net0/ip} profile={profile} arch={arch} platform={platform} uuid={uuid}"
"#;

/// Records what the route tells the lifecycle; says "local" for the MACs in `local`.
#[derive(Default)]
struct Recorder {
    local: Vec<[u8; 6]>,
    served: RefCell<Vec<([u8; 6], Ipv4Addr, bool)>>,
}

impl NodeState for Recorder {
    fn boots_local(&self, mac: [u8; 6]) -> bool {
        self.local.contains(&mac)
    }
    fn script_served(&self, mac: [u8; 6], peer: Ipv4Addr, local: bool) {
        self.served.borrow_mut().push((mac, peer, local));
    }
}

struct Fixture {
    routes: Vec<(Match, Box<dyn Route>)>,
    life: Rc<Recorder>,
}

fn fixture(extra: &str, local: Vec<[u8; 6]>) -> Fixture {
    let c = Config::from_toml(Path::new("golden.toml"), &format!("{CONFIG}{extra}")).unwrap();
    let inv = Rc::new(Inventory::from_config(&c).unwrap());
    let life = Rc::new(Recorder { local, ..Recorder::default() });
    let mut routes = Vec::new();
    super::super::route::register(inv, life.clone(), |m, r| routes.push((m, r)));
    Fixture { routes, life }
}

impl Fixture {
    fn get(&self, path: &str, query: &str) -> (u16, String) {
        let (_, route) = self
            .routes
            .iter()
            .find(|(m, _)| *m == Match::Exact(Box::leak(path.to_string().into_boxed_str())))
            .expect("route");
        let req = RouteRequest {
            method: Method::Get,
            path: path.as_bytes(),
            query: query.as_bytes(),
            peer: "10.0.100.123:40000".parse().unwrap(),
            host: Some(b"10.0.100.10:8080"),
            user_agent: Some(b"iPXE/1.21.1"),
            body: b"",
        };
        let mut body = Vec::new();
        let reply = route.respond(&req, &mut body);
        assert_eq!(reply.content_type, "text/plain; charset=utf-8");
        assert_eq!(reply.cache_control, Some("no-store"));
        (reply.status, String::from_utf8(body).unwrap())
    }
}

fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ipxe/golden").join(format!("{name}.ipxe"));
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(got, want, "{name}: script differs from {}", path.display());
    // Every script is an iPXE script, ends with a newline, and has no CR or stray control byte.
    assert!(got.starts_with("#!ipxe\n") && got.ends_with('\n'));
    assert!(!got.bytes().any(|b| b.is_ascii_control() && b != b'\n'), "{name}");
}

fn query(mac: &str, platform: &str, arch: &str) -> String {
    format!("mac={mac}&uuid=&buildarch={arch}&platform={platform}&hostname=")
}

const NODE01: &str = "52-54-00-12-34-56";
const NODE02: &str = "52-54-00-12-34-57";

#[test]
fn chain_script_is_the_same_on_both_paths() {
    let f = fixture("", vec![]);
    let (st, a) = f.get("/boot.ipxe", "");
    assert_eq!(st, 200);
    let (_, b) = f.get("/boot/ipxe/boot.ipxe", "");
    assert_eq!(a, b);
    golden("chain", &a);
    assert!(f.life.served.borrow().is_empty(), "the chain step is not the machine's script");
}

#[test]
fn control_plane_per_arch() {
    let f = fixture("", vec![]);
    for (name, platform, arch) in [
        ("control-plane-bios", "pcbios", "i386"),
        ("control-plane-efi-x64", "efi", "x86_64"),
        ("control-plane-efi-arm64", "efi", "arm64"),
    ] {
        let (st, s) = f.get("/ipxe/node", &query(NODE01, platform, arch));
        assert_eq!(st, 200);
        golden(name, &s);
        assert_eq!(s.contains(" initrd=initrd "), platform == "efi", "{name}");
    }
    let served = f.life.served.borrow();
    assert_eq!(served.len(), 3);
    assert!(served.iter().all(|&(m, p, l)| m == [0x52, 0x54, 0, 0x12, 0x34, 0x56]
        && p == Ipv4Addr::new(10, 0, 100, 123)
        && !l));
}

#[test]
fn worker_with_three_initrds() {
    let f = fixture("", vec![]);
    let (_, efi) = f.get("/ipxe/node", &query(NODE02, "efi", "x86_64"));
    golden("worker-efi-x64", &efi);
    let (_, bios) = f.get("/ipxe/node", &query(NODE02, "pcbios", "x86_64"));
    golden("worker-bios", &bios);
    // Looked up by UUID when the MAC is not known (a second NIC), by hostname as a last resort.
    let (_, by_uuid) = f.get(
        "/ipxe/node",
        "mac=02-00-00-00-00-01&uuid=4C4C4544-0000-1000-8000-000000000002&buildarch=x86_64&platform=efi",
    );
    assert_eq!(by_uuid, efi);
    let (_, by_host) = f.get("/ipxe/node", "mac=&buildarch=x86_64&platform=efi&hostname=NODE02");
    assert_eq!(by_host, efi);
}

#[test]
fn installed_machine_gets_exit() {
    let f = fixture("", vec![[0x52, 0x54, 0, 0x12, 0x34, 0x56]]);
    let (st, s) = f.get("/ipxe/node", &query(NODE01, "efi", "x86_64"));
    assert_eq!(st, 200);
    golden("local", &s);
    assert_eq!(
        *f.life.served.borrow(),
        [([0x52, 0x54, 0, 0x12, 0x34, 0x56], Ipv4Addr::new(10, 0, 100, 123), true)]
    );
    let (_, other) = f.get("/ipxe/node", &query(NODE02, "efi", "x86_64"));
    assert!(other.contains("\nboot || goto fail1\n"), "only node01 is local");
}

#[test]
fn unknown_machines_menu_profile_ignore() {
    let f = fixture("", vec![]);
    let unknown = "02-00-00-00-00-99";
    let (_, menu) = f.get("/ipxe/node", &query(unknown, "efi", "x86_64"));
    golden("menu", &menu);
    // The menu's choice comes back as &profile=.
    let (_, chosen) = f.get("/ipxe/node", &format!("{}&profile=worker", query(unknown, "efi", "x86_64")));
    golden("unknown-chose-worker", &chosen);
    let (_, bogus) = f.get("/ipxe/node", &format!("{}&profile=nope", query(unknown, "efi", "x86_64")));
    assert_eq!(bogus, menu);
    // A node in the inventory without a profile gets the unknown-machine policy too.
    let (_, node03) = f.get("/ipxe/node", &query("52-54-00-12-34-58", "efi", "x86_64"));
    assert!(node03.contains("\nmenu ferroboot: node03 (52:54:00:12:34:58) has no profile\n"), "{node03}");
    // profile= is only the menu's: a known machine keeps its own profile.
    let (_, node01) = f.get("/ipxe/node", &format!("{}&profile=worker", query(NODE01, "efi", "x86_64")));
    assert!(node01.contains("profile control-plane"));

    let f = fixture("[ipxe]\nunknown = \"ignore\"\n", vec![]);
    let (_, ignored) = f.get("/ipxe/node", &query(unknown, "efi", "x86_64"));
    golden("ignore", &ignored);
    let (_, still) = f.get("/ipxe/node", &format!("{}&profile=worker", query(unknown, "efi", "x86_64")));
    assert_eq!(still, ignored, "ignore ignores the menu's profile= too");

    let f = fixture("[ipxe]\nunknown = \"worker\"\nretries = 1\n", vec![]);
    let (_, default) = f.get("/ipxe/node", &query(unknown, "pcbios", "i386"));
    golden("unknown-default-worker-one-attempt", &default);
}

#[test]
fn bad_requests() {
    let f = fixture("", vec![]);
    let (st, body) = f.get("/ipxe/node", "mac=not-a-mac");
    assert_eq!(st, 400);
    assert!(body.starts_with("#!ipxe\n"));
    // Hostile query values never reach the script.
    let (st, s) =
        f.get("/ipxe/node", "mac=02-00-00-00-00-99&platform=efi%0Ashell&buildarch=x%20y&profile=worker%0a");
    assert_eq!(st, 200);
    assert!(!s.contains("shell\n:") || s.contains(":shell\nshell\ngoto menu\n"));
    assert!(!s.contains("x y") && !s.contains("efi\nshell"));
    assert!(s.contains("\nmenu ferroboot:"), "bad profile= is dropped: menu");
    assert!(f.life.served.borrow().iter().all(|&(m, _, _)| m == [2, 0, 0, 0, 0, 0x99]));
}

#[test]
fn urls_follow_the_host_header_else_server_address() {
    let c = Config::from_toml(Path::new("t.toml"), CONFIG).unwrap();
    let inv = Rc::new(Inventory::from_config(&c).unwrap());
    let mut routes = Vec::new();
    super::super::route::register(inv, Rc::new(crate::lifecycle::NoLifecycle), |m, r| routes.push((m, r)));
    let mut req = RouteRequest {
        method: Method::Get,
        path: b"/boot.ipxe",
        query: b"",
        peer: "127.0.0.1:1".parse().unwrap(),
        host: Some(b"localhost:18080"),
        user_agent: None,
        body: b"",
    };
    let mut body = Vec::new();
    routes[0].1.respond(&req, &mut body);
    assert!(
        String::from_utf8_lossy(&body)
            .contains("chain --replace --autofree http://localhost:18080/ipxe/node?")
    );
    for host in [None, Some(&b"evil\nhost"[..]), Some(b"a b")] {
        req.host = host;
        body.clear();
        routes[0].1.respond(&req, &mut body);
        assert!(String::from_utf8_lossy(&body).contains("http://10.0.100.10:8080/ipxe/node?"), "{host:?}");
    }
    // No Host and no server_address: a 400 script, not a broken URL.
    let inv = Rc::new(Inventory::from_config(&Config::default()).unwrap());
    let mut routes = Vec::new();
    super::super::route::register(inv, Rc::new(crate::lifecycle::NoLifecycle), |m, r| routes.push((m, r)));
    req.host = None;
    body.clear();
    assert_eq!(routes[0].1.respond(&req, &mut body).status, 400);
}

#[test]
fn rendering_reuses_the_buffer() {
    let f = fixture("", vec![]);
    let (_, route) = f.routes.iter().find(|(m, _)| *m == Match::Exact("/ipxe/node")).unwrap();
    let q = query(NODE02, "efi", "x86_64");
    let req = RouteRequest {
        method: Method::Get,
        path: b"/ipxe/node",
        query: q.as_bytes(),
        peer: "10.0.100.123:40000".parse().unwrap(),
        host: Some(b"10.0.100.10:8080"),
        user_agent: None,
        body: b"",
    };
    let mut body = Vec::with_capacity(16 << 10);
    let cap = body.capacity();
    for _ in 0..3 {
        body.clear();
        route.respond(&req, &mut body);
        assert_eq!(body.capacity(), cap, "the caller's buffer is reused, not replaced");
    }
    // HEAD renders the same bytes (for Content-Length) but is not a boot.
    let before = f.life.served.borrow().len();
    let head = RouteRequest { method: Method::Head, ..req };
    let mut hb = Vec::new();
    route.respond(&head, &mut hb);
    assert_eq!(hb, body);
    assert_eq!(f.life.served.borrow().len(), before);
}

#[test]
fn per_arch_images_from_one_profile() {
    let f = fixture(
        "[profiles.mixed]\nkernel = \"nixos/{arch}/bzImage\"\ninitrd = [\"nixos/{arch}/initrd\", \"fw/{platform}-{profile}.cpio\"]\n\
         [nodes.\"52:54:00:12:34:59\"]\nprofile = \"mixed\"\n",
        vec![],
    );
    let (_, arm) = f.get("/ipxe/node", &query("52-54-00-12-34-59", "efi", "arm64"));
    golden("mixed-efi-arm64", &arm);
    let (_, x86) = f.get("/ipxe/node", &query("52-54-00-12-34-59", "efi", "x86_64"));
    assert_eq!(x86, arm.replace("arm64", "x86_64"), "only the arch differs");
    assert!(arm.contains(
        "kernel http://10.0.100.10:8080/boot/nixos/arm64/bzImage?mac=52-54-00-12-34-59 initrd=initrd initrd=platform-profile.cpio"
    ));
    assert!(
        arm.contains("initrd --name platform-profile.cpio http://10.0.100.10:8080/boot/fw/efi-mixed.cpio?mac=52-54-00-12-34-59 ")
    );
}
