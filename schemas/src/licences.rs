//! Licence types: the kinds of electronic licence (电子证照) a department issues, each declared
//! in `licences/<id>/` as `manifest.toml` plus `schema.json` (the licence subject: who holds
//! it and what it says).
//!
//! Issuing validates a subject against its type before sealing it, and verification checks a
//! sealed licence against the same schema, so loading makes sure that the schema compiles, that
//! its holder is the kind the manifest declares and that the number prefix is the type's own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::{
    owner_problems, read_definition, subfolders, Dataset, Department, RegistryProblem,
};
use crate::validate::{RecordValidator, Violation};

/// Who a licence is issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HolderKind {
    /// A natural person, identified by a resident identity number.
    Person,
    /// An organisation, identified by its unified social credit code.
    Organisation,
}

impl HolderKind {
    /// The name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Person => "person",
            HolderKind::Organisation => "organisation",
        }
    }

    /// The holder property that identifies this kind of holder; the schema must require it.
    fn identifier(self) -> &'static str {
        match self {
            HolderKind::Person => "id_number",
            HolderKind::Organisation => "credit_code",
        }
    }
}

/// A licence-type manifest as written in `manifest.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenceManifestFile {
    id: String,
    department: String,
    title_zh: String,
    title_en: String,
    description: String,
    number_prefix: String,
    default_validity: String,
    holder_kind: HolderKind,
    schema_version: u32,
    #[serde(default)]
    discipline: Option<Discipline>,
}

/// Joint discipline (联合惩戒) at issuance: the credit lists a type's issuance consults, and
/// the subjects of a licence checked against them (`[discipline]` in `manifest.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discipline {
    /// The datasets consulted, each a credit list of the registry (`credit-black-list`):
    /// an entry names its subject by `subject_credit_code` or `subject_id_number`.
    pub lists: Vec<String>,
    /// Where in a licence subject (`{"holder", "fields"}`) the identifiers checked are, as
    /// JSON pointers (`/holder/credit_code`, `/fields/responsible_person_id_number`); each
    /// names a property of the schema whose format is `cn-credit-code` or `cn-resident-id`.
    /// A licence without a value there has nothing to check there.
    pub subjects: Vec<String>,
    /// What a match does.
    pub on_match: OnMatch,
}

/// What issuing to a listed subject does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMatch {
    /// Refused, whoever asks.
    Refuse,
    /// Refused, unless an officer (a named person) overrides it with a reason: the licence is
    /// then issued with the override recorded.
    OfficerOverride,
}

/// The formats an identifier checked against a credit list may have.
const LISTED_FORMATS: [&str; 2] = ["cn-credit-code", "cn-resident-id"];

/// The fields of a credit-list dataset that name its subject.
pub const LIST_SUBJECT_FIELDS: [&str; 2] = ["subject_credit_code", "subject_id_number"];

/// The format each of [`LIST_SUBJECT_FIELDS`] must declare in a list a discipline consults.
pub const LIST_SUBJECT_FORMATS: [(&str, &str); 2] = [
    ("subject_credit_code", crate::formats::CREDIT_CODE),
    ("subject_id_number", crate::formats::RESIDENT_ID),
];

/// A licence type: its manifest, the schema of its subject and the compiled validator.
#[derive(Debug)]
pub struct LicenceType {
    /// Stable id (`^[a-z][a-z0-9-]{1,62}$`), also the folder name; licences name their type by it.
    pub id: String,
    /// Code of the issuing department; only it may issue licences of this type.
    pub department: String,
    /// Chinese title, as printed on the licence.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// What the licence is and which law or office it comes from.
    pub description: String,
    /// Two to four upper-case letters that start every licence number of this type, unique
    /// across types so that a number tells its type.
    pub number_prefix: String,
    /// Validity of a newly issued licence when the issuer does not say otherwise.
    pub default_validity: Duration,
    /// Whether a person or an organisation holds the licence.
    pub holder_kind: HolderKind,
    /// Version of the schema, raised whenever it changes incompatibly.
    pub schema_version: u32,
    /// The JSON Schema of one licence subject, `{"holder": {...}, "fields": {...}}`.
    pub schema: Value,
    /// The compiled schema.
    pub validator: RecordValidator,
    /// The type's folder (examples live there).
    pub dir: PathBuf,
    /// The credit lists its issuance consults, if any.
    pub discipline: Option<Discipline>,
}

impl LicenceType {
    /// Every violation of a licence subject (`{"holder", "fields"}`), empty when valid.
    pub fn validate(&self, subject: &Value) -> Vec<Violation> {
        self.validator.validate(subject)
    }
}

/// Loads every `dir/*/` as a licence type, sorted by id. A registry without a `licences/`
/// folder simply has no licence types: datasets alone are a complete registry.
pub(crate) fn load_licence_types(
    dir: &Path,
    departments: &[Department],
    datasets: &[Dataset],
    problems: &mut Vec<RegistryProblem>,
) -> Vec<LicenceType> {
    if !dir.exists() {
        return Vec::new();
    }
    let folders = match subfolders(dir) {
        Ok(f) => f,
        Err(e) => {
            problems.push(RegistryProblem {
                file: dir.to_owned(),
                message: format!("cannot read the folder: {e}"),
            });
            return Vec::new();
        }
    };
    // Prefix → the first type (in folder order) that claimed it.
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    let mut types: Vec<LicenceType> = folders
        .iter()
        .filter_map(|d| load_licence_type(d, (departments, datasets), &mut prefixes, problems))
        .collect();
    types.sort_by(|a, b| a.id.cmp(&b.id));
    types
}

fn load_licence_type(
    dir: &Path,
    (departments, datasets): (&[Department], &[Dataset]),
    prefixes: &mut BTreeMap<String, String>,
    problems: &mut Vec<RegistryProblem>,
) -> Option<LicenceType> {
    let (manifest, schema): (LicenceManifestFile, Value) = read_definition(dir, problems)?;
    let mut in_manifest = owner_problems(dir, &manifest.id, &manifest.department, departments);
    let prefix = &manifest.number_prefix;
    if !(2..=4).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
        in_manifest.push(format!(
            "number_prefix `{prefix}` must match ^[A-Z]{{2,4}}$"
        ));
    } else if let Some(owner) = prefixes.get(prefix) {
        in_manifest.push(format!(
            "number_prefix `{prefix}` is already used by licence type `{owner}`"
        ));
    } else {
        prefixes.insert(prefix.clone(), manifest.id.clone());
    }
    let default_validity = parse_validity(&manifest.default_validity)
        .map_err(|message| in_manifest.push(message))
        .ok();
    if manifest.schema_version < 1 {
        in_manifest.push("schema_version must be 1 or more".to_owned());
    }
    if let Some(discipline) = &manifest.discipline {
        in_manifest.extend(discipline_problems(discipline, &schema, datasets));
    }
    let mut in_schema = holder_problems(&schema, manifest.holder_kind);
    let validator = RecordValidator::new(&schema)
        .map_err(|e| in_schema.push(e.to_string()))
        .ok();

    let clean = in_manifest.is_empty() && in_schema.is_empty();
    for (file, messages) in [("manifest.toml", in_manifest), ("schema.json", in_schema)] {
        problems.extend(messages.into_iter().map(|message| RegistryProblem {
            file: dir.join(file),
            message,
        }));
    }
    if !clean {
        return None;
    }
    Some(LicenceType {
        id: manifest.id,
        department: manifest.department,
        title_zh: manifest.title_zh,
        title_en: manifest.title_en,
        description: manifest.description,
        number_prefix: manifest.number_prefix,
        default_validity: default_validity?,
        holder_kind: manifest.holder_kind,
        schema_version: manifest.schema_version,
        schema,
        validator: validator?,
        dir: dir.to_owned(),
        discipline: manifest.discipline,
    })
}

/// What is wrong with a type's `[discipline]`: lists that are not credit lists of the
/// registry, subjects that are not identifiers of the schema.
fn discipline_problems(d: &Discipline, schema: &Value, datasets: &[Dataset]) -> Vec<String> {
    let mut found = Vec::new();
    if d.lists.is_empty() {
        found.push("discipline.lists names no credit list".to_owned());
    }
    for list in &d.lists {
        let fields = datasets
            .iter()
            .find(|ds| &ds.id == list)
            .and_then(|ds| ds.schema.get("properties"));
        match fields {
            None => found.push(format!(
                "discipline.lists: `{list}` is not a dataset of the registry"
            )),
            Some(p) if LIST_SUBJECT_FIELDS.iter().all(|f| p.get(f).is_none()) => {
                found.push(format!(
                    "discipline.lists: `{list}` is not a credit list (it has neither {})",
                    LIST_SUBJECT_FIELDS.join(" nor ")
                ));
            }
            // The check looks each identifier up by its format (a credit code among credit
            // codes, an identity number among identity numbers): a list whose subject fields
            // do not hold those formats could hold a subject the check never finds.
            Some(p) => {
                for (field, format) in LIST_SUBJECT_FORMATS {
                    let declared = p
                        .get(field)
                        .map(|f| f.get("format").and_then(Value::as_str));
                    if let Some(declared) = declared.filter(|d| *d != Some(format)) {
                        found.push(format!(
                            "discipline.lists: `{list}`'s `{field}` has format {declared:?}; a list the check consults must declare `{format}`"
                        ));
                    }
                }
            }
        }
    }
    if d.subjects.is_empty() {
        found.push("discipline.subjects names no identifier".to_owned());
    }
    for pointer in &d.subjects {
        let property = pointer
            .strip_prefix('/')
            .filter(|p| p.starts_with("holder/") || p.starts_with("fields/"))
            .map(|p| {
                p.split('/').try_fold(schema, |at, name| {
                    at.get("properties").and_then(|props| props.get(name))
                })
            });
        match property {
            None => found.push(format!(
                "discipline.subjects: `{pointer}` must start with /holder/ or /fields/"
            )),
            Some(None) => found.push(format!(
                "discipline.subjects: the schema has no property at `{pointer}`"
            )),
            Some(Some(p)) => {
                let format = p.get("format").and_then(Value::as_str);
                if !format.is_some_and(|f| LISTED_FORMATS.contains(&f)) {
                    found.push(format!(
                        "discipline.subjects: `{pointer}` has format {format:?}; a subject checked against a credit list is a {}",
                        LISTED_FORMATS.join(" or ")
                    ));
                }
            }
        }
    }
    found
}

/// A humantime duration longer than zero.
fn parse_validity(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d > Duration::ZERO => Ok(d),
        Ok(_) => Err(format!(
            "default_validity `{text}` must be longer than zero"
        )),
        Err(e) => Err(format!(
            "default_validity `{text}` is not a duration like 5years or 180days: {e}"
        )),
    }
}

/// Whether the schema describes a subject `{"holder", "fields"}` whose holder is of `kind`:
/// it requires both parts, and the holder requires this kind's identifier and not the other's.
fn holder_problems(schema: &Value, kind: HolderKind) -> Vec<String> {
    fn required(schema: Option<&Value>) -> Vec<&str> {
        schema
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    let mut found = Vec::new();
    let top = required(Some(schema));
    for part in ["holder", "fields"] {
        if !top.contains(&part) {
            found.push(format!("a licence subject must require `{part}`"));
        }
    }
    let holder = schema.get("properties").and_then(|p| p.get("holder"));
    let holder_required = required(holder);
    let other = match kind {
        HolderKind::Person => HolderKind::Organisation,
        HolderKind::Organisation => HolderKind::Person,
    };
    if !holder_required.contains(&kind.identifier()) {
        found.push(format!(
            "holder_kind is `{}`, so properties.holder must require `{}`",
            kind.as_str(),
            kind.identifier()
        ));
    }
    if holder_required.contains(&other.identifier()) {
        found.push(format!(
            "holder_kind is `{}`, but properties.holder requires `{}`, the identifier of {}",
            kind.as_str(),
            other.identifier(),
            match other {
                HolderKind::Person => "a person",
                HolderKind::Organisation => "an organisation",
            }
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    /// A throw-away registry folder with one department (`market-regulation`) and no datasets,
    /// removed when dropped.
    struct TempRegistry(PathBuf);

    impl TempRegistry {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "bohai-licences-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(dir.join("datasets")).unwrap();
            std::fs::write(
                dir.join("departments.toml"),
                "[[department]]\ncode = \"market-regulation\"\nname_zh = \"盘锦市市场监督管理局\"\n\
                 name_en = \"Panjin Municipal Administration for Market Regulation\"\n\
                 credit_code = \"112111000652075553\"\n",
            )
            .unwrap();
            Self(dir)
        }

        /// Writes `licences/<folder>/` with this manifest and schema.
        fn licence(&self, folder: &str, manifest: &str, schema: &Value) -> PathBuf {
            let dir = self.0.join("licences").join(folder);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
            std::fs::write(dir.join("schema.json"), schema.to_string()).unwrap();
            dir
        }
    }

    impl Drop for TempRegistry {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn manifest(id: &str, department: &str, prefix: &str, validity: &str, kind: &str) -> String {
        format!(
            "id = \"{id}\"\ndepartment = \"{department}\"\ntitle_zh = \"测试证\"\n\
             title_en = \"Test licence\"\ndescription = \"A test.\"\nnumber_prefix = \"{prefix}\"\n\
             default_validity = \"{validity}\"\nholder_kind = \"{kind}\"\nschema_version = 1\n"
        )
    }

    fn organisation_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "required": ["holder", "fields"],
            "properties": {
                "holder": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "credit_code"],
                    "properties": {
                        "name": {"type": "string", "minLength": 2},
                        "credit_code": {"type": "string", "format": "cn-credit-code"}
                    }
                },
                "fields": {
                    "type": "object",
                    "required": ["division_code"],
                    "properties": {"division_code": {"type": "string", "format": "cn-division-code"}}
                }
            }
        })
    }

    fn problems_of(dir: &Path) -> Vec<RegistryProblem> {
        match Registry::load(dir) {
            Ok(_) => panic!("the registry at {} loaded", dir.display()),
            Err(e) => e.problems,
        }
    }

    /// Asserts that some problem is about `file` and says `says`.
    fn assert_reported(problems: &[RegistryProblem], file: &Path, says: &str) {
        assert!(
            problems
                .iter()
                .any(|p| p.file == file && p.message.contains(says)),
            "no problem in {} saying `{says}`: {problems:#?}",
            file.display()
        );
    }

    #[test]
    fn a_discipline_must_name_credit_lists_and_identifiers_of_the_schema() {
        let reg = TempRegistry::new();
        let m = manifest(
            "shop-permit",
            "market-regulation",
            "SP",
            "5years",
            "organisation",
        ) + "[discipline]\nlists = [\"credit-black-list\"]\n\
             subjects = [\"/holder/credit_code\", \"/holder/name\", \"/fields/owner_id\", \"/status\"]\n\
             on_match = \"refuse\"\n";
        let dir = reg.licence("shop-permit", &m, &organisation_schema());
        let problems = problems_of(&reg.0);
        let manifest = dir.join("manifest.toml");
        assert_reported(
            &problems,
            &manifest,
            "`credit-black-list` is not a dataset of the registry",
        );
        assert_reported(&problems, &manifest, "`/holder/name` has format None");
        assert_reported(&problems, &manifest, "no property at `/fields/owner_id`");
        assert_reported(&problems, &manifest, "`/status` must start with /holder/");
        assert!(
            !problems
                .iter()
                .any(|p| p.message.contains("/holder/credit_code")),
            "{problems:#?}"
        );
        // A credit list whose identity-number field does not declare its format.
        let list_dir = reg.0.join("datasets/credit-black-list");
        let builtin_list = crate::registry::builtin_dir().join("datasets/credit-black-list");
        std::fs::create_dir_all(list_dir.join("examples")).unwrap();
        for file in [
            "manifest.toml",
            "examples/valid.jsonl",
            "examples/invalid.jsonl",
        ] {
            std::fs::copy(builtin_list.join(file), list_dir.join(file)).unwrap();
        }
        let mut list_schema: Value = serde_json::from_str(
            &std::fs::read_to_string(builtin_list.join("schema.json")).unwrap(),
        )
        .unwrap();
        list_schema["properties"]["subject_id_number"]
            .as_object_mut()
            .unwrap()
            .remove("format");
        std::fs::write(list_dir.join("schema.json"), list_schema.to_string()).unwrap();
        let mut departments = std::fs::read_to_string(reg.0.join("departments.toml")).unwrap();
        departments.push_str(
            "[[department]]\ncode = \"development-reform\"\nname_zh = \"盘锦市发展和改革委员会\"\n\
             name_en = \"Panjin Municipal Development and Reform Commission\"\n\
             credit_code = \"11211100040891565T\"\n",
        );
        std::fs::write(reg.0.join("departments.toml"), departments).unwrap();
        let problems = problems_of(&reg.0);
        assert_reported(
            &problems,
            &manifest,
            "`credit-black-list`'s `subject_id_number` has format None",
        );
        assert!(
            !problems
                .iter()
                .any(|p| p.message.contains("subject_credit_code")),
            "{problems:#?}"
        );
        // The shipped registry's types name credit lists and identifiers.
        let builtin = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
        let food = builtin.licence_type("food-business-permit").unwrap();
        let discipline = food.discipline.as_ref().unwrap();
        assert_eq!(discipline.on_match, OnMatch::OfficerOverride);
        assert_eq!(discipline.lists, ["credit-black-list"]);
    }

    #[test]
    fn a_good_type_loads_and_validates_its_subject() {
        let reg = TempRegistry::new();
        let m = manifest(
            "shop-permit",
            "market-regulation",
            "SP",
            "5years",
            "organisation",
        );
        reg.licence("shop-permit", &m, &organisation_schema());
        let registry = Registry::load(&reg.0).unwrap_or_else(|e| panic!("{e}"));
        let t = registry.licence_type("shop-permit").unwrap();
        assert_eq!(t.holder_kind, HolderKind::Organisation);
        assert_eq!(t.number_prefix, "SP");
        assert_eq!(t.default_validity, Duration::from_secs(5 * 31_557_600));
        let good = json!({"holder": {"name": "盘锦瑞泰新材料科技有限公司", "credit_code": "91211100MA0Y5R2K51"},
                          "fields": {"division_code": "211103"}});
        assert_eq!(t.validate(&good), vec![]);
        let bad = json!({"holder": {"name": "盘锦瑞泰新材料科技有限公司", "credit_code": "91211100MA0Y5R2K52"},
                         "fields": {}});
        let mut pointers: Vec<String> = t.validate(&bad).into_iter().map(|v| v.pointer).collect();
        pointers.sort();
        assert_eq!(pointers, ["/fields", "/holder/credit_code"]);
        assert!(registry.licence_type("driving-licence").is_none());
    }

    #[test]
    fn a_registry_without_a_licences_folder_has_no_licence_types() {
        let reg = TempRegistry::new();
        let registry = Registry::load(&reg.0).unwrap_or_else(|e| panic!("{e}"));
        assert!(registry.licence_types.is_empty());
    }

    #[test]
    fn every_manifest_problem_is_reported_at_once_with_its_file() {
        let reg = TempRegistry::new();
        let schema = organisation_schema();
        // folder, then the manifest's id, department, number prefix, validity and holder kind.
        let manifests = [
            (
                "a-permit",
                "a-permit",
                "market-regulation",
                "AP",
                "1years",
                "organisation",
            ),
            (
                "b-permit",
                "b-permit",
                "tourism",
                "BP",
                "1years",
                "organisation",
            ),
            (
                "c-permit",
                "c-licence",
                "market-regulation",
                "CP",
                "1years",
                "organisation",
            ),
            (
                "d-permit",
                "d-permit",
                "market-regulation",
                "dp1",
                "1years",
                "organisation",
            ),
            (
                "e-permit",
                "e-permit",
                "market-regulation",
                "AP",
                "1years",
                "organisation",
            ),
            (
                "f-permit",
                "f-permit",
                "market-regulation",
                "FP",
                "forever",
                "organisation",
            ),
            (
                "g-permit",
                "g-permit",
                "market-regulation",
                "GP",
                "0s",
                "organisation",
            ),
            (
                "h-permit",
                "h-permit",
                "market-regulation",
                "HP",
                "1years",
                "person",
            ),
        ];
        for (folder, id, department, prefix, validity, kind) in manifests {
            let m = manifest(id, department, prefix, validity, kind);
            reg.licence(folder, &m, &schema);
        }
        let ok = |id: &str, prefix: &str| {
            manifest(id, "market-regulation", prefix, "1years", "organisation")
        };
        let mut broken = schema.clone();
        broken["properties"]["fields"]["type"] = json!(12);
        reg.licence("i-permit", &ok("i-permit", "IP"), &broken);
        let unknown_key = ok("j-permit", "JP") + "colour = \"red\"\n";
        reg.licence("j-permit", &unknown_key, &schema);
        let mut no_fields = schema.clone();
        no_fields["required"] = json!(["holder"]);
        reg.licence("k-permit", &ok("k-permit", "KP"), &no_fields);

        let problems = problems_of(&reg.0);
        let folder = |f: &str| reg.0.join("licences").join(f);
        let m = |f: &str| folder(f).join("manifest.toml");
        let s = |f: &str| folder(f).join("schema.json");
        for (file, says) in [
            (
                m("b-permit"),
                "department `tourism` is not in departments.toml",
            ),
            (m("c-permit"), "must equal the folder name `c-permit`"),
            (m("d-permit"), "number_prefix `dp1` must match"),
            (
                m("e-permit"),
                "`AP` is already used by licence type `a-permit`",
            ),
            (m("f-permit"), "default_validity `forever`"),
            (m("g-permit"), "longer than zero"),
            (s("h-permit"), "must require `id_number`"),
            (s("h-permit"), "requires `credit_code`"),
            (s("i-permit"), "invalid JSON Schema"),
            (m("j-permit"), "unknown field `colour`"),
            (s("k-permit"), "must require `fields`"),
        ] {
            assert_reported(&problems, &file, says);
        }
        let good = folder("a-permit");
        let datasets = reg.0.join("datasets");
        let elsewhere =
            |p: &&RegistryProblem| p.file.starts_with(&good) || p.file.starts_with(&datasets);
        let unexpected: Vec<&RegistryProblem> = problems.iter().filter(elsewhere).collect();
        assert!(
            unexpected.is_empty(),
            "the good type and the datasets have problems: {unexpected:#?}"
        );
        assert_eq!(problems.len(), 11, "{problems:#?}");
    }
}
