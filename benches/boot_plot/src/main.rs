//! boot_plot RESULTS.csv OUT.png "machine line": two panels against N (log scale): aggregate
//! TFTP and HTTP throughput, and time-to-booted (p50 and max), ferroboot vs dnsmasq + nginx.
//! The font is read at run time (FONT, default DejaVu Sans from fonts-dejavu-core).

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

struct Row {
    server: String,
    nodes: f64,
    tftp: f64,
    http: f64,
    p50_s: f64,
    max_s: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: boot_plot RESULTS.csv OUT.png [TITLE]".into());
    }
    let font = std::env::var("FONT").unwrap_or("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    let bytes: &'static [u8] =
        Box::leak(std::fs::read(&font).map_err(|e| format!("font {font}: {e}"))?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| format!("{font}: not a font"))?;

    let text = std::fs::read_to_string(&args[1])?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 9 {
            continue;
        }
        let num = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        rows.push(Row {
            server: f[0].to_string(),
            nodes: num(1),
            tftp: num(5),
            http: num(6),
            p50_s: num(7) / 1000.0,
            max_s: num(8) / 1000.0,
        });
    }
    if rows.is_empty() {
        return Err("no rows".into());
    }
    let title = args.get(3).cloned().unwrap_or_default();
    let root = BitMapBackend::new(&args[2], (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.titled(
        &format!("ferroboot vs dnsmasq + nginx, N machines booting at once ({title})"),
        ("sans-serif", 18),
    )?;
    let panels = body.split_evenly((1, 2));
    let nmax = rows.iter().map(|r| r.nodes).fold(1.0, f64::max) * 1.5;
    let series = |server: &str, f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> =
            rows.iter().filter(|r| r.server == server).map(|r| (r.nodes, f(r).max(1e-3))).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let fb = RGBColor(200, 60, 20);
    let peer = RGBColor(30, 90, 200);

    // Left: throughput.
    let ymax = rows.iter().map(|r| r.http.max(r.tftp)).fold(10.0, f64::max) * 8.0;
    let ymin = rows.iter().map(|r| r.tftp.min(r.http)).filter(|&v| v > 0.0).fold(ymax, f64::min) / 2.0;
    let mut c = ChartBuilder::on(&panels[0])
        .caption("aggregate throughput (MB/s, all nodes)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8..nmax).log_scale(), (ymin.max(0.1)..ymax).log_scale())?;
    c.configure_mesh()
        .x_desc("N (machines)")
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .y_desc("MB/s")
        .label_style(("sans-serif", 13))
        .draw()?;
    let lines: [(&str, &str, RGBColor, bool, &dyn Fn(&Row) -> f64); 4] = [
        ("ferroboot", "ferroboot HTTP", fb, true, &|r| r.http),
        ("stack", "nginx HTTP", peer, true, &|r| r.http),
        ("ferroboot", "ferroboot TFTP", fb, false, &|r| r.tftp),
        ("stack", "dnsmasq TFTP", peer, false, &|r| r.tftp),
    ];
    for (server, label, color, solid, f) in lines {
        let pts = series(server, f);
        let style = if solid { color.stroke_width(3) } else { color.stroke_width(1) };
        c.draw_series(LineSeries::new(pts.clone(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;

    // Right: time to booted.
    let tmax = rows.iter().map(|r| r.max_s).fold(0.1, f64::max) * 2.0;
    let tmin = rows.iter().map(|r| r.p50_s).filter(|&v| v > 0.0).fold(tmax, f64::min) / 2.0;
    let mut c = ChartBuilder::on(&panels[1])
        .caption("time to booted (s): p50 and slowest node", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0.8..nmax).log_scale(), (tmin.max(0.001)..tmax).log_scale())?;
    c.configure_mesh()
        .x_desc("N (machines)")
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .y_desc("seconds")
        .label_style(("sans-serif", 13))
        .draw()?;
    let lines: [(&str, &str, RGBColor, bool, &dyn Fn(&Row) -> f64); 4] = [
        ("ferroboot", "ferroboot p50", fb, true, &|r| r.p50_s),
        ("ferroboot", "ferroboot max", fb, false, &|r| r.max_s),
        ("stack", "dnsmasq+nginx p50", peer, true, &|r| r.p50_s),
        ("stack", "dnsmasq+nginx max", peer, false, &|r| r.max_s),
    ];
    for (server, label, color, solid, f) in lines {
        let pts = series(server, f);
        let style = if solid { color.stroke_width(3) } else { color.stroke_width(1) };
        c.draw_series(LineSeries::new(pts.clone(), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
