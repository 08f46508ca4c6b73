//! Certificate revocation lists for seals, signed by the issuing CA (or the root, for the
//! issuing CA itself). Each CRL carries a CRL number and an authority key identifier.

use chrono::{DateTime, Utc};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use crate::ca::{CaCert, CaError};
use crate::timestamp;

/// Most entries in one CRL issued here.
const MAX_ENTRIES: usize = 100_000;

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
}
