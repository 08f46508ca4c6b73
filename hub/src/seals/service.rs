//! The PKI and seal operations shared by `bohai seal ...` and the HTTP API.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use bohai_certs::{
    import_seal_with_image, init_city_ca, issue_crl, issue_seal_with_image, new_issuing_ca,
    read_crl, sign_document, verify_seal_signature_with_image, CaCert, CaNames, CertificateInfo,
    EncryptedKey, ImageType, ImportRequest, MasterKey, Report, RevocationReason, RevokedSeal,
    SealImage, SealKey, SealRecord, SealRequest, SealSignature, SealType, SecretBytes,
    TrustAnchors, Validity, VerifyContext, VerifyPolicy,
};
use bohai_schemas::registry::Department;
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

use super::store::{self, CrlIssuer, StoredCa, StoredCrl, StoredSeal};
use super::{
    Coverage, CoverageState, DepartmentCoverage, ImageDetails, RecordDetails, SealDetails,
    SealState, SealSummary, SealsError,
};
use crate::config::PkiConfig;

const LABEL_ROOT: &str = "root";
const LABEL_ISSUING: &str = "issuing";
/// A seal ending within this is `expiring`.
const EXPIRING_WITHIN_DAYS: i64 = 30;

/// Reads the master key of `pki.master_key_file`.
pub fn load_master_key(path: &Path) -> Result<MasterKey, SealsError> {
    let problem = |reason: String| SealsError::MasterKey {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| {
        problem(format!(
            "{e} (`bohai seal init-ca` creates it; or set pki.master_key_file)"
        ))
    })?;
    MasterKey::from_file_bytes(&bytes).map_err(|e| problem(e.to_string()))
}

/// Reads the master key, creating the file (64 hex digits, mode 0600) first when it is
/// missing. Returns the key and whether it was created.
pub fn create_master_key(path: &Path) -> Result<(MasterKey, bool), SealsError> {
    if path.exists() {
        return load_master_key(path).map(|k| (k, false));
    }
    let problem = |reason: String| SealsError::MasterKey {
        path: path.to_owned(),
        reason,
    };
    let mut raw = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| problem("no randomness available".to_owned()))?;
    let mut hex = hex_lower(&raw);
    raw.fill(0);
    hex.push('\n');
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| problem(e.to_string()))?;
    }
    write_private_file(path, hex.as_bytes()).map_err(|e| problem(e.to_string()))?;
    let key = MasterKey::from_file_bytes(hex.as_bytes()).map_err(|e| problem(e.to_string()));
    // Overwrite the text copy of the key before it is freed.
    let mut bytes = hex.into_bytes();
    bytes.fill(0);
    key.map(|k| (k, true))
}

/// Writes a new file readable only by its owner; fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Lowercase hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (even length, 0-9a-fA-F).
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
        })
        .collect()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// The name of a seal type as stored and shown.
pub fn seal_type_name(t: SealType) -> &'static str {
    match t {
        SealType::Official => "official",
        SealType::Contract => "contract",
        SealType::Business => "business",
    }
}

/// Parses a CRL reason in snake_case (`key_compromise`, `superseded`, ...).
pub fn parse_reason(text: &str) -> Result<RevocationReason, SealsError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| SealsError::UnknownReason(text.to_owned()))
}

fn reason_name(reason: RevocationReason) -> String {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unspecified".to_owned(),
    }
}

/// The state of a seal at `at`.
pub fn seal_state(seal: &StoredSeal, at: DateTime<Utc>) -> SealState {
    if seal.revoked_at.is_some() {
        SealState::Revoked
    } else if at < seal.not_before {
        SealState::NotYetValid
    } else if at >= seal.not_after {
        SealState::Expired
    } else if seal.not_after - at <= Duration::days(EXPIRING_WITHIN_DAYS) {
        SealState::Expiring
    } else {
        SealState::Valid
    }
}

fn summary(seal: &StoredSeal, at: DateTime<Utc>) -> SealSummary {
    SealSummary {
        seal_id: seal.seal_id.clone(),
        department: seal.department.clone(),
        name: seal.name.clone(),
        seal_type: seal.seal_type.clone(),
        serial_hex: seal.serial_hex.clone(),
        not_before: seal.not_before,
        not_after: seal.not_after,
        created_at: seal.created_at,
        revoked_at: seal.revoked_at,
        revocation_reason: seal.revocation_reason.clone(),
        imported: seal.imported,
        state: seal_state(seal, at),
        image_media_type: seal.image_media_type.clone(),
    }
}

/// Coverage of `departments` (code, name_zh) by `seals` at `at`: each department gets the
/// best state of its seals (valid > expiring > expired > revoked > none).
pub fn coverage_of(
    departments: &[(String, String)],
    seals: &[StoredSeal],
    at: DateTime<Utc>,
) -> Coverage {
    fn rank(s: CoverageState) -> u8 {
        match s {
            CoverageState::Valid => 4,
            CoverageState::Expiring => 3,
            CoverageState::Expired => 2,
            CoverageState::Revoked => 1,
            CoverageState::None => 0,
        }
    }
    let mut out = Vec::with_capacity(departments.len());
    for (code, name_zh) in departments {
        let mut best = DepartmentCoverage {
            department: code.clone(),
            name_zh: name_zh.clone(),
            state: CoverageState::None,
            seal_id: None,
            not_after: None,
        };
        for seal in seals.iter().filter(|s| &s.department == code) {
            let state = match seal_state(seal, at) {
                SealState::Valid => CoverageState::Valid,
                SealState::Expiring => CoverageState::Expiring,
                SealState::Expired | SealState::NotYetValid => CoverageState::Expired,
                SealState::Revoked => CoverageState::Revoked,
            };
            let better = rank(state) > rank(best.state)
                || (rank(state) == rank(best.state)
                    && best.not_after.is_some_and(|n| seal.not_after > n));
            if better {
                best.state = state;
                best.seal_id = Some(seal.seal_id.clone());
                best.not_after = Some(seal.not_after);
            }
        }
        out.push(best);
    }
    let count = |s: CoverageState| out.iter().filter(|d| d.state == s).count();
    let (valid, expiring) = (count(CoverageState::Valid), count(CoverageState::Expiring));
    let total = out.len();
    let covered = u32::try_from(valid + expiring).unwrap_or(u32::MAX);
    let coverage_percent = if total == 0 {
        0.0
    } else {
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        (f64::from(covered) * 10000.0 / f64::from(total)).round() / 100.0
    };
    Coverage {
        at,
        departments_total: total,
        valid,
        expiring,
        expired: count(CoverageState::Expired),
        revoked: count(CoverageState::Revoked),
        none: count(CoverageState::None),
        coverage_percent,
        departments: out,
    }
}

/// What `init-ca` made.
#[derive(Debug, Clone)]
pub struct CaMade {
    /// Root certificate, PEM.
    pub root_pem: String,
    /// Issuing CA certificate, PEM.
    pub issuing_pem: String,
    /// The first CRL's number.
    pub crl_number: i64,
}

/// What `revoke-ca` did.
#[derive(Debug, Clone)]
pub struct IssuingCaRevoked {
    /// The revoked issuing CA's serial, hex.
    pub revoked_serial: String,
    /// The new issuing CA certificate, PEM.
    pub issuing_pem: String,
    /// How many seals were revoked with the old CA.
    pub seals_revoked: u64,
    /// How many imported seals' records the new CA made again.
    pub records_remade: usize,
    /// The number of the root's CRL that lists the old CA.
    pub root_crl_number: i64,
    /// The number of the new CA's first CRL.
    pub crl_number: i64,
}

/// The PKI and seal operations over one database, one configuration and the master key.
#[derive(Debug)]
pub struct SealsService<'a> {
    db: &'a PgPool,
    config: &'a PkiConfig,
    master: Option<MasterKey>,
}

impl<'a> SealsService<'a> {
    /// Operations that need no private key (list, verify, coverage, CRL download).
    pub fn public(db: &'a PgPool, config: &'a PkiConfig) -> Self {
        Self {
            db,
            config,
            master: None,
        }
    }

    /// Operations with keys, with the master key of `pki.master_key_file`.
    pub fn with_master_key(db: &'a PgPool, config: &'a PkiConfig) -> Result<Self, SealsError> {
        let master = load_master_key(&config.master_key_file)?;
        Ok(Self {
            db,
            config,
            master: Some(master),
        })
    }

    /// With a given master key.
    pub fn with_key(db: &'a PgPool, config: &'a PkiConfig, master: MasterKey) -> Self {
        Self {
            db,
            config,
            master: Some(master),
        }
    }

    fn master(&self) -> Result<&MasterKey, SealsError> {
        self.master.as_ref().ok_or_else(|| SealsError::MasterKey {
            path: self.config.master_key_file.clone(),
            reason: "not loaded".to_owned(),
        })
    }

    async fn stored_ca(&self) -> Result<StoredCa, SealsError> {
        store::load_ca(self.db).await?.ok_or(SealsError::NoCa)
    }

    /// Makes the city root and issuing CA and the first (empty) CRL.
    pub async fn init_ca(&self, force: bool, now: DateTime<Utc>) -> Result<CaMade, SealsError> {
        if !force && store::load_ca(self.db).await?.is_some() {
            return Err(SealsError::CaExists);
        }
        let master = self.master()?;
        let names = CaNames::for_city(&self.config.city_zh, &self.config.government_zh);
        let pki = init_city_ca(&names, now)?;
        let stored = StoredCa {
            root_cert_der: pki.root.cert_der().to_vec(),
            root_key_encrypted: Some(
                EncryptedKey::encrypt(master, LABEL_ROOT, pki.root.key())?.to_string(),
            ),
            issuing_cert_der: pki.issuing.cert_der().to_vec(),
            issuing_key_encrypted: EncryptedKey::encrypt(master, LABEL_ISSUING, pki.issuing.key())?
                .to_string(),
        };
        let mut tx = self.db.begin().await?;
        store::replace_ca(&mut tx, &stored).await?;
        tx.commit().await?;
        let crl = self.reissue_crl(now).await?;
        self.reissue_root_crl(now, None).await?;
        Ok(CaMade {
            root_pem: pki.root.cert_pem(),
            issuing_pem: pki.issuing.cert_pem(),
            crl_number: crl.number,
        })
    }

    /// The root key as PKCS#8 PEM text (for offline keeping), in a zeroized, redacted
    /// buffer; with `remove`, deleted from the hub.
    pub async fn export_root_key(&self, remove: bool) -> Result<SecretBytes, SealsError> {
        let ca = self.stored_ca().await?;
        let encrypted = ca.root_key_encrypted.ok_or(SealsError::RootKeyAbsent)?;
        let key = parse_encrypted(&encrypted, "root key")?.decrypt(self.master()?, LABEL_ROOT)?;
        // Proves the key belongs to the root before anything is removed.
        let root = CaCert::from_parts(ca.root_cert_der, key)?;
        let pem = SecretBytes::new(root.key().to_pkcs8_pem().as_bytes().to_vec());
        if remove {
            store::remove_root_key(self.db).await?;
        }
        Ok(pem)
    }

    /// The root certificate, PEM.
    pub async fn root_pem(&self) -> Result<String, SealsError> {
        let ca = self.stored_ca().await?;
        Ok(pem_block("CERTIFICATE", &ca.root_cert_der))
    }

    /// The city root with its key: the one the hub keeps, or `offline_key_pem` (PKCS#8 PEM,
    /// kept off the hub) when given.
    async fn root(&self, offline_key_pem: Option<&str>) -> Result<CaCert, SealsError> {
        let ca = self.stored_ca().await?;
        match offline_key_pem {
            Some(pem) => Ok(CaCert::from_pem(
                &pem_block("CERTIFICATE", &ca.root_cert_der),
                pem,
            )?),
            None => {
                let encrypted = ca.root_key_encrypted.ok_or(SealsError::RootKeyAbsent)?;
                let key =
                    parse_encrypted(&encrypted, "root key")?.decrypt(self.master()?, LABEL_ROOT)?;
                Ok(CaCert::from_parts(ca.root_cert_der, key)?)
            }
        }
    }

    async fn issuing(&self) -> Result<CaCert, SealsError> {
        self.issuing_of(self.stored_ca().await?)
    }

    /// The issuing CA of `ca`, with its key decrypted.
    fn issuing_of(&self, ca: StoredCa) -> Result<CaCert, SealsError> {
        let key = parse_encrypted(&ca.issuing_key_encrypted, "issuing key")?
            .decrypt(self.master()?, LABEL_ISSUING)?;
        Ok(CaCert::from_parts(ca.issuing_cert_der, key)?)
    }

    /// The city root alone: what the status authority's signatures (trust bundles, status
    /// lists, audit checkpoints) must chain to ([`Self::authority_seal`]).
    pub async fn city_root(&self) -> Result<TrustAnchors, SealsError> {
        let mut anchors = TrustAnchors::new();
        add_city_root(&mut anchors, self.stored_ca().await?)?;
        Ok(anchors)
    }

    /// The trust anchors: the city root (when made) and every `pki.trust_anchors` file.
    pub async fn trust_anchors(&self) -> Result<TrustAnchors, SealsError> {
        let mut anchors = TrustAnchors::new();
        if let Some(ca) = store::load_ca(self.db).await? {
            add_city_root(&mut anchors, ca)?;
        }
        for path in &self.config.trust_anchors {
            let problem = |reason: String| SealsError::TrustAnchor {
                what: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
            anchors.add_pem(&text).map_err(|e| problem(e.to_string()))?;
        }
        Ok(anchors)
    }

    /// Issues a seal for `dept`, valid `days` from `now`, showing `image` (default: the
    /// round official-seal SVG drawn from the department's name and the seal type).
    pub async fn issue(
        &self,
        dept: &Department,
        name: Option<&str>,
        seal_type: SealType,
        days: u32,
        image: Option<SealImage>,
        now: DateTime<Utc>,
    ) -> Result<SealSummary, SealsError> {
        let issuing = self.issuing().await?;
        let image = image.unwrap_or_else(|| SealImage::official_svg(&dept.name_zh, seal_type));
        let name = name.map_or_else(
            || default_seal_name(&dept.name_zh, seal_type),
            str::to_owned,
        );
        let request = SealRequest {
            dept_code: seal_id_prefix(&dept.code),
            dept_name_zh: dept.name_zh.clone(),
            credit_code: dept.credit_code.clone(),
            seal_name: name.clone(),
            seal_type,
            validity: Validity {
                not_before: now,
                not_after: now + Duration::days(i64::from(days)),
            },
            image_digest: image.digest(),
            crl_distribution_url: self.config.crl_url.clone(),
        };
        let issued = issue_seal_with_image(&issuing, &request, &image, now)?;
        self.store_seal(&dept.code, issued, &issuing, seal_type, &image, false, now)
            .await
    }

    /// Imports a department's own seal certificate and key (PEM), with optional
    /// intermediates, showing `image` (default: the round official-seal SVG).
    #[allow(clippy::too_many_arguments)] // each is one thing the operator gives
    pub async fn import(
        &self,
        dept: &Department,
        cert_pem: String,
        key_pem: String,
        chain_pem: Vec<String>,
        seal_type: SealType,
        image: Option<SealImage>,
        now: DateTime<Utc>,
    ) -> Result<SealSummary, SealsError> {
        let maker = self.issuing().await?;
        let trust = self.trust_anchors().await?;
        let image = image.unwrap_or_else(|| SealImage::official_svg(&dept.name_zh, seal_type));
        let request = ImportRequest {
            cert_pem,
            key_pem,
            chain_pem,
            dept_code: seal_id_prefix(&dept.code),
            seal_type,
            image_digest: image.digest(),
        };
        let issued = import_seal_with_image(&maker, &request, &trust, &image, now)?;
        // A seal certificate names its department by credit code only: one naming another's,
        // or none, is not this department's seal, whatever CA made it.
        let named =
            bohai_certs::CertificateInfo::from_der(&issued.cert_der)?.organization_identifier;
        match named {
            Some(code) if code == dept.credit_code => {}
            Some(code) => {
                return Err(SealsError::NotTheDepartments {
                    department: dept.code.clone(),
                    credit_code: dept.credit_code.clone(),
                    named: code,
                })
            }
            None => {
                return Err(SealsError::NoCreditCode {
                    department: dept.code.clone(),
                    credit_code: dept.credit_code.clone(),
                })
            }
        }
        self.store_seal(&dept.code, issued, &maker, seal_type, &image, true, now)
            .await
    }

    /// Stores a seal `maker` (the issuing CA) made: refused when the city's issuing CA was
    /// replaced meanwhile (`seal revoke-ca`), which would leave a live seal under a revoked CA.
    #[allow(clippy::too_many_arguments)] // each is one part of the seal made
    async fn store_seal(
        &self,
        dept: &str,
        issued: bohai_certs::IssuedSeal,
        maker: &CaCert,
        seal_type: SealType,
        image: &SealImage,
        imported: bool,
        now: DateTime<Utc>,
    ) -> Result<SealSummary, SealsError> {
        let seal_id = issued.seal_id().to_owned();
        let key_encrypted = EncryptedKey::encrypt(self.master()?, &seal_id, &issued.key)?;
        let info = issued.record.info().clone();
        let record_der = issued.record.to_der()?;
        // Checks that the key, certificate and record belong together; gives the serial.
        let checked = issued.clone().into_seal_key()?;
        let stored = StoredSeal {
            seal_id,
            department: dept.to_owned(),
            name: info.name.clone(),
            seal_type: seal_type_name(seal_type).to_owned(),
            serial_hex: hex_lower(checked.serial()),
            cert_der: issued.cert_der,
            chain_der: issued.chain,
            key_encrypted: key_encrypted.to_string(),
            record_der,
            image_digest: image.digest().to_vec(),
            not_before: info.valid_start,
            not_after: info.valid_end,
            created_at: now,
            revoked_at: None,
            revocation_reason: None,
            imported,
            image_media_type: Some(image.image_type().media_type().to_owned()),
        };
        if !store::insert_seal_made_by(self.db, &stored, Some(image.bytes()), maker.cert_der())
            .await?
        {
            return Err(SealsError::CaReplaced);
        }
        Ok(summary(&stored, now))
    }

    /// Every seal, without keys.
    pub async fn list(&self, at: DateTime<Utc>) -> Result<Vec<SealSummary>, SealsError> {
        Ok(store::list_seals(self.db)
            .await?
            .iter()
            .map(|s| summary(s, at))
            .collect())
    }

    async fn stored(&self, seal_id: &str) -> Result<StoredSeal, SealsError> {
        store::seal(self.db, seal_id)
            .await?
            .ok_or_else(|| SealsError::UnknownSeal(seal_id.to_owned()))
    }

    /// One seal, without its key.
    pub async fn get(&self, seal_id: &str, at: DateTime<Utc>) -> Result<SealSummary, SealsError> {
        Ok(summary(&self.stored(seal_id).await?, at))
    }

    /// One seal in full (certificate facts, chain, record, image), without its key.
    pub async fn show(&self, seal_id: &str, at: DateTime<Utc>) -> Result<SealDetails, SealsError> {
        let seal = self.stored(seal_id).await?;
        let certificate = CertificateInfo::from_der(&seal.cert_der)?;
        let chain = seal
            .chain_der
            .iter()
            .map(|der| CertificateInfo::from_der(der))
            .collect::<Result<Vec<_>, _>>()?;
        let record = SealRecord::from_der(&seal.record_der)?;
        let info = record.info();
        let maker = CertificateInfo::from_der(record.maker_cert_der())
            .map_or_else(|e| format!("unreadable: {e}"), |m| m.subject);
        let image = store::seal_image(self.db, seal_id)
            .await?
            .map(|img| ImageDetails {
                size: img.bytes.len(),
                sha256: hex_lower(&sha256(&img.bytes)),
                matches_record: sha256(&img.bytes) == info.picture_digest,
                media_type: img.media_type,
                url: format!("/api/v1/seals/{seal_id}/image"),
            });
        Ok(SealDetails {
            record: RecordDetails {
                seal_id: info.seal_id.clone(),
                seal_type: seal_type_name(info.seal_type).to_owned(),
                name: info.name.clone(),
                cert_digest: hex_lower(&info.cert_digest),
                picture_digest: hex_lower(&info.picture_digest),
                picture_type: record.picture_type().map(|t| t.record_code().to_owned()),
                create_date: info.create_date,
                valid_start: info.valid_start,
                valid_end: info.valid_end,
                maker,
                maker_signature_valid: record.verify_maker_signature().is_ok(),
            },
            seal: summary(&seal, at),
            certificate,
            chain,
            image,
        })
    }

    /// The seal certificate and its intermediates, PEM, leaf first.
    pub async fn certificate_pem(&self, seal_id: &str) -> Result<String, SealsError> {
        let seal = self.stored(seal_id).await?;
        Ok(std::iter::once(&seal.cert_der)
            .chain(&seal.chain_der)
            .map(|der| pem_block("CERTIFICATE", der))
            .collect())
    }

    /// The seal image.
    pub async fn image(&self, seal_id: &str) -> Result<SealImage, SealsError> {
        let stored = match store::seal_image(self.db, seal_id).await? {
            Some(image) => image,
            None => {
                self.stored(seal_id).await?;
                return Err(SealsError::NoImage(seal_id.to_owned()));
            }
        };
        let image = SealImage::from_bytes(stored.bytes).map_err(|e| SealsError::Stored {
            what: format!("image of seal {seal_id}"),
            reason: e.to_string(),
        })?;
        if ImageType::from_media_type(&stored.media_type) != Some(image.image_type()) {
            return Err(SealsError::Stored {
                what: format!("image of seal {seal_id}"),
                reason: format!("stored as {} but is not", stored.media_type),
            });
        }
        Ok(image)
    }

    /// The department's newest seal valid at `at`.
    pub async fn newest_valid_seal(
        &self,
        dept: &str,
        at: DateTime<Utc>,
    ) -> Result<String, SealsError> {
        store::newest_valid_seal(self.db, dept, at)
            .await?
            .ok_or_else(|| SealsError::NoValidSeal(dept.to_owned()))
    }

    /// The status authority's seal to sign with at `at`: its newest valid seal *of the city
    /// CA* (its current issuing CA: not one made before `seal init-ca --force` or
    /// `seal revoke-ca` replaced it), with its certificate. Trust bundles, status lists and
    /// audit checkpoints are checked against the city root alone ([`Self::city_root`]), for a
    /// seal a department's own CA made (imported, or minted in the authority's name) is
    /// revoked only in the registry's word, or not at all, and an offline verifier cannot ask
    /// the registry.
    pub async fn authority_seal(
        &self,
        authority: &str,
        at: DateTime<Utc>,
    ) -> Result<AuthoritySeal, SealsError> {
        match store::newest_city_seal(self.db, authority, at).await? {
            Some((seal_id, cert_der)) => Ok(AuthoritySeal { seal_id, cert_der }),
            None => {
                self.stored_ca().await?;
                Err(SealsError::NoValidSeal(authority.to_owned()))
            }
        }
    }

    /// Signs a document's SHA-256 with the seal at `now`. The seal must be valid at `now`.
    pub async fn sign(
        &self,
        seal_id: &str,
        document_sha256: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<SealSignature, SealsError> {
        let seal_key = self.signing_key(seal_id, now).await?;
        Ok(sign_document(&seal_key, document_sha256, now)?)
    }

    /// The seal's key, decrypted and checked against its certificate and record, for signing
    /// at `now`. The seal must be valid at `now`.
    pub async fn signing_key(
        &self,
        seal_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SealKey, SealsError> {
        let stored = self.stored(seal_id).await?;
        match seal_state(&stored, now) {
            SealState::Valid | SealState::Expiring => {}
            state => {
                return Err(SealsError::NotUsable {
                    seal_id: seal_id.to_owned(),
                    state: format!("{state:?}").to_lowercase(),
                })
            }
        }
        let key = parse_encrypted(&stored.key_encrypted, "seal key")?
            .decrypt(self.master()?, &stored.seal_id)?;
        let record = SealRecord::from_der(&stored.record_der)?;
        Ok(SealKey::new(
            stored.cert_der,
            key,
            record,
            stored.chain_der,
        )?)
    }

    /// Verifies a DER seal signature over a document's SHA-256 at `at`, with the trust
    /// anchors, the newest stored CRL and the CRLs of `pki.crls`. When the signing seal is
    /// stored here (same certificate) with its image, the image is checked against the
    /// record too.
    pub async fn verify(
        &self,
        document_sha256: [u8; 32],
        signature_der: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Report, SealsError> {
        let trust = self.trust_anchors().await?;
        let crls = self.crls().await?;
        let revoked = self.revoked_imported().await?;
        let image = self.image_of_signer(signature_der).await?;
        let ctx = VerifyContext {
            trust: &trust,
            crls: &crls,
            at,
            policy: VerifyPolicy::default(),
            revoked_seals: &revoked,
        };
        Ok(
            verify_seal_signature_with_image(document_sha256, signature_der, &ctx, image.as_ref())
                .0,
        )
    }

    /// The SHA-256 of every revoked imported seal's certificate: their revocation, which no
    /// CRL of the city can carry, for every verification (seal signatures, licences online and
    /// in trust bundles).
    pub async fn revoked_imported(&self) -> Result<Vec<[u8; 32]>, SealsError> {
        Ok(store::revoked_imported_certs(self.db)
            .await?
            .iter()
            .map(|der| {
                let digest = ring::digest::digest(&ring::digest::SHA256, der);
                let mut out = [0u8; 32];
                out.copy_from_slice(digest.as_ref());
                out
            })
            .collect())
    }

    /// The CRLs every verification uses: the newest CRL of each city CA (the issuing CA's for
    /// the seals, the root's for the issuing CA) and those of `pki.crls`.
    pub async fn crls(&self) -> Result<Vec<Vec<u8>>, SealsError> {
        let mut crls: Vec<Vec<u8>> = Vec::new();
        for issuer in [CrlIssuer::Issuing, CrlIssuer::Root] {
            crls.extend(store::latest_crl(self.db, issuer).await?.map(|c| c.der));
        }
        crls.extend(configured_crls(self.config));
        Ok(crls)
    }

    /// The stored image of the seal that made `signature_der`, if this hub holds that seal
    /// (same seal id and certificate) with an image.
    async fn image_of_signer(&self, signature_der: &[u8]) -> Result<Option<SealImage>, SealsError> {
        let Ok(sig) = SealSignature::from_der(signature_der) else {
            return Ok(None);
        };
        let info = sig.record().info();
        let Some(seal) = store::seal(self.db, &info.seal_id).await? else {
            return Ok(None);
        };
        if sha256(&seal.cert_der) != info.cert_digest || seal.image_media_type.is_none() {
            return Ok(None);
        }
        self.image(&seal.seal_id).await.map(Some)
    }

    /// Revokes a seal and reissues the CRL.
    pub async fn revoke(
        &self,
        seal_id: &str,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<StoredCrl, SealsError> {
        let mut tx = self.db.begin().await?;
        if !store::revoke(&mut tx, seal_id, now, &reason_name(reason)).await? {
            return Err(match store::seal(self.db, seal_id).await? {
                Some(_) => SealsError::AlreadyRevoked(seal_id.to_owned()),
                None => SealsError::UnknownSeal(seal_id.to_owned()),
            });
        }
        tx.commit().await?;
        self.reissue_crl(now).await
    }

    /// Issues a new CRL listing every revoked seal of the city CA, valid
    /// `pki.crl_validity` from `now`.
    pub async fn reissue_crl(&self, now: DateTime<Utc>) -> Result<StoredCrl, SealsError> {
        self.reissue_crl_under(now, None).await
    }

    /// [`Self::reissue_crl`], under `lease` when the `crl-reissue` duty reissues (a holder
    /// that lost the duty issues nothing).
    async fn reissue_crl_under(
        &self,
        now: DateTime<Utc>,
        lease: Option<&crate::cluster::Lease>,
    ) -> Result<StoredCrl, SealsError> {
        let mut tx = self.db.begin().await?;
        if let Some(lease) = lease {
            lease.fence(&mut tx).await?;
        }
        if !store::lock_ca(&mut tx).await? {
            return Err(SealsError::NoCa);
        }
        // Read under the lock: a CA replaced meanwhile (`revoke-ca`) is not the one to sign.
        let ca = store::locked_ca(&mut tx).await?.ok_or(SealsError::NoCa)?;
        let issuing = self.issuing_of(ca)?;
        let crl = self.issuing_crl_in(&mut tx, &issuing, now).await?;
        tx.commit().await?;
        Ok(crl)
    }

    /// Signs the issuing CA's CRL, listing every revoked seal of the city, in `tx` (which
    /// locked the CA).
    async fn issuing_crl_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        issuing: &CaCert,
        now: DateTime<Utc>,
    ) -> Result<StoredCrl, SealsError> {
        let validity = Duration::from_std(self.config.crl_validity.max(StdDuration::from_secs(60)))
            .unwrap_or_else(|_| Duration::days(7));
        let revoked = crl_entries(store::revoked_issued(tx).await?, "seal serial")?;
        let crl = sign_crl(
            tx,
            CrlIssuer::Issuing,
            issuing,
            &revoked,
            now,
            now + validity,
        )
        .await?;
        tracing::info!(
            crl_number = crl.number,
            revoked = revoked.len(),
            "issued a CRL"
        );
        Ok(crl)
    }

    /// Signs the root's CRL, listing every revoked issuing CA, in `tx` (which locked the CA).
    async fn root_crl_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        root: &CaCert,
        now: DateTime<Utc>,
    ) -> Result<StoredCrl, SealsError> {
        let validity = Duration::from_std(self.config.root_crl_validity)
            .unwrap_or_else(|_| Duration::days(365));
        let revoked = crl_entries(store::revoked_issuing_cas(tx).await?, "issuing CA serial")?;
        let crl = sign_crl(tx, CrlIssuer::Root, root, &revoked, now, now + validity).await?;
        tracing::info!(crl_number = crl.number, next_update = %crl.next_update, "issued the root's CRL");
        Ok(crl)
    }

    /// Revokes the city's issuing CA (its key compromised, say) and puts a new issuing CA
    /// under the same root in its place, made with the root key the hub keeps or with
    /// `offline_key_pem`. Every seal of the old CA is revoked with it (`ca_compromise`); the
    /// root's CRL, which lists the old CA from now on, and the new CA's first CRL are issued.
    /// Signatures and licences sealed under the old CA then verify INVALID wherever the root's
    /// CRL is loaded; each department needs a new seal (`seal issue`).
    pub async fn revoke_issuing_ca(
        &self,
        reason: RevocationReason,
        now: DateTime<Utc>,
        offline_key_pem: Option<&str>,
    ) -> Result<IssuingCaRevoked, SealsError> {
        let root = self.root(offline_key_pem).await?;
        let old = self.issuing().await?;
        let names = CaNames::for_city(&self.config.city_zh, &self.config.government_zh);
        let new = new_issuing_ca(&root, &names, now)?;
        let new_key = EncryptedKey::encrypt(self.master()?, LABEL_ISSUING, new.key())?.to_string();
        let revoked_serial = hex_lower(old.serial());
        let mut tx = self.db.begin().await?;
        if !store::lock_ca(&mut tx).await? {
            return Err(SealsError::NoCa);
        }
        if store::issuing_cert(&mut tx).await?.as_deref() != Some(old.cert_der()) {
            return Err(SealsError::Stored {
                what: "issuing CA".to_owned(),
                reason: "it was replaced while this command ran; run it again".to_owned(),
            });
        }
        store::replace_revoked_issuing_ca(
            &mut tx,
            &revoked_serial,
            old.cert_der(),
            now,
            &reason_name(reason),
            new.cert_der(),
            &new_key,
        )
        .await?;
        let seals_revoked =
            store::revoke_all_issued(&mut tx, now, &reason_name(RevocationReason::CaCompromise))
                .await?;
        // Seals imported from departments' own CAs stay valid: their records, made by the
        // revoked CA (which now makes every record it made say nothing), are made again by
        // the new one, saying the same.
        let mut records_remade = 0;
        for (seal_id, der) in store::live_imported_records(&mut tx).await? {
            let old_record = SealRecord::from_der(&der)?;
            let record = SealRecord::make_with_picture_type(
                old_record.info().clone(),
                old_record.picture_type(),
                &new,
            )?;
            store::set_record(&mut tx, &seal_id, &record.to_der()?).await?;
            records_remade += 1;
        }
        // Both CRLs in the same transaction: the old CA is never replaced without the root's
        // CRL listing it.
        let root_crl = self.root_crl_in(&mut tx, &root, now).await?;
        let crl = self.issuing_crl_in(&mut tx, &new, now).await?;
        tx.commit().await?;
        tracing::warn!(revoked = %revoked_serial, seals_revoked, "the city issuing CA was revoked and replaced");
        Ok(IssuingCaRevoked {
            revoked_serial,
            issuing_pem: new.cert_pem(),
            seals_revoked,
            records_remade,
            root_crl_number: root_crl.number,
            crl_number: crl.number,
        })
    }

    /// Issues a new CRL of the city root, valid `pki.root_crl_validity` from `now`, signed
    /// with the root key the hub keeps or with `offline_key_pem` (the key kept off the hub).
    /// It lists every issuing CA revoked with [`Self::revoke_issuing_ca`].
    pub async fn reissue_root_crl(
        &self,
        now: DateTime<Utc>,
        offline_key_pem: Option<&str>,
    ) -> Result<StoredCrl, SealsError> {
        self.reissue_root_crl_under(now, offline_key_pem, None)
            .await
    }

    /// [`Self::reissue_root_crl`], under `lease` when the `crl-reissue` duty reissues.
    async fn reissue_root_crl_under(
        &self,
        now: DateTime<Utc>,
        offline_key_pem: Option<&str>,
        lease: Option<&crate::cluster::Lease>,
    ) -> Result<StoredCrl, SealsError> {
        let root = self.root(offline_key_pem).await?;
        let mut tx = self.db.begin().await?;
        if let Some(lease) = lease {
            lease.fence(&mut tx).await?;
        }
        if !store::lock_ca(&mut tx).await? {
            return Err(SealsError::NoCa);
        }
        let crl = self.root_crl_in(&mut tx, &root, now).await?;
        tx.commit().await?;
        Ok(crl)
    }

    /// The newest CRL of the issuing CA.
    pub async fn latest_crl(&self) -> Result<Option<StoredCrl>, SealsError> {
        Ok(store::latest_crl(self.db, CrlIssuer::Issuing).await?)
    }

    /// The newest CRL of the root.
    pub async fn latest_root_crl(&self) -> Result<Option<StoredCrl>, SealsError> {
        Ok(store::latest_crl(self.db, CrlIssuer::Root).await?)
    }

    /// Seal coverage of every department of the registry at `at`.
    pub async fn coverage(&self, at: DateTime<Utc>) -> Result<Coverage, SealsError> {
        let departments = store::departments(self.db).await?;
        let seals = store::list_seals(self.db).await?;
        Ok(coverage_of(&departments, &seals, at))
    }
}

/// Signs the next CRL of `ca` (`issuer` in the store), listing `revoked`, and stores it in `tx`
/// (which holds the CA's lock).
/// CRL entries from stored revocations (serial hex, time, reason); `what` names the serial
/// in an error about a stored one that is not hex.
fn crl_entries(
    rows: Vec<(String, DateTime<Utc>, String)>,
    what: &str,
) -> Result<Vec<RevokedSeal>, SealsError> {
    rows.into_iter()
        .map(|(serial_hex, revoked_at, reason)| {
            let serial = hex_decode(&serial_hex).ok_or_else(|| SealsError::Stored {
                what: what.to_owned(),
                reason: format!("`{serial_hex}` is not hex"),
            })?;
            Ok(RevokedSeal {
                serial,
                revoked_at,
                reason: parse_reason(&reason).unwrap_or(RevocationReason::Unspecified),
            })
        })
        .collect()
}

async fn sign_crl(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    issuer: CrlIssuer,
    ca: &CaCert,
    revoked: &[RevokedSeal],
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
) -> Result<StoredCrl, SealsError> {
    let number = store::next_crl_number(tx).await?;
    let der = issue_crl(
        ca,
        revoked,
        u64::try_from(number).unwrap_or(1),
        this_update,
        next_update,
    )?;
    let crl = StoredCrl {
        number,
        der,
        this_update,
        next_update,
    };
    store::insert_crl(tx, issuer, &crl).await?;
    Ok(crl)
}

/// The seal id prefix for a department: its whole registry code (up to 32 characters,
/// which `bohai-certs` accepts). Seals made before codes were kept whole have ids whose
/// prefix is the code cut to 16 characters; ids never change once made.
pub fn seal_id_prefix(code: &str) -> String {
    code.to_owned()
}

/// The CRLs of `pki.crls` (DER). A file that cannot be read now is left out with a warning:
/// the verifier then lacks that CA's revocation status and says INDETERMINATE, never VALID.
/// (Configuration loading checked every file and its signature; the verifier checks the
/// signature again with the issuer of the chain.)
pub fn configured_crls(config: &PkiConfig) -> Vec<Vec<u8>> {
    config
        .crls
        .iter()
        .filter_map(|path| {
            let read = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| read_crl(&bytes).map_err(|e| e.to_string()));
            match read {
                Ok(der) => Some(der),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "pki.crls: cannot use this CRL now");
                    None
                }
            }
        })
        .collect()
}

/// The seal the status authority signs with ([`SealsService::authority_seal`]).
#[derive(Debug, Clone)]
pub struct AuthoritySeal {
    /// Its id.
    pub seal_id: String,
    /// Its certificate, DER: what the `x5c[0]` of whatever it signed holds.
    pub cert_der: Vec<u8>,
}

fn add_city_root(anchors: &mut TrustAnchors, ca: StoredCa) -> Result<(), SealsError> {
    anchors
        .add_der(ca.root_cert_der)
        .map_err(|e| SealsError::TrustAnchor {
            what: "city root".to_owned(),
            reason: e.to_string(),
        })
}

/// `<name_zh>电子公章` for an official seal, `合同专用章` / `业务专用章` for the others.
pub fn default_seal_name(dept_name_zh: &str, seal_type: SealType) -> String {
    match seal_type {
        SealType::Official => format!("{dept_name_zh}电子公章"),
        SealType::Contract => format!("{dept_name_zh}合同专用章"),
        SealType::Business => format!("{dept_name_zh}业务专用章"),
    }
}

fn parse_encrypted(text: &str, what: &str) -> Result<EncryptedKey, SealsError> {
    EncryptedKey::from_str(text).map_err(|e| SealsError::Stored {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// PEM armour.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// How often the CRL is checked for reissue: an eighth of `pki.crl_validity`, between 10 s
/// and 10 minutes.
pub fn crl_check_period(config: &PkiConfig) -> StdDuration {
    let validity = config.crl_validity.max(StdDuration::from_secs(60));
    (validity / 8).clamp(StdDuration::from_secs(10), StdDuration::from_secs(600))
}

/// Issues a new CRL when half of `pki.crl_validity` has passed at `now` since the newest
/// one (or there is none); returns whether it did. The round of the `crl-reissue` duty ([`crate::duties`]).
pub async fn reissue_if_due(
    db: &PgPool,
    config: &PkiConfig,
    now: DateTime<Utc>,
    lease: Option<&crate::cluster::Lease>,
) -> Result<bool, SealsError> {
    if store::load_ca(db).await?.is_none() {
        return Err(SealsError::NoCa);
    }
    let validity = config.crl_validity.max(StdDuration::from_secs(60));
    let half = Duration::from_std(validity / 2).unwrap_or_else(|_| Duration::days(1));
    let due = match store::latest_crl(db, CrlIssuer::Issuing).await? {
        Some(crl) => now >= crl.this_update + half,
        None => true,
    };
    if due {
        SealsService::with_master_key(db, config)?
            .reissue_crl_under(now, lease)
            .await?;
    }
    let root_half =
        Duration::from_std(config.root_crl_validity / 2).unwrap_or_else(|_| Duration::days(180));
    let root_crl = store::latest_crl(db, CrlIssuer::Root).await?;
    let root_due = root_crl
        .as_ref()
        .is_none_or(|crl| now >= crl.this_update + root_half);
    if root_due {
        match SealsService::with_master_key(db, config)?
            .reissue_root_crl_under(now, None, lease)
            .await
        {
            Ok(_) => {}
            // The root key is kept off the hub: its CRL is made there (`bohai seal root-crl
            // --root-key FILE`). Said while it is due; every seal verifies INDETERMINATE
            // once it has passed its nextUpdate (or if there is none).
            Err(SealsError::RootKeyAbsent) => {
                let until = root_crl.map(|c| c.next_update);
                tracing::warn!(
                    next_update = ?until,
                    "the root's CRL is due and the root key is not in the hub: run `bohai seal root-crl --root-key FILE` where the key is kept, before the CRL's next update (after it, every seal verifies INDETERMINATE)"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(dept: &str, not_after_days: i64, revoked: bool, now: DateTime<Utc>) -> StoredSeal {
        StoredSeal {
            seal_id: format!("{dept}-{not_after_days}"),
            department: dept.to_owned(),
            name: "x".to_owned(),
            seal_type: "official".to_owned(),
            serial_hex: "01".to_owned(),
            cert_der: Vec::new(),
            chain_der: Vec::new(),
            key_encrypted: String::new(),
            record_der: Vec::new(),
            image_digest: Vec::new(),
            not_before: now - Duration::days(400),
            not_after: now + Duration::days(not_after_days),
            created_at: now,
            revoked_at: revoked.then_some(now),
            revocation_reason: revoked.then(|| "superseded".to_owned()),
            imported: false,
            image_media_type: None,
        }
    }

    #[test]
    fn coverage_takes_each_departments_best_seal() {
        let now = Utc::now();
        let depts: Vec<(String, String)> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|c| ((*c).to_owned(), format!("{c}局")))
            .collect();
        let seals = vec![
            seal("a", 300, false, now),
            seal("a", 10, false, now),
            seal("b", 10, false, now),
            seal("c", -1, false, now),
            seal("d", 300, true, now),
            seal("d", -5, false, now),
        ];
        let c = coverage_of(&depts, &seals, now);
        let states: Vec<CoverageState> = c.departments.iter().map(|d| d.state).collect();
        assert_eq!(
            states,
            vec![
                CoverageState::Valid,
                CoverageState::Expiring,
                CoverageState::Expired,
                CoverageState::Expired,
                CoverageState::None
            ]
        );
        assert_eq!(c.departments[0].seal_id.as_deref(), Some("a-300"));
        assert_eq!(
            (c.valid, c.expiring, c.expired, c.revoked, c.none),
            (1, 1, 2, 0, 1)
        );
        assert!((c.coverage_percent - 40.0).abs() < 1e-9);
    }

    #[test]
    fn reasons_parse_and_print_in_snake_case() {
        let r = parse_reason("key_compromise").unwrap();
        assert_eq!(reason_name(r), "key_compromise");
        assert!(matches!(
            parse_reason("stolen"),
            Err(SealsError::UnknownReason(_))
        ));
        assert_eq!(hex_decode(&hex_lower(&[0, 1, 255])), Some(vec![0, 1, 255]));
        assert_eq!(hex_decode("abc"), None);
    }
}
