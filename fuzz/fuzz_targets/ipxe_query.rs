//! Any query string (and Host header) against the per-machine script route: it never panics, and
//! whatever the client sends, the script it gets back is made only of our own commands, one per
//! line: nothing from the query can start a line or add a control character.
#![no_main]

use ferroboot::config::Config;
use ferroboot::http::request::Method;
use ferroboot::http::{Match, Route, RouteRequest};
use ferroboot::ipxe::Inventory;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::rc::Rc;

const CONFIG: &str = r#"
server_address = "10.0.100.10"
[nodes."52:54:00:12:34:56"]
profile = "cp"
hostname = "node01"
uuid = "4c4c4544-0000-1000-8000-000000000001"
[profiles.cp]
kernel = "nixos/cp/bzImage"
initrd = ["nixos/cp/initrd", "x/initrd"]
cmdline = "h={hostname} ip={ip} m={mac} u={uuid} a={arch} p={platform} ${net0/ip}"
[profiles.w]
kernel = "w/{arch}/k"
initrd = "w/{platform}/initrd"
"#;

const COMMANDS: &[&str] = &[
    "#!ipxe", "#", "echo", "imgfree", "kernel", "initrd", "boot", "sleep", "prompt", "exit", "chain", "menu",
    "item", "choose", "goto", "shell",
];

thread_local! {
    static ROUTES: Vec<(Match, Box<dyn Route>)> = {
        let c = Config::from_toml(Path::new("fuzz.toml"), CONFIG).unwrap();
        let inv = Rc::new(Inventory::from_config(&c).unwrap());
        let mut v = Vec::new();
        ferroboot::ipxe::route::register(inv, Rc::new(ferroboot::lifecycle::NoLifecycle), |m, r| v.push((m, r)));
        v
    };
}

fuzz_target!(|data: &[u8]| {
    // First byte: which route; up to the first NUL: the Host header; the rest: the query.
    let Some((&sel, rest)) = data.split_first() else { return };
    let (host, query) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    ROUTES.with(|routes| {
        let (_, route) = &routes[usize::from(sel) % routes.len()];
        let req = RouteRequest {
            method: Method::Get,
            path: b"/ipxe/node",
            query,
            peer: "10.0.100.77:1000".parse().unwrap(),
            host,
            user_agent: None,
            body: b"",
        };
        let mut body = Vec::new();
        let reply = route.respond(&req, &mut body);
        assert!(reply.status == 200 || reply.status == 400);
        let text = std::str::from_utf8(&body).expect("scripts are UTF-8");
        assert!(text.starts_with("#!ipxe\n") && text.ends_with('\n'), "{text}");
        for line in text.lines() {
            assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
            let word = line.split(' ').next().unwrap_or("");
            assert!(word.starts_with(':') || COMMANDS.contains(&word), "unexpected line {line:?} in\n{text}");
            // Paths built from the client's arch/platform never climb out of the tree.
            assert!(!line.contains("/../") && !line.contains("/./"), "{line:?}");
        }
    });
});
