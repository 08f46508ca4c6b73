//! Electronic licences in the hub: `bohai-certs`'s licence sealing and verification wrapped
//! with storage (`store`), the lifecycle operations the CLI and the API share (`service`),
//! the registry's licence types as the verifier sees them (`types`), the signed status list
//! (`status`), the offline trust bundle (`bundle`) and the licence-events topic (`events`).

pub mod bundle;
pub mod discipline;
pub mod events;
pub mod on_record;
pub mod qr;
pub mod service;
pub mod status;
pub mod store;
pub mod types;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub use service::LicenceService;

use crate::seals::SealsError;

/// What can go wrong with a licence operation.
#[derive(Debug, thiserror::Error)]
pub enum LicenceError {
    /// No licence type with this id in the registry.
    #[error("unknown licence type `{0}`")]
    UnknownType(String),
    /// The department does not issue this type (or does not own this licence).
    #[error("department `{department}` may not {action}: {why}")]
    NotAllowed {
        /// The acting department.
        department: String,
        /// What it tried.
        action: String,
        /// Why not.
        why: String,
    },
    /// The holder or fields break the type's schema: every violation.
    #[error("the licence does not fit type `{licence_type}`: {}", .violations.iter().map(|v| format!("{} ({}): {}", v.pointer, v.rule, v.message)).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The type.
        licence_type: String,
        /// Every violation.
        violations: Vec<bohai_schemas::Violation>,
    },
    /// Joint discipline: an identifier of the licence is on a credit list its type consults
    /// (every match), and no override the type allows was given.
    #[error("{}", credit_listed_message(licence_type, matches, *may_override))]
    CreditListed {
        /// The type.
        licence_type: String,
        /// Every entry in force that an identifier matched.
        matches: Vec<crate::credit::discipline::ListMatch>,
        /// Whether the type lets an officer override the refusal with a reason.
        may_override: bool,
    },
    /// A request that makes no sense (validity order, empty reason, ...).
    #[error("{0}")]
    BadRequest(String),
    /// No licence with this number.
    #[error("no licence `{0}`")]
    UnknownLicence(String),
    /// The licence is not in a state that allows the operation.
    #[error("licence `{number}` is {state}: cannot {action}")]
    WrongState {
        /// Licence number.
        number: String,
        /// Its state.
        state: String,
        /// The operation refused.
        action: String,
    },
    /// The seal or PKI side failed (no valid seal, master key, ...).
    #[error(transparent)]
    Seals(#[from] SealsError),
    /// Sealing the licence failed.
    #[error(transparent)]
    Seal(#[from] bohai_certs::licence::SealLicenceError),
    /// Signing the status list or bundle failed.
    #[error("signing failed: {0}")]
    Key(#[from] bohai_certs::KeyError),
    /// A stored row cannot be read back.
    #[error("stored licence data cannot be read: {0}")]
    Stored(String),
    /// The masking salt (which hashes identity numbers in the audit log) cannot be read.
    #[error(transparent)]
    Salt(#[from] crate::sharing::SharingError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn credit_listed_message(
    licence_type: &str,
    matches: &[crate::credit::discipline::ListMatch],
    may_override: bool,
) -> String {
    let found: Vec<String> = matches
        .iter()
        .map(|m| {
            format!(
                "{} is on {} (entry {}{}{}, {} through {})",
                m.pointer,
                m.dataset,
                m.entry,
                m.category
                    .as_deref()
                    .map(|c| format!(", {c}"))
                    .unwrap_or_default(),
                m.listing_department
                    .as_deref()
                    .map(|d| format!(", listed by {d}"))
                    .unwrap_or_default(),
                m.list_date.map(|d| d.to_string()).unwrap_or_default(),
                m.end_date
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "no end date".to_owned()),
            )
        })
        .collect();
    format!(
        "joint discipline refuses `{licence_type}`: {}; {}",
        found.join("; "),
        if may_override {
            "an officer may override with a reason (`discipline_override`)"
        } else {
            "the type allows no override"
        }
    )
}

/// An officer's override of a joint-discipline refusal, where the licence type allows one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisciplineOverride {
    /// Why the licence is issued despite the listing (a court ruling, a repair granted at
    /// the listing department, ...). Recorded with the licence and in the audit log, with
    /// the officer: the person the token or `--actor` names.
    #[schema(min_length = 1)]
    pub reason: String,
    /// The entries the officer overrides, as the refusal named them: the override covers
    /// these only, so that it is given for a refusal seen, not in advance for any.
    #[schema(min_items = 1)]
    pub entries: Vec<String>,
}

/// An override that was needed and granted: recorded with the licence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverrideRecord {
    /// The licence version issued under it.
    pub version: i32,
    /// The entries that would have refused it.
    pub matches: Vec<crate::credit::discipline::ListMatch>,
    /// The officer's reason.
    pub reason: String,
    /// The officer.
    pub officer: String,
    /// Who acted (`dept:CODE` or `cli:USER`).
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Lifecycle events, as stored and published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LicenceEvent {
    /// A new licence (also the successor of a replaced one).
    Issued,
    /// A new version with a new validity; the previous version is superseded.
    Renewed,
    /// Lost or damaged: the old document is revoked and a new one issued.
    Replaced,
    /// Revoked with a reason.
    Revoked,
    /// Suspended; may be resumed.
    Suspended,
    /// Resumed after a suspension.
    Resumed,
    /// Its validity ended.
    Expired,
}

impl LicenceEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenceEvent::Issued => "issued",
            LicenceEvent::Renewed => "renewed",
            LicenceEvent::Replaced => "replaced",
            LicenceEvent::Revoked => "revoked",
            LicenceEvent::Suspended => "suspended",
            LicenceEvent::Resumed => "resumed",
            LicenceEvent::Expired => "expired",
        }
    }
}

/// One version of a licence, as `licence show` and `GET /api/v1/licences/{number}` show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenceVersion {
    /// Licence number.
    pub number: String,
    /// Version.
    pub version: i32,
    /// Licence type id.
    pub licence_type: String,
    /// Issuing department.
    pub department: String,
    /// Holder's name; for a reader by subscription, partly masked, and absent unless the
    /// subscription grants `holder_name`.
    #[schema(required = false)]
    pub holder_name: String,
    /// `valid`, `revoked`, `suspended` or `superseded`, or `expired` when its validity
    /// ended while it was valid or suspended.
    pub state: String,
    /// Index in the status list.
    pub status_index: i64,
    /// Start of validity.
    pub valid_from: DateTime<Utc>,
    /// End of validity.
    pub valid_until: DateTime<Utc>,
    /// When this version was sealed.
    pub issued_at: DateTime<Utc>,
    /// The seal that sealed it.
    pub seal_id: String,
    /// Why it was revoked.
    pub revocation_reason: Option<String>,
    /// The version it replaced or renewed (`NUMBER/vN`).
    pub supersedes: Option<String>,
    /// The version that replaced or renewed it (`NUMBER/vN`).
    pub successor: Option<String>,
    /// The sealed licence (compact JWS); for a reader by subscription, absent unless the
    /// subscription grants `document` (it carries the holder's identity number and cannot be
    /// masked without breaking its seal).
    #[schema(required = false)]
    pub document: String,
}

/// One recorded transition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Event id (order).
    pub id: i64,
    /// Licence number.
    pub number: String,
    /// Version concerned.
    pub version: i32,
    /// What happened.
    pub event: LicenceEvent,
    /// Who did it: `dept:CODE` for a token, `cli:USER` for the command line, `hub` for
    /// automatic expiry; absent for a reader by subscription.
    #[schema(required = false)]
    pub actor: String,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A licence with every version and its history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenceView {
    /// Licence number.
    pub number: String,
    /// The newest version first.
    pub versions: Vec<LicenceVersion>,
    /// Every transition, oldest first.
    pub events: Vec<EventView>,
    /// The joint-discipline overrides it was issued under, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discipline_overrides: Vec<OverrideRecord>,
}

/// What a department asks to issue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Licence type id, e.g. `driving-licence`.
    #[serde(rename = "type")]
    #[schema(min_length = 1)]
    pub licence_type: String,
    /// The holder, as the type's schema describes.
    #[schema(value_type = Object)]
    pub holder: Value,
    /// The licence's fields, as the type's schema describes.
    #[schema(value_type = Object)]
    pub fields: Value,
    /// Start of validity; default: now.
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity; default: `valid_from` plus the type's default validity.
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Issue despite a joint-discipline match, where the type allows an officer's override.
    #[serde(default)]
    pub discipline_override: Option<DisciplineOverride>,
}

/// A licence just sealed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedLicence {
    /// Licence number.
    pub number: String,
    /// Version.
    pub version: i32,
    /// Index in the status list.
    pub status_index: i64,
    /// Start of validity.
    pub valid_from: DateTime<Utc>,
    /// End of validity.
    pub valid_until: DateTime<Utc>,
    /// The sealed licence (compact JWS, `typ` `bohai-licence+jwt`).
    pub document: String,
}
