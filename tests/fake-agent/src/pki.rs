//! Real certificates and JWTs for the fake agent: CAs, SVIDs with a
//! `spiffe://` URI SAN, and an ES256 JWT issuer whose key is published as a
//! JWKS document.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};

/// A certificate authority: its key, its parameters (to sign with) and the
/// certificates between it and the root.
pub struct Ca {
    trust_domain: String,
    key: KeyPair,
    params: CertificateParams,
    der: Vec<u8>,
    /// This CA's certificate and its parents', root excluded.
    chain_above: Vec<Vec<u8>>,
}

/// An X.509 SVID as the agent would hand it out.
#[derive(Clone, Debug)]
pub struct Svid {
    pub spiffe_id: String,
    /// Leaf first, then the intermediates (never the root).
    pub chain: Vec<Vec<u8>>,
    pub key_pkcs8: Vec<u8>,
    /// The leaf's serial number, hex.
    pub serial: String,
    pub hint: String,
}

impl Svid {
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.hint = hint.to_owned();
        self
    }

    pub fn leaf_der(&self) -> &[u8] {
        &self.chain[0]
    }
}

fn random_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("random");
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (SerialNumber::from_slice(&bytes), hex)
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn ca_params(
    trust_domain: &str,
    name: &str,
    from: time::OffsetDateTime,
    to: time::OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI(
        format!("spiffe://{trust_domain}")
            .try_into()
            .expect("URI SAN"),
    )];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Fake Workload API");
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = from;
    p.not_after = to;
    p.serial_number = Some(random_serial().0);
    p
}

impl Ca {
    /// A self-signed root for a trust domain, valid for ten years.
    pub fn root(trust_domain: &str) -> Ca {
        Self::self_signed(
            trust_domain,
            now() - time::Duration::hours(1),
            now() + time::Duration::days(3650),
        )
    }

    /// A root that expired yesterday.
    pub fn expired_root(trust_domain: &str) -> Ca {
        Self::self_signed(
            trust_domain,
            now() - time::Duration::days(3),
            now() - time::Duration::days(1),
        )
    }

    fn self_signed(trust_domain: &str, from: time::OffsetDateTime, to: time::OffsetDateTime) -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(trust_domain, &format!("{trust_domain} root"), from, to);
        let der = params.self_signed(&key).expect("self-sign").der().to_vec();
        Ca {
            trust_domain: trust_domain.to_owned(),
            key,
            params,
            der,
            chain_above: Vec::new(),
        }
    }

    /// An intermediate CA signed by this one, in the same trust domain.
    pub fn intermediate(&self) -> Ca {
        let key = KeyPair::generate().expect("key");
        let params = ca_params(
            &self.trust_domain,
            &format!("{} intermediate", self.trust_domain),
            now() - time::Duration::hours(1),
            now() + time::Duration::days(365),
        );
        let issuer = Issuer::from_params(&self.params, &self.key);
        let der = params
            .signed_by(&key, &issuer)
            .expect("sign")
            .der()
            .to_vec();
        let mut chain_above = vec![der.clone()];
        chain_above.extend(self.chain_above.iter().cloned());
        Ca {
            trust_domain: self.trust_domain.clone(),
            key,
            params,
            der,
            chain_above,
        }
    }

    pub fn cert_der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// This CA's certificate as PEM (for a real SPIRE server's
    /// `UpstreamAuthority "disk"`).
    pub fn cert_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// This CA's private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A leaf SVID valid from a minute ago for `ttl`.
    pub fn issue_svid(&self, spiffe_id: &str, ttl: Duration) -> Svid {
        self.issue_svid_between(
            spiffe_id,
            now() - time::Duration::minutes(1),
            now() + time::Duration::try_from(ttl).expect("ttl"),
        )
    }

    /// A leaf SVID that expired an hour ago.
    pub fn issue_expired_svid(&self, spiffe_id: &str) -> Svid {
        self.issue_svid_between(
            spiffe_id,
            now() - time::Duration::hours(2),
            now() - time::Duration::hours(1),
        )
    }

    fn issue_svid_between(
        &self,
        spiffe_id: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Svid {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().expect("URI SAN"))];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "SPIFFE");
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = not_before;
        p.not_after = not_after;
        let (serial, serial_hex) = random_serial();
        p.serial_number = Some(serial);
        p.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let leaf = p.signed_by(&key, &issuer).expect("sign").der().to_vec();
        let mut chain = vec![leaf];
        chain.extend(self.chain_above.iter().cloned());
        Svid {
            spiffe_id: spiffe_id.to_owned(),
            chain,
            key_pkcs8: key.serialize_der(),
            serial: serial_hex,
            hint: String::new(),
        }
    }
}

/// An ES256 JWT signer for one trust domain.
#[derive(Clone, Debug)]
pub struct JwtIssuer {
    pub trust_domain: String,
    pub kid: String,
    pkcs8: Vec<u8>,
    /// Uncompressed P-256 point: 0x04 || x || y.
    public: Vec<u8>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

impl JwtIssuer {
    pub fn new(trust_domain: &str, kid: &str) -> JwtIssuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key")
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).expect("key");
        use ring::signature::KeyPair as _;
        JwtIssuer {
            trust_domain: trust_domain.to_owned(),
            kid: kid.to_owned(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8,
        }
    }

    /// The JWKS document publishing this issuer's key.
    pub fn jwks_json(&self) -> Vec<u8> {
        let (x, y) = self.public[1..].split_at(32);
        serde_json::to_vec(&serde_json::json!({
            "keys": [{
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
                "kid": self.kid,
                "use": "jwt-svid",
            }]
        }))
        .expect("json")
    }

    /// A signed JWT-SVID for `spiffe_id`, expiring after `ttl`.
    pub fn mint(&self, spiffe_id: &str, audiences: &[String], ttl: Duration) -> String {
        let now = unix_now();
        let header = serde_json::json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let claims = serde_json::json!({
            "sub": spiffe_id,
            "aud": audiences,
            "exp": now + ttl.as_secs().max(1),
            "iat": now,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &rng)
            .expect("key");
        let sig = pair.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Checks the key id and signature; returns the claims.
    pub fn verify(&self, token: &str) -> Result<serde_json::Value, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a compact JWS".to_owned());
        };
        let decode = |p: &str| {
            URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|e| format!("bad base64url: {e}"))
        };
        let header: serde_json::Value =
            serde_json::from_slice(&decode(h)?).map_err(|e| format!("bad header: {e}"))?;
        if header["kid"] != self.kid.as_str() {
            return Err(format!("unknown key id {}", header["kid"]));
        }
        let sig = decode(s)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| "bad signature".to_owned())?;
        serde_json::from_slice(&decode(c)?).map_err(|e| format!("bad claims: {e}"))
    }
}

/// An X.509 update as the agent streams it.
#[derive(Clone, Debug, Default)]
pub struct X509Update {
    /// Each SVID with the DER roots of its own trust domain.
    pub svids: Vec<(Svid, Vec<Vec<u8>>)>,
    /// Federated trust domains (names without `spiffe://`) and their roots.
    pub federated: Vec<(String, Vec<Vec<u8>>)>,
}

/// A ready-made world: example.org with a root and an intermediate, a
/// federated trust domain, and a JWT issuer.
pub struct Pki {
    pub root: Ca,
    pub intermediate: Ca,
    pub federated: Ca,
    pub jwt: JwtIssuer,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let root = Ca::root("example.org");
        let intermediate = root.intermediate();
        Pki {
            root,
            intermediate,
            federated: Ca::root("federated.test"),
            jwt: JwtIssuer::new("example.org", "example-key-1"),
        }
    }

    /// spiffe://example.org/workload for an hour, from the intermediate.
    pub fn svid(&self) -> Svid {
        self.intermediate
            .issue_svid("spiffe://example.org/workload", Duration::from_secs(3600))
    }

    /// `svid` with the example.org bundle and the federated.test bundle.
    pub fn x509_update(&self, svid: Svid) -> X509Update {
        X509Update {
            svids: vec![(svid, vec![self.root.cert_der()])],
            federated: vec![("federated.test".to_owned(), vec![self.federated.cert_der()])],
        }
    }
}

/// The trust domain of a SPIFFE ID.
pub(crate) fn trust_domain_of(spiffe_id: &str) -> &str {
    let rest = spiffe_id.strip_prefix("spiffe://").unwrap_or(spiffe_id);
    rest.split('/').next().unwrap_or(rest)
}

pub(crate) fn now_secs() -> u64 {
    unix_now()
}

/// The public key (uncompressed P-256 point) of a PKCS#8 ECDSA P-256
/// private key, as in a certificate's SubjectPublicKeyInfo; `None` if the
/// key is not one, or its embedded public key does not belong to it (ring
/// checks the pair).
pub fn p256_public_key_of_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use ring::signature::KeyPair as _;
    let rng = SystemRandom::new();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .ok()
        .map(|pair| pair.public_key().as_ref().to_vec())
}
