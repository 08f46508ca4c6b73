//! The compact (QR) form of a licence: no certificate chain, a key id into the trust bundle.
//!
//! `BHL1:` + base45( zlib( COSE_Sign1 ) ), the layout the EU Digital COVID Certificate made
//! familiar to phone cameras: the COSE_Sign1 (RFC 9052) has protected header
//! `{1: -7 (ES256), 4: kid}` (kid = the 8-byte key id of the seal certificate, see
//! [`super::key_id`]), the payload is the licence claims in CBOR (the same claims as the JWS
//! form), and the signature is ES256 `R || S` over the COSE `Sig_structure`.

use std::io::{Read as _, Write as _};

use coset::{iana, CborSerializable as _, CoseSign1, CoseSign1Builder, HeaderBuilder};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

use super::document::{Licence, LicenceClaims, SealLicenceError, StatusListRef};
use super::jws::{key_id, sign_fixed};
use crate::cert_facts::hex_lower;
use crate::seal::{sha256, SealKey};

/// Prefix of a Bohai licence QR payload (version 1).
pub const QR_PREFIX: &str = "BHL1:";
/// Largest QR payload text accepted (a version-40 QR code holds 4,296 alphanumerics).
const MAX_QR_TEXT: usize = 8 * 1024;
/// Largest decompressed COSE object accepted.
const MAX_COSE_LEN: usize = 64 * 1024;

/// A compact licence read from a QR payload, not yet verified.
#[derive(Debug, Clone)]
pub struct CompactLicence {
    /// The claims.
    pub claims: LicenceClaims,
    /// Key id of the sealing certificate (hex).
    pub kid: String,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl CompactLicence {
    /// Checks the ES256 signature with an uncompressed P-256 public point.
    pub fn verify_with_point(&self, point: &[u8]) -> Result<(), super::JwsError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(&self.tbs, &self.signature)
            .map_err(|_| super::JwsError::Signature)
    }
}

/// Seals `licence` in the compact form with the issuing department's `seal`.
pub fn seal_compact(
    seal: &SealKey,
    licence: Licence,
    status: StatusListRef,
) -> Result<String, SealLicenceError> {
    let claims = LicenceClaims::new(licence, status);
    claims
        .check_consistency()
        .map_err(SealLicenceError::Inconsistent)?;
    let mut payload = Vec::new();
    ciborium::into_writer(&claims, &mut payload)
        .map_err(|e| SealLicenceError::Inconsistent(format!("CBOR: {e}")))?;
    let kid = sha256(seal.cert_der())[..8].to_vec();
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(kid)
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .try_create_signature(&[], |tbs| sign_fixed(seal, tbs).map(|s| s.to_vec()))?
        .build();
    let cose = sign1
        .to_vec()
        .map_err(|e| SealLicenceError::Inconsistent(format!("COSE: {e}")))?;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let compressed = z
        .write_all(&cose)
        .and_then(|()| z.finish())
        .map_err(|e| SealLicenceError::Inconsistent(format!("zlib: {e}")))?;
    Ok(format!("{QR_PREFIX}{}", base45::encode(&compressed)))
}

/// Reads a QR payload. Bounded in every size; never panics.
pub fn parse_compact(text: &str) -> Result<CompactLicence, String> {
    let text = text.trim();
    if text.len() > MAX_QR_TEXT {
        return Err("QR payload longer than 8 KiB".to_owned());
    }
    let body = text
        .strip_prefix(QR_PREFIX)
        .ok_or_else(|| format!("a Bohai licence QR payload starts with {QR_PREFIX}"))?;
    let compressed = base45::decode(body).map_err(|e| format!("not base45: {e:?}"))?;
    let mut cose = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(u64::try_from(MAX_COSE_LEN).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut cose)
        .map_err(|e| format!("not zlib data: {e}"))?;
    if cose.len() > MAX_COSE_LEN {
        return Err("COSE object larger than 64 KiB".to_owned());
    }
    let sign1 = CoseSign1::from_slice(&cose).map_err(|e| format!("not a COSE_Sign1: {e}"))?;
    let alg = sign1.protected.header.alg.clone();
    if alg != Some(coset::Algorithm::Assigned(iana::Algorithm::ES256)) {
        return Err(format!("algorithm {alg:?} is not ES256"));
    }
    let kid = sign1.protected.header.key_id.clone();
    if kid.len() != 8 {
        return Err("the key id must be 8 bytes".to_owned());
    }
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| "the COSE_Sign1 has no payload".to_owned())?;
    let claims: LicenceClaims =
        ciborium::from_reader(payload.as_slice()).map_err(|e| format!("licence payload: {e}"))?;
    claims.check_consistency()?;
    let tbs = sign1.tbs_data(&[]);
    Ok(CompactLicence {
        claims,
        kid: hex_lower(&kid),
        tbs,
        signature: sign1.signature,
    })
}

/// The key id a seal certificate has in QR payloads and trust bundles.
pub fn compact_key_id(cert_der: &[u8]) -> String {
    key_id(cert_der)
}
