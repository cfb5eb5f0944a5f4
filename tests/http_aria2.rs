//! Large-file proof: a 500 MiB random file fetched by `aria2c -x 16` (16 segmented range
//! downloads on parallel connections) and by several concurrent curls, all matching sha256.

mod http_support;

use std::process::Command;
use std::time::Instant;

use ferroboot::http::HttpLimits;
use http_support::{need, sha256, start, write_random_file};

const SIZE: u64 = 500 << 20;

#[test]
fn aria2c_segmented_and_concurrent_downloads_of_500_mib() {
    if !need("aria2c", "aria2") || !need("curl", "curl") || !need("sha256sum", "coreutils") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let file = root.join("big.img");
    write_random_file(&file, SIZE);
    let want = sha256(&file);
    let s = start(&root, HttpLimits::default());
    let url = s.url("/boot/big.img");

    let t0 = Instant::now();
    let o = Command::new("aria2c")
        .args(["-q", "-x", "16", "-s", "16", "-k", "1M", "--allow-overwrite=true", "--file-allocation=none"])
        .args(["-d", dir.path().to_str().unwrap(), "-o", "aria2.out", &url])
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "aria2c: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    println!("aria2c -x 16: {:.0} MB/s", SIZE as f64 / 1e6 / secs);
    assert_eq!(sha256(&dir.path().join("aria2.out")), want);
    std::fs::remove_file(dir.path().join("aria2.out")).unwrap();

    // Four whole-file downloads at once, hashed as they stream.
    let t0 = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new("sh")
                .arg("-c")
                .arg(format!("curl -sS --fail '{url}' | sha256sum"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stdout).split_whitespace().next(), Some(want.as_str()));
    }
    println!("4 concurrent curls: {:.0} MB/s total", 4.0 * SIZE as f64 / 1e6 / t0.elapsed().as_secs_f64());
}
