//! Logging: `log` + `env_logger`. RUST_LOG sets levels (default `info`); `--log-format json` writes
//! one JSON object per line: `{"ts":..,"level":..,"target":..,"message":..}`.

use crate::cli::LogFormat;
use std::io::Write;

pub fn init(format: LogFormat) {
    let env = env_logger::Env::default().filter_or("RUST_LOG", "info");
    let mut b = env_logger::Builder::from_env(env);
    match format {
        LogFormat::Text => {
            b.format_timestamp_millis();
        }
        LogFormat::Json => {
            b.format(|buf, rec| {
                let line = serde_json::json!({
                    "ts": buf.timestamp_millis().to_string(),
                    "level": rec.level().as_str(),
                    "target": rec.target(),
                    "message": rec.args().to_string(),
                });
                writeln!(buf, "{line}")
            });
        }
    }
    let _ = b.try_init();
}
