//! X.509 output, pure: an X.509 context from the Workload API in, the files
//! to write out (docs/files.md), plus what the status needs to know. No I/O,
//! no clock: the caller passes `now`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spiffe::{X509Context, X509Svid};

use crate::config::X509Output;
use crate::disk::{Batch, FileWrite, OwnDir};

/// What an X.509 update rendered to.
#[derive(Debug)]
pub struct X509Render {
    /// In write order: per-trust-domain bundles, the bundle, the key, the
    /// credential bundle, and the SVID certificate last.
    pub batch: Batch,
    pub info: X509Info,
}

/// Facts about the chosen SVID and the bundles, for logs, status and
/// metrics. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Info {
    pub spiffe_id: String,
    pub hint: Option<String>,
    /// Serial number of the leaf, hex.
    pub serial: String,
    /// `NotBefore` and `NotAfter` of the leaf, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Every trust domain the agent sent, with its number of root
    /// certificates, sorted by name.
    pub bundles: Vec<(String, usize)>,
    /// Trust domains whose name cannot be a safe file name in
    /// `trust_bundles_dir`: not written.
    pub refused_trust_domains: Vec<String>,
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
    #[error("the private key the Workload API sent for {0} does not match its certificate")]
    KeyMismatch(String),
    #[error(transparent)]
    Pkcs12(#[from] crate::pkcs12::Pkcs12Error),
    #[error("the X.509 SVID the Workload API sent for {spiffe_id} expired at {not_after}: it is not written")]
    Expired {
        spiffe_id: String,
        not_after: String,
    },
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

/// Renders the files for `ctx` as docs/files.md describes. `now` (seconds
/// since the epoch) decides which certificates `omit_expired` drops.
pub fn render(
    ctx: &X509Context,
    out: &X509Output,
    hint: Option<&str>,
    now: i64,
) -> Result<X509Render, RenderError> {
    let parts = Parts::of(ctx, hint, now)?;
    let (svid_certs, bundle_certs) = parts.chains(out, now)?;
    let mut batch = Batch::default();
    let refused_trust_domains = match &out.trust_bundles {
        Some(dir) => trust_bundle_files(dir, &parts, out, now, &mut batch)?,
        None => Vec::new(),
    };
    if let Some(f) = &out.files {
        batch.writes.push(FileWrite::new(
            f.bundle.path.clone(),
            pem_blocks("CERTIFICATE", &bundle_certs),
            f.bundle.mode,
        ));
        batch.writes.push(FileWrite::new(
            f.key.path.clone(),
            pem_blocks("PRIVATE KEY", &[parts.key_der]),
            f.key.mode,
        ));
    }
    if let Some(c) = &out.credential_bundle {
        let mut text = pem_blocks("PRIVATE KEY", &[parts.key_der]);
        let chain: Vec<&[u8]> = svid_certs
            .iter()
            .copied()
            .filter(|der| !is_self_signed(der))
            .collect();
        text.extend_from_slice(&pem_blocks("CERTIFICATE", &chain));
        batch
            .writes
            .push(FileWrite::new(c.path.clone(), text, c.mode));
    }
    if let Some(p) = &out.pkcs12 {
        pkcs12_files(p, out, &parts, now, &mut batch)?;
    }
    if let Some(f) = &out.files {
        batch.writes.push(FileWrite::new(
            f.svid.path.clone(),
            pem_blocks("CERTIFICATE", &svid_certs),
            f.svid.mode,
        ));
    }
    let info = X509Info {
        spiffe_id: parts.svid.spiffe_id().to_string(),
        hint: parts.svid.hint().map(str::to_owned),
        serial: parts.leaf.serial,
        not_before: parts.leaf.not_before,
        not_after: parts.leaf.not_after,
        bundles: parts
            .bundles
            .iter()
            .map(|(name, b)| (name.to_string(), b.authorities().len()))
            .collect(),
        refused_trust_domains,
    };
    Ok(X509Render { batch, info })
}

/// Certificates (DER), in file order.
type Ders<'c> = Vec<&'c [u8]>;

/// The checked pieces of one X.509 context that the files are made of.
struct Parts<'c> {
    svid: &'c X509Svid,
    td: &'c spiffe::TrustDomain,
    bundles: &'c spiffe::X509BundleSet,
    key_der: &'c [u8],
    leaf_der: &'c [u8],
    intermediates: Vec<&'c [u8]>,
    leaf: CertInfo,
}

impl<'c> Parts<'c> {
    /// The chosen SVID, refused when it has expired, when its key does not
    /// match its certificate, or when its trust domain has no bundle.
    fn of(ctx: &'c X509Context, hint: Option<&str>, now: i64) -> Result<Self, RenderError> {
        let svid = select(ctx, hint)?;
        let td = svid.spiffe_id().trust_domain();
        let bundles = ctx.bundle_set();
        if bundles.get_ref(td).is_none() {
            return Err(RenderError::MissingBundle(td.to_string()));
        }
        let chain: Vec<&[u8]> = svid
            .cert_chain()
            .iter()
            .map(spiffe::Certificate::as_bytes)
            .collect();
        let (leaf_der, intermediates) = chain.split_first().ok_or(RenderError::NoSvid)?;
        let leaf = parse(leaf_der)?;
        // An SVID already past its NotAfter never replaces the files on disk.
        if leaf.not_after < now {
            return Err(RenderError::Expired {
                spiffe_id: svid.spiffe_id().to_string(),
                not_after: crate::clock::rfc3339(leaf.not_after),
            });
        }
        let key_der = svid.private_key().as_bytes();
        if !key_matches(key_der, &leaf.public_key) {
            return Err(RenderError::KeyMismatch(svid.spiffe_id().to_string()));
        }
        Ok(Self {
            svid,
            td,
            bundles,
            key_der,
            leaf_der,
            intermediates: intermediates.to_vec(),
            leaf,
        })
    }

    /// The certificates of the SVID file and of the bundle file.
    fn chains(&self, out: &X509Output, now: i64) -> Result<(Ders<'c>, Ders<'c>), RenderError> {
        let authorities = |b: &'c spiffe::X509Bundle| {
            b.authorities()
                .iter()
                .map(spiffe::Certificate::as_bytes)
                .collect::<Vec<_>>()
        };
        let mut svid_certs: Vec<&[u8]> = vec![self.leaf_der];
        let own = self
            .bundles
            .get_ref(self.td)
            .ok_or_else(|| RenderError::MissingBundle(self.td.to_string()))?;
        let mut bundle_certs = authorities(own);
        if out.add_intermediates_to_bundle {
            bundle_certs.extend_from_slice(&self.intermediates);
        } else {
            svid_certs.extend_from_slice(&self.intermediates);
        }
        if out.include_federated_domains {
            // The set is ordered by trust domain, so the file is stable.
            for (other, bundle) in self.bundles.iter() {
                if other != self.td {
                    bundle_certs.extend(authorities(bundle));
                }
            }
        }
        if out.omit_expired {
            svid_certs = retain_unexpired(svid_certs, now)?;
            bundle_certs = retain_unexpired(bundle_certs, now)?;
        }
        Ok((svid_certs, bundle_certs))
    }
}

/// One file per trust domain in `trust_bundles_dir` (the helper's own
/// directory: created when missing, and the trust domains the agent no
/// longer sends are removed from it). Returns the trust domains whose name
/// cannot be a safe file name.
fn trust_bundle_files(
    dir: &crate::config::TrustBundlesDir,
    parts: &Parts<'_>,
    out: &X509Output,
    now: i64,
    batch: &mut Batch,
) -> Result<Vec<String>, RenderError> {
    batch.own_dir = Some(OwnDir {
        path: dir.dir.clone(),
        managed: is_trust_bundle_name,
    });
    let mut refused = Vec::new();
    for (name, bundle) in parts.bundles.iter() {
        let Some(path) = trust_bundle_path(&dir.dir, name.as_ref()) else {
            refused.push(name.to_string());
            continue;
        };
        let mut certs: Vec<&[u8]> = bundle
            .authorities()
            .iter()
            .map(spiffe::Certificate::as_bytes)
            .collect();
        if out.omit_expired {
            certs = retain_unexpired(certs, now)?;
        }
        batch.writes.push(FileWrite::new(
            path,
            pem_blocks("CERTIFICATE", &certs),
            dir.mode,
        ));
    }
    Ok(refused)
}

/// The PKCS#12 keystore (the key with its chain, leaf first, intermediates
/// always: Java presents them) and truststore (the roots of the SVID's
/// trust domain, and of the federated ones where
/// `include_federated_domains` asks), `omit_expired` applied to both.
fn pkcs12_files(
    p: &crate::config::Pkcs12Output,
    out: &X509Output,
    parts: &Parts<'_>,
    now: i64,
    batch: &mut Batch,
) -> Result<(), RenderError> {
    if let Some(t) = &p.truststore {
        let mut roots: Vec<(String, &[u8])> = Vec::new();
        for (name, bundle) in parts.bundles.iter() {
            if name != parts.td && !out.include_federated_domains {
                continue;
            }
            let certs: Vec<&[u8]> = bundle
                .authorities()
                .iter()
                .map(spiffe::Certificate::as_bytes)
                .collect();
            let certs = if out.omit_expired {
                retain_unexpired(certs, now)?
            } else {
                certs
            };
            for (i, der) in certs.into_iter().enumerate() {
                roots.push((format!("{name}-{i}"), der));
            }
        }
        let bytes = crate::pkcs12::truststore(&roots, &p.password, p.profile)?;
        batch
            .writes
            .push(FileWrite::new(t.path.clone(), bytes, t.mode));
    }
    if let Some(k) = &p.keystore {
        let mut chain: Vec<&[u8]> = vec![parts.leaf_der];
        chain.extend_from_slice(&parts.intermediates);
        if out.omit_expired {
            chain = retain_unexpired(chain, now)?;
        }
        let bytes =
            crate::pkcs12::keystore("spiffe", parts.key_der, &chain, &p.password, p.profile)?;
        batch
            .writes
            .push(FileWrite::new(k.path.clone(), bytes, k.mode));
    }
    Ok(())
}

/// `<dir>/<trust domain>.pem`, or `None` for a name that cannot be a safe
/// file name (it could leave the directory or hide as a dot file, or is
/// too long for a file name).
pub fn trust_bundle_path(dir: &Path, trust_domain: &str) -> Option<PathBuf> {
    // `.pem` must fit too: a name over 255 bytes cannot be created.
    let safe = !trust_domain.is_empty()
        && trust_domain.len() + ".pem".len() <= 255
        && !trust_domain.starts_with('.')
        && trust_domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    safe.then(|| dir.join(format!("{trust_domain}.pem")))
}

/// Whether a file name in `trust_bundles_dir` is one the helper manages:
/// a safe trust-domain name followed by `.pem`.
pub fn is_trust_bundle_name(name: &str) -> bool {
    name.strip_suffix(".pem")
        .is_some_and(|td| trust_bundle_path(Path::new(""), td).is_some())
}

struct CertInfo {
    serial: String,
    not_before: i64,
    not_after: i64,
    public_key: PublicKey,
}

/// The parts of a public key that a private key can be checked against.
enum PublicKey {
    /// The uncompressed or compressed EC point.
    Ec(Vec<u8>),
    /// RSA modulus and exponent, without leading zeros.
    Rsa(Vec<u8>, Vec<u8>),
    Other,
}

fn parse(der: &[u8]) -> Result<CertInfo, RenderError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| RenderError::BadCertificate(e.to_string()))?;
    let spki = cert.public_key();
    let public_key = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(point)) => PublicKey::Ec(point.data().to_vec()),
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            PublicKey::Rsa(strip_zeros(rsa.modulus), strip_zeros(rsa.exponent))
        }
        _ => PublicKey::Other,
    };
    Ok(CertInfo {
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        public_key,
    })
}

fn is_self_signed(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, c)| c.subject() == c.issuer() && c.is_ca())
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[i..].to_vec()
}

/// Whether the PKCS#8 key belongs to the certificate's public key. EC keys
/// carry their public point (RFC 5915, as SPIRE and most tools write them)
/// and RSA keys their modulus; a key form that carries neither cannot be
/// checked without doing cryptography and is accepted.
fn key_matches(pkcs8: &[u8], public: &PublicKey) -> bool {
    // The same decoding the spiffe crate applies to the key it hands over.
    let Ok(info) = pkcs8::PrivateKeyInfoRef::try_from(pkcs8) else {
        return false;
    };
    let key = info.private_key.as_bytes();
    match public {
        // An EC certificate needs an EC key; its point is compared when the
        // key carries it.
        PublicKey::Ec(point) => {
            info.algorithm.oid == OID_EC_PUBLIC_KEY
                && match ec_public_point(key) {
                    Some(EcPoint::Carried(p)) => p == point.as_slice(),
                    Some(EcPoint::Absent) => true,
                    None => false,
                }
        }
        PublicKey::Rsa(n, e) => rsa_modulus_exponent(key)
            .is_some_and(|(kn, ke)| strip_zeros(kn) == *n && strip_zeros(ke) == *e),
        PublicKey::Other => true,
    }
}

/// `id-ecPublicKey` (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// What an RFC 5915 `ECPrivateKey` says of its public point.
enum EcPoint<'k> {
    /// Its optional `publicKey [1] BIT STRING`.
    Carried(&'k [u8]),
    /// A well-formed key without it.
    Absent,
}

/// The public point of an RFC 5915 `ECPrivateKey` (`None`: not such a
/// key), read with the DER parser the certificates are read with.
fn ec_public_point(key: &[u8]) -> Option<EcPoint<'_>> {
    use x509_parser::der_parser::ber::{BerObjectContent, Class};
    use x509_parser::der_parser::der::parse_der;
    let (_, obj) = parse_der(key).ok()?;
    let items = obj.as_sequence().ok()?;
    let [version, private_key, optional @ ..] = items.as_slice() else {
        return None;
    };
    version.as_u32().ok()?;
    private_key.as_slice().ok()?;
    for item in optional {
        if item.header.class() != Class::ContextSpecific || item.header.tag().0 != 1 {
            continue;
        }
        let BerObjectContent::Unknown(any) = &item.content else {
            return None;
        };
        let (_, bits) = parse_der(any.data).ok()?;
        let BerObjectContent::BitString(_, b) = bits.content else {
            return None;
        };
        return Some(EcPoint::Carried(b.data));
    }
    Some(EcPoint::Absent)
}

/// Modulus and public exponent of a PKCS#1 `RSAPrivateKey`.
fn rsa_modulus_exponent(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, obj) = x509_parser::der_parser::der::parse_der(key).ok()?;
    let items = obj.as_sequence().ok()?;
    let [_version, n, e, ..] = items.as_slice() else {
        return None;
    };
    Some((n.as_slice().ok()?, e.as_slice().ok()?))
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
            pkcs12: None,
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

    fn bytes(r: &X509Render, name: &str) -> Vec<u8> {
        r.batch
            .writes
            .iter()
            .find(|w| w.path == Path::new(name))
            .map_or_else(
                || panic!("{name} not rendered"),
                |w| w.bytes.expose().to_vec(),
            )
    }

    fn pems(ders: &[&[u8]]) -> Vec<u8> {
        pem_blocks("CERTIFICATE", ders)
    }

    fn now() -> i64 {
        crate::clock::unix_now()
    }

    #[test]
    fn default_layout_is_leaf_and_intermediates_then_own_roots() {
        let w = world();
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &opts(), None, now()).unwrap();
        assert_eq!(
            bytes(&f, "svid.pem"),
            pems(&[&w.svid.chain[0], &w.inter.cert_der()])
        );
        assert_eq!(bytes(&f, "bundle.pem"), pems(&[&w.root.cert_der()]));
        assert_eq!(f.info.spiffe_id, "spiffe://example.org/w");
        let key = String::from_utf8(bytes(&f, "key.pem")).unwrap();
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
        assert_eq!(bytes(&f, "svid.pem"), pems(&[&w.svid.chain[0]]));
        assert_eq!(
            bytes(&f, "bundle.pem"),
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
            bytes(&f, "bundle.pem"),
            pems(&[&w.root.cert_der(), &w.inter.cert_der(), &w.fed.cert_der()])
        );
    }

    #[test]
    fn federated_roots_are_left_out_by_default() {
        let w = world();
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &opts(), None, now()).unwrap();
        assert_eq!(bytes(&f, "bundle.pem"), pems(&[&w.root.cert_der()]));
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
            bytes(&kept, "bundle.pem"),
            pems(&[&old.cert_der(), &w.root.cert_der()])
        );
        o.omit_expired = true;
        let f = render(&c, &o, None, now()).unwrap();
        assert_eq!(bytes(&f, "bundle.pem"), pems(&[&w.root.cert_der()]));
        // Far in the future the leaf has expired: nothing is rendered.
        let err = render(&c, &o, None, now() + 20 * 365 * 86400).unwrap_err();
        assert!(matches!(err, RenderError::Expired { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("spiffe://example.org/w expired at"),
            "{err}"
        );
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
        assert_eq!(f.info.spiffe_id, "spiffe://example.org/other");
        assert_eq!(
            bytes(&f, "svid.pem"),
            pems(&[&other.chain[0], &w.inter.cert_der()])
        );
        let f = render(&c, &opts(), None, now()).unwrap();
        assert_eq!(f.info.spiffe_id, "spiffe://example.org/w");
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
    /// A 512-bit RSA certificate (self-signed CA, `openssl req -x509`), its
    /// PKCS#8 key, and another RSA key with the same public exponent.
    /// The lengths are in DER's long form and the modulus has a leading
    /// zero byte, as RSA keys usually do.
    const RSA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfzCCASmgAwIBAgIUbN9Vn1RgWxMxryQuzp8HFyjhA5gwDQYJKoZIhvcNAQEL
BQAwEzERMA8GA1UEAwwIcnNhLXRlc3QwIBcNMjYxMjAyMDUwOTQ2WhgPMjEyNjEx
MDgwNTA5NDZaMBMxETAPBgNVBAMMCHJzYS10ZXN0MFwwDQYJKoZIhvcNAQEBBQAD
SwAwSAJBAM5JruXxzjhga0FzhLNeCldbjZFoN8fyyRcCfIulGLoDUMcD0HuvxRKF
d6NZe64mqvOwKUFgmIIVMogfktIuNK8CAwEAAaNTMFEwHQYDVR0OBBYEFKoz5qRt
lx5OaMrLiqNwp+DrxKs2MB8GA1UdIwQYMBaAFKoz5qRtlx5OaMrLiqNwp+DrxKs2
MA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcNAQELBQADQQC/vAX05wY2flEXZ+ST
J0hWQrEgGFL3xeUwbekBKFoMiM4fYlBjJZYJZ+ZMow0+w8kHnptZBuW+swzoOppq
wrMM
-----END CERTIFICATE-----
";
    const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAzkmu5fHOOGBrQXOE
s14KV1uNkWg3x/LJFwJ8i6UYugNQxwPQe6/FEoV3o1l7riaq87ApQWCYghUyiB+S
0i40rwIDAQABAkACh9zhbUn+XxBxyR0Dpk+yKqld801b4pqc8abdf7UB8yrSQBRu
i+38J/Mg+PP6zlaUsR/EKOnm25SGVBPwFcZBAiEA7a6wtAbL5YjaINBg1ZWsto83
O1GBBKMTYydD71q4QccCIQDeL5mUnYgAn/qIM73CMTYCthQqqZtrMAwyHSnh0p31
2QIhANQELCOqnF8YAFudBYQAi5wdjIshXREh1r1v3S25ovspAiAdYvZRLbS7QG2G
bjF+6btXCHYKXnxr5OL4DdtoPs8doQIhAIY9vYDyNYtBRRDqLyFYxPBs/aqbIBPO
bdHIdqziWoHj
-----END PRIVATE KEY-----
";
    const OTHER_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAqf1qJ3DLPrUnHFAX
Q1I7beqkSvbpBjWo2FTmjnSxmDyt18m2yDorsz5lFwqx32CrlU0drenPxL4KsbXX
74RkgQIDAQABAkEAnIE2JM3SMg+yzHxojpC9Knune2VMMW1h4Jp6EpoZkCB9fj8G
4yLtDXDzkCzvjRBWUK5yw8Q6+0hgX40sHr9eAQIhANMnl/iX0hI9R5u0ibtTOWFS
4t4/i72/acYwkTBIopiRAiEAzhe1BIzogHCM24WmEkuP5NPakrc4UtXa9+fnp19I
hPECIAUgRfE0BlaJBE8EX/+bMp5pO7a3hjXyCqhUD4JDkSbxAiAH6XkVl6NFawy9
UMAza5s2mbuGbmpHI9aoNcr67fmGwQIgU2qiSRNnvfFA2bVrfxhxb04s6Bi+3InH
A6XbSmhRKEw=
-----END PRIVATE KEY-----
";

    fn der_of(pem_text: &str) -> Vec<u8> {
        pem::parse(pem_text).unwrap().into_contents()
    }

    /// One DER element with `content`, in short or long form.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap());
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// A PKCS#8 EC key around an RFC 5915 `ECPrivateKey` holding the given
    /// optional `[0]` parameters and `[1]` public point.
    fn ec_pkcs8(params: bool, point: Option<&[u8]>) -> Vec<u8> {
        const EC_PUBLIC_KEY: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const PRIME256V1: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let mut ec = tlv(0x02, &[1]);
        ec.extend(tlv(0x04, &[0x11; 32]));
        if params {
            ec.extend(tlv(0xa0, &tlv(0x06, &PRIME256V1)));
        }
        if let Some(p) = point {
            let mut bits = vec![0];
            bits.extend_from_slice(p);
            ec.extend(tlv(0xa1, &tlv(0x03, &bits)));
        }
        let mut alg = tlv(0x06, &EC_PUBLIC_KEY);
        alg.extend(tlv(0x06, &PRIME256V1));
        let mut info = tlv(0x02, &[0]);
        info.extend(tlv(0x30, &alg));
        info.extend(tlv(0x04, &tlv(0x30, &ec)));
        tlv(0x30, &info)
    }

    #[test]
    fn strip_zeros_drops_leading_zero_bytes_only() {
        assert_eq!(strip_zeros(&[0, 0, 1, 0]), [1, 0]);
        assert_eq!(strip_zeros(&[5, 0]), [5, 0]);
        assert_eq!(strip_zeros(&[0, 0]), Vec::<u8>::new());
        assert_eq!(strip_zeros(&[]), Vec::<u8>::new());
    }

    #[test]
    fn ec_keys_are_matched_by_their_public_point() {
        let w = world();
        let leaf = parse(&w.svid.chain[0]).unwrap();
        let PublicKey::Ec(point) = &leaf.public_key else {
            panic!("the leaf's key is not EC");
        };
        assert_eq!(point.len(), 65);
        assert!(key_matches(&w.svid.key_pkcs8, &leaf.public_key));
        let other = w
            .inter
            .issue_svid("spiffe://example.org/x", Duration::from_secs(60));
        assert!(!key_matches(&other.key_pkcs8, &leaf.public_key));
        // Hand-made keys: the point after the [0] parameters is found.
        assert!(key_matches(&ec_pkcs8(true, Some(point)), &leaf.public_key));
        assert!(key_matches(&ec_pkcs8(false, Some(point)), &leaf.public_key));
        let mut wrong = point.clone();
        wrong[64] ^= 1;
        assert!(!key_matches(
            &ec_pkcs8(true, Some(&wrong)),
            &leaf.public_key
        ));
        assert!(!key_matches(
            &ec_pkcs8(false, Some(&wrong)),
            &leaf.public_key
        ));
        // A key without its public point cannot be checked: accepted.
        assert!(key_matches(&ec_pkcs8(true, None), &leaf.public_key));
        assert!(key_matches(&ec_pkcs8(false, None), &leaf.public_key));
        // Not PKCS#8 at all: refused.
        assert!(!key_matches(&[], &leaf.public_key));
        assert!(!key_matches(&tlv(0x30, &tlv(0x02, &[0])), &leaf.public_key));
        assert!(!key_matches(&w.svid.chain[0], &leaf.public_key));
    }

    #[test]
    fn rsa_keys_are_matched_by_modulus_and_exponent() {
        let cert = der_of(RSA_CERT);
        let info = parse(&cert).unwrap();
        let PublicKey::Rsa(n, e) = &info.public_key else {
            panic!("the certificate's key is not RSA");
        };
        assert_eq!(n.len(), 64, "512 bits, without the leading zero");
        assert_ne!(n[0], 0);
        assert_eq!(e, &[1, 0, 1]);
        let key = der_of(RSA_KEY);
        assert!(key_matches(&key, &info.public_key));
        // Same exponent, another modulus.
        assert!(!key_matches(&der_of(OTHER_RSA_KEY), &info.public_key));
        // The modulus alone is not enough.
        assert!(!key_matches(&key, &PublicKey::Rsa(n.clone(), vec![3])));
        // An EC key never matches an RSA certificate.
        assert!(!key_matches(&world().svid.key_pkcs8, &info.public_key));
    }

    #[test]
    fn a_key_that_does_not_match_the_leaf_is_refused() {
        let w = world();
        let other = w
            .inter
            .issue_svid("spiffe://example.org/other", Duration::from_secs(60));
        let mismatched =
            X509Svid::parse_from_der(&w.svid.chain.concat(), &other.key_pkcs8).unwrap();
        let e = render(&ctx(&w, vec![Arc::new(mismatched)]), &opts(), None, now()).unwrap_err();
        assert!(matches!(e, RenderError::KeyMismatch(_)), "{e}");
        assert!(e.to_string().contains("spiffe://example.org/w"), "{e}");
    }

    #[test]
    fn only_a_self_signed_ca_is_self_signed() {
        let w = world();
        assert!(is_self_signed(&w.root.cert_der()));
        assert!(is_self_signed(&der_of(RSA_CERT)));
        assert!(
            !is_self_signed(&w.inter.cert_der()),
            "a CA, not self-signed"
        );
        assert!(
            !is_self_signed(&w.svid.chain[0]),
            "signed by the intermediate"
        );
        assert!(!is_self_signed(b"not a certificate"));
    }

    fn paths(r: &X509Render) -> Vec<PathBuf> {
        r.batch.writes.iter().map(|w| w.path.clone()).collect()
    }

    #[test]
    fn files_are_written_bundle_then_key_then_certificate_last() {
        let w = world();
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &opts(), None, now()).unwrap();
        assert_eq!(
            paths(&f),
            [
                PathBuf::from("bundle.pem"),
                "key.pem".into(),
                "svid.pem".into()
            ]
        );
        assert_eq!(
            f.batch.writes.iter().map(|w| w.mode).collect::<Vec<_>>(),
            [0o644, 0o600, 0o644]
        );
        assert!(f.batch.own_dir.is_none());
    }

    #[test]
    fn credential_bundle_is_key_then_chain_without_a_root_before_the_certificate() {
        let w = world();
        // An agent may send the root in the chain: it is left out here.
        let with_root = Svid {
            chain: vec![
                w.svid.chain[0].clone(),
                w.inter.cert_der(),
                w.root.cert_der(),
            ],
            ..w.svid.clone()
        };
        let mut o = opts();
        o.credential_bundle = Some(OutputFile {
            path: "cred.pem".into(),
            mode: 0o640,
        });
        let f = render(&ctx(&w, vec![svid_of(&with_root)]), &o, None, now()).unwrap();
        assert_eq!(
            paths(&f),
            [
                PathBuf::from("bundle.pem"),
                "key.pem".into(),
                "cred.pem".into(),
                "svid.pem".into()
            ]
        );
        let mut want = pem_blocks("PRIVATE KEY", &[&w.svid.key_pkcs8]);
        want.extend(pems(&[&w.svid.chain[0], &w.inter.cert_der()]));
        assert_eq!(bytes(&f, "cred.pem"), want);
        assert_eq!(f.batch.writes[2].mode, 0o640);
        // The SVID file keeps the chain as sent.
        assert_eq!(
            bytes(&f, "svid.pem"),
            pems(&[&w.svid.chain[0], &w.inter.cert_der(), &w.root.cert_der()])
        );
        // Without the separate files, only the credential bundle.
        o.files = None;
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &o, None, now()).unwrap();
        assert_eq!(paths(&f), [PathBuf::from("cred.pem")]);
    }

    #[test]
    fn trust_bundles_dir_gets_one_file_per_trust_domain_first() {
        let w = world();
        let mut o = opts();
        o.trust_bundles = Some(crate::config::TrustBundlesDir {
            dir: "tb".into(),
            mode: 0o644,
        });
        let f = render(&ctx(&w, vec![svid_of(&w.svid)]), &o, None, now()).unwrap();
        assert_eq!(
            paths(&f),
            [
                PathBuf::from("tb/example.org.pem"),
                "tb/federated.test.pem".into(),
                "bundle.pem".into(),
                "key.pem".into(),
                "svid.pem".into()
            ]
        );
        assert_eq!(bytes(&f, "tb/example.org.pem"), pems(&[&w.root.cert_der()]));
        assert_eq!(
            bytes(&f, "tb/federated.test.pem"),
            pems(&[&w.fed.cert_der()])
        );
        // Never merged into the bundle file unless asked.
        assert_eq!(bytes(&f, "bundle.pem"), pems(&[&w.root.cert_der()]));
        assert_eq!(
            f.info.bundles,
            [
                ("example.org".to_owned(), 1),
                ("federated.test".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn trust_bundle_file_names_are_safe_trust_domain_names_only() {
        let dir = Path::new("tb");
        assert_eq!(
            trust_bundle_path(dir, "example.org"),
            Some(PathBuf::from("tb/example.org.pem"))
        );
        assert_eq!(
            trust_bundle_path(dir, "a-b_c.9"),
            Some(PathBuf::from("tb/a-b_c.9.pem"))
        );
        assert_eq!(
            trust_bundle_path(dir, "123"),
            Some(PathBuf::from("tb/123.pem"))
        );
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "Upper.org",
            "a b",
            "a:b",
            "é.org",
        ] {
            assert_eq!(trust_bundle_path(dir, bad), None, "{bad:?}");
        }
        assert!(is_trust_bundle_name("example.org.pem"));
        assert!(is_trust_bundle_name("a-b.pem"));
        for bad in [
            "example.org",
            ".x.pem",
            "x.PEM",
            "X.pem",
            ".pem",
            "a/b.pem",
            "x.pem.tmp",
        ] {
            assert!(!is_trust_bundle_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn stale_trust_bundles_are_managed_files_the_batch_does_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.test.pem",
            "b.test.pem",
            "c.test.pem",
            "notes.txt",
            ".hidden.pem",
            "B.pem",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::create_dir(d.join("dir.test.pem")).unwrap();
        let batch = Batch {
            writes: vec![
                FileWrite::new(d.join("a.test.pem"), b"x".to_vec(), 0o644),
                FileWrite::new(d.join("new.test.pem"), b"x".to_vec(), 0o644),
            ],
            own_dir: Some(OwnDir {
                path: d.to_path_buf(),
                managed: is_trust_bundle_name,
            }),
        };
        let root = crate::disk::Root::new(d);
        let done = crate::disk::commit(&root, &batch, true).unwrap();
        assert_eq!(done.removed, [d.join("b.test.pem"), d.join("c.test.pem")]);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".hidden.pem",
                "B.pem",
                "a.test.pem",
                "dir.test.pem",
                "new.test.pem",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn an_rsa_key_never_matches_an_ec_certificate() {
        let w = world();
        let leaf = parse(&w.svid.chain[0]).unwrap();
        assert!(!key_matches(&der_of(RSA_KEY), &leaf.public_key));
    }
}
