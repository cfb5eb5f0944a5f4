//! Not a check: the HTTP service as a standalone server for `benches/http_compare.sh` (until
//! `ferroboot serve` wires HTTP in). Ignored unless asked for by name.

use std::path::PathBuf;
use std::rc::Rc;

use ferroboot::http::{HttpLimits, HttpService};
use ferroboot::net::EventLoop;
use ferroboot::status::Status;

#[test]
#[ignore = "run by benches/http_compare.sh"]
fn serve_for_benchmark() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let root = PathBuf::from(var("FERROBOOT_BENCH_ROOT"));
    let port: u16 = var("FERROBOOT_BENCH_PORT").parse().unwrap();
    let stop_file = PathBuf::from(var("FERROBOOT_BENCH_STOP"));
    let status = Rc::new(Status::default());
    let svc = HttpService::new(([127, 0, 0, 1], port).into(), root, HttpLimits::default(), status).unwrap();
    let mut ev = EventLoop::new().unwrap();
    ev.add(Box::new(svc)).unwrap();
    ev.run(false, || stop_file.exists()).unwrap();
}
