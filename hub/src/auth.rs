//! Department identities: bearer tokens, stored only as SHA-256 hashes.
//!
//! A token is `bohai_` followed by 32 random bytes in base64url; it is shown once when
//! created. The hash of a high-entropy random token is enough to look it up and cannot be
//! turned back into the token.

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::PgPool;

const PREFIX: &str = "bohai_";

/// A new token: its id and the secret, to be shown once.
#[derive(Debug)]
pub struct NewToken {
    /// The token's id (for listing and revoking).
    pub id: uuid::Uuid,
    /// The bearer token itself. Not stored anywhere.
    pub secret: String,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The department is not in the registry.
    #[error("no department `{0}` in the registry")]
    UnknownDepartment(String),
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

/// Creates a token for `department`.
pub async fn create_token(db: &PgPool, department: &str) -> Result<NewToken, TokenError> {
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
    sqlx::query("INSERT INTO department_tokens (id, department, token_hash) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(department)
        .bind(hash(&secret))
        .execute(db)
        .await?;
    Ok(NewToken { id, secret })
}

/// The department a bearer token belongs to, if it is a live token.
pub async fn department_of(db: &PgPool, secret: &str) -> Result<Option<String>, sqlx::Error> {
    if !secret.starts_with(PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT department FROM department_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(secret))
    .fetch_optional(db)
    .await
}
