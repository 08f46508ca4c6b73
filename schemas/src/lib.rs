//! The registry of Bohai's departments and datasets, and the record validator with the
//! formats Chinese government data needs.
//!
//! - `registry`: loads `departments.toml` and `datasets/*/` (manifest, schema, examples);
//! - `validate`: JSON Schema 2020-12 validation that lists every failure of a record;
//! - `formats`: the named formats (`cn-resident-id`, `cn-credit-code`, `cn-division-code`,
//!   `cn-mobile`).

pub mod formats;
pub mod registry;
pub mod validate;

pub use registry::{Dataset, Department, MaskRule, Registry, RegistryError, Sharing};
pub use validate::{RecordValidator, Violation};
