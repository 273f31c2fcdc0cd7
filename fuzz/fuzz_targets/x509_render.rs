//! An X.509 update from the agent, as protobuf bytes, rendered into files:
//! whatever the agent sends, `render` returns files or an error, never a
//! panic, and never a file outside the configured paths.
#![no_main]

use std::ffi::OsStr;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use spiffe_helper::x509::{render, X509Render};
use spiffe_helper_fuzz::{pb, trust_bundles_dir, x509_context, x509_output};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = pb::X509svidResponse::decode(data) else {
        return;
    };
    let Some(ctx) = x509_context(&response) else {
        return;
    };
    // The default SVID, and the hint of the last one (which may be "" or
    // shared with an earlier SVID).
    let last_hint = response.svids.last().map(|s| s.hint.as_str());
    for hint in [None, last_hint] {
        // Every switch off, with a `now` that expires nothing...
        let Ok(plain) = render(&ctx, &x509_output(false, false, false), hint, i64::MIN) else {
            continue;
        };
        check(&plain);
        // ...then every switch on, at the moment the leaf became valid: a
        // certificate that had expired by then is dropped.
        let now = plain.info.not_before;
        if let Ok(all) = render(&ctx, &x509_output(true, true, true), hint, now) {
            check(&all);
            assert_eq!(all.info, plain.info, "the options changed the SVID chosen");
        }
    }
});

/// Every file is one of the configured ones or `<trust domain>.pem` directly
/// inside `trust_bundles_dir`, whatever trust-domain names the agent sent.
fn check(r: &X509Render) {
    let configured = x509_output(false, false, false);
    let files = configured.files.as_ref().expect("files");
    let fixed = [
        &files.svid.path,
        &files.key.path,
        &files.bundle.path,
        &configured.credential_bundle.as_ref().expect("bundle").path,
    ];
    let dir = trust_bundles_dir();
    for w in &r.batch.writes {
        if fixed.contains(&&w.path) {
            continue;
        }
        let name = w.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            w.path.parent() == Some(dir.as_path())
                && w.path.extension() == Some(OsStr::new("pem"))
                && !name.starts_with('.'),
            "write outside the configured files: {}",
            w.path.display()
        );
    }
}
