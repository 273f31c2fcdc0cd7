//! The command line: any arguments, UTF-8 or not, give an action or a
//! usage error, never a panic.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The arguments after the program name, NUL-separated as in
    // /proc/<pid>/cmdline (no argument can contain a NUL).
    let args = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect()
    };
    match spiffe_helper::cli::parse_os(args) {
        Ok(action) => {
            let _ = format!("{action:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
