//! Licence verification into a [`Report`], online or offline: the same function serves the
//! hub (with its current status list) and an offline verifier (with a trust bundle).
//!
//! Checks, one report line each, in this order: `parse`, `signature`, `chain`, `key_usage`,
//! `extended_key_usage`, `revocation` (of the seal certificate), `issuer`, `licence_type`,
//! `fields`, `validity`, `status`. The seal certificate is judged at the licence's issuance
//! time; the licence's own validity and status at the verification time, with a bounded
//! clock-skew tolerance. A status list older than its maximum age makes the status
//! INDETERMINATE (`STATUS_STALE`), never VALID or INVALID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use super::compact::{parse_compact, CompactLicence};
use super::document::{Licence, LicenceClaims, LICENCE_TYP};
use super::jws::{
    decode_header, decode_payload, decode_signature, key_id, split, verify_es256, JwsError,
};
use super::signer::check_chain;
use super::status::{LicenceStatus, VerifiedStatusList};
use crate::cert_facts::CertFacts;
use crate::chain_failure::chain_failure;
use crate::report::{Check, CheckResult, ReasonCode, Report};
use crate::seal::sha256;
use crate::trust::TrustAnchors;
use crate::verify::{check_signer_revocation, RevocationPolicy, VerifyContext, VerifyPolicy};

const PARSE: &str = "parse";
const SIGNATURE: &str = "signature";
const CHAIN: &str = "chain";
const KEY_USAGE: &str = "key_usage";
const EXTENDED_KEY_USAGE: &str = "extended_key_usage";
const REVOCATION: &str = "revocation";
const ISSUER: &str = "issuer";
const LICENCE_TYPE: &str = "licence_type";
const FIELDS: &str = "fields";
const VALIDITY: &str = "validity";
const STATUS: &str = "status";
const AFTER_PARSE: [&str; 10] = [
    SIGNATURE,
    CHAIN,
    KEY_USAGE,
    EXTENDED_KEY_USAGE,
    REVOCATION,
    ISSUER,
    LICENCE_TYPE,
    FIELDS,
    VALIDITY,
    STATUS,
];
/// Most chain outcomes remembered by one verifier.
const CHAIN_CACHE_LIMIT: usize = 10_000;

/// What a licence type registry says about a licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeVerdict {
    /// The type is known, this department issues it and the subject fits its schema.
    Valid,
    /// No such type.
    Unknown,
    /// Another department issues this type.
    WrongIssuer {
        /// The department that issues it.
        expected: String,
    },
    /// The subject breaks the schema: every violation, as `pointer: message`.
    Invalid(Vec<String>),
}

/// The licence types and issuing departments a verifier knows (the hub's registry, or a
/// trust bundle's copy).
pub trait LicenceTypes: Sync {
    /// Judges `licence` against its type.
    fn judge(&self, licence_type: &str, issuer_department: &str, subject: &Value) -> TypeVerdict;
    /// The unified social credit code the registry binds to `department`, `None` for a
    /// department it does not know. A seal certificate names its department only by this code.
    fn credit_code(&self, department: &str) -> Option<&str>;
    /// The department the registry holds the seal certificate with this SHA-256 (of its DER)
    /// for, `None` for a certificate it does not hold. A certificate that chains to a trust
    /// anchor and names a department's credit code is still only its CA's word: a department
    /// trusted with a CA of its own could make one in another's name, or a fresh one for a
    /// seal the registry revoked. Only a certificate the registry holds for the licence's
    /// department seals its licences.
    fn seal_department(&self, cert_sha256: &[u8; 32]) -> Option<&str>;
    /// The number prefix of `licence_type` (`DL`), `None` for a type it does not know. A
    /// licence's number must be of its type's form: the status list binds an index to a
    /// number, and a licence of another type carrying that number must not take its status.
    fn number_prefix(&self, licence_type: &str) -> Option<&str>;
}

/// Verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicencePolicy {
    /// Clock-skew tolerance for validity periods and issuance times. Default 5 minutes.
    pub clock_skew: Duration,
    /// What to do without a CRL of the seal certificate's issuer. Default: INDETERMINATE.
    pub revocation: RevocationPolicy,
}

impl Default for LicencePolicy {
    fn default() -> Self {
        Self {
            clock_skew: Duration::minutes(5),
            revocation: RevocationPolicy::RequireCrl,
        }
    }
}

/// A licence found sealed by its issuer (its signature, its seal's chain and the seal's
/// binding to the issuing department passed), whatever else its report says (a status unknown or stale, a revocation check indeterminate, an expiry): what
/// the issuer's record of the licence can confirm or refute. Only [`LicenceVerifier::verify`]
/// makes one; its report has the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLicence {
    claims: LicenceClaims,
    key_id: String,
}

impl VerifiedLicence {
    /// The licence.
    pub fn licence(&self) -> &Licence {
        &self.claims.licence
    }
    /// The status list index.
    pub fn status_index(&self) -> u64 {
        self.claims.status.status_list.idx
    }
    /// The key id of the seal certificate that sealed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The claims it was sealed with, to compare with the registry's record of the licence.
    pub fn claims(&self) -> &LicenceClaims {
        &self.claims
    }
}

/// Where a compact (QR) licence's seal certificate chain is found by key id.
pub trait SealDirectory {
    /// The chain (DER, seal certificate first) of the seal with key id `kid`.
    fn chain(&self, kid: &str) -> Option<Vec<Vec<u8>>>;
}

/// A seal's side of a licence: its key id, certificate chain and certificate facts, decoded
/// once per distinct JWS header (a seal's header is the same on every licence it seals).
#[derive(Debug)]
struct SealSide {
    kid: String,
    chain: Vec<Vec<u8>>,
    facts: Result<CertFacts, String>,
    chain_key: [u8; 32],
    /// SHA-256 of the seal certificate (DER).
    leaf_sha256: [u8; 32],
}

impl SealSide {
    fn new(kid: Option<String>, chain: Vec<Vec<u8>>) -> Self {
        let facts = match chain.first() {
            Some(leaf) => CertFacts::from_der(leaf).map_err(|e| format!("seal certificate: {e}")),
            None => Err("no seal certificate (x5c)".to_owned()),
        };
        let kid = kid
            .or_else(|| chain.first().map(|leaf| key_id(leaf)))
            .unwrap_or_default();
        Self {
            kid,
            chain_key: chain_key(&chain),
            leaf_sha256: sha256(chain.first().map_or(&[][..], Vec::as_slice)),
            chain,
            facts,
        }
    }
}

/// A licence as received, before its checks.
struct Sealed<'a> {
    claims: LicenceClaims,
    seal: Arc<SealSide>,
    signed: Signed<'a>,
}

/// What the seal signed, in either form.
enum Signed<'a> {
    /// The JWS signing input and its `R || S` signature.
    Jws {
        input: &'a [u8],
        signature: Vec<u8>,
    },
    Cose(Box<CompactLicence>),
}

impl Signed<'_> {
    fn verify(&self, facts: &CertFacts) -> Result<(), ()> {
        let point = facts.p256_point.as_deref().ok_or(())?;
        match self {
            Signed::Jws { input, signature } => {
                verify_es256(point, input, signature).map_err(|_| ())
            }
            Signed::Cose(c) => c.verify_with_point(point).map_err(|_| ()),
        }
    }
}

/// The outcome of checking one seal certificate chain, valid for the times in `window`.
#[derive(Debug, Clone)]
struct ChainOutcome {
    /// The seal certificate chain validates at any time in `[from, until]`.
    from: i64,
    until: i64,
    /// The revocation check, meaningful until `revocation_until`.
    revocation: Check,
    revocation_until: i64,
}

/// Verifies licences against fixed trust anchors and CRLs, remembering which seal
/// certificate chains it has already validated (a city has a few hundred seals and millions
/// of licences: the chain is checked once per seal, the licence signature every time).
#[derive(Debug)]
pub struct LicenceVerifier {
    trust: TrustAnchors,
    crls: Vec<Vec<u8>>,
    revoked_seals: Vec<[u8; 32]>,
    policy: LicencePolicy,
    chains: Mutex<HashMap<[u8; 32], ChainOutcome>>,
    headers: Mutex<HashMap<String, Arc<SealSide>>>,
}

/// Inputs of one verification besides the licence.
#[derive(Clone, Copy)]
pub struct LicenceInputs<'a> {
    /// The status list to judge status with, if any (none: `STATUS_UNKNOWN`).
    pub status: Option<&'a VerifiedStatusList>,
    /// The licence types.
    pub types: &'a dyn LicenceTypes,
    /// The verification time.
    pub at: DateTime<Utc>,
}

impl std::fmt::Debug for LicenceInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenceInputs")
            .field("status", &self.status.map(VerifiedStatusList::issued_at))
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl LicenceVerifier {
    /// A verifier trusting `trust`, with the CRLs (DER) of the seal CAs.
    pub fn new(trust: TrustAnchors, crls: Vec<Vec<u8>>, policy: LicencePolicy) -> Self {
        Self {
            trust,
            crls,
            revoked_seals: Vec::new(),
            policy,
            chains: Mutex::new(HashMap::new()),
            headers: Mutex::new(HashMap::new()),
        }
    }

    /// The same verifier, also holding as revoked the seal certificates whose SHA-256 is in
    /// `revoked` (seals the registry revoked where no CRL can say so: see
    /// [`VerifyContext::revoked_seals`]).
    pub fn with_revoked_seals(mut self, revoked: Vec<[u8; 32]>) -> Self {
        self.revoked_seals = revoked;
        self
    }

    /// The trust anchors.
    pub fn trust(&self) -> &TrustAnchors {
        &self.trust
    }

    /// Verifies a compact licence JWS. Never panics on any input. The [`VerifiedLicence`]
    /// is returned only when its signature, chain and issuer checks passed (see its verdict in
    /// the report).
    pub fn verify(
        &self,
        jws: &str,
        inputs: LicenceInputs<'_>,
    ) -> (Report, Option<VerifiedLicence>) {
        let text = jws.trim();
        let parsed = split(text).and_then(|(h, p, s)| {
            let seal = self.seal_side(h)?;
            let payload = decode_payload(p)?;
            let claims: LicenceClaims = serde_json::from_slice(&payload)
                .map_err(|e| JwsError::Malformed(format!("licence payload: {e}")))?;
            claims.check_consistency().map_err(JwsError::Malformed)?;
            let signature = decode_signature(s)?;
            let input = &text.as_bytes()[..h.len() + 1 + p.len()];
            Ok(Sealed {
                claims,
                seal,
                signed: Signed::Jws { input, signature },
            })
        });
        match parsed {
            Ok(sealed) => self.judge(sealed, inputs),
            Err(e) => {
                let code = match e {
                    JwsError::Algorithm(_) => ReasonCode::AlgorithmUnsupported,
                    _ => ReasonCode::Malformed,
                };
                (parse_failure(inputs.at, code, e.to_string()), None)
            }
        }
    }

    /// The seal side of the JWS header `h` (still encoded), decoded once per distinct header.
    fn seal_side(&self, h: &str) -> Result<Arc<SealSide>, JwsError> {
        if let Some(side) = self.headers.lock().ok().and_then(|c| c.get(h).cloned()) {
            return Ok(side);
        }
        let (header, chain) = decode_header(h)?;
        if header.typ.as_deref() != Some(LICENCE_TYP) {
            return Err(JwsError::Malformed(format!(
                "typ is {:?}, expected {LICENCE_TYP}",
                header.typ
            )));
        }
        let side = Arc::new(SealSide::new(header.kid, chain));
        if let Ok(mut cache) = self.headers.lock() {
            if cache.len() >= CHAIN_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(h.to_owned(), Arc::clone(&side));
        }
        Ok(side)
    }

    /// Verifies a compact (QR) licence, finding its seal certificate chain by key id in
    /// `seals` (a trust bundle). Never panics on any input.
    pub fn verify_compact(
        &self,
        qr: &str,
        seals: &dyn SealDirectory,
        inputs: LicenceInputs<'_>,
    ) -> (Report, Option<VerifiedLicence>) {
        let compact = match parse_compact(qr) {
            Ok(c) => c,
            Err(e) => return (parse_failure(inputs.at, ReasonCode::Malformed, e), None),
        };
        let Some(chain) = seals.chain(&compact.kid) else {
            return (
                parse_failure(
                    inputs.at,
                    ReasonCode::SealKeyUnknown,
                    format!("key id {}", compact.kid),
                ),
                None,
            );
        };
        self.judge(
            Sealed {
                claims: compact.claims.clone(),
                seal: Arc::new(SealSide::new(Some(compact.kid.clone()), chain)),
                signed: Signed::Cose(Box::new(compact)),
            },
            inputs,
        )
    }

    /// Every check after parsing, for either form.
    fn judge(
        &self,
        sealed: Sealed<'_>,
        inputs: LicenceInputs<'_>,
    ) -> (Report, Option<VerifiedLicence>) {
        let seal = Arc::clone(&sealed.seal);
        let facts = match &seal.facts {
            Ok(f) => f,
            Err(e) => return (parse_failure(inputs.at, ReasonCode::Malformed, e), None),
        };
        let mut checks = Vec::with_capacity(1 + AFTER_PARSE.len());
        checks.push(Check::pass(PARSE));
        self.seal_checks(&sealed, facts, inputs.at, &mut checks);
        licence_checks(
            &sealed.claims,
            (facts, &seal.leaf_sha256),
            inputs,
            self.policy,
            &mut checks,
        );
        let mut report = Report::from_checks(inputs.at, checks);
        report.status_as_of = inputs.status.map(VerifiedStatusList::issued_at);
        let verified = passed_but_an_unknown_status(&report).then(|| VerifiedLicence {
            key_id: seal.kid.clone(),
            claims: sealed.claims,
        });
        (report, verified)
    }

    /// `signature`, `chain`, `key_usage`, `extended_key_usage`, `revocation`.
    fn seal_checks(
        &self,
        sealed: &Sealed<'_>,
        facts: &CertFacts,
        at: DateTime<Utc>,
        checks: &mut Vec<Check>,
    ) {
        checks.push(match sealed.signed.verify(facts) {
            Ok(()) => Check::pass(SIGNATURE),
            Err(()) => Check::fail(
                SIGNATURE,
                ReasonCode::SignatureInvalid,
                "ES256 does not verify with the seal certificate's key",
            ),
        });
        let issued_at = sealed.claims.licence.issued_at;
        let chain = self.chain_outcome(&sealed.seal, facts, issued_at, at);
        let chain_ok = chain.is_ok();
        checks.push(match &chain {
            Ok(_) => Check::pass(CHAIN),
            Err(e) => {
                let (leaf, rest) = sealed
                    .seal
                    .chain
                    .split_first()
                    .map_or((&[][..], &[][..]), |(l, r)| (l.as_slice(), r));
                let failure = chain_failure(e, leaf, rest);
                Check::fail(
                    CHAIN,
                    failure.code,
                    format!("at issuance {issued_at}: {}", failure.detail),
                )
            }
        });
        checks.push(if facts.has_seal_key_usage() {
            Check::pass(KEY_USAGE)
        } else {
            Check::fail(
                KEY_USAGE,
                ReasonCode::KeyUsageMissing,
                format!("{:?}", facts.key_usage),
            )
        });
        checks.push(if facts.has_document_signing_eku() {
            Check::pass(EXTENDED_KEY_USAGE)
        } else {
            Check::fail(
                EXTENDED_KEY_USAGE,
                ReasonCode::EkuMissing,
                format!("{:?}", facts.eku),
            )
        });
        checks.push(match chain {
            Ok(revocation) => revocation,
            Err(_) => Check::skipped(REVOCATION, ReasonCode::NotChecked, "chain did not verify"),
        });
        debug_assert!(chain_ok || checks.iter().any(|c| c.result == CheckResult::Fail));
    }

    /// The chain at issuance and the seal certificate's revocation, from the cache when this
    /// chain was validated before for a time window covering `issued_at`.
    fn chain_outcome(
        &self,
        seal: &SealSide,
        facts: &CertFacts,
        issued_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Check, webpki::Error> {
        let (key, chain) = (seal.chain_key, seal.chain.as_slice());
        let t = issued_at.timestamp();
        if let Ok(cache) = self.chains.lock() {
            if let Some(o) = cache.get(&key) {
                if (o.from..=o.until).contains(&t) && at.timestamp() <= o.revocation_until {
                    return Ok(o.revocation.clone());
                }
            }
        }
        check_chain(&self.trust, chain, issued_at)?;
        let ctx = VerifyContext {
            trust: &self.trust,
            crls: &self.crls,
            at,
            policy: VerifyPolicy {
                revocation: self.policy.revocation,
                max_future_skew: self.policy.clock_skew,
            },
            revoked_seals: &self.revoked_seals,
        };
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let (revocation, revocation_until) =
            check_signer_revocation(&ctx, &chain[0], facts, &intermediates, issued_at);
        let (from, until) = validity_window(chain);
        if let Ok(mut cache) = self.chains.lock() {
            if cache.len() >= CHAIN_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(
                key,
                ChainOutcome {
                    from,
                    until,
                    revocation: revocation.clone(),
                    revocation_until,
                },
            );
        }
        Ok(revocation)
    }
}

/// The checks that concern the licence itself.
fn licence_checks(
    claims: &LicenceClaims,
    (facts, leaf_sha256): (&CertFacts, &[u8; 32]),
    inputs: LicenceInputs<'_>,
    policy: LicencePolicy,
    checks: &mut Vec<Check>,
) {
    let l = &claims.licence;
    let verdict = inputs
        .types
        .judge(&l.licence_type, &l.issuer.department, &l.subject());

    let registered = inputs.types.credit_code(&l.issuer.department);
    checks.push(
        if facts.subject_org_id.as_deref() != Some(l.issuer.credit_code.as_str()) {
            Check::fail(
                ISSUER,
                ReasonCode::IssuerNotAuthorised,
                format!(
                    "sealed by {:?} ({:?}), the licence names {} ({})",
                    facts.subject_o, facts.subject_org_id, l.issuer.name_zh, l.issuer.credit_code
                ),
            )
        } else if registered != Some(l.issuer.credit_code.as_str()) {
            // The licence's department and credit code are both the sealer's word: only the
            // registry ties one to the other.
            Check::fail(
                ISSUER,
                ReasonCode::SealNotOfIssuer,
                match registered {
                    Some(code) => format!(
                        "the licence names department {} with credit code {}; the registry binds {} to {code}",
                        l.issuer.department, l.issuer.credit_code, l.issuer.department
                    ),
                    None => format!("the registry knows no department {}", l.issuer.department),
                },
            )
        } else if let TypeVerdict::WrongIssuer { expected } = &verdict {
            Check::fail(
                ISSUER,
                ReasonCode::IssuerNotAuthorised,
                format!(
                    "{} is issued by {expected}, not {}",
                    l.licence_type, l.issuer.department
                ),
            )
        } else if let Some(problem) = match inputs.types.seal_department(leaf_sha256) {
            Some(d) if d == l.issuer.department => None,
            Some(other) => Some((
                ReasonCode::SealNotOfIssuer,
                format!(
                    "the registry holds this seal certificate for {other}, not {}",
                    l.issuer.department
                ),
            )),
            None => Some((
                ReasonCode::SealNotRegistered,
                format!(
                    "the registry holds no seal certificate with SHA-256 {} (for {} or any department)",
                    crate::cert_facts::hex_lower(leaf_sha256),
                    l.issuer.department
                ),
            )),
        } {
            Check::fail(ISSUER, problem.0, problem.1)
        } else {
            Check::pass(ISSUER)
        },
    );
    let number_problem = match inputs.types.number_prefix(&l.licence_type) {
        _ if matches!(verdict, TypeVerdict::Unknown) => None,
        Some(prefix) if super::status::is_number_of_type(&l.number, prefix) => None,
        Some(prefix) => Some(format!(
            "number {} is not of {}'s form {prefix}-YYYY-NNNNNNNN",
            l.number, l.licence_type
        )),
        None => Some(format!(
            "the registry gives {} no number prefix",
            l.licence_type
        )),
    };
    match verdict {
        TypeVerdict::Unknown => {
            checks.push(Check::fail(
                LICENCE_TYPE,
                ReasonCode::LicenceTypeUnknown,
                format!("`{}`", l.licence_type),
            ));
            checks.push(Check::skipped(
                FIELDS,
                ReasonCode::NotChecked,
                "unknown type",
            ));
        }
        TypeVerdict::Invalid(violations) => {
            checks.push(type_check(number_problem));
            checks.push(Check::fail(
                FIELDS,
                ReasonCode::LicenceFieldsInvalid,
                violations.join("; "),
            ));
        }
        TypeVerdict::Valid | TypeVerdict::WrongIssuer { .. } => {
            checks.push(type_check(number_problem));
            checks.push(Check::pass(FIELDS));
        }
    }

    let at = inputs.at;
    let skew = policy.clock_skew;
    checks.push(if l.issued_at > at + skew {
        Check::fail(
            VALIDITY,
            ReasonCode::SigningTimeInFuture,
            format!("issued at {}, verified at {at}", l.issued_at),
        )
    } else if at + skew < l.valid_from {
        Check::fail(
            VALIDITY,
            ReasonCode::LicenceNotYetValid,
            format!("valid from {}, verified at {at}", l.valid_from),
        )
    } else if at - skew > l.valid_until {
        Check::fail(
            VALIDITY,
            ReasonCode::LicenceExpired,
            format!("valid until {}, verified at {at}", l.valid_until),
        )
    } else {
        Check::new(
            VALIDITY,
            CheckResult::Pass,
            ReasonCode::Ok,
            Some(&format!("valid {} to {}", l.valid_from, l.valid_until)),
        )
    });

    checks.push(status_check(
        &claims.status.status_list,
        &l.number,
        inputs.status,
        at,
    ));
}

/// The `licence_type` line of a known type: its number must be of the type's form.
fn type_check(number_problem: Option<String>) -> Check {
    match number_problem {
        None => Check::pass(LICENCE_TYPE),
        Some(problem) => Check::fail(LICENCE_TYPE, ReasonCode::LicenceNumberNotOfType, problem),
    }
}

/// True when the licence is sealed by its issuer (its signature, its seal's chain and the
/// seal's binding to the issuing department passed): what the issuer's record can confirm
/// or refute, whatever else the report says.
fn passed_but_an_unknown_status(report: &Report) -> bool {
    let passed = |name| {
        report
            .check(name)
            .is_some_and(|c| c.result == CheckResult::Pass)
    };
    passed(SIGNATURE) && passed(CHAIN) && passed(ISSUER)
}

/// True when `report`, made by [`LicenceVerifier`], found the licence authentic (its
/// signature and its seal's chain to a trust anchor passed) but its status unknown: what a
/// newer status list may answer. A forged document never qualifies.
pub fn authentic_with_status_unknown(report: &Report) -> bool {
    let passed = |name| {
        report
            .check(name)
            .is_some_and(|c| c.result == CheckResult::Pass)
    };
    passed(SIGNATURE)
        && passed(CHAIN)
        && report
            .check(STATUS)
            .is_some_and(|c| c.code == ReasonCode::StatusUnknown)
}

fn status_check(
    entry: &super::document::StatusListRef,
    number: &str,
    list: Option<&VerifiedStatusList>,
    at: DateTime<Utc>,
) -> Check {
    let Some(list) = list else {
        return Check::indeterminate(
            STATUS,
            ReasonCode::StatusUnknown,
            "no status list available",
        );
    };
    let as_of = format!("status as of {}", list.issued_at());
    if list.uri() != entry.uri {
        return Check::indeterminate(
            STATUS,
            ReasonCode::StatusUnknown,
            format!(
                "the licence names list {}, the list at hand is {}",
                entry.uri,
                list.uri()
            ),
        );
    }
    if list.issued_at() > at + Duration::minutes(5) {
        // A list "from the future" would never go stale.
        return Check::indeterminate(
            STATUS,
            ReasonCode::StatusUnknown,
            format!("{as_of} is later than the verification time {at}"),
        );
    }
    if list.is_stale_at(at) {
        return Check::indeterminate(
            STATUS,
            ReasonCode::StatusStale,
            format!(
                "{as_of} is older than its maximum age of {} s",
                list.ttl_seconds()
            ),
        );
    }
    match list.bound(entry.idx) {
        // Not bound to a licence yet: issued after the list was made.
        Some(None) => {
            return Check::indeterminate(
                STATUS,
                ReasonCode::StatusUnknown,
                format!("no licence at index {} yet ({as_of})", entry.idx),
            )
        }
        // The whole number: a serial is unique, but a licence of another type (or year)
        // ending in the same serial is not this index's licence.
        Some(Some(bound)) if !bound.is(number) => {
            return Check::fail(
                STATUS,
                ReasonCode::StatusIndexMismatch,
                format!(
                    "index {} belongs to licence {bound}, this licence is {number} ({as_of})",
                    entry.idx
                ),
            )
        }
        _ => {}
    }
    match list.get(entry.idx) {
        None => Check::indeterminate(
            STATUS,
            ReasonCode::StatusUnknown,
            format!("index {} is beyond the list ({as_of})", entry.idx),
        ),
        Some(LicenceStatus::Valid) => {
            Check::new(STATUS, CheckResult::Pass, ReasonCode::Ok, Some(&as_of))
        }
        Some(LicenceStatus::Revoked) => Check::fail(STATUS, ReasonCode::LicenceRevoked, as_of),
        Some(LicenceStatus::Suspended) => Check::fail(STATUS, ReasonCode::LicenceSuspended, as_of),
        Some(LicenceStatus::Superseded) => {
            Check::fail(STATUS, ReasonCode::LicenceSuperseded, as_of)
        }
    }
}

fn parse_failure(at: DateTime<Utc>, code: ReasonCode, detail: impl AsRef<str>) -> Report {
    let mut checks = vec![Check::fail(PARSE, code, detail)];
    checks.extend(
        AFTER_PARSE
            .iter()
            .map(|name| Check::skipped(name, ReasonCode::NotChecked, "parse failed")),
    );
    Report::from_checks(at, checks)
}

fn chain_key(chain: &[Vec<u8>]) -> [u8; 32] {
    let mut all = Vec::with_capacity(chain.iter().map(Vec::len).sum());
    for c in chain {
        all.extend_from_slice(&sha256(c));
    }
    sha256(&all)
}

/// The times at which every certificate of `chain` is within its validity.
fn validity_window(chain: &[Vec<u8>]) -> (i64, i64) {
    chain
        .iter()
        .filter_map(|c| CertFacts::from_der(c).ok())
        .fold((i64::MIN, i64::MAX), |(from, until), f| {
            (from.max(f.not_before), until.min(f.not_after))
        })
}
