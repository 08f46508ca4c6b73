//! Certificate revocation lists for seals, signed by the issuing CA (or the root, for the
//! issuing CA itself). Each CRL carries a CRL number and an authority key identifier.
//!
//! CRLs of other CAs (departments' own CAs under operator-added trust anchors) are read with
//! [`read_crl`] and checked against the anchors with [`check_crl_signed_by_anchor`].

use chrono::{DateTime, Utc};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use crate::ca::{CaCert, CaError};
use crate::cert_facts::hex_lower;
use crate::timestamp;
use crate::trust::TrustAnchors;

/// Most entries in one CRL issued here.
const MAX_ENTRIES: usize = 100_000;
/// Largest CRL accepted by [`read_crl`] (DER, or PEM text).
pub const MAX_CRL_LEN: usize = 4 * 1024 * 1024;

/// Errors of the `crl` module.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// The issuing CA cannot be used.
    #[error("CRL issuer: {0}")]
    Ca(#[from] CaError),
    /// An argument is not acceptable.
    #[error("invalid CRL {field}: {reason}")]
    Invalid {
        /// Which argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// rcgen refused to build the CRL.
    #[error("cannot build the CRL: {0}")]
    Build(rcgen::Error),
    /// The bytes are not a CRL this verifier can use (DER or PEM `X509 CRL`, v2, at most
    /// 4 MiB).
    #[error("not a usable CRL: {0}")]
    Malformed(String),
    /// No trust anchor has the CRL's issuer as its subject.
    #[error("the CRL's issuer `{issuer}` is not a configured trust anchor")]
    UnknownIssuer {
        /// The CRL's issuer name.
        issuer: String,
    },
    /// The CRL's signature does not verify with the key of the anchor named as its issuer,
    /// or that anchor may not sign CRLs.
    #[error("the CRL's signature does not verify with trust anchor `{issuer}`: {reason}")]
    BadSignature {
        /// The CRL's issuer name.
        issuer: String,
        /// Why.
        reason: String,
    },
}

/// What a checked CRL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// The issuer name, e.g. `C=CN, O=盘锦市公安局, CN=盘锦市公安局印章CA`.
    pub issuer: String,
    /// thisUpdate.
    pub this_update: DateTime<Utc>,
    /// nextUpdate, when present.
    pub next_update: Option<DateTime<Utc>>,
    /// cRLNumber in lowercase hex, when present.
    pub crl_number: Option<String>,
    /// How many certificates it lists.
    pub revoked: usize,
}

fn crl_malformed(reason: impl std::fmt::Display) -> CrlError {
    CrlError::Malformed(reason.to_string())
}

/// Reads a CRL given as DER or as PEM (`X509 CRL`) from untrusted bytes, at most 4 MiB, and
/// returns its DER once x509-parser and webpki (which the verifier uses) both read it.
pub fn read_crl(bytes: &[u8]) -> Result<Vec<u8>, CrlError> {
    if bytes.len() > MAX_CRL_LEN {
        return Err(crl_malformed(format!(
            "{} bytes is over the 4 MiB limit",
            bytes.len()
        )));
    }
    let der = if bytes.first() == Some(&0x30) {
        bytes.to_vec()
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| crl_malformed("neither DER (SEQUENCE) nor PEM text"))?;
        let mut blocks = pem::parse_many(text).map_err(|e| crl_malformed(format!("PEM: {e}")))?;
        if blocks.len() != 1 {
            return Err(crl_malformed(format!(
                "{} PEM blocks: give one CRL a file",
                blocks.len()
            )));
        }
        let block = blocks.remove(0);
        if block.tag() != "X509 CRL" {
            return Err(crl_malformed(format!(
                "PEM label {:?}, expected \"X509 CRL\"",
                block.tag()
            )));
        }
        block.into_contents()
    };
    parse_both(&der)?;
    Ok(der)
}

fn parse_both(
    der: &[u8],
) -> Result<x509_parser::revocation_list::CertificateRevocationList<'_>, CrlError> {
    use x509_parser::prelude::FromDer as _;
    let (rest, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| crl_malformed(format!("DER: {e}")))?;
    if !rest.is_empty() {
        return Err(crl_malformed("trailing bytes after the CRL"));
    }
    webpki::BorrowedCertRevocationList::from_der(der)
        .map_err(|e| crl_malformed(format!("{e:?} (a v2 CRL is needed)")))?;
    Ok(crl)
}

/// Whether the newest CRL of `crls` that one of `anchors` signed, among those of the issuer of
/// the certificate `cert_der`, lists it: that CRL's number, hex (or `?`). The newest decides,
/// as on a seal's path (by thisUpdate, then CRL number). How a seal record's maker, a CA
/// issued directly by an anchor that is not on the seal's own path (webpki cannot check a
/// CA as an end entity), is checked for revocation.
pub(crate) fn listed_by_anchor_crl(
    cert_der: &[u8],
    crls: &[Vec<u8>],
    anchors: &TrustAnchors,
) -> Option<String> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let newest = crls
        .iter()
        .take(32)
        .filter_map(|der| {
            let info = check_crl_signed_by_anchor(der, anchors).ok()?;
            let crl = parse_both(der).ok()?;
            (crl.issuer().as_raw() == cert.issuer().as_raw()).then_some((info, crl))
        })
        .max_by(|(a, _), (b, _)| {
            let number = |i: &CrlInfo| i.crl_number.as_deref().map(|n| (n.len(), n.to_owned()));
            a.this_update
                .cmp(&b.this_update)
                .then_with(|| number(a).cmp(&number(b)))
        })?;
    let (info, crl) = newest;
    let listed = crl
        .iter_revoked_certificates()
        .any(|r| r.raw_serial() == cert.raw_serial());
    listed.then(|| info.crl_number.unwrap_or_else(|| "?".to_owned()))
}

/// Checks that the DER CRL `der` is signed by one of `anchors`: the CRL's issuer is an
/// anchor's subject, that anchor may sign CRLs (no keyUsage, or keyUsage with cRLSign), and
/// the signature verifies with its key. Dates are not checked: the verifier judges freshness
/// at the time it verifies.
pub fn check_crl_signed_by_anchor(der: &[u8], anchors: &TrustAnchors) -> Result<CrlInfo, CrlError> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let crl = parse_both(der)?;
    let issuer = crl.issuer().to_string();
    let mut named = false;
    let mut last_problem = String::new();
    for anchor_der in anchors.certs() {
        let Ok((_, anchor)) = X509Certificate::from_der(anchor_der) else {
            continue;
        };
        if anchor.subject().as_raw() != crl.issuer().as_raw() {
            continue;
        }
        named = true;
        let may_sign_crls = match anchor.key_usage() {
            Ok(None) => true,
            Ok(Some(ku)) => ku.value.crl_sign(),
            Err(_) => false,
        };
        if !may_sign_crls {
            last_problem = "its keyUsage lacks cRLSign".to_owned();
            continue;
        }
        match crl.verify_signature(anchor.public_key()) {
            Ok(()) => {
                let time = |t: i64| {
                    timestamp::from_timestamp(t)
                        .map_err(|e| crl_malformed(format!("time {} out of range", e.0)))
                };
                return Ok(CrlInfo {
                    issuer,
                    this_update: time(crl.last_update().timestamp())?,
                    next_update: crl.next_update().map(|t| time(t.timestamp())).transpose()?,
                    crl_number: crl.crl_number().map(|n| hex_lower(&n.to_bytes_be())),
                    revoked: crl.iter_revoked_certificates().count(),
                });
            }
            Err(e) => last_problem = e.to_string(),
        }
    }
    if named {
        Err(CrlError::BadSignature {
            issuer,
            reason: last_problem,
        })
    } else {
        Err(CrlError::UnknownIssuer { issuer })
    }
}

/// Why a seal certificate was revoked (RFC 5280 CRLReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1): the seal's private key leaked.
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3): the department changed.
    AffiliationChanged,
    /// superseded (4): replaced by a new seal.
    Superseded,
    /// cessationOfOperation (5): the department or seal no longer exists.
    CessationOfOperation,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            Self::Unspecified => rcgen::RevocationReason::Unspecified,
            Self::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Self::CaCompromise => rcgen::RevocationReason::CaCompromise,
            Self::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Self::Superseded => rcgen::RevocationReason::Superseded,
            Self::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Self::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// One revoked seal certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSeal {
    /// Serial number of the certificate (DER INTEGER content octets, as
    /// [`crate::SealKey::serial`] gives them).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// Why.
    pub reason: RevocationReason,
}

/// Issues a CRL (DER) signed by `issuer`, listing `revoked`, valid from `this_update` to
/// `next_update`. The authority key identifier is the issuer's subject key identifier.
pub fn issue_crl(
    issuer: &CaCert,
    revoked: &[RevokedSeal],
    crl_number: u64,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
) -> Result<Vec<u8>, CrlError> {
    if revoked.len() > MAX_ENTRIES {
        return Err(CrlError::Invalid {
            field: "revoked",
            reason: format!("more than {MAX_ENTRIES} entries"),
        });
    }
    if next_update <= this_update {
        return Err(CrlError::Invalid {
            field: "next_update",
            reason: "must be after this_update".to_owned(),
        });
    }
    let time = |field: &'static str, t: DateTime<Utc>| {
        timestamp::to_offset(t).map_err(|e| CrlError::Invalid {
            field,
            reason: format!("time {} out of range", e.0),
        })
    };
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for entry in revoked {
        if entry.serial.is_empty() || entry.serial.len() > 21 {
            return Err(CrlError::Invalid {
                field: "serial",
                reason: format!("{} bytes (expected 1 to 21)", entry.serial.len()),
            });
        }
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&entry.serial),
            revocation_time: time("revoked_at", entry.revoked_at)?,
            reason_code: Some(entry.reason.to_rcgen()),
            invalidity_date: None,
        });
    }
    let issuer_key = issuer.issuer()?;
    let params = CertificateRevocationListParams {
        this_update: time("this_update", this_update)?,
        next_update: time("next_update", next_update)?,
        crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: issuer_key_id_method(issuer)?,
    };
    let crl = params.signed_by(&issuer_key).map_err(CrlError::Build)?;
    Ok(crl.der().to_vec())
}

/// The issuer's subject key identifier as a pre-specified method, so the CRL's AKI equals it.
fn issuer_key_id_method(issuer: &CaCert) -> Result<KeyIdMethod, CrlError> {
    use x509_parser::prelude::{FromDer as _, ParsedExtension, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(issuer.cert_der()).map_err(|e| CrlError::Invalid {
            field: "issuer",
            reason: e.to_string(),
        })?;
    let ski = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    Ok(ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified))
}

/// PEM armour (`X509 CRL`) for a DER CRL.
pub fn crl_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("X509 CRL", der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{init_city_ca, CaNames};
    use chrono::Duration;
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    use x509_parser::revocation_list::CertificateRevocationList;

    #[test]
    fn crl_lists_serials_with_reasons_and_aki() {
        let now = Utc::now();
        let pki = init_city_ca(&CaNames::for_city("盘锦市", "盘锦市人民政府"), now).unwrap();
        let revoked = [
            RevokedSeal {
                serial: vec![0x41, 0x02, 0x03],
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            },
            RevokedSeal {
                serial: vec![0x7f, 0xff],
                revoked_at: now,
                reason: RevocationReason::CessationOfOperation,
            },
        ];
        let der = issue_crl(&pki.issuing, &revoked, 7, now, now + Duration::days(7)).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let (_, issuing) = X509Certificate::from_der(pki.issuing.cert_der()).unwrap();
        assert_eq!(crl.issuer(), issuing.subject());
        crl.verify_signature(issuing.public_key()).unwrap();
        let serials: Vec<_> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        assert_eq!(serials, vec![vec![0x41, 0x02, 0x03], vec![0x7f, 0xff]]);
        let reason = crl
            .iter_revoked_certificates()
            .next()
            .unwrap()
            .reason_code()
            .unwrap()
            .1;
        assert_eq!(reason.0, 1);
        assert_eq!(crl.crl_number().unwrap().to_string(), "7");
        assert!(crl_to_pem(&der).starts_with("-----BEGIN X509 CRL-----"));
        assert!(issue_crl(&pki.issuing, &[], 1, now, now).is_err());
    }

    #[test]
    fn crls_are_read_as_der_or_pem_and_checked_against_the_anchors() {
        let now = Utc::now();
        let names = CaNames::for_city("盘锦市", "盘锦市人民政府");
        let pki = init_city_ca(&names, now).unwrap();
        let anchors = TrustAnchors::from_pem(&pki.root.cert_pem()).unwrap();
        let revoked = [RevokedSeal {
            serial: vec![0x41, 0x02],
            revoked_at: now,
            reason: RevocationReason::Superseded,
        }];
        let by_root = issue_crl(&pki.root, &revoked, 3, now, now + Duration::days(7)).unwrap();
        assert_eq!(read_crl(&by_root).unwrap(), by_root);
        assert_eq!(read_crl(crl_to_pem(&by_root).as_bytes()).unwrap(), by_root);
        // Two CRLs in one PEM file: refused, not the first taken and the second dropped.
        let two = format!("{}{}", crl_to_pem(&by_root), crl_to_pem(&by_root));
        let refused = read_crl(two.as_bytes()).unwrap_err();
        assert!(refused.to_string().contains("2 PEM blocks"), "{refused}");
        let info = check_crl_signed_by_anchor(&by_root, &anchors).unwrap();
        assert_eq!(info.revoked, 1);
        assert_eq!(info.crl_number.as_deref(), Some("03"));
        assert!(
            info.issuer.contains("盘锦市电子印章根证书"),
            "{}",
            info.issuer
        );
        assert_eq!(info.this_update.timestamp(), now.timestamp());

        // Signed by a CA that is not an anchor.
        let by_issuing =
            issue_crl(&pki.issuing, &revoked, 3, now, now + Duration::days(7)).unwrap();
        assert!(matches!(
            check_crl_signed_by_anchor(&by_issuing, &anchors),
            Err(CrlError::UnknownIssuer { .. })
        ));
        // Same issuer name, other key: the signature does not verify.
        let impostor = init_city_ca(&names, now).unwrap();
        let forged = issue_crl(&impostor.root, &revoked, 3, now, now + Duration::days(7)).unwrap();
        assert!(matches!(
            check_crl_signed_by_anchor(&forged, &anchors),
            Err(CrlError::BadSignature { .. })
        ));
        // Garbage, other PEM labels, trailing bytes, too large.
        let mut trailing = by_root.clone();
        trailing.push(0);
        for bad in [
            b"".to_vec(),
            b"hello".to_vec(),
            pki.root.cert_pem().into_bytes(),
            trailing,
            by_root[..by_root.len() - 1].to_vec(),
            vec![0x30; MAX_CRL_LEN + 1],
        ] {
            assert!(matches!(read_crl(&bad), Err(CrlError::Malformed(_))));
        }
    }
}
