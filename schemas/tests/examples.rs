//! The shipped registry loads, and every dataset's examples behave as they say: each valid
//! record passes, each invalid record fails at exactly the pointers it lists.

use std::collections::BTreeSet;

use bohai_schemas::Registry;
use serde_json::Value;

#[test]
fn the_registry_covers_the_reference_city() {
    let registry = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        registry.departments.len() >= 39,
        "{} departments",
        registry.departments.len()
    );
    for id in [
        "business-registrations",
        "resident-registrations",
        "social-insurance-contributions",
        "driving-licences",
        "real-estate-registrations",
        "administrative-penalties",
        "credit-commitments",
        "credit-red-list",
        "credit-black-list",
    ] {
        assert!(registry.dataset(id).is_some(), "dataset {id} missing");
    }
}

#[test]
fn examples_pass_and_fail_as_declared() {
    let registry = Registry::load_builtin().unwrap_or_else(|e| panic!("{e}"));
    for ds in &registry.datasets {
        let valid = std::fs::read_to_string(ds.dir.join("examples/valid.jsonl")).unwrap();
        let mut n_valid = 0;
        for (i, line) in valid
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let record: Value = serde_json::from_str(line).unwrap();
            let violations = ds.validator.validate(&record);
            assert!(
                violations.is_empty(),
                "{} valid.jsonl line {}: {violations:?}",
                ds.id,
                i + 1
            );
            n_valid += 1;
        }
        assert!(n_valid >= 3, "{}: too few valid examples", ds.id);

        let invalid = std::fs::read_to_string(ds.dir.join("examples/invalid.jsonl")).unwrap();
        let mut n_invalid = 0;
        for (i, line) in invalid
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let case: Value = serde_json::from_str(line).unwrap();
            let expected: BTreeSet<String> = case["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            let violations = ds.validator.validate(&case["record"]);
            let got: BTreeSet<String> = violations.iter().map(|v| v.pointer.clone()).collect();
            assert_eq!(
                got,
                expected,
                "{} invalid.jsonl line {} ({}): {violations:?}",
                ds.id,
                i + 1,
                case["why"]
            );
            n_invalid += 1;
        }
        assert!(n_invalid >= 5, "{}: too few invalid examples", ds.id);
    }
}
