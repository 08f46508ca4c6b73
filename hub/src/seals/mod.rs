//! The city PKI and electronic seals in the hub: `bohai-certs` wrapped with storage
//! (`store`) and the operations the CLI and the API share (`service`).
//!
//! Private keys live only encrypted (`EncryptedKey`, labels `root`, `issuing` or the seal id)
//! under the master key of `pki.master_key_file`; nothing here logs or returns them.

pub mod service;
pub mod store;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub use service::{coverage_of, create_master_key, load_master_key, SealsService};

/// What can go wrong with the PKI and seals.
#[derive(Debug, thiserror::Error)]
pub enum SealsError {
    /// `bohai seal init-ca` has not been run on this database.
    #[error("there is no city CA yet: run `bohai seal init-ca`")]
    NoCa,
    /// The city's issuing CA was replaced (`seal revoke-ca`) while a seal was being made
    /// under the old one.
    #[error("the city issuing CA was replaced (`bohai seal revoke-ca`) while this seal was being made; make it again")]
    CaReplaced,
    /// A city CA exists and `--force` was not given.
    #[error("a city CA already exists; `bohai seal init-ca --force` replaces it (every existing seal then stops verifying)")]
    CaExists,
    /// The root key was exported with `--remove` (or never stored).
    #[error("the root CA key is not in the hub (it was exported and removed)")]
    RootKeyAbsent,
    /// The master key file cannot be read or is not a master key.
    #[error("master key file {path}: {reason}")]
    MasterKey {
        /// The file (`pki.master_key_file`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A trust anchor file of `pki.trust_anchors` cannot be used.
    #[error("trust anchor {what}: {reason}")]
    TrustAnchor {
        /// The file, or `city root`.
        what: String,
        /// Why.
        reason: String,
    },
    /// An imported certificate names another department's credit code.
    #[error("the certificate names credit code {named} (organizationIdentifier), not {credit_code} of department `{department}`: it is not that department's seal")]
    NotTheDepartments {
        /// The importing department.
        department: String,
        /// Its credit code in the registry.
        credit_code: String,
        /// The code the certificate names.
        named: String,
    },
    /// An imported certificate names no credit code: it says whose seal it is by no name a
    /// verifier can check.
    #[error("the certificate names no credit code (organizationIdentifier); a seal of department `{department}` must name {credit_code}")]
    NoCreditCode {
        /// The importing department.
        department: String,
        /// Its credit code in the registry.
        credit_code: String,
    },
    /// The department is not in the registry.
    #[error("no department `{0}` in the registry")]
    UnknownDepartment(String),
    /// No seal with this id.
    #[error("no seal `{0}`")]
    UnknownSeal(String),
    /// The seal was stored before seal images were kept.
    #[error("seal `{0}` has no stored image (it was made before seal images were kept)")]
    NoImage(String),
    /// The seal image given is not acceptable.
    #[error(transparent)]
    Image(#[from] bohai_certs::ImageError),
    /// The department has no seal that is valid now.
    #[error("department `{0}` has no valid seal: issue one with `bohai seal issue {0}`")]
    NoValidSeal(String),
    /// The seal cannot sign now (revoked, expired or not yet valid).
    #[error("seal `{seal_id}` cannot sign: it is {state}")]
    NotUsable {
        /// The seal.
        seal_id: String,
        /// Its state, e.g. `revoked`.
        state: String,
    },
    /// The seal was revoked before.
    #[error("seal `{0}` is already revoked")]
    AlreadyRevoked(String),
    /// A revocation reason that is not one of the CRL reasons.
    #[error("unknown revocation reason `{0}`; one of: unspecified, key_compromise, ca_compromise, affiliation_changed, superseded, cessation_of_operation, privilege_withdrawn")]
    UnknownReason(String),
    /// Stored data cannot be read back (a corrupted or foreign row).
    #[error("stored {what} cannot be read: {reason}")]
    Stored {
        /// Which row or column.
        what: String,
        /// Why.
        reason: String,
    },
    /// The CA operation failed.
    #[error(transparent)]
    Ca(#[from] bohai_certs::CaError),
    /// Issuing or importing the seal failed.
    #[error(transparent)]
    Seal(#[from] bohai_certs::SealError),
    /// Encrypting or decrypting a key failed (wrong master key?).
    #[error("private key at rest: {0}")]
    Secret(#[from] bohai_certs::SecretError),
    /// Making the signature failed.
    #[error(transparent)]
    Signature(#[from] bohai_certs::SignatureError),
    /// Issuing the CRL failed.
    #[error(transparent)]
    Crl(#[from] bohai_certs::CrlError),
    /// Encoding or decoding a seal record failed.
    #[error(transparent)]
    Record(#[from] bohai_certs::SealRecordError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The state of one seal at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SealState {
    /// Valid for more than 30 days.
    Valid,
    /// Valid, but ends within 30 days.
    Expiring,
    /// Past its validity.
    Expired,
    /// Before its validity.
    NotYetValid,
    /// Revoked.
    Revoked,
}

/// A seal as listed: everything but the key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SealSummary {
    /// `DEPT-SERIALHEX`.
    pub seal_id: String,
    /// Department code.
    pub department: String,
    /// Seal name (the certificate's CN).
    pub name: String,
    /// `official`, `contract` or `business`.
    pub seal_type: String,
    /// Certificate serial number, lowercase hex.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When the hub stored it.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked (CRL reason, snake_case).
    pub revocation_reason: Option<String>,
    /// True for a department's own certificate imported with `bohai seal import`.
    pub imported: bool,
    /// The state now.
    pub state: SealState,
    /// Media type of the seal image (`image/svg+xml`, `image/png`); none for seals made
    /// before images were kept.
    pub image_media_type: Option<String>,
}

/// Everything about one seal except its key: `bohai seal show`, `GET /api/v1/seals/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SealDetails {
    /// The seal as listed.
    pub seal: SealSummary,
    /// The seal certificate: subject, issuer, serial, validity, fingerprint, key usages.
    #[schema(value_type = Object)]
    pub certificate: bohai_certs::CertificateInfo,
    /// The intermediate certificates towards the root, in order.
    #[schema(value_type = Vec<Object>)]
    pub chain: Vec<bohai_certs::CertificateInfo>,
    /// The seal record signed by the city seal authority.
    pub record: RecordDetails,
    /// The seal image, when stored.
    pub image: Option<ImageDetails>,
}

/// The seal record (印章数据) as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordDetails {
    /// sealId.
    pub seal_id: String,
    /// `official`, `contract` or `business`.
    pub seal_type: String,
    /// Seal name.
    pub name: String,
    /// SHA-256 of the seal certificate, hex.
    pub cert_digest: String,
    /// SHA-256 of the seal image, hex.
    pub picture_digest: String,
    /// `PNG` or `SVG`, when the record names the image's type.
    pub picture_type: Option<String>,
    /// When the record was made.
    pub create_date: DateTime<Utc>,
    /// Start of the seal's validity.
    pub valid_start: DateTime<Utc>,
    /// End of the seal's validity.
    pub valid_end: DateTime<Utc>,
    /// Subject of the maker (the city issuing CA) that signed the record.
    pub maker: String,
    /// Whether the maker's signature over the record verifies.
    pub maker_signature_valid: bool,
}

/// The stored seal image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageDetails {
    /// `image/svg+xml` or `image/png`.
    pub media_type: String,
    /// Size in bytes.
    pub size: usize,
    /// SHA-256, hex.
    pub sha256: String,
    /// Whether it is the image the record names (pictureDigest).
    pub matches_record: bool,
    /// Where the API serves it.
    pub url: String,
}

/// A department's seal state for coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoverageState {
    /// Has a seal valid for more than 30 days.
    Valid,
    /// Its best seal ends within 30 days.
    Expiring,
    /// Only expired (or not yet valid) seals.
    Expired,
    /// Only revoked seals.
    Revoked,
    /// No seal.
    None,
}

/// One department in the coverage answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DepartmentCoverage {
    /// Department code.
    pub department: String,
    /// Chinese name.
    pub name_zh: String,
    /// Its seal state.
    pub state: CoverageState,
    /// The seal that gives the state, if any.
    pub seal_id: Option<String>,
    /// End of that seal's validity.
    pub not_after: Option<DateTime<Utc>>,
}

/// Seal coverage of the registry's departments.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Coverage {
    /// When it was computed.
    pub at: DateTime<Utc>,
    /// Number of departments.
    pub departments_total: usize,
    /// Departments with a seal valid for more than 30 days.
    pub valid: usize,
    /// Departments whose best seal ends within 30 days.
    pub expiring: usize,
    /// Departments with only expired seals.
    pub expired: usize,
    /// Departments with only revoked seals.
    pub revoked: usize,
    /// Departments without any seal.
    pub none: usize,
    /// (valid + expiring) / total, in percent.
    pub coverage_percent: f64,
    /// Every department.
    pub departments: Vec<DepartmentCoverage>,
}
