//! What the fuzz targets and the seed generator share: the Workload API
//! messages the helper receives, decoded and turned into the `spiffe`
//! crate's types the way that crate's client does, and the fixed output
//! configurations the renderers are driven with.
//!
//! The messages' maps are hash maps: their entries are taken in the order
//! of their keys, so that a fuzz input always builds the same context (two
//! keys naming one trust domain, such as `example.org` and
//! `spiffe://example.org`, replace each other in order).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spiffe::{
    JwtBundle, JwtBundleSet, TrustDomain, X509Bundle, X509BundleSet, X509Context, X509Svid,
};
use spiffe_helper::config::{OutputFile, SvidFiles, TrustBundlesDir, X509Output};

/// The messages of workload.proto the renderers are fed from (the ones the
/// fake agent serves).
pub use workload_messages as pb;

/// The X.509 context the `spiffe` crate's client builds from a response
/// (its `parse_x509_context_from_grpc_response`, required-field checks
/// included), or `None` where the client would return an error.
pub fn x509_context(response: &pb::X509svidResponse) -> Option<X509Context> {
    if response.svids.is_empty() {
        return None;
    }
    let incomplete = |s: &pb::X509svid| {
        s.bundle.is_empty()
            || s.spiffe_id.is_empty()
            || s.x509_svid.is_empty()
            || s.x509_svid_key.is_empty()
    };
    if response.svids.iter().any(incomplete) {
        return None;
    }
    let mut svids = Vec::new();
    let mut bundles = X509BundleSet::new();
    for s in &response.svids {
        let hint = (!s.hint.is_empty()).then(|| Arc::<str>::from(s.hint.as_str()));
        let svid = X509Svid::parse_from_der_with_hint(&s.x509_svid, &s.x509_svid_key, hint).ok()?;
        let bundle =
            X509Bundle::parse_from_der(svid.spiffe_id().trust_domain().clone(), &s.bundle).ok()?;
        svids.push(Arc::new(svid));
        bundles.add_bundle(bundle);
    }
    for (name, der) in sorted(&response.federated_bundles) {
        let td = TrustDomain::try_from(name.as_str()).ok()?;
        bundles.add_bundle(X509Bundle::parse_from_der(td, der).ok()?);
    }
    Some(X509Context::new(svids, Arc::new(bundles)))
}

/// The JWT bundle set the `spiffe` crate's client builds from a response
/// (its `parse_jwt_bundle_set_from_grpc_response`), or `None` where the
/// client would return an error.
pub fn jwt_bundle_set(response: &pb::JwtBundlesResponse) -> Option<JwtBundleSet> {
    if response.bundles.is_empty() {
        return None;
    }
    let mut set = JwtBundleSet::new();
    for (name, jwks) in sorted(&response.bundles) {
        let td = TrustDomain::new(name).ok()?;
        set.add_bundle(JwtBundle::from_jwt_authorities(td, jwks).ok()?);
    }
    Some(set)
}

/// A map's entries in the order of their keys.
fn sorted<V>(map: &std::collections::HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Where the fixed outputs point. Nothing is written there: rendering is pure.
pub const OUT_DIR: &str = "/fuzz-out";

fn file(name: &str, mode: u32) -> OutputFile {
    OutputFile {
        path: Path::new(OUT_DIR).join(name),
        mode,
    }
}

/// An X.509 output with every file configured; the three switches as given.
pub fn x509_output(
    add_intermediates_to_bundle: bool,
    include_federated_domains: bool,
    omit_expired: bool,
) -> X509Output {
    X509Output {
        files: Some(SvidFiles {
            svid: file("svid.pem", 0o644),
            key: file("svid_key.pem", 0o600),
            bundle: file("svid_bundle.pem", 0o644),
        }),
        credential_bundle: Some(file("credentials.pem", 0o600)),
        trust_bundles: Some(TrustBundlesDir {
            dir: trust_bundles_dir(),
            mode: 0o644,
        }),
        pkcs12: None,
        add_intermediates_to_bundle,
        include_federated_domains,
        omit_expired,
    }
}

/// `trust_bundles_dir` of [`x509_output`].
pub fn trust_bundles_dir() -> PathBuf {
    Path::new(OUT_DIR).join("bundles")
}

/// The JWT bundle file.
pub fn jwt_bundle_output() -> OutputFile {
    file("jwt_bundle.json", 0o600)
}
