use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(Path::new("test.toml"), text)
}

#[test]
fn example_config_is_valid_and_matches_the_runbook() {
    let text = include_str!("../../examples/ferroboot.toml");
    let c = parse(text).expect("example config must validate");
    assert_eq!(c.server_address, Some(Ipv4Addr::new(10, 0, 100, 10)));
    assert_eq!(c.dhcp.mode, DhcpMode::Server);
    assert_eq!(c.dhcp.range, Some((Ipv4Addr::new(10, 0, 100, 100), Ipv4Addr::new(10, 0, 100, 200))));
    assert_eq!(c.dhcp.domain_name_servers, vec![Ipv4Addr::new(10, 0, 100, 1), Ipv4Addr::new(8, 8, 8, 8)]);
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(c.nodes[0].mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(c.nodes[0].hostname.as_deref(), Some("node01"));
    assert_eq!(c.profiles["control-plane"].initrd, vec!["nixos/control-plane/initrd".to_string()]);
}

#[test]
fn empty_config_gives_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.root, PathBuf::from(DEFAULT_ROOT));
    assert_eq!(c.tftp.port, 69);
    assert_eq!(c.http.port, 8080);
    assert_eq!(c.dhcp.mode, DhcpMode::Off);
}

#[test]
fn unknown_key_is_an_error_with_line_and_key() {
    let e = parse("root = \"/x\"\n\n[tftp]\nport = 69\nblocksize = 5\n").unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, 5, "{e}");
    assert_eq!(e.0[0].key, "blocksize", "{e}");
    assert!(e.0[0].message.contains("unknown field"), "{e}");
    assert!(e.to_string().starts_with("test.toml:5: blocksize:"), "{e}");
}

#[test]
fn every_semantic_error_is_reported() {
    let text = r#"
server_address = "10.0.100.300"
[dhcp]
mode = "server"
subnet = "10.0.100.0"
netmask = "255.0.255.0"
range = { start = "10.0.100.200", end = "10.0.100.100" }
[tftp]
max_blksize = 70000
[nodes."52:54:00:12:34:zz"]
hostname = "bad"
[nodes."52:54:00:12:34:56"]
ip_address = "10.0.200.5"
"#;
    let e = parse(text).unwrap_err();
    let keys: Vec<(&str, usize)> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("server_address", 2)), "{e}");
    assert!(keys.contains(&("dhcp.netmask", 6)), "{e}");
    assert!(keys.contains(&("dhcp.range", 7)), "{e}");
    assert!(keys.contains(&("tftp.max_blksize", 9)), "{e}");
    assert!(keys.iter().any(|(k, l)| k.contains("52:54:00:12:34:zz") && *l == 10), "{e}");
    assert!(keys.iter().any(|(k, l)| k.ends_with("ip_address") && *l == 13), "{e}");
}

#[test]
fn server_mode_requires_a_pool() {
    let e = parse("[dhcp]\nmode = \"server\"\n").unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["dhcp.subnet", "dhcp.netmask", "dhcp.range"]);
    assert!(e.0.iter().all(|e| e.line == 2));
}

#[test]
fn bad_mode_and_wrong_type() {
    let e = parse("[dhcp]\nmode = \"relay\"\n").unwrap_err();
    assert_eq!(e.0[0].key, "dhcp.mode");
    let e = parse("[tftp]\nport = \"sixty-nine\"\n").unwrap_err();
    assert_eq!(e.0[0].line, 2, "{e}");
}

#[test]
fn ipxe_chainload_modes() {
    use super::IpxeChainloadMode as M;
    assert_eq!(parse("").unwrap().dhcp.ipxe_chainload, M::IfNoHttp);
    for (text, mode) in [("never", M::Never), ("if-no-http", M::IfNoHttp), ("always", M::Always)] {
        let c = parse(&format!("[dhcp]\nipxe_chainload = \"{text}\"\n")).unwrap();
        assert_eq!(c.dhcp.ipxe_chainload, mode);
    }
    let e = parse("[dhcp]\nlease_time = 600\nipxe_chainload = \"sometimes\"\n").unwrap_err();
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("dhcp.ipxe_chainload", 3), "{e}");
}

#[test]
fn initrd_may_be_a_list_and_unknown_profile_is_an_error() {
    let c = parse("[profiles.a]\nkernel = \"k\"\ninitrd = [\"i1\", \"i2\"]\n").unwrap();
    assert_eq!(c.profiles["a"].initrd, vec!["i1", "i2"]);
    let e =
        parse("[profiles.a]\nkernel = \"k\"\n[nodes.\"52:54:00:00:00:01\"]\nprofile = \"b\"\n").unwrap_err();
    assert_eq!(e.0[0].key, "nodes.\"52:54:00:00:00:01\".profile");
    assert_eq!(e.0[0].line, 4);
}

#[test]
fn mac_parsing() {
    assert_eq!(parse_mac("52:54:00:c0:ee:01"), Some([0x52, 0x54, 0, 0xc0, 0xee, 1]));
    assert_eq!(parse_mac("52-54-00-C0-EE-01"), Some([0x52, 0x54, 0, 0xc0, 0xee, 1]));
    assert_eq!(parse_mac("52:54:00:c0:ee"), None);
    assert_eq!(parse_mac("52:54:00:c0:ee:01:02"), None);
    assert_eq!(parse_mac("5:54:00:c0:ee:01"), None);
}

#[test]
fn ipxe_section_defaults_and_values() {
    let c = parse("").unwrap();
    assert_eq!(c.ipxe.binaries_dir, PathBuf::from("/usr/lib/ipxe"));
    assert!(!c.ipxe.binaries_dir_set);
    assert_eq!(
        (c.ipxe.binaries.clone(), c.ipxe.unknown.clone(), c.ipxe.retries),
        (None, UnknownMachines::Menu, 3)
    );
    let c = parse(
        "[profiles.w]\nkernel = \"k\"\n[ipxe]\nbinaries_dir = \"/srv/ipxe\"\nbinaries = [\"undionly.kpxe\", \"snp-arm64.efi\"]\nunknown = \"w\"\nretries = 5\n",
    )
    .unwrap();
    assert_eq!(c.ipxe.binaries_dir, PathBuf::from("/srv/ipxe"));
    assert!(c.ipxe.binaries_dir_set);
    assert_eq!(c.ipxe.binaries, Some(vec!["undionly.kpxe".to_string(), "snp-arm64.efi".to_string()]));
    assert_eq!(c.ipxe.unknown, UnknownMachines::Profile("w".into()));
    assert_eq!(c.ipxe.retries, 5);
    assert_eq!(parse("[ipxe]\nunknown = \"ignore\"\n").unwrap().ipxe.unknown, UnknownMachines::Ignore);
}

#[test]
fn ipxe_section_errors_name_line_and_key() {
    let e = parse(
        "[ipxe]\nbinaries = [\"a/b.efi\", \"x.efi\", \"x.efi\"]\nunknown = \"nope\"\nretries = 0\nbinaries_dir = \"\"\n",
    )
    .unwrap_err();
    let keys: Vec<(&str, usize)> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("ipxe.binaries[0]", 2)), "{e}");
    assert!(keys.contains(&("ipxe.binaries[2]", 2)), "{e}");
    assert!(keys.contains(&("ipxe.unknown", 3)), "{e}");
    assert!(keys.contains(&("ipxe.retries", 4)), "{e}");
    assert!(keys.contains(&("ipxe.binaries_dir", 5)), "{e}");
    assert!(
        e.to_string()
            .contains("test.toml:3: ipxe.unknown: \"nope\": expected \"menu\", \"ignore\" or a profile name"),
        "{e}"
    );
    let e = parse("[ipxe]\nbinary_dir = \"/x\"\n").unwrap_err();
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("binary_dir", 2), "{e}");
}

#[test]
fn cmdline_placeholders_are_checked_at_load() {
    let ok = parse(
        "[profiles.a]\nkernel = \"k\"\ncmdline = \"h={hostname} ip={ip} m={mac} ${net0/ip} {{literal}} s={server_url}\"\n",
    );
    assert!(ok.is_ok(), "{}", ok.unwrap_err());
    let e =
        parse("[profiles.a]\nkernel = \"k\"\n\ncmdline = \"console=ttyS0 host={hostnme}\"\n").unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("profiles.a.cmdline", 4), "{e}");
    assert!(e.0[0].message.contains("unknown placeholder {hostnme}"), "{e}");
    assert!(e.0[0].message.contains("{hostname}"), "the message lists the known ones: {e}");
    let e = parse("[profiles.a]\nkernel = \"k\"\ncmdline = \"a {ip\"\n").unwrap_err();
    assert!(e.0[0].message.contains("unterminated"), "{e}");
    let e = parse("[profiles.a]\nkernel = \"k\"\ncmdline = \"a\\nexit\"\n").unwrap_err();
    assert!(e.0[0].message.contains("control characters"), "{e}");
}

#[test]
fn inventory_values_that_reach_scripts_are_checked() {
    let e = parse(
        r#"
[profiles."bad name"]
kernel = "k"
[profiles.p]
kernel = "nixos/../etc/passwd"
initrd = ["ok/initrd", "has space"]
[nodes."52:54:00:00:00:01"]
profile = "p"
hostname = "node_01"
role = "a b"
uuid = "not-a-uuid"
"#,
    )
    .unwrap_err();
    let keys: Vec<(&str, usize)> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("profiles.bad name", 2)), "{e}");
    assert!(keys.contains(&("profiles.p.kernel", 5)), "{e}");
    assert!(keys.contains(&("profiles.p.initrd[1]", 6)), "{e}");
    assert!(keys.contains(&("nodes.\"52:54:00:00:00:01\".hostname", 9)), "{e}");
    assert!(keys.contains(&("nodes.\"52:54:00:00:00:01\".role", 10)), "{e}");
    assert!(keys.contains(&("nodes.\"52:54:00:00:00:01\".uuid", 11)), "{e}");
    assert!(is_hostname("node01.prov.example.com") && !is_hostname("-x") && !is_hostname("a..b"));
    assert!(is_uuid("4C4C4544-0000-1000-8000-000000000001") && !is_uuid("4c4c4544000010008000000000000001"));
}

#[test]
fn boot_paths_take_only_word_placeholders() {
    assert!(
        parse("[profiles.a]\nkernel = \"nixos/{arch}/bzImage\"\ninitrd = \"{platform}/{profile}/initrd\"\n")
            .is_ok()
    );
    let e = parse("[profiles.a]\nkernel = \"nodes/{hostname}/bzImage\"\n").unwrap_err();
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("profiles.a.kernel", 2), "{e}");
    assert!(e.0[0].message.contains("{hostname} cannot be used in a path"), "{e}");
    let e = parse("[profiles.a]\nkernel = \"k\"\ninitrd = [\"ok\", \"x/{arh}/i\"]\n").unwrap_err();
    assert_eq!(e.0[0].key, "profiles.a.initrd[1]", "{e}");
    assert!(e.0[0].message.contains("unknown placeholder {arh}"), "{e}");
    assert!(parse("[profiles.a]\nkernel = \"${x}/k\"\n").is_err(), "iPXE settings are not for paths");
}

#[test]
fn further_pools_are_parsed_and_checked() {
    let base = r#"
[dhcp]
mode = "server"
subnet = "10.0.100.0"
netmask = "255.255.255.0"
range = { start = "10.0.100.100", end = "10.0.100.200" }
domain_name_servers = ["10.0.100.1"]
"#;
    let good = format!(
        "{base}[[dhcp.pools]]\nsubnet = \"10.0.101.0\"\nnetmask = \"255.255.255.0\"\n\
         range = {{ start = \"10.0.101.10\", end = \"10.0.101.20\" }}\nrouter = \"10.0.101.1\"\n\
         [nodes.\"52:54:00:12:34:56\"]\nip_address = \"10.0.101.5\"\n"
    );
    let c = parse(&good).unwrap();
    let p = &c.dhcp.pools[0];
    assert_eq!(
        (p.subnet, p.router, p.domain_name_servers.clone()),
        (Ipv4Addr::new(10, 0, 101, 0), Some(Ipv4Addr::new(10, 0, 101, 1)), None)
    );
    assert!(c.dhcp.covers(Ipv4Addr::new(10, 0, 101, 5)) && !c.dhcp.covers(Ipv4Addr::new(10, 0, 102, 5)));
    let pc = c.dhcp.for_pool(p);
    assert_eq!(
        (pc.subnet, pc.range, pc.domain_name_servers.clone()),
        (Some(p.subnet), Some(p.range), vec![Ipv4Addr::new(10, 0, 100, 1)])
    );
    assert_eq!(pc.lease_time, c.dhcp.lease_time);

    // Overlapping the main subnet (line 9), a range outside the pool (line 15), a broken mask,
    // an address in no subnet at all, an unknown field.
    let bad = format!(
        "{base}[[dhcp.pools]]\nsubnet = \"10.0.100.128\"\nnetmask = \"255.255.255.128\"\n\
         range = {{ start = \"10.0.100.130\", end = \"10.0.100.140\" }}\n\
         [[dhcp.pools]]\nsubnet = \"10.0.102.0\"\nnetmask = \"255.255.255.0\"\n\
         range = {{ start = \"10.0.102.10\", end = \"10.0.103.20\" }}\n\
         [[dhcp.pools]]\nsubnet = \"10.0.104.0\"\nnetmask = \"255.0.255.0\"\n\
         range = {{ start = \"10.0.104.10\", end = \"10.0.104.20\" }}\n\
         [nodes.\"52:54:00:12:34:56\"]\nip_address = \"10.0.105.5\"\n"
    );
    let e = parse(&bad).unwrap_err();
    let keys: Vec<(&str, usize)> = e.0.iter().map(|e| (e.key.as_str(), e.line)).collect();
    assert!(keys.contains(&("dhcp.pools[0].subnet", 9)), "{e}");
    assert!(keys.contains(&("dhcp.pools[1].range.end", 15)), "{e}");
    assert!(keys.contains(&("dhcp.pools[2].netmask", 18)), "{e}");
    assert!(keys.iter().any(|(k, _)| k.ends_with("ip_address")), "{e}");
    assert!(e.to_string().contains("overlaps 10.0.100.0/255.255.255.0"), "{e}");
    let e = parse(&format!("{base}[[dhcp.pools]]\nsubnet = \"10.0.101.0\"\nnetmask = \"255.255.255.0\"\nrange = {{ start = \"10.0.101.1\", end = \"10.0.101.2\" }}\nroutr = \"x\"\n")).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}
