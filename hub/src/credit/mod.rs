//! The credit profile (信用档案): every entry about one subject, an organisation or individual
//! business by its unified social credit code or a person by their resident identity number,
//! across the credit datasets (commitments, red list, black list) and the administrative
//! penalties, each with whether it is published now.
//!
//! Who sees what follows the records reads (`crate::sharing::records`): the owning department
//! every field, another department the fields of its approved subscription to each dataset,
//! masked by the one masking rule (`crate::sharing::mask`), and nothing of a dataset it has
//! no approval for (the profile names those datasets as withheld). The public query (信用盘锦)
//! answers only for a credit code, only with entries published now and never with a natural
//! person's entry or any personal field; every other question, a person's identity number
//! included, gets the answer an unknown subject gets. Every department's and operator's read
//! is audited, the subject hashed when it may be an identity number. The queries are in
//! `store.rs`; what is published and how an entry is shown are pure functions here.

pub mod discipline;
pub mod repair;
mod store;

use bohai_schemas::{Dataset, Registry};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::audit::Entry;
use crate::sharing::mask::{self, Salt, View};
use crate::sharing::{subscriptions, SharingError};
use store::Match;

/// Why a credit profile was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    /// The subject is not 18 letters and digits, the shape of both a unified social credit
    /// code and a resident identity number.
    #[error("`subject` must be a unified social credit code or a resident identity number: 18 letters and digits")]
    BadSubject,
    /// The public query has nothing to show: the subject is unknown, has no entry published
    /// now, is a person, or is not a credit code. One answer for all, so that it cannot tell
    /// whether a person is listed.
    #[error("no published credit entries for this subject")]
    NothingPublished,
    /// A dataset the profile reads is not in the registry.
    #[error("the registry has no dataset `{0}`, which the credit profile reads")]
    UnknownDataset(&'static str),
    /// Checking the reader's subscription failed (not a refusal: those withhold a dataset).
    #[error(transparent)]
    Sharing(SharingError),
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Where a dataset keeps an entry's facts.
#[derive(Debug)]
struct Source {
    /// The dataset.
    dataset: &'static str,
    /// The field with the subject's category (法人及非法人组织, 个体工商户, 自然人).
    subject_type: &'static str,
    /// The field with the date the entry is published from.
    list_date: &'static str,
    /// The field with the entry's last day, if the dataset has one.
    end_date: Option<&'static str>,
    /// The field naming the listing department; without one, the dataset's owner listed it.
    department: Option<&'static str>,
}

/// The datasets of a credit profile, in the order shown. `store.rs` and migration 0019 name
/// the same four.
const SOURCES: [Source; 4] = [
    Source {
        dataset: "administrative-penalties",
        subject_type: "party_type",
        list_date: "decided_on",
        end_date: None,
        department: None,
    },
    Source {
        dataset: "credit-black-list",
        subject_type: "subject_type",
        list_date: "list_date",
        end_date: Some("end_date"),
        department: Some("listing_department"),
    },
    Source {
        dataset: "credit-commitments",
        subject_type: "subject_type",
        list_date: "list_date",
        end_date: Some("end_date"),
        department: Some("listing_department"),
    },
    Source {
        dataset: "credit-red-list",
        subject_type: "subject_type",
        list_date: "list_date",
        end_date: Some("end_date"),
        department: Some("listing_department"),
    },
];

/// The subject category of a natural person.
const NATURAL_PERSON: &str = "自然人";

/// The city's offset from UTC (China Standard Time, no daylight saving): list and end dates
/// are days in the city.
const CITY_OFFSET_HOURS: i64 = 8;

/// The day it is in the city at `now`.
pub fn city_day(now: DateTime<Utc>) -> NaiveDate {
    (now + Duration::hours(CITY_OFFSET_HOURS)).date_naive()
}

/// Whether an entry is published on `today`: from its list date through its end date, the
/// last day it applies (the schemas' `end_date`, 有效期截止日期); an entry without an end date
/// stays published. An entry whose credit repair was approved leaves (`repair.rs`).
pub fn published(list_date: NaiveDate, end_date: Option<NaiveDate>, today: NaiveDate) -> bool {
    list_date <= today && end_date.is_none_or(|end| today <= end)
}

/// Who reads a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader<'a> {
    /// A department, by its token: what it owns and what its approvals allow.
    Department {
        /// Its code.
        code: &'a str,
        /// The person holding the token, if it names one.
        person: Option<&'a str>,
    },
    /// The hub's operator (`bohai credit show`): every dataset, personal fields masked.
    Operator,
}

/// One entry of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditEntry {
    /// The dataset it comes from.
    pub dataset: String,
    /// Its key as the reader sees it (the entry number; a penalty's authority code and
    /// decision number).
    pub key: Option<String>,
    /// The department that listed it (a `code` of departments.toml; for a penalty, the
    /// dataset's owner).
    pub department: String,
    /// The date it is published from (a penalty's decision date).
    pub list_date: Option<NaiveDate>,
    /// Its last day, if it has one.
    pub end_date: Option<NaiveDate>,
    /// Whether it is published today (the city's day): list date ≤ today ≤ end date, and not
    /// repaired.
    pub published: bool,
    /// The city's day its credit repair was approved, if it was: it is kept, marked, but no
    /// longer published nor consulted at the licence counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repaired_on: Option<NaiveDate>,
    /// The record as the reader sees it: every field for the owner, the approved fields
    /// masked for another department, no personal field for the public.
    #[schema(value_type = Object)]
    pub record: Value,
}

/// Every entry about a subject that the reader may see.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreditProfile {
    /// The subject asked about.
    pub subject: String,
    /// The entries, by dataset and key.
    pub entries: Vec<CreditEntry>,
    /// The datasets the reader has no approved subscription to, whose entries are not
    /// shown (request one with POST /api/v1/subscriptions). Empty for the public query.
    pub withheld: Vec<String>,
}

/// The subject as looked up: trimmed, upper case (an identity number's check character `x`
/// is `X`), and 18 ASCII letters and digits.
pub fn normalise(subject: &str) -> Result<String, CreditError> {
    let s = subject.trim().to_ascii_uppercase();
    if s.len() == 18 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        Err(CreditError::BadSubject)
    }
}

/// The subject as the audit log records it: a credit code as it is (public), anything that is
/// a valid resident identity number as its salted hash, the value the masking rule shows it
/// as to other departments.
pub(crate) fn audited_subject(subject: &str, salt: &Salt) -> String {
    if bohai_schemas::formats::check_resident_id(subject).is_ok() {
        format!(
            "hmac:{}",
            mask::salted_hash(salt, &Value::String(subject.to_owned()))
        )
    } else {
        subject.to_owned()
    }
}

fn date_field(data: &Value, field: &str) -> Option<NaiveDate> {
    data.get(field)?.as_str()?.parse().ok()
}

/// An entry of `source` as `view` sees it, on `today`.
fn entry(
    source: &Source,
    dataset: &Dataset,
    row: &store::Row,
    view: View<'_>,
    salt: &Salt,
    today: NaiveDate,
) -> CreditEntry {
    let list_date = date_field(&row.data, source.list_date);
    let end_date = source.end_date.and_then(|f| date_field(&row.data, f));
    let department = source
        .department
        .and_then(|f| row.data.get(f)?.as_str())
        .unwrap_or(&dataset.department);
    CreditEntry {
        dataset: dataset.id.clone(),
        key: mask::key(dataset, &row.pk, &row.data, view, salt),
        department: department.to_owned(),
        list_date,
        end_date,
        published: row.repaired_on.is_none()
            && list_date.is_some_and(|d| published(d, end_date, today)),
        repaired_on: row.repaired_on,
        record: mask::project(dataset, &row.data, view, salt),
    }
}

/// The registry's dataset of `source`.
fn dataset_of<'r>(registry: &'r Registry, source: &Source) -> Result<&'r Dataset, CreditError> {
    registry
        .dataset(source.dataset)
        .ok_or(CreditError::UnknownDataset(source.dataset))
}

/// The subject as looked up, the city's day at `now`, and the records naming the subject
/// (as `by` says).
async fn lookup(
    db: &PgPool,
    subject: &str,
    by: Match,
    now: DateTime<Utc>,
) -> Result<(String, NaiveDate, Vec<store::Row>), CreditError> {
    let subject = normalise(subject)?;
    let rows = store::records_naming(db, &subject, by).await?;
    Ok((subject, city_day(now), rows))
}

/// The profile of `subject` as `reader` sees it at `now`, audited (`credit.read`, with the
/// keys shown and the subject hashed if it may be an identity number).
pub async fn profile(
    db: &PgPool,
    registry: &Registry,
    reader: Reader<'_>,
    subject: &str,
    salt: &Salt,
    now: DateTime<Utc>,
) -> Result<CreditProfile, CreditError> {
    let (subject, today, rows) = lookup(db, subject, Match::Any, now).await?;
    let mut entries = Vec::new();
    let mut withheld = Vec::new();
    let mut shown_keys = Vec::new();
    for source in &SOURCES {
        let dataset = dataset_of(registry, source)?;
        let grant = match reader {
            Reader::Department { code, .. } if code == dataset.department => None,
            Reader::Department { code, .. } => {
                match subscriptions::grant_for_read(
                    db,
                    code,
                    (subscriptions::Kind::Dataset, &dataset.id),
                    None,
                    now,
                )
                .await
                {
                    Ok(g) => Some(g.fields),
                    Err(
                        SharingError::NotApproved { .. }
                        | SharingError::Expired { .. }
                        | SharingError::Withdrawn { .. },
                    ) => {
                        withheld.push(dataset.id.clone());
                        continue;
                    }
                    Err(e) => return Err(CreditError::Sharing(e)),
                }
            }
            Reader::Operator => Some(dataset.fields().into_iter().map(str::to_owned).collect()),
        };
        let view = match &grant {
            None => View::Owner,
            Some(fields) => View::Shared { fields },
        };
        for row in rows.iter().filter(|r| r.dataset == source.dataset) {
            entries.push(entry(source, dataset, row, view, salt, today));
            shown_keys.push(format!("{}:{}", row.dataset, row.pk));
        }
    }
    let (actor, person) = match reader {
        Reader::Department { code, person } => (code, person),
        Reader::Operator => (crate::audit::OPERATOR, crate::audit::operator_person()),
    };
    Entry::new(actor, "credit.read")
        .person(person)
        .subject(audited_subject(&subject, salt))
        .keys(shown_keys)
        .purpose("credit profile")
        .detail(&serde_json::json!({ "withheld": withheld }))
        .append_to(db)
        .await?;
    Ok(CreditProfile {
        subject,
        entries,
        withheld,
    })
}

/// The public profile (信用盘锦) of a credit code at `now`: only entries published now, only
/// of organisations and individual businesses, without personal fields. Not audited: it
/// shows only what is published, to anyone. Refused with [`CreditError::NothingPublished`]
/// when there is nothing to show, whatever the reason.
pub async fn public_profile(
    db: &PgPool,
    registry: &Registry,
    subject: &str,
    salt: &Salt,
    now: DateTime<Utc>,
) -> Result<CreditProfile, CreditError> {
    let (subject, today, rows) = lookup(db, subject, Match::CreditCode, now).await?;
    let mut entries = Vec::new();
    for source in &SOURCES {
        let dataset = dataset_of(registry, source)?;
        let public: Vec<String> = dataset
            .fields()
            .into_iter()
            .filter(|f| !dataset.pii.contains_key(*f))
            .map(str::to_owned)
            .collect();
        let view = View::Shared { fields: &public };
        entries.extend(
            rows.iter()
                .filter(|r| r.dataset == source.dataset)
                .filter(|r| {
                    r.data.get(source.subject_type).and_then(Value::as_str) != Some(NATURAL_PERSON)
                })
                .map(|r| entry(source, dataset, r, view, salt, today))
                .filter(|e| e.published),
        );
    }
    if entries.is_empty() {
        return Err(CreditError::NothingPublished);
    }
    Ok(CreditProfile {
        subject,
        entries,
        withheld: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn an_entry_is_published_from_its_list_date_through_its_end_date() {
        let (list, end) = (d("2025-03-01"), Some(d("2026-02-28")));
        assert!(!published(list, end, d("2025-02-28")));
        assert!(published(list, end, d("2025-03-01")));
        assert!(published(list, end, d("2026-02-28")));
        assert!(!published(list, end, d("2026-03-01")));
        assert!(published(list, None, d("2099-01-01")));
    }

    #[test]
    fn the_city_day_is_china_standard_time() {
        let late = "2025-03-01T16:30:00Z".parse().unwrap();
        assert_eq!(city_day(late), d("2025-03-02"));
        let early = "2025-03-01T15:59:59Z".parse().unwrap();
        assert_eq!(city_day(early), d("2025-03-01"));
    }

    #[test]
    fn subjects_are_eighteen_letters_and_digits() {
        assert_eq!(
            normalise(" 21110219690827151x ").unwrap(),
            "21110219690827151X"
        );
        for bad in [
            "",
            "9121110",
            "91211103MA0Q9F4B6R1",
            "91211103MA0Q9F4B6-",
            "九1211103MA0Q9F4B6",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_numbers_are_audited_hashed_and_credit_codes_as_they_are() {
        let salt = Salt::new(b"a salt of at least sixteen bytes");
        let audited = audited_subject("21110219690827151X", &salt);
        assert!(audited.starts_with("hmac:") && !audited.contains("21110219690827151X"));
        assert_eq!(
            audited_subject("91211103MA0Q9F4B6R", &salt),
            "91211103MA0Q9F4B6R"
        );
    }

    #[test]
    fn the_sources_are_the_registry_datasets_with_the_fields_named() {
        let registry = Registry::load_builtin().unwrap();
        for source in &SOURCES {
            let ds = dataset_of(&registry, source).unwrap();
            let fields = ds.fields();
            let named = [Some(source.subject_type), Some(source.list_date)]
                .into_iter()
                .chain([source.end_date, source.department])
                .flatten();
            for f in named {
                assert!(fields.contains(&f), "{} has no {f}", source.dataset);
            }
        }
    }
}
