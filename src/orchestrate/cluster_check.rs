//! `ferroboot cluster check`: the §6 checks over HTTPS. URLs use the names the runbook's curls use
//! (`https://node01.example.com:2379/health`) so the node certificates are verified against them,
//! but the names are resolved from the inventory (each node's cluster address), so the check works
//! where DNS does not know the cluster yet (the VM deployment had to add /etc/hosts entries).

use super::health::{self, CheckResult, Endpoint, Replies, Reply, Service};
use crate::config::cluster::ClusterSettings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest body read from a health endpoint.
const MAX_BODY: u64 = 256 * 1024;

/// Resolves the cluster's names to inventory addresses, anything else through the system.
struct InventoryResolver(BTreeMap<String, Ipv4Addr>);

impl ureq::Resolver for InventoryResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        if let Some((host, port)) = netloc.rsplit_once(':') {
            if let (Some(ip), Ok(port)) = (self.0.get(&host.to_ascii_lowercase()), port.parse::<u16>()) {
                return Ok(vec![SocketAddr::new((*ip).into(), port)]);
            }
        }
        netloc.to_socket_addrs().map(|a| a.collect())
    }
}

/// Accepts any certificate (`--insecure`, like curl -k); signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS settings trusting only the cluster CA (PEM, one or more certificates), or nothing checked.
pub fn tls_config(ca: Option<&Path>, insecure: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let ca = ca.ok_or(
            "no cluster CA: pass --ca FILE or set [cluster] ca (or --insecure to skip verification)",
        )?;
        let mut roots = rustls::RootCertStore::empty();
        let iter = CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in iter {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: no certificate in it", ca.display()));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// A node to check: its id, the name in URLs, its address.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub host: String,
    pub address: Ipv4Addr,
    /// Chainfire and FlareDB everywhere; IAM on control-plane and all-in-one nodes.
    pub services: Vec<Service>,
}

pub fn targets(c: &ClusterSettings, only: &[String]) -> Result<Vec<Target>, String> {
    for n in only {
        if c.member(n).is_none() {
            return Err(format!("no cluster node named {n:?} (cluster nodes: {})", names(c)));
        }
    }
    Ok(c.members
        .iter()
        .filter(|m| only.is_empty() || only.contains(&m.hostname))
        .map(|m| Target {
            id: m.hostname.clone(),
            host: c.fqdn(&m.hostname),
            address: m.address,
            services: Service::ALL.into_iter().filter(|s| *s != Service::Iam || m.role != "worker").collect(),
        })
        .collect())
}

fn names(c: &ClusterSettings) -> String {
    c.members.iter().map(|m| m.hostname.as_str()).collect::<Vec<_>>().join(", ")
}

pub struct Checker {
    agent: ureq::Agent,
    timeout: Duration,
    ports: BTreeMap<Service, u16>,
}

impl Checker {
    pub fn new(c: &ClusterSettings, tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Checker {
        let names = c.members.iter().map(|m| (c.fqdn(&m.hostname).to_ascii_lowercase(), m.address)).collect();
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .resolver(InventoryResolver(names))
            .timeout(timeout)
            .redirects(0)
            .build();
        let ports = BTreeMap::from([
            (Service::Chainfire, c.ports.chainfire),
            (Service::Flaredb, c.ports.flaredb),
            (Service::Iam, c.ports.iam),
        ]);
        Checker { agent, timeout, ports }
    }

    fn fetch(&self, url: &str) -> Reply {
        let read = |resp: ureq::Response| {
            let status = resp.status();
            let mut body = Vec::new();
            match resp.into_reader().take(MAX_BODY).read_to_end(&mut body) {
                Ok(_) => Reply::Http { status, body },
                Err(e) => Reply::Failed(format!("reading the answer: {e}")),
            }
        };
        match self.agent.get(url).call() {
            Ok(resp) => read(resp),
            Err(ureq::Error::Status(_, resp)) => read(resp),
            Err(ureq::Error::Transport(t)) => Reply::Failed(transport_message(&t, self.timeout)),
        }
    }

    /// One round: every endpoint of every target, nodes in parallel.
    pub fn round(&self, targets: &[Target]) -> Replies {
        let mut out = Replies::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| {
                    s.spawn(move || {
                        let mut got = Vec::new();
                        for &service in &t.services {
                            let port = self.ports[&service];
                            let mut eps = vec![Endpoint::Health];
                            if service.has_members() {
                                eps.push(Endpoint::Members);
                            }
                            for ep in eps {
                                let url = format!("https://{}:{port}{}", t.host, ep.path());
                                got.push(((t.id.clone(), service, ep), self.fetch(&url)));
                            }
                        }
                        got
                    })
                })
                .collect();
            for h in handles {
                out.extend(h.join().expect("check thread"));
            }
        });
        out
    }
}

fn transport_message(t: &ureq::Transport, timeout: Duration) -> String {
    // ureq's Display repeats the URL; keep the kind and the innermost cause.
    let mut msg = t.message().map(str::to_string).unwrap_or_else(|| t.kind().to_string());
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(t);
    let mut last = None;
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) {
                return format!("{msg}: timed out after {}", super::plan::fmt_duration(timeout));
            }
        }
        last = Some(e.to_string());
        src = e.source();
    }
    if let Some(l) = last {
        if !msg.contains(&l) {
            msg = format!("{msg}: {l}");
        }
    }
    msg
}

/// Runs rounds until every check passes or `wait` is over; returns the last round's results.
pub fn check_until(
    checker: &Checker,
    targets: &[Target],
    expected: &[&str],
    wait: Option<Duration>,
    mut on_retry: impl FnMut(usize, usize, Duration),
) -> Vec<CheckResult> {
    let start = Instant::now();
    let ids: Vec<&str> = targets.iter().map(|t| t.id.as_str()).collect();
    loop {
        let round_start = Instant::now();
        let results = health::evaluate(&ids, expected, &checker.round(targets));
        let failed = results.iter().filter(|r| !r.ok).count();
        let Some(wait) = wait else { return results };
        let elapsed = start.elapsed();
        if failed == 0 || elapsed >= wait {
            return results;
        }
        let left = wait - elapsed;
        on_retry(failed, results.len(), left);
        // A round every 5 s at most, never past the deadline.
        let pause = Duration::from_secs(5).saturating_sub(round_start.elapsed()).min(left);
        std::thread::sleep(pause);
    }
}
