//! Joint discipline in the issuing path: each request of a batch whose type consults credit
//! lists (`[discipline]` of its manifest) is checked with one lookup for the whole batch
//! (`crate::credit::discipline`). A match refuses the request with every entry it matched
//! ([`LicenceError::CreditListed`]), unless the type allows an officer's override and the
//! request carries one from a named person: then it is issued and the override recorded with
//! it. The checks of a batch are one audit entry (`credit.discipline_check`), subjects hashed.

use std::collections::BTreeSet;

use bohai_schemas::licences::OnMatch;
use bohai_schemas::LicenceType;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use super::service::Actor;
use super::{IssueRequest, LicenceError};
use crate::credit::discipline::{entries_in_force, identifiers, ListMatch};
use crate::sharing::mask::Salt;

/// An override that was needed and given: stored with the licence it let through.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The entries that would have refused the licence.
    pub matches: Vec<ListMatch>,
    /// The officer's reason.
    pub reason: String,
    /// The officer.
    pub officer: String,
}

/// A request that passed its type check, and after the discipline check the override it is
/// issued under, if one was needed.
pub type Checked<'t> = (&'t LicenceType, IssueRequest, Option<Granted>);

/// Checks every typed request of a batch against the credit lists its type consults, at
/// `now` (the city's day), and appends one audit entry for the checks made.
pub async fn check_batch<'t>(
    db: &PgPool,
    actor: &Actor,
    salt: impl FnOnce() -> Result<Salt, LicenceError>,
    typed: Vec<Result<(&'t LicenceType, IssueRequest), LicenceError>>,
    now: DateTime<Utc>,
) -> Result<Vec<Result<Checked<'t>, LicenceError>>, LicenceError> {
    // The identifiers of each request its type checks.
    let presented: Vec<Vec<(String, String)>> = typed
        .iter()
        .map(|r| match r {
            Ok((t, request)) => t.discipline.as_ref().map_or_else(Vec::new, |d| {
                identifiers(
                    d,
                    &json!({"holder": request.holder, "fields": request.fields}),
                )
            }),
            Err(_) => Vec::new(),
        })
        .collect();
    let lists: BTreeSet<&str> = typed
        .iter()
        .flatten()
        .filter_map(|(t, _)| t.discipline.as_ref())
        .flat_map(|d| d.lists.iter().map(String::as_str))
        .collect();
    let values: BTreeSet<&str> = presented
        .iter()
        .flatten()
        .map(|(_, v)| v.as_str())
        .collect();
    let checked_count = typed
        .iter()
        .flatten()
        .filter(|(t, _)| t.discipline.is_some())
        .count();
    if checked_count == 0 {
        return Ok(typed
            .into_iter()
            .map(|r| r.map(|(t, request)| (t, request, None)))
            .collect());
    }
    let salt = salt()?;
    let in_force = entries_in_force(db, &lists, &values, now).await?;

    let mut refused = Vec::new();
    let mut overridden = Vec::new();
    let out: Vec<Result<Checked<'t>, LicenceError>> = typed
        .into_iter()
        .zip(&presented)
        .enumerate()
        .map(|(index, (r, ids))| {
            let (t, request) = r?;
            let Some(discipline) = &t.discipline else {
                return Ok((t, request, None));
            };
            let matches = in_force.matches(discipline, ids);
            if matches.is_empty() {
                return Ok((t, request, None));
            }
            // A request that breaks its type's schema is refused for that, as it would be
            // without the lists: the counter is no oracle for a bare identity number.
            let violations =
                t.validate(&json!({"holder": request.holder, "fields": request.fields}));
            if !violations.is_empty() {
                return Err(LicenceError::Invalid {
                    licence_type: t.id.clone(),
                    violations,
                });
            }
            let entries: Vec<&str> = matches.iter().map(|m| m.entry.as_str()).collect();
            let may_override = discipline.on_match == OnMatch::OfficerOverride;
            // An override covers the entries it names, every one of the matches.
            let reason = request
                .discipline_override
                .as_ref()
                .filter(|o| entries.iter().all(|e| o.entries.iter().any(|n| n == e)))
                .map(|o| o.reason.trim().to_owned());
            match (may_override, reason, actor.person()) {
                (true, Some(reason), Some(officer)) if !reason.is_empty() => {
                    overridden.push(json!({"index": index, "type": t.id, "entries": entries,
                                           "reason": reason}));
                    let granted = Granted {
                        matches,
                        reason,
                        officer: officer.to_owned(),
                    };
                    Ok((t, request, Some(granted)))
                }
                (true, Some(_), None) => {
                    refused.push(json!({"index": index, "type": t.id, "entries": entries}));
                    Err(LicenceError::BadRequest(format!(
                        "joint discipline: an override of `{}` must name the officer (a token issued to a person, or --actor)",
                        t.id
                    )))
                }
                _ => {
                    refused.push(json!({"index": index, "type": t.id, "entries": entries}));
                    Err(LicenceError::CreditListed {
                        licence_type: t.id.clone(),
                        matches,
                        may_override,
                    })
                }
            }
        })
        .collect();

    // A credit code as it is (public); anything else, a valid identity number or not, as
    // its salted hash.
    let subjects: Vec<String> = values
        .iter()
        .map(|v| {
            if bohai_schemas::formats::check_credit_code(v).is_ok() {
                (*v).to_owned()
            } else {
                format!(
                    "hmac:{}",
                    crate::sharing::mask::salted_hash(&salt, &serde_json::Value::from(*v))
                )
            }
        })
        .collect();
    crate::audit::Entry::new(&actor.recorded(), "credit.discipline_check")
        .person(actor.person())
        .keys(subjects)
        .count(checked_count)
        .detail(&json!({"checked": checked_count, "refused": refused,
                        "overridden": overridden}))
        .append_to(db)
        .await?;
    Ok(out)
}

/// With the check switched off (`licences.credit_discipline = false`): every typed request
/// goes on unchecked, and a batch holding requests whose type consults the lists says so in
/// the audit log (`credit.discipline_skipped`) and the log, so that issuing without the lists
/// is never silent.
pub async fn skip_batch<'t>(
    db: &PgPool,
    actor: &Actor,
    typed: Vec<Result<(&'t LicenceType, IssueRequest), LicenceError>>,
) -> Result<Vec<Result<Checked<'t>, LicenceError>>, LicenceError> {
    let skipped = typed
        .iter()
        .flatten()
        .filter(|(t, _)| t.discipline.is_some())
        .count();
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "licences.credit_discipline is false: licences issued without the credit lists"
        );
        crate::audit::Entry::new(&actor.recorded(), "credit.discipline_skipped")
            .person(actor.person())
            .count(skipped)
            .append_to(db)
            .await?;
    }
    Ok(typed
        .into_iter()
        .map(|r| r.map(|(t, request)| (t, request, None)))
        .collect())
}
