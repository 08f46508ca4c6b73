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
//! Bohai lists also bind each index to the number of the licence it was given to:
//! `"serials": {"lst": S, "stems": [STEM, ...], "stem_lst": T}`. A licence number is a stem
//! and a serial: `DL-2026-00000002` is the stem `DL-2026-` (type prefix and year) and the
//! serial 2, the run of digits it ends in, written `{serial:08}` (see [`split_licence_number`]).
//! `S` = base64url(zlib(entries)), one entry per index, each that index's licence serial less
//! one more than the highest serial of the entries before it, as a zigzag LEB128 varint
//! (serial 0: no licence known at that index). Issued in order, every entry is 0; a renewal (a
//! new index for an older number) costs a few bytes. `T` = base64url(zlib(entries)), one
//! LEB128 varint per index: the position of its number's stem in `stems` (0 where no licence
//! is bound). A serial is unique across the city, but only the whole number names a licence:
//! bound by serial alone, a department could seal a licence of its own type ending in another
//! department's serial and take that licence's index (and its status, for ever).
//!
//! A licence whose index belongs to another number is a forgery that reused a valid index
//! ([`crate::ReasonCode::StatusIndexMismatch`]); one whose index has no licence yet is too new
//! for the list (status unknown).

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
/// Most indexes a list binds to licence numbers: 16,777,216, seven times the reference
/// city's 2.44 million licences. Each bound entry is kept as 10 bytes: a hostile list (its
/// signer's key leaked) of 64 MiB of one-byte entries would otherwise take 640 MiB.
pub const MAX_BOUND_ENTRIES: usize = 1 << 24;
/// Most distinct number stems (type prefix and year) a list binds: five types over a century
/// are 500.
pub const MAX_STEMS: usize = 4096;
/// Longest number stem accepted, in bytes.
pub const MAX_STEM_LEN: usize = 64;

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
    /// The position in `stems` of the number's stem at each index (0 where none is bound).
    stem_of: Vec<u16>,
    /// The distinct number stems, in order of first binding.
    stems: Vec<String>,
}

/// A licence number split into its stem and serial: `DL-2026-00000002` → (`DL-2026-`, 2).
/// The serial is the run of ASCII digits the number ends in, in its one written form
/// `{serial:08}` (eight digits, zero-padded, more without leading zeros when it needs them), as
/// the hub numbers licences: `DL-2026-2` and `DL-2026-000000002` split to `None`, as do
/// numbers without a serial, with serial 0 or beyond 64 bits.
pub fn split_licence_number(number: &str) -> Option<(&str, u64)> {
    let stem = number.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &number[stem.len()..];
    let canonical = digits.len() == 8 || (digits.len() > 8 && !digits.starts_with('0'));
    let serial = digits.parse::<u64>().ok().filter(|s| *s > 0 && canonical)?;
    Some((stem, serial))
}

/// Whether `number` is of the form the hub numbers licences of a type with prefix `prefix`
/// in: `{prefix}-{YYYY}-{serial:08}` (see [`split_licence_number`]).
pub fn is_number_of_type(number: &str, prefix: &str) -> bool {
    split_licence_number(number)
        .and_then(|(stem, _)| stem.strip_prefix(prefix))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix('-'))
        .is_some_and(|year| year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()))
}

/// The licence number a list binds to an index (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundNumber<'a> {
    /// Type prefix and year, e.g. `DL-2026-`.
    pub stem: &'a str,
    /// The serial, never 0.
    pub serial: u64,
}

impl BoundNumber<'_> {
    /// Whether `number` is this number, written as the hub writes it.
    pub fn is(&self, number: &str) -> bool {
        split_licence_number(number) == Some((self.stem, self.serial))
    }
}

impl std::fmt::Display for BoundNumber<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:08}", self.stem, self.serial)
    }
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
            stem_of: Vec::new(),
            stems: Vec::new(),
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

    /// Binds entry `index` to the licence numbered `number` (see the module's
    /// documentation), growing the list when needed.
    pub fn bind(&mut self, index: u64, number: &str) -> Result<(), StatusListError> {
        let (stem, serial) = split_licence_number(number).ok_or_else(|| {
            StatusListError::Malformed(format!(
                "licence number {number:?} does not end in an 8-digit serial"
            ))
        })?;
        if stem.len() > MAX_STEM_LEN {
            return Err(StatusListError::Malformed(format!(
                "licence number {number:?}: more than {MAX_STEM_LEN} bytes before its serial"
            )));
        }
        let at = usize::try_from(index)
            .ok()
            .filter(|i| *i / 4 < MAX_LIST_BYTES && *i < MAX_BOUND_ENTRIES)
            .ok_or_else(|| StatusListError::Malformed(format!("index {index} too large")))?;
        let ordinal = match self.stems.iter().position(|s| s == stem) {
            Some(p) => p,
            None if self.stems.len() < MAX_STEMS => {
                self.stems.push(stem.to_owned());
                self.stems.len() - 1
            }
            None => {
                return Err(StatusListError::Malformed(format!(
                    "more than {MAX_STEMS} licence number stems"
                )))
            }
        };
        if at / 4 >= self.bytes.len() {
            self.bytes.resize(at / 4 + 1, 0);
        }
        if at >= self.serials.len() {
            self.serials.resize(at + 1, 0);
            self.stem_of.resize(at + 1, 0);
        }
        self.serials[at] = serial;
        self.stem_of[at] = u16::try_from(ordinal).unwrap_or(u16::MAX);
        Ok(())
    }

    /// The licence number bound to entry `index`: `Some(None)` when none is, `None` beyond
    /// the list.
    pub fn bound(&self, index: u64) -> Option<Option<BoundNumber<'_>>> {
        self.get(index)?;
        let at = usize::try_from(index).ok()?;
        let serial = self.serials.get(at).copied().unwrap_or(0);
        if serial == 0 {
            return Some(None);
        }
        let stem = self
            .stem_of
            .get(at)
            .and_then(|o| self.stems.get(usize::from(*o)))?;
        Some(Some(BoundNumber { stem, serial }))
    }

    /// The bindings of the list's indexes to licence numbers, encoded (see the module's
    /// documentation).
    pub fn encode_bindings(&self) -> EncodedSerials {
        let mut ordinals = Vec::with_capacity(self.stem_of.len());
        for &ordinal in &self.stem_of {
            push_varint(&mut ordinals, u64::from(ordinal));
        }
        EncodedSerials {
            lst: self.encode_serials(),
            stems: self.stems.clone(),
            stem_lst: zlib_base64(&ordinals),
        }
    }

    /// The serials' `lst` (see the module's documentation).
    fn encode_serials(&self) -> String {
        let mut raw = Vec::with_capacity(self.serials.len());
        let mut highest = 0u64;
        for &serial in &self.serials {
            let delta = serial.wrapping_sub(highest.wrapping_add(1)) as i64;
            push_varint(&mut raw, ((delta << 1) ^ (delta >> 63)) as u64);
            highest = highest.max(serial);
        }
        zlib_base64(&raw)
    }

    /// Reads the bindings of a list into this list, refusing more entries than it has, more
    /// than [`MAX_BOUND_ENTRIES`], more stems than [`MAX_STEMS`] or a stem beyond them.
    fn decode_bindings(&mut self, encoded: &EncodedSerials) -> Result<(), StatusListError> {
        self.decode_serials(&encoded.lst)?;
        let malformed = |m: String| Err(StatusListError::Malformed(m));
        if encoded.stems.len() > MAX_STEMS {
            return malformed(format!("serials: more than {MAX_STEMS} stems"));
        }
        if let Some(long) = encoded.stems.iter().find(|s| s.len() > MAX_STEM_LEN) {
            return malformed(format!(
                "serials: the stem {:?}… is longer than {MAX_STEM_LEN} bytes",
                long.chars().take(16).collect::<String>()
            ));
        }
        // A stem's position takes at most 2 bytes: anything longer is refused undecoded.
        let raw = unzlib_base64(&encoded.stem_lst, "stem_lst", self.serials.len() * 2)?;
        let mut stem_of = Vec::with_capacity(self.serials.len());
        let (mut value, mut shift) = (0u64, 0u32);
        for byte in raw {
            if shift > 7 {
                return malformed("stem_lst: a position longer than two bytes".to_owned());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 != 0 {
                shift += 7;
                continue;
            }
            let ordinal = usize::try_from(value)
                .ok()
                .filter(|o| *o < encoded.stems.len().max(1))
                .ok_or_else(|| {
                    StatusListError::Malformed(format!(
                        "stem_lst: position {value} beyond the {} stems",
                        encoded.stems.len()
                    ))
                })?;
            if stem_of.len() == self.serials.len() {
                return malformed("stem_lst: more entries than serials".to_owned());
            }
            stem_of.push(u16::try_from(ordinal).unwrap_or(u16::MAX));
            (value, shift) = (0, 0);
        }
        if shift != 0 {
            return malformed("stem_lst: a truncated varint".to_owned());
        }
        if stem_of.len() != self.serials.len() {
            return malformed(format!(
                "stem_lst: {} entries for {} serials",
                stem_of.len(),
                self.serials.len()
            ));
        }
        if let Some(at) = (0..stem_of.len())
            .find(|&i| self.serials[i] != 0 && usize::from(stem_of[i]) >= encoded.stems.len())
        {
            return malformed(format!("stem_lst: index {at} is bound to no stem"));
        }
        self.stem_of = stem_of;
        self.stems = encoded.stems.clone();
        Ok(())
    }

    /// Reads the serials' `lst` into this list, refusing more entries than it has.
    fn decode_serials(&mut self, lst: &str) -> Result<(), StatusListError> {
        let capacity = usize::try_from(self.capacity()).unwrap_or(usize::MAX);
        // An entry takes one to ten bytes: more bytes than ten for each entry allowed (by the
        // list's length and by MAX_BOUND_ENTRIES) are refused as they are decompressed.
        let allowed = capacity.min(MAX_BOUND_ENTRIES);
        let raw = unzlib_base64(lst, "serials", allowed.saturating_mul(10))?;
        let mut serials = Vec::with_capacity(raw.len().min(allowed));
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
            bytes: unzlib_base64(lst, "lst", MAX_LIST_BYTES)?,
            serials: Vec::new(),
            stem_of: Vec::new(),
            stems: Vec::new(),
        })
    }
}

/// Appends `value` as an LEB128 varint.
fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
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

/// The bytes of a base64url zlib `lst`, refusing more than `max` (itself at most 64 MiB):
/// decompression stops one byte beyond it, so a hostile list takes no more memory than a
/// list of its size may.
fn unzlib_base64(lst: &str, what: &str, max: usize) -> Result<Vec<u8>, StatusListError> {
    let max = max.min(MAX_LIST_BYTES);
    let compressed = URL_SAFE_NO_PAD
        .decode(lst)
        .map_err(|e| StatusListError::Malformed(format!("{what} is not base64url: {e}")))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| StatusListError::Malformed(format!("{what} is not zlib data: {e}")))?;
    if bytes.len() > max {
        return Err(StatusListError::Malformed(format!(
            "{what} decompresses to more than {max} bytes"
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
    /// The licence number bound to each index (see the module's documentation).
    pub serials: EncodedSerials,
}

/// `{"lst": ..., "stems": [...], "stem_lst": ...}`: the licence numbers a list binds its
/// indexes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedSerials {
    /// The compressed serials.
    pub lst: String,
    /// The distinct number stems (type prefix and year, `DL-2026-`).
    pub stems: Vec<String>,
    /// The compressed position in `stems` of each index's number stem.
    pub stem_lst: String,
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
        serials: list.encode_bindings(),
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
    /// The licence number bound to `index`: `Some(None)` when none is, `None` beyond the
    /// list.
    pub fn bound(&self, index: u64) -> Option<Option<BoundNumber<'_>>> {
        self.list.bound(index)
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
    list.decode_bindings(&claims.serials)?;
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
        assert_eq!(list.serials[999], 1000);
        // A short list: its serials are refused as soon as they outgrow what it can bind,
        // never decompressed further.
        let mut short = StatusList::with_capacity(100);
        let err = short
            .decode_serials(&zlib_base64(&vec![0u8; 50_000_000]))
            .unwrap_err();
        assert!(err.to_string().contains("more than 1000 bytes"), "{err}");
    }

    fn bindings(lst: &[u8], stems: &[&str], stem_lst: &[u8]) -> EncodedSerials {
        EncodedSerials {
            lst: zlib_base64(lst),
            stems: stems.iter().map(|s| (*s).to_owned()).collect(),
            stem_lst: zlib_base64(stem_lst),
        }
    }

    #[test]
    fn hostile_stems_are_refused_before_they_take_the_memory() {
        let mut list = StatusList::with_capacity(1_000);
        // Three entries, serials 1, 2, 3 (deltas 0).
        let serials = [0u8, 0, 0];
        list.decode_bindings(&bindings(&serials, &["DL-2026-", "BL-2026-"], &[0, 1, 0]))
            .unwrap();
        assert_eq!(
            list.bound(1).unwrap().unwrap().to_string(),
            "BL-2026-00000002"
        );
        let refused = |stems: &[&str], stem_lst: &[u8]| {
            let mut list = StatusList::with_capacity(1_000);
            list.decode_bindings(&bindings(&serials, stems, stem_lst))
                .unwrap_err()
                .to_string()
        };
        // Megabytes of positions for three serials: refused by their size, undecoded.
        let err = refused(&["DL-2026-"], &vec![0; 10_000_000]);
        assert!(err.contains("decompresses to more than 6 bytes"), "{err}");
        let many: Vec<String> = (0..=MAX_STEMS).map(|i| format!("X{i}-")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(refused(&many, &[0, 0, 0]).contains("more than 4096 stems"));
        let long = "L".repeat(MAX_STEM_LEN + 1);
        assert!(refused(&[&long], &[0, 0, 0]).contains("longer than 64 bytes"));
        assert!(refused(&["DL-2026-"], &[0, 1, 0]).contains("beyond the 1 stems"));
        assert!(refused(&["DL-2026-"], &[0, 0]).contains("2 entries for 3 serials"));
        assert!(refused(&["DL-2026-"], &[0, 0, 0x80]).contains("truncated"));
        assert!(refused(&["DL-2026-"], &[0, 0, 0x80, 0x80, 0]).contains("two bytes"));
        // No stems at all for bound serials.
        assert!(refused(&[], &[0, 0, 0]).contains("bound to no stem"));
    }

    #[test]
    fn serials_round_trip_and_a_city_of_them_is_small() {
        // Five licence types, issued in runs of 64 of a type (batches), over two years.
        let prefixes = ["DL", "BL", "RP", "RE", "FB"];
        let number = |i: u64, serial: u64| {
            let year = if i < 1_220_000 { 2025 } else { 2026 };
            format!("{}-{year}-{serial:08}", prefixes[(i / 64 % 5) as usize])
        };
        let mut list = StatusList::with_capacity(2_440_000);
        for i in 0..2_440_000u64 {
            // Renewals now and then: a new index for an older number.
            let serial = if i % 50 == 49 { i / 2 + 1 } else { i + 1 };
            list.bind(i, &number(i, serial)).unwrap();
        }
        list.bind(7, "FB-2025-00000012").unwrap();
        let mut back = StatusList::decode(&list.encode()).unwrap();
        let encoded = list.encode_bindings();
        back.decode_bindings(&encoded).unwrap();
        let bound = |i| back.bound(i).unwrap().unwrap().to_string();
        assert_eq!(bound(0), "DL-2025-00000001");
        assert_eq!(bound(7), "FB-2025-00000012");
        assert_eq!(bound(49), number(49, 25));
        assert_eq!(bound(2_439_998), number(2_439_998, 2_439_999));
        assert_eq!(back.bound(2_440_000), None);
        let size = encoded.lst.len() + encoded.stem_lst.len();
        // 48,800 renewals: about 4 bytes each; the stems of batches nearly nothing.
        eprintln!(
            "bindings of 2.44 million licences: serials {} bytes, stems {} bytes",
            encoded.lst.len(),
            encoded.stem_lst.len()
        );
        assert!(size < 260_000, "{size} bytes");

        // The worst case: every licence of another type than the one before, at random (a
        // fixed linear congruential sequence), the reference city's mix of the five.
        let mut interleaved = StatusList::with_capacity(2_440_000);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..2_440_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let prefix = match (x >> 33) % 20 {
                0..=7 => "DL",
                8..=11 => "BL",
                12..=15 => "RP",
                16..=18 => "RE",
                _ => "FB",
            };
            interleaved
                .bind(i, &format!("{prefix}-2026-{:08}", i + 1))
                .unwrap();
        }
        let encoded = interleaved.encode_bindings();
        eprintln!(
            "bindings of 2.44 million licences of five types at random: serials {} bytes, stems {} bytes",
            encoded.lst.len(),
            encoded.stem_lst.len()
        );
        assert!(
            encoded.stem_lst.len() < 1_150_000,
            "{}",
            encoded.stem_lst.len()
        );
    }

    #[test]
    fn only_the_whole_number_matches_its_binding() {
        let mut list = StatusList::with_capacity(8);
        list.bind(2, "DL-2026-00000005").unwrap();
        let bound = list.bound(2).unwrap().unwrap();
        assert!(bound.is("DL-2026-00000005"));
        // Another type, another year, another way of writing the serial: not this licence.
        for other in [
            "BL-2026-00000005",
            "DL-2025-00000005",
            "DL-2026-5",
            "DL-2026-000000005",
            "XDL-2026-00000005",
            "DL-2026-00000006",
        ] {
            assert!(!bound.is(other), "{other}");
        }
        assert_eq!(
            split_licence_number("DL-2026-123456789"),
            Some(("DL-2026-", 123_456_789))
        );
        assert_eq!(split_licence_number("DL-2026-0123456789"), None);
        assert!(is_number_of_type("DL-2026-00000005", "DL"));
        assert!(is_number_of_type("DL-2026-123456789", "DL"));
        for (number, prefix) in [
            ("DL-2026-00000005", "BL"),
            ("DL-2026-00000005", "D"),
            ("XDL-2026-00000005", "DL"),
            ("DL-26-00000005", "DL"),
            ("DL-2026-5", "DL"),
            ("DL2026-00000005", "DL"),
        ] {
            assert!(!is_number_of_type(number, prefix), "{number} {prefix}");
        }
    }

    #[test]
    fn an_index_without_a_licence_is_unbound_and_bad_numbers_are_errors() {
        let mut list = StatusList::with_capacity(8);
        list.bind(2, "DL-2026-00000005").unwrap();
        assert_eq!(list.bound(1), Some(None));
        assert_eq!(list.bound(5), Some(None));
        assert_eq!(list.bound(9), None);
        assert!(list.bind(3, "no-serial").is_err());
        assert!(list.bind(3, "DL-2026-00000000").is_err());
        assert!(list.bind(3, "DL-2026-5").is_err());
        assert!(list
            .bind(3, &format!("{}00000001", "X".repeat(65)))
            .is_err());
        assert_eq!(
            split_licence_number("DL-2026-00000002"),
            Some(("DL-2026-", 2))
        );
        assert_eq!(split_licence_number("99999999999999999999999"), None);
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
