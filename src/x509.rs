//! X.509 output: turning a Workload API X.509 context into the three PEM
//! files (SVID chain, private key, trust bundle) and writing them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use spiffe::{X509Context, X509Svid};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::backoff::{sleep_or_cancel, Backoff, Repeats};
use crate::clock::unix_now;
use crate::config::X509Output;
use crate::disk::{self, FileWrite, WriteError};
use crate::secret::Secret;
use crate::status::{StatusTx, WriteStatus};
use crate::workload::{Agent, StreamEnd};

/// The rendered content of the three X.509 files.
#[derive(Debug)]
pub struct X509Files {
    /// SPIFFE ID of the chosen SVID (for logs).
    pub spiffe_id: String,
    /// Serial number of the leaf, hex (for logs).
    pub serial: String,
    /// NotAfter of the leaf, seconds since the epoch.
    pub not_after: i64,
    pub svid_pem: Vec<u8>,
    pub key_pem: Secret,
    pub bundle_pem: Vec<u8>,
}

/// Why an X.509 context could not be turned into files.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the Workload API returned no X.509 SVID")]
    NoSvid,
    #[error("no X.509 SVID with hint {0:?} was returned by the Workload API")]
    HintNotFound(String),
    #[error("the Workload API returned no X.509 bundle for the SVID's trust domain {0:?}")]
    MissingBundle(String),
    #[error("cannot parse a certificate from the Workload API: {0}")]
    BadCertificate(String),
}

/// Chooses the SVID: the one whose hint equals `hint`, else the first.
pub fn select<'a>(
    ctx: &'a X509Context,
    hint: Option<&str>,
) -> Result<&'a Arc<X509Svid>, RenderError> {
    match hint {
        None => ctx.default_svid().ok_or(RenderError::NoSvid),
        Some(h) => ctx
            .svids()
            .iter()
            .find(|s| s.hint() == Some(h))
            .ok_or_else(|| RenderError::HintNotFound(h.to_owned())),
    }
}

/// Renders the files for `ctx` as SPEC §4 describes. `now` (seconds since
/// the epoch) decides which certificates `omit_expired` drops.
pub fn render(
    ctx: &X509Context,
    out: &X509Output,
    hint: Option<&str>,
    now: i64,
) -> Result<X509Files, RenderError> {
    let svid = select(ctx, hint)?;
    let td = svid.spiffe_id().trust_domain();
    let bundles = ctx.bundle_set();
    let own = bundles
        .get_ref(td)
        .ok_or_else(|| RenderError::MissingBundle(td.to_string()))?;

    let chain: Vec<&[u8]> = svid.cert_chain().iter().map(|c| c.as_bytes()).collect();
    let (leaf_der, intermediates) = chain.split_first().ok_or(RenderError::NoSvid)?;
    let leaf = parse(leaf_der)?;

    let mut svid_certs: Vec<&[u8]> = vec![leaf_der];
    let mut bundle_certs: Vec<&[u8]> = own.authorities().iter().map(|c| c.as_bytes()).collect();
    if out.add_intermediates_to_bundle {
        bundle_certs.extend_from_slice(intermediates);
    } else {
        svid_certs.extend_from_slice(intermediates);
    }
    if out.include_federated_domains {
        // The set is ordered by trust domain, so the file is stable.
        for (other, bundle) in bundles.iter() {
            if other != td {
                bundle_certs.extend(bundle.authorities().iter().map(|c| c.as_bytes()));
            }
        }
    }
    if out.omit_expired {
        svid_certs = retain_unexpired(svid_certs, now)?;
        bundle_certs = retain_unexpired(bundle_certs, now)?;
    }

    Ok(X509Files {
        spiffe_id: svid.spiffe_id().to_string(),
        serial: leaf.serial,
        not_after: leaf.not_after,
        svid_pem: pem_blocks("CERTIFICATE", &svid_certs),
        key_pem: Secret::new(pem_blocks("PRIVATE KEY", &[svid.private_key().as_bytes()])),
        bundle_pem: pem_blocks("CERTIFICATE", &bundle_certs),
    })
}

/// Writes the rendered files: bundle, then key, then the certificate last,
/// so a consumer reloading on a certificate change finds the matching key
/// and bundle already in place.
pub fn write(files: &X509Files, out: &X509Output) -> Result<(), WriteError> {
    disk::write_files(&file_writes(files, out))
}

/// The files of an X.509 update, in write order.
pub fn file_writes<'a>(files: &'a X509Files, out: &'a X509Output) -> Vec<FileWrite<'a>> {
    let Some(f) = &out.files else {
        return Vec::new();
    };
    vec![
        FileWrite {
            path: &f.bundle.path,
            bytes: &files.bundle_pem,
            mode: f.bundle.mode,
        },
        FileWrite {
            path: &f.key.path,
            bytes: files.key_pem.expose(),
            mode: f.key.mode,
        },
        FileWrite {
            path: &f.svid.path,
            bytes: &files.svid_pem,
            mode: f.svid.mode,
        },
    ]
}

/// What the X.509 watcher needs.
pub struct Watcher {
    pub agent: Agent,
    pub out: Arc<X509Output>,
    pub hint: Option<String>,
    pub status: StatusTx,
    /// Bumped after every successful write; the supervisor listens.
    pub renewals: watch::Sender<u64>,
}

impl Watcher {
    /// Streams X.509 contexts until cancelled, writing each one. A broken
    /// stream or an absent agent is retried forever with backoff.
    pub async fn run(self, token: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut repeats = Repeats::default();
        loop {
            let failure = tokio::select! {
                biased;
                () = token.cancelled() => return,
                f = self.stream_once(&mut backoff, &mut repeats) => f,
            };
            failure.report("X.509 SVID", &mut repeats);
            let delay = backoff.next_delay();
            debug!("reconnecting in {} ms", delay.as_millis());
            if sleep_or_cancel(&token, delay).await {
                return;
            }
        }
    }

    /// Connects and handles updates until the stream breaks; returns why.
    async fn stream_once(&self, backoff: &mut Backoff, repeats: &mut Repeats) -> StreamEnd {
        let client = match self.agent.connect().await {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        let mut stream = match client.stream_x509().await {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        loop {
            match stream.next().await {
                Some(Ok(ctx)) => {
                    backoff.reset();
                    repeats.clear();
                    self.update(&ctx).await;
                }
                Some(Err(e)) => return e.into(),
                None => return StreamEnd::Closed,
            }
        }
    }

    async fn update(&self, ctx: &X509Context) {
        for svid in ctx.svids() {
            info!(spiffe_id = %svid.spiffe_id(), hint = svid.hint().unwrap_or(""), "received X.509 SVID");
        }
        let files = match render(ctx, &self.out, self.hint.as_deref(), unix_now()) {
            Ok(f) => f,
            Err(e) => {
                error!("cannot use the X.509 update: {e}");
                self.set_status(WriteStatus::Failed, None);
                return;
            }
        };
        let out = Arc::clone(&self.out);
        let written =
            tokio::task::spawn_blocking(move || write(&files, &out).map(|()| files)).await;
        match written {
            Ok(Ok(files)) => {
                info!(
                    spiffe_id = %files.spiffe_id,
                    serial = %files.serial,
                    "X.509 SVID written"
                );
                self.set_status(WriteStatus::Written, Some(files.not_after));
                self.renewals.send_modify(|n| *n = n.wrapping_add(1));
            }
            Ok(Err(e)) => {
                error!("{e}; the previous files are unchanged");
                self.set_status(WriteStatus::Failed, None);
            }
            Err(e) => {
                error!("X.509 write task failed: {e}");
                self.set_status(WriteStatus::Failed, None);
            }
        }
    }

    fn set_status(&self, status: WriteStatus, not_after: Option<i64>) {
        self.status.send_modify(|s| {
            s.x509 = Some(status);
            if not_after.is_some() {
                s.x509_not_after = not_after;
            }
        });
    }
}

struct CertInfo {
    serial: String,
    not_after: i64,
}

fn parse(der: &[u8]) -> Result<CertInfo, RenderError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| RenderError::BadCertificate(e.to_string()))?;
    Ok(CertInfo {
        serial: cert.raw_serial_as_string(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

fn retain_unexpired(certs: Vec<&[u8]>, now: i64) -> Result<Vec<&[u8]>, RenderError> {
    let mut kept = Vec::with_capacity(certs.len());
    for der in certs {
        if parse(der)?.not_after >= now {
            kept.push(der);
        }
    }
    Ok(kept)
}

/// PEM blocks with Unix line endings, 64 characters a line, as Go's
/// `encoding/pem` writes them.
pub fn pem_blocks(tag: &str, ders: &[&[u8]]) -> Vec<u8> {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let mut out = String::new();
    for der in ders {
        out.push_str(&pem::encode_config(
            &pem::Pem::new(tag, der.to_vec()),
            config,
        ));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputFile;
    use fake_workload_api::{Ca, Svid};
    use spiffe::{TrustDomain, X509Bundle, X509BundleSet};
    use std::time::Duration;

    fn opts() -> X509Output {
        let f = |n: &str, mode| OutputFile {
            path: n.into(),
            mode,
        };
        X509Output {
            files: Some(crate::config::SvidFiles {
                svid: f("svid.pem", 0o644),
                key: f("key.pem", 0o600),
                bundle: f("bundle.pem", 0o644),
            }),
            credential_bundle: None,
            trust_bundles: None,
            add_intermediates_to_bundle: false,
            include_federated_domains: false,
            omit_expired: false,
        }
    }

    fn svid_of(s: &Svid) -> Arc<X509Svid> {
        let hint = (!s.hint.is_empty()).then(|| Arc::<str>::from(s.hint.as_str()));
        Arc::new(X509Svid::parse_from_der_with_hint(&s.chain.concat(), &s.key_pkcs8, hint).unwrap())
    }

    fn bundle(td: &str, roots: &[&Ca]) -> X509Bundle {
        let ders: Vec<Vec<u8>> = roots.iter().map(|c| c.cert_der()).collect();
        let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        X509Bundle::from_x509_authorities(TrustDomain::new(td).unwrap(), &refs).unwrap()
    }

    struct World {
        root: Ca,
        inter: Ca,
        fed: Ca,
        svid: Svid,
    }

    fn world() -> World {
        let root = Ca::root("example.org");
        let inter = root.intermediate();
        let svid = inter.issue_svid("spiffe://example.org/w", Duration::from_secs(3600));
        World {
            fed: Ca::root("federated.test"),
            root,
            inter,
            svid,
        }
    }

    fn ctx(w: &World, svids: Vec<Arc<X509Svid>>) -> X509Context {
        let mut set = X509BundleSet::new();
        set.add_bundle(bundle("example.org", &[&w.root]));
        set.add_bundle(bundle("federated.test", &[&w.fed]));
        X509Context::new(svids, set)
    }

    fn pems(ders: &[&[u8]]) -> Vec<u8> {
        pem_blocks("CERTIFICATE", ders)
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn default_layout_is_leaf_and_intermediates_then_own_roots() {
        let w = world();
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &opts(), None, now()).unwrap();
        assert_eq!(f.svid_pem, pems(&[&w.svid.chain[0], &w.inter.cert_der()]));
        assert_eq!(f.bundle_pem, pems(&[&w.root.cert_der()]));
        assert_eq!(f.spiffe_id, "spiffe://example.org/w");
        let key = String::from_utf8(f.key_pem.expose().to_vec()).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key.ends_with("-----END PRIVATE KEY-----\n"));
        let parsed = pem::parse(key).unwrap();
        assert_eq!(parsed.contents(), w.svid.key_pkcs8.as_slice());
    }

    #[test]
    fn intermediates_move_to_the_bundle_after_the_roots() {
        let w = world();
        let mut o = opts();
        o.add_intermediates_to_bundle = true;
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &o, None, now()).unwrap();
        assert_eq!(f.svid_pem, pems(&[&w.svid.chain[0]]));
        assert_eq!(
            f.bundle_pem,
            pems(&[&w.root.cert_der(), &w.inter.cert_der()])
        );
    }

    #[test]
    fn federated_roots_follow_own_roots_and_moved_intermediates() {
        let w = world();
        let mut o = opts();
        o.add_intermediates_to_bundle = true;
        o.include_federated_domains = true;
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &o, None, now()).unwrap();
        assert_eq!(
            f.bundle_pem,
            pems(&[&w.root.cert_der(), &w.inter.cert_der(), &w.fed.cert_der()])
        );
    }

    #[test]
    fn federated_roots_are_left_out_by_default() {
        let w = world();
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &opts(), None, now()).unwrap();
        assert_eq!(f.bundle_pem, pems(&[&w.root.cert_der()]));
    }

    #[test]
    fn omit_expired_drops_expired_roots_and_certificates() {
        let w = world();
        let old = Ca::expired_root("example.org");
        let mut set = X509BundleSet::new();
        set.add_bundle(bundle("example.org", &[&old, &w.root]));
        let c = X509Context::new(vec![svid_of(&w.svid)], set);
        let mut o = opts();
        let kept = render(&c, &o, None, now()).unwrap();
        assert_eq!(
            kept.bundle_pem,
            pems(&[&old.cert_der(), &w.root.cert_der()])
        );
        o.omit_expired = true;
        let f = render(&c, &o, None, now()).unwrap();
        assert_eq!(f.bundle_pem, pems(&[&w.root.cert_der()]));
        // Far in the future everything has expired, the leaf included.
        let f = render(&c, &o, None, now() + 20 * 365 * 86400).unwrap();
        assert!(f.svid_pem.is_empty());
        assert!(f.bundle_pem.is_empty());
    }

    #[test]
    fn hint_selects_the_matching_svid_or_fails_naming_it() {
        let w = world();
        let other = w
            .inter
            .issue_svid("spiffe://example.org/other", Duration::from_secs(60))
            .with_hint("internal");
        let first = Svid {
            hint: "external".into(),
            ..w.inter
                .issue_svid("spiffe://example.org/w", Duration::from_secs(60))
        };
        let c = ctx(&w, vec![svid_of(&first), svid_of(&other)]);
        let f = render(&c, &opts(), Some("internal"), now()).unwrap();
        assert_eq!(f.spiffe_id, "spiffe://example.org/other");
        assert_eq!(f.svid_pem, pems(&[&other.chain[0], &w.inter.cert_der()]));
        let f = render(&c, &opts(), None, now()).unwrap();
        assert_eq!(f.spiffe_id, "spiffe://example.org/w");
        let e = render(&c, &opts(), Some("nope"), now()).unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
    }

    #[test]
    fn missing_own_bundle_is_an_error() {
        let w = world();
        let mut set = X509BundleSet::new();
        set.add_bundle(bundle("federated.test", &[&w.fed]));
        let c = X509Context::new(vec![svid_of(&w.svid)], set);
        let e = render(&c, &opts(), None, now()).unwrap_err();
        assert!(e.to_string().contains("example.org"), "{e}");
    }

    #[test]
    fn pem_lines_are_64_characters_with_unix_endings() {
        let der = vec![7u8; 100];
        let text = String::from_utf8(pem_blocks("CERTIFICATE", &[&der])).unwrap();
        assert!(!text.contains('\r'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().unwrap(), &"-----END CERTIFICATE-----");
        assert!(text.ends_with('\n'));
    }
}
