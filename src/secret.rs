//! Secret material that must never reach a log line.
//!
//! [`Secret`] has a redacting `Debug`, no `Display`, and wipes its buffer
//! when dropped, so a key or a token cannot be printed by accident.

/// Bytes of a private key or a JWT.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::new(b"-----BEGIN PRIVATE KEY-----".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("27 bytes"), "{shown}");
    }
}
