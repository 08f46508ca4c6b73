//! The PKI tables of migrations `0003_seals.sql` and `0004_seal_images.sql`: the city CA,
//! seals with their images, and CRLs. SQL only; keys go in and out as `EncryptedKey`
//! strings.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

/// The stored city CA.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCa {
    /// Root certificate, DER.
    pub root_cert_der: Vec<u8>,
    /// Root key, encrypted; `None` after `export-root-key --remove`.
    pub root_key_encrypted: Option<String>,
    /// Issuing CA certificate, DER.
    pub issuing_cert_der: Vec<u8>,
    /// Issuing CA key, encrypted.
    pub issuing_key_encrypted: String,
}

/// A stored seal.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredSeal {
    /// `DEPT-SERIALHEX`.
    pub seal_id: String,
    /// Department code.
    pub department: String,
    /// Seal name.
    pub name: String,
    /// `official`, `contract` or `business`.
    pub seal_type: String,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// Intermediates, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// Private key, encrypted with label = seal id.
    pub key_encrypted: String,
    /// Seal record, DER.
    pub record_der: Vec<u8>,
    /// SHA-256 of the seal image.
    pub image_digest: Vec<u8>,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// When stored.
    pub created_at: DateTime<Utc>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// CRL reason, snake_case.
    pub revocation_reason: Option<String>,
    /// Imported rather than issued.
    pub imported: bool,
    /// Media type of the stored seal image; `None` for seals stored before images were kept.
    pub image_media_type: Option<String>,
}

/// A stored seal image.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredImage {
    /// `image/png` or `image/svg+xml`.
    pub media_type: String,
    /// The image bytes.
    pub bytes: Vec<u8>,
}

/// A stored CRL.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCrl {
    /// cRLNumber.
    pub number: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate.
    pub next_update: DateTime<Utc>,
}

const SEAL_COLUMNS: &str = "seal_id, department, name, seal_type, serial_hex, cert_der, \
     chain_der, key_encrypted, record_der, image_digest, not_before, not_after, created_at, \
     revoked_at, revocation_reason, imported, image_media_type";

/// The city CA, if made.
pub async fn load_ca(db: &PgPool) -> Result<Option<StoredCa>, sqlx::Error> {
    sqlx::query_as::<_, StoredCa>(
        "SELECT root_cert_der, root_key_encrypted, issuing_cert_der, issuing_key_encrypted \
         FROM pki_ca WHERE id = 1",
    )
    .fetch_optional(db)
    .await
}

/// Replaces the city CA (and drops the CRLs of the previous one) in `tx`.
pub async fn replace_ca(
    tx: &mut Transaction<'_, Postgres>,
    ca: &StoredCa,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM crls").execute(&mut **tx).await?;
    sqlx::query("DELETE FROM revoked_issuing_cas")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pki_ca").execute(&mut **tx).await?;
    sqlx::query(
        "INSERT INTO pki_ca (id, root_cert_der, root_key_encrypted, issuing_cert_der, \
         issuing_key_encrypted) VALUES (1, $1, $2, $3, $4)",
    )
    .bind(&ca.root_cert_der)
    .bind(&ca.root_key_encrypted)
    .bind(&ca.issuing_cert_der)
    .bind(&ca.issuing_key_encrypted)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the issuing CA `cert_der` (serial `serial_hex`) revoked at `at` for `reason`, and
/// puts `new_cert_der` with its encrypted key in its place, in `tx` (which locked the CA).
pub async fn replace_revoked_issuing_ca(
    tx: &mut Transaction<'_, Postgres>,
    serial_hex: &str,
    cert_der: &[u8],
    at: DateTime<Utc>,
    reason: &str,
    new_cert_der: &[u8],
    new_key_encrypted: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO revoked_issuing_cas (serial_hex, cert_der, revoked_at, reason) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(serial_hex)
    .bind(cert_der)
    .bind(at)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE pki_ca SET issuing_cert_der = $1, issuing_key_encrypted = $2 WHERE id = 1")
        .bind(new_cert_der)
        .bind(new_key_encrypted)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The city CA as stored, read in `tx` (after [`lock_ca`]).
pub async fn locked_ca(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Option<StoredCa>, sqlx::Error> {
    sqlx::query_as::<_, StoredCa>(
        "SELECT root_cert_der, root_key_encrypted, issuing_cert_der, issuing_key_encrypted \
         FROM pki_ca WHERE id = 1",
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The issuing CA certificate (DER) stored now, read in `tx`.
pub async fn issuing_cert(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT issuing_cert_der FROM pki_ca WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await
}

/// The revoked issuing CAs (serial hex, time, reason), for the root's CRL.
pub async fn revoked_issuing_cas(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Vec<(String, DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT serial_hex, revoked_at, reason FROM revoked_issuing_cas ORDER BY revoked_at, serial_hex",
    )
    .fetch_all(&mut **tx)
    .await
}

/// Revokes every seal the city CA issued that is not revoked yet (their issuing CA was
/// revoked), at `at` for `reason`; how many.
pub async fn revoke_all_issued(
    tx: &mut Transaction<'_, Postgres>,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE seals SET revoked_at = $1, revocation_reason = $2 \
         WHERE revoked_at IS NULL AND NOT imported",
    )
    .bind(at)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// The seal records (DER) of imported seals not revoked, by seal id: their own CAs made
/// their certificates, the city issuing CA their records.
pub async fn live_imported_records(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seal_id, record_der FROM seals WHERE imported AND revoked_at IS NULL ORDER BY seal_id",
    )
    .fetch_all(&mut **tx)
    .await
}

/// Replaces seal `seal_id`'s record.
pub async fn set_record(
    tx: &mut Transaction<'_, Postgres>,
    seal_id: &str,
    record_der: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE seals SET record_der = $2 WHERE seal_id = $1")
        .bind(seal_id)
        .bind(record_der)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Locks the CA row for the rest of `tx` (serializes CRL issuance); false when there is no CA.
pub async fn lock_ca(tx: &mut Transaction<'_, Postgres>) -> Result<bool, sqlx::Error> {
    let row: Option<(i16,)> = sqlx::query_as("SELECT id FROM pki_ca WHERE id = 1 FOR UPDATE")
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

/// Removes the root key from the database.
pub async fn remove_root_key(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pki_ca SET root_key_encrypted = NULL WHERE id = 1")
        .execute(db)
        .await?;
    Ok(())
}

/// Stores a new seal with its image (whose media type is `seal.image_media_type`).
/// Stores a seal that the issuing CA `maker_cert_der` made, unless the city's issuing CA is
/// another one by now (false): the CA row is read FOR SHARE, so that a replacement of the
/// CA either waits for this seal (and revokes it with the others) or came first.
pub async fn insert_seal_made_by(
    db: &PgPool,
    seal: &StoredSeal,
    image: Option<&[u8]>,
    maker_cert_der: &[u8],
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let current: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT issuing_cert_der FROM pki_ca WHERE id = 1 FOR SHARE")
            .fetch_optional(&mut *tx)
            .await?;
    if current.as_deref() != Some(maker_cert_der) {
        return Ok(false);
    }
    insert_seal(&mut tx, seal, image).await?;
    tx.commit().await?;
    Ok(true)
}

async fn insert_seal(
    tx: &mut Transaction<'_, Postgres>,
    seal: &StoredSeal,
    image: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO seals (seal_id, department, name, seal_type, serial_hex, cert_der, \
         chain_der, key_encrypted, record_der, image_digest, not_before, not_after, imported, \
         image, image_media_type) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&seal.seal_id)
    .bind(&seal.department)
    .bind(&seal.name)
    .bind(&seal.seal_type)
    .bind(&seal.serial_hex)
    .bind(&seal.cert_der)
    .bind(&seal.chain_der)
    .bind(&seal.key_encrypted)
    .bind(&seal.record_der)
    .bind(&seal.image_digest)
    .bind(seal.not_before)
    .bind(seal.not_after)
    .bind(seal.imported)
    .bind(image)
    .bind(&seal.image_media_type)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The image of a seal, when the seal exists and has one.
pub async fn seal_image(db: &PgPool, seal_id: &str) -> Result<Option<StoredImage>, sqlx::Error> {
    sqlx::query_as::<_, StoredImage>(
        "SELECT image_media_type AS media_type, image AS bytes FROM seals \
         WHERE seal_id = $1 AND image IS NOT NULL",
    )
    .bind(seal_id)
    .fetch_optional(db)
    .await
}

/// Every seal, by department and age.
pub async fn list_seals(db: &PgPool) -> Result<Vec<StoredSeal>, sqlx::Error> {
    // Safe: only the constant SEAL_COLUMNS is formatted in; every value is bound.
    sqlx::query_as::<_, StoredSeal>(sqlx::AssertSqlSafe(format!(
        "SELECT {SEAL_COLUMNS} FROM seals ORDER BY department, created_at, seal_id"
    )))
    .fetch_all(db)
    .await
}

/// One seal.
pub async fn seal(db: &PgPool, seal_id: &str) -> Result<Option<StoredSeal>, sqlx::Error> {
    // Safe: only the constant SEAL_COLUMNS is formatted in; every value is bound.
    sqlx::query_as::<_, StoredSeal>(sqlx::AssertSqlSafe(format!(
        "SELECT {SEAL_COLUMNS} FROM seals WHERE seal_id = $1"
    )))
    .bind(seal_id)
    .fetch_optional(db)
    .await
}

/// The department's newest seal valid at `at` (not revoked, within validity).
pub async fn newest_valid_seal(
    db: &PgPool,
    department: &str,
    at: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT seal_id FROM seals WHERE department = $1 AND revoked_at IS NULL \
         AND not_before <= $2 AND not_after > $2 ORDER BY created_at DESC, not_after DESC LIMIT 1",
    )
    .bind(department)
    .bind(at)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

/// The department's newest seal valid at `at` that the city's current issuing CA made (not
/// imported, nor of an issuing CA or root replaced since): its id and certificate (DER).
pub async fn newest_city_seal(
    db: &PgPool,
    department: &str,
    at: DateTime<Utc>,
) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.seal_id, s.cert_der FROM seals s JOIN pki_ca c ON c.id = 1 \
         WHERE s.department = $1 AND s.revoked_at IS NULL \
           AND s.not_before <= $2 AND s.not_after > $2 \
           AND NOT s.imported AND s.chain_der[1] = c.issuing_cert_der \
         ORDER BY s.created_at DESC, s.not_after DESC LIMIT 1",
    )
    .bind(department)
    .bind(at)
    .fetch_optional(db)
    .await
}

/// Marks a seal revoked in `tx`; false when it does not exist or was already revoked.
pub async fn revoke(
    tx: &mut Transaction<'_, Postgres>,
    seal_id: &str,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE seals SET revoked_at = $2, revocation_reason = $3 \
         WHERE seal_id = $1 AND revoked_at IS NULL",
    )
    .bind(seal_id)
    .bind(at)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revoked seals issued by the city CA (serial hex, time, reason), for the CRL.
pub async fn revoked_issued(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Vec<(String, DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT serial_hex, revoked_at, revocation_reason FROM seals \
         WHERE revoked_at IS NOT NULL AND NOT imported ORDER BY revoked_at, seal_id",
    )
    .fetch_all(&mut **tx)
    .await
}

/// The certificates (DER) of imported seals that were revoked: no CRL the city signs can list
/// them, as their own CAs issued them.
pub async fn revoked_imported_certs(db: &PgPool) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT cert_der FROM seals WHERE imported AND revoked_at IS NOT NULL")
        .fetch_all(db)
        .await
}

/// The next cRLNumber.
pub async fn next_crl_number(tx: &mut Transaction<'_, Postgres>) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(number), 0) + 1 FROM crls")
        .fetch_one(&mut **tx)
        .await?;
    Ok(n)
}

/// Which city CA signed a CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlIssuer {
    /// The issuing CA: its CRL lists revoked seals.
    Issuing,
    /// The root: its CRL lists revoked CA certificates (the issuing CA).
    Root,
}

impl CrlIssuer {
    fn as_str(self) -> &'static str {
        match self {
            CrlIssuer::Issuing => "issuing",
            CrlIssuer::Root => "root",
        }
    }
}

/// Stores a CRL `issuer` signed.
pub async fn insert_crl(
    tx: &mut Transaction<'_, Postgres>,
    issuer: CrlIssuer,
    crl: &StoredCrl,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO crls (number, der, this_update, next_update, issuer) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crl.number)
        .bind(&crl.der)
        .bind(crl.this_update)
    .bind(crl.next_update)
    .bind(issuer.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The newest CRL `issuer` signed.
pub async fn latest_crl(db: &PgPool, issuer: CrlIssuer) -> Result<Option<StoredCrl>, sqlx::Error> {
    sqlx::query_as::<_, StoredCrl>(
        "SELECT number, der, this_update, next_update FROM crls WHERE issuer = $1
         ORDER BY number DESC LIMIT 1",
    )
    .bind(issuer.as_str())
    .fetch_optional(db)
    .await
}

/// Every department of the registry table: (code, name_zh), by code.
pub async fn departments(db: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT code, name_zh FROM departments ORDER BY code")
        .fetch_all(db)
        .await
}
