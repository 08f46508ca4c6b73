//! Compact JWS (RFC 7515) with ES256 (RFC 7518 §3.4) and an `x5c` certificate chain: the
//! envelope of licences, status lists and trust bundles.
//!
//! The signing input is `BASE64URL(header) || '.' || BASE64URL(payload)`; the signature is
//! the 64-byte `R || S` of ECDSA P-256 over its SHA-256. The protected header carries `alg`
//! (always `ES256`), `typ`, `kid` (see [`key_id`]) and `x5c` (the signer certificate, then
//! intermediates, standard base64 DER), so that any JOSE library given only the city root can
//! check it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::{Deserialize, Serialize};

use crate::cert_facts::hex_lower;
use crate::keys::KeyError;
use crate::seal::{sha256, SealKey};

/// Largest compact JWS accepted (a status list for millions of licences fits easily).
pub const MAX_JWS_LEN: usize = 8 * 1024 * 1024;
/// Most certificates in `x5c`.
const MAX_X5C: usize = 5;

/// The protected header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    /// Signature algorithm; Bohai signs and accepts only `ES256`.
    pub alg: String,
    /// Media type of the whole object, e.g. `bohai-licence+jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Key id of the signer certificate ([`key_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Signer certificate then intermediates, standard base64 of DER.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x5c: Vec<String>,
}

/// Why a compact JWS could not be read or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts, bad base64, bad JSON, or over the size limit.
    #[error("malformed JWS: {0}")]
    Malformed(String),
    /// The header names an algorithm other than ES256.
    #[error("unsupported JWS algorithm `{0}` (only ES256)")]
    Algorithm(String),
    /// The signature does not verify with the given key.
    #[error("the JWS signature does not verify")]
    Signature,
}

/// A parsed, not yet verified compact JWS.
#[derive(Debug, Clone)]
pub struct ParsedJws {
    /// The protected header.
    pub header: JwsHeader,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// The `x5c` certificates, DER, signer first.
    pub chain: Vec<Vec<u8>>,
    signing_input_len: usize,
    text: String,
    signature: Vec<u8>,
}

/// The key id of a certificate: lowercase hex of the first 8 bytes of its DER's SHA-256.
pub fn key_id(cert_der: &[u8]) -> String {
    hex_lower(&sha256(cert_der)[..8])
}

/// Signs `payload` as a compact JWS with `typ`, the seal's `kid` and its full `x5c` chain.
pub fn sign_compact(seal: &SealKey, typ: &str, payload: &[u8]) -> Result<String, KeyError> {
    let mut x5c = Vec::with_capacity(1 + seal.chain().len());
    x5c.push(STANDARD.encode(seal.cert_der()));
    x5c.extend(seal.chain().iter().map(|c| STANDARD.encode(c)));
    let header = JwsHeader {
        alg: "ES256".to_owned(),
        typ: Some(typ.to_owned()),
        kid: Some(key_id(seal.cert_der())),
        x5c,
    };
    let header_json = serde_json::to_vec(&header)
        .map_err(|_| KeyError::Crypto("JWS header serialisation failed"))?;
    let mut text = URL_SAFE_NO_PAD.encode(header_json);
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut text);
    let signature = sign_fixed(seal, text.as_bytes())?;
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut text);
    Ok(text)
}

/// ES256 `R || S` signature over `message` with the seal's key.
pub(crate) fn sign_fixed(seal: &SealKey, message: &[u8]) -> Result<[u8; 64], KeyError> {
    let der = seal.signer().sign(message)?;
    der_signature_to_fixed(&der).ok_or(KeyError::Crypto("ECDSA signature is not DER"))
}

/// Converts an ASN.1 `Ecdsa-Sig-Value` into the fixed 64-byte `R || S` form.
fn der_signature_to_fixed(der: &[u8]) -> Option<[u8; 64]> {
    // SEQUENCE { INTEGER r, INTEGER s }, short lengths only (P-256 fits).
    let (&tag, rest) = der.split_first()?;
    let (&len, mut body) = rest.split_first()?;
    if tag != 0x30 || usize::from(len) != body.len() {
        return None;
    }
    let mut out = [0u8; 64];
    for half in out.chunks_mut(32) {
        let (&t, rest) = body.split_first()?;
        let (&l, rest) = rest.split_first()?;
        let l = usize::from(l);
        if t != 0x02 || rest.len() < l {
            return None;
        }
        let (int, after) = rest.split_at(l);
        let int = match int {
            [0, tail @ ..] => tail,
            other => other,
        };
        if int.len() > 32 {
            return None;
        }
        half[32 - int.len()..].copy_from_slice(int);
        body = after;
    }
    body.is_empty().then_some(out)
}

/// The three parts of a compact JWS, still encoded.
pub(crate) fn split(text: &str) -> Result<(&str, &str, &str), JwsError> {
    if text.len() > MAX_JWS_LEN {
        return Err(JwsError::Malformed("longer than 8 MiB".to_owned()));
    }
    let mut parts = text.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(JwsError::Malformed(
            "a compact JWS has exactly three dot-separated parts".to_owned(),
        )),
    }
}

/// Decodes the protected header and its `x5c` chain; refuses any algorithm but ES256.
pub(crate) fn decode_header(h: &str) -> Result<(JwsHeader, Vec<Vec<u8>>), JwsError> {
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|e| JwsError::Malformed(format!("header is not base64url: {e}")))?;
    let header: JwsHeader = serde_json::from_slice(&header_bytes)
        .map_err(|e| JwsError::Malformed(format!("header is not a JWS header: {e}")))?;
    if header.alg != "ES256" {
        return Err(JwsError::Algorithm(header.alg));
    }
    if header.x5c.len() > MAX_X5C {
        return Err(JwsError::Malformed(
            "more than 5 certificates in x5c".to_owned(),
        ));
    }
    let chain = header
        .x5c
        .iter()
        .map(|c| STANDARD.decode(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JwsError::Malformed(format!("x5c is not base64: {e}")))?;
    Ok((header, chain))
}

/// Decodes the payload part.
pub(crate) fn decode_payload(p: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|e| JwsError::Malformed(format!("payload is not base64url: {e}")))
}

/// Decodes the signature part: 64 bytes for ES256.
pub(crate) fn decode_signature(s: &str) -> Result<Vec<u8>, JwsError> {
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| JwsError::Malformed(format!("signature is not base64url: {e}")))?;
    if signature.len() == 64 {
        Ok(signature)
    } else {
        Err(JwsError::Malformed(
            "an ES256 signature is 64 bytes".to_owned(),
        ))
    }
}

/// Verifies an ES256 `R || S` signature over `input` with an uncompressed P-256 point.
pub(crate) fn verify_es256(point: &[u8], input: &[u8], signature: &[u8]) -> Result<(), JwsError> {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(input, signature)
        .map_err(|_| JwsError::Signature)
}

impl ParsedJws {
    /// Splits and decodes a compact JWS. Checks sizes and shapes only, not the signature.
    pub fn parse(text: &str) -> Result<Self, JwsError> {
        let text = text.trim();
        let (h, p, s) = split(text)?;
        let (header, chain) = decode_header(h)?;
        let payload = decode_payload(p)?;
        let signature = decode_signature(s)?;
        Ok(Self {
            header,
            payload,
            chain,
            signing_input_len: h.len() + 1 + p.len(),
            text: text.to_owned(),
            signature,
        })
    }

    /// Verifies the signature with an uncompressed P-256 public point.
    pub fn verify_with_point(&self, public_point: &[u8]) -> Result<(), JwsError> {
        let signing_input = &self.text.as_bytes()[..self.signing_input_len];
        verify_es256(public_point, signing_input, &self.signature)
    }

    /// The signer certificate (first of `x5c`), if any.
    pub fn signer_cert(&self) -> Option<&[u8]> {
        self.chain.first().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_to_fixed_pads_and_strips() {
        // r = 0x00 0x80.. (leading zero for sign), s = 0x01 (short)
        let mut der = vec![0x30, 0];
        der.extend([0x02, 33, 0]);
        der.extend([0x80; 32]);
        der.extend([0x02, 1, 1]);
        der[1] = u8::try_from(der.len() - 2).unwrap();
        let fixed = der_signature_to_fixed(&der).unwrap();
        assert_eq!(&fixed[..32], &[0x80; 32]);
        assert_eq!(fixed[63], 1);
        assert!(fixed[32..63].iter().all(|b| *b == 0));
        assert!(der_signature_to_fixed(&der[..der.len() - 1]).is_none());
        assert!(der_signature_to_fixed(&[0x31, 0]).is_none());
    }

    #[test]
    fn malformed_compact_forms_are_errors() {
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
            assert!(ParsedJws::parse(bad).is_err(), "{bad}");
        }
        let hs256 = format!(
            "{}.e30.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert_eq!(
            ParsedJws::parse(&hs256).unwrap_err(),
            JwsError::Algorithm("HS256".to_owned())
        );
    }
}
