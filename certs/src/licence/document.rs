//! The licence document: the JSON payload of a licence JWS (see `docs/formats.md`,
//! "Licence"). It is a JWT claims set too (`iss`, `sub`, `jti`, `iat`, `nbf`, `exp`), so that
//! standard JOSE libraries check its validity period by themselves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jws::sign_compact;
use crate::cert_facts::CertFacts;
use crate::keys::KeyError;
use crate::seal::SealKey;

/// JOSE `typ` of a licence.
pub const LICENCE_TYP: &str = "bohai-licence+jwt";

/// The department that issued a licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Department code from the registry.
    pub department: String,
    /// The department's Chinese name.
    pub name_zh: String,
    /// Its unified social credit code; the sealing certificate must carry the same.
    pub credit_code: String,
}

/// A licence version, by number and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceRef {
    /// Licence number.
    pub number: String,
    /// Version.
    pub version: u32,
}

/// What a licence says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Licence type id (`driving-licence`, ...).
    #[serde(rename = "type")]
    pub licence_type: String,
    /// Licence number, stable across versions.
    pub number: String,
    /// Version, 1 for a new licence, +1 on each renewal.
    pub version: u32,
    /// The issuing department.
    pub issuer: Issuer,
    /// The holder (a person or an organisation), as the type's schema describes.
    pub holder: Value,
    /// The licence's fields, as the type's schema describes.
    pub fields: Value,
    /// First instant the licence is valid.
    pub valid_from: DateTime<Utc>,
    /// Last instant the licence is valid.
    pub valid_until: DateTime<Utc>,
    /// When this version was issued and sealed.
    pub issued_at: DateTime<Utc>,
    /// The licence version this one replaces or renews, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<LicenceRef>,
}

impl Licence {
    /// The licence subject that the type's schema validates: `{"holder", "fields"}`.
    pub fn subject(&self) -> Value {
        serde_json::json!({"holder": self.holder, "fields": self.fields})
    }
}

/// Where a licence's status is published: an index into a status list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListRef {
    /// Index of this licence version in the list.
    pub idx: u64,
    /// URI of the status list.
    pub uri: String,
}

/// `{"status_list": {...}}`, as the IETF status list draft names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusClaim {
    /// The list and index.
    pub status_list: StatusListRef,
}

/// The JWS payload of a licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceClaims {
    /// Issuing department code (= `licence.issuer.department`).
    pub iss: String,
    /// Licence number (= `licence.number`).
    pub sub: String,
    /// `NUMBER/vVERSION`: unique per licence version.
    pub jti: String,
    /// Issued at, seconds (= `licence.issued_at`).
    pub iat: i64,
    /// Not before, seconds (= `licence.valid_from`).
    pub nbf: i64,
    /// Expires, seconds (= `licence.valid_until`).
    pub exp: i64,
    /// The licence.
    pub licence: Licence,
    /// Its status entry.
    pub status: StatusClaim,
}

/// Why a licence cannot be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealLicenceError {
    /// The seal certificate is not the issuing department's (credit codes differ).
    #[error("the seal belongs to {found:?}, not to the issuer {expected}")]
    NotIssuersSeal {
        /// The issuer's credit code.
        expected: String,
        /// The seal certificate's organizationIdentifier.
        found: Option<String>,
    },
    /// The licence is not self-consistent (validity order, version 0, ...).
    #[error("licence is inconsistent: {0}")]
    Inconsistent(String),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl LicenceClaims {
    /// The claims for `licence` with its status entry.
    pub fn new(licence: Licence, status: StatusListRef) -> Self {
        Self {
            iss: licence.issuer.department.clone(),
            sub: licence.number.clone(),
            jti: format!("{}/v{}", licence.number, licence.version),
            iat: licence.issued_at.timestamp(),
            nbf: licence.valid_from.timestamp(),
            exp: licence.valid_until.timestamp(),
            licence,
            status: StatusClaim {
                status_list: status,
            },
        }
    }

    /// Checks that the JWT claims repeat the licence and that the licence makes sense.
    pub fn check_consistency(&self) -> Result<(), String> {
        let l = &self.licence;
        let pairs: [(&str, bool); 6] = [
            ("iss", self.iss == l.issuer.department),
            ("sub", self.sub == l.number),
            ("jti", self.jti == format!("{}/v{}", l.number, l.version)),
            ("iat", self.iat == l.issued_at.timestamp()),
            ("nbf", self.nbf == l.valid_from.timestamp()),
            ("exp", self.exp == l.valid_until.timestamp()),
        ];
        if let Some((claim, _)) = pairs.iter().find(|(_, ok)| !ok) {
            return Err(format!("claim `{claim}` disagrees with the licence"));
        }
        if l.version == 0 {
            return Err("version must be at least 1".to_owned());
        }
        if l.valid_from >= l.valid_until {
            return Err("valid_from must be before valid_until".to_owned());
        }
        if !l.holder.is_object() || !l.fields.is_object() {
            return Err("holder and fields must be JSON objects".to_owned());
        }
        Ok(())
    }
}

/// Seals `licence` with the issuing department's `seal` as a compact JWS (ES256, `x5c`).
/// Refuses a seal of another department and an inconsistent licence.
pub fn seal_licence(
    seal: &SealKey,
    licence: Licence,
    status: StatusListRef,
) -> Result<String, SealLicenceError> {
    let facts = CertFacts::from_der(seal.cert_der())
        .map_err(|e| SealLicenceError::Inconsistent(format!("seal certificate: {e}")))?;
    if facts.subject_org_id.as_deref() != Some(licence.issuer.credit_code.as_str()) {
        return Err(SealLicenceError::NotIssuersSeal {
            expected: licence.issuer.credit_code.clone(),
            found: facts.subject_org_id,
        });
    }
    let claims = LicenceClaims::new(licence, status);
    claims
        .check_consistency()
        .map_err(SealLicenceError::Inconsistent)?;
    let payload =
        serde_json::to_vec(&claims).map_err(|e| SealLicenceError::Inconsistent(e.to_string()))?;
    Ok(sign_compact(seal, LICENCE_TYP, &payload)?)
}
