//! ECDSA P-256 with SHA-256 keys, the only key type of Bohai seals and city CAs.
//!
//! Generation, signing and verification go through `ring`; keys travel as PKCS#8 DER in a
//! [`SecretBytes`]. Signatures are ASN.1 DER `Ecdsa-Sig-Value`s, as OpenSSL makes and checks.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::secret::SecretBytes;

/// Errors about private keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not a PKCS#8 ECDSA P-256 private key (other key types are not supported).
    #[error("not a PKCS#8 ECDSA P-256 private key")]
    NotP256Pkcs8,
    /// The PEM text has no `PRIVATE KEY` block.
    #[error("no PEM \"PRIVATE KEY\" (PKCS#8) block found: {0}")]
    Pem(String),
    /// The private key does not belong to the certificate it was given with.
    #[error("private key does not match the certificate's public key")]
    Mismatch,
    /// Key generation or signing failed in the crypto library.
    #[error("crypto library failure: {0}")]
    Crypto(&'static str),
}

/// A loaded P-256 signing key. Prints `REDACTED`.
pub(crate) struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(REDACTED)")
    }
}

impl SigningKey {
    /// Loads a PKCS#8 P-256 key.
    pub(crate) fn from_pkcs8(key: &SecretBytes) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.expose_secret(), &rng)
                .map_err(|_| KeyError::NotP256Pkcs8)?;
        Ok(Self { pair, rng })
    }

    /// ECDSA P-256 SHA-256 signature (ASN.1 DER) over `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&self.rng, message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| KeyError::Crypto("ECDSA signing failed"))
    }

    /// The uncompressed public point (65 bytes), as in a certificate's SPKI.
    pub(crate) fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Checks that this key belongs to the certificate public point `cert_point`: the points
    /// must be equal and a probe signature must verify with the certificate's key.
    pub(crate) fn check_matches(&self, cert_point: &[u8]) -> Result<(), KeyError> {
        if self.public_point() != cert_point {
            return Err(KeyError::Mismatch);
        }
        let probe = b"bohai key/certificate match probe";
        let sig = self.sign(probe)?;
        verify_p256(cert_point, probe, &sig).map_err(|()| KeyError::Mismatch)
    }
}

/// Generates a fresh P-256 key pair as PKCS#8 DER.
pub(crate) fn generate_p256() -> Result<SecretBytes, KeyError> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .map_err(|_| KeyError::Crypto("P-256 key generation failed"))?;
    Ok(SecretBytes::new(doc.as_ref().to_vec()))
}

/// The key as an rcgen key pair, to sign certificates and CRLs.
pub(crate) fn rcgen_key_pair(key: &SecretBytes) -> Result<rcgen::KeyPair, KeyError> {
    let der = PrivatePkcs8KeyDer::from(key.expose_secret());
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|_| KeyError::NotP256Pkcs8)
}

/// Reads a PEM `PRIVATE KEY` (PKCS#8) block.
pub(crate) fn pkcs8_from_pem(pem_text: &str) -> Result<SecretBytes, KeyError> {
    let block = pem::parse(pem_text).map_err(|e| KeyError::Pem(e.to_string()))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(KeyError::Pem(format!(
            "found a {:?} block; convert it with `openssl pkcs8 -topk8 -nocrypt`",
            block.tag()
        )));
    }
    Ok(SecretBytes::new(block.into_contents()))
}

/// Verifies an ECDSA P-256 SHA-256 ASN.1 signature with an uncompressed public point.
pub(crate) fn verify_p256(public_point: &[u8], message: &[u8], signature: &[u8]) -> Result<(), ()> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_point)
        .verify(message, signature)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_match() {
        let key = generate_p256().unwrap();
        let signer = SigningKey::from_pkcs8(&key).unwrap();
        let sig = signer.sign(b"hello").unwrap();
        assert!(verify_p256(signer.public_point(), b"hello", &sig).is_ok());
        assert!(verify_p256(signer.public_point(), b"hellO", &sig).is_err());
        signer.check_matches(signer.public_point()).unwrap();
        let other = SigningKey::from_pkcs8(&generate_p256().unwrap()).unwrap();
        assert!(matches!(
            signer.check_matches(other.public_point()),
            Err(KeyError::Mismatch)
        ));
        assert_eq!(format!("{signer:?}"), "SigningKey(REDACTED)");
        rcgen_key_pair(&key).unwrap();
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKey::from_pkcs8(&SecretBytes::new(vec![1, 2, 3])).is_err());
        assert!(pkcs8_from_pem(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
