//! The signed status list the hub publishes and verifies with: made from the `licences`
//! table, signed with the status authority's seal, stored, and kept in memory.
//!
//! A list is remade when a licence event happened after it (a status changed, or a new
//! licence needs its entry) or when half of its maximum age has passed. Within one second of
//! the last check the in-memory list is used as it is, so that a burst of verifications costs
//! no database round trip; statuses are always reported "as of" the list's time. A caller
//! that finds the list too short for a licence (issued a moment ago by the CLI or another hub
//! process) asks for [`Recheck::Now`]. One request at a time checks the database or remakes
//! the list; meanwhile the others are answered with the list in memory (see [`StatusCache`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bohai_certs::licence::{
    sign_status_list, verify_status_list, LicenceStatus, StatusList, VerifiedStatusList,
};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::{store, LicenceError};
use crate::config::PkiConfig;
use crate::seals::service::AuthoritySeal;
use crate::seals::SealsService;

/// How long the in-memory list is used without looking at the database.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// A signed list and what it reflects.
#[derive(Debug, Clone)]
pub struct CurrentList {
    /// The token (`statuslist+jwt`).
    pub token: Arc<str>,
    /// The token, checked.
    pub verified: Arc<VerifiedStatusList>,
    /// Its issuance time.
    pub issued_at: DateTime<Utc>,
    changes_through: i64,
    checked: Instant,
}

/// When [`StatusCache::current`] looks at the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// When due: the in-memory list was last checked [`RECHECK_AFTER`] ago or more, or is
    /// half its maximum age old.
    IfDue,
    /// Now, for a licence beyond the in-memory list: a list is kept only if no licence event
    /// happened since it was made and it covers every licence stored. (Event numbers are
    /// taken before their transactions commit, so a licence committed after a later-numbered
    /// event is not seen in the event numbers alone.)
    Now,
}

/// The hub's current status list, shared by every request.
///
/// Remaking a list reads every stored version (2.44 million at the reference city's scale)
/// and takes seconds: it is done by one request at a time, without holding up the others,
/// which are answered with the list in memory ("as of" its time) while it is still within
/// its maximum age and no change made here since asks for a newer one.
#[derive(Debug, Default)]
pub struct StatusCache {
    current: std::sync::Mutex<Cached>,
    /// Held by the one request that checks the database and remakes the list.
    remaking: Mutex<()>,
}

#[derive(Debug, Default)]
struct Cached {
    list: Option<CurrentList>,
    /// Bumped by [`StatusCache::invalidate`].
    invalidations: u64,
    /// The value of `invalidations` the list reflects.
    reflects: u64,
}

impl Cached {
    fn fresh(&self) -> Option<&CurrentList> {
        self.list
            .as_ref()
            .filter(|_| self.reflects == self.invalidations)
    }
}

/// What making a list needs.
#[derive(Debug)]
pub struct ListMaker<'a> {
    /// The PKI configuration: trust anchors and the master key that unlocks the authority's
    /// seal, read only when a list is made.
    pub pki: &'a PkiConfig,
    /// Department code of the status authority.
    pub authority: &'a str,
    /// Its credit code.
    pub authority_credit_code: &'a str,
    /// The list's URI.
    pub uri: &'a str,
    /// Its maximum age.
    pub max_age: Duration,
}

/// Versions read at a time while a list is made.
const PAGE: i64 = 50_000;

/// The list of every stored version: its status, and its index bound to its number.
async fn build_list(db: &sqlx::PgPool, max_index: i64) -> Result<StatusList, LicenceError> {
    let stored = |what: String| LicenceError::Stored(what);
    let mut list = StatusList::with_capacity(u64::try_from(max_index + 1).unwrap_or(0));
    let mut after = -1;
    loop {
        let page = store::status_entries(db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (index, number, status) in page {
            let status = match status.as_str() {
                "valid" => LicenceStatus::Valid,
                "revoked" => LicenceStatus::Revoked,
                "suspended" => LicenceStatus::Suspended,
                "superseded" => LicenceStatus::Superseded,
                other => return Err(stored(format!("status `{other}`"))),
            };
            let index =
                u64::try_from(index).map_err(|_| stored(format!("status index {index}")))?;
            list.set(index, status).map_err(|e| stored(e.to_string()))?;
            list.bind(index, &number)
                .map_err(|e| stored(e.to_string()))?;
        }
    }
    Ok(list)
}

impl StatusCache {
    /// Forgets the in-memory list (a status changed here): the next request waits for a list
    /// that reflects the change.
    pub async fn invalidate(&self) {
        self.cached().invalidations += 1;
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current list, remade when needed.
    pub async fn current(
        &self,
        db: &sqlx::PgPool,
        maker: &ListMaker<'_>,
        now: DateTime<Utc>,
        recheck: Recheck,
    ) -> Result<CurrentList, LicenceError> {
        let asked = Instant::now();
        let half_age = chrono::Duration::from_std(maker.max_age / 2).unwrap_or_default();
        let max_age = chrono::Duration::from_std(maker.max_age).unwrap_or_default();
        // The list in memory, if a request may be answered with it while another remakes.
        let servable = {
            let cached = self.cached();
            match cached.fresh() {
                Some(c) if recheck == Recheck::IfDue => {
                    if c.checked.elapsed() < RECHECK_AFTER && now - c.issued_at < half_age {
                        return Ok(c.clone());
                    }
                    (now - c.issued_at < max_age && c.issued_at <= now).then(|| c.clone())
                }
                _ => None,
            }
        };
        let _remaking = match servable {
            Some(c) => match self.remaking.try_lock() {
                Ok(guard) => guard,
                // Another request is checking or remaking: this one is answered as of the
                // list it has.
                Err(_) => return Ok(c),
            },
            None => self.remaking.lock().await,
        };
        // Checked or remade while this request waited: that is the answer to an `IfDue`.
        let reflects = {
            let cached = self.cached();
            if let Some(c) = cached.fresh() {
                if recheck == Recheck::IfDue && c.checked >= asked {
                    return Ok(c.clone());
                }
            }
            cached.invalidations
        };
        let result = match self
            .check_or_remake(db, maker, now, recheck, half_age)
            .await
        {
            Ok(result) => result,
            Err(e) => {
                // A list that cannot be checked or remade (the authority has no seal to sign
                // with, say) is not served to the requests that come meanwhile: they would
                // be answered as of a list a status change has outdated.
                self.cached().list = None;
                return Err(e);
            }
        };
        let mut cached = self.cached();
        cached.list = Some(result.clone());
        cached.reflects = reflects;
        Ok(result)
    }

    /// Looks at the database: keeps the list in memory if nothing changed since it was made,
    /// takes a fresh one another process stored, or makes and stores a new one.
    async fn check_or_remake(
        &self,
        db: &sqlx::PgPool,
        maker: &ListMaker<'_>,
        now: DateTime<Utc>,
        recheck: Recheck,
        half_age: chrono::Duration,
    ) -> Result<CurrentList, LicenceError> {
        let in_memory = self.cached().list.clone();
        let newest = store::newest_event_id(db).await?;
        let highest_index = match recheck {
            Recheck::IfDue => None,
            Recheck::Now => Some(store::highest_status_index(db).await?),
        };
        let current = |changes_through: i64, issued_at: DateTime<Utc>| {
            changes_through >= newest && now - issued_at < half_age && issued_at <= now
        };
        let covers = |list: &VerifiedStatusList| {
            list.uri() == maker.uri
                && highest_index
                    .and_then(|i| u64::try_from(i).ok())
                    .is_none_or(|i| list.get(i).is_some())
        };
        let seals = SealsService::public(db, maker.pki);
        // Only a list the current authority seal signed is served, from memory or from the
        // database: one a revoked (or superseded) seal signed, or that someone stored with
        // its key, is remade.
        let seal = seals.authority_seal(maker.authority, now).await?;
        if let Some(mut c) = in_memory {
            if current(c.changes_through, c.issued_at)
                && covers(&c.verified)
                && signed_by(&seal, &c.token)
            {
                c.checked = Instant::now();
                return Ok(c);
            }
        }
        // The authority's lists are signed by a seal of the city CA, checked against the city
        // root alone (see `SealsService::authority_seal`).
        let trust = seals.city_root().await?;
        // Another hub process (or the CLI) may have made a fresh one.
        if let Some((token, issued_at, changes_through)) = store::latest_status_list(db).await? {
            if current(changes_through, issued_at) && signed_by(&seal, &token) {
                if let Some(verified) =
                    verify_status_list(&token, &trust, maker.authority_credit_code)
                        .ok()
                        .filter(|v| covers(v))
                {
                    return Ok(CurrentList {
                        token: token.into(),
                        verified: Arc::new(verified),
                        issued_at,
                        changes_through,
                        checked: Instant::now(),
                    });
                }
            }
        }
        let max_index = match highest_index {
            Some(i) => i,
            None => store::highest_status_index(db).await?,
        };
        let list = build_list(db, max_index).await?;
        let key = SealsService::with_master_key(db, maker.pki)?
            .signing_key(&seal.seal_id, now)
            .await?;
        let issued_at = crate::licences::service::whole_seconds(now);
        let token = sign_status_list(&key, maker.uri, &list, issued_at, maker.max_age.as_secs())?;
        store::insert_status_list(db, &token, issued_at, newest).await?;
        let verified =
            verify_status_list(&token, &trust, maker.authority_credit_code).map_err(|e| {
                LicenceError::Stored(format!("the list just signed does not verify: {e}"))
            })?;
        Ok(CurrentList {
            token: token.into(),
            verified: Arc::new(verified),
            issued_at,
            changes_through: newest,
            checked: Instant::now(),
        })
    }
}

/// Whether the status list `token` was signed by `seal`.
fn signed_by(seal: &AuthoritySeal, token: &str) -> bool {
    bohai_certs::licence::ParsedJws::parse(token)
        .is_ok_and(|jws| jws.chain.first() == Some(&seal.cert_der))
}
