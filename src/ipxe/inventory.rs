//! The machine inventory as the script route uses it: nodes indexed by MAC, UUID and hostname,
//! and profiles prepared once at start-up (URL paths, initrd names, parsed cmdline templates),
//! so rendering a script only copies bytes.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use super::template::Template;
use crate::config::{Config, Node, UnknownMachines};

/// A profile ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    /// URL path of the kernel: `/boot/nixos/control-plane/bzImage` (may hold `{arch}`...).
    pub kernel: Template,
    /// `(image name, URL path)` per initrd, in order; names are unique within the profile (and
    /// fixed: a placeholder in the file name gives its name, `initrd-{arch}` is `initrd-arch`).
    pub initrds: Vec<(String, Template)>,
    pub cmdline: Template,
}

impl Prepared {
    /// Prepares a profile; `kernel` and `initrd` are paths below the root (`/boot/`).
    pub fn new(name: &str, kernel: &str, initrd: &[String], cmdline: &str) -> Result<Prepared, String> {
        let url = |p: &str| {
            Template::parse(&format!("/boot/{}", p.trim_start_matches('/')))
                .map_err(|e| format!("profile {name}: {p:?}: {e}"))
        };
        let mut initrds: Vec<(String, Template)> = Vec::new();
        for p in initrd {
            let plain = url(p)?.plain();
            let base = plain.rsplit('/').find(|s| !s.is_empty()).unwrap_or("initrd");
            let mut img = base.to_string();
            let mut k = 1;
            while initrds.iter().any(|(n, _)| *n == img) {
                k += 1;
                img = format!("{base}-{k}");
            }
            initrds.push((img, url(p)?));
        }
        let cmdline = Template::parse(cmdline).map_err(|e| format!("profile {name}: cmdline: {e}"))?;
        Ok(Prepared { name: name.to_string(), kernel: url(kernel)?, initrds, cmdline })
    }
}

/// Everything the script route knows.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub nodes: Vec<Node>,
    by_mac: HashMap<[u8; 6], usize>,
    by_uuid: HashMap<String, usize>,
    by_hostname: HashMap<String, usize>,
    pub profiles: BTreeMap<String, Prepared>,
    pub unknown: UnknownMachines,
    /// Download attempts before a script gives up.
    pub retries: u8,
    /// Used for URLs when a request carries no `Host` header.
    pub server_address: Option<Ipv4Addr>,
    pub http_port: u16,
}

impl Inventory {
    pub fn from_config(c: &Config) -> Result<Inventory, String> {
        let mut profiles = BTreeMap::new();
        for (name, p) in &c.profiles {
            profiles.insert(name.clone(), Prepared::new(name, &p.kernel, &p.initrd, &p.cmdline)?);
        }
        let mut inv = Inventory {
            nodes: c.nodes.clone(),
            by_mac: HashMap::new(),
            by_uuid: HashMap::new(),
            by_hostname: HashMap::new(),
            profiles,
            unknown: c.ipxe.unknown.clone(),
            retries: c.ipxe.retries.max(1),
            server_address: c.server_address,
            http_port: c.http.port,
        };
        for (i, n) in inv.nodes.iter().enumerate() {
            inv.by_mac.insert(n.mac, i);
            if let Some(u) = &n.uuid {
                inv.by_uuid.entry(u.to_ascii_lowercase()).or_insert(i);
            }
            if let Some(h) = &n.hostname {
                inv.by_hostname.entry(h.to_ascii_lowercase()).or_insert(i);
            }
        }
        Ok(inv)
    }

    /// The inventory entry for a machine: by MAC, else UUID, else hostname (each as iPXE reported
    /// it; `uuid` lowercase, `hostname` compared case-insensitively).
    pub fn find(&self, mac: Option<[u8; 6]>, uuid: &str, hostname: &str) -> Option<&Node> {
        let i = mac
            .and_then(|m| self.by_mac.get(&m))
            .or_else(|| (!uuid.is_empty()).then(|| self.by_uuid.get(uuid)).flatten())
            .or_else(|| {
                if hostname.is_empty() {
                    return None;
                }
                // Hostnames are validated lowercase-insensitive; avoid allocating for the usual
                // already-lowercase case.
                if hostname.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.by_hostname.get(&hostname.to_ascii_lowercase())
                } else {
                    self.by_hostname.get(hostname)
                }
            })?;
        self.nodes.get(*i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lookups_by_mac_then_uuid_then_hostname() {
        let c = Config::from_toml(
            Path::new("t.toml"),
            r#"
[nodes."52:54:00:00:00:01"]
hostname = "Node01"
uuid = "4C4C4544-0000-1000-8000-000000000001"
profile = "p"
[nodes."52:54:00:00:00:02"]
hostname = "node02"
profile = "p"
[profiles.p]
kernel = "k"
initrd = ["a/initrd", "b/initrd", "c/other"]
"#,
        )
        .unwrap();
        let inv = Inventory::from_config(&c).unwrap();
        let mac2 = Some([0x52, 0x54, 0, 0, 0, 2]);
        assert_eq!(inv.find(mac2, "", "").unwrap().mac[5], 2);
        assert_eq!(
            inv.find(mac2, "4c4c4544-0000-1000-8000-000000000001", "").unwrap().mac[5],
            2,
            "MAC first"
        );
        assert_eq!(
            inv.find(Some([9; 6]), "4c4c4544-0000-1000-8000-000000000001", "node02").unwrap().mac[5],
            1
        );
        assert_eq!(inv.find(None, "", "NODE02").unwrap().mac[5], 2);
        assert_eq!(inv.find(None, "", "node01").unwrap().mac[5], 1);
        assert!(inv.find(Some([9; 6]), "", "nobody").is_none());
        assert!(inv.find(None, "", "").is_none());
        let p = &inv.profiles["p"];
        assert_eq!(p.kernel.as_str(), "/boot/k");
        let names: Vec<&str> = p.initrds.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["initrd", "initrd-2", "other"]);
        assert_eq!(p.initrds[1].1.as_str(), "/boot/b/initrd");
    }
}
