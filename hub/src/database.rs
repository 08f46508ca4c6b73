//! The PostgreSQL side of the hub: the connection pool and the versioned schema.
//!
//! The schema lives in `hub/migrations/` as numbered SQL files, embedded in the binary and
//! applied at start; sqlx records each applied version with its checksum, so an edited
//! migration is refused instead of silently diverging.
//!
//! Two roles: the owner (`database.owner_url`) runs the migrations and owns every table; the
//! runtime role (`database.url`) that serves and runs commands is granted what the hub needs
//! (`bohai_grant_runtime`, migration 0012): it reads and appends the audit log but cannot
//! change, delete, truncate or drop it, nor disable its triggers, which only an owner can.
//! With one URL the one role owns everything, and the audit log is protected only by its
//! hash chain and signed checkpoints ([`Separation::SingleRole`]; the hub warns).

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;

/// The hub's migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `database.url` does not parse.
    #[error("database.url is not a valid PostgreSQL URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The server did not answer or refused us; retriable.
    #[error("the database did not answer: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// `database.owner_url` does not parse.
    #[error("database.owner_url is not a valid PostgreSQL URL: {0}")]
    OwnerUrl(#[source] sqlx::Error),
    /// A migration failed; the message names it.
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The owner role could not grant the runtime role its privileges.
    #[error(
        "granting the runtime role `{role}` its privileges as the owner role failed: {source}"
    )]
    Grant {
        /// The runtime role, the user of `database.url`.
        role: String,
        /// What PostgreSQL said.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations are pending and the runtime role cannot apply them.
    #[error("the database schema is behind this hub ({pending} migration(s) pending) and database.url's role cannot apply them: run `bohai migrate` with database.owner_url set")]
    Behind {
        /// How many migrations are not applied.
        pending: usize,
    },
    /// A query failed.
    #[error("the database failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Whether the hub's runtime role is kept apart from the schema's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Separation {
    /// The runtime role owns nothing: it may only read and append the audit log.
    Separate {
        /// The runtime role.
        runtime: String,
    },
    /// The runtime role owns the audit log (one URL, or an owner URL naming the same role):
    /// it could disable the append-only triggers and rewrite entries; only the hash chain
    /// and the signed checkpoints would tell.
    SingleRole {
        /// The role.
        role: String,
    },
}

impl Separation {
    /// The warning to print for [`Separation::SingleRole`], if any.
    pub fn warning(&self) -> Option<String> {
        match self {
            Separation::Separate { .. } => None,
            Separation::SingleRole { role } => Some(format!(
                "the hub's database role `{role}` owns the audit log: it could disable its triggers and rewrite it, which only the signed checkpoints would reveal; set database.owner_url to a separate owner role (docs/configuration.md)"
            )),
        }
    }
}

/// Opens a pool to the configured database. The pool connects lazily, so the hub starts
/// (and `/readyz` reports the database) even while PostgreSQL is away.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, DatabaseError> {
    sized_pool(config, config.max_connections)
}

/// The separate pool of `bohai serve` for requests made without a token, of
/// `database.public_max_connections`, as the same role: such requests wait for one of these
/// and never take a connection of [`pool`].
pub fn public_pool(config: &DatabaseConfig) -> Result<PgPool, DatabaseError> {
    sized_pool(config, config.public_max_connections)
}

fn sized_pool(config: &DatabaseConfig, size: u32) -> Result<PgPool, DatabaseError> {
    let options: PgConnectOptions = config.url.parse().map_err(DatabaseError::Url)?;
    let options = options.disable_statement_logging();
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(config.connect_timeout)
        .connect_lazy_with(options))
}

/// Applies every migration not yet applied, as the role of `pool`. Nothing is done when
/// every migration is applied already, so a role that owns nothing (a runtime role) passes
/// here once the owner has migrated.
pub async fn migrate(pool: &PgPool) -> Result<(), DatabaseError> {
    if pending(pool).await? == 0 {
        return Ok(());
    }
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// How many of this binary's migrations the database has not applied (all of them when it
/// has none). A migration applied with another checksum counts as pending, so that
/// [`migrate`] reports it.
async fn pending(pool: &PgPool) -> Result<usize, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(MIGRATOR.iter().count());
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| {
            !applied
                .iter()
                .any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum)
        })
        .count())
}

/// Brings the schema up to date the way the configuration says: as the owner role of
/// `database.owner_url`, which then grants the runtime role of `database.url` its
/// privileges; without an owner URL, as the runtime role itself. Says whether the runtime
/// role is kept apart from the owner.
pub async fn prepare_schema(config: &DatabaseConfig) -> Result<Separation, DatabaseError> {
    let runtime = pool(config)?;
    let result = prepare_with(config, &runtime).await;
    runtime.close().await;
    result
}

async fn prepare_with(
    config: &DatabaseConfig,
    runtime: &PgPool,
) -> Result<Separation, DatabaseError> {
    if let Some(owner_url) = &config.owner_url {
        let options: PgConnectOptions = owner_url.parse().map_err(DatabaseError::OwnerUrl)?;
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.connect_timeout)
            .connect_lazy_with(options.disable_statement_logging());
        let result = migrate_and_grant(&owner, runtime).await;
        owner.close().await;
        result?;
    } else {
        let n = pending(runtime).await.map_err(DatabaseError::Unreachable)?;
        if n > 0 {
            match MIGRATOR.run(runtime).await {
                Ok(()) => {}
                Err(e) if is_permission_denied(&e) => {
                    return Err(DatabaseError::Behind { pending: n })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    separation(runtime).await
}

fn is_permission_denied(e: &sqlx::migrate::MigrateError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(sqlx::Error::Database(d)) = s.downcast_ref::<sqlx::Error>() {
            return d.code().as_deref() == Some("42501");
        }
        source = s.source();
    }
    false
}

async fn migrate_and_grant(owner: &PgPool, runtime: &PgPool) -> Result<(), DatabaseError> {
    MIGRATOR.run(owner).await?;
    let (runtime_role,): (String,) = sqlx::query_as("SELECT current_user::text")
        .fetch_one(runtime)
        .await
        .map_err(DatabaseError::Unreachable)?;
    let (owner_role,): (String,) = sqlx::query_as("SELECT current_user::text")
        .fetch_one(owner)
        .await
        .map_err(DatabaseError::Unreachable)?;
    if owner_role == runtime_role {
        // The same role twice: nothing to separate; `separation` says so.
        return Ok(());
    }
    sqlx::query("SELECT bohai_grant_runtime($1)")
        .bind(&runtime_role)
        .execute(owner)
        .await
        .map_err(|source| DatabaseError::Grant {
            role: runtime_role,
            source,
        })?;
    Ok(())
}

/// Whether the role of `pool` could alter the audit log: it owns it, is a member of its
/// owner, or is a superuser.
pub async fn separation(pool: &PgPool) -> Result<Separation, DatabaseError> {
    let (role, owns): (String, bool) = sqlx::query_as(
        "SELECT current_user::text,
                COALESCE((SELECT pg_has_role(current_user, c.relowner, 'USAGE')
                          FROM pg_class c
                          WHERE c.oid = to_regclass('audit_log')), true)
                OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    .fetch_one(pool)
    .await?;
    Ok(if owns {
        Separation::SingleRole { role }
    } else {
        Separation::Separate { runtime: role }
    })
}

/// The readiness probe: one round trip to the server.
pub async fn probe(pool: &PgPool) -> Result<(), DatabaseError> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(DatabaseError::Unreachable)?;
    Ok(())
}
