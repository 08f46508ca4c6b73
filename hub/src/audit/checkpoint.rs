//! Signed checkpoints of the audit log: the anchor that makes its hash chain worth having.
//!
//! A hash chain alone proves nothing to whoever can rewrite the table: deleting the last
//! entries, or changing one and recomputing every hash after it, leaves a chain that verifies.
//! A checkpoint is the chain's state (the last entry's `seq` and `hash`) at a time, signed by
//! the status authority's seal (`licences.status_authority`) as a compact JWS of type
//! [`CHECKPOINT_TYP`], stored in `audit_checkpoints` and published to the
//! `<prefix>audit-checkpoints` topic, where the database's owner cannot reach it. Anyone who
//! keeps one finds, with `bohai audit verify --against FILE`, any truncation or rewrite of the
//! entries up to it.
//!
//! Signing and checking are pure ([`sign`], [`verify`]); [`make`] and [`publish`] are the I/O.

use bohai_certs::licence::{
    check_signed_by_unrevoked, jws::sign_compact, ParsedJws, SignerRevocation,
};
use bohai_certs::TrustAnchors;
use chrono::{DateTime, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use super::chain;
use crate::config::{Config, KafkaConfig};
use crate::seals::service::{hex_decode, hex_lower};
use crate::seals::{SealsError, SealsService};

/// JOSE `typ` of a checkpoint.
pub const CHECKPOINT_TYP: &str = "bohai-audit-checkpoint+jwt";
/// The checkpoint format this hub writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Largest checkpoint file read.
const MAX_CHECKPOINT_LEN: usize = 64 * 1024;
/// How far a checkpoint's time may lie ahead of the verifier's clock.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// What a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointClaims {
    /// Format version, [`CHECKPOINT_VERSION`].
    pub checkpoint_version: u32,
    /// The last entry covered (0: the log was empty); entries are numbered from 1 without
    /// gaps, so this is also how many.
    pub seq: i64,
    /// That entry's hash, lowercase hex (64 zeros for an empty log).
    pub hash: String,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// The department whose seal signed it.
    pub authority: String,
}

/// A checkpoint whose signature was checked. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    claims: CheckpointClaims,
    hash: [u8; 32],
}

impl VerifiedCheckpoint {
    /// The last entry covered.
    pub fn seq(&self) -> i64 {
        self.claims.seq
    }

    /// Its hash.
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// What it says, for reports.
    pub fn summary(&self) -> CheckpointSummary {
        CheckpointSummary {
            seq: self.claims.seq,
            hash: self.claims.hash.clone(),
            issued_at: self.claims.issued_at,
            authority: self.claims.authority.clone(),
        }
    }
}

/// A checkpoint as reported: what it covers and who signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointSummary {
    /// The last entry covered.
    pub seq: i64,
    /// That entry's hash, hex.
    pub hash: String,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// The department whose seal signed it.
    pub authority: String,
}

/// A checkpoint just made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MadeCheckpoint {
    /// What it covers.
    #[serde(flatten)]
    pub summary: CheckpointSummary,
    /// The signed checkpoint (compact JWS): keep it, `bohai audit verify --against` reads it.
    pub token: String,
    /// The topic it was published to, if it was.
    pub published_to: Option<String>,
}

/// Why a checkpoint could not be made, published or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not a checkpoint: bad JWS, wrong `typ`, bad payload.
    #[error("not an audit checkpoint: {0}")]
    Malformed(String),
    /// The signature or its signer does not check out against the trust anchors and the
    /// authority's credit code.
    #[error("the checkpoint's signature does not verify: {0}")]
    Signature(String),
    /// The authority is not a department of the registry.
    #[error("licences.status_authority `{0}` is not a department of the registry")]
    UnknownAuthority(String),
    /// No seal to sign with, no master key, or another seal problem.
    #[error("cannot sign the checkpoint: {0}")]
    Seal(#[from] SealsError),
    /// The database failed.
    #[error("the audit log could not be read: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not take the checkpoint.
    #[error("the checkpoint was not published: {0}")]
    Broker(String),
}

impl crate::duties::DutyError for CheckpointError {
    fn class(&self) -> crate::failure::Failure {
        use crate::failure::Failure;
        match self {
            CheckpointError::Database(e) => Failure::of_database(e),
            CheckpointError::Seal(SealsError::Database(e)) => Failure::of_database(e),
            CheckpointError::Broker(_) => Failure::Transient,
            _ => Failure::Component,
        }
    }
}

/// The topic checkpoints are published to.
pub fn topic(config: &KafkaConfig) -> String {
    crate::kafka::topic_name(config, "audit-checkpoints")
}

/// Signs `claims` with the authority's seal.
pub fn sign(
    authority: &bohai_certs::SealKey,
    claims: &CheckpointClaims,
) -> Result<String, CheckpointError> {
    let payload =
        serde_json::to_vec(claims).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    sign_compact(authority, CHECKPOINT_TYP, &payload)
        .map_err(|e| CheckpointError::Signature(e.to_string()))
}

/// Checks a checkpoint: its form; that it was signed, at the time it claims, by a seal
/// certificate chaining to `trust` and naming `authority_credit_code`; that its seal was not
/// revoked before that time (`revocation`: the CRLs and revoked imported seals at hand, and
/// the verifier's clock, which the CRLs must be current at); and that the time it claims is
/// not ahead of that clock (by more than five minutes). Whoever kept a revoked seal's key
/// can sign a checkpoint over a rewritten chain, but only by claiming a time before the
/// revocation, which the checkpoints kept from then hold.
pub fn verify(
    token: &str,
    trust: &TrustAnchors,
    revocation: SignerRevocation<'_>,
    authority_credit_code: &str,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let token = token.trim();
    if token.len() > MAX_CHECKPOINT_LEN {
        return Err(CheckpointError::Malformed(format!(
            "{} bytes, more than the {MAX_CHECKPOINT_LEN} a checkpoint can be",
            token.len()
        )));
    }
    let jws = ParsedJws::parse(token).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if jws.header.typ.as_deref() != Some(CHECKPOINT_TYP) {
        return Err(CheckpointError::Malformed(format!(
            "typ is {:?}, expected {CHECKPOINT_TYP}",
            jws.header.typ
        )));
    }
    let claims: CheckpointClaims = serde_json::from_slice(&jws.payload)
        .map_err(|e| CheckpointError::Malformed(format!("payload: {e}")))?;
    if claims.checkpoint_version != CHECKPOINT_VERSION {
        return Err(CheckpointError::Malformed(format!(
            "version {}, this hub reads {CHECKPOINT_VERSION}",
            claims.checkpoint_version
        )));
    }
    let hash: [u8; 32] = hex_decode(&claims.hash)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| CheckpointError::Malformed(format!("hash `{}`", claims.hash)))?;
    if claims.seq < 0 {
        return Err(CheckpointError::Malformed(format!("seq {}", claims.seq)));
    }
    if claims.issued_at > revocation.now + CLOCK_SKEW {
        return Err(CheckpointError::Malformed(format!(
            "it claims to have been signed at {}, ahead of this clock ({})",
            claims.issued_at, revocation.now
        )));
    }
    check_signed_by_unrevoked(
        &jws,
        trust,
        revocation,
        claims.issued_at,
        authority_credit_code,
    )
    .map_err(CheckpointError::Signature)?;
    Ok(VerifiedCheckpoint { claims, hash })
}

/// The last entry and its hash (`(0, GENESIS)` for an empty log).
pub async fn tail(db: &PgPool) -> Result<(i64, [u8; 32]), sqlx::Error> {
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(db)
            .await?;
    Ok(match last {
        Some((seq, hash)) => (seq, hash.try_into().unwrap_or(chain::GENESIS)),
        None => (0, chain::GENESIS),
    })
}

/// The last entry the newest stored checkpoint covers.
pub async fn latest_seq(db: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints")
        .fetch_one(db)
        .await
}

/// Signs a checkpoint of the log as it is now, with the status authority's seal, and stores
/// it; under `lease` when the `audit-checkpoint` duty makes it (a holder that lost the duty
/// stores nothing).
pub async fn make(
    db: &PgPool,
    config: &Config,
    registry: &bohai_schemas::Registry,
    now: DateTime<Utc>,
    lease: Option<&crate::cluster::Lease>,
) -> Result<MadeCheckpoint, CheckpointError> {
    let authority = &config.licences.status_authority;
    registry
        .department(authority)
        .ok_or_else(|| CheckpointError::UnknownAuthority(authority.clone()))?;
    let seal_id = SealsService::public(db, &config.pki)
        .authority_seal(authority, now)
        .await?
        .seal_id;
    let key = SealsService::with_master_key(db, &config.pki)?
        .signing_key(&seal_id, now)
        .await?;
    let (seq, hash) = tail(db).await?;
    let claims = CheckpointClaims {
        checkpoint_version: CHECKPOINT_VERSION,
        seq,
        hash: hex_lower(&hash),
        issued_at: chain::truncate(now),
        authority: authority.clone(),
    };
    let token = sign(&key, &claims)?;
    let mut tx = db.begin().await?;
    if let Some(lease) = lease {
        lease.fence(&mut tx).await?;
    }
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, issued_at, token) VALUES ($1, $2, $3, $4)",
    )
    .bind(seq)
    .bind(hash.as_slice())
    .bind(claims.issued_at)
    .bind(&token)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(MadeCheckpoint {
        summary: CheckpointSummary {
            seq,
            hash: claims.hash,
            issued_at: claims.issued_at,
            authority: claims.authority,
        },
        token,
        published_to: None,
    })
}

/// Publishes a checkpoint to [`topic`] (key: its `seq`), waiting for the broker to take it.
pub async fn publish(
    kafka: &KafkaConfig,
    made: &mut MadeCheckpoint,
) -> Result<(), CheckpointError> {
    let topic = topic(kafka);
    crate::kafka::ensure_topics(kafka, std::slice::from_ref(&topic))
        .await
        .map_err(|e| CheckpointError::Broker(e.to_string()))?;
    let producer: FutureProducer = crate::kafka::client_config(kafka)
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| CheckpointError::Broker(e.to_string()))?;
    let key = made.summary.seq.to_string();
    producer
        .send(
            FutureRecord::to(&topic).key(&key).payload(&made.token),
            kafka.request_timeout,
        )
        .await
        .map_err(|(e, _)| CheckpointError::Broker(e.to_string()))?;
    made.published_to = Some(topic);
    Ok(())
}

/// One round of the checkpoint duty: when the log grew since the newest checkpoint, make,
/// store and publish one. A hub without the authority's seal (no city CA yet) has nothing to
/// sign with and skips.
pub async fn duty_round(
    db: &PgPool,
    config: &Config,
    registry: &bohai_schemas::Registry,
    lease: &crate::cluster::Lease,
) -> Result<(), CheckpointError> {
    let (seq, _) = tail(db).await?;
    if latest_seq(db).await?.is_some_and(|s| s >= seq) {
        return Ok(());
    }
    let mut made = match make(db, config, registry, Utc::now(), Some(lease)).await {
        Ok(m) => m,
        Err(CheckpointError::Seal(SealsError::NoCa)) => {
            tracing::debug!("no city CA yet: no audit checkpoint yet");
            return Ok(());
        }
        // A city CA but no seal of it for the authority (an imported seal never signs
        // checkpoints): nothing to sign with, which the operator must hear of.
        Err(CheckpointError::Seal(e @ SealsError::NoValidSeal(_))) => {
            tracing::warn!(error = %e, "no audit checkpoint: the status authority needs a valid seal of the city CA");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    publish(&config.kafka, &mut made).await?;
    tracing::info!(
        seq = made.summary.seq,
        "audit checkpoint signed and published"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_another_type_is_refused() {
        let trust = TrustAnchors::default();
        assert!(matches!(
            verify(
                "not.a.jws",
                &trust,
                SignerRevocation {
                    crls: &[],
                    revoked_seals: &[],
                    now: Utc::now(),
                },
                "x"
            ),
            Err(CheckpointError::Malformed(_))
        ));
    }
}
