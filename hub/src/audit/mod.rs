//! The audit log: every publish batch, read, access request, decision, token action and
//! licence action, append-only in PostgreSQL and hash-chained (`chain.rs`, pure) so that a
//! changed, inserted or deleted entry is found by [`verify`].
//!
//! Appending takes a transaction-scoped advisory lock, so entries are numbered without gaps
//! in the order they commit; callers that change data pass their own transaction so that the
//! change and its entry commit together.

pub mod chain;
pub mod checkpoint;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

pub use chain::{Break, Content};

/// The advisory-lock key that serialises appends ("bohai-audit" in ASCII, truncated).
const APPEND_LOCK: i64 = 0x626f_6861_692d_6175;
/// How many entries `verify` reads at a time.
const VERIFY_PAGE: i64 = 10_000;
/// Most keys listed in one entry; a larger batch is recorded by its count.
pub const MAX_KEYS: usize = 10_000;

/// The actor of commands run on the hub's own machine.
pub const OPERATOR: &str = "operator";
/// The actor of what the hub does by itself (its periodic duties).
pub const HUB: &str = "hub";

/// The person behind this process's [`OPERATOR`] acts (`bohai --actor`), set once at start.
static OPERATOR_PERSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the person running this command: every entry by [`OPERATOR`] records them. The
/// first call wins.
pub fn set_operator_person(person: &str) {
    let _ = OPERATOR_PERSON.set(person.to_owned());
}

/// The person set by [`set_operator_person`], if any.
pub fn operator_person() -> Option<&'static str> {
    OPERATOR_PERSON.get().map(String::as_str)
}

/// A new entry; see [`Content`] for the fields. Build with [`Entry::new`] and the setters.
#[derive(Debug, Clone)]
pub struct Entry(Content);

impl Entry {
    /// An entry by `actor` (a department code or [`OPERATOR`]) for `action`, now.
    pub fn new(actor: &str, action: &str) -> Self {
        Entry(Content {
            at: chain::truncate(Utc::now()),
            actor: actor.to_owned(),
            person: (actor == OPERATOR)
                .then(operator_person)
                .flatten()
                .map(str::to_owned),
            action: action.to_owned(),
            dataset: None,
            subject: None,
            keys: Vec::new(),
            count: 0,
            purpose: None,
            detail: "{}".to_owned(),
        })
    }

    /// The person who acted for the actor (a token's actor, `--actor`), when known.
    pub fn person(mut self, person: Option<&str>) -> Self {
        self.0.person = person.filter(|p| !p.is_empty()).map(str::to_owned);
        self
    }

    /// The dataset concerned.
    pub fn dataset(mut self, dataset: &str) -> Self {
        self.0.dataset = Some(dataset.to_owned());
        self
    }

    /// Another thing concerned (subscription, token, licence, request).
    pub fn subject(mut self, subject: impl ToString) -> Self {
        self.0.subject = Some(subject.to_string());
        self
    }

    /// The keys concerned; also sets the count. Past [`MAX_KEYS`] only the count is kept.
    pub fn keys(mut self, keys: Vec<String>) -> Self {
        self.0.count = i64::try_from(keys.len()).unwrap_or(i64::MAX);
        if keys.len() <= MAX_KEYS {
            self.0.keys = keys;
        }
        self
    }

    /// How many records.
    pub fn count(mut self, count: usize) -> Self {
        self.0.count = i64::try_from(count).unwrap_or(i64::MAX);
        self
    }

    /// The stated purpose.
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.0.purpose = Some(purpose.to_owned());
        self
    }

    /// More detail, as a JSON value.
    pub fn detail(mut self, detail: &serde_json::Value) -> Self {
        self.0.detail = detail.to_string();
        self
    }

    /// Appends the entry inside `tx` (the caller's transaction). Returns its sequence number.
    pub async fn append(self, tx: &mut PgConnection) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (prev_seq, prev_hash) = match last {
            Some((s, h)) => (s, h.try_into().unwrap_or(chain::GENESIS)),
            None => (0, chain::GENESIS),
        };
        let seq = prev_seq + 1;
        let c = &self.0;
        let hash = chain::entry_hash(&prev_hash, seq, c);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, dataset, subject, keys, count, purpose,
                 detail, prev_hash, hash, person)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(seq)
        .bind(c.at)
        .bind(&c.actor)
        .bind(&c.action)
        .bind(&c.dataset)
        .bind(&c.subject)
        .bind(&c.keys)
        .bind(c.count)
        .bind(&c.purpose)
        .bind(&c.detail)
        .bind(prev_hash.as_slice())
        .bind(hash.as_slice())
        .bind(&c.person)
        .execute(&mut *tx)
        .await?;
        Ok(seq)
    }

    /// Appends the entry in a transaction of its own.
    pub async fn append_to(self, db: &PgPool) -> Result<i64, sqlx::Error> {
        let mut tx = db.begin().await?;
        let seq = self.append(&mut tx).await?;
        tx.commit().await?;
        Ok(seq)
    }
}

/// Records a licence action (`issued`, `renewed`, `revoked`, ...) by `actor` (and `person`)
/// on licence `number` version `version`, in the licence service's transaction, so that the
/// action and its entry commit together.
#[allow(clippy::too_many_arguments)]
pub async fn licence_action(
    tx: &mut PgConnection,
    actor: &str,
    person: Option<&str>,
    event: &str,
    number: &str,
    version: i32,
    reason: Option<&str>,
) -> Result<i64, sqlx::Error> {
    Entry::new(actor, &format!("licence.{event}"))
        .person(person)
        .subject(number)
        .count(1)
        .detail(&serde_json::json!({"version": version, "reason": reason}))
        .append(tx)
        .await
}

/// The result of `bohai audit verify`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// Entries checked.
    pub entries: i64,
    /// Whether the whole chain is intact.
    pub intact: bool,
    /// The first broken entry, if any.
    pub first_broken: Option<i64>,
    /// Why it is broken.
    pub reason: Option<String>,
    /// The signed checkpoint it was checked against (`--against`), if any.
    pub checkpoint: Option<checkpoint::CheckpointSummary>,
}

type Row = (
    i64,
    DateTime<Utc>,
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    i64,
    Option<String>,
    String,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
);

/// Recomputes the whole chain, page by page, and names the first broken entry.
pub async fn verify(db: &PgPool) -> Result<Verification, sqlx::Error> {
    verify_up_to(db, None).await
}

/// Recomputes the whole chain as [`verify`] does, then checks it against a signed
/// checkpoint: the entries up to the checkpoint's must still be there and hash to its hash,
/// so a truncation or a rewrite (even one that recomputed every hash) before it is found.
pub async fn verify_against(
    db: &PgPool,
    checkpoint: &checkpoint::VerifiedCheckpoint,
) -> Result<Verification, sqlx::Error> {
    let mut v = verify_up_to(db, Some(checkpoint)).await?;
    v.checkpoint = Some(checkpoint.summary());
    Ok(v)
}

async fn verify_up_to(
    db: &PgPool,
    checkpoint: Option<&checkpoint::VerifiedCheckpoint>,
) -> Result<Verification, sqlx::Error> {
    let mut state = (0i64, chain::GENESIS);
    let mut checked = 0i64;
    // The chain's state at the checkpoint's entry, once reached.
    let signed_seq = checkpoint.map(|c| c.seq());
    let mut at_checkpoint = (signed_seq == Some(0)).then_some((0, chain::GENESIS));
    let broken = |checked: i64, b: chain::Break| Verification {
        entries: checked,
        intact: false,
        first_broken: Some(b.seq()),
        reason: Some(b.to_string()),
        checkpoint: None,
    };
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor, action, dataset, subject, keys, count, purpose, detail,
                    prev_hash, hash, person
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(state.0)
        .bind(VERIFY_PAGE)
        .fetch_all(db)
        .await?;
        if rows.is_empty() {
            break;
        }
        let entries: Vec<chain::Stored> = rows
            .into_iter()
            .map(|r| chain::Stored {
                seq: r.0,
                content: Content {
                    at: r.1,
                    actor: r.2,
                    person: r.12,
                    action: r.3,
                    dataset: r.4,
                    subject: r.5,
                    keys: r.6,
                    count: r.7,
                    purpose: r.8,
                    detail: r.9,
                },
                prev_hash: r.10,
                hash: r.11,
            })
            .collect();
        // Up to the checkpoint's entry, then the rest, so that its state is seen.
        let split = signed_seq.map_or(0, |s| entries.partition_point(|e| e.seq <= s));
        for part in [&entries[..split], &entries[split..]] {
            match chain::verify(state, part) {
                Ok(next) => {
                    checked += i64::try_from(part.len()).unwrap_or(i64::MAX);
                    state = next;
                    if signed_seq == Some(state.0) && at_checkpoint.is_none() {
                        at_checkpoint = Some(state);
                    }
                }
                Err(b) => return Ok(broken(checked + (b.seq() - state.0), b)),
            }
        }
    }
    if let Some(c) = checkpoint {
        let reached = at_checkpoint.unwrap_or(state);
        if let Err(b) = chain::against_checkpoint(c.seq(), c.hash(), reached) {
            return Ok(broken(checked, b));
        }
    }
    Ok(Verification {
        entries: checked,
        intact: true,
        first_broken: None,
        reason: None,
        checkpoint: None,
    })
}

/// One delivery of a record to a department.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Receipt {
    /// The receiving department.
    pub department: String,
    /// When.
    pub at: DateTime<Utc>,
    /// How: `read` (the API) or `deliver` (a subscription topic).
    pub action: String,
    /// The stated purpose.
    pub purpose: Option<String>,
    /// The subscription it was read under.
    pub subscription: Option<String>,
    /// The audit entry.
    pub seq: i64,
}

/// Which departments received record `key` of `dataset`, when and for what purpose.
pub async fn who_received(
    db: &PgPool,
    dataset: &str,
    key: &str,
) -> Result<Vec<Receipt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT actor AS department, at, action, purpose, subject AS subscription, seq
         FROM audit_log
         WHERE dataset = $1 AND action IN ('read', 'deliver') AND keys @> ARRAY[$2]
         ORDER BY seq",
    )
    .bind(dataset)
    .bind(key)
    .fetch_all(db)
    .await
}
