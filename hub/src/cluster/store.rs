//! The tables `hub_instances` and `duty_leases`: every statement on them is here.

use std::time::Duration;

use sqlx::PgPool;

use super::{DutyView, Instance, InstanceView, Lease};

/// Registers `me` or renews its heartbeat, for `lease`. False when another process with the
/// same identity has a fresh heartbeat: this one must not act as that instance.
pub async fn heartbeat(db: &PgPool, me: &Instance, lease: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO hub_instances (id, incarnation, host, pid, http_addr, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
         ON CONFLICT (id) DO UPDATE SET
           started_at = CASE WHEN hub_instances.incarnation = EXCLUDED.incarnation
                             THEN hub_instances.started_at ELSE now() END,
           incarnation = EXCLUDED.incarnation, host = EXCLUDED.host, pid = EXCLUDED.pid,
           http_addr = EXCLUDED.http_addr, heartbeat_at = now(), expires_at = EXCLUDED.expires_at
         WHERE hub_instances.incarnation = EXCLUDED.incarnation
            OR hub_instances.expires_at < now()",
    )
    .bind(&me.id)
    .bind(me.incarnation)
    .bind(&me.host)
    .bind(i32::try_from(me.pid).unwrap_or(i32::MAX))
    .bind(&me.http_addr)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Says that `me` stopped: its heartbeat ends now, so the others count it out at once.
pub async fn leave(db: &PgPool, me: &Instance) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE hub_instances SET expires_at = now() WHERE id = $1 AND incarnation = $2")
        .bind(&me.id)
        .bind(me.incarnation)
        .execute(db)
        .await?;
    Ok(())
}

/// How many instances have a fresh heartbeat.
pub async fn live_instances(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM hub_instances WHERE expires_at >= now()")
        .fetch_one(db)
        .await
}

/// Makes sure every duty of `duties` has its lease row.
pub async fn declare(db: &PgPool, duties: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO duty_leases (duty) SELECT unnest($1::text[]) ON CONFLICT (duty) DO NOTHING",
    )
    .bind(duties)
    .execute(db)
    .await?;
    Ok(())
}

/// Renews the leases `me` holds (`held`: duty and epoch); returns the duties still held. A
/// lease that expired or changed hands is not renewed.
pub async fn renew(
    db: &PgPool,
    me: &Instance,
    held: &[(String, i64)],
    lease: Duration,
) -> Result<Vec<String>, sqlx::Error> {
    let (duties, epochs): (Vec<String>, Vec<i64>) = held.iter().cloned().unzip();
    sqlx::query_scalar(
        "UPDATE duty_leases l SET renewed_at = now(),
           expires_at = now() + make_interval(secs => $4)
         FROM unnest($2::text[], $3::bigint[]) AS h(duty, epoch)
         WHERE l.duty = h.duty AND l.epoch = h.epoch AND l.holder = $1 AND l.expires_at >= now()
         RETURNING l.duty",
    )
    .bind(&me.id)
    .bind(&duties)
    .bind(&epochs)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
}

/// Takes at most `n` of `candidates` that are free or whose lease expired, in the order
/// given; returns each taken duty with its new epoch. Rows another transaction holds (a
/// holder's fenced write in progress) are skipped, not waited for.
pub async fn take(
    db: &PgPool,
    me: &Instance,
    candidates: &[String],
    n: usize,
    lease: Duration,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    if n == 0 || candidates.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "WITH wanted AS (
           SELECT l.duty FROM duty_leases l
           JOIN unnest($2::text[]) WITH ORDINALITY AS c(duty, rank) ON c.duty = l.duty
           WHERE l.holder IS NULL OR l.expires_at < now()
           ORDER BY c.rank LIMIT $3
           FOR UPDATE OF l SKIP LOCKED)
         UPDATE duty_leases l SET holder = $1, epoch = l.epoch + 1, since = now(),
           renewed_at = now(), expires_at = now() + make_interval(secs => $4)
         FROM wanted WHERE l.duty = wanted.duty
         RETURNING l.duty, l.epoch",
    )
    .bind(&me.id)
    .bind(candidates)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
}

/// Gives a lease back so that another instance takes the duty at once. (Its duty must have
/// stopped first.)
pub async fn release(
    db: &PgPool,
    me: &Instance,
    duty: &str,
    epoch: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE duty_leases SET holder = NULL, expires_at = 'epoch'
         WHERE duty = $1 AND holder = $2 AND epoch = $3",
    )
    .bind(duty)
    .bind(&me.id)
    .bind(epoch)
    .execute(db)
    .await?;
    Ok(())
}

/// The body of [`Lease::fence`].
pub(super) async fn fence(tx: &mut sqlx::PgConnection, lease: &Lease) -> Result<(), sqlx::Error> {
    // The lease row stays locked until the transaction ends: a transaction that sits idle
    // (its process paused) or waits on a lock longer than a lease is ended by the server,
    // so that the lease can move on.
    let limit_ms = lease.idle_limit.as_millis().max(1).to_string();
    sqlx::query(
        "SELECT set_config('idle_in_transaction_session_timeout', $4, true),
                set_config('lock_timeout', $4, true),
                bohai_hold_duty($1, $2, $3)",
    )
    .bind(&*lease.duty)
    .bind(&*lease.holder)
    .bind(lease.epoch)
    .bind(limit_ms)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every instance that registered, live ones first, then by identity.
pub async fn instances(db: &PgPool) -> Result<Vec<InstanceView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, host, pid, http_addr, started_at, heartbeat_at, expires_at >= now() AS live
         FROM hub_instances ORDER BY live DESC, id",
    )
    .fetch_all(db)
    .await
}

/// Every duty; the holder only while its lease is unexpired.
pub async fn duties(db: &PgPool) -> Result<Vec<DutyView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT duty, CASE WHEN expires_at >= now() THEN holder END AS holder, epoch,
                CASE WHEN expires_at >= now() THEN since END AS since,
                CASE WHEN expires_at >= now() THEN renewed_at END AS renewed_at, expires_at
         FROM duty_leases ORDER BY duty",
    )
    .fetch_all(db)
    .await
}
