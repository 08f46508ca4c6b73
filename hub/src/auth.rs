//! Department identities: scoped, expiring, revocable bearer tokens, stored only as SHA-256
//! hashes.
//!
//! A token is `bohai_` followed by 32 random bytes in base64url; it is shown once when
//! created. The hash of a high-entropy random token is enough to look it up and cannot be
//! turned back into the token. Whether a token may make a call is decided by
//! [`TokenRecord::authorise`], a pure function of the stored record, the time and the scope
//! the call needs.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

const PREFIX: &str = "bohai_";
/// Longest token accepted before hashing (a real one is 49 characters).
const MAX_TOKEN_LEN: usize = 128;
/// Longest validity a token can be given.
pub const MAX_DAYS: u32 = 3660;
/// Longest name of a token's actor, in characters.
pub const MAX_ACTOR: usize = 200;

/// What a token allows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Push records into the department's datasets; decide requests for them.
    Publish,
    /// Catalogue, access requests, and reading shared datasets.
    Read,
    /// Issue and manage licences; sign with the department's seals.
    Issue,
    /// Hub operators: decide any request, see every subscription.
    Admin,
    /// The operations team: feed health, the overview, rates and the masked dead letters
    /// (`/api/v1/ops/...`, the dashboard). Not implied by `admin`: it shows every
    /// department's rejects and who reads what.
    Ops,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::Publish,
        Scope::Read,
        Scope::Issue,
        Scope::Admin,
        Scope::Ops,
    ];

    /// The name used on the command line, in the database and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Read => "read",
            Scope::Issue => "issue",
            Scope::Admin => "admin",
            Scope::Ops => "ops",
        }
    }

    /// The scope with this name.
    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new token: its id and the secret, to be shown once.
#[derive(Debug)]
pub struct NewToken {
    /// The token's id (for listing and revoking).
    pub id: uuid::Uuid,
    /// The bearer token itself. Not stored anywhere.
    pub secret: String,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a token could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The department is not in the registry.
    #[error("no department `{0}` in the registry")]
    UnknownDepartment(String),
    /// No scope was asked for.
    #[error("a token needs at least one scope (publish, read, issue, admin, ops)")]
    NoScope,
    /// The validity is out of range.
    #[error("--days must be between 1 and {MAX_DAYS}, found {0}")]
    BadDays(u32),
    /// The actor's name is too long.
    #[error("--actor must be at most {MAX_ACTOR} characters")]
    BadActor,
    /// No token has this id.
    #[error("no token with id {0}")]
    UnknownToken(uuid::Uuid),
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

fn hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// Creates a token for `department` with the scopes a department uses day to day (`publish`,
/// `read` and `issue`) and no expiry: what tests and tools that predate scopes expect.
pub async fn create_token(db: &PgPool, department: &str) -> Result<NewToken, TokenError> {
    create_scoped_token(
        db,
        department,
        &[Scope::Publish, Scope::Read, Scope::Issue],
        None,
    )
    .await
}

/// Creates a token for `department` with `scopes`, valid for `days` days (or until revoked),
/// naming no person.
pub async fn create_scoped_token(
    db: &PgPool,
    department: &str,
    scopes: &[Scope],
    days: Option<u32>,
) -> Result<NewToken, TokenError> {
    create_token_for(db, department, scopes, days, None).await
}

/// Creates a token for `department` with `scopes`, valid for `days` days (or until revoked),
/// held by the person `actor`: audit entries of its acts name that person, and the rule that
/// approving is a different person from requesting is judged by it.
pub async fn create_token_for(
    db: &PgPool,
    department: &str,
    scopes: &[Scope],
    days: Option<u32>,
    actor: Option<&str>,
) -> Result<NewToken, TokenError> {
    let actor = actor.map(str::trim).filter(|a| !a.is_empty());
    if actor.is_some_and(|a| a.chars().count() > MAX_ACTOR) {
        return Err(TokenError::BadActor);
    }
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    if let Some(d) = days {
        if d == 0 || d > MAX_DAYS {
            return Err(TokenError::BadDays(d));
        }
    }
    let known: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM departments WHERE code = $1)")
            .bind(department)
            .fetch_one(db)
            .await?;
    if !known {
        return Err(TokenError::UnknownDepartment(department.to_owned()));
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| TokenError::Random)?;
    let secret = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let id = uuid::Uuid::new_v4();
    let expires_at = days.map(|d| Utc::now() + chrono::Duration::days(i64::from(d)));
    let names: BTreeSet<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let names: Vec<&str> = names.into_iter().collect();
    sqlx::query(
        "INSERT INTO department_tokens (id, department, token_hash, scopes, expires_at, actor)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(department)
    .bind(hash(&secret))
    .bind(&names)
    .bind(expires_at)
    .bind(actor)
    .execute(db)
    .await?;
    Ok(NewToken {
        id,
        secret,
        expires_at,
    })
}

/// A stored token, as listed (never the secret, never the hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TokenRecord {
    /// The token's id.
    pub id: uuid::Uuid,
    /// The department it acts for.
    pub department: String,
    /// What it allows.
    pub scopes: Vec<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The person who holds it, if named (`bohai dept token create --actor`).
    #[sqlx(default)]
    pub actor: Option<String>,
}

/// Why a presented token may not make a call. Each maps to a 401 or 403 with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization` header.
    #[error("an `Authorization: Bearer TOKEN` header is required")]
    Missing,
    /// The header is not `Bearer TOKEN`.
    #[error("the Authorization header must be `Bearer TOKEN`")]
    Malformed,
    /// No token has this hash.
    #[error("the token is not known to this hub")]
    Unknown,
    /// The token was revoked.
    #[error("the token was revoked at {0}")]
    Revoked(DateTime<Utc>),
    /// The token is past its expiry.
    #[error("the token expired at {0}")]
    Expired(DateTime<Utc>),
    /// The token lacks the scope the call needs.
    #[error("this call needs a token with scope `{needed}`; this token has {has}")]
    Scope {
        /// The scope needed.
        needed: Scope,
        /// The token's scopes, listed.
        has: String,
    },
}

impl Refusal {
    /// The stable code a client can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing => "token_missing",
            Refusal::Malformed => "token_malformed",
            Refusal::Unknown => "token_unknown",
            Refusal::Revoked(_) => "token_revoked",
            Refusal::Expired(_) => "token_expired",
            Refusal::Scope { .. } => "wrong_scope",
        }
    }

    /// Whether the caller is unauthenticated (401) rather than not allowed (403).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(self, Refusal::Scope { .. })
    }
}

impl TokenRecord {
    /// Whether the token is live at `now` (not revoked, not expired).
    pub fn check_live(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        if let Some(at) = self.revoked_at {
            return Err(Refusal::Revoked(at));
        }
        match self.expires_at {
            Some(at) if at <= now => Err(Refusal::Expired(at)),
            _ => Ok(()),
        }
    }

    /// Whether the token holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }

    /// Whether the token is live at `now` and holds `scope`.
    pub fn authorise(&self, now: DateTime<Utc>, scope: Scope) -> Result<(), Refusal> {
        self.check_live(now)?;
        if self.has(scope) {
            Ok(())
        } else {
            Err(Refusal::Scope {
                needed: scope,
                has: if self.scopes.is_empty() {
                    "none".to_owned()
                } else {
                    self.scopes.join(", ")
                },
            })
        }
    }
}

/// The live token a bearer secret names at `now`, or why there is none.
pub async fn authenticate(
    db: &PgPool,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Result<TokenRecord, Refusal>, sqlx::Error> {
    if !secret.starts_with(PREFIX) || secret.len() > MAX_TOKEN_LEN {
        return Ok(Err(Refusal::Unknown));
    }
    let record: Option<TokenRecord> = sqlx::query_as(
        "SELECT id, department, scopes, created_at, expires_at, revoked_at, actor
         FROM department_tokens WHERE token_hash = $1",
    )
    .bind(hash(secret))
    .fetch_optional(db)
    .await?;
    Ok(match record {
        None => Err(Refusal::Unknown),
        Some(r) => r.check_live(now).map(|()| r),
    })
}

/// The department a bearer token belongs to, if it is a live token.
pub async fn department_of(db: &PgPool, secret: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(authenticate(db, secret, Utc::now())
        .await?
        .ok()
        .map(|r| r.department))
}

/// Every token, or a department's, newest first.
pub async fn list_tokens(
    db: &PgPool,
    department: Option<&str>,
) -> Result<Vec<TokenRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, department, scopes, created_at, expires_at, revoked_at, actor
         FROM department_tokens WHERE $1::text IS NULL OR department = $1
         ORDER BY created_at DESC, id",
    )
    .bind(department)
    .fetch_all(db)
    .await
}

/// Revokes a token; revoking it again keeps the first time. Returns the token as it is now.
pub async fn revoke_token(db: &PgPool, id: uuid::Uuid) -> Result<TokenRecord, TokenError> {
    sqlx::query_as(
        "UPDATE department_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
         RETURNING id, department, scopes, created_at, expires_at, revoked_at, actor",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(TokenError::UnknownToken(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scopes: &[&str]) -> TokenRecord {
        TokenRecord {
            id: uuid::Uuid::nil(),
            department: "market-regulation".to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            created_at: DateTime::UNIX_EPOCH,
            expires_at: None,
            revoked_at: None,
            actor: None,
        }
    }

    #[test]
    fn a_token_needs_the_scope_and_to_be_live() {
        let now = Utc::now();
        let t = record(&["publish"]);
        assert_eq!(t.authorise(now, Scope::Publish), Ok(()));
        let refused = t.authorise(now, Scope::Read).unwrap_err();
        assert_eq!(refused.code(), "wrong_scope");
        assert!(!refused.is_unauthenticated());
        assert!(refused.to_string().contains("`read`"), "{refused}");

        let mut expired = record(&["read"]);
        expired.expires_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(
            expired.authorise(now, Scope::Read).map_err(|r| r.code()),
            Err("token_expired")
        );
        let mut revoked = record(&["read"]);
        revoked.revoked_at = Some(now);
        revoked.expires_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(
            revoked.authorise(now, Scope::Read).map_err(|r| r.code()),
            Err("token_revoked"),
            "revocation is reported before expiry"
        );
    }

    #[test]
    fn scopes_round_trip_by_name() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
    }
}
