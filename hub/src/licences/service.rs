//! Licence operations shared by `bohai licence ...` and the HTTP API: issue (one or many),
//! renew, replace, revoke, suspend, resume, expire, show, verify.
//!
//! Every transition runs in one transaction with its event (the outbox that
//! `events::run_publisher` drains to the licence-events topic), and records who made it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bohai_certs::licence::{
    authentic_with_status_unknown, seal_licence, Issuer, Licence, LicenceClaims, LicenceInputs,
    LicencePolicy, LicenceRef, LicenceVerifier, ParsedJws, SealDirectory, StatusListRef,
    VerifiedLicence, QR_PREFIX,
};
use bohai_certs::{Check, ReasonCode, Report, SealKey};
use bohai_schemas::{HolderKind, LicenceType, Registry};
use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Mutex;

use super::on_record::claims_digest;
use super::status::{CurrentList, ListMaker, Recheck, StatusCache};
use super::store::{self, NewVersion};
use super::types::{RegistryTypes, SealRegister};
use super::{IssueRequest, IssuedLicence, LicenceError, LicenceEvent, LicenceVersion, LicenceView};
use crate::config::Config;
use crate::seals::SealsService;

/// How long the online verifier keeps its trust anchors and CRL before reloading them.
const VERIFIER_REFRESH: Duration = Duration::from_secs(5);

/// State shared by every request of one hub process: the status list, loaded seal keys and
/// the online verifier.
#[derive(Debug, Default)]
pub struct LicenceState {
    /// The current signed status list.
    pub status: StatusCache,
    keys: Mutex<HashMap<String, Arc<SealKey>>>,
    verifier: Mutex<Option<OnlineVerifier>>,
    /// When a verification last remade the verifier for a seal it did not know: at most once
    /// a second, so that forged licences cannot make the hub reload its seals on every request.
    forced_reload: std::sync::Mutex<Option<Instant>>,
    /// The last signed trust bundle and the status list it carries: signing one reads every
    /// seal and CRL, so it is reused while its list is the current one, for at most
    /// [`BUNDLE_REUSE`].
    bundle: crate::ops::recent::Recent<(Arc<str>, String)>,
    /// What was issued, as online verification compares it, learnt from the store.
    issued: super::on_record::IssuedClaims,
    /// The masking salt, which hashes identity numbers in the audit log, read once.
    salt: std::sync::OnceLock<crate::sharing::mask::Salt>,
}

/// Longest a signed trust bundle is handed out again.
const BUNDLE_REUSE: Duration = Duration::from_secs(60);

impl LicenceState {
    /// Whether a verification may remake the verifier now (see `forced_reload`).
    fn may_force_reload(&self) -> bool {
        let mut last = self
            .forced_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Drops the online verifier, e.g. after a seal was revoked.
    pub async fn reload_verifier(&self) {
        *self.verifier.lock().await = None;
        self.bundle.forget().await;
    }
}

/// The online verifier, the seals the hub holds, and when they were read.
type OnlineVerifier = (Instant, Arc<LicenceVerifier>, Arc<SealRegister>);

/// Who acts: a department through its token, or an operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A department's token; it may act only on its own licence types and licences.
    Department {
        /// The department.
        code: String,
        /// The person holding the token, if it names one.
        person: Option<String>,
    },
    /// An operator of the hub (`bohai licence ...`), acting on any licence.
    Operator(String),
}

impl Actor {
    /// The recorded form: `dept:CODE` or `cli:USER`.
    pub fn recorded(&self) -> String {
        match self {
            Actor::Department { code, .. } => format!("dept:{code}"),
            Actor::Operator(u) => format!("cli:{u}"),
        }
    }

    /// The person behind the act, when known: the token's holder, or the operator named by
    /// `bohai --actor`.
    pub fn person(&self) -> Option<&str> {
        match self {
            Actor::Department { person, .. } => person.as_deref(),
            Actor::Operator(_) => crate::audit::operator_person(),
        }
    }

    /// The operator running this process.
    pub fn current_operator() -> Self {
        Actor::Operator(std::env::var("USER").unwrap_or_else(|_| "operator".to_owned()))
    }

    fn may_act_for(&self, department: &str) -> bool {
        match self {
            Actor::Department { code, .. } => code == department,
            Actor::Operator(_) => true,
        }
    }
}

/// Drops sub-second precision: licences carry whole seconds.
pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(t.timestamp(), 0).single().unwrap_or(t)
}

/// The licence operations over one database, registry and configuration.
#[derive(Debug)]
pub struct LicenceService<'a> {
    db: &'a PgPool,
    registry: &'a Registry,
    config: &'a Config,
    seals: SealsService<'a>,
    state: &'a LicenceState,
}

/// A request checked against its type, ready to seal.
struct Prepared<'r> {
    licence_type: &'r LicenceType,
    holder: Value,
    fields: Value,
    holder_name: String,
    holder_id: String,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
}

impl<'a> LicenceService<'a> {
    /// Operations that seal (issue, renew, replace, QR, bundle) need the master key
    /// (`with_keys`); the status list reads it only when it makes a new list.
    pub fn new(
        db: &'a PgPool,
        registry: &'a Registry,
        config: &'a Config,
        state: &'a LicenceState,
        with_keys: bool,
    ) -> Result<Self, LicenceError> {
        let seals = if with_keys {
            SealsService::with_master_key(db, &config.pki)?
        } else {
            SealsService::public(db, &config.pki)
        };
        Ok(Self {
            db,
            registry,
            config,
            seals,
            state,
        })
    }

    fn authority_credit_code(&self) -> Result<&str, LicenceError> {
        let code = &self.config.licences.status_authority;
        self.registry
            .department(code)
            .map(|d| d.credit_code.as_str())
            .ok_or_else(|| {
                LicenceError::BadRequest(format!(
                    "licences.status_authority `{code}` is not a department of the registry"
                ))
            })
    }

    /// The current signed status list; `recheck` says when the in-memory one is checked
    /// against the database.
    pub async fn status_list(
        &self,
        now: DateTime<Utc>,
        recheck: Recheck,
    ) -> Result<CurrentList, LicenceError> {
        let uri = self.config.status_list_url();
        let maker = ListMaker {
            pki: &self.config.pki,
            authority: &self.config.licences.status_authority,
            authority_credit_code: self.authority_credit_code()?,
            uri: &uri,
            max_age: self.config.licences.status_max_age,
        };
        self.state
            .status
            .current(self.db, &maker, now, recheck)
            .await
    }

    /// The masking salt of `sharing.hash_salt_file`, read (or made) on first use.
    fn salt(&self) -> Result<crate::sharing::mask::Salt, LicenceError> {
        if let Some(salt) = self.state.salt.get() {
            return Ok(salt.clone());
        }
        let salt = crate::sharing::load_or_create_salt(&self.config.sharing.hash_salt_file)?;
        Ok(self.state.salt.get_or_init(|| salt).clone())
    }

    /// The request's type, if `actor` may issue it for `department`.
    fn check_type(
        &self,
        actor: &Actor,
        department: &str,
        request: IssueRequest,
    ) -> Result<(&'a LicenceType, IssueRequest), LicenceError> {
        let t = self
            .registry
            .licence_type(&request.licence_type)
            .ok_or_else(|| LicenceError::UnknownType(request.licence_type.clone()))?;
        if t.department != department || !actor.may_act_for(department) {
            return Err(LicenceError::NotAllowed {
                department: department.to_owned(),
                action: format!("issue `{}`", t.id),
                why: format!("`{}` licences are issued by `{}`", t.id, t.department),
            });
        }
        Ok((t, request))
    }
}

/// Validates a request of type `t` against its schema and settles its validity.
fn prepare(
    t: &LicenceType,
    request: IssueRequest,
    now: DateTime<Utc>,
) -> Result<Prepared<'_>, LicenceError> {
    let subject = serde_json::json!({"holder": request.holder, "fields": request.fields});
    let violations = t.validate(&subject);
    if !violations.is_empty() {
        return Err(LicenceError::Invalid {
            licence_type: t.id.clone(),
            violations,
        });
    }
    let valid_from = whole_seconds(request.valid_from.unwrap_or(now));
    let default_until = chrono::Duration::from_std(t.default_validity)
        .ok()
        .and_then(|d| valid_from.checked_add_signed(d))
        .ok_or_else(|| LicenceError::BadRequest("default validity out of range".to_owned()))?;
    let valid_until = whole_seconds(request.valid_until.unwrap_or(default_until));
    if valid_from >= valid_until {
        return Err(LicenceError::BadRequest(format!(
            "valid_from {valid_from} must be before valid_until {valid_until}"
        )));
    }
    let Value::Object(mut subject) = subject else {
        return Err(LicenceError::BadRequest(
            "the subject must be an object".to_owned(),
        ));
    };
    let holder = subject.remove("holder").unwrap_or_default();
    let fields = subject.remove("fields").unwrap_or_default();
    let text = |key: &str| {
        holder
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let holder_id = match t.holder_kind {
        HolderKind::Person => text("id_number"),
        HolderKind::Organisation => text("credit_code"),
    };
    Ok(Prepared {
        licence_type: t,
        holder_name: text("name"),
        holder_id,
        holder,
        fields,
        valid_from,
        valid_until,
    })
}

impl<'a> LicenceService<'a> {
    /// The department's current seal, decrypted once per process.
    async fn seal_of(
        &self,
        department: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, Arc<SealKey>), LicenceError> {
        let seal_id = self.seals.newest_valid_seal(department, now).await?;
        let key = self.key_of_seal(&seal_id, now).await?;
        Ok((seal_id, key))
    }

    /// A seal's key, decrypted once per process.
    async fn key_of_seal(
        &self,
        seal_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<SealKey>, LicenceError> {
        let mut keys = self.state.keys.lock().await;
        if let Some(k) = keys.get(seal_id) {
            return Ok(k.clone());
        }
        let key = Arc::new(self.seals.signing_key(seal_id, now).await?);
        keys.insert(seal_id.to_owned(), key.clone());
        Ok(key)
    }

    fn issuer(&self, department: &str) -> Result<Issuer, LicenceError> {
        let d = self
            .registry
            .department(department)
            .ok_or_else(|| LicenceError::BadRequest(format!("no department `{department}`")))?;
        Ok(Issuer {
            department: d.code.clone(),
            name_zh: d.name_zh.clone(),
            credit_code: d.credit_code.clone(),
        })
    }

    /// Issues one licence.
    pub async fn issue(
        &self,
        actor: &Actor,
        department: &str,
        request: IssueRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedLicence, LicenceError> {
        self.issue_many(actor, department, vec![request], now)
            .await?
            .pop()
            .unwrap_or_else(|| Err(LicenceError::BadRequest("nothing issued".to_owned())))
    }

    /// Issues many licences of one department: each request gets its licence or its error,
    /// in order. Schema validation and sealing run on both cores; the valid ones are stored
    /// in one transaction. (A bulk import overlaps the steps itself: [`Self::plan_issue`],
    /// [`IssuePlan::seal`], [`Self::store_issued`].)
    pub async fn issue_many(
        &self,
        actor: &Actor,
        department: &str,
        requests: Vec<IssueRequest>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<IssuedLicence, LicenceError>>, LicenceError> {
        let plan = self.plan_issue(actor, department, requests, now).await?;
        self.store_issued(actor, plan.seal()).await
    }

    /// The first step of issuing a batch of one department: checks each request's type and
    /// the caller's right to issue it, finds the department's seal key and reserves a number
    /// and a status index for each request that passed.
    pub async fn plan_issue(
        &self,
        actor: &Actor,
        department: &str,
        requests: Vec<IssueRequest>,
        now: DateTime<Utc>,
    ) -> Result<IssuePlan<'a>, LicenceError> {
        let now = whole_seconds(now);
        let typed: Vec<Result<(&'a LicenceType, IssueRequest), LicenceError>> = requests
            .into_iter()
            .map(|r| self.check_type(actor, department, r))
            .collect();
        let typed = if self.config.licences.credit_discipline {
            super::discipline::check_batch(self.db, actor, || self.salt(), typed, now).await?
        } else {
            super::discipline::skip_batch(self.db, actor, typed).await?
        };
        let n_ok = typed.iter().filter(|c| c.is_ok()).count();
        // A batch whose every request was refused needs no seal and no numbers.
        let (seal, reserved) = if n_ok == 0 {
            (None, Vec::new())
        } else {
            let (seal_id, key) = self.seal_of(department, now).await?;
            let issuer = self.issuer(department)?;
            let reserved = store::reserve(self.db, i64::try_from(n_ok).unwrap_or(i64::MAX)).await?;
            (Some((seal_id, key, issuer)), reserved)
        };
        let mut reserved = reserved.into_iter();
        let jobs: Vec<Result<Job<'a>, LicenceError>> = typed
            .into_iter()
            .map(|c| {
                c.and_then(|checked| {
                    reserved.next().map(|res| (checked, res)).ok_or_else(|| {
                        LicenceError::Stored("fewer reserved numbers than asked".to_owned())
                    })
                })
            })
            .collect();
        Ok(IssuePlan {
            department: department.to_owned(),
            seal,
            jobs,
            uri: self.config.status_list_url(),
            now,
        })
    }

    /// The last step of issuing a batch: stores the sealed licences and their `issued`
    /// events in one transaction, with one audit entry naming them all. Each request gets its
    /// licence or its error, in order.
    pub async fn store_issued(
        &self,
        actor: &Actor,
        batch: SealedBatch<'a>,
    ) -> Result<Vec<Result<IssuedLicence, LicenceError>>, LicenceError> {
        let SealedBatch {
            department,
            seal_id,
            done,
            now,
        } = batch;
        let versions: Vec<NewVersion<'_>> = done
            .iter()
            .flatten()
            .map(|d| NewVersion {
                number: &d.number,
                version: 1,
                licence_type: &d.prepared.licence_type.id,
                department: &department,
                holder_name: &d.prepared.holder_name,
                holder_id: &d.prepared.holder_id,
                status_index: d.index,
                valid_from: d.prepared.valid_from,
                valid_until: d.prepared.valid_until,
                issued_at: now,
                seal_id: &seal_id,
                document: &d.document,
                supersedes: None,
            })
            .collect();
        if !versions.is_empty() {
            let mut tx = self.db.begin().await?;
            store::insert_versions(
                &mut tx,
                &versions,
                LicenceEvent::Issued,
                &actor.recorded(),
                now,
            )
            .await?;
            // Each override with the licence it let through, and on the log with the officer.
            for d in done.iter().flatten() {
                if let Some(granted) = &d.granted {
                    store::insert_override(&mut tx, &d.number, 1, granted, &actor.recorded(), now)
                        .await?;
                    crate::audit::Entry::new(&actor.recorded(), "licence.discipline_override")
                        .person(Some(&granted.officer))
                        .subject(&d.number)
                        .detail(&serde_json::json!({
                            "version": 1,
                            "entries": granted.matches.iter().map(|m| &m.entry).collect::<Vec<_>>(),
                            "reason": granted.reason,
                        }))
                        .append(&mut tx)
                        .await?;
                }
            }
            // One audit entry per batch, naming every licence it issued.
            let numbers: Vec<&str> = versions.iter().map(|v| v.number).collect();
            crate::audit::Entry::new(&actor.recorded(), "licence.issued")
                .person(actor.person())
                .subject(numbers.first().copied().unwrap_or_default())
                .count(numbers.len())
                .detail(&serde_json::json!({"department": department, "numbers": numbers}))
                .append(&mut tx)
                .await?;
            tx.commit().await?;
            self.state.status.invalidate().await;
        }
        drop(versions);
        Ok(done
            .into_iter()
            .map(|d| {
                d.map(|d| IssuedLicence {
                    number: d.number,
                    version: 1,
                    status_index: d.index,
                    valid_from: d.prepared.valid_from,
                    valid_until: d.prepared.valid_until,
                    document: d.document,
                })
            })
            .collect())
    }

    async fn locked_latest(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        actor: &Actor,
        number: &str,
        action: &str,
    ) -> Result<LicenceVersion, LicenceError> {
        let latest = store::versions(tx, number, true)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| LicenceError::UnknownLicence(number.to_owned()))?;
        if !actor.may_act_for(&latest.department) {
            return Err(LicenceError::NotAllowed {
                department: match actor {
                    Actor::Department { code, .. } => code.clone(),
                    Actor::Operator(u) => u.clone(),
                },
                action: format!("{action} `{number}`"),
                why: format!("it was issued by `{}`", latest.department),
            });
        }
        Ok(latest)
    }

    fn wrong_state(v: &LicenceVersion, action: &str) -> LicenceError {
        LicenceError::WrongState {
            number: v.number.clone(),
            state: v.state.clone(),
            action: action.to_owned(),
        }
    }

    /// Renews a licence: a new version with a new validity from `now` (the type's default
    /// unless `valid_until` is given); the previous version is superseded. An expired licence
    /// can be renewed; a revoked or suspended one cannot.
    pub async fn renew(
        &self,
        actor: &Actor,
        number: &str,
        (valid_until, discipline_override): (
            Option<DateTime<Utc>>,
            Option<super::DisciplineOverride>,
        ),
        now: DateTime<Utc>,
    ) -> Result<IssuedLicence, LicenceError> {
        let now = whole_seconds(now);
        let mut tx = self.db.begin().await?;
        let (latest, old, t) = self
            .successor_basis(&mut tx, actor, number, "renew")
            .await?;
        // Renewing is a new decision: joint discipline applies as at issuance.
        let granted = self
            .discipline_of_renewal(actor, t, &old, discipline_override, now)
            .await?;
        let until = match valid_until {
            Some(u) => whole_seconds(u),
            None => chrono::Duration::from_std(t.default_validity)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| LicenceError::BadRequest("validity out of range".to_owned()))?,
        };
        if until <= now {
            return Err(LicenceError::BadRequest(format!(
                "valid_until {until} is not after now"
            )));
        }
        let version = latest.version + 1;
        let licence = Licence {
            version: u32::try_from(version).unwrap_or(u32::MAX),
            valid_from: now,
            valid_until: until,
            issued_at: now,
            issuer: self.issuer(&latest.department)?,
            supersedes: Some(reference(&latest)),
            ..old
        };
        let issued = self
            .store_successor(&mut tx, actor, &latest, licence, LicenceEvent::Renewed, now)
            .await?;
        if let Some(granted) = &granted {
            store::insert_override(&mut tx, number, version, granted, &actor.recorded(), now)
                .await?;
            crate::audit::Entry::new(&actor.recorded(), "licence.discipline_override")
                .person(Some(&granted.officer))
                .subject(number)
                .detail(&serde_json::json!({
                    "version": version,
                    "entries": granted.matches.iter().map(|m| &m.entry).collect::<Vec<_>>(),
                    "reason": granted.reason,
                }))
                .append(&mut tx)
                .await?;
        }
        crate::audit::licence_action(
            &mut tx,
            &actor.recorded(),
            actor.person(),
            "renewed",
            number,
            version,
            None,
        )
        .await?;
        store::set_status(
            &mut tx,
            (number, latest.version),
            "superseded",
            None,
            Some((number, version)),
        )
        .await?;
        tx.commit().await?;
        self.state.status.invalidate().await;
        Ok(issued)
    }

    /// The joint-discipline check of renewing `old` of type `t`: the override it is renewed
    /// under, if one was needed and given.
    async fn discipline_of_renewal(
        &self,
        actor: &Actor,
        t: &'a LicenceType,
        old: &Licence,
        discipline_override: Option<super::DisciplineOverride>,
        now: DateTime<Utc>,
    ) -> Result<Option<super::discipline::Granted>, LicenceError> {
        if !self.config.licences.credit_discipline || t.discipline.is_none() {
            return Ok(None);
        }
        let request = IssueRequest {
            licence_type: t.id.clone(),
            holder: old.holder.clone(),
            fields: old.fields.clone(),
            valid_from: None,
            valid_until: None,
            discipline_override,
        };
        let checked = super::discipline::check_batch(
            self.db,
            actor,
            || self.salt(),
            vec![Ok((t, request))],
            now,
        )
        .await?;
        match checked.into_iter().next() {
            Some(Ok((_, _, granted))) => Ok(granted),
            Some(Err(e)) => Err(e),
            None => Err(LicenceError::Stored(
                "no discipline check was made".to_owned(),
            )),
        }
    }

    /// Replaces a lost or damaged licence: a new licence number with the same content and
    /// validity; the old document is revoked with reason `replaced` and linked to it.
    pub async fn replace(
        &self,
        actor: &Actor,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedLicence, LicenceError> {
        let now = whole_seconds(now);
        let mut tx = self.db.begin().await?;
        let (latest, old, t) = self
            .successor_basis(&mut tx, actor, number, "replace")
            .await?;
        let (_, serial) = store::reserve(self.db, 1)
            .await?
            .pop()
            .ok_or_else(|| LicenceError::Stored("no serial reserved".to_owned()))?;
        let new_number = format!("{}-{}-{serial:08}", t.number_prefix, now.format("%Y"));
        let licence = Licence {
            number: new_number.clone(),
            version: 1,
            issued_at: now,
            issuer: self.issuer(&latest.department)?,
            supersedes: Some(reference(&latest)),
            ..old
        };
        let issued = self
            .store_successor(&mut tx, actor, &latest, licence, LicenceEvent::Issued, now)
            .await?;
        store::set_status(
            &mut tx,
            (number, latest.version),
            "revoked",
            Some("replaced"),
            Some((&new_number, 1)),
        )
        .await?;
        store::insert_event(
            &mut tx,
            (number, latest.version),
            LicenceEvent::Replaced,
            &actor.recorded(),
            Some(&format!("replaced by {new_number}")),
            now,
        )
        .await?;
        crate::audit::licence_action(
            &mut tx,
            &actor.recorded(),
            actor.person(),
            "replaced",
            number,
            latest.version,
            Some(&format!("replaced by {new_number}")),
        )
        .await?;
        tx.commit().await?;
        self.state.status.invalidate().await;
        Ok(issued)
    }

    /// The newest version of a licence that is to get a successor (it must be valid), its
    /// content and its type.
    async fn successor_basis(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        actor: &Actor,
        number: &str,
        action: &str,
    ) -> Result<(LicenceVersion, Licence, &'a LicenceType), LicenceError> {
        let latest = self.locked_latest(tx, actor, number, action).await?;
        if latest.state != "valid" {
            return Err(Self::wrong_state(&latest, action));
        }
        let old = claims_of(&latest.document)?.licence;
        let t = self
            .registry
            .licence_type(&old.licence_type)
            .ok_or_else(|| LicenceError::UnknownType(old.licence_type.clone()))?;
        Ok((latest, old, t))
    }

    /// Seals `licence` with the department's current seal and stores it as the successor of
    /// `previous`, with `event`.
    async fn store_successor(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        actor: &Actor,
        previous: &LicenceVersion,
        licence: Licence,
        event: LicenceEvent,
        now: DateTime<Utc>,
    ) -> Result<IssuedLicence, LicenceError> {
        let (seal_id, key) = self.seal_of(&previous.department, now).await?;
        let index = store::reserve_index(self.db).await?;
        let uri = self.config.status_list_url();
        let status = StatusListRef {
            idx: u64::try_from(index).unwrap_or(0),
            uri,
        };
        let document = seal_licence(&key, licence.clone(), status)?;
        let version = i32::try_from(licence.version).unwrap_or(i32::MAX);
        let supersedes = licence
            .supersedes
            .as_ref()
            .map(|s| (s.number.as_str(), i32::try_from(s.version).unwrap_or(0)));
        let holder_id = holder_id_of(&licence);
        store::insert_versions(
            tx,
            &[NewVersion {
                number: &licence.number,
                version,
                licence_type: &licence.licence_type,
                department: &previous.department,
                holder_name: &previous.holder_name,
                holder_id: holder_id.as_deref().unwrap_or_default(),
                status_index: index,
                valid_from: licence.valid_from,
                valid_until: licence.valid_until,
                issued_at: now,
                seal_id: &seal_id,
                document: &document,
                supersedes,
            }],
            event,
            &actor.recorded(),
            now,
        )
        .await?;
        Ok(IssuedLicence {
            number: licence.number,
            version,
            status_index: index,
            valid_from: licence.valid_from,
            valid_until: licence.valid_until,
            document,
        })
    }

    /// Revokes, suspends or resumes the newest version of a licence.
    pub async fn transition(
        &self,
        actor: &Actor,
        number: &str,
        event: LicenceEvent,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<LicenceVersion, LicenceError> {
        let (action, from, to): (&str, &[&str], &str) = match event {
            LicenceEvent::Revoked => ("revoke", &["valid", "suspended"], "revoked"),
            LicenceEvent::Suspended => ("suspend", &["valid"], "suspended"),
            LicenceEvent::Resumed => ("resume", &["suspended"], "valid"),
            other => {
                return Err(LicenceError::BadRequest(format!(
                    "`{}` is not a status transition",
                    other.as_str()
                )))
            }
        };
        if event == LicenceEvent::Revoked && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(LicenceError::BadRequest(
                "a revocation needs a reason".to_owned(),
            ));
        }
        let now = whole_seconds(now);
        let mut tx = self.db.begin().await?;
        let mut latest = self.locked_latest(&mut tx, actor, number, action).await?;
        if !from.contains(&latest.state.as_str()) {
            return Err(Self::wrong_state(&latest, action));
        }
        let revocation_reason = (event == LicenceEvent::Revoked).then_some(reason).flatten();
        store::set_status(
            &mut tx,
            (number, latest.version),
            to,
            revocation_reason,
            None,
        )
        .await?;
        store::insert_event(
            &mut tx,
            (number, latest.version),
            event,
            &actor.recorded(),
            reason,
            now,
        )
        .await?;
        crate::audit::licence_action(
            &mut tx,
            &actor.recorded(),
            actor.person(),
            event.as_str(),
            number,
            latest.version,
            reason,
        )
        .await?;
        tx.commit().await?;
        self.state.status.invalidate().await;
        latest.state = to.to_owned();
        latest.revocation_reason = revocation_reason
            .map(str::to_owned)
            .or(latest.revocation_reason);
        Ok(latest)
    }

    /// Records the expiry of every licence whose validity ended by `now`.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64, LicenceError> {
        Ok(store::expire_due(self.db, now, None).await?)
    }

    /// A licence with every version and event; `expired` replaces `valid`/`suspended` for a
    /// version whose validity ended.
    pub async fn show(
        &self,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<LicenceView, LicenceError> {
        let mut tx = self.db.begin().await?;
        let mut versions = store::versions(&mut tx, number, false).await?;
        tx.commit().await?;
        if versions.is_empty() {
            return Err(LicenceError::UnknownLicence(number.to_owned()));
        }
        for v in &mut versions {
            if matches!(v.state.as_str(), "valid" | "suspended") && v.valid_until <= now {
                v.state = "expired".to_owned();
            }
        }
        let events = store::events(self.db, number).await?;
        let discipline_overrides = store::overrides(self.db, number).await?;
        Ok(LicenceView {
            number: number.to_owned(),
            versions,
            events,
            discipline_overrides,
        })
    }

    /// The online verifier (trust anchors and the newest CRL), reloaded every few seconds.
    /// The online verifier and the seals the hub holds, remade every [`VERIFIER_REFRESH`]
    /// (or at once after a change here, see [`LicenceState::reload_verifier`]).
    async fn verifier(&self) -> Result<(Arc<LicenceVerifier>, Arc<SealRegister>), LicenceError> {
        let mut slot = self.state.verifier.lock().await;
        if let Some((made, v, seals)) = slot.as_ref() {
            if made.elapsed() < VERIFIER_REFRESH {
                return Ok((v.clone(), seals.clone()));
            }
        }
        let trust = self.seals.trust_anchors().await?;
        // The city CRL and the operators' (`pki.crls`): a seal imported with a department's
        // own CA is judged by that CA's CRL, and by the registry's own revocation.
        let crls = self.seals.crls().await?;
        let revoked = self.seals.revoked_imported().await?;
        let policy = LicencePolicy {
            clock_skew: chrono::Duration::from_std(self.config.licences.clock_skew)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            ..LicencePolicy::default()
        };
        let v = Arc::new(LicenceVerifier::new(trust, crls, policy).with_revoked_seals(revoked));
        let seals: Arc<SealRegister> = Arc::new(
            crate::seals::store::list_seals(self.db)
                .await?
                .into_iter()
                .map(|s| (crate::seals::service::sha256(&s.cert_der), s.department))
                .collect(),
        );
        *slot = Some((Instant::now(), v.clone(), seals.clone()));
        Ok((v, seals))
    }

    /// The compact (QR) form of a licence's newest version, sealed with the seal that sealed
    /// its document.
    pub async fn qr_payload(
        &self,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<String, LicenceError> {
        let mut tx = self.db.begin().await?;
        let latest = store::versions(&mut tx, number, false)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| LicenceError::UnknownLicence(number.to_owned()))?;
        tx.commit().await?;
        let claims = claims_of(&latest.document)?;
        let key = self.key_of_seal(&latest.seal_id, now).await?;
        Ok(bohai_certs::licence::seal_compact(
            &key,
            claims.licence,
            claims.status.status_list,
        )?)
    }

    /// The seal chains of every seal by key id, for compact licences verified online.
    pub async fn seal_directory(&self) -> Result<SealChains, LicenceError> {
        Ok(SealChains(
            crate::seals::store::list_seals(self.db)
                .await?
                .into_iter()
                .map(|s| {
                    let mut chain = vec![s.cert_der];
                    chain.extend(s.chain_der);
                    (bohai_certs::licence::key_id(&chain[0]), chain)
                })
                .collect(),
        ))
    }

    /// The signed offline trust bundle as of `now` (see [`super::bundle`]).
    pub async fn bundle(&self, now: DateTime<Utc>) -> Result<String, LicenceError> {
        let list = self.status_list(now, Recheck::IfDue).await?;
        // Reused while it carries the current list (a status change makes a new list, a seal
        // change here forgets it), and for at most a minute.
        let make = || async {
            let bundle = self.sign_bundle(&list, now).await?;
            Ok::<_, LicenceError>((Arc::clone(&list.token), bundle))
        };
        let (carried, bundle) = self.state.bundle.get_or_make(BUNDLE_REUSE, make).await?;
        if carried == list.token {
            return Ok(bundle);
        }
        self.state.bundle.forget().await;
        let (_, bundle) = self.state.bundle.get_or_make(BUNDLE_REUSE, make).await?;
        Ok(bundle)
    }

    /// Makes and signs the trust bundle carrying `list`.
    async fn sign_bundle(
        &self,
        list: &CurrentList,
        now: DateTime<Utc>,
    ) -> Result<String, LicenceError> {
        use super::bundle::{
            seal_entry, sign_bundle, BundleDepartment, BundleType, TrustBundle, BUNDLE_VERSION,
        };
        let seals = crate::seals::store::list_seals(self.db)
            .await?
            .into_iter()
            .map(|s| {
                let mut chain = vec![s.cert_der.clone()];
                chain.extend(s.chain_der);
                seal_entry(&s.cert_der, &s.department, &chain)
            })
            .collect();
        let crls = self
            .seals
            .crls()
            .await?
            .into_iter()
            .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
            .collect();
        let revoked_seals = self
            .seals
            .revoked_imported()
            .await?
            .iter()
            .map(|digest| crate::seals::service::hex_lower(digest))
            .collect();
        let licence_types = self
            .registry
            .licence_types
            .iter()
            .map(|t| BundleType {
                id: t.id.clone(),
                department: t.department.clone(),
                number_prefix: t.number_prefix.clone(),
                schema: t.schema.clone(),
            })
            .collect();
        let issued_at = whole_seconds(now);
        let bundle = TrustBundle {
            bundle_version: BUNDLE_VERSION,
            issued_at,
            valid_until: issued_at
                + chrono::Duration::from_std(self.config.licences.bundle_validity)
                    .unwrap_or_default(),
            departments: self
                .registry
                .departments
                .iter()
                .map(|d| BundleDepartment {
                    code: d.code.clone(),
                    credit_code: d.credit_code.clone(),
                })
                .collect(),
            seals,
            crls,
            revoked_seals,
            status_list: list.token.to_string(),
            licence_types,
        };
        let seal = self
            .seals
            .authority_seal(&self.config.licences.status_authority, now)
            .await?;
        let key = self.key_of_seal(&seal.seal_id, now).await?;
        sign_bundle(&key, &bundle)
    }

    /// Verifies licences (JWS documents or QR payloads) online at `at` with the current
    /// status list; one report each.
    ///
    /// The in-memory list may be up to a second behind the database (see [`super::status`]):
    /// a licence issued in that second by another process (the CLI, another hub) is beyond
    /// it. An authentic document (signature and chain passed) whose status is unknown is
    /// therefore verified once more against a list checked against the database now; a
    /// forged document never costs that second look.
    pub async fn verify(
        &self,
        documents: &[String],
        at: DateTime<Utc>,
    ) -> Result<Vec<Report>, LicenceError> {
        let (verifier, register) = self.verifier().await?;
        let mut reports = self
            .verify_with(&verifier, &register, documents, at)
            .await?;
        // A seal made a moment ago elsewhere (the CLI, another hub) is not in the register
        // the hub holds yet: its licences are verified once more with a fresh one.
        if reports.iter().any(|r| {
            r.check("issuer")
                .is_some_and(|c| c.code == bohai_certs::ReasonCode::SealNotRegistered)
        }) && self.state.may_force_reload()
        {
            self.state.reload_verifier().await;
            let (verifier, register) = self.verifier().await?;
            reports = self
                .verify_with(&verifier, &register, documents, at)
                .await?;
        }
        Ok(reports)
    }

    /// One pass of [`Self::verify`] with `verifier` and the seals of `register`.
    async fn verify_with(
        &self,
        verifier: &LicenceVerifier,
        register: &SealRegister,
        documents: &[String],
        at: DateTime<Utc>,
    ) -> Result<Vec<Report>, LicenceError> {
        let seals = if documents.iter().any(|d| d.trim().starts_with(QR_PREFIX)) {
            Some(self.seal_directory().await?)
        } else {
            None
        };
        let types = RegistryTypes {
            registry: self.registry,
            seals: register,
        };
        let verify_one = |document: &str, list: Option<&CurrentList>| {
            let inputs = LicenceInputs {
                status: list.map(|l| &*l.verified),
                types: &types,
                at,
            };
            match &seals {
                Some(seals) if document.trim().starts_with(QR_PREFIX) => {
                    verifier.verify_compact(document, seals, inputs)
                }
                _ => verifier.verify(document, inputs),
            }
        };
        // The list is the current one whatever `at` asks: a verification "as of" a later
        // time sees it as stale, as an offline verifier would.
        // A list that cannot be had (the status authority has no seal to sign one with, after
        // its revocation and until a new one is issued) leaves every status unknown: the
        // reports say so (INDETERMINATE), rather than the verification failing.
        let list = match self.status_list(Utc::now(), Recheck::IfDue).await {
            Ok(list) => Some(list),
            Err(
                e @ LicenceError::Seals(
                    crate::seals::SealsError::NoCa
                    | crate::seals::SealsError::NoValidSeal(_)
                    | crate::seals::SealsError::NotUsable { .. },
                ),
            ) => {
                tracing::warn!(error = %e, "no status list: statuses are reported unknown");
                None
            }
            Err(e) => return Err(e),
        };
        let mut reports: Vec<_> = documents
            .iter()
            .map(|d| verify_one(d, list.as_ref()))
            .collect();
        if list.is_some()
            && reports
                .iter()
                .any(|(r, _)| authentic_with_status_unknown(r))
        {
            match self.status_list(Utc::now(), Recheck::Now).await {
                Ok(list) => {
                    for (report, document) in reports.iter_mut().zip(documents) {
                        if authentic_with_status_unknown(&report.0) {
                            *report = verify_one(document, Some(&list));
                        }
                    }
                }
                // The first reports stand: they say the status is unknown, which it is.
                Err(e) => tracing::warn!(error = %e, "cannot recheck the status list"),
            }
        }
        self.confirm_on_record(reports).await
    }

    /// Online, a licence that passed every check is also compared with the hub's record of
    /// what was issued: the stored document of its number and version must carry the same
    /// claims. A licence sealed outside the hub with the issuer's own registered seal (its key
    /// misused or stolen) passes every other check; this one makes it INVALID with
    /// `LICENCE_NOT_ON_RECORD` (check `record`). Offline verifiers have no record to compare
    /// with.
    async fn confirm_on_record(
        &self,
        verified: Vec<(Report, Option<VerifiedLicence>)>,
    ) -> Result<Vec<Report>, LicenceError> {
        let version_of = |v: &VerifiedLicence| {
            let licence = v.licence();
            (
                licence.number.clone(),
                i32::try_from(licence.version).unwrap_or(i32::MAX),
            )
        };
        // The versions not learnt yet are read from the store, all at once.
        let wanted: Vec<(String, i32)> = verified
            .iter()
            .filter_map(|(_, v)| v.as_ref().map(version_of))
            .filter(|key| self.state.issued.get(key).is_none())
            .collect();
        let mut unreadable = HashMap::new();
        if !wanted.is_empty() {
            for (key, document) in store::documents(self.db, &wanted).await? {
                match claims_of(&document) {
                    Ok(claims) => self.state.issued.learn(key, claims_digest(&claims)),
                    Err(e) => {
                        unreadable.insert(key, e.to_string());
                    }
                }
            }
        }
        Ok(verified
            .into_iter()
            .map(|(mut report, verified)| {
                let Some(verified) = verified else {
                    return report;
                };
                let key = version_of(&verified);
                let (number, version) = (&key.0, key.1);
                let check = match self.state.issued.get(&key) {
                    Some(issued) if issued == claims_digest(verified.claims()) => {
                        Check::pass(RECORD_CHECK)
                    }
                    Some(_) => Check::fail(
                        RECORD_CHECK,
                        ReasonCode::LicenceNotOnRecord,
                        format!("{number} version {version} was issued with other contents"),
                    ),
                    None => match unreadable.get(&key) {
                        Some(e) => Check::indeterminate(
                            RECORD_CHECK,
                            ReasonCode::LicenceNotOnRecord,
                            format!("the stored document of {number} version {version} cannot be read: {e}"),
                        ),
                        None => Check::fail(
                            RECORD_CHECK,
                            ReasonCode::LicenceNotOnRecord,
                            format!("no licence {number} version {version} was issued"),
                        ),
                    },
                };
                report.add_check(check);
                report
            })
            .collect())
    }
}

/// The name of the online check against the hub's record of issued licences.
const RECORD_CHECK: &str = "record";

/// Seal chains by key id.
#[derive(Debug)]
pub struct SealChains(pub HashMap<String, Vec<Vec<u8>>>);

impl SealDirectory for SealChains {
    fn chain(&self, kid: &str) -> Option<Vec<Vec<u8>>> {
        self.0.get(kid).cloned()
    }
}

/// `NUMBER/vN` of a stored version, as a licence names what it supersedes.
fn reference(v: &LicenceVersion) -> LicenceRef {
    LicenceRef {
        number: v.number.clone(),
        version: u32::try_from(v.version).unwrap_or(0),
    }
}

fn holder_id_of(licence: &Licence) -> Option<String> {
    ["id_number", "credit_code"]
        .iter()
        .find_map(|k| licence.holder.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// The claims of a stored (hub-made) licence, read without verification.
pub fn claims_of(document: &str) -> Result<LicenceClaims, LicenceError> {
    let jws = ParsedJws::parse(document).map_err(|e| LicenceError::Stored(e.to_string()))?;
    serde_json::from_slice(&jws.payload).map_err(|e| LicenceError::Stored(e.to_string()))
}

/// A request to seal: its type, the request and its reserved (status index, serial).
type Job<'t> = (super::discipline::Checked<'t>, (i64, i64));

/// A batch of new licences of one department, checked, numbered and ready to seal
/// ([`LicenceService::plan_issue`]).
pub struct IssuePlan<'t> {
    department: String,
    /// The seal's id, its key and the issuer; `None` when no request passed.
    seal: Option<(String, Arc<SealKey>, Issuer)>,
    jobs: Vec<Result<Job<'t>, LicenceError>>,
    uri: String,
    now: DateTime<Utc>,
}

impl std::fmt::Debug for IssuePlan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuePlan({} of {})", self.jobs.len(), self.department)
    }
}

impl<'t> IssuePlan<'t> {
    /// Validates and seals every planned licence, on both cores; blocks the calling thread
    /// while it works. Needs no database: it can run while another batch is being stored.
    pub fn seal(self) -> SealedBatch<'t> {
        let IssuePlan {
            department,
            seal,
            jobs,
            uri,
            now,
        } = self;
        let Some((seal_id, key, issuer)) = seal else {
            return SealedBatch {
                department,
                seal_id: String::new(),
                // Only refused requests have no seal.
                done: jobs
                    .into_iter()
                    .map(|j| {
                        j.and_then(|_| {
                            Err(LicenceError::Stored(
                                "a licence was planned without a seal".to_owned(),
                            ))
                        })
                    })
                    .collect(),
                now,
            };
        };
        let sealer = Sealer {
            key: &key,
            issuer: &issuer,
            uri,
            year: now.format("%Y").to_string(),
            now,
        };
        let done = on_both_cores(jobs, |job| {
            job.and_then(|((t, r, granted), res)| {
                sealer
                    .seal(t, r, res)
                    .map(|sealed| SealedOne { granted, ..sealed })
            })
        });
        SealedBatch {
            department,
            seal_id,
            done,
            now,
        }
    }
}

/// A sealed batch, ready to store ([`LicenceService::store_issued`]).
pub struct SealedBatch<'t> {
    department: String,
    seal_id: String,
    done: Vec<Result<SealedOne<'t>, LicenceError>>,
    now: DateTime<Utc>,
}

impl std::fmt::Debug for SealedBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedBatch({} of {})", self.done.len(), self.department)
    }
}

/// What sealing a batch of new licences shares.
struct Sealer<'k> {
    key: &'k SealKey,
    issuer: &'k Issuer,
    uri: String,
    year: String,
    now: DateTime<Utc>,
}

/// A new licence, validated and sealed.
struct SealedOne<'t> {
    prepared: Prepared<'t>,
    number: String,
    index: i64,
    document: String,
    /// The joint-discipline override it is issued under, if one was needed.
    granted: Option<super::discipline::Granted>,
}

impl Sealer<'_> {
    /// Validates, numbers and seals one request with its reserved (index, serial).
    fn seal<'t>(
        &self,
        t: &'t LicenceType,
        request: IssueRequest,
        (index, serial): (i64, i64),
    ) -> Result<SealedOne<'t>, LicenceError> {
        let prepared = prepare(t, request, self.now)?;
        let number = format!("{}-{}-{serial:08}", t.number_prefix, self.year);
        let licence = Licence {
            licence_type: t.id.clone(),
            number: number.clone(),
            version: 1,
            issuer: self.issuer.clone(),
            holder: prepared.holder.clone(),
            fields: prepared.fields.clone(),
            valid_from: prepared.valid_from,
            valid_until: prepared.valid_until,
            issued_at: self.now,
            supersedes: None,
        };
        let status = StatusListRef {
            idx: u64::try_from(index).unwrap_or(0),
            uri: self.uri.clone(),
        };
        let document = seal_licence(self.key, licence, status)?;
        Ok(SealedOne {
            prepared,
            number,
            index,
            document,
            granted: None,
        })
    }
}

/// Maps `items` with `f` on two threads (this one and one more) when there are enough to be
/// worth it, keeping the order. It blocks the calling thread while it works: a batch of a few
/// thousand licences takes tens of milliseconds.
fn on_both_cores<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    const PARALLEL_FROM: usize = 64;
    if items.len() < PARALLEL_FROM {
        return items.into_iter().map(f).collect();
    }
    let mut first = items;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| second.into_iter().map(&f).collect::<Vec<R>>());
        let mut out: Vec<R> = first.into_iter().map(&f).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}
