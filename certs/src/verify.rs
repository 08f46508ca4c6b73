//! Verification of detached seal signatures into a [`Report`].
//!
//! The verifier takes the document's SHA-256, the signature bytes (untrusted), and a
//! [`VerifyContext`]: trust anchors, CRLs, the time of verification and a [`VerifyPolicy`].
//! Certificates are validated at the **signing time** the signature claims (`timeInfo`);
//! revocation is judged with CRLs that must be fresh at the **verification time**. Any
//! revocation listed in a CRL makes the signature INVALID, whatever the revocation date,
//! because the signing time is the signer's claim and could be backdated.
//!
//! Checks, one report line each, in this order: `parse`, `document_hash`, `signature`,
//! `signing_time`, `chain`, `key_usage`, `extended_key_usage`, `seal_record`,
//! `seal_validity`, `revocation`; with [`verify_seal_signature_with_image`] also
//! `seal_image` (after `seal_record`): the seal image's SHA-256 and type against the record.

use chrono::{DateTime, Duration, Utc};
use rustls_pki_types::CertificateDer;
use webpki::{
    BorrowedCertRevocationList, CertRevocationList, ExpirationPolicy, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::cert_facts::{hex_lower, CertFacts};
use crate::chain_failure::chain_failure;
use crate::image::SealImage;
use crate::keys;
use crate::record::SealType;
use crate::report::{Check, CheckResult, ReasonCode, Report};
use crate::seal::sha256;
use crate::signature::{SealSignature, SignatureError};
use crate::trust::TrustAnchors;

/// Most CRLs considered in one verification (those after are not read: a caller that mixes
/// CRLs of different standing puts the ones it trusts more first, or refuses more).
pub const MAX_CRLS: usize = 32;
/// Largest CRL considered.
const MAX_CRL_LEN: usize = 4 * 1024 * 1024;

const PARSE: &str = "parse";
const DOCUMENT_HASH: &str = "document_hash";
const SIGNATURE: &str = "signature";
const SIGNING_TIME: &str = "signing_time";
const CHAIN: &str = "chain";
const KEY_USAGE: &str = "key_usage";
const EXTENDED_KEY_USAGE: &str = "extended_key_usage";
const SEAL_RECORD: &str = "seal_record";
const SEAL_VALIDITY: &str = "seal_validity";
const SEAL_IMAGE: &str = "seal_image";
const REVOCATION: &str = "revocation";
/// The checks after `parse`, in report order.
const AFTER_PARSE: [&str; 9] = [
    DOCUMENT_HASH,
    SIGNATURE,
    SIGNING_TIME,
    CHAIN,
    KEY_USAGE,
    EXTENDED_KEY_USAGE,
    SEAL_RECORD,
    SEAL_VALIDITY,
    REVOCATION,
];

/// What to do when the revocation status of the signer certificate cannot be learned
/// because no CRL from its issuer was given (or none could be used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationPolicy {
    /// The `revocation` check is INDETERMINATE (`REVOCATION_UNKNOWN`). The safe default.
    #[default]
    RequireCrl,
    /// The `revocation` check is skipped (`REVOCATION_UNKNOWN`) and does not affect the verdict.
    AllowUnknown,
}

/// Verification policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// Missing revocation information.
    pub revocation: RevocationPolicy,
    /// How far the claimed signing time may lie after the verification time (clock skew).
    pub max_future_skew: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        Self {
            revocation: RevocationPolicy::default(),
            max_future_skew: Duration::minutes(5),
        }
    }
}

/// Inputs of a verification besides the signature itself.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// The roots trusted for seal certificates and seal-record makers.
    pub trust: &'a TrustAnchors,
    /// CRLs (DER), at most 32 are considered; unreadable ones are ignored.
    pub crls: &'a [Vec<u8>],
    /// The time of verification (CRL freshness, signing time plausibility, `checked_at`).
    pub at: DateTime<Utc>,
    /// The policy.
    pub policy: VerifyPolicy,
    /// SHA-256 of seal certificates the registry that holds them revoked where no CRL it
    /// signs can say so (seals imported with a department's own CA): a signer listed here is
    /// revoked whatever the CRLs say.
    pub revoked_seals: &'a [[u8; 32]],
}

/// A seal signature that passed every check. Only [`verify_seal_signature`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSeal {
    seal_id: String,
    seal_name: String,
    seal_type: SealType,
    organization: Option<String>,
    credit_code: Option<String>,
    signer_serial_hex: String,
    signer_cert_der: Vec<u8>,
    signing_time: DateTime<Utc>,
    document_sha256: [u8; 32],
}

impl VerifiedSeal {
    /// The seal id of the seal record.
    pub fn seal_id(&self) -> &str {
        &self.seal_id
    }
    /// The seal name of the seal record.
    pub fn seal_name(&self) -> &str {
        &self.seal_name
    }
    /// The kind of seal.
    pub fn seal_type(&self) -> SealType {
        self.seal_type
    }
    /// The signer certificate's O (department name), if present.
    pub fn organization(&self) -> Option<&str> {
        self.organization.as_deref()
    }
    /// The signer certificate's organizationIdentifier (credit code), if present.
    pub fn credit_code(&self) -> Option<&str> {
        self.credit_code.as_deref()
    }
    /// The signer certificate's serial number, lowercase hex.
    pub fn signer_serial_hex(&self) -> &str {
        &self.signer_serial_hex
    }
    /// The signer certificate, DER.
    pub fn signer_cert_der(&self) -> &[u8] {
        &self.signer_cert_der
    }
    /// The signing time the signature claims.
    pub fn signing_time(&self) -> DateTime<Utc> {
        self.signing_time
    }
    /// The SHA-256 of the document that was signed.
    pub fn document_sha256(&self) -> [u8; 32] {
        self.document_sha256
    }
}

/// Verifies a DER seal signature over a document's SHA-256. Never panics on any input.
/// The [`VerifiedSeal`] is returned only when the report is VALID.
pub fn verify_seal_signature(
    document_sha256: [u8; 32],
    signature_der: &[u8],
    ctx: &VerifyContext<'_>,
) -> (Report, Option<VerifiedSeal>) {
    verify_seal_signature_with_image(document_sha256, signature_der, ctx, None)
}

/// Like [`verify_seal_signature`], and when the seal's image is at hand (`image`), a
/// `seal_image` check: the record's `pictureDigest` must be the image's SHA-256 and its
/// `pictureType`, when present, the image's type (`SEAL_RECORD_INVALID` otherwise).
pub fn verify_seal_signature_with_image(
    document_sha256: [u8; 32],
    signature_der: &[u8],
    ctx: &VerifyContext<'_>,
    image: Option<&SealImage>,
) -> (Report, Option<VerifiedSeal>) {
    let mut checks = Vec::with_capacity(1 + AFTER_PARSE.len());
    let parsed = SealSignature::from_der(signature_der)
        .map_err(|e| {
            let code = match e {
                SignatureError::UnsupportedAlgorithm(_) => ReasonCode::AlgorithmUnsupported,
                _ => ReasonCode::Malformed,
            };
            (code, e.to_string())
        })
        .and_then(|sig| {
            CertFacts::from_der(sig.signer_cert_der())
                .map(|facts| (sig, facts))
                .map_err(|e| (ReasonCode::Malformed, format!("signer certificate: {e}")))
        });
    let (sig, signer) = match parsed {
        Ok(parsed) => parsed,
        Err((code, detail)) => {
            checks.push(Check::fail(PARSE, code, detail));
            let image_check = image.map(|_| SEAL_IMAGE);
            checks.extend(
                AFTER_PARSE
                    .iter()
                    .copied()
                    .flat_map(|name| {
                        std::iter::once(name).chain(image_check.filter(|_| name == SEAL_RECORD))
                    })
                    .map(|name| Check::skipped(name, ReasonCode::NotChecked, "parse failed")),
            );
            return (Report::from_checks(ctx.at, checks), None);
        }
    };
    checks.push(Check::pass(PARSE));
    let signing_time = sig.signing_time();

    checks.push(if sig.data_hash() == document_sha256 {
        Check::pass(DOCUMENT_HASH)
    } else {
        Check::fail(
            DOCUMENT_HASH,
            ReasonCode::DocumentHashMismatch,
            format!(
                "signed {}, given {}",
                hex_lower(&sig.data_hash()),
                hex_lower(&document_sha256)
            ),
        )
    });

    checks.push(match signer.p256_point.as_deref() {
        None => Check::fail(
            SIGNATURE,
            ReasonCode::AlgorithmUnsupported,
            "the signer certificate's key is not ECDSA P-256",
        ),
        Some(point) => match keys::verify_p256(point, sig.tbs_der(), sig.signature_bytes()) {
            Ok(()) => Check::pass(SIGNATURE),
            Err(()) => Check::fail(
                SIGNATURE,
                ReasonCode::SignatureInvalid,
                "ECDSA P-256 SHA-256 over TBS_Sign does not verify",
            ),
        },
    });

    let latest_allowed = ctx.at + ctx.policy.max_future_skew;
    checks.push(if signing_time <= latest_allowed {
        Check::pass(SIGNING_TIME)
    } else {
        Check::fail(
            SIGNING_TIME,
            ReasonCode::SigningTimeInFuture,
            format!("signed at {signing_time}, verified at {}", ctx.at),
        )
    });

    let intermediates: Vec<CertificateDer<'_>> = sig
        .intermediates()
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let chain =
        ctx.trust
            .verify_document_signer(sig.signer_cert_der(), &intermediates, signing_time, None);
    let chain_ok = chain.is_ok();
    checks.push(match chain {
        Ok(()) => Check::pass(CHAIN),
        Err(e) => {
            let failure = chain_failure(&e, sig.signer_cert_der(), &intermediates);
            Check::fail(
                CHAIN,
                failure.code,
                format!("at signing time {signing_time}: {}", failure.detail),
            )
        }
    });

    checks.push(if signer.has_seal_key_usage() {
        Check::pass(KEY_USAGE)
    } else {
        Check::fail(
            KEY_USAGE,
            ReasonCode::KeyUsageMissing,
            format!("keyUsage of the signer certificate: {:?}", signer.key_usage),
        )
    });

    checks.push(if signer.has_document_signing_eku() {
        Check::pass(EXTENDED_KEY_USAGE)
    } else {
        Check::fail(
            EXTENDED_KEY_USAGE,
            ReasonCode::EkuMissing,
            format!(
                "extendedKeyUsage of the signer certificate: {:?}",
                signer.eku
            ),
        )
    });

    let record = sig.record();
    // The maker's signature first: a record nobody trusted made says nothing about whose
    // certificate it names. A trusted record naming another certificate means the signature
    // was made with another seal's key (the attacker's own seal, under a stolen record).
    let record_problem = if let Err(e) = record.verify_maker_signature() {
        Some((ReasonCode::SealRecordInvalid, e.to_string()))
    } else if let Err(e) = ctx.trust.check_maker(record.maker_cert_der(), signing_time) {
        Some((ReasonCode::SealRecordInvalid, e))
    } else if let Some(number) = maker_off_path_revoked(
        ctx,
        record.maker_cert_der(),
        sig.signer_cert_der(),
        &intermediates,
        signing_time,
    ) {
        // A revoked maker's records say nothing: whoever holds its key can make one binding
        // any certificate to any seal.
        Some((
            ReasonCode::CertRevoked,
            format!("the CA that made the seal record is revoked: listed in CRL #{number} of its issuer"),
        ))
    } else if record.info().cert_digest != sha256(sig.signer_cert_der()) {
        Some((
            ReasonCode::SealCertMismatch,
            format!(
                "the record of seal {} ({}) names certificate SHA-256 {}, the signer certificate \
                 (serial {}) is {}",
                record.info().seal_id,
                record.info().name,
                hex_lower(&record.info().cert_digest),
                signer.serial_hex(),
                hex_lower(&sha256(sig.signer_cert_der()))
            ),
        ))
    } else {
        None
    };
    checks.push(match record_problem {
        None => Check::pass(SEAL_RECORD),
        Some((code, detail)) => Check::fail(SEAL_RECORD, code, detail),
    });
    if let Some(image) = image {
        checks.push(check_image(record, image));
    }

    checks.push(if record.info().covers(signing_time) {
        Check::pass(SEAL_VALIDITY)
    } else {
        Check::fail(
            SEAL_VALIDITY,
            ReasonCode::SealExpired,
            format!(
                "seal valid {} to {}, signed at {signing_time}",
                record.info().valid_start,
                record.info().valid_end
            ),
        )
    });

    checks.push(if chain_ok {
        check_signer_revocation(
            ctx,
            sig.signer_cert_der(),
            &signer,
            &intermediates,
            signing_time,
        )
        .0
    } else {
        Check::skipped(REVOCATION, ReasonCode::NotChecked, "chain did not verify")
    });

    let report = Report::from_checks(ctx.at, checks);
    let verified = report.is_valid().then(|| VerifiedSeal {
        seal_id: record.info().seal_id.clone(),
        seal_name: record.info().name.clone(),
        seal_type: record.info().seal_type,
        organization: signer.subject_o.clone(),
        credit_code: signer.subject_org_id.clone(),
        signer_serial_hex: signer.serial_hex(),
        signer_cert_der: sig.signer_cert_der().to_vec(),
        signing_time,
        document_sha256,
    });
    (report, verified)
}

/// The `seal_image` check: the record names this image by digest (and type, when given).
fn check_image(record: &crate::record::SealRecord, image: &SealImage) -> Check {
    let recorded = record.info().picture_digest;
    if recorded != image.digest() {
        return Check::fail(
            SEAL_IMAGE,
            ReasonCode::SealRecordInvalid,
            format!(
                "pictureDigest {} is not the SHA-256 of the seal image ({})",
                hex_lower(&recorded),
                hex_lower(&image.digest())
            ),
        );
    }
    match record.picture_type() {
        Some(t) if t != image.image_type() => Check::fail(
            SEAL_IMAGE,
            ReasonCode::SealRecordInvalid,
            format!(
                "pictureType {} but the seal image is {}",
                t.record_code(),
                image.image_type().record_code()
            ),
        ),
        _ => Check::pass(SEAL_IMAGE),
    }
}

/// A CRL read both ways: x509-parser for its issuer and dates, webpki for the check.
struct ParsedCrl<'a> {
    issuer_raw: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    crl_number: Option<String>,
    webpki: CertRevocationList<'a>,
}

fn parse_crl(der: &[u8]) -> Option<ParsedCrl<'_>> {
    if der.len() > MAX_CRL_LEN {
        return None;
    }
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    let webpki = BorrowedCertRevocationList::from_der(der).ok()?;
    Some(ParsedCrl {
        issuer_raw: crl.issuer().as_raw().to_vec(),
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map(|t| t.timestamp()),
        crl_number: crl.crl_number().map(ToString::to_string),
        webpki: webpki.into(),
    })
}

/// A CA certificate on the path from a seal to its anchor, named for reports.
struct CaOnPath {
    issuer_raw: Vec<u8>,
    subject: String,
    issuer: String,
}

/// The CA certificates of a seal's verified path to an anchor (`intermediates`, as
/// [`crate::TrustAnchors::verified_intermediates`] gives them), from the seal's issuer up to (not
/// including) an anchor: anchors are trusted as configured, and no CRL speaks for them.
fn cas_on_path(
    signer_issuer: &[u8],
    intermediates: &[CertificateDer<'_>],
    trust: &TrustAnchors,
) -> Vec<CaOnPath> {
    use x509_parser::certificate::X509Certificate;
    let anchors: Vec<Vec<u8>> = trust
        .certs()
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok())
        .map(|(_, c)| c.subject().as_raw().to_vec())
        .collect();
    let carried: Vec<X509Certificate<'_>> = intermediates
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    let mut path = Vec::new();
    let mut wanted = signer_issuer.to_vec();
    while path.len() < carried.len() && !anchors.contains(&wanted) {
        let Some(ca) = carried.iter().find(|c| c.subject().as_raw() == wanted) else {
            break;
        };
        let issuer_raw = ca.issuer().as_raw().to_vec();
        let self_issued = issuer_raw == wanted;
        path.push(CaOnPath {
            issuer_raw: issuer_raw.clone(),
            subject: ca.subject().to_string(),
            issuer: ca.issuer().to_string(),
        });
        if self_issued {
            break;
        }
        wanted = issuer_raw;
    }
    path
}

/// The number of the CRL that revokes a seal record's maker, when the maker is not on the
/// seal's own verified path (an imported seal: its certificate from the department's CA, its
/// record from the city's). A maker on the path is the revocation check's, which reports it.
fn maker_off_path_revoked(
    ctx: &VerifyContext<'_>,
    maker: &[u8],
    signer_cert_der: &[u8],
    intermediates: &[CertificateDer<'_>],
    signing_time: DateTime<Utc>,
) -> Option<String> {
    let on_path = ctx
        .trust
        .verified_intermediates(signer_cert_der, intermediates, signing_time)
        .is_ok_and(|path| path.iter().any(|c| c.as_slice() == maker));
    if on_path {
        return None;
    }
    crate::crl::listed_by_anchor_crl(maker, ctx.crls, ctx.trust)
}

/// Orders CRLs of one issuer newest first: by thisUpdate, then (the same second) by CRL
/// number, so that neither an older CRL nor a lower-numbered one of the same moment, configured
/// first, decides before the newest.
fn newest_first(a: &ParsedCrl<'_>, b: &ParsedCrl<'_>) -> std::cmp::Ordering {
    // Decimal CRL numbers compare by length, then digit by digit.
    fn number<'c>(c: &'c ParsedCrl<'_>) -> Option<(usize, &'c str)> {
        c.crl_number.as_deref().map(|n| (n.len(), n))
    }
    b.this_update
        .cmp(&a.this_update)
        .then_with(|| number(b).cmp(&number(a)))
}

/// The revocation check of a signer certificate (and, where their issuers' CRLs are given,
/// of the intermediates), with the time until which its answer holds (the deciding CRL's
/// nextUpdate; `i64::MAX` when no CRL decided).
pub(crate) fn check_signer_revocation(
    ctx: &VerifyContext<'_>,
    signer_cert_der: &[u8],
    signer: &CertFacts,
    intermediates: &[CertificateDer<'_>],
    signing_time: DateTime<Utc>,
) -> (Check, i64) {
    if ctx.revoked_seals.contains(&sha256(signer_cert_der)) {
        return (
            Check::fail(
                REVOCATION,
                ReasonCode::CertRevoked,
                format!(
                    "serial {}: the registry revoked this seal (an imported seal: its own CA's CRL need not list it)",
                    signer.serial_hex()
                ),
            ),
            i64::MAX,
        );
    }
    let mut unreadable = 0usize;
    let mut crls = Vec::new();
    for der in ctx.crls.iter().take(MAX_CRLS) {
        match parse_crl(der) {
            Some(crl) => crls.push(crl),
            None => unreadable += 1,
        }
    }
    let (mut from_issuer, others): (Vec<_>, Vec<_>) = crls
        .into_iter()
        .partition(|c| c.issuer_raw == signer.issuer_raw);
    from_issuer.sort_by(newest_first);

    // Each CA certificate of the path below the anchor: checked against its own issuer's
    // CRL (RFC 5280 §6.3). Per issuer, the newest CRL that verifies decides: an older one of
    // the same issuer (or one that only names it, signed by another key) must not hide a
    // revocation, so each is tried alone, newest first, until one is usable. A CA whose
    // issuer gave no usable CRL, or whose deciding CRL is past its nextUpdate, leaves the
    // seal's status unknown, and the line names it.
    let mut until = i64::MAX;
    let mut unknown_cas = Vec::new();
    let mut stale_cas = Vec::new();
    // Only the CAs of the path the chain verifies on: a carried certificate that merely
    // bears the name of one (a decoy issued by a CA whose CRL is at hand) must not decide.
    let on_path: Vec<CertificateDer<'static>> = ctx
        .trust
        .verified_intermediates(signer_cert_der, intermediates, signing_time)
        .unwrap_or_default()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    for ca in cas_on_path(&signer.issuer_raw, &on_path, ctx.trust) {
        let mut group: Vec<&ParsedCrl<'_>> = others
            .iter()
            .filter(|c| c.issuer_raw == ca.issuer_raw)
            .collect();
        group.sort_by(|a, b| newest_first(a, b));
        let mut decided = None;
        for crl in group {
            let list = [&crl.webpki];
            let Ok(builder) = RevocationOptionsBuilder::new(&list) else {
                continue;
            };
            let options = builder
                .with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build();
            match ctx.trust.verify_document_signer(
                signer_cert_der,
                intermediates,
                signing_time,
                Some(options),
            ) {
                Err(webpki::Error::CertRevoked) => {
                    return (
                        Check::fail(
                            REVOCATION,
                            ReasonCode::CertRevoked,
                            format!(
                                "the CA {} of the chain is revoked (CRL #{} of {})",
                                ca.subject,
                                crl.crl_number.as_deref().unwrap_or("?"),
                                ca.issuer
                            ),
                        ),
                        i64::MAX,
                    );
                }
                // The newest usable CRL of this issuer does not list it.
                Ok(()) => {
                    decided = Some(crl);
                    break;
                }
                // Not usable (its signature does not verify, say): the next older one.
                Err(_) => {}
            }
        }
        match decided.and_then(|crl| crl.next_update.map(|next| (crl, next))) {
            None if decided.is_none() => unknown_cas.push(format!(
                "no usable CRL from {} for the CA {}",
                ca.issuer, ca.subject
            )),
            None => {}
            Some((crl, next)) if next < ctx.at.timestamp() => stale_cas.push(format!(
                "CRL #{} of {} (for the CA {}) passed nextUpdate ({next}) before {}",
                crl.crl_number.as_deref().unwrap_or("?"),
                ca.issuer,
                ca.subject,
                ctx.at
            )),
            Some((_, next)) => until = until.min(next),
        }
    }
    let (check, signer_until) = signer_check(
        ctx,
        signer_cert_der,
        signer,
        intermediates,
        signing_time,
        from_issuer,
        unreadable,
    );
    let check = match check.result {
        CheckResult::Fail => return (check, signer_until),
        _ if !stale_cas.is_empty() => {
            Check::indeterminate(REVOCATION, ReasonCode::CrlExpired, stale_cas.join("; "))
        }
        CheckResult::Pass if !unknown_cas.is_empty() => match ctx.policy.revocation {
            RevocationPolicy::RequireCrl => Check::indeterminate(
                REVOCATION,
                ReasonCode::RevocationUnknown,
                unknown_cas.join("; "),
            ),
            RevocationPolicy::AllowUnknown => Check::skipped(
                REVOCATION,
                ReasonCode::RevocationUnknown,
                unknown_cas.join("; "),
            ),
        },
        _ => check,
    };
    (check, until.min(signer_until))
}

/// The signer certificate's own revocation line: the newest CRL of its issuer that verifies
/// decides.
fn signer_check(
    ctx: &VerifyContext<'_>,
    signer_cert_der: &[u8],
    signer: &CertFacts,
    intermediates: &[CertificateDer<'_>],
    signing_time: DateTime<Utc>,
    from_issuer: Vec<ParsedCrl<'_>>,
    unreadable: usize,
) -> (Check, i64) {
    // The signer certificate: the newest CRL of its issuer that verifies decides.
    let mut problems = Vec::new();
    for crl in &from_issuer {
        let list = [&crl.webpki];
        let Ok(builder) = RevocationOptionsBuilder::new(&list) else {
            continue;
        };
        let options = builder
            .with_depth(RevocationCheckDepth::EndEntity)
            .with_status_policy(UnknownStatusPolicy::Deny)
            .with_expiration_policy(ExpirationPolicy::Ignore)
            .build();
        let result = ctx.trust.verify_document_signer(
            signer_cert_der,
            intermediates,
            signing_time,
            Some(options),
        );
        let number = crl.crl_number.as_deref().unwrap_or("?");
        match result {
            Ok(()) => {
                let at = ctx.at.timestamp();
                let until = crl.next_update.unwrap_or(i64::MAX);
                let check = match crl.next_update {
                    Some(next) if next < at => Check::indeterminate(
                        REVOCATION,
                        ReasonCode::CrlExpired,
                        format!(
                            "CRL #{number} of the issuer passed nextUpdate ({next}) before {}",
                            ctx.at
                        ),
                    ),
                    _ => Check::new(
                        REVOCATION,
                        CheckResult::Pass,
                        ReasonCode::Ok,
                        Some(&format!(
                            "serial {} not listed in CRL #{number}",
                            signer.serial_hex()
                        )),
                    ),
                };
                return (check, until);
            }
            Err(webpki::Error::CertRevoked) => {
                return (
                    Check::fail(
                        REVOCATION,
                        ReasonCode::CertRevoked,
                        format!("serial {} is listed in CRL #{number}", signer.serial_hex()),
                    ),
                    i64::MAX,
                );
            }
            Err(e) => problems.push(format!("CRL #{number}: {e}")),
        }
    }

    let mut detail = if from_issuer.is_empty() {
        "no CRL from the signer certificate's issuer".to_owned()
    } else {
        format!("no usable CRL from the issuer ({})", problems.join("; "))
    };
    if unreadable > 0 {
        detail.push_str(&format!("; {unreadable} CRL(s) could not be read"));
    }
    let check = match ctx.policy.revocation {
        RevocationPolicy::RequireCrl => {
            Check::indeterminate(REVOCATION, ReasonCode::RevocationUnknown, detail)
        }
        RevocationPolicy::AllowUnknown => {
            Check::skipped(REVOCATION, ReasonCode::RevocationUnknown, detail)
        }
    };
    (check, i64::MAX)
}
