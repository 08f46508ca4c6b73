//! Electronic licences (电子证照): sealing a licence document as a JWS, the signed status
//! list, and verification into the shared [`crate::Report`] format, online or offline.
//!
//! - [`document`]: the licence document and [`seal_licence`];
//! - [`jws`]: compact JWS with ES256 and `x5c`, the envelope of every signed object here;
//! - [`compact`]: the QR form (COSE_Sign1, zlib, base45) with a key id instead of a chain;
//! - [`status`]: the two-bit status list (IETF token status list shape);
//! - [`verify`]: [`LicenceVerifier`], which judges a licence at a given time with a given
//!   status list and licence-type registry.
//!
//! Formats: `docs/formats.md`, "Licence" and "Licence status list".

pub mod compact;
pub mod document;
pub mod jws;
mod signer;
pub mod status;
pub mod verify;

pub use compact::{parse_compact, seal_compact, CompactLicence, QR_PREFIX};
pub use document::{
    seal_licence, Issuer, Licence, LicenceClaims, LicenceRef, SealLicenceError, StatusListRef,
    LICENCE_TYP,
};
pub use jws::{key_id, JwsError, ParsedJws};
pub use signer::check_signed_by;
pub use status::{
    sign_status_list, verify_status_list, LicenceStatus, StatusList, StatusListError,
    VerifiedStatusList, STATUS_LIST_TYP,
};
pub use verify::{
    authentic_with_status_unknown, LicenceInputs, LicencePolicy, LicenceTypes, LicenceVerifier,
    SealDirectory, TypeVerdict, VerifiedLicence,
};
