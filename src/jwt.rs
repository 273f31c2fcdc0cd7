//! JWT output, pure: the JWT bundle JSON file and the JWT-SVID token files,
//! and when to fetch a token again. No I/O, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use spiffe::{JwtBundleSet, JwtSvid};

use crate::config::{JwtSvidOutput, OutputFile};
use crate::disk::{Batch, FileWrite};

/// Facts about a JWT bundle set, for logs, status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtBundleInfo {
    /// Each trust domain with its key IDs, sorted.
    pub trust_domains: Vec<(String, Vec<String>)>,
}

/// The JWT bundle file: a JSON object mapping each trust-domain name to the
/// standard base64 of that domain's JWKS document, keys sorted.
pub fn render_bundles(set: &JwtBundleSet, out: &OutputFile) -> (Batch, JwtBundleInfo) {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut info = JwtBundleInfo::default();
    for (td, bundle) in set.iter() {
        // A key without an ID cannot be used to verify a token (JWT-SVIDs
        // name their key) and a JWKS reader refuses it: it is left out.
        let mut keys: Vec<_> = bundle
            .jwt_authorities()
            .filter(|k| !k.key_id().is_empty())
            .collect();
        // Authorities come from a hash map: sort so the file is stable.
        keys.sort_by(|a, b| a.key_id().cmp(b.key_id()));
        let jwks = Jwks {
            keys: keys.iter().map(|k| Key::from_json(k.jwk_json())).collect(),
        };
        let text = serde_json::to_vec(&jwks).unwrap_or_default();
        map.insert(
            td.to_string(),
            base64::engine::general_purpose::STANDARD.encode(text),
        );
        info.trust_domains.push((
            td.to_string(),
            keys.iter().map(|k| k.key_id().to_owned()).collect(),
        ));
    }
    let text = serde_json::to_vec(&map).unwrap_or_default();
    let batch = Batch {
        writes: vec![FileWrite::new(out.path.clone(), text, out.mode)],
        own_dir: None,
    };
    (batch, info)
}

/// A trust domain's JWKS document as the Go helper writes it.
#[derive(Serialize)]
struct Jwks {
    keys: Vec<Key>,
}

/// One key of a JWKS document: its public members as go-jose writes them,
/// in go-jose's order, empty and null ones left out (and `use`, as upstream
/// drops it); a key that is not a JSON object as sent.
enum Key {
    Jwk(serde_json::Map<String, serde_json::Value>),
    AsSent(serde_json::Value),
}

/// The members go-jose writes, in its order.
const JWK_ORDER: [&str; 13] = [
    "kty", "kid", "crv", "alg", "k", "x", "y", "n", "e", "x5c", "x5u", "x5t", "x5t#S256",
];

impl Key {
    fn from_json(jwk: &[u8]) -> Key {
        match serde_json::from_slice::<serde_json::Value>(jwk) {
            Ok(serde_json::Value::Object(members)) => Key::Jwk(members),
            Ok(v) => Key::AsSent(v),
            Err(_) => Key::AsSent(String::from_utf8_lossy(jwk).into_owned().into()),
        }
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let members = match self {
            Key::AsSent(v) => return v.serialize(s),
            Key::Jwk(members) => members,
        };
        let mut map = s.serialize_map(None)?;
        for name in JWK_ORDER {
            match members.get(name) {
                Some(v) if !v.is_null() && v.as_str() != Some("") => {
                    map.serialize_entry(name, v)?;
                }
                _ => {}
            }
        }
        map.end()
    }
}

/// The token file: the compact JWT, no newline.
pub fn render_token(svid: &JwtSvid, out: &JwtSvidOutput) -> Batch {
    Batch {
        writes: vec![FileWrite::new(
            out.file.path.clone(),
            svid.token().as_bytes().to_vec(),
            out.file.mode,
        )],
        own_dir: None,
    }
}

/// When to fetch a token again: half its remaining lifetime plus one
/// second (as the Go helper does), measured from `now`.
pub fn next_refresh(expiry: i64, now: i64) -> Duration {
    let remaining = u64::try_from(expiry.saturating_sub(now)).unwrap_or(0);
    // Saturating: an absurd expiry from a broken agent must not overflow.
    Duration::from_millis(remaining.saturating_mul(500)).saturating_add(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn refresh_at_half_the_remaining_lifetime_plus_a_second() {
        assert_eq!(next_refresh(1000, 400), Duration::from_secs(301));
        assert_eq!(next_refresh(1001, 1000), Duration::from_millis(1500));
        // Already expired: try again in a second.
        assert_eq!(next_refresh(10, 20), Duration::from_secs(1));
    }

    use super::*;
    use fake_workload_api::JwtIssuer;
    use spiffe::{JwtBundle, TrustDomain};

    #[test]
    fn bundle_file_maps_trust_domains_to_base64_jwks() {
        let a = JwtIssuer::new("example.org", "k1");
        let b = JwtIssuer::new("federated.test", "k2");
        let mut set = JwtBundleSet::new();
        for (td, issuer) in [("federated.test", &b), ("example.org", &a)] {
            let td = TrustDomain::new(td).unwrap();
            set.add_bundle(JwtBundle::from_jwt_authorities(td, &issuer.jwks_json()).unwrap());
        }
        let out = OutputFile {
            path: "b.json".into(),
            mode: 0o600,
        };
        let (batch, info) = render_bundles(&set, &out);
        assert_eq!(info.trust_domains.len(), 2);
        assert_eq!(
            info.trust_domains[0],
            ("example.org".to_owned(), vec!["k1".to_owned()])
        );
        let text = String::from_utf8(batch.writes[0].bytes.expose().to_vec()).unwrap();
        assert!(text.starts_with("{\"example.org\":\""), "{text}");
        let parsed: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 2);
        for (td, issuer) in [("example.org", &a), ("federated.test", &b)] {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&parsed[td])
                .unwrap();
            let got: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            let mut want: serde_json::Value = serde_json::from_slice(&issuer.jwks_json()).unwrap();
            // As upstream: `use` is not written.
            for k in want["keys"].as_array_mut().unwrap() {
                k.as_object_mut().unwrap().remove("use");
            }
            assert_eq!(got["keys"], want["keys"], "{td}");
            // go-jose's member order.
            let text = String::from_utf8(raw).unwrap();
            assert!(
                text.starts_with("{\"keys\":[{\"kty\":\"EC\",\"kid\":"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_key_without_an_id_is_left_out_and_the_file_reads_back() {
        // Found by fuzzing: an empty `kid` was dropped as go-jose drops
        // empty members, leaving a key no reader accepts.
        let td = TrustDomain::new("example.org").unwrap();
        let jwks = br#"{"keys":[{"kty":"EC","kid":"","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let mut set = JwtBundleSet::new();
        set.add_bundle(JwtBundle::from_jwt_authorities(td.clone(), jwks).unwrap());
        let out = OutputFile {
            path: "b.json".into(),
            mode: 0o600,
        };
        let (batch, info) = render_bundles(&set, &out);
        assert_eq!(info.trust_domains, vec![("example.org".to_owned(), vec![])]);
        let text: BTreeMap<String, String> =
            serde_json::from_slice(batch.writes[0].bytes.expose()).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&text["example.org"])
            .unwrap();
        assert_eq!(raw, br#"{"keys":[]}"#);
        JwtBundle::from_jwt_authorities(td, &raw).unwrap();
    }

    #[test]
    fn token_file_is_the_compact_jwt_without_newline() {
        let issuer = JwtIssuer::new("example.org", "k1");
        let token = issuer.mint(
            "spiffe://example.org/w",
            &["aud".to_owned()],
            std::time::Duration::from_secs(600),
        );
        let svid: JwtSvid = token.parse().unwrap();
        let entry = JwtSvidOutput {
            audience: "aud".into(),
            extra_audiences: Vec::new(),
            file: OutputFile {
                path: "t".into(),
                mode: 0o600,
            },
        };
        let out = render_token(&svid, &entry);
        let bytes = out.writes[0].bytes.expose();
        assert_eq!(bytes, token.as_bytes());
        assert!(!bytes.ends_with(b"\n"));
    }
    #[test]
    fn several_keys_of_one_trust_domain_are_sorted_by_key_id() {
        let a = JwtIssuer::new("example.org", "k2");
        let b = JwtIssuer::new("example.org", "k1");
        let keys = |i: &JwtIssuer| {
            serde_json::from_slice::<serde_json::Value>(&i.jwks_json()).unwrap()["keys"][0].clone()
        };
        let jwks = serde_json::json!({ "keys": [keys(&a), keys(&b)] }).to_string();
        let mut set = JwtBundleSet::new();
        let td = TrustDomain::new("example.org").unwrap();
        set.add_bundle(JwtBundle::from_jwt_authorities(td, jwks.as_bytes()).unwrap());
        let out = OutputFile {
            path: "b.json".into(),
            mode: 0o600,
        };
        let (batch, info) = render_bundles(&set, &out);
        assert_eq!(
            info.trust_domains,
            [(
                "example.org".to_owned(),
                vec!["k1".to_owned(), "k2".to_owned()]
            )]
        );
        let text = String::from_utf8(batch.writes[0].bytes.expose().to_vec()).unwrap();
        let parsed: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&parsed["example.org"])
            .unwrap();
        let doc = String::from_utf8(raw).unwrap();
        let got: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        let kids: Vec<&str> = got["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["k1", "k2"]);
        assert!(doc.starts_with("{\"keys\":[{\"kty\""), "{doc}");
        assert!(doc.contains("},{\"kty\""), "{doc}");
        assert_eq!(batch.writes[0].mode, 0o600);
        assert_eq!(batch.writes[0].path, std::path::Path::new("b.json"));
    }

    fn key(jwk: &[u8]) -> String {
        serde_json::to_string(&Key::from_json(jwk)).unwrap()
    }

    #[test]
    fn jwk_members_in_go_jose_order_without_empty_ones() {
        let jwk = br#"{"y":"Y","x":"X","use":"jwt-svid","alg":null,"kid":"","crv":"P-256","kty":"EC","x5t#S256":"T","extra":1}"#;
        assert_eq!(
            key(jwk),
            r#"{"kty":"EC","crv":"P-256","x":"X","y":"Y","x5t#S256":"T"}"#
        );
        assert_eq!(key(br#"{"kid":"a\"b"}"#), r#"{"kid":"a\"b"}"#);
        assert_eq!(key(b"{}"), "{}");
        // Not an object: kept as sent.
        assert_eq!(key(b"[1,2]"), "[1,2]");
        assert_eq!(key(b"not json"), r#""not json""#);
    }

    #[test]
    fn refresh_waits_grow_with_the_remaining_lifetime() {
        assert_eq!(next_refresh(0, 0), Duration::from_secs(1));
        assert_eq!(next_refresh(2, 0), Duration::from_secs(2));
        assert_eq!(next_refresh(3, 0), Duration::from_millis(2500));
    }
    #[test]
    fn an_absurdly_distant_expiry_does_not_overflow() {
        let wait = next_refresh(i64::MAX, 0);
        assert!(wait >= Duration::from_secs(3600 * 24 * 365), "{wait:?}");
    }
}
