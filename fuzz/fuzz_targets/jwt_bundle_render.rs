//! JWT bundles from the agent, as protobuf bytes, rendered into the bundle
//! file: never a panic, and the file is JSON whose every value is the
//! base64 of a JWKS document that the `spiffe` crate reads back with the
//! same key IDs.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use spiffe::{JwtBundle, TrustDomain};
use spiffe_helper::jwt::render_bundles;
use spiffe_helper_fuzz::{jwt_bundle_output, jwt_bundle_set, pb};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = pb::JwtBundlesResponse::decode(data) else {
        return;
    };
    let Some(set) = jwt_bundle_set(&response) else {
        return;
    };
    let out = jwt_bundle_output();
    let (batch, info) = render_bundles(&set, &out);
    assert_eq!(batch.writes.len(), 1);
    assert_eq!(batch.writes[0].path, out.path);

    let file: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(batch.writes[0].bytes.expose()).expect("the file is a JSON object");
    assert_eq!(file.len(), info.trust_domains.len());
    for (td, key_ids) in &info.trust_domains {
        let b64 = file[td].as_str().expect("a string per trust domain");
        let jwks = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("standard base64");
        let td = TrustDomain::new(td).expect("a trust domain name");
        let back = JwtBundle::from_jwt_authorities(td, &jwks)
            .unwrap_or_else(|e| panic!("the written JWKS does not read back: {e}"));
        let mut read: Vec<&str> = back.jwt_authorities().map(|a| a.key_id()).collect();
        read.sort_unstable();
        assert_eq!(
            read, *key_ids,
            "key IDs changed on the way through the file"
        );
    }
});
