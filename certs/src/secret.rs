//! Secrets: private keys that never print, and their encryption under a master key.
//!
//! A [`SecretBytes`] holds a PKCS#8 private key; its `Debug` and `Display` print `REDACTED`
//! and its memory is zeroized on drop. An [`EncryptedKey`] is that key sealed with
//! AES-256-GCM under a [`MasterKey`], bound to a caller-given label (such as the seal id)
//! used as additional authenticated data, so a ciphertext cannot be moved to another record.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

/// Longest encrypted-key string accepted by [`EncryptedKey::from_str`] (bounded parsing).
const MAX_ENCRYPTED_KEY_LEN: usize = 16 * 1024;
/// Version prefix of the compact encrypted-key string.
const VERSION_PREFIX: &str = "v1";
/// Length of a master key in bytes (AES-256).
const MASTER_KEY_LEN: usize = 32;

/// Errors of the `secret` module.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key is not 32 bytes, nor 64 hexadecimal digits.
    #[error("master key must be 32 raw bytes or 64 hex digits, found {found}")]
    MasterKeyFormat {
        /// What was found instead (a length or a character), never key material.
        found: String,
    },
    /// The encrypted-key string is not `v1.<nonce>.<ciphertext>` in unpadded base64url.
    #[error("encrypted key is malformed: {0}")]
    Malformed(&'static str),
    /// The encrypted-key string has a version this build does not know.
    #[error("encrypted key has unsupported version {0:?} (expected \"v1\")")]
    UnsupportedVersion(String),
    /// Decryption failed: wrong master key, wrong label, or tampered ciphertext.
    #[error("cannot decrypt key: wrong master key, wrong label or tampered ciphertext")]
    DecryptFailed,
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
}

/// Secret bytes, such as a PKCS#8 DER private key: prints `REDACTED`, zeroized on drop.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes that must stay secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes themselves; the name says what the call does.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a PEM `PRIVATE KEY` block (meant for PKCS#8 keys), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.expose_secret().to_vec(),
        )))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(REDACTED)")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

/// The 32-byte AES-256-GCM key that protects private keys at rest. Prints `REDACTED`.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| SecretError::Random)?;
        Ok(Self(key))
    }

    /// A master key from 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(hex: &str) -> Result<Self, SecretError> {
        let hex = hex.trim();
        if hex.len() != 2 * MASTER_KEY_LEN {
            return Err(SecretError::MasterKeyFormat {
                found: format!("{} characters", hex.len()),
            });
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        for (out, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *out = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(Self(key))
    }

    /// A master key from the bytes of a key file: exactly 32 raw bytes, or 64 hex digits
    /// optionally followed by a newline.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        if bytes.len() == MASTER_KEY_LEN {
            let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            key.copy_from_slice(bytes);
            return Ok(Self(key));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SecretError::MasterKeyFormat {
            found: format!("{} bytes that are not hex text", bytes.len()),
        })?;
        Self::from_hex(text)
    }

    fn aead_key(&self) -> LessSafeKey {
        // AES_256_GCM takes exactly 32 bytes, which MasterKey always holds.
        let unbound = UnboundKey::new(&AES_256_GCM, self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid for AES-256-GCM"));
        LessSafeKey::new(unbound)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(REDACTED)")
    }
}

fn hex_digit(c: u8) -> Result<u8, SecretError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(SecretError::MasterKeyFormat {
            found: "a character that is not a hex digit".to_owned(),
        }),
    }
}

/// A private key encrypted with AES-256-GCM under a [`MasterKey`].
///
/// String form: `v1.<nonce>.<ciphertext>`, both parts unpadded base64url; the nonce is 12
/// random bytes, the ciphertext ends with the 16-byte GCM tag, and the additional
/// authenticated data is the UTF-8 of the label given to [`EncryptedKey::encrypt`].
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptedKey {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl EncryptedKey {
    /// Encrypts `key` under `master`, bound to `label` (for example the seal id).
    pub fn encrypt(
        master: &MasterKey,
        label: &str,
        key: &SecretBytes,
    ) -> Result<Self, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Random)?;
        let mut in_out = key.expose_secret().to_vec();
        let sealed = master.aead_key().seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(label.as_bytes()),
            &mut in_out,
        );
        if sealed.is_err() {
            in_out.zeroize();
            return Err(SecretError::Random);
        }
        Ok(Self {
            nonce,
            ciphertext: in_out,
        })
    }

    /// Decrypts the key with `master`; `label` must be the one given at encryption.
    pub fn decrypt(&self, master: &MasterKey, label: &str) -> Result<SecretBytes, SecretError> {
        let mut in_out = Zeroizing::new(self.ciphertext.clone());
        let plain = master
            .aead_key()
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(label.as_bytes()),
                in_out.as_mut(),
            )
            .map_err(|_| SecretError::DecryptFailed)?;
        Ok(SecretBytes::new(plain.to_vec()))
    }
}

impl fmt::Display for EncryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION_PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(self.nonce),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        )
    }
}

impl fmt::Debug for EncryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but it is long and useless in logs.
        f.debug_struct("EncryptedKey")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl FromStr for EncryptedKey {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_ENCRYPTED_KEY_LEN {
            return Err(SecretError::Malformed("longer than 16 KiB"));
        }
        let mut parts = s.trim().split('.');
        let (Some(version), Some(nonce), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed("expected three dot-separated parts"));
        };
        if version != VERSION_PREFIX {
            return Err(SecretError::UnsupportedVersion(
                version.chars().take(16).collect(),
            ));
        }
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| SecretError::Malformed("nonce is not unpadded base64url"))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SecretError::Malformed("nonce is not 12 bytes"))?;
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| SecretError::Malformed("ciphertext is not unpadded base64url"))?;
        if ciphertext.len() < AES_256_GCM.tag_len() {
            return Err(SecretError::Malformed(
                "ciphertext shorter than the GCM tag",
            ));
        }
        Ok(Self { nonce, ciphertext })
    }
}

impl serde::Serialize for EncryptedKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EncryptedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretBytes {
        SecretBytes::new(b"pretend pkcs8 private key".to_vec())
    }

    #[test]
    fn secrets_print_redacted() {
        let secret = key();
        assert_eq!(format!("{secret:?}"), "SecretBytes(REDACTED)");
        assert_eq!(format!("{secret}"), "REDACTED");
        let master = MasterKey::generate().unwrap();
        assert_eq!(format!("{master:?}"), "MasterKey(REDACTED)");
    }

    #[test]
    fn encrypt_decrypt_round_trip_through_string() {
        let master = MasterKey::generate().unwrap();
        let enc = EncryptedKey::encrypt(&master, "seal-1", &key()).unwrap();
        let text = enc.to_string();
        assert!(text.starts_with("v1."));
        let parsed: EncryptedKey = text.parse().unwrap();
        assert_eq!(parsed, enc);
        let json = serde_json::to_string(&enc).unwrap();
        let from_json: EncryptedKey = serde_json::from_str(&json).unwrap();
        assert_eq!(
            from_json
                .decrypt(&master, "seal-1")
                .unwrap()
                .expose_secret(),
            key().expose_secret()
        );
    }

    #[test]
    fn wrong_master_key_label_or_tampering_fail() {
        let master = MasterKey::generate().unwrap();
        let enc = EncryptedKey::encrypt(&master, "seal-1", &key()).unwrap();
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            enc.decrypt(&other, "seal-1"),
            Err(SecretError::DecryptFailed)
        ));
        assert!(matches!(
            enc.decrypt(&master, "seal-2"),
            Err(SecretError::DecryptFailed)
        ));
        let mut tampered = enc.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            tampered.decrypt(&master, "seal-1"),
            Err(SecretError::DecryptFailed)
        ));
    }

    #[test]
    fn master_key_formats() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let from_hex = MasterKey::from_hex(hex).unwrap();
        let from_file = MasterKey::from_file_bytes(hex.as_bytes()).unwrap();
        assert_eq!(from_hex.0.as_ref(), from_file.0.as_ref());
        assert_eq!(from_hex.0[1], 0x11);
        assert!(MasterKey::from_file_bytes(&[7u8; 32]).is_ok());
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(MasterKey::from_file_bytes(&[0xff; 31]).is_err());
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for bad in [
            "",
            "v1",
            "v1.a",
            "v2.AAAA.BBBB",
            "v1.!!.AAAA",
            "v1.AAAA.AAAA",
            "v1.a.b.c",
        ] {
            assert!(bad.parse::<EncryptedKey>().is_err(), "{bad}");
        }
        assert!("x".repeat(20_000).parse::<EncryptedKey>().is_err());
    }
}
