//! PKCS#12 keystores and truststores for Java workloads (docs/files.md):
//! the key with its chain, leaf first, in a keystore; the bundle's roots as
//! trusted certificates (with the trusted-key-usage attribute Java needs
//! to see them as trust anchors) in a truststore.
//!
//! A PKCS#12 file holds random salts, so writing the same contents twice
//! gives different bytes. The last file built for each output is kept with
//! what it was built from and handed out again for the same contents, so
//! an unchanged update is still recognised as unchanged on disk.

use std::sync::Mutex;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

/// `pkcs12_profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256, an HMAC-SHA256 MAC.
    #[default]
    Modern,
    /// 3DES and a SHA-1 MAC, for old readers.
    Legacy,
}

/// Why a PKCS#12 file could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the PKCS#12 {what}: {reason}")]
pub struct Pkcs12Error {
    what: &'static str,
    reason: String,
}

/// What a file was built from, to hand the same bytes out again.
#[derive(PartialEq, Eq)]
struct Inputs {
    ders: Vec<Vec<u8>>,
    aliases: Vec<String>,
    password: Vec<u8>,
    profile: Profile,
}

impl Drop for Inputs {
    fn drop(&mut self) {
        for d in &mut self.ders {
            zeroize::Zeroize::zeroize(d);
        }
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// A file built, with what it was built from.
type Built = Option<(Inputs, Vec<u8>)>;

/// The last keystore and truststore built (one of each per process: the
/// configuration has one of each).
static LAST: Mutex<[Built; 2]> = Mutex::new([None, None]);

fn cached(
    slot: usize,
    inputs: Inputs,
    build: impl FnOnce() -> Result<Vec<u8>, Pkcs12Error>,
) -> Result<Vec<u8>, Pkcs12Error> {
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((was, bytes)) = &last[slot] {
        if *was == inputs {
            return Ok(bytes.clone());
        }
    }
    let bytes = build()?;
    last[slot] = Some((inputs, bytes.clone()));
    Ok(bytes)
}

fn write(
    store: &KeyStore,
    password: &str,
    profile: Profile,
    what: &'static str,
) -> Result<Vec<u8>, Pkcs12Error> {
    let writer = store.writer(password);
    let writer = match profile {
        Profile::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256),
        Profile::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1),
    };
    writer.write().map_err(|e| Pkcs12Error {
        what,
        reason: e.to_string(),
    })
}

/// A keystore: the PKCS#8 key with its chain (leaf first), under the alias
/// `alias`.
pub fn keystore(
    alias: &str,
    key_pkcs8: &[u8],
    chain: &[&[u8]],
    password: &str,
    profile: Profile,
) -> Result<Vec<u8>, Pkcs12Error> {
    let err = |e: p12_keystore::error::Error| Pkcs12Error {
        what: "keystore",
        reason: e.to_string(),
    };
    let mut ders = vec![key_pkcs8.to_vec()];
    ders.extend(chain.iter().map(|c| c.to_vec()));
    let inputs = Inputs {
        ders,
        aliases: vec![alias.to_owned()],
        password: password.as_bytes().to_vec(),
        profile,
    };
    cached(0, inputs, || {
        let key = PrivateKey::from_der(key_pkcs8).map_err(err)?;
        let certs = chain
            .iter()
            .map(|der| Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut store = KeyStore::new();
        // The leaf's key ID ties the key to its certificate.
        let id = alias.as_bytes().to_vec();
        store.add_entry(
            alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id, key, certs)),
        );
        write(&store, password, profile, "keystore")
    })
}

/// A truststore: each `(alias, certificate)` as a trusted certificate.
pub fn truststore(
    roots: &[(String, &[u8])],
    password: &str,
    profile: Profile,
) -> Result<Vec<u8>, Pkcs12Error> {
    let inputs = Inputs {
        ders: roots.iter().map(|(_, d)| d.to_vec()).collect(),
        aliases: roots.iter().map(|(a, _)| a.clone()).collect(),
        password: password.as_bytes().to_vec(),
        profile,
    };
    cached(1, inputs, || {
        let mut store = KeyStore::new();
        for (alias, der) in roots {
            let cert = Certificate::from_der(der).map_err(|e| Pkcs12Error {
                what: "truststore",
                reason: e.to_string(),
            })?;
            store.add_entry(alias, KeyStoreEntry::Certificate(cert));
        }
        write(&store, password, profile, "truststore")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der() -> Vec<u8> {
        fake_workload_api::Ca::root("example.org").cert_der()
    }

    #[test]
    fn the_same_contents_give_the_same_bytes_and_new_contents_new_ones() {
        let der = cert_der();
        let roots = [("a-0".to_owned(), der.as_slice())];
        let first = truststore(&roots, "changeit", Profile::Modern).unwrap();
        assert_eq!(
            truststore(&roots, "changeit", Profile::Modern).unwrap(),
            first
        );
        // Another password or profile is another file.
        assert_ne!(truststore(&roots, "other", Profile::Modern).unwrap(), first);
        assert_ne!(truststore(&roots, "other", Profile::Legacy).unwrap(), first);
        // And it reads back as one trusted certificate.
        let store = p12_keystore::KeyStore::from_pkcs12(
            &truststore(&roots, "other", Profile::Legacy).unwrap(),
            "other",
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .unwrap();
        assert_eq!(store.entries_len(), 1);
    }
}
