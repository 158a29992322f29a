//! The config parser on arbitrary text: it may reject anything, with an error, but never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = runbook_config::Config::parse(text, std::path::Path::new("/fuzz/runbook.toml")) {
            // What every command derives from a parsed config must not panic either.
            let _ = config.protected_paths();
            for target in config.targets.values() {
                let _ = target.kind.paths();
            }
        }
    }
});
