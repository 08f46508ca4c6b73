//! Data sharing with governance: the catalogue, access requests and their decisions
//! (subscriptions), and masked reads of the repository. Masking is pure (`mask.rs`); every
//! request, decision and read is written to the audit log (`crate::audit`).

pub mod catalogue;
pub mod delivery;
pub mod mask;
pub mod records;
pub mod subscriptions;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::SharingConfig;
use mask::Salt;

/// Why a sharing operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SharingError {
    /// No such dataset.
    #[error("no dataset `{0}`")]
    UnknownDataset(String),
    /// No such licence type.
    #[error("no licence type `{0}`")]
    UnknownLicenceType(String),
    /// No such subscription.
    #[error("no subscription {0}")]
    UnknownSubscription(uuid::Uuid),
    /// The request is malformed; the message says what to change.
    #[error("{0}")]
    BadRequest(String),
    /// A parameter of the request is refused; the message says why.
    #[error("`{name}` {why}")]
    BadParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A filter on a key the caller sees only masked (it would tell whether a raw value
    /// exists).
    #[error("records of dataset `{dataset}` are keyed by `{field}`, which you see masked; `key` takes only keys you can see")]
    KeyMasked {
        /// The dataset.
        dataset: String,
        /// The masked key field.
        field: String,
    },
    /// The dataset is not shared.
    #[error("dataset `{0}` is not shared with other departments and cannot be requested")]
    NotShared(String),
    /// The caller may not do this (another department's dataset or request).
    #[error("{0}")]
    Forbidden(String),
    /// An approval that the rule "approving is a different person from requesting"
    /// refuses (docs/security.md).
    #[error("{0}")]
    SelfApproval(String),
    /// The caller has no approved subscription for the dataset.
    #[error("department `{department}` has no approved subscription to dataset `{dataset}`; request one with POST /api/v1/subscriptions")]
    NotApproved {
        /// The reader.
        department: String,
        /// The dataset.
        dataset: String,
    },
    /// The caller's approval has expired.
    #[error("the subscription of `{department}` to dataset `{dataset}` expired at {until}; request it again")]
    Expired {
        /// The reader.
        department: String,
        /// The dataset.
        dataset: String,
        /// When it expired.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The caller's approval was withdrawn.
    #[error("subscription {id} was withdrawn by `{by}`: {reason}; request access again")]
    Withdrawn {
        /// The subscription.
        id: uuid::Uuid,
        /// Who withdrew it.
        by: String,
        /// Why.
        reason: String,
    },
    /// The subscription's state does not allow the action.
    #[error("subscription {id} is {status}; {allowed}")]
    WrongState {
        /// The subscription.
        id: uuid::Uuid,
        /// Its status.
        status: String,
        /// What the action needs.
        allowed: &'static str,
    },
    /// The salt file cannot be read or made.
    #[error("sharing.hash_salt_file {path}: {reason}")]
    Salt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database failed.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// What sharing keeps between requests: the salt, read once.
#[derive(Debug, Default)]
pub struct SharingState {
    salt: OnceLock<Salt>,
}

impl SharingState {
    /// The salt of `config.hash_salt_file`, read (or created) on first use.
    pub fn salt(&self, config: &SharingConfig) -> Result<Salt, SharingError> {
        if let Some(s) = self.salt.get() {
            return Ok(s.clone());
        }
        let salt = load_or_create_salt(&config.hash_salt_file)?;
        Ok(self.salt.get_or_init(|| salt).clone())
    }
}

/// Shortest salt accepted.
const MIN_SALT: usize = 16;

/// Reads the salt file, creating it (32 random bytes in hex, mode 0600) when missing.
pub fn load_or_create_salt(path: &Path) -> Result<Salt, SharingError> {
    let problem = |reason: String| SharingError::Salt {
        path: path.to_owned(),
        reason,
    };
    if !path.exists() {
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| problem("no randomness available".to_owned()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| problem(e.to_string()))?;
        }
        let text = crate::seals::service::hex_lower(&raw) + "\n";
        match crate::seals::service::write_private_file(path, text.as_bytes()) {
            Ok(()) => {}
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(problem(e.to_string())),
        }
    }
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    let trimmed = bytes.trim_ascii();
    if trimmed.len() < MIN_SALT {
        return Err(problem(format!(
            "the salt must be at least {MIN_SALT} bytes, found {}",
            trimmed.len()
        )));
    }
    Ok(Salt::new(trimmed))
}
