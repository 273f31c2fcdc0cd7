//! Writes the seed inputs of the `x509_render` and `jwt_bundle_render`
//! targets: Workload API responses carrying real certificates, keys and
//! JWKS documents, which random bytes would almost never reach. Each seed is
//! checked to render before it is written.
//!
//! Run from `fuzz/` with `cargo run --example seeds` (stable is enough),
//! then commit what changed under `seeds/`. Keys are fresh on every run, so
//! every seed changes: run it only when a seed should change.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use fake_workload_api::{Ca, JwtIssuer, Svid};
use prost::Message as _;
use spiffe_helper_fuzz::{jwt_bundle_output, jwt_bundle_set, pb, x509_context, x509_output};

const YEAR: Duration = Duration::from_hours(365 * 24);

/// An RSA public key in JWK form (RFC 7517, appendix A.1), beside the EC
/// keys the fake agent mints.
const RSA_JWK: &str = r#"{"kty":"RSA","kid":"2011-04-29","use":"jwt-svid","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");

    let root = Ca::root("example.org");
    let intermediate = root.intermediate();
    let federated = Ca::root("federated.test");
    let expired = Ca::expired_root("expired.test");
    let other = Ca::root("other.test");

    let x509 = seeds.join("x509_render");
    fs::create_dir_all(&x509).expect("seed directory");
    // One SVID under an intermediate, a federated bundle and a federated
    // bundle whose root has expired (for omit_expired).
    write_x509(
        &x509.join("intermediate-federated-expired"),
        &pb::X509svidResponse {
            svids: vec![entry(
                &intermediate.issue_svid("spiffe://example.org/workload", 10 * YEAR),
                &root.cert_der(),
            )],
            crl: Vec::new(),
            federated_bundles: [
                ("federated.test".to_owned(), federated.cert_der()),
                ("spiffe://expired.test".to_owned(), expired.cert_der()),
            ]
            .into(),
        },
    );
    // Two SVIDs with hints in two trust domains; the second is issued by
    // its root directly, and the example.org bundle has two roots.
    let mut two_roots = root.cert_der();
    two_roots.extend(federated.cert_der());
    write_x509(
        &x509.join("two-svids-hints"),
        &pb::X509svidResponse {
            svids: vec![
                entry(
                    &intermediate
                        .issue_svid("spiffe://example.org/db", 10 * YEAR)
                        .with_hint("internal"),
                    &two_roots,
                ),
                entry(
                    &other
                        .issue_svid("spiffe://other.test/web", 10 * YEAR)
                        .with_hint("external"),
                    &other.cert_der(),
                ),
            ],
            crl: Vec::new(),
            federated_bundles: HashMap::new(),
        },
    );

    let jwt = seeds.join("jwt_bundle_render");
    fs::create_dir_all(&jwt).expect("seed directory");
    let example = JwtIssuer::new("example.org", "example-key-1");
    write_jwt(
        &jwt.join("one-domain"),
        &pb::JwtBundlesResponse {
            bundles: [("example.org".to_owned(), example.jwks_json())].into(),
        },
    );
    // Two keys (EC and RSA) in one domain, and a domain named by its
    // SPIFFE ID.
    let rotated = JwtIssuer::new("example.org", "example-key-2");
    let two_keys = format!(
        r#"{{"keys":[{},{}]}}"#,
        first_key(&rotated.jwks_json()),
        RSA_JWK
    );
    let federated_jwt = JwtIssuer::new("federated.test", "federated-key");
    write_jwt(
        &jwt.join("two-domains-ec-rsa"),
        &pb::JwtBundlesResponse {
            bundles: [
                ("example.org".to_owned(), two_keys.into_bytes()),
                (
                    "spiffe://federated.test".to_owned(),
                    federated_jwt.jwks_json(),
                ),
            ]
            .into(),
        },
    );
}

fn entry(svid: &Svid, bundle: &[u8]) -> pb::X509svid {
    pb::X509svid {
        spiffe_id: svid.spiffe_id.clone(),
        x509_svid: svid.chain.concat(),
        x509_svid_key: svid.key_pkcs8.clone(),
        bundle: bundle.to_vec(),
        hint: svid.hint.clone(),
    }
}

fn write_x509(path: &Path, response: &pb::X509svidResponse) {
    let bytes = response.encode_to_vec();
    let decoded = pb::X509svidResponse::decode(bytes.as_slice()).expect("decodes");
    let ctx = x509_context(&decoded).expect("the spiffe crate accepts it");
    for svid in &response.svids {
        let hint = Some(svid.hint.as_str()).filter(|h| !h.is_empty());
        let out = x509_output(true, true, true);
        spiffe_helper::x509::render(&ctx, &out, hint, 0).expect("renders");
    }
    fs::write(path, bytes).expect("write seed");
    println!("{}", path.display());
}

fn write_jwt(path: &Path, response: &pb::JwtBundlesResponse) {
    let bytes = response.encode_to_vec();
    let decoded = pb::JwtBundlesResponse::decode(bytes.as_slice()).expect("decodes");
    let set = jwt_bundle_set(&decoded).expect("the spiffe crate accepts it");
    let (_, info) = spiffe_helper::jwt::render_bundles(&set, &jwt_bundle_output());
    assert_eq!(info.trust_domains.len(), response.bundles.len());
    fs::write(path, bytes).expect("write seed");
    println!("{}", path.display());
}

/// The one key of a JWKS document the fake agent wrote.
fn first_key(jwks: &[u8]) -> String {
    let doc: serde_json::Value = serde_json::from_slice(jwks).expect("JSON");
    doc["keys"][0].to_string()
}
