//! The configuration reader: any text, HCL or JSON, gives a configuration
//! or a list of problems, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file is read with `read_to_string`, so only UTF-8 reaches the
    // parser; lossy decoding keeps the fuzzer's non-UTF-8 mutations useful.
    let text = String::from_utf8_lossy(data);
    match spiffe_helper::config::parse(&text, Path::new("fuzz.conf"), None, &|_| None) {
        Ok(loaded) => {
            let _ = format!("{loaded:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
