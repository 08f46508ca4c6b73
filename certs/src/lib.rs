//! Bohai's city PKI and electronic seals (电子印章), as a pure library.
//!
//! The crate makes the city's certificate authorities ([`ca`]), issues and imports seal
//! certificates with their seal records ([`seal`], [`record`]), signs documents with a seal
//! ([`signature`]), revokes seals ([`crl`]) and verifies seal signatures into a report
//! ([`verify`], [`report`]). Private keys are [`secret::SecretBytes`] and can be stored
//! encrypted under a master key ([`secret::EncryptedKey`]).
//!
//! No network, no database, no files: every function works on the values it is given, and
//! every verification takes the time to check at, the trust anchors and a policy as inputs.
//! The formats are described in `docs/formats.md` ("Seal signature").

pub mod ca;
mod cert_facts;
mod chain_failure;
pub mod crl;
pub mod image;
pub mod inspect;
pub mod keys;
pub mod licence;
pub mod record;
pub mod report;
pub mod seal;
pub mod secret;
pub mod signature;
mod timestamp;
pub mod trust;
pub mod verify;

pub use ca::{init_city_ca, new_issuing_ca, CaCert, CaError, CaNames, CityPki};
pub use crl::{
    check_crl_signed_by_anchor, crl_to_pem, issue_crl, read_crl, CrlError, CrlInfo,
    RevocationReason, RevokedSeal,
};
pub use image::{ImageError, ImageType, SealImage};
pub use inspect::CertificateInfo;
pub use keys::KeyError;
pub use record::{SealInfo, SealRecord, SealRecordError, SealType};
pub use report::{Check, CheckResult, ReasonCode, Report, Verdict};
pub use seal::{
    import_seal, import_seal_with_image, issue_seal, issue_seal_with_image, ImportRequest,
    IssuedSeal, SealError, SealKey, SealRequest, Validity,
};
pub use secret::{EncryptedKey, MasterKey, SecretBytes, SecretError};
pub use signature::{sign_document, SealSignature, SignatureError};
pub use trust::{TrustAnchors, TrustError};
pub use verify::{
    verify_seal_signature, verify_seal_signature_with_image, RevocationPolicy, VerifiedSeal,
    VerifyContext, VerifyPolicy, MAX_CRLS,
};

/// Object identifier of id-kp-documentSigning (RFC 9336), required in seal certificates.
pub const OID_DOCUMENT_SIGNING: &str = "1.3.6.1.5.5.7.3.36";
/// Object identifier of ecdsa-with-SHA256, the only signature algorithm of seal records and
/// seal signatures.
pub const OID_ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
