//! The licence status list: a compressed bitstring with two bits per licence version, signed
//! by the city's status authority, in the shape of the IETF OAuth Token Status List
//! (draft-ietf-oauth-status-list): a JWT of type `statuslist+jwt` whose payload is
//! `{"sub": URI, "iat": T, "exp": T, "ttl": S, "status_list": {"bits": 2, "lst": LST}}`,
//! `LST` = base64url(zlib(bytes)), entry `i` in byte `i / 4` at bit offset `2 * (i % 4)`
//! (least significant bits first).
//!
//! Values: 0 valid, 1 revoked, 2 suspended, 3 superseded (a renewed licence's old version).
//! Expiry is not a status: every licence carries its own validity.
//!
//! Bohai lists also bind each index to the licence it was given to: `"serials": {"lst": S}`,
//! `S` = base64url(zlib(entries)), one entry per index, each that index's licence serial less
//! one more than the highest serial of the entries before it, as a zigzag LEB128 varint
//! (serial 0: no licence known at that index). Issued in order, every entry is 0; a renewal (a
//! new index for an older number) costs a few bytes. A licence's serial is the run of digits its number ends in
//! (`DL-2026-00000002` → 2), unique across the city. A licence whose index belongs to another
//! serial is a forgery that reused a valid index ([`crate::ReasonCode::StatusIndexMismatch`]);
//! one whose index has no licence yet is too new for the list (status unknown).

use std::io::{Read as _, Write as _};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::jws::{sign_compact, JwsError, ParsedJws};
use super::signer::check_signed_by;
use crate::keys::KeyError;
use crate::seal::SealKey;
use crate::trust::TrustAnchors;

/// JOSE `typ` of a status list token.
pub const STATUS_LIST_TYP: &str = "statuslist+jwt";
/// Bits per entry.
const BITS: u8 = 2;
/// Largest decompressed list accepted: 64 MiB, 268 million entries.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// Most indexes a list binds to licence serials: 16,777,216, seven times the reference
/// city's 2.44 million licences. Each bound entry is kept as 8 bytes: a hostile list (its
/// signer's key leaked) of 64 MiB of one-byte entries would otherwise take 512 MiB.
pub const MAX_BOUND_ENTRIES: usize = 1 << 24;

/// The status of one licence version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceStatus {
    /// Neither revoked, suspended nor superseded.
    Valid,
    /// Revoked (also a replaced licence: the old document is revoked).
    Revoked,
    /// Suspended; may be resumed.
    Suspended,
    /// Renewed: a newer version replaces this one.
    Superseded,
}

impl LicenceStatus {
    /// The two-bit value in the list.
    pub fn bits(self) -> u8 {
        match self {
            LicenceStatus::Valid => 0,
            LicenceStatus::Revoked => 1,
            LicenceStatus::Suspended => 2,
            LicenceStatus::Superseded => 3,
        }
    }

    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => LicenceStatus::Valid,
            1 => LicenceStatus::Revoked,
            2 => LicenceStatus::Suspended,
            _ => LicenceStatus::Superseded,
        }
    }
}

/// A status list under construction or as decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    bytes: Vec<u8>,
    /// The licence serial at each index (0: none known).
    serials: Vec<u64>,
}

/// The serial of a licence number: the run of ASCII digits it ends in, `None` without one
/// (or beyond 64 bits).
pub fn licence_serial(number: &str) -> Option<u64> {
    let digits = number.len() - number.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    number[number.len() - digits..]
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
}

/// Why a status list could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    /// The token or its list cannot be read.
    #[error("malformed status list: {0}")]
    Malformed(String),
    /// The token's signature, signer certificate or signer authority is not acceptable.
    #[error("status list signer: {0}")]
    Signer(String),
}

impl From<JwsError> for StatusListError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Signature => StatusListError::Signer(e.to_string()),
            other => StatusListError::Malformed(other.to_string()),
        }
    }
}

impl StatusList {
    /// A list of `capacity` entries, all valid.
    pub fn with_capacity(capacity: u64) -> Self {
        let len = usize::try_from(capacity.div_ceil(4)).unwrap_or(MAX_LIST_BYTES);
        Self {
            bytes: vec![0; len.min(MAX_LIST_BYTES)],
            serials: Vec::new(),
        }
    }

    /// Number of entries the list can hold.
    pub fn capacity(&self) -> u64 {
        u64::try_from(self.bytes.len()).unwrap_or(u64::MAX) * 4
    }

    /// Sets entry `index`, growing the list when needed (up to its maximum size).
    pub fn set(&mut self, index: u64, status: LicenceStatus) -> Result<(), StatusListError> {
        let byte = usize::try_from(index / 4)
            .ok()
            .filter(|b| *b < MAX_LIST_BYTES)
            .ok_or_else(|| StatusListError::Malformed(format!("index {index} too large")))?;
        if byte >= self.bytes.len() {
            self.bytes.resize(byte + 1, 0);
        }
        let shift = u8::try_from(index % 4).unwrap_or(0) * BITS;
        self.bytes[byte] = (self.bytes[byte] & !(3 << shift)) | (status.bits() << shift);
        Ok(())
    }

    /// Binds entry `index` to the licence numbered `number` (its serial, see the module's
    /// documentation), growing the list when needed.
    pub fn bind(&mut self, index: u64, number: &str) -> Result<(), StatusListError> {
        let serial = licence_serial(number).ok_or_else(|| {
            StatusListError::Malformed(format!("licence number {number:?} ends in no serial"))
        })?;
        let at = usize::try_from(index)
            .ok()
            .filter(|i| *i / 4 < MAX_LIST_BYTES)
            .ok_or_else(|| StatusListError::Malformed(format!("index {index} too large")))?;
        if at / 4 >= self.bytes.len() {
            self.bytes.resize(at / 4 + 1, 0);
        }
        if at >= self.serials.len() {
            self.serials.resize(at + 1, 0);
        }
        self.serials[at] = serial;
        Ok(())
    }

    /// The licence serial bound to entry `index`: `Some(0)` when none is, `None` beyond the
    /// list.
    pub fn serial(&self, index: u64) -> Option<u64> {
        self.get(index)?;
        let at = usize::try_from(index).ok()?;
        Some(self.serials.get(at).copied().unwrap_or(0))
    }

    /// The serials' `lst` (see the module's documentation).
    pub fn encode_serials(&self) -> String {
        let mut raw = Vec::with_capacity(self.serials.len());
        let mut highest = 0u64;
        for &serial in &self.serials {
            let delta = serial.wrapping_sub(highest.wrapping_add(1)) as i64;
            let mut zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
            loop {
                let byte = (zigzag & 0x7f) as u8;
                zigzag >>= 7;
                if zigzag == 0 {
                    raw.push(byte);
                    break;
                }
                raw.push(byte | 0x80);
            }
            highest = highest.max(serial);
        }
        zlib_base64(&raw)
    }

    /// Reads the serials' `lst` into this list, refusing more entries than it has.
    fn decode_serials(&mut self, lst: &str) -> Result<(), StatusListError> {
        let raw = unzlib_base64(lst, "serials")?;
        let capacity = usize::try_from(self.capacity()).unwrap_or(usize::MAX);
        let mut serials = Vec::new();
        // Every entry takes at least one byte: more bytes than entries allowed is refused
        // before anything is decoded.
        if raw.len() > MAX_BOUND_ENTRIES * 10 {
            return Err(StatusListError::Malformed(format!(
                "serials: more than {MAX_BOUND_ENTRIES} entries"
            )));
        }
        let (mut highest, mut zigzag, mut shift) = (0u64, 0u64, 0u32);
        for byte in raw {
            if shift > 63 {
                return Err(StatusListError::Malformed(
                    "serials: a varint longer than 64 bits".to_owned(),
                ));
            }
            zigzag |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 != 0 {
                shift += 7;
                continue;
            }
            let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
            let serial = highest.wrapping_add(1).wrapping_add(delta as u64);
            if serials.len() == capacity {
                return Err(StatusListError::Malformed(
                    "serials: more entries than the list".to_owned(),
                ));
            }
            if serials.len() == MAX_BOUND_ENTRIES {
                return Err(StatusListError::Malformed(format!(
                    "serials: more than {MAX_BOUND_ENTRIES} entries"
                )));
            }
            serials.push(serial);
            highest = highest.max(serial);
            (zigzag, shift) = (0, 0);
        }
        if shift != 0 {
            return Err(StatusListError::Malformed(
                "serials: a truncated varint".to_owned(),
            ));
        }
        self.serials = serials;
        Ok(())
    }

    /// Entry `index`, or `None` beyond the list.
    pub fn get(&self, index: u64) -> Option<LicenceStatus> {
        let byte = *self.bytes.get(usize::try_from(index / 4).ok()?)?;
        let shift = u8::try_from(index % 4).ok()? * BITS;
        Some(LicenceStatus::from_bits(byte >> shift))
    }

    /// `lst`: base64url (no padding) of the zlib-compressed bytes.
    pub fn encode(&self) -> String {
        zlib_base64(&self.bytes)
    }

    /// Reads `lst`, refusing lists that decompress beyond 64 MiB. No index is bound.
    pub fn decode(lst: &str) -> Result<Self, StatusListError> {
        Ok(Self {
            bytes: unzlib_base64(lst, "lst")?,
            serials: Vec::new(),
        })
    }
}

/// base64url (no padding) of `raw` compressed with zlib.
fn zlib_base64(raw: &[u8]) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = z
        .write_all(raw)
        .and_then(|()| z.finish())
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(compressed)
}

/// The bytes of a base64url zlib `lst`, refusing more than 64 MiB.
fn unzlib_base64(lst: &str, what: &str) -> Result<Vec<u8>, StatusListError> {
    let compressed = URL_SAFE_NO_PAD
        .decode(lst)
        .map_err(|e| StatusListError::Malformed(format!("{what} is not base64url: {e}")))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_LIST_BYTES).unwrap_or(u64::MAX) + 1;
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| StatusListError::Malformed(format!("{what} is not zlib data: {e}")))?;
    if bytes.len() > MAX_LIST_BYTES {
        return Err(StatusListError::Malformed(format!(
            "{what} decompresses to more than 64 MiB"
        )));
    }
    Ok(bytes)
}

/// The payload of a status list token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListClaims {
    /// The URI the list is published at; licences name it.
    pub sub: String,
    /// When the list was made (seconds since the epoch): its statuses are as of then.
    pub iat: i64,
    /// When the token expires.
    pub exp: i64,
    /// Seconds a verifier may rely on the list after `iat` (its maximum age).
    pub ttl: u64,
    /// The list.
    pub status_list: EncodedList,
    /// The licence serial of each index (see the module's documentation).
    pub serials: EncodedSerials,
}

/// `{"lst": ...}`: the serials of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedSerials {
    /// The compressed serials.
    pub lst: String,
}

/// `{"bits": 2, "lst": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedList {
    /// Bits per entry; always 2.
    pub bits: u8,
    /// The compressed list.
    pub lst: String,
}

/// Signs `list` as a status list token published at `uri`, made at `issued_at`, with
/// maximum age `ttl_seconds`.
pub fn sign_status_list(
    authority: &SealKey,
    uri: &str,
    list: &StatusList,
    issued_at: DateTime<Utc>,
    ttl_seconds: u64,
) -> Result<String, KeyError> {
    let ttl = i64::try_from(ttl_seconds).unwrap_or(i64::MAX);
    let claims = StatusListClaims {
        sub: uri.to_owned(),
        iat: issued_at.timestamp(),
        exp: issued_at.timestamp().saturating_add(ttl),
        ttl: ttl_seconds,
        status_list: EncodedList {
            bits: BITS,
            lst: list.encode(),
        },
        serials: EncodedSerials {
            lst: list.encode_serials(),
        },
    };
    let payload = serde_json::to_vec(&claims)
        .map_err(|_| KeyError::Crypto("status list serialisation failed"))?;
    sign_compact(authority, STATUS_LIST_TYP, &payload)
}

/// A status list whose signature, signer chain and signer authority were checked. Only
/// [`verify_status_list`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedStatusList {
    uri: String,
    issued_at: DateTime<Utc>,
    ttl_seconds: u64,
    list: StatusList,
}

impl VerifiedStatusList {
    /// The URI the list is published at.
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// When its statuses were taken ("status as of").
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }
    /// Its maximum age.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }
    /// Whether the list is too old to rely on at `at`: older than its maximum age, capped at
    /// [`super::MAX_OFFLINE_TRUST`] whatever the list says.
    pub fn is_stale_at(&self, at: DateTime<Utc>) -> bool {
        let ttl = self.ttl_seconds.min(super::MAX_OFFLINE_TRUST.as_secs());
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        at.timestamp() > self.issued_at.timestamp().saturating_add(ttl)
    }
    /// The status at `index`, `None` beyond the list.
    pub fn get(&self, index: u64) -> Option<LicenceStatus> {
        self.list.get(index)
    }
    /// The licence serial bound to `index`: `Some(0)` when none is, `None` beyond the list.
    pub fn serial(&self, index: u64) -> Option<u64> {
        self.list.serial(index)
    }
}

/// Checks a status list token: ES256 signature by a document-signing certificate that chains
/// to `trust` at the list's issuance time and belongs to the status authority (its
/// organizationIdentifier is `authority_credit_code`).
pub fn verify_status_list(
    token: &str,
    trust: &TrustAnchors,
    authority_credit_code: &str,
) -> Result<VerifiedStatusList, StatusListError> {
    let jws = ParsedJws::parse(token)?;
    if jws.header.typ.as_deref() != Some(STATUS_LIST_TYP) {
        return Err(StatusListError::Malformed(format!(
            "typ is {:?}, expected {STATUS_LIST_TYP}",
            jws.header.typ
        )));
    }
    let claims: StatusListClaims = serde_json::from_slice(&jws.payload)
        .map_err(|e| StatusListError::Malformed(format!("payload: {e}")))?;
    if claims.status_list.bits != BITS {
        return Err(StatusListError::Malformed(format!(
            "bits is {}, Bohai lists use 2",
            claims.status_list.bits
        )));
    }
    let issued_at = Utc
        .timestamp_opt(claims.iat, 0)
        .single()
        .ok_or_else(|| StatusListError::Malformed("iat out of range".to_owned()))?;
    check_signed_by(&jws, trust, issued_at, authority_credit_code)
        .map_err(StatusListError::Signer)?;
    let mut list = StatusList::decode(&claims.status_list.lst)?;
    list.decode_serials(&claims.serials.lst)?;
    Ok(VerifiedStatusList {
        uri: claims.sub,
        issued_at,
        ttl_seconds: claims.ttl,
        list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_bits_per_entry_round_trip() {
        let mut list = StatusList::with_capacity(10);
        list.set(0, LicenceStatus::Revoked).unwrap();
        list.set(5, LicenceStatus::Suspended).unwrap();
        list.set(7, LicenceStatus::Superseded).unwrap();
        list.set(1_000, LicenceStatus::Revoked).unwrap();
        list.set(0, LicenceStatus::Valid).unwrap();
        let back = StatusList::decode(&list.encode()).unwrap();
        assert_eq!(back.get(0), Some(LicenceStatus::Valid));
        assert_eq!(back.get(5), Some(LicenceStatus::Suspended));
        assert_eq!(back.get(7), Some(LicenceStatus::Superseded));
        assert_eq!(back.get(6), Some(LicenceStatus::Valid));
        assert_eq!(back.get(1_000), Some(LicenceStatus::Revoked));
        assert_eq!(back.get(1_004), None);
        // entry 5 sits in byte 1 at bits 2..4
        assert_eq!(back.bytes[1], 2 << 2 | 3 << 6);
    }

    #[test]
    fn a_city_sized_list_is_small() {
        let mut list = StatusList::with_capacity(2_440_000);
        for i in (0..2_440_000).step_by(1000) {
            list.set(i, LicenceStatus::Revoked).unwrap();
        }
        let lst = list.encode();
        assert!(lst.len() < 100_000, "{} bytes", lst.len());
    }

    #[test]
    fn a_hostile_list_of_serials_is_refused_before_it_takes_the_memory() {
        // 64 MiB of one-byte entries compresses to a few kilobytes.
        let mut list = StatusList::with_capacity(200_000_000);
        let hostile = zlib_base64(&vec![0u8; MAX_BOUND_ENTRIES + 1]);
        assert!(hostile.len() < 100_000, "{}", hostile.len());
        let err = list.decode_serials(&hostile).unwrap_err();
        assert!(
            err.to_string().contains("more than 16777216 entries"),
            "{err}"
        );
        let at_most = zlib_base64(&vec![0u8; 1000]);
        list.decode_serials(&at_most).unwrap();
        assert_eq!(list.serial(999), Some(1000));
    }

    #[test]
    fn serials_round_trip_and_a_city_of_them_is_small() {
        let mut list = StatusList::with_capacity(2_440_000);
        for i in 0..2_440_000u64 {
            // Renewals now and then: a new index for an older number.
            let serial = if i % 50 == 49 { i / 2 + 1 } else { i + 1 };
            list.bind(i, &format!("DL-2026-{serial:08}")).unwrap();
        }
        list.bind(7, "FB-2025-000000000012").unwrap();
        let mut back = StatusList::decode(&list.encode()).unwrap();
        let lst = list.encode_serials();
        back.decode_serials(&lst).unwrap();
        assert_eq!(back.serial(0), Some(1));
        assert_eq!(back.serial(7), Some(12));
        assert_eq!(back.serial(49), Some(25));
        assert_eq!(back.serial(2_439_998), Some(2_439_999));
        assert_eq!(back.serial(2_440_000), None);
        // 48,800 renewals: about 4 bytes each; the rest nearly nothing.
        eprintln!("serials of 2.44 million licences: {} bytes", lst.len());
        assert!(lst.len() < 250_000, "{} bytes", lst.len());
    }

    #[test]
    fn an_index_without_a_licence_has_serial_zero_and_bad_serials_are_errors() {
        let mut list = StatusList::with_capacity(8);
        list.bind(2, "DL-2026-00000005").unwrap();
        assert_eq!(list.serial(1), Some(0));
        assert_eq!(list.serial(5), Some(0));
        assert!(list.bind(3, "no-serial").is_err());
        assert!(list.bind(3, "DL-2026-00000000").is_err());
        assert_eq!(licence_serial("DL-2026-00000002"), Some(2));
        assert_eq!(licence_serial("99999999999999999999999"), None);
        let mut short = StatusList::with_capacity(4);
        // Five entries for a list of four.
        assert!(short
            .decode_serials(&zlib_base64(&[0, 0, 0, 0, 0]))
            .is_err());
        assert!(short.decode_serials(&zlib_base64(&[0x80])).is_err());
        assert!(short.decode_serials(&zlib_base64(&[0xff; 11])).is_err());
    }

    #[test]
    fn bad_lists_are_errors() {
        assert!(StatusList::decode("!!").is_err());
        assert!(StatusList::decode(&URL_SAFE_NO_PAD.encode(b"not zlib")).is_err());
    }
}
