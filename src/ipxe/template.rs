//! Kernel command-line templates: `console=ttyS0 hostname={hostname} ip={ip}`.
//!
//! Placeholders are `{name}`, filled from the machine's inventory entry when its script is
//! rendered. iPXE's own `${setting}` is left alone (a `{` right after `$` is not ours), so
//! `ip=${net0/ip}` still reaches iPXE, which expands it at boot time. `{{` and `}}` are a
//! literal `{` and `}`. A template is parsed once (at config load, where an unknown placeholder is
//! an error naming the file, line and key) into segments; rendering appends to a caller buffer.

use std::io::Write as _;
use std::net::Ipv4Addr;

/// The values a placeholder can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The configured hostname, else the one DHCP gave iPXE (`${hostname}`), else empty.
    Hostname,
    /// The configured `ip_address`, else the address the script request came from.
    Ip,
    /// `52:54:00:12:34:56`.
    Mac,
    /// SMBIOS UUID: configured, else the one iPXE reported, else empty.
    Uuid,
    /// The server address the machine reached us on (no port).
    Server,
    /// `http://<server>:<port>`: the base of every URL in the script.
    ServerUrl,
    /// The profile being booted.
    Profile,
    /// The machine's role (defaults to the profile name).
    Role,
    /// iPXE's `${buildarch}`: `i386`, `x86_64`, `arm64`, ...
    Arch,
    /// iPXE's `${platform}`: `pcbios` or `efi`.
    Platform,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Hostname,
        Field::Ip,
        Field::Mac,
        Field::Uuid,
        Field::Server,
        Field::ServerUrl,
        Field::Profile,
        Field::Role,
        Field::Arch,
        Field::Platform,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Hostname => "hostname",
            Field::Ip => "ip",
            Field::Mac => "mac",
            Field::Uuid => "uuid",
            Field::Server => "server",
            Field::ServerUrl => "server_url",
            Field::Profile => "profile",
            Field::Role => "role",
            Field::Arch => "arch",
            Field::Platform => "platform",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == s)
    }

    /// `{hostname} {ip} ...`, for error messages and docs.
    pub fn list() -> String {
        Field::ALL.iter().map(|f| format!("{{{}}}", f.name())).collect::<Vec<_>>().join(" ")
    }
}

/// The placeholders a kernel/initrd path may use: their values are single words (never `/`), so a
/// path cannot be steered outside what the operator wrote.
pub const PATH_FIELDS: [Field; 3] = [Field::Arch, Field::Platform, Field::Profile];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// `text[start..end]` verbatim.
    Literal(usize, usize),
    Field(Field),
}

/// Why a template does not parse. `offset` is the byte offset of the offending `{` in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    Unknown {
        offset: usize,
        name: String,
    },
    Unterminated {
        offset: usize,
    },
    /// A control character (newline, tab...) would break the iPXE script line.
    ControlChar {
        offset: usize,
    },
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Unknown { name, .. } => {
                write!(
                    f,
                    "unknown placeholder {{{name}}}; known: {} (iPXE's ${{...}} is kept as is)",
                    Field::list()
                )
            }
            TemplateError::Unterminated { .. } => {
                write!(f, "unterminated placeholder: '{{' without '}}' (write {{{{ for a literal brace)")
            }
            TemplateError::ControlChar { .. } => write!(f, "control characters are not allowed"),
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    text: String,
    segments: Vec<Segment>,
}

/// The values a template is rendered with. Absent values render as nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    pub hostname: &'a str,
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    pub uuid: &'a str,
    /// Host part of the base URL (`10.0.100.10`).
    pub server: &'a str,
    /// `http://10.0.100.10:8080`.
    pub server_url: &'a str,
    pub profile: &'a str,
    pub role: &'a str,
    pub arch: &'a str,
    pub platform: &'a str,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let b = text.as_bytes();
        if let Some(offset) = b.iter().position(|c| c.is_ascii_control()) {
            return Err(TemplateError::ControlChar { offset });
        }
        let mut segments = Vec::new();
        let mut lit = 0; // start of the pending literal
        let mut i = 0;
        let push_lit = |segments: &mut Vec<Segment>, s: usize, e: usize| {
            if e > s {
                segments.push(Segment::Literal(s, e));
            }
        };
        while i < b.len() {
            match b[i] {
                b'{' if i > 0 && b[i - 1] == b'$' => {
                    // iPXE's ${...}: copy through to the matching '}' (or the end).
                    i = b[i..].iter().position(|&c| c == b'}').map_or(b.len(), |p| i + p + 1);
                }
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    push_lit(&mut segments, lit, i + 1);
                    i += 2;
                    lit = i;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    push_lit(&mut segments, lit, i + 1);
                    i += 2;
                    lit = i;
                }
                b'{' => {
                    let Some(len) = b[i + 1..].iter().position(|&c| c == b'}') else {
                        return Err(TemplateError::Unterminated { offset: i });
                    };
                    let name = &text[i + 1..i + 1 + len];
                    let Some(field) = Field::parse(name.trim()) else {
                        return Err(TemplateError::Unknown { offset: i, name: name.to_string() });
                    };
                    push_lit(&mut segments, lit, i);
                    segments.push(Segment::Field(field));
                    i += len + 2;
                    lit = i;
                }
                _ => i += 1,
            }
        }
        push_lit(&mut segments, lit, b.len());
        Ok(Template { text: text.to_string(), segments })
    }

    /// The literal text with every placeholder replaced by its name (`nixos/{arch}/k` ->
    /// `nixos/arch/k`): for validating the rest of a path.
    pub fn plain(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match *s {
                Segment::Literal(a, e) => out.push_str(&self.text[a..e]),
                Segment::Field(f) => out.push_str(f.name()),
            }
        }
        out
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The placeholders used, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(f) => Some(*f),
            Segment::Literal(..) => None,
        })
    }

    /// Appends the rendered template to `out` (which keeps its capacity between requests).
    pub fn render(&self, v: &Values<'_>, out: &mut Vec<u8>) {
        for s in &self.segments {
            match *s {
                Segment::Literal(a, e) => out.extend_from_slice(&self.text.as_bytes()[a..e]),
                Segment::Field(f) => match f {
                    Field::Hostname => out.extend_from_slice(v.hostname.as_bytes()),
                    Field::Ip => {
                        if let Some(ip) = v.ip {
                            let _ = write!(out, "{ip}");
                        }
                    }
                    Field::Mac => {
                        if let Some(m) = v.mac {
                            write_mac(out, m, b':');
                        }
                    }
                    Field::Uuid => out.extend_from_slice(v.uuid.as_bytes()),
                    Field::Server => out.extend_from_slice(v.server.as_bytes()),
                    Field::ServerUrl => out.extend_from_slice(v.server_url.as_bytes()),
                    Field::Profile => out.extend_from_slice(v.profile.as_bytes()),
                    Field::Role => out.extend_from_slice(v.role.as_bytes()),
                    Field::Arch => out.extend_from_slice(v.arch.as_bytes()),
                    Field::Platform => out.extend_from_slice(v.platform.as_bytes()),
                },
            }
        }
    }
}

/// Writes `52:54:00:12:34:56` (with `sep` between the pairs).
pub fn write_mac(out: &mut Vec<u8>, mac: [u8; 6], sep: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, v: &Values<'_>) -> String {
        let mut out = Vec::new();
        Template::parse(t).unwrap().render(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn values() -> Values<'static> {
        Values {
            hostname: "node01",
            ip: Some(Ipv4Addr::new(10, 0, 100, 50)),
            mac: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            uuid: "4c4c4544-0000-1000-8000-000000000001",
            server: "10.0.100.10",
            server_url: "http://10.0.100.10:8080",
            profile: "control-plane",
            role: "control-plane",
            arch: "x86_64",
            platform: "efi",
        }
    }

    #[test]
    fn every_field_renders() {
        let v = values();
        assert_eq!(
            render(
                "h={hostname} ip={ip} mac={mac} u={uuid} s={server} url={server_url} p={profile} r={role} a={arch} pl={platform}",
                &v
            ),
            "h=node01 ip=10.0.100.50 mac=52:54:00:12:34:56 u=4c4c4544-0000-1000-8000-000000000001 \
             s=10.0.100.10 url=http://10.0.100.10:8080 p=control-plane r=control-plane a=x86_64 pl=efi"
        );
        assert_eq!(render("{ hostname }", &v), "node01", "spaces inside braces are trimmed");
    }

    #[test]
    fn ipxe_settings_and_escapes_pass_through() {
        let v = values();
        assert_eq!(render("ip=${net0/ip} host={hostname}", &v), "ip=${net0/ip} host=node01");
        assert_eq!(render("${unknown-to-us}", &v), "${unknown-to-us}");
        assert_eq!(render("a={{b}} c", &v), "a={b} c");
        assert_eq!(render("lone } brace", &v), "lone } brace");
        assert_eq!(render("", &v), "");
        assert_eq!(render("$", &v), "$");
        assert_eq!(render("${", &v), "${", "unterminated iPXE setting is iPXE's problem, copied");
    }

    #[test]
    fn absent_values_render_empty() {
        let v = Values::default();
        assert_eq!(render("[{ip}][{mac}][{hostname}]", &v), "[][][]");
    }

    #[test]
    fn errors_point_at_the_placeholder() {
        assert_eq!(
            Template::parse("a {hostnme} b"),
            Err(TemplateError::Unknown { offset: 2, name: "hostnme".into() })
        );
        assert_eq!(Template::parse("a {ip"), Err(TemplateError::Unterminated { offset: 2 }));
        assert_eq!(Template::parse("a\nb"), Err(TemplateError::ControlChar { offset: 1 }));
        let msg = Template::parse("{x}").unwrap_err().to_string();
        assert!(msg.contains("{x}") && msg.contains("{hostname}"), "{msg}");
    }

    #[test]
    fn fields_and_mac_forms() {
        let t = Template::parse("{mac} {ip} ${x} {{mac}}").unwrap();
        assert_eq!(t.fields().collect::<Vec<_>>(), [Field::Mac, Field::Ip]);
        let mut out = Vec::new();
        write_mac(&mut out, [0xab, 0, 1, 2, 3, 0xff], b'-');
        assert_eq!(out, b"ab-00-01-02-03-ff");
    }
}
