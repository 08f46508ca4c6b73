//! The registry of Bohai's departments and datasets, and the record validator with the
//! formats Chinese government data needs.
//!
//! - `registry`: loads `departments.toml`, `datasets/*/` and `licences/*/` (manifest, schema,
//!   examples);
//! - `licences`: licence types, the kinds of electronic licence (电子证照) departments issue;
//! - `storable`: what the shared repository can store (no U+0000, bounded depth and sizes),
//!   checked on every record before the schema;
//! - `validate`: JSON Schema 2020-12 validation that lists every failure of a record;
//! - `formats`: the named formats (`cn-resident-id`, `cn-credit-code`, `cn-division-code`,
//!   `cn-mobile`).

pub mod compat;
pub mod formats;
pub mod licences;
pub mod registry;
pub mod storable;
pub mod validate;

pub use licences::{HolderKind, LicenceType};
pub use registry::{Dataset, Department, MaskRule, Registry, RegistryError, RepairRule, Sharing};
pub use validate::{RecordValidator, Violation};
