//! The registry: the city's departments (`departments.toml`), the datasets they publish
//! (`datasets/<id>/manifest.toml` with `schema.json` beside it) and the licence types they
//! issue (`licences/<id>/`, see [`crate::licences`]).
//!
//! Loading checks everything a later stage relies on (a dataset's department exists, its
//! primary-key and PII fields are in its schema, its schema compiles) and reports every
//! problem at once, each with its file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::licences::{load_licence_types, LicenceType};
use crate::validate::RecordValidator;

/// The folder of the registry shipped in this source tree.
pub fn builtin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One department of the city.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Stable code (`^[a-z][a-z0-9-]{1,31}$`); tokens, topics and seals refer to it.
    pub code: String,
    /// Chinese name, e.g. 盘锦市公安局.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// The department's unified social credit code (GB 32100).
    pub credit_code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentsFile {
    department: Vec<Department>,
}

/// How a dataset may be shared with other departments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// Granted to any department on request.
    Unconditional,
    /// Granted when the owner approves a request.
    Conditional,
    /// Cannot be requested.
    NotShared,
}

impl Sharing {
    /// The name used in manifests and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Unconditional => "unconditional",
            Sharing::Conditional => "conditional",
            Sharing::NotShared => "not-shared",
        }
    }
}

/// How a personal-information field is masked for readers outside the owning department.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskRule {
    /// Keep the ends, star the middle (张*三, 2111**********123X).
    Partial,
    /// Replace with a salted hash, so that records can still be joined.
    Hash,
    /// Remove the field.
    Drop,
}

/// A dataset manifest as written in `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    id: String,
    department: String,
    title_zh: String,
    title_en: String,
    description: String,
    primary_key: Vec<String>,
    schema_version: u32,
    update_interval: String,
    sharing: Sharing,
    #[serde(default)]
    pii: BTreeMap<String, MaskRule>,
    #[serde(default)]
    repair: Option<RepairRuleFile>,
}

/// `[repair]` as written in a credit dataset's manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairRuleFile {
    documents: Vec<String>,
    decision_within: String,
}

/// Credit repair (信用修复) of a dataset's entries: what an application must carry and how
/// long the owning department has to decide it (`[repair]` of the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRule {
    /// The kinds of document an application must carry, each at least once
    /// (`履行完毕证明`, `信用修复承诺书`, ...).
    pub documents: Vec<String>,
    /// How long after the application the owning department must decide.
    pub decision_within: Duration,
}

/// A dataset: its manifest, its schema and the compiled validator.
#[derive(Debug)]
pub struct Dataset {
    /// Stable id (`^[a-z][a-z0-9-]{1,62}$`), also the folder name.
    pub id: String,
    /// Code of the owning department.
    pub department: String,
    /// Chinese title.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// What a record is and where it comes from.
    pub description: String,
    /// Top-level fields whose values identify a record.
    pub primary_key: Vec<String>,
    /// Version of the schema.
    pub schema_version: u32,
    /// How often the department is expected to deliver.
    pub update_interval: Duration,
    /// Sharing class.
    pub sharing: Sharing,
    /// PII fields and their masking rule.
    pub pii: BTreeMap<String, MaskRule>,
    /// The JSON Schema of one record.
    pub schema: Value,
    /// The compiled schema.
    pub validator: RecordValidator,
    /// The dataset's folder (examples live there).
    pub dir: PathBuf,
    /// Credit repair of its entries, if its manifest allows it (`[repair]`).
    pub repair: Option<RepairRule>,
}

impl Dataset {
    /// The names of the record's top-level fields (the schema's `properties`), in order.
    pub fn fields(&self) -> Vec<&str> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The declared JSON type of a top-level field (`string`, `integer`, ...), if the schema
    /// names one; used to read typed values out of text sources such as CSV.
    pub fn field_type(&self, field: &str) -> Option<&str> {
        let t = self.schema.get("properties")?.get(field)?.get("type")?;
        match t {
            Value::String(s) => Some(s),
            Value::Array(a) => a.iter().filter_map(Value::as_str).find(|s| *s != "null"),
            _ => None,
        }
    }
}

/// One problem found while loading the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryProblem {
    /// The file.
    pub file: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in the registry.
#[derive(Debug, thiserror::Error)]
pub struct RegistryError {
    /// The problems.
    pub problems: Vec<RegistryProblem>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the registry has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.file.display(), p.message)?;
        }
        Ok(())
    }
}

/// The loaded registry.
#[derive(Debug)]
pub struct Registry {
    /// Departments, in file order.
    pub departments: Vec<Department>,
    /// Datasets, sorted by id.
    pub datasets: Vec<Dataset>,
    /// Licence types, sorted by id.
    pub licence_types: Vec<LicenceType>,
}

impl Registry {
    /// The registry shipped in this source tree.
    pub fn load_builtin() -> Result<Self, RegistryError> {
        Self::load(&builtin_dir())
    }

    /// Loads `dir/departments.toml`, every `dir/datasets/*/manifest.toml` and every
    /// `dir/licences/*/manifest.toml` (a missing `licences/` folder means no licence types).
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        let mut problems = Vec::new();
        let departments = load_departments(&dir.join("departments.toml"), &mut problems);
        let mut datasets = Vec::new();
        let datasets_dir = dir.join("datasets");
        match subfolders(&datasets_dir) {
            Ok(dirs) => {
                for d in dirs {
                    if let Some(ds) = load_dataset(&d, &departments, &mut problems) {
                        datasets.push(ds);
                    }
                }
            }
            Err(e) => problems.push(RegistryProblem {
                file: datasets_dir,
                message: format!("cannot read the folder: {e}"),
            }),
        }
        let licence_types = load_licence_types(
            &dir.join("licences"),
            &departments,
            &datasets,
            &mut problems,
        );
        if problems.is_empty() {
            Ok(Self {
                departments,
                datasets,
                licence_types,
            })
        } else {
            Err(RegistryError { problems })
        }
    }

    /// The dataset with this id.
    pub fn dataset(&self, id: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.id == id)
    }

    /// The licence type with this id.
    pub fn licence_type(&self, id: &str) -> Option<&LicenceType> {
        self.licence_types.iter().find(|t| t.id == id)
    }

    /// The department with this code.
    pub fn department(&self, code: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.code == code)
    }
}

/// The sub-folders of `dir`, sorted.
pub(crate) fn subfolders(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Reads `dir/manifest.toml` as `T` and `dir/schema.json`, or reports the file that cannot be
/// read or parsed; datasets and licence types are both declared this way.
pub(crate) fn read_definition<T: DeserializeOwned>(
    dir: &Path,
    problems: &mut Vec<RegistryProblem>,
) -> Option<(T, Value)> {
    let manifest_path = dir.join("manifest.toml");
    let schema_path = dir.join("schema.json");
    let read = read_toml(&manifest_path)
        .map_err(|e| (manifest_path, e))
        .and_then(|m| {
            read_json(&schema_path)
                .map(|s| (m, s))
                .map_err(|e| (schema_path, e))
        });
    match read {
        Ok(definition) => Some(definition),
        Err((file, message)) => {
            problems.push(RegistryProblem { file, message });
            None
        }
    }
}

/// Reads and parses a TOML file; the error says why in words.
fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<T, String> {
    std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str(&t).map_err(|e| e.to_string()))
}

/// Reads and parses a JSON file; the error says why in words.
fn read_json(file: &Path) -> Result<Value, String> {
    std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
}

/// Whether `s` is a stable code: `^[a-z][a-z0-9-]{1,max-1}$`.
fn is_code(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    (2..=max).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn load_departments(file: &Path, problems: &mut Vec<RegistryProblem>) -> Vec<Department> {
    let mut bad = |message: String| {
        problems.push(RegistryProblem {
            file: file.to_owned(),
            message,
        })
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            bad(format!("cannot read: {e}"));
            return Vec::new();
        }
    };
    let parsed: DepartmentsFile = match toml::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            bad(format!("{e}"));
            return Vec::new();
        }
    };
    let mut seen = std::collections::HashSet::new();
    for d in &parsed.department {
        if !is_code(&d.code, 32) {
            bad(format!(
                "department code `{}` must match ^[a-z][a-z0-9-]{{1,31}}$",
                d.code
            ));
        }
        if !seen.insert(d.code.clone()) {
            bad(format!("department code `{}` appears twice", d.code));
        }
        if let Err(why) = crate::formats::check_credit_code(&d.credit_code) {
            bad(format!(
                "department `{}`: credit_code `{}`: {why}",
                d.code, d.credit_code
            ));
        }
    }
    parsed.department
}

/// What is wrong with a manifest's `id` (folder name, pattern) and `department` (must exist);
/// datasets and licence types follow the same rules.
pub(crate) fn owner_problems(
    dir: &Path,
    id: &str,
    department: &str,
    departments: &[Department],
) -> Vec<String> {
    let mut found = Vec::new();
    let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if id != folder {
        found.push(format!("id `{id}` must equal the folder name `{folder}`"));
    }
    if !is_code(id, 63) {
        found.push(format!("id `{id}` must match ^[a-z][a-z0-9-]{{1,62}}$"));
    }
    if !departments.iter().any(|d| d.code == department) {
        found.push(format!(
            "department `{department}` is not in departments.toml"
        ));
    }
    found
}

fn load_dataset(
    dir: &Path,
    departments: &[Department],
    problems: &mut Vec<RegistryProblem>,
) -> Option<Dataset> {
    let manifest_path = dir.join("manifest.toml");
    let schema_path = dir.join("schema.json");
    let (manifest, schema): (ManifestFile, Value) = read_definition(dir, problems)?;
    let before = problems.len();
    let mut bad = |file: &Path, message: String| {
        problems.push(RegistryProblem {
            file: file.to_owned(),
            message,
        })
    };
    for message in owner_problems(dir, &manifest.id, &manifest.department, departments) {
        bad(&manifest_path, message);
    }
    let update_interval = match humantime::parse_duration(&manifest.update_interval) {
        Ok(d) => d,
        Err(e) => {
            bad(
                &manifest_path,
                format!(
                    "update_interval `{}` is not a duration like 1h or 1d: {e}",
                    manifest.update_interval
                ),
            );
            Duration::ZERO
        }
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if manifest.primary_key.is_empty() {
        bad(
            &manifest_path,
            "primary_key must name at least one field".to_owned(),
        );
    }
    for field in &manifest.primary_key {
        if !properties.is_some_and(|p| p.contains_key(field)) || !required.contains(&field.as_str())
        {
            bad(
                &manifest_path,
                format!("primary-key field `{field}` must be a required property of schema.json"),
            );
        }
    }
    for field in manifest.pii.keys() {
        if !properties.is_some_and(|p| p.contains_key(field)) {
            bad(
                &manifest_path,
                format!("PII field `{field}` is not a property of schema.json"),
            );
        }
    }
    let repair = match &manifest.repair {
        None => Some(None),
        Some(rule) => {
            let within = humantime::parse_duration(&rule.decision_within)
                .ok()
                .filter(|d| !d.is_zero());
            if within.is_none() {
                bad(
                    &manifest_path,
                    format!(
                        "repair.decision_within `{}` is not a duration longer than zero, like 15days",
                        rule.decision_within
                    ),
                );
            }
            if rule.documents.is_empty() || rule.documents.iter().any(|d| d.trim().is_empty()) {
                bad(
                    &manifest_path,
                    "repair.documents must name at least one kind of document, none empty"
                        .to_owned(),
                );
            }
            within.map(|decision_within| {
                Some(RepairRule {
                    documents: rule.documents.clone(),
                    decision_within,
                })
            })
        }
    };
    let validator = match RecordValidator::new(&schema) {
        Ok(v) => Some(v),
        Err(e) => {
            bad(&schema_path, e.to_string());
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Dataset {
        id: manifest.id,
        department: manifest.department,
        title_zh: manifest.title_zh,
        title_en: manifest.title_en,
        description: manifest.description,
        primary_key: manifest.primary_key,
        schema_version: manifest.schema_version,
        update_interval,
        sharing: manifest.sharing,
        pii: manifest.pii,
        schema,
        validator: validator?,
        dir: dir.to_owned(),
        repair: repair?,
    })
}
