//! JWT output: the JWT-SVID token files and the JWT bundle JSON file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use spiffe::{JwtBundleSet, JwtSvid};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::backoff::{sleep_or_cancel, Backoff, Repeats};
use crate::clock::unix_now;
use crate::config::{JwtSvidOutput, OutputFile};
use crate::disk::{self, WriteError};
use crate::secret::Secret;
use crate::status::{self, StatusTx, WriteStatus};
use crate::workload::{Agent, Client, StreamEnd, WorkloadError};

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

/// When to fetch a token again: half its remaining lifetime plus one
/// second (as the Go helper does), measured from `now`.
pub fn next_refresh(expiry: i64, now: i64) -> Duration {
    let remaining = u64::try_from(expiry.saturating_sub(now)).unwrap_or(0);
    Duration::from_millis(remaining * 500) + Duration::from_secs(1)
}

/// Streams JWT bundle sets until cancelled, writing each one.
pub async fn watch_bundles(
    agent: Agent,
    out: Arc<OutputFile>,
    status: StatusTx,
    token: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut repeats = Repeats::default();
    loop {
        let failure = tokio::select! {
            biased;
            () = token.cancelled() => return,
            f = bundle_stream_once(&agent, &out, &status, &mut backoff, &mut repeats) => f,
        };
        failure.report("JWT bundle", &mut repeats);
        let delay = backoff.next_delay();
        debug!("reconnecting in {} ms", delay.as_millis());
        if sleep_or_cancel(&token, delay).await {
            return;
        }
    }
}

async fn bundle_stream_once(
    agent: &Agent,
    out: &Arc<OutputFile>,
    status: &StatusTx,
    backoff: &mut Backoff,
    repeats: &mut Repeats,
) -> StreamEnd {
    let client = match agent.connect().await {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let mut stream = match client.stream_jwt_bundles().await {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    loop {
        match stream.next().await {
            Some(Ok(set)) => {
                backoff.reset();
                repeats.clear();
                let bytes = render_bundles(&set);
                let target = Arc::clone(out);
                let result =
                    tokio::task::spawn_blocking(move || write_bundles(&bytes, &target)).await;
                match result {
                    Ok(Ok(())) => {
                        info!(trust_domains = set.len(), path = %out.path.display(), "JWT bundle written");
                        status::set_jwt(status, &out.path, WriteStatus::Written);
                    }
                    Ok(Err(e)) => {
                        error!("{e}; the previous file is unchanged");
                        status::set_jwt(status, &out.path, WriteStatus::Failed);
                    }
                    Err(e) => {
                        error!("JWT bundle write task failed: {e}");
                        status::set_jwt(status, &out.path, WriteStatus::Failed);
                    }
                }
            }
            Some(Err(e)) => return e.into(),
            None => return StreamEnd::Closed,
        }
    }
}

/// Why one refresh of a JWT-SVID failed.
#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("the agent rejected the fetched token: {0}")]
    Invalid(WorkloadError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Keeps one JWT-SVID file fresh until cancelled: fetch, validate, write,
/// sleep until half the remaining lifetime has passed; on error retry after
/// 1 s, doubling up to 60 s.
pub async fn refresh(
    agent: Agent,
    entry: JwtSvidOutput,
    hint: Option<String>,
    status: StatusTx,
    token: CancellationToken,
) {
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut repeats = Repeats::default();
    let mut client: Option<Client> = None;
    let audiences = entry.audiences();
    loop {
        let attempt = tokio::select! {
            biased;
            () = token.cancelled() => return,
            r = refresh_once(&agent, &mut client, &entry, &audiences, hint.as_deref()) => r,
        };
        let wait = match attempt {
            Ok(svid) => {
                retry.reset();
                repeats.clear();
                status::set_jwt(&status, &entry.file.path, WriteStatus::Written);
                let wait = next_refresh(svid.expiry().unix_timestamp(), unix_now());
                info!(
                    spiffe_id = %svid.spiffe_id(),
                    audience = ?audiences,
                    path = %entry.file.path.display(),
                    refresh_in_s = wait.as_secs(),
                    "JWT SVID written"
                );
                wait
            }
            Err(e) => {
                if matches!(e, RefreshError::Write(_)) {
                    status::set_jwt(&status, &entry.file.path, WriteStatus::Failed);
                }
                if matches!(e, RefreshError::Workload(WorkloadError::Unavailable { .. })) {
                    client = None;
                }
                repeats.warn(&format!("JWT SVID for {}: {e}", entry.audience));
                retry.next_delay()
            }
        };
        if sleep_or_cancel(&token, wait).await {
            return;
        }
    }
}

async fn refresh_once(
    agent: &Agent,
    client: &mut Option<Client>,
    entry: &JwtSvidOutput,
    audiences: &[String],
    hint: Option<&str>,
) -> Result<JwtSvid, RefreshError> {
    let c = match client {
        Some(c) => c.clone(),
        None => client.insert(agent.connect().await?).clone(),
    };
    let svid = c.fetch_jwt_svid(audiences, hint).await?;
    c.validate_jwt(&entry.audience, svid.token())
        .await
        .map_err(RefreshError::Invalid)?;
    let token = render_token(&svid);
    let entry = entry.clone();
    tokio::task::spawn_blocking(move || write_token(&token, &entry))
        .await
        .map_err(|e| WriteError::other(&e.to_string()))??;
    Ok(svid)
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
