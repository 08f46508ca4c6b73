//! Credit repair (信用修复): the way out of a black list or of a penalty's publication.
//!
//! The department that listed an entry applies on its subject's behalf, with the documents
//! the dataset's `[repair]` rule asks for (by kind, each named and fingerprinted by its
//! SHA-256); the dataset's owning department decides, by another person than the applicant,
//! before the rule's deadline, approving or rejecting with its reasons. An approved repair
//! takes the entry out of publication (the credit profile and the public query show it
//! `published: false`, with `repaired_on`) and out of the joint-discipline check at the
//! licence counter; the entry itself stays in the repository. Subscribers of the dataset are
//! told: the entry's record is delivered to them again, with the repair in its headers.
//! Every step is on the audit log (`credit.repair.applied`, `.approved`, `.rejected`), with
//! the person. This module owns `credit_repairs` (migration 0024).

use bohai_schemas::{Dataset, Registry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::audit::Entry;

/// Why a repair step was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The dataset is not in the registry, or its manifest has no `[repair]` rule.
    #[error("`{0}` has no credit repair: its manifest has no [repair] rule")]
    NotRepairable(String),
    /// No entry with this key in the repository that the caller's department listed.
    #[error("no entry `{entry}` in `{dataset}` listed by the caller's department")]
    UnknownEntry {
        /// The dataset.
        dataset: String,
        /// The key asked for.
        entry: String,
    },
    /// The caller is not the department the step belongs to.
    #[error("department `{department}` may not {action}: {why}")]
    NotAllowed {
        /// The acting department.
        department: String,
        /// What it tried.
        action: &'static str,
        /// Who may.
        why: String,
    },
    /// A step of a person not named (a token issued to a department only, a CLI without
    /// `--actor`): repair is decided between persons.
    #[error("a credit repair step must name the person taking it (a token issued to a person, or bohai --actor NAME)")]
    NoPerson,
    /// The decider is the person who applied.
    #[error("`{0}` applied for this repair and cannot also decide it: another person must")]
    SamePerson(String),
    /// The documents the rule asks for are not all there, or one is malformed.
    #[error("{0}")]
    Documents(String),
    /// Reason missing.
    #[error("a reason is required")]
    NoReason,
    /// The entry has an application pending or a repair approved already.
    #[error("entry `{entry}` of `{dataset}` has repair {id} {state} already")]
    AlreadyOpen {
        /// The dataset.
        dataset: String,
        /// The entry.
        entry: String,
        /// The open application.
        id: i64,
        /// `pending` or `approved`.
        state: String,
    },
    /// No application with this id.
    #[error("no credit repair {0}")]
    UnknownRepair(i64),
    /// The entry changed (its listing department extended or corrected it) since the
    /// application: it is a repair of what no longer stands.
    #[error("entry `{entry}` changed since repair {id} was applied for (version {applied}, now {now}): reject it, and apply again for the entry as it stands")]
    EntryChanged {
        /// The application.
        id: i64,
        /// The entry.
        entry: String,
        /// The version applied for.
        applied: i32,
        /// The version now.
        now: i32,
    },
    /// Decided already.
    #[error("credit repair {id} is {state} already")]
    Decided {
        /// The application.
        id: i64,
        /// Its state.
        state: String,
    },
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// A document an application carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairDocument {
    /// Which of the rule's documents it is (`履行完毕证明`).
    #[schema(min_length = 1)]
    pub kind: String,
    /// Its file name or title.
    #[schema(min_length = 1)]
    pub name: String,
    /// The SHA-256 of its content, lowercase hex: the document itself stays with the
    /// departments; this pins which one was judged.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
}

/// What a department files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairApplication {
    /// The dataset of the entry (`credit-black-list`, `administrative-penalties`).
    pub dataset: String,
    /// The entry's key as the repository stores it (a black-list entry's number).
    pub entry: String,
    /// Why the subject should be repaired (the obligation fulfilled, the commitment made).
    #[schema(min_length = 1)]
    pub reason: String,
    /// The documents the rule asks for.
    #[schema(min_items = 1)]
    pub documents: Vec<RepairDocument>,
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The entry leaves publication and the discipline check.
    Approve,
    /// It stays.
    Reject,
}

impl Decision {
    fn state(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }
}

/// Who takes a step.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The department (a token's), or `None` for the hub's operator, who may act for any.
    pub department: Option<&'a str>,
    /// The person.
    pub person: Option<&'a str>,
}

impl Actor<'_> {
    fn recorded(&self) -> &str {
        self.department.unwrap_or(crate::audit::OPERATOR)
    }

    fn may_act_for(&self, department: &str) -> bool {
        self.department.is_none_or(|d| d == department)
    }
}

/// An application and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Repair {
    /// Its id.
    pub id: i64,
    /// The dataset of the entry.
    pub dataset: String,
    /// The entry's key.
    pub entry: String,
    /// The version of the entry applied for: the repair holds while the repository holds it.
    pub entry_version: i32,
    /// The department that applied (the one that listed the entry).
    pub applicant: String,
    /// The person who applied.
    pub applicant_person: String,
    /// Why.
    pub reason: String,
    /// The documents.
    #[schema(value_type = Vec<RepairDocument>)]
    pub documents: sqlx::types::Json<Vec<RepairDocument>>,
    /// When it was filed.
    pub applied_at: DateTime<Utc>,
    /// When the owning department must have decided.
    pub decide_by: DateTime<Utc>,
    /// `pending`, `approved` or `rejected`.
    pub state: String,
    /// The department that decided.
    pub decided_by: Option<String>,
    /// The person who decided.
    pub decider_person: Option<String>,
    /// The decision's reasons.
    pub decision_reason: Option<String>,
    /// When.
    pub decided_at: Option<DateTime<Utc>>,
}

impl Repair {
    /// Whether it is pending past its deadline at `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.state == "pending" && now > self.decide_by
    }
}

const COLUMNS: &str = "id, dataset, entry, entry_version, applicant, applicant_person, reason, \
     documents, applied_at, decide_by, state, decided_by, decider_person, decision_reason, \
     decided_at";

/// The department that listed an entry: its `listing_department`, or the dataset's owner.
fn lister(dataset: &Dataset, data: &Value) -> String {
    data.get("listing_department")
        .and_then(Value::as_str)
        .unwrap_or(&dataset.department)
        .to_owned()
}

/// Whether `documents` carry every kind `required` asks for, each well formed.
fn check_documents(required: &[String], documents: &[RepairDocument]) -> Result<(), RepairError> {
    for d in documents {
        let hex = d.sha256.len() == 64
            && d.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex || d.name.trim().is_empty() || d.kind.trim().is_empty() {
            return Err(RepairError::Documents(format!(
                "document `{}` ({}) needs a kind, a name and its SHA-256 as 64 lowercase hex digits",
                d.name, d.kind
            )));
        }
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|kind| !documents.iter().any(|d| &d.kind == *kind))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RepairError::Documents(format!(
            "the repair rule asks for {}; missing: {}",
            required.join(", "),
            missing.join(", ")
        )))
    }
}

/// Files `application` for `actor` at `now`: the actor must be (or act for) the department
/// that listed the entry, and name a person.
pub async fn apply(
    db: &PgPool,
    registry: &Registry,
    actor: Actor<'_>,
    application: RepairApplication,
    now: DateTime<Utc>,
) -> Result<Repair, RepairError> {
    let person = actor.person.ok_or(RepairError::NoPerson)?;
    let dataset = registry
        .dataset(&application.dataset)
        .filter(|d| d.repair.is_some())
        .ok_or_else(|| RepairError::NotRepairable(application.dataset.clone()))?;
    let rule = dataset
        .repair
        .as_ref()
        .ok_or_else(|| RepairError::NotRepairable(dataset.id.clone()))?;
    let reason = application.reason.trim();
    if reason.is_empty() {
        return Err(RepairError::NoReason);
    }
    check_documents(&rule.documents, &application.documents)?;
    let stored: Option<(Value, i32)> = sqlx::query_as(
        "SELECT data, version FROM repository_records WHERE dataset = $1 AND pk = $2",
    )
    .bind(&dataset.id)
    .bind(&application.entry)
    .fetch_optional(db)
    .await?;
    // Another department's entry is answered as an unknown one: the applicant learns nothing
    // of entries it did not list.
    let Some((data, version)) =
        stored.filter(|(data, _)| actor.may_act_for(&lister(dataset, data)))
    else {
        return Err(RepairError::UnknownEntry {
            dataset: dataset.id.clone(),
            entry: application.entry,
        });
    };
    let lister = lister(dataset, &data);
    let decide_by = now + chrono::Duration::from_std(rule.decision_within).unwrap_or_default();
    let mut tx = db.begin().await?;
    let open: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, state FROM credit_repairs
         WHERE dataset = $1 AND entry = $2 AND entry_version = $3
           AND state IN ('pending', 'approved') FOR UPDATE",
    )
    .bind(&dataset.id)
    .bind(&application.entry)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, state)) = open {
        return Err(RepairError::AlreadyOpen {
            dataset: dataset.id.clone(),
            entry: application.entry,
            id,
            state,
        });
    }
    let inserted: Result<Repair, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO credit_repairs (dataset, entry, entry_version, applicant,
             applicant_person, reason, documents, applied_at, decide_by, state)
         VALUES ($1, $2, $9, $3, $4, $5, $6, $7, $8, 'pending') RETURNING {COLUMNS}"
    )))
    .bind(&dataset.id)
    .bind(&application.entry)
    .bind(&lister)
    .bind(person)
    .bind(reason)
    .bind(sqlx::types::Json(&application.documents))
    .bind(now)
    .bind(decide_by)
    .bind(version)
    .fetch_one(&mut *tx)
    .await;
    let repair = match inserted {
        Ok(r) => r,
        // Another application for the entry committed first.
        Err(e) if is_unique_violation(&e) => {
            return Err(RepairError::AlreadyOpen {
                dataset: dataset.id.clone(),
                entry: application.entry,
                id: 0,
                state: "pending".to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    Entry::new(actor.recorded(), "credit.repair.applied")
        .person(Some(person))
        .dataset(&repair.dataset)
        .subject(repair.id)
        .keys(vec![repair.entry.clone()])
        .detail(
            &serde_json::json!({"reason": repair.reason, "documents": repair.documents.0,
                                    "decide_by": repair.decide_by}),
        )
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(repair)
}

/// Whether two recorded names are one person's: compared trimmed and without regard to case.
fn same_person(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// Decides repair `id` for `actor` at `now`: the actor must be (or act for) the dataset's
/// owning department, and be another person than the applicant. Approving marks the entry's
/// record changed, so that subscription delivery sends it again with the repair.
pub async fn decide(
    db: &PgPool,
    registry: &Registry,
    actor: Actor<'_>,
    id: i64,
    (decision, reason): (Decision, &str),
    now: DateTime<Utc>,
) -> Result<Repair, RepairError> {
    let person = actor.person.ok_or(RepairError::NoPerson)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(RepairError::NoReason);
    }
    let mut tx = db.begin().await?;
    let repair: Option<Repair> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credit_repairs WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let repair = repair.ok_or(RepairError::UnknownRepair(id))?;
    let owner = registry
        .dataset(&repair.dataset)
        .map(|d| d.department.clone())
        .ok_or_else(|| RepairError::NotRepairable(repair.dataset.clone()))?;
    if !actor.may_act_for(&owner) {
        return Err(RepairError::NotAllowed {
            department: actor.recorded().to_owned(),
            action: "decide this repair",
            why: format!(
                "`{owner}` owns `{}` and decides its repairs",
                repair.dataset
            ),
        });
    }
    if repair.state != "pending" {
        return Err(RepairError::Decided {
            id,
            state: repair.state,
        });
    }
    if same_person(&repair.applicant_person, person) {
        return Err(RepairError::SamePerson(person.to_owned()));
    }
    // The entry as it stands now must be the one applied for.
    let version: Option<(i32,)> = sqlx::query_as(
        "SELECT version FROM repository_records WHERE dataset = $1 AND pk = $2 FOR SHARE",
    )
    .bind(&repair.dataset)
    .bind(&repair.entry)
    .fetch_optional(&mut *tx)
    .await?;
    let now_version = version.map_or(0, |(v,)| v);
    if decision == Decision::Approve && now_version != repair.entry_version {
        return Err(RepairError::EntryChanged {
            id,
            entry: repair.entry,
            applied: repair.entry_version,
            now: now_version,
        });
    }
    let decided: Repair = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE credit_repairs SET state = $2, decided_by = $3, decider_person = $4,
             decision_reason = $5, decided_at = $6
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(decision.state())
    .bind(actor.recorded())
    .bind(person)
    .bind(reason)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    if decision == Decision::Approve {
        // The entry changed for its readers: delivered again to subscribers, with the repair.
        sqlx::query(
            "UPDATE repository_records SET change_xid = pg_current_xact_id(), updated_at = $3
             WHERE dataset = $1 AND pk = $2",
        )
        .bind(&decided.dataset)
        .bind(&decided.entry)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Entry::new(
        actor.recorded(),
        &format!("credit.repair.{}", decision.state()),
    )
    .person(Some(person))
    .dataset(&decided.dataset)
    .subject(decided.id)
    .keys(vec![decided.entry.clone()])
    .detail(&serde_json::json!({"reason": reason, "late": now > decided.decide_by}))
    .append(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(decided)
}

/// The applications a department filed or decides (every one for the operator), newest
/// first; only pending ones when `pending_only`.
pub async fn list(
    db: &PgPool,
    registry: &Registry,
    department: Option<&str>,
    pending_only: bool,
) -> Result<Vec<Repair>, RepairError> {
    let owned: Vec<String> = department.map_or_else(Vec::new, |code| {
        registry
            .datasets
            .iter()
            .filter(|d| d.department == code && d.repair.is_some())
            .map(|d| d.id.clone())
            .collect()
    });
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credit_repairs
         WHERE ($1::text IS NULL OR applicant = $1 OR dataset = ANY($2))
           AND (NOT $3 OR state = 'pending')
         ORDER BY id DESC LIMIT 1000"
    )))
    .bind(department)
    .bind(&owned)
    .bind(pending_only)
    .fetch_all(db)
    .await?)
}

/// The approved repair of each of `entries` of `dataset`, for subscription delivery:
/// `(entry, repair id, approval time)`.
pub async fn approved_among(
    db: &PgPool,
    dataset: &str,
    entries: &[&str],
) -> Result<Vec<(String, i64, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT entry, id, decided_at FROM credit_repairs
         WHERE dataset = $1 AND entry = ANY($2) AND state = 'approved'",
    )
    .bind(dataset)
    .bind(entries)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str) -> RepairDocument {
        RepairDocument {
            kind: kind.to_owned(),
            name: format!("{kind}.pdf"),
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn an_application_carries_every_document_the_rule_asks_for() {
        let rule = vec!["履行完毕证明".to_owned(), "信用修复承诺书".to_owned()];
        assert!(check_documents(&rule, &[doc("履行完毕证明"), doc("信用修复承诺书")]).is_ok());
        let missing = check_documents(&rule, &[doc("履行完毕证明")]).unwrap_err();
        assert!(
            missing.to_string().contains("missing: 信用修复承诺书"),
            "{missing}"
        );
        let mut bad = doc("信用修复承诺书");
        bad.sha256 = "XYZ".to_owned();
        assert!(check_documents(&rule, &[doc("履行完毕证明"), bad]).is_err());
    }
}
