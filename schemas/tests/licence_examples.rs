//! The shipped licence types load, and every type's examples behave as they say: each valid
//! subject passes, each invalid subject fails at exactly the pointers it lists.

use std::collections::BTreeSet;
use std::time::Duration;

use bohai_schemas::{HolderKind, LicenceType, Registry};
use serde_json::Value;

const YEAR: u64 = 31_557_600;

/// The non-empty lines of `<type>/examples/<file>`, parsed, with their 1-based line numbers.
fn examples(t: &LicenceType, file: &str) -> Vec<(usize, Value)> {
    let path = t.dir.join("examples").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{} {file} line {}: {e}", t.id, i + 1));
            (i + 1, value)
        })
        .collect()
}

#[test]
fn the_five_licence_types_exist_with_their_issuers() {
    let registry = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
    for (id, department, prefix, years, holder) in [
        (
            "driving-licence",
            "traffic-police",
            "DL",
            6,
            HolderKind::Person,
        ),
        (
            "business-licence",
            "market-regulation",
            "BL",
            30,
            HolderKind::Organisation,
        ),
        (
            "food-business-permit",
            "market-regulation",
            "FB",
            5,
            HolderKind::Organisation,
        ),
        (
            "residence-permit",
            "public-security",
            "RP",
            1,
            HolderKind::Person,
        ),
        (
            "real-estate-certificate",
            "real-estate-registration",
            "RE",
            70,
            HolderKind::Person,
        ),
    ] {
        let t = registry
            .licence_type(id)
            .unwrap_or_else(|| panic!("licence type {id} missing"));
        assert_eq!(t.department, department, "{id}");
        assert!(registry.department(department).is_some(), "{id}");
        assert_eq!(t.number_prefix, prefix, "{id}");
        assert_eq!(
            t.default_validity,
            Duration::from_secs(years * YEAR),
            "{id}"
        );
        assert_eq!(t.holder_kind, holder, "{id}");
        assert!(t.schema_version >= 1, "{id}");
    }
    let ids: Vec<&str> = registry
        .licence_types
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "licence types are sorted by id");
}

#[test]
fn licence_examples_pass_and_fail_as_declared() {
    let registry = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
    assert!(!registry.licence_types.is_empty());
    for t in &registry.licence_types {
        let valid = examples(t, "valid.jsonl");
        assert!(valid.len() >= 3, "{}: too few valid examples", t.id);
        for (line, subject) in &valid {
            let violations = t.validate(subject);
            assert!(
                violations.is_empty(),
                "{} valid.jsonl line {line}: {violations:?}",
                t.id
            );
        }

        let invalid = examples(t, "invalid.jsonl");
        assert!(invalid.len() >= 5, "{}: too few invalid examples", t.id);
        for (line, case) in &invalid {
            let expected: BTreeSet<&str> = case["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            assert!(!expected.is_empty(), "{} invalid.jsonl line {line}", t.id);
            let violations = t.validate(&case["record"]);
            let got: BTreeSet<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
            assert_eq!(
                got, expected,
                "{} invalid.jsonl line {line} ({}): {violations:?}",
                t.id, case["why"]
            );
        }
    }
}

/// A person's birth date and sex are written into the identity number (digits 7–14 and the
/// parity of digit 17); the valid examples must agree with it, as real licences do.
#[test]
fn person_examples_agree_with_the_identity_number() {
    let registry = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for t in registry
        .licence_types
        .iter()
        .filter(|t| t.holder_kind == HolderKind::Person)
    {
        for (line, subject) in examples(t, "valid.jsonl") {
            let id = subject["holder"]["id_number"].as_str().unwrap();
            let fields = &subject["fields"];
            if let Some(birth) = fields["birth_date"].as_str() {
                let from_id = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
                assert_eq!(birth, from_id, "{} valid.jsonl line {line}", t.id);
                checked += 1;
            }
            if let Some(gender) = fields["gender"].as_str() {
                let odd = (id.as_bytes()[16] - b'0') % 2 == 1;
                assert_eq!(
                    gender,
                    if odd { "男" } else { "女" },
                    "{} valid.jsonl line {line}",
                    t.id
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "only {checked} checks ran");
}
