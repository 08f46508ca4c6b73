//! Detached seal signatures, modelled on GB/T 38540 `SES_Signature`.
//!
//! ```text
//! TBS_Sign ::= SEQUENCE {
//!     version       INTEGER,              -- 4
//!     sealRecord    SealRecord,
//!     timeInfo      GeneralizedTime,      -- signing time claimed by the signer
//!     dataHash      OCTET STRING,         -- SHA-256 of the document, 32 bytes
//!     propertyInfo  UTF8String,           -- "bohai-detached-v1"
//!     certChain     SEQUENCE OF OCTET STRING } -- signer cert DER first, then intermediates
//! SealSignature ::= SEQUENCE {
//!     tbs                TBS_Sign,
//!     signatureAlgorithm OBJECT IDENTIFIER, -- ecdsa-with-SHA256
//!     signature          BIT STRING }       -- ECDSA P-256 (Ecdsa-Sig-Value DER) over DER(tbs)
//! ```
//!
//! The signed bytes are exactly the DER of `TBS_Sign` ([`SealSignature::tbs_der`]), so
//! `openssl dgst -sha256 -verify signer-pub.pem -signature sig.bin tbs.der` checks one.

use chrono::{DateTime, Utc};
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Sequence};

use crate::keys::KeyError;
use crate::record::{ecdsa_with_sha256, SealRecord, SealRecordAsn1, SealRecordError, SES_VERSION};
use crate::seal::{SealKey, MAX_CHAIN_LEN};
use crate::timestamp;

/// The `propertyInfo` of Bohai detached signatures.
pub const PROPERTY_INFO: &str = "bohai-detached-v1";
/// PEM label of a seal signature.
pub const PEM_LABEL: &str = "BOHAI SEAL SIGNATURE";
/// Largest DER seal signature accepted before parsing.
pub const MAX_SIGNATURE_LEN: usize = 64 * 1024;
/// Largest PEM seal signature accepted before parsing.
const MAX_PEM_LEN: usize = 96 * 1024;

/// Errors of the `signature` module.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The bytes are not a seal signature of this profile (or exceed the size limit).
    #[error("malformed seal signature: {0}")]
    Malformed(String),
    /// The `signatureAlgorithm` is not ecdsa-with-SHA256 (the OID found, dotted).
    #[error("unsupported signatureAlgorithm {0} (only ecdsa-with-SHA256)")]
    UnsupportedAlgorithm(String),
    /// The seal record cannot be encoded.
    #[error("seal record: {0}")]
    Record(#[from] SealRecordError),
    /// Signing failed.
    #[error("signing: {0}")]
    Key(#[from] KeyError),
    /// The signing time cannot be encoded.
    #[error("signing time {0} is out of range")]
    TimeOutOfRange(i64),
}

fn malformed(e: impl std::fmt::Display) -> SignatureError {
    SignatureError::Malformed(e.to_string())
}

#[derive(Sequence)]
struct TbsSignAsn1 {
    version: u32,
    seal_record: SealRecordAsn1,
    time_info: GeneralizedTime,
    data_hash: OctetString,
    property_info: String,
    cert_chain: Vec<OctetString>,
}

#[derive(Sequence)]
struct SealSignatureAsn1 {
    tbs: TbsSignAsn1,
    signature_algorithm: ObjectIdentifier,
    signature: BitString,
}

/// A detached seal signature over a document's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealSignature {
    record: SealRecord,
    signing_time: DateTime<Utc>,
    data_hash: [u8; 32],
    cert_chain: Vec<Vec<u8>>,
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
}

/// Signs a document, given its SHA-256, with `seal` at `signing_time` (whole seconds).
pub fn sign_document(
    seal: &SealKey,
    document_sha256: [u8; 32],
    signing_time: DateTime<Utc>,
) -> Result<SealSignature, SignatureError> {
    let signing_time = timestamp::whole_seconds(signing_time);
    let mut cert_chain = vec![seal.cert_der().to_vec()];
    cert_chain.extend(seal.chain().iter().cloned());
    let tbs = TbsSignAsn1 {
        version: SES_VERSION,
        seal_record: seal.record().to_asn1()?,
        time_info: timestamp::to_generalized(signing_time)
            .map_err(|e| SignatureError::TimeOutOfRange(e.0))?,
        data_hash: OctetString::new(document_sha256.to_vec()).map_err(malformed)?,
        property_info: PROPERTY_INFO.to_owned(),
        cert_chain: cert_chain
            .iter()
            .map(|c| OctetString::new(c.clone()))
            .collect::<Result<_, _>>()
            .map_err(malformed)?,
    };
    let tbs_der = tbs.to_der().map_err(malformed)?;
    let signature = seal.signer().sign(&tbs_der)?;
    Ok(SealSignature {
        record: seal.record().clone(),
        signing_time,
        data_hash: document_sha256,
        cert_chain,
        tbs_der,
        signature,
    })
}

impl SealSignature {
    /// Parses a DER seal signature from untrusted input: at most 64 KiB, canonical DER,
    /// version 4, `propertyInfo` `bohai-detached-v1`, ecdsa-with-SHA256, 1 to 5 certificates.
    /// Parsing checks form only; [`crate::verify_seal_signature`] checks validity.
    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        if der.len() > MAX_SIGNATURE_LEN {
            return Err(malformed(format!(
                "{} bytes is over the 64 KiB limit",
                der.len()
            )));
        }
        let asn1 = SealSignatureAsn1::from_der(der).map_err(malformed)?;
        if asn1.to_der().map_err(malformed)? != der {
            return Err(malformed("not canonical DER"));
        }
        if asn1.signature_algorithm != ecdsa_with_sha256() {
            return Err(SignatureError::UnsupportedAlgorithm(
                asn1.signature_algorithm.to_string(),
            ));
        }
        let signature = asn1
            .signature
            .as_bytes()
            .ok_or_else(|| malformed("signature BIT STRING has unused bits"))?
            .to_vec();
        let tbs = &asn1.tbs;
        if tbs.version != SES_VERSION {
            return Err(malformed(format!("version {} (expected 4)", tbs.version)));
        }
        if tbs.property_info != PROPERTY_INFO {
            return Err(malformed("propertyInfo is not bohai-detached-v1"));
        }
        let data_hash: [u8; 32] = tbs
            .data_hash
            .as_bytes()
            .try_into()
            .map_err(|_| malformed("dataHash is not 32 bytes"))?;
        if tbs.cert_chain.is_empty() || tbs.cert_chain.len() > 1 + MAX_CHAIN_LEN {
            return Err(malformed("certChain must hold 1 to 5 certificates"));
        }
        let signing_time = timestamp::from_generalized(tbs.time_info)
            .map_err(|e| malformed(format!("timeInfo {} out of range", e.0)))?;
        Ok(Self {
            record: SealRecord::from_asn1(&tbs.seal_record)?,
            signing_time,
            data_hash,
            cert_chain: tbs
                .cert_chain
                .iter()
                .map(|c| c.as_bytes().to_vec())
                .collect(),
            tbs_der: tbs.to_der().map_err(malformed)?,
            signature,
        })
    }

    /// The DER of the whole `SealSignature`.
    pub fn to_der(&self) -> Result<Vec<u8>, SignatureError> {
        // TBS_Sign bytes are kept as signed; wrap them without re-encoding.
        let tbs = TbsSignAsn1::from_der(&self.tbs_der).map_err(malformed)?;
        SealSignatureAsn1 {
            tbs,
            signature_algorithm: ecdsa_with_sha256(),
            signature: BitString::from_bytes(&self.signature).map_err(malformed)?,
        }
        .to_der()
        .map_err(malformed)
    }

    /// PEM armour with label `BOHAI SEAL SIGNATURE`.
    pub fn to_pem(&self) -> Result<String, SignatureError> {
        Ok(pem::encode(&pem::Pem::new(PEM_LABEL, self.to_der()?)))
    }

    /// Parses PEM armour with label `BOHAI SEAL SIGNATURE` (size-limited, then as DER).
    pub fn from_pem(text: &str) -> Result<Self, SignatureError> {
        if text.len() > MAX_PEM_LEN {
            return Err(malformed("PEM longer than 96 KiB"));
        }
        let block = pem::parse(text).map_err(malformed)?;
        if block.tag() != PEM_LABEL {
            return Err(malformed(format!(
                "PEM label {:?}, expected {PEM_LABEL:?}",
                block.tag()
            )));
        }
        Self::from_der(block.contents())
    }

    /// The exact bytes that were signed: DER of `TBS_Sign`.
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }

    /// The ECDSA P-256 signature (ASN.1 DER `Ecdsa-Sig-Value`) over [`Self::tbs_der`].
    pub fn signature_bytes(&self) -> &[u8] {
        &self.signature
    }

    /// The seal record carried in the signature.
    pub fn record(&self) -> &SealRecord {
        &self.record
    }

    /// The signing time the signer claimed (`timeInfo`).
    pub fn signing_time(&self) -> DateTime<Utc> {
        self.signing_time
    }

    /// The signed document hash (`dataHash`).
    pub fn data_hash(&self) -> [u8; 32] {
        self.data_hash
    }

    /// The signer certificate, DER (first of `certChain`).
    pub fn signer_cert_der(&self) -> &[u8] {
        // from_der and sign_document guarantee at least one certificate.
        self.cert_chain.first().map_or(&[], Vec::as_slice)
    }

    /// The intermediates carried after the signer certificate.
    pub fn intermediates(&self) -> &[Vec<u8>] {
        self.cert_chain.get(1..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};
    use crate::record::SealType;
    use crate::seal::{issue_seal, SealRequest, Validity};
    use chrono::Duration;

    fn signature() -> SealSignature {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let req = SealRequest {
            dept_code: "SCJG".to_owned(),
            dept_name_zh: "盘锦市市场监督管理局".to_owned(),
            credit_code: "91350100M000100Y43".to_owned(),
            seal_name: "盘锦市市场监督管理局公章".to_owned(),
            seal_type: SealType::Contract,
            validity: Validity {
                not_before: now,
                not_after: now + Duration::days(30),
            },
            image_digest: [3; 32],
            crl_distribution_url: None,
        };
        let key = issue_seal(&pki.issuing, &req, now)
            .unwrap()
            .into_seal_key()
            .unwrap();
        sign_document(&key, [7; 32], now).unwrap()
    }

    #[test]
    fn der_and_pem_round_trip() {
        let sig = signature();
        let der = sig.to_der().unwrap();
        let back = SealSignature::from_der(&der).unwrap();
        assert_eq!(back, sig);
        assert_eq!(back.tbs_der(), sig.tbs_der());
        let pem = sig.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN BOHAI SEAL SIGNATURE-----"));
        assert_eq!(SealSignature::from_pem(&pem).unwrap(), sig);
        assert_eq!(sig.intermediates().len(), 1);
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let der = signature().to_der().unwrap();
        for len in 0..der.len() {
            assert!(SealSignature::from_der(&der[..len]).is_err());
        }
        let mut extended = der.clone();
        extended.push(0);
        assert!(SealSignature::from_der(&extended).is_err());
        for i in (0..der.len()).step_by(7) {
            let mut flipped = der.clone();
            flipped[i] ^= 0xa5;
            let _ = SealSignature::from_der(&flipped);
        }
        assert!(SealSignature::from_der(&vec![0x30; MAX_SIGNATURE_LEN + 1]).is_err());
        assert!(SealSignature::from_pem("not pem").is_err());
    }
}
