//! Any text as a config file: it validates or every error names a line inside the text.
#![no_main]

use ferroboot::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(errors) = Config::from_toml(Path::new("fuzz.toml"), text) {
        let lines = text.lines().count().max(1) + 1;
        for e in &errors.0 {
            assert!(e.line <= lines, "{e} points past the end ({lines} lines)");
        }
    }
});
