//! The seal record (印章数据), modelled on GB/T 38540 `SES_Seal`: what a seal is (id, type,
//! name, validity, picture digest) bound to its certificate by digest, and signed by the city
//! seal authority (the issuing CA, the "maker").
//!
//! ```text
//! SealInfo ::= SEQUENCE {
//!     version        INTEGER,            -- 4
//!     sealId         IA5String,
//!     type           INTEGER,            -- SealType
//!     name           UTF8String,
//!     certDigest     OCTET STRING,       -- SHA-256 of the seal certificate DER
//!     createDate     GeneralizedTime,
//!     validStart     GeneralizedTime,
//!     validEnd       GeneralizedTime,
//!     pictureDigest  OCTET STRING,       -- SHA-256 of the seal image, 32 bytes
//!     pictureType    [0] EXPLICIT IA5String OPTIONAL } -- "PNG" or "SVG" (GB/T 38540 type)
//! SealRecord ::= SEQUENCE {
//!     sealInfo           SealInfo,
//!     makerCert          OCTET STRING,   -- DER of the maker's (issuing CA) certificate
//!     signatureAlgorithm OBJECT IDENTIFIER, -- ecdsa-with-SHA256
//!     signature          BIT STRING }    -- ECDSA P-256 over the DER of sealInfo
//! ```

use chrono::{DateTime, Utc};
use der::asn1::{BitString, GeneralizedTime, Ia5String, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Sequence};
use serde::{Deserialize, Serialize};

use crate::ca::CaCert;
use crate::cert_facts::CertFacts;
use crate::image::ImageType;
use crate::keys::{self, KeyError};
use crate::timestamp;
use crate::OID_ECDSA_WITH_SHA256;

/// Version number of the seal structures.
pub(crate) const SES_VERSION: u32 = 4;
/// Longest seal record accepted by [`SealRecord::from_der`].
const MAX_RECORD_LEN: usize = 32 * 1024;
/// Longest seal id: a 32-character department code, `-`, and the hex of a certificate
/// serial of up to 21 DER bytes (42 digits) fit with room to spare.
pub const MAX_SEAL_ID_LEN: usize = 128;
/// Longest seal name, in bytes.
const MAX_NAME_LEN: usize = 256;

/// Errors of the `record` module.
#[derive(Debug, thiserror::Error)]
pub enum SealRecordError {
    /// The bytes are not a DER seal record of this profile.
    #[error("malformed seal record: {0}")]
    Malformed(String),
    /// A field value is not allowed.
    #[error("invalid seal record field {field}: {reason}")]
    InvalidField {
        /// The ASN.1 field name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The maker's signature over sealInfo does not verify with the maker certificate.
    #[error("seal record signature does not verify with the maker certificate")]
    BadSignature,
    /// The maker certificate cannot be used.
    #[error("maker certificate: {0}")]
    MakerCert(String),
    /// Signing failed.
    #[error("signing the seal record: {0}")]
    Key(#[from] KeyError),
}

/// Kind of seal. The integer is the `type` field of `SealInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealType {
    /// 公章, the department's official seal (1).
    Official,
    /// 合同专用章, contract seal (2).
    Contract,
    /// 业务专用章, business seal (3).
    Business,
}

impl SealType {
    /// The `type` integer.
    pub fn code(self) -> u32 {
        match self {
            Self::Official => 1,
            Self::Contract => 2,
            Self::Business => 3,
        }
    }

    /// The type for a `type` integer.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Official),
            2 => Some(Self::Contract),
            3 => Some(Self::Business),
            _ => None,
        }
    }
}

/// The content of a seal record (`SealInfo`), at whole-second precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealInfo {
    /// Seal identifier: printable ASCII, at most [`MAX_SEAL_ID_LEN`] (128) characters.
    pub seal_id: String,
    /// Kind of seal.
    pub seal_type: SealType,
    /// Seal name, e.g. `盘锦市市场监督管理局公章`.
    pub name: String,
    /// SHA-256 of the seal certificate DER.
    pub cert_digest: [u8; 32],
    /// When the record was made.
    pub create_date: DateTime<Utc>,
    /// Start of the seal's validity.
    pub valid_start: DateTime<Utc>,
    /// End of the seal's validity.
    pub valid_end: DateTime<Utc>,
    /// SHA-256 of the seal image.
    pub picture_digest: [u8; 32],
}

/// A signed seal record (`SealRecord`). Made by the seal authority; checked by the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRecord {
    info: SealInfo,
    picture_type: Option<ImageType>,
    maker_cert_der: Vec<u8>,
    signature: Vec<u8>,
}

#[derive(Sequence)]
pub(crate) struct SealInfoAsn1 {
    version: u32,
    seal_id: Ia5String,
    seal_type: u32,
    name: String,
    cert_digest: OctetString,
    create_date: GeneralizedTime,
    valid_start: GeneralizedTime,
    valid_end: GeneralizedTime,
    picture_digest: OctetString,
    #[asn1(context_specific = "0", optional = "true")]
    picture_type: Option<Ia5String>,
}

#[derive(Sequence)]
pub(crate) struct SealRecordAsn1 {
    seal_info: SealInfoAsn1,
    maker_cert: OctetString,
    signature_algorithm: ObjectIdentifier,
    signature: BitString,
}

pub(crate) fn ecdsa_with_sha256() -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(OID_ECDSA_WITH_SHA256)
}

fn malformed(e: impl std::fmt::Display) -> SealRecordError {
    SealRecordError::Malformed(e.to_string())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> SealRecordError {
    SealRecordError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn time_field(field: &'static str, t: DateTime<Utc>) -> Result<GeneralizedTime, SealRecordError> {
    timestamp::to_generalized(t).map_err(|e| invalid(field, format!("time {} out of range", e.0)))
}

fn digest_field(field: &'static str, o: &OctetString) -> Result<[u8; 32], SealRecordError> {
    o.as_bytes().try_into().map_err(|_| {
        invalid(
            field,
            format!("expected 32 bytes, found {}", o.as_bytes().len()),
        )
    })
}

impl SealInfo {
    pub(crate) fn to_asn1(&self) -> Result<SealInfoAsn1, SealRecordError> {
        check_seal_id(&self.seal_id)?;
        if self.name.len() > MAX_NAME_LEN {
            return Err(invalid("name", "longer than 256 bytes"));
        }
        Ok(SealInfoAsn1 {
            version: SES_VERSION,
            seal_id: Ia5String::new(&self.seal_id).map_err(|e| invalid("sealId", e.to_string()))?,
            seal_type: self.seal_type.code(),
            name: self.name.clone(),
            cert_digest: OctetString::new(self.cert_digest.to_vec()).map_err(malformed)?,
            create_date: time_field("createDate", self.create_date)?,
            valid_start: time_field("validStart", self.valid_start)?,
            valid_end: time_field("validEnd", self.valid_end)?,
            picture_digest: OctetString::new(self.picture_digest.to_vec()).map_err(malformed)?,
            picture_type: None,
        })
    }

    fn from_asn1(a: &SealInfoAsn1) -> Result<Self, SealRecordError> {
        if a.version != SES_VERSION {
            return Err(invalid(
                "version",
                format!("expected 4, found {}", a.version),
            ));
        }
        let seal_id = a.seal_id.to_string();
        check_seal_id(&seal_id)?;
        let seal_type = SealType::from_code(a.seal_type)
            .ok_or_else(|| invalid("type", format!("unknown seal type {}", a.seal_type)))?;
        let time = |field: &'static str, t: GeneralizedTime| {
            timestamp::from_generalized(t).map_err(|e| invalid(field, format!("{}", e.0)))
        };
        Ok(Self {
            seal_id,
            seal_type,
            name: a.name.clone(),
            cert_digest: digest_field("certDigest", &a.cert_digest)?,
            create_date: time("createDate", a.create_date)?,
            valid_start: time("validStart", a.valid_start)?,
            valid_end: time("validEnd", a.valid_end)?,
            picture_digest: digest_field("pictureDigest", &a.picture_digest)?,
        })
    }

    /// The DER of `SealInfo` without `pictureType`: the bytes the maker signs for a record
    /// without a picture type ([`SealRecord::signed_info_der`] gives them for every record).
    pub fn to_der(&self) -> Result<Vec<u8>, SealRecordError> {
        self.to_asn1()?.to_der().map_err(malformed)
    }

    /// True when `t` lies within `[valid_start, valid_end]`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.valid_start <= t && t <= self.valid_end
    }
}

fn check_seal_id(id: &str) -> Result<(), SealRecordError> {
    if id.is_empty() || id.len() > MAX_SEAL_ID_LEN {
        return Err(invalid("sealId", "must be 1 to 128 characters"));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("sealId", "must be printable ASCII without spaces"));
    }
    Ok(())
}

impl SealRecord {
    /// Makes and signs a record with the maker CA (the city issuing CA). [`crate::issue_seal`]
    /// and [`crate::import_seal`] call this; it is public for seals whose certificates are
    /// made elsewhere, and signs whatever `info` says, so check `info` first.
    pub fn make(info: SealInfo, maker: &CaCert) -> Result<Self, SealRecordError> {
        Self::make_with_picture_type(info, None, maker)
    }

    /// Like [`SealRecord::make`], with the seal image's type written as `pictureType`.
    pub fn make_with_picture_type(
        info: SealInfo,
        picture_type: Option<ImageType>,
        maker: &CaCert,
    ) -> Result<Self, SealRecordError> {
        let mut record = Self {
            info,
            picture_type,
            maker_cert_der: maker.cert_der().to_vec(),
            signature: Vec::new(),
        };
        record.signature = maker.signing_key()?.sign(&record.signed_info_der()?)?;
        Ok(record)
    }

    /// The type of the seal image (`pictureType`), when the record names one.
    pub fn picture_type(&self) -> Option<ImageType> {
        self.picture_type
    }

    fn info_asn1(&self) -> Result<SealInfoAsn1, SealRecordError> {
        let mut asn1 = self.info.to_asn1()?;
        asn1.picture_type = self
            .picture_type
            .map(|t| Ia5String::new(t.record_code()).map_err(malformed))
            .transpose()?;
        Ok(asn1)
    }

    /// The DER of this record's `SealInfo` (with `pictureType` when present): the exact
    /// bytes the maker signed.
    pub fn signed_info_der(&self) -> Result<Vec<u8>, SealRecordError> {
        self.info_asn1()?.to_der().map_err(malformed)
    }

    /// What the record says.
    pub fn info(&self) -> &SealInfo {
        &self.info
    }

    /// DER of the maker's certificate.
    pub fn maker_cert_der(&self) -> &[u8] {
        &self.maker_cert_der
    }

    /// The maker's ECDSA signature (ASN.1 DER) over the DER of `SealInfo`.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Checks the maker's signature with the public key of the embedded maker certificate.
    /// This says nothing about whether the maker is trusted; the verifier checks that.
    pub fn verify_maker_signature(&self) -> Result<(), SealRecordError> {
        let maker =
            CertFacts::from_der(&self.maker_cert_der).map_err(SealRecordError::MakerCert)?;
        let point = maker
            .p256_point
            .ok_or_else(|| SealRecordError::MakerCert("key is not ECDSA P-256".to_owned()))?;
        keys::verify_p256(&point, &self.signed_info_der()?, &self.signature)
            .map_err(|()| SealRecordError::BadSignature)
    }

    pub(crate) fn to_asn1(&self) -> Result<SealRecordAsn1, SealRecordError> {
        Ok(SealRecordAsn1 {
            seal_info: self.info_asn1()?,
            maker_cert: OctetString::new(self.maker_cert_der.clone()).map_err(malformed)?,
            signature_algorithm: ecdsa_with_sha256(),
            signature: BitString::from_bytes(&self.signature).map_err(malformed)?,
        })
    }

    pub(crate) fn from_asn1(a: &SealRecordAsn1) -> Result<Self, SealRecordError> {
        if a.signature_algorithm != ecdsa_with_sha256() {
            return Err(invalid(
                "signatureAlgorithm",
                format!(
                    "expected {OID_ECDSA_WITH_SHA256}, found {}",
                    a.signature_algorithm
                ),
            ));
        }
        let signature = a
            .signature
            .as_bytes()
            .ok_or_else(|| invalid("signature", "BIT STRING has unused bits"))?;
        let picture_type = match &a.seal_info.picture_type {
            None => None,
            Some(code) => Some(ImageType::from_record_code(code.as_ref()).ok_or_else(|| {
                invalid("pictureType", format!("expected PNG or SVG, found {code}"))
            })?),
        };
        Ok(Self {
            info: SealInfo::from_asn1(&a.seal_info)?,
            picture_type,
            maker_cert_der: a.maker_cert.as_bytes().to_vec(),
            signature: signature.to_vec(),
        })
    }

    /// DER of the `SealRecord`.
    pub fn to_der(&self) -> Result<Vec<u8>, SealRecordError> {
        self.to_asn1()?.to_der().map_err(malformed)
    }

    /// Parses a DER `SealRecord` (at most 32 KiB; must be canonical DER).
    pub fn from_der(der: &[u8]) -> Result<Self, SealRecordError> {
        if der.len() > MAX_RECORD_LEN {
            return Err(malformed(format!(
                "{} bytes is over the 32 KiB limit",
                der.len()
            )));
        }
        let asn1 = SealRecordAsn1::from_der(der).map_err(malformed)?;
        let record = Self::from_asn1(&asn1)?;
        if record.to_der()? != der {
            return Err(malformed("not canonical DER"));
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};
    use crate::timestamp::from_timestamp;

    fn info() -> SealInfo {
        SealInfo {
            seal_id: "SCJG-0001".to_owned(),
            seal_type: SealType::Official,
            name: "盘锦市市场监督管理局公章".to_owned(),
            cert_digest: [1; 32],
            create_date: from_timestamp(1_767_225_600).unwrap(),
            valid_start: from_timestamp(1_767_225_600).unwrap(),
            valid_end: from_timestamp(1_830_297_600).unwrap(),
            picture_digest: [2; 32],
        }
    }

    #[test]
    fn record_round_trip_and_signature() {
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), Utc::now()).unwrap();
        let record = SealRecord::make(info(), &pki.issuing).unwrap();
        record.verify_maker_signature().unwrap();
        let der = record.to_der().unwrap();
        let back = SealRecord::from_der(&der).unwrap();
        assert_eq!(back, record);

        let typed =
            SealRecord::make_with_picture_type(info(), Some(ImageType::Svg), &pki.issuing).unwrap();
        typed.verify_maker_signature().unwrap();
        assert_ne!(typed.signed_info_der().unwrap(), info().to_der().unwrap());
        let back = SealRecord::from_der(&typed.to_der().unwrap()).unwrap();
        assert_eq!(back.picture_type(), Some(ImageType::Svg));
        assert_eq!(back, typed);
        // The type is signed: a record claiming another type does not verify.
        let mut retyped = typed.clone();
        retyped.picture_type = Some(ImageType::Png);
        assert!(matches!(
            retyped.verify_maker_signature(),
            Err(SealRecordError::BadSignature)
        ));
        // Without a picture type the signed bytes are exactly SealInfo's DER, as before.
        assert_eq!(record.signed_info_der().unwrap(), info().to_der().unwrap());

        let mut tampered = record.clone();
        tampered.info.name.push('X');
        assert!(matches!(
            tampered.verify_maker_signature(),
            Err(SealRecordError::BadSignature)
        ));
    }

    #[test]
    fn garbage_and_bad_fields_are_rejected() {
        assert!(SealRecord::from_der(&[]).is_err());
        assert!(SealRecord::from_der(&[0x30, 0x03, 0x02, 0x01]).is_err());
        let mut bad = info();
        bad.seal_id = "has space".to_owned();
        assert!(bad.to_der().is_err());
        assert!(SealType::from_code(9).is_none());
        for t in [SealType::Official, SealType::Contract, SealType::Business] {
            assert_eq!(SealType::from_code(t.code()), Some(t));
        }
    }
}
