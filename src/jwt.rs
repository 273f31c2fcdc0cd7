//! JWT output: the JWT-SVID token files and the JWT bundle JSON file.

use std::collections::BTreeMap;

use base64::Engine as _;
use spiffe::{JwtBundleSet, JwtSvid};

use crate::config::{JwtSvidOutput, OutputFile};
use crate::disk::{self, WriteError};
use crate::secret::Secret;

/// The JWT bundle file: a JSON object mapping each trust-domain name to the
/// standard base64 of that domain's JWKS document, keys sorted.
pub fn render_bundles(set: &JwtBundleSet) -> Vec<u8> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (td, bundle) in set.iter() {
        let mut keys: Vec<_> = bundle.jwt_authorities().collect();
        // Authorities come from a hash map: sort so the file is stable.
        keys.sort_by(|a, b| a.key_id().cmp(b.key_id()));
        let mut jwks = Vec::from(&b"{\"keys\":["[..]);
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                jwks.push(b',');
            }
            jwks.extend_from_slice(key.jwk_json());
        }
        jwks.extend_from_slice(b"]}");
        out.insert(
            td.to_string(),
            base64::engine::general_purpose::STANDARD.encode(jwks),
        );
    }
    serde_json::to_vec(&out).unwrap_or_else(|_| b"{}".to_vec())
}

/// The token file: the compact JWT, no newline.
pub fn render_token(svid: &JwtSvid) -> Secret {
    Secret::new(svid.token().as_bytes().to_vec())
}

pub fn write_bundles(bytes: &[u8], out: &OutputFile) -> Result<(), WriteError> {
    disk::write_atomic(&out.path, bytes, out.mode)
}

pub fn write_token(token: &Secret, out: &JwtSvidOutput) -> Result<(), WriteError> {
    disk::write_atomic(&out.file.path, token.expose(), out.file.mode)
}

#[cfg(test)]
mod tests {
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
        let text = String::from_utf8(render_bundles(&set)).unwrap();
        assert!(text.starts_with("{\"example.org\":\""), "{text}");
        let parsed: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 2);
        for (td, issuer) in [("example.org", &a), ("federated.test", &b)] {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&parsed[td])
                .unwrap();
            let got: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            let want: serde_json::Value = serde_json::from_slice(&issuer.jwks_json()).unwrap();
            assert_eq!(got["keys"], want["keys"], "{td}");
        }
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
        let out = render_token(&svid);
        assert_eq!(out.expose(), token.as_bytes());
        assert!(!out.expose().ends_with(b"\n"));
    }
}
