//! `cmd_args` given as one string: split into argv or refused with Go's
//! message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    match spiffe_helper::config::cmd_args::split(input) {
        Ok(split) => {
            // Every argument is a piece of the input with quotes removed.
            for arg in &split.args {
                assert!(arg.len() <= input.len(), "{arg:?} longer than {input:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
