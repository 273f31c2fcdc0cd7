//! The real SPIRE deployment of the drop-in tests (`fake_workload_api::
//! spire`, shared with the benchmarks), and what the tests check of the
//! certificates it issues.

pub use fake_workload_api::spire::*;

/// What the drop-in tests check of a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// The first URI SAN.
    pub spiffe_id: Option<String>,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub is_ca: bool,
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Every block of a PEM file, which must all be `CERTIFICATE`s that parse.
#[track_caller]
pub fn certs_in(pem_bytes: &[u8]) -> Vec<CertInfo> {
    let blocks = pem::parse_many(pem_bytes).expect("PEM");
    blocks
        .iter()
        .map(|b| {
            assert_eq!(b.tag(), "CERTIFICATE", "unexpected PEM block");
            let (rest, cert) =
                x509_parser::parse_x509_certificate(b.contents()).expect("X.509 certificate");
            assert!(rest.is_empty(), "trailing bytes after a certificate");
            let spiffe_id = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .and_then(|san| {
                    san.value.general_names.iter().find_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                        _ => None,
                    })
                });
            CertInfo {
                der: b.contents().to_vec(),
                spiffe_id,
                serial: cert
                    .raw_serial()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
                is_ca: cert.is_ca(),
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_after: cert.validity().not_after.timestamp(),
            }
        })
        .collect()
}

/// Whether the `PRIVATE KEY` PEM file (exactly one block, PKCS#8) holds
/// the private key of the certificate `cert_der`.
#[track_caller]
pub fn key_matches(key_pem: &[u8], cert_der: &[u8]) -> bool {
    let blocks = pem::parse_many(key_pem).expect("PEM");
    assert_eq!(blocks.len(), 1, "the key file holds one PEM block");
    assert_eq!(blocks[0].tag(), "PRIVATE KEY");
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("X.509");
    let public = fake_workload_api::p256_public_key_of_pkcs8(blocks[0].contents())
        .expect("a PKCS#8 P-256 key whose public half belongs to it");
    public == cert.public_key().subject_public_key.data.as_ref()
}
