//! Access requests (subscriptions): a department asks for fields of another department's
//! dataset, or of the licences of another department's licence type, with a purpose and a
//! period; the owner (or a hub operator) approves or rejects with a reason; unconditional
//! datasets are granted at once and not-shared ones refused. Licence types are always decided
//! by their issuing department: a licence carries its holder's identity.

use bohai_schemas::{Registry, Sharing};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::SharingError;
use crate::audit::{Entry, OPERATOR};

/// Longest period a request may ask for.
pub const MAX_PERIOD_DAYS: i64 = 3 * 366;
/// Longest purpose, in characters.
const MAX_PURPOSE: usize = 2000;
/// Who decides automatically for unconditional datasets.
const POLICY: &str = "policy:unconditional";

/// What a subscription is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Kind {
    /// A dataset of the shared repository.
    Dataset,
    /// The licences of a licence type.
    LicenceType,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::LicenceType => "licence_type",
        }
    }
}

/// The fields of a licence a subscriber to its type may be granted; the rest of a licence
/// (number, type, department, state, validity, seal, history) is shown to every granted
/// reader. `holder_name` is shown partly masked (like a `partial` field of a dataset);
/// `document`, the sealed licence, carries the holder's identity number and cannot be masked
/// without breaking its seal: it is shown whole or not at all.
pub const LICENCE_FIELDS: [&str; 2] = ["holder_name", "document"];

/// A request for access: to a dataset (`dataset`) or to the licences of a licence type
/// (`licence_type`), exactly one of them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The dataset, e.g. `business-registrations`.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub dataset: Option<String>,
    /// The licence type, e.g. `driving-licence`; its fields are `holder_name` and `document`.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub licence_type: Option<String>,
    /// The fields wanted (top-level properties of the dataset's schema; for a licence type,
    /// `holder_name` and/or `document`).
    #[schema(min_items = 1)]
    pub fields: Vec<String>,
    /// Why the data is needed, 1 to 2000 characters, not all blank; recorded with every read.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "[^\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub purpose: String,
    /// The end of the requested period (RFC 3339), at most three years ahead.
    pub until: DateTime<Utc>,
}

/// A subscription as stored, with whether it is overdue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Subscription {
    /// Its id.
    pub id: uuid::Uuid,
    /// What it is to: `dataset` or `licence_type`.
    pub kind: Kind,
    /// The dataset, or the licence type when `kind` is `licence_type`.
    pub dataset: String,
    /// The requesting department.
    pub department: String,
    /// The fields requested (and, once approved, granted).
    pub fields: Vec<String>,
    /// The stated purpose.
    pub purpose: String,
    /// `pending`, `approved`, `rejected` or `withdrawn`.
    pub status: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When the owner must have answered.
    pub reply_due: DateTime<Utc>,
    /// The end of the requested (and granted) period.
    pub valid_until: DateTime<Utc>,
    /// When it was decided.
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided: a department, `operator`, or `policy:unconditional`.
    pub decided_by: Option<String>,
    /// The reason given with the decision.
    pub reason: Option<String>,
    /// When it was withdrawn.
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Who withdrew it: the requester, the owner, or `operator`.
    pub withdrawn_by: Option<String>,
    /// Why it was withdrawn.
    pub withdrawal_reason: Option<String>,
    /// The person who asked (the requesting token's actor), if named.
    pub requested_by: Option<String>,
    /// The first of the two admins needed when the requesting department approves its own
    /// request (`DEPARTMENT/PERSON`), while it waits for the second.
    pub first_approved_by: Option<String>,
    /// Pending past its reply deadline.
    #[sqlx(default)]
    pub overdue: bool,
    /// Approved and not yet expired.
    #[sqlx(default)]
    pub active: bool,
    /// The Kafka topic the hub fills with the approved fields, masked, while the
    /// subscription is active (`{topic_prefix}sub.{id}`); no longer filled when access ends.
    #[sqlx(default)]
    pub topic: Option<String>,
}

impl Subscription {
    fn with_flags(mut self, now: DateTime<Utc>) -> Self {
        self.overdue = self.status == "pending" && self.reply_due < now;
        self.active = self.status == "approved" && self.valid_until > now;
        self
    }
}

const COLUMNS: &str =
    "id, kind, dataset, department, fields, purpose, status, requested_at, reply_due,
    valid_until, decided_at, decided_by, reason, withdrawn_at, withdrawn_by, withdrawal_reason,
    requested_by, first_approved_by";

/// Checks `request` by `department` against the registry and records it; an unconditional
/// dataset is approved at once.
pub async fn request(
    db: &PgPool,
    registry: &Registry,
    reply_days: u32,
    department: &str,
    person: Option<&str>,
    request: SubscriptionRequest,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    let target = Target::of(registry, &request)?;
    if target.sharing == Sharing::NotShared {
        return Err(SharingError::NotShared(target.id.to_owned()));
    }
    if target.owner == department {
        return Err(SharingError::BadRequest(format!(
            "{} `{}` is your own department's; it reads it without a request",
            target.what, target.id
        )));
    }
    let mut fields: Vec<String> = Vec::new();
    for f in &request.fields {
        if !target.fields.contains(&f.as_str()) {
            return Err(SharingError::BadRequest(format!(
                "{} `{}` has no field `{f}`; {}",
                target.what, target.id, target.fields_hint
            )));
        }
        if !fields.contains(f) {
            fields.push(f.clone());
        }
    }
    if fields.is_empty() {
        return Err(SharingError::BadRequest(
            "name at least one field in `fields`".to_owned(),
        ));
    }
    let purpose = request.purpose.trim();
    if purpose.is_empty() || request.purpose.chars().count() > MAX_PURPOSE {
        return Err(SharingError::BadRequest(format!(
            "`purpose` must say why the data is needed, in 1 to {MAX_PURPOSE} characters"
        )));
    }
    if request.until <= now || request.until > now + Duration::days(MAX_PERIOD_DAYS) {
        return Err(SharingError::BadRequest(format!(
            "`until` must be in the future and at most {MAX_PERIOD_DAYS} days ahead"
        )));
    }
    let unconditional = target.sharing == Sharing::Unconditional;
    let id = uuid::Uuid::new_v4();
    let mut tx = db.begin().await?;
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO subscriptions (id, dataset, department, fields, purpose, status,
             requested_at, reply_due, valid_until, decided_at, decided_by, reason, requested_by,
             kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(target.id)
    .bind(department)
    .bind(&fields)
    .bind(purpose)
    .bind(if unconditional { "approved" } else { "pending" })
    .bind(now)
    .bind(now + Duration::days(i64::from(reply_days)))
    .bind(request.until)
    .bind(unconditional.then_some(now))
    .bind(unconditional.then_some(POLICY))
    .bind(unconditional.then_some("the dataset is shared unconditionally"))
    .bind(person)
    .bind(target.kind.as_str())
    .fetch_one(&mut *tx)
    .await?;
    Entry::new(department, "subscription.request")
        .person(person)
        .dataset(target.id)
        .subject(id)
        .purpose(purpose)
        .detail(&serde_json::json!({"fields": fields, "until": request.until}))
        .append(&mut tx)
        .await?;
    if unconditional {
        Entry::new(POLICY, "subscription.approve")
            .dataset(target.id)
            .subject(id)
            .append(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(sub.with_flags(now))
}

/// What a request names, as the registry describes it.
struct Target<'a> {
    kind: Kind,
    id: &'a str,
    /// `dataset` or `licence type`, for messages.
    what: &'static str,
    owner: &'a str,
    sharing: Sharing,
    fields: Vec<&'a str>,
    fields_hint: &'static str,
}

impl<'a> Target<'a> {
    fn of(registry: &'a Registry, request: &'a SubscriptionRequest) -> Result<Self, SharingError> {
        match (&request.dataset, &request.licence_type) {
            (Some(dataset), None) => {
                let ds = registry
                    .dataset(dataset)
                    .ok_or_else(|| SharingError::UnknownDataset(dataset.clone()))?;
                Ok(Target {
                    kind: Kind::Dataset,
                    id: &ds.id,
                    what: "dataset",
                    owner: &ds.department,
                    sharing: ds.sharing,
                    fields: ds.fields(),
                    fields_hint: "the catalogue lists its fields",
                })
            }
            (None, Some(licence_type)) => {
                let t = registry
                    .licence_type(licence_type)
                    .ok_or_else(|| SharingError::UnknownLicenceType(licence_type.clone()))?;
                Ok(Target {
                    kind: Kind::LicenceType,
                    id: &t.id,
                    what: "licence type",
                    owner: &t.department,
                    // A licence carries its holder's identity: its issuer decides each request.
                    sharing: Sharing::Conditional,
                    fields: LICENCE_FIELDS.to_vec(),
                    fields_hint: "a licence type's fields are `holder_name` and `document`",
                })
            }
            _ => Err(SharingError::BadRequest(
                "name exactly one of `dataset` and `licence_type`".to_owned(),
            )),
        }
    }
}

/// The department that decides subscriptions to `sub`'s dataset or licence type.
fn owner_of(registry: &Registry, sub: &Subscription) -> String {
    match sub.kind {
        Kind::Dataset => registry.dataset(&sub.dataset).map(|d| d.department.clone()),
        Kind::LicenceType => registry
            .licence_type(&sub.dataset)
            .map(|t| t.department.clone()),
    }
    .unwrap_or_default()
}

/// Who decides or withdraws a request.
#[derive(Debug, Clone)]
pub enum Decider {
    /// A department's token; `admin` when it holds the admin scope.
    Department {
        /// The department.
        code: String,
        /// Whether it may decide for any dataset.
        admin: bool,
        /// The person holding the token, if it names one.
        person: Option<String>,
    },
    /// `bohai sub approve|reject` on the hub's machine.
    Operator,
}

impl Decider {
    fn name(&self) -> &str {
        match self {
            Decider::Department { code, .. } => code,
            Decider::Operator => OPERATOR,
        }
    }

    fn person(&self) -> Option<&str> {
        match self {
            Decider::Department { person, .. } => person.as_deref(),
            Decider::Operator => None,
        }
    }
}

/// What the rule "approving is a different person from requesting" makes of an approval of
/// `sub` by `decider`.
#[derive(Debug, PartialEq, Eq)]
enum Approval {
    /// It approves the request.
    Approves,
    /// It is the first of the two admins the requesting department needs: recorded as
    /// `DEPARTMENT/PERSON`, the request stays pending.
    First(String),
}

/// The rule, pure: nobody approves a request they made; a token of the requesting department
/// (only an admin one can decide it at all) approves only as one of two admins naming two
/// different persons, neither of them the requester. The owning department and the hub's
/// operator approve alone, as before.
fn judge_approval(sub: &Subscription, decider: &Decider) -> Result<Approval, SharingError> {
    let Decider::Department { code, person, .. } = decider else {
        return Ok(Approval::Approves);
    };
    if *code != sub.department {
        return Ok(Approval::Approves);
    }
    let Some(person) = person.as_deref() else {
        return Err(SharingError::SelfApproval(format!(
            "subscription {} was requested by your own department `{code}`: approving it takes two admins named by their tokens (`bohai dept token create --actor`), and this token names nobody",
            sub.id
        )));
    };
    if sub.requested_by.as_deref() == Some(person) {
        return Err(SharingError::SelfApproval(format!(
            "subscription {} was requested by `{person}`, who cannot approve it",
            sub.id
        )));
    }
    let me = format!("{code}/{person}");
    match sub.first_approved_by.as_deref() {
        None => Ok(Approval::First(me)),
        Some(first) if first == me => Err(SharingError::SelfApproval(format!(
            "subscription {} already has your approval: a second admin, another person, must approve it",
            sub.id
        ))),
        Some(_) => Ok(Approval::Approves),
    }
}

/// Subscription `id`, locked for the rest of `tx`, and the department owning its dataset.
async fn locked(
    tx: &mut sqlx::PgConnection,
    registry: &Registry,
    id: uuid::Uuid,
) -> Result<(Subscription, String), SharingError> {
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(SharingError::UnknownSubscription(id))?;
    let owner = owner_of(registry, &sub);
    Ok((sub, owner))
}

/// Approves (`approve`) or rejects a pending request. A rejection needs a reason.
pub async fn decide(
    db: &PgPool,
    registry: &Registry,
    id: uuid::Uuid,
    decider: &Decider,
    approve: bool,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if !approve && reason.is_none() {
        return Err(SharingError::BadRequest(
            "a rejection needs a reason".to_owned(),
        ));
    }
    let mut tx = db.begin().await?;
    let (sub, owner) = locked(&mut tx, registry, id).await?;
    if let Decider::Department {
        code, admin: false, ..
    } = decider
    {
        if *code != owner {
            return Err(SharingError::Forbidden(format!(
                "subscription {id} is for dataset `{}` of department `{owner}`; only that department or a hub operator decides it",
                sub.dataset
            )));
        }
    }
    if sub.status != "pending" {
        return Err(SharingError::WrongState {
            id,
            status: sub.status,
            allowed: "only a pending request can be decided",
        });
    }
    if approve {
        if let Approval::First(me) = judge_approval(&sub, decider)? {
            // Safe: only the constant COLUMNS is formatted in; every value is bound.
            let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE subscriptions SET first_approved_by = $2, first_approved_at = $3
                 WHERE id = $1 RETURNING {COLUMNS}"
            )))
            .bind(id)
            .bind(&me)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            return audit_and_commit(tx, decider, "subscription.approve.first", sub, reason, now)
                .await;
        }
    }
    let status = if approve { "approved" } else { "rejected" };
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE subscriptions SET status = $2, decided_at = $3, decided_by = $4, reason = $5
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(status)
    .bind(now)
    .bind(decider.name())
    .bind(reason)
    .fetch_one(&mut *tx)
    .await?;
    let action = if approve {
        "subscription.approve"
    } else {
        "subscription.reject"
    };
    audit_and_commit(tx, decider, action, sub, reason, now).await
}

/// Appends the audit entry of `by`'s `action` on `sub` and commits the change with it.
async fn audit_and_commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    by: &Decider,
    action: &str,
    sub: Subscription,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    Entry::new(by.name(), action)
        .person(by.person())
        .dataset(&sub.dataset)
        .subject(sub.id)
        .detail(&serde_json::json!({"reason": reason, "requester": sub.department}))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(sub.with_flags(now))
}

/// Withdraws a pending or approved subscription, with a reason: the requester no longer
/// needs the data, or the owning department (or a hub operator) ends the access. Reads are
/// refused from then on, and the delivery worker stops filling the subscription's topic and
/// deletes it.
pub async fn withdraw(
    db: &PgPool,
    registry: &Registry,
    id: uuid::Uuid,
    by: &Decider,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(SharingError::BadRequest(
            "a withdrawal needs a reason".to_owned(),
        ));
    }
    let mut tx = db.begin().await?;
    let (sub, owner) = locked(&mut tx, registry, id).await?;
    if let Decider::Department {
        code, admin: false, ..
    } = by
    {
        if *code != owner && *code != sub.department {
            return Err(SharingError::Forbidden(format!(
                "subscription {id} is `{}`'s request for dataset `{}` of department `{owner}`; only those two departments or a hub operator withdraw it",
                sub.department, sub.dataset
            )));
        }
    }
    if sub.status != "pending" && sub.status != "approved" {
        return Err(SharingError::WrongState {
            id,
            status: sub.status,
            allowed: "only a pending or approved subscription can be withdrawn",
        });
    }
    // A pending request is decided by its withdrawal.
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE subscriptions SET status = 'withdrawn', withdrawn_at = $2, withdrawn_by = $3,
             withdrawal_reason = $4, decided_at = COALESCE(decided_at, $2)
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(now)
    .bind(by.name())
    .bind(reason)
    .fetch_one(&mut *tx)
    .await?;
    audit_and_commit(tx, by, "subscription.withdraw", sub, Some(reason), now).await
}

/// Which subscriptions a listing shows.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Only those a department requested or owns the dataset (or licence type) of; `None`
    /// for all.
    pub department: Option<&'a str>,
    /// Only those of this dataset.
    pub dataset: Option<&'a str>,
    /// Only those in this status.
    pub status: Option<&'a str>,
    /// Only pending ones past their reply deadline.
    pub overdue: bool,
}

/// The subscriptions `filter` selects, newest first.
pub async fn list(
    db: &PgPool,
    registry: &Registry,
    filter: &Filter<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Subscription>, sqlx::Error> {
    // The licence types the department issues: the registry's, not a table's.
    let issued_types: Vec<&str> = registry
        .licence_types
        .iter()
        .filter(|t| Some(t.department.as_str()) == filter.department)
        .map(|t| t.id.as_str())
        .collect();
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let rows: Vec<Subscription> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM subscriptions s
         WHERE ($1::text IS NULL OR s.department = $1
                OR (s.kind = 'dataset'
                    AND s.dataset IN (SELECT id FROM datasets WHERE department = $1))
                OR (s.kind = 'licence_type' AND s.dataset = ANY($6)))
           AND ($2::text IS NULL OR s.dataset = $2)
           AND ($3::text IS NULL OR s.status = $3)
           AND (NOT $4 OR (s.status = 'pending' AND s.reply_due < $5))
         ORDER BY s.requested_at DESC, s.id"
    )))
    .bind(filter.department)
    .bind(filter.dataset)
    .bind(filter.status)
    .bind(filter.overdue)
    .bind(now)
    .bind(&issued_types)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|s| s.with_flags(now)).collect())
}

/// One subscription.
pub async fn get(
    db: &PgPool,
    id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let sub: Option<Subscription> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?;
    sub.map(|s| s.with_flags(now))
        .ok_or(SharingError::UnknownSubscription(id))
}

/// The subscription `department` reads `dataset` (of `kind`) under at `now`: the one named,
/// or the most recently approved active one. Refused without an approval or after it
/// expired.
pub async fn grant_for_read(
    db: &PgPool,
    department: &str,
    (kind, dataset): (Kind, &str),
    named: Option<uuid::Uuid>,
    now: DateTime<Utc>,
) -> Result<Subscription, SharingError> {
    // The approved ones first; a withdrawn one explains a refusal when none is left.
    // Safe: only the constant COLUMNS is formatted in; every value is bound.
    let granted: Vec<Subscription> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM subscriptions
         WHERE department = $1 AND dataset = $2 AND status IN ('approved', 'withdrawn')
           AND ($3::uuid IS NULL OR id = $3) AND kind = $4
         ORDER BY status = 'approved' DESC, valid_until DESC, decided_at DESC"
    )))
    .bind(department)
    .bind(dataset)
    .bind(named)
    .bind(kind.as_str())
    .fetch_all(db)
    .await?;
    let first = granted
        .into_iter()
        .next()
        .ok_or_else(|| SharingError::NotApproved {
            department: department.to_owned(),
            dataset: dataset.to_owned(),
        })?;
    if first.status == "withdrawn" {
        return Err(SharingError::Withdrawn {
            id: first.id,
            by: first.withdrawn_by.unwrap_or_default(),
            reason: first.withdrawal_reason.unwrap_or_default(),
        });
    }
    if first.valid_until <= now {
        return Err(SharingError::Expired {
            department: department.to_owned(),
            dataset: dataset.to_owned(),
            until: first.valid_until,
        });
    }
    Ok(first.with_flags(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(requested_by: Option<&str>, first: Option<&str>) -> Subscription {
        let now = DateTime::UNIX_EPOCH;
        Subscription {
            id: uuid::Uuid::nil(),
            kind: Kind::Dataset,
            dataset: "business-registrations".to_owned(),
            department: "civil-affairs".to_owned(),
            fields: vec!["credit_code".to_owned()],
            purpose: "checks".to_owned(),
            status: "pending".to_owned(),
            requested_at: now,
            reply_due: now,
            valid_until: now,
            decided_at: None,
            decided_by: None,
            reason: None,
            withdrawn_at: None,
            withdrawn_by: None,
            withdrawal_reason: None,
            requested_by: requested_by.map(str::to_owned),
            first_approved_by: first.map(str::to_owned),
            overdue: false,
            active: false,
            topic: None,
        }
    }

    fn admin(code: &str, person: Option<&str>) -> Decider {
        Decider::Department {
            code: code.to_owned(),
            admin: true,
            person: person.map(str::to_owned),
        }
    }

    #[test]
    fn the_requesting_department_needs_two_other_persons() {
        let refused =
            |r: Result<Approval, SharingError>| matches!(r, Err(SharingError::SelfApproval(_)));
        let sub = pending(Some("zhang"), None);
        // Its own admin: not without a person, never the requester, else first of two.
        assert!(refused(judge_approval(&sub, &admin("civil-affairs", None))));
        assert!(refused(judge_approval(
            &sub,
            &admin("civil-affairs", Some("zhang"))
        )));
        assert_eq!(
            judge_approval(&sub, &admin("civil-affairs", Some("li"))).ok(),
            Some(Approval::First("civil-affairs/li".to_owned()))
        );
        let sub = pending(Some("zhang"), Some("civil-affairs/li"));
        assert!(refused(judge_approval(
            &sub,
            &admin("civil-affairs", Some("li"))
        )));
        assert_eq!(
            judge_approval(&sub, &admin("civil-affairs", Some("wang"))).ok(),
            Some(Approval::Approves)
        );
        // The owner, another department's admin and the operator approve alone.
        let sub = pending(Some("zhang"), None);
        assert_eq!(
            judge_approval(&sub, &admin("market-regulation", None)).ok(),
            Some(Approval::Approves)
        );
        assert_eq!(
            judge_approval(&sub, &Decider::Operator).ok(),
            Some(Approval::Approves)
        );
    }
}
