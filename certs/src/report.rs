//! The verification report shared by seal signatures and (later) licences.
//!
//! A report lists every check made, each with a result, a stable reason code and a message
//! in Chinese and English. The overall verdict is INVALID if any check failed, else
//! INDETERMINATE if any check could not decide, else VALID. JSON shape:
//!
//! ```json
//! {"overall":"VALID","checked_at":"2026-01-01T00:00:00Z",
//!  "checks":[{"check":"document_hash","result":"pass","code":"OK",
//!             "message_zh":"…","message_en":"…"}]}
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The overall outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every check passed (or was skipped by policy).
    Valid,
    /// At least one check failed.
    Invalid,
    /// No check failed, but at least one could not decide (e.g. revocation status unknown).
    Indeterminate,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    /// The check passed.
    Pass,
    /// The check failed: the object is not valid.
    Fail,
    /// The check could not decide.
    Indeterminate,
    /// The check was not made (policy, or an earlier failure made it meaningless).
    Skipped,
}

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $zh:literal, $en:literal; )*) => {
        /// Stable reason codes. The string form ([`ReasonCode::as_str`]) never changes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ReasonCode {
            $( $(#[$doc])* #[serde(rename = $code)] $variant, )*
        }

        impl ReasonCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant),*];

            /// The stable string form, e.g. `DOCUMENT_HASH_MISMATCH`.
            pub fn as_str(self) -> &'static str {
                match self { $(ReasonCode::$variant => $code,)* }
            }

            /// The standard message in Chinese.
            pub fn message_zh(self) -> &'static str {
                match self { $(ReasonCode::$variant => $zh,)* }
            }

            /// The standard message in English.
            pub fn message_en(self) -> &'static str {
                match self { $(ReasonCode::$variant => $en,)* }
            }
        }
    };
}

reason_codes! {
    /// The check passed.
    Ok = "OK", "检查通过", "check passed";
    /// The input could not be parsed, exceeds a size limit, or is not canonical DER.
    Malformed = "MALFORMED", "数据格式错误，无法解析", "input is malformed and cannot be parsed";
    /// The document's SHA-256 differs from the one that was signed.
    DocumentHashMismatch = "DOCUMENT_HASH_MISMATCH", "文档摘要与签章数据不一致，文档可能已被篡改",
        "document hash does not match the signed hash; the document may have been altered";
    /// The signature does not verify with the signer certificate's public key.
    SignatureInvalid = "SIGNATURE_INVALID", "签名值验证失败", "signature does not verify with the signer's key";
    /// The signer certificate does not chain to a trusted root.
    ChainUntrusted = "CHAIN_UNTRUSTED", "证书链无法验证到受信任的根证书",
        "certificate chain does not lead to a trusted root";
    /// A certificate of the chain had expired at the signing time.
    CertExpired = "CERT_EXPIRED", "签章时证书已过期", "certificate had expired at the signing time";
    /// A certificate of the chain was not yet valid at the signing time.
    CertNotYetValid = "CERT_NOT_YET_VALID", "签章时证书尚未生效", "certificate was not yet valid at the signing time";
    /// The signer certificate lacks keyUsage digitalSignature and nonRepudiation.
    KeyUsageMissing = "KEY_USAGE_MISSING", "证书密钥用法缺少数字签名或不可否认",
        "certificate key usage lacks digitalSignature or nonRepudiation";
    /// The signer certificate lacks the id-kp-documentSigning extended key usage.
    EkuMissing = "EKU_MISSING", "证书扩展密钥用法缺少文档签名（1.3.6.1.5.5.7.3.36）",
        "certificate extended key usage lacks documentSigning (1.3.6.1.5.5.7.3.36)";
    /// A certificate that is not a CA acts as the issuer of another in the chain. (Before
    /// `CA_CERT_AS_SEAL` and `PATH_LENGTH_EXCEEDED` existed it also covered those two.)
    CaConstraintViolated = "CA_CONSTRAINT_VIOLATED", "证书链违反CA基本约束",
        "certificate chain violates CA basic constraints";
    /// The seal record is not signed by a trusted seal authority or does not match the signer.
    SealRecordInvalid = "SEAL_RECORD_INVALID", "印章数据无效（制章者签名或证书摘要不符）",
        "seal record is invalid (maker signature or certificate digest)";
    /// The seal's validity in the record does not cover the signing time.
    SealExpired = "SEAL_EXPIRED", "签章时印章不在有效期内", "seal was not valid at the signing time";
    /// The signing time is later than the verification time (beyond the allowed skew).
    SigningTimeInFuture = "SIGNING_TIME_IN_FUTURE", "签章时间晚于验证时间",
        "signing time is later than the verification time";
    /// The signer certificate (or an intermediate) is listed in its issuer's CRL.
    CertRevoked = "CERT_REVOKED", "证书已被吊销", "certificate has been revoked";
    /// No usable CRL from the signer's issuer was given, or the CRL could not be checked.
    RevocationUnknown = "REVOCATION_UNKNOWN", "无法确定证书吊销状态（缺少有效的证书吊销列表）",
        "revocation status unknown (no usable CRL from the issuer)";
    /// The issuer's CRL is past its nextUpdate at the verification time.
    CrlExpired = "CRL_EXPIRED", "证书吊销列表已过期", "the issuer's CRL has expired (past nextUpdate)";
    /// The check was not made because an earlier check failed.
    NotChecked = "NOT_CHECKED", "因前序检查失败未进行此项检查", "not checked because an earlier check failed";
    /// An algorithm other than ECDSA P-256 with SHA-256 (ES256): a JWS `alg`, the
    /// `signatureAlgorithm` of a seal signature, a seal certificate's key, or a certificate of
    /// the chain signed with an algorithm the verifier does not accept.
    AlgorithmUnsupported = "ALGORITHM_UNSUPPORTED", "不支持的签名算法（仅支持ES256）",
        "unsupported signature algorithm (only ES256)";
    /// The sealing certificate is not the issuer's, or the issuer does not issue this type.
    IssuerNotAuthorised = "ISSUER_NOT_AUTHORISED", "签发部门无权签发此类证照或印章不属于签发部门",
        "the issuer may not issue this licence type, or the seal is not the issuer's";
    /// The issuing department the licence names is bound in the registry to another credit
    /// code than its seal certificate's (or the registry does not know it): a seal of one
    /// department sealing a licence in another's name.
    SealNotOfIssuer = "SEAL_NOT_OF_ISSUER", "印章不属于证照所称的签发部门（与登记的统一社会信用代码不符）",
        "the seal is not the named issuing department's (its credit code differs from the registry's)";
    /// The seal certificate chains to a trust anchor but is not one the registry holds: made
    /// by a CA outside the registry's knowledge (a department's own CA minting a certificate
    /// in another's name, or a new one for a revoked seal).
    SealNotRegistered = "SEAL_NOT_REGISTERED", "印章证书未在印章登记中",
        "the seal certificate is not one the registry holds";
    /// The status list binds the licence's index to another licence number: a forgery that
    /// reused the index of a licence that is valid.
    StatusIndexMismatch = "STATUS_INDEX_MISMATCH", "证照状态列表中该位置属于其他证照编号，证照可能为伪造",
        "the status list entry at this index belongs to another licence number; the licence may be forged";
    /// Online only: the registry holds no licence of this number and version with these
    /// contents. Sealed with the issuer's own registered seal (its key misused or stolen), the
    /// document agrees with everything it can be checked against offline; the issuing
    /// department's record of what it issued is what it contradicts.
    LicenceNotOnRecord = "LICENCE_NOT_ON_RECORD", "登记中没有内容一致的此编号此版本证照，证照可能为伪造",
        "the registry holds no licence of this number and version with these contents; the licence may be forged";
    /// The licence type is not known to the verifier.
    LicenceTypeUnknown = "LICENCE_TYPE_UNKNOWN", "未知的证照类型", "unknown licence type";
    /// The licence number is not of its type's form (`{prefix}-{YYYY}-{serial:08}` with the
    /// type's prefix): a licence of one type carrying another type's number, to take the
    /// status of that number's index.
    LicenceNumberNotOfType = "LICENCE_NUMBER_NOT_OF_TYPE", "证照编号与该类证照的编号格式不符",
        "the licence number is not of its type's form";
    /// The licence's holder or fields break its type's schema.
    LicenceFieldsInvalid = "LICENCE_FIELDS_INVALID", "证照内容不符合该类证照的数据规范",
        "licence content does not conform to its type's schema";
    /// The licence's validity period has ended.
    LicenceExpired = "LICENCE_EXPIRED", "证照已过有效期", "licence has expired";
    /// The licence's validity period has not begun.
    LicenceNotYetValid = "LICENCE_NOT_YET_VALID", "证照尚未生效", "licence is not yet valid";
    /// The status list marks the licence revoked (also: replaced by a new document).
    LicenceRevoked = "LICENCE_REVOKED", "证照已被注销或吊销", "licence has been revoked";
    /// The status list marks the licence suspended.
    LicenceSuspended = "LICENCE_SUSPENDED", "证照已被暂停使用", "licence is suspended";
    /// The licence was renewed: a newer version supersedes this one.
    LicenceSuperseded = "LICENCE_SUPERSEDED", "证照已换发新版本，此版本已失效",
        "licence has been superseded by a newer version";
    /// The status list is older than its maximum age.
    StatusStale = "STATUS_STALE", "证照状态列表已过期，无法确定当前状态",
        "the status list is older than its maximum age; status unknown";
    /// No usable status list, or the licence's entry is not in it.
    StatusUnknown = "STATUS_UNKNOWN", "无法确定证照状态", "licence status unknown";
    /// The QR payload names a seal key the trust bundle does not hold.
    SealKeyUnknown = "SEAL_KEY_UNKNOWN", "信任包中没有该印章证书", "the trust bundle has no seal certificate with this key id";
    /// The signer certificate is a CA certificate (basicConstraints cA TRUE), not a seal.
    CaCertAsSeal = "CA_CERT_AS_SEAL", "CA证书不能用作印章证书", "a CA certificate cannot be used as a seal certificate";
    /// A CA of the chain issued more CA certificates below it than its pathLenConstraint allows.
    PathLengthExceeded = "PATH_LENGTH_EXCEEDED", "证书链超出CA的路径长度约束",
        "certificate chain exceeds a CA's path length constraint";
    /// The signer certificate is self-signed (its own issuer) and not a trust anchor.
    SelfSignedLeaf = "SELF_SIGNED_LEAF", "签章证书为自签名证书，不是由受信任的CA签发",
        "the signer certificate is self-signed, not issued by a trusted CA";
    /// A certificate of the chain has a critical extension the verifier does not know.
    UnknownCriticalExtension = "UNKNOWN_CRITICAL_EXTENSION", "证书包含无法识别的关键扩展",
        "a certificate has a critical extension the verifier does not recognise";
    /// The certificates carried do not link up: one was not issued by the next (a missing
    /// intermediate, an intermediate that did not issue the certificate below it, or a
    /// certificate signature that does not verify with its issuer's key).
    IssuerChainBroken = "ISSUER_CHAIN_BROKEN", "证书链断裂（缺少中间证书或颁发者不符）",
        "the issuer chain is broken (missing intermediate or wrong issuer)";
    /// The seal record names another certificate than the one whose key signed: the signature
    /// was made with another seal's (another department's) key.
    SealCertMismatch = "SEAL_CERT_MISMATCH", "印章数据与签章证书不符，签章使用了其他印章的密钥",
        "the seal record belongs to another certificate; the signature was made with another seal's key";
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Name of the check, e.g. `document_hash`.
    pub check: String,
    /// Outcome.
    pub result: CheckResult,
    /// Stable reason code.
    pub code: ReasonCode,
    /// Message in Chinese.
    pub message_zh: String,
    /// Message in English.
    pub message_en: String,
}

impl Check {
    /// A check line with the code's standard messages, plus `detail` when given.
    pub fn new(check: &str, result: CheckResult, code: ReasonCode, detail: Option<&str>) -> Self {
        let (message_zh, message_en) = match detail {
            Some(d) => (
                format!("{}：{d}", code.message_zh()),
                format!("{}: {d}", code.message_en()),
            ),
            None => (code.message_zh().to_owned(), code.message_en().to_owned()),
        };
        Self {
            check: check.to_owned(),
            result,
            code,
            message_zh,
            message_en,
        }
    }

    /// A passed check.
    pub fn pass(check: &str) -> Self {
        Self::new(check, CheckResult::Pass, ReasonCode::Ok, None)
    }

    /// A failed check.
    pub fn fail(check: &str, code: ReasonCode, detail: impl AsRef<str>) -> Self {
        Self::new(check, CheckResult::Fail, code, Some(detail.as_ref()))
    }

    /// An undecided check.
    pub fn indeterminate(check: &str, code: ReasonCode, detail: impl AsRef<str>) -> Self {
        Self::new(
            check,
            CheckResult::Indeterminate,
            code,
            Some(detail.as_ref()),
        )
    }

    /// A check not made.
    pub fn skipped(check: &str, code: ReasonCode, detail: impl AsRef<str>) -> Self {
        Self::new(check, CheckResult::Skipped, code, Some(detail.as_ref()))
    }
}

/// A verification report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The verdict, derived from the checks.
    pub overall: Verdict,
    /// The time the verification was made for.
    pub checked_at: DateTime<Utc>,
    /// Every check, in the order made.
    pub checks: Vec<Check>,
    /// For licences: the time the status information used was taken ("status as of").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_as_of: Option<DateTime<Utc>>,
}

impl Report {
    /// A report whose verdict is derived from `checks`.
    pub fn from_checks(checked_at: DateTime<Utc>, checks: Vec<Check>) -> Self {
        Self {
            overall: verdict_of(&checks),
            checked_at,
            checks,
            status_as_of: None,
        }
    }

    /// Adds a check made beside the verifier's (an online verifier's own), deriving the
    /// verdict again.
    pub fn add_check(&mut self, check: Check) {
        self.checks.push(check);
        self.overall = verdict_of(&self.checks);
    }

    /// True when the verdict is VALID.
    pub fn is_valid(&self) -> bool {
        self.overall == Verdict::Valid
    }

    /// The line of the check named `name`, if made.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.check == name)
    }

    /// The codes of all failed or indeterminate lines.
    pub fn problem_codes(&self) -> Vec<ReasonCode> {
        self.checks
            .iter()
            .filter(|c| matches!(c.result, CheckResult::Fail | CheckResult::Indeterminate))
            .map(|c| c.code)
            .collect()
    }
}

/// INVALID if any check failed, else INDETERMINATE if any is indeterminate, else VALID.
pub fn verdict_of(checks: &[Check]) -> Verdict {
    if checks.iter().any(|c| c.result == CheckResult::Fail) {
        Verdict::Invalid
    } else if checks
        .iter()
        .any(|c| c.result == CheckResult::Indeterminate)
    {
        Verdict::Indeterminate
    } else {
        Verdict::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_rules() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let pass = Check::pass("a");
        let ind = Check::indeterminate("b", ReasonCode::RevocationUnknown, "no CRL");
        let fail = Check::fail("c", ReasonCode::SignatureInvalid, "bad");
        let skip = Check::skipped("d", ReasonCode::NotChecked, "later");
        assert_eq!(
            Report::from_checks(t, vec![pass.clone(), skip.clone()]).overall,
            Verdict::Valid
        );
        assert_eq!(
            Report::from_checks(t, vec![pass.clone(), ind.clone()]).overall,
            Verdict::Indeterminate
        );
        assert_eq!(
            Report::from_checks(t, vec![ind, fail, pass]).overall,
            Verdict::Invalid
        );
        assert_eq!(Report::from_checks(t, vec![]).overall, Verdict::Valid);
    }

    #[test]
    fn json_shape() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let report = Report::from_checks(
            t,
            vec![Check::fail(
                "document_hash",
                ReasonCode::DocumentHashMismatch,
                "x",
            )],
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["overall"], "INVALID");
        assert_eq!(json["checked_at"], "1970-01-01T00:00:00Z");
        let check = &json["checks"][0];
        assert_eq!(check["check"], "document_hash");
        assert_eq!(check["result"], "fail");
        assert_eq!(check["code"], "DOCUMENT_HASH_MISMATCH");
        assert!(check["message_zh"].as_str().unwrap().contains("篡改"));
        assert_eq!(check.as_object().unwrap().len(), 5);
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            serde_json::to_value(Verdict::Indeterminate).unwrap(),
            "INDETERMINATE"
        );
    }

    #[test]
    fn codes_are_stable_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ReasonCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(!code.message_zh().is_empty() && !code.message_en().is_empty());
        }
        assert_eq!(ReasonCode::CertRevoked.as_str(), "CERT_REVOKED");
    }
}
