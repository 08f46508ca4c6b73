//! Conversions between the crate's timestamps (`chrono::DateTime<Utc>`, whole seconds) and
//! the time types of rcgen (`time`), webpki (`UnixTime`) and DER (`GeneralizedTime`).

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use der::asn1::GeneralizedTime;
use rustls_pki_types::UnixTime;

/// A timestamp that cannot be represented in one of the target formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfRange(pub(crate) i64);

/// Drops sub-second precision: every Bohai timestamp is in whole seconds.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

pub(crate) fn to_offset(t: DateTime<Utc>) -> Result<time::OffsetDateTime, OutOfRange> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|_| OutOfRange(t.timestamp()))
}

pub(crate) fn to_unix_time(t: DateTime<Utc>) -> Result<UnixTime, OutOfRange> {
    let secs = u64::try_from(t.timestamp()).map_err(|_| OutOfRange(t.timestamp()))?;
    Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
}

pub(crate) fn to_generalized(t: DateTime<Utc>) -> Result<GeneralizedTime, OutOfRange> {
    let secs = u64::try_from(t.timestamp()).map_err(|_| OutOfRange(t.timestamp()))?;
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|_| OutOfRange(t.timestamp()))
}

pub(crate) fn from_generalized(t: GeneralizedTime) -> Result<DateTime<Utc>, OutOfRange> {
    from_unix_seconds(t.to_unix_duration().as_secs())
}

pub(crate) fn from_unix_seconds(secs: u64) -> Result<DateTime<Utc>, OutOfRange> {
    let signed = i64::try_from(secs).map_err(|_| OutOfRange(i64::MAX))?;
    from_timestamp(signed)
}

pub(crate) fn from_timestamp(secs: i64) -> Result<DateTime<Utc>, OutOfRange> {
    Utc.timestamp_opt(secs, 0).single().ok_or(OutOfRange(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_round_trip() {
        let t = from_timestamp(1_767_225_600).unwrap();
        assert_eq!(from_generalized(to_generalized(t).unwrap()).unwrap(), t);
        assert!(to_generalized(from_timestamp(-5).unwrap()).is_err());
        assert_eq!(to_offset(t).unwrap().unix_timestamp(), 1_767_225_600);
    }
}
