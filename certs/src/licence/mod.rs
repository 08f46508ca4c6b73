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

/// The longest any offline trust (a trust bundle's lifetime, a status list's maximum age) is
/// accepted, whatever its signer says: 7 days. A leaked, expired or revoked authority key
/// makes nothing an offline verifier accepts for longer.
pub const MAX_OFFLINE_TRUST: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

pub use compact::{parse_compact, seal_compact, CompactLicence, QR_PREFIX};
pub use document::{
    seal_licence, Issuer, Licence, LicenceClaims, LicenceRef, SealLicenceError, StatusListRef,
    LICENCE_TYP,
};
pub use jws::{key_id, JwsError, ParsedJws};
pub use signer::{check_signed_by, check_signed_by_unrevoked, SignerRevocation};
pub use status::{
    is_number_of_type, sign_status_list, split_licence_number, verify_status_list, BoundNumber,
    EncodedSerials, LicenceStatus, StatusList, StatusListError, VerifiedStatusList,
    STATUS_LIST_TYP,
};
pub use verify::{
    authentic_with_status_unknown, LicenceInputs, LicencePolicy, LicenceTypes, LicenceVerifier,
    SealDirectory, TypeVerdict, VerifiedLicence,
};
