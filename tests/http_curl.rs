//! The HTTP service against real clients: curl (runbook commands, ranges, conditionals,
//! keep-alive reuse) and wget.

mod http_support;

use std::process::Output;

use ferroboot::http::HttpLimits;
use http_support::{Server, curl, need, run, start, tree};

fn text(o: &Output) -> String {
    assert!(o.status.success(), "client failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `curl -i` output split into (status, lowercased head, body).
fn with_head(o: &Output) -> (u16, String, Vec<u8>) {
    assert!(o.status.success(), "curl failed: {}", String::from_utf8_lossy(&o.stderr));
    let end = o.stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&o.stdout[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, o.stdout[end..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':'))).map(str::trim)
}

fn kernel() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

fn server() -> (http_support::Tree, Server) {
    let t = tree();
    let s = start(&t.root, HttpLimits::default());
    (t, s)
}

#[test]
fn runbook_commands() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let port = s.addr.port();
    let health = text(&curl(&[&format!("http://localhost:{port}/health")]));
    assert_eq!(
        health,
        r#"{"status":"healthy","services":{"dhcp":"running","tftp":"running","http":"running"}}"#
    );
    let o = curl(&["-I", &format!("http://localhost:{port}/boot/nixos/control-plane/bzImage")]);
    let (status, head, _) = with_head(&o);
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-length"), Some("100000"));
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    assert!(header(&head, "etag").is_some_and(|e| e.starts_with('"')));
    assert!(header(&head, "last-modified").is_some_and(|d| d.ends_with("gmt")));
    // And the runbook script URL shape: a GET with its body.
    let o = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &s.url("/boot/ipxe/boot.ipxe"),
    ]);
    assert_eq!(text(&o), "200 24");
}

#[test]
fn health_reports_failures_with_503() {
    if !need("curl", "curl") {
        return;
    }
    let t = tree();
    let s = http_support::start_with(&t.root, HttpLimits::default(), |st| {
        st.tftp.set(ferroboot::status::ServiceState::Failed);
    });
    let o = curl(&["-i", &s.url("/health")]);
    let (status, head, body) = with_head(&o);
    assert_eq!(status, 503);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"status":"unhealthy","services":{"dhcp":"disabled","tftp":"failed","http":"running"}}"#
    );
    let metrics = text(&curl(&[&s.url("/metrics")]));
    assert!(metrics.contains("ferroboot_service_up{service=\"tftp\",state=\"failed\"} 0"), "{metrics}");
    assert!(metrics.contains("ferroboot_packets_received_total{protocol=\"http\"} 2"), "{metrics}");
}

#[test]
fn full_get_and_content_types() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let o = curl(&["-i", &s.url("/boot/nixos/control-plane/bzImage")]);
    let (status, head, body) = with_head(&o);
    assert_eq!(status, 200);
    assert_eq!(body, kernel());
    assert_eq!(header(&head, "content-type"), Some("application/octet-stream"));
    let (_, head, body) = with_head(&curl(&["-i", &s.url("/boot/ipxe/snp.efi")]));
    assert_eq!(header(&head, "content-type"), Some("application/efi"));
    assert_eq!(body, b"MZ fake efi");
    let (_, head, _) = with_head(&curl(&["-i", &s.url("/boot/ipxe/boot.ipxe")]));
    assert_eq!(header(&head, "content-type"), Some("text/plain; charset=utf-8"));
    let (status, head, body) = with_head(&curl(&["-i", &s.url("/boot/empty")]));
    assert_eq!((status, header(&head, "content-length"), body.len()), (200, Some("0"), 0));
    // Symlinks inside the tree are followed; a double slash is served, not redirected.
    let (status, _, body) = with_head(&curl(&["-i", &s.url("/boot/kernel-link")]));
    assert_eq!((status, body.len()), (200, 100_000));
    let (status, _, body) =
        with_head(&curl(&["-i", "--path-as-is", &s.url("/boot//nixos//control-plane/bzImage")]));
    assert_eq!((status, body.len()), (200, 100_000));
}

#[test]
fn every_kind_of_range() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let k = kernel();
    let url = s.url("/boot/nixos/control-plane/bzImage");
    for (spec, from, to) in
        [("0-99", 0, 99), ("-100", 99_900, 99_999), ("99990-", 99_990, 99_999), ("5-5", 5, 5)]
    {
        let (status, head, body) = with_head(&curl(&["-i", "-r", spec, &url]));
        assert_eq!(status, 206, "{spec}");
        assert_eq!(body, &k[from..=to], "{spec}");
        assert_eq!(header(&head, "content-range"), Some(format!("bytes {from}-{to}/100000").as_str()));
        assert_eq!(header(&head, "content-length"), Some((to - from + 1).to_string().as_str()));
    }
    // Suffix longer than the file: the whole file as a 206.
    let (status, head, body) = with_head(&curl(&["-i", "-H", "Range: bytes=-200000", &url]));
    assert_eq!((status, body.len()), (206, 100_000));
    assert_eq!(header(&head, "content-range"), Some("bytes 0-99999/100000"));
    // Several ranges: multipart/byteranges whose Content-Length is exact.
    let (status, head, body) = with_head(&curl(&["-i", "-r", "0-1,10-12,-2", &url]));
    assert_eq!(status, 206);
    let ct = header(&head, "content-type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").expect(ct).to_string();
    assert_eq!(header(&head, "content-length"), Some(body.len().to_string().as_str()));
    let body_s = String::from_utf8_lossy(&body).to_ascii_lowercase();
    assert_eq!(body_s.matches(&format!("--{boundary}\r\n")).count(), 3);
    assert!(body_s.ends_with(&format!("\r\n--{boundary}--\r\n")));
    for (r, bytes) in
        [("0-1/100000", &k[0..2]), ("10-12/100000", &k[10..13]), ("99998-99999/100000", &k[99_998..])]
    {
        let marker = format!("content-range: bytes {r}\r\n\r\n");
        let at = body_s.find(&marker).unwrap_or_else(|| panic!("{marker:?} in {body_s:?}")) + marker.len();
        assert_eq!(&body[at..at + bytes.len()], bytes, "{r}");
    }
    // Unsatisfiable: 416 with the length; invalid: ignored, whole file.
    let (status, head, body) = with_head(&curl(&["-i", "-r", "100000-", &url]));
    assert_eq!((status, body.len()), (416, 0));
    assert_eq!(header(&head, "content-range"), Some("bytes */100000"));
    assert_eq!(header(&head, "content-length"), Some("0"));
    let (status, _, body) = with_head(&curl(&["-i", "-H", "Range: bytes=9-1", &url]));
    assert_eq!((status, body.len()), (200, 100_000));
    // HEAD with a range: the 206 head only.
    let (status, head, body) = with_head(&curl(&["-I", "-r", "0-9", &url]));
    assert_eq!((status, header(&head, "content-length"), body.len()), (206, Some("10"), 0));
}

#[test]
fn conditionals() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let url = s.url("/boot/nixos/control-plane/bzImage");
    let (_, head, _) = with_head(&curl(&["-I", &url]));
    let etag_lc = header(&head, "etag").unwrap().to_string();
    let lm_lc = header(&head, "last-modified").unwrap().to_string();
    // Recover the original case (curl -i output was lowercased above).
    let raw = text(&curl(&["-sI", &url]));
    let find = |name: &str| {
        raw.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(name))
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
            .unwrap()
    };
    let (etag, lm) = (find("etag"), find("last-modified"));
    assert_eq!((etag.to_ascii_lowercase(), lm.to_ascii_lowercase()), (etag_lc, lm_lc));
    // If-Range with the current ETag / date: the range; with another: the whole file.
    let (status, _, body) = with_head(&curl(&["-i", "-r", "0-9", "-H", &format!("If-Range: {etag}"), &url]));
    assert_eq!((status, body.len()), (206, 10));
    let (status, _, body) = with_head(&curl(&["-i", "-r", "0-9", "-H", "If-Range: \"other\"", &url]));
    assert_eq!((status, body.len()), (200, 100_000));
    let (status, _, body) = with_head(&curl(&["-i", "-r", "0-9", "-H", &format!("If-Range: {lm}"), &url]));
    assert_eq!((status, body.len()), (206, 10));
    let (status, _, body) =
        with_head(&curl(&["-i", "-r", "0-9", "-H", "If-Range: Thu, 01 Jan 1970 00:00:00 GMT", &url]));
    assert_eq!((status, body.len()), (200, 100_000));
    // 304 from If-None-Match (also in a list and weak) and from If-Modified-Since (curl -z).
    for inm in [etag.clone(), format!("\"x\", W/{etag}"), "*".to_string()] {
        let (status, head, body) = with_head(&curl(&["-i", "-H", &format!("If-None-Match: {inm}"), &url]));
        assert_eq!((status, body.len()), (304, 0), "{inm}");
        assert_eq!(header(&head, "content-length"), Some("100000"));
    }
    let (status, _, body) = with_head(&curl(&["-i", "-H", "If-None-Match: \"other\"", &url]));
    assert_eq!((status, body.len()), (200, 100_000));
    let (status, _, _) = with_head(&curl(&["-i", "-z", &lm, &url]));
    assert_eq!(status, 304);
    let (status, _, body) = with_head(&curl(&["-i", "-z", "Thu, 01 Jan 1970 00:00:00 GMT", &url]));
    assert_eq!((status, body.len()), (200, 100_000));
}

#[test]
fn keep_alive_reuses_one_connection() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let o = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{num_connects}\n",
        &s.url("/boot/nixos/control-plane/bzImage"),
        &s.url("/boot/nixos/control-plane/initrd"),
    ]);
    assert_eq!(text(&o), "200:1\n200:0\n");
    // The same over HTTP/1.0 with keep-alive asked for explicitly.
    let o = curl(&[
        "-0",
        "-H",
        "Connection: keep-alive",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{num_connects}\n",
        &s.url("/health"),
        &s.url("/boot/ipxe/boot.ipxe"),
    ]);
    assert_eq!(text(&o), "200:1\n200:0\n");
}

#[test]
fn refusals_never_redirect() {
    if !need("curl", "curl") {
        return;
    }
    let (_t, s) = server();
    let code = |args: &[&str]| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(args);
        text(&curl(&a))
    };
    assert_eq!(code(&[&s.url("/boot/missing")]), "404");
    assert_eq!(code(&[&s.url("/boot/nixos")]), "404", "directory");
    assert_eq!(code(&[&s.url("/boot/nixos/")]), "404", "directory with slash");
    assert_eq!(code(&[&s.url("/boot")]), "404", "no redirect to /boot/");
    assert_eq!(code(&[&s.url("/boot/escape")]), "404", "symlink out of the root");
    assert_eq!(code(&["--path-as-is", &s.url("/boot/../secret")]), "400");
    assert_eq!(code(&["--path-as-is", &s.url("/boot/%2e%2e/secret")]), "400");
    assert_eq!(code(&[&s.url("/boot/a%00b")]), "400");
    assert_eq!(code(&[&s.url("/")]), "404");
    let (status, head, _) =
        with_head(&curl(&["-i", "-X", "POST", "-d", "x=1", &s.url("/boot/ipxe/boot.ipxe")]));
    assert_eq!(status, 405);
    assert_eq!(header(&head, "allow"), Some("get, head"));
    assert!(header(&head, "content-length").is_some());
    assert!(header(&head, "location").is_none());
}

#[test]
fn wget_downloads() {
    if !need("wget", "wget") {
        return;
    }
    let (t, s) = server();
    let out = t.dir.path().join("wget-out");
    let o = run("wget", &["-q", "-O", out.to_str().unwrap(), &s.url("/boot/nixos/control-plane/bzImage")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), kernel());
    // Resume (-c) sends a Range for the rest.
    std::fs::write(&out, &kernel()[..12_345]).unwrap();
    let o =
        run("wget", &["-q", "-c", "-O", out.to_str().unwrap(), &s.url("/boot/nixos/control-plane/bzImage")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), kernel());
}
