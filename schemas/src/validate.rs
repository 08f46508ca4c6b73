//! Record validation: a dataset's JSON Schema (draft 2020-12) plus the named formats of
//! [`crate::formats`]. A record passes every check or gets every failure listed.

use serde::Serialize;
use serde_json::Value;

use crate::formats;

/// One reason a record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer (RFC 6901) to the failing value; empty for the record itself.
    pub pointer: String,
    /// The schema keyword that failed (`required`, `type`, `format`, `pattern`, ...), or a
    /// pipeline rule such as `primary_key` or `size_limit`.
    pub rule: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Violation {
    /// A violation of a rule the pipeline applies outside the schema.
    pub fn new(pointer: impl Into<String>, rule: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}

/// A schema that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON Schema at {pointer}: {message}")]
pub struct SchemaError {
    /// Where in the schema.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// A compiled record schema.
#[derive(Debug)]
pub struct RecordValidator {
    validator: jsonschema::Validator,
}

impl RecordValidator {
    /// Compiles `schema` with format checking on and the Chinese named formats registered.
    pub fn new(schema: &Value) -> Result<Self, SchemaError> {
        let mut options = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true);
        for (name, check) in formats::ALL {
            options = options.with_format(name, move |s: &str| check(s).is_ok());
        }
        let validator = options.build(schema).map_err(|e| SchemaError {
            pointer: e.schema_path().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { validator })
    }

    /// Every violation of the schema by `record`, in document order; empty when valid.
    pub fn validate(&self, record: &Value) -> Vec<Violation> {
        // Most records are valid: the boolean check is several times cheaper than collecting
        // errors, so the errors are gathered only for records that fail it.
        if self.validator.is_valid(record) {
            return Vec::new();
        }
        self.validator
            .iter_errors(record)
            .map(|e| {
                let schema_path = e.schema_path().to_string();
                let rule = schema_path
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let message = match (e.kind(), e.instance().as_ref()) {
                    (
                        jsonschema::error::ValidationErrorKind::Format { format },
                        Value::String(s),
                    ) => match formats::checker(format).map(|check| check(s)) {
                        Some(Err(why)) => format!("{format}: {why}"),
                        _ => e.to_string(),
                    },
                    // `{"not": {}}` forbids a field where a condition on other fields holds
                    // (a natural person has no credit code); "{} is not allowed" says nothing.
                    (jsonschema::error::ValidationErrorKind::Not { schema }, _)
                        if schema.as_object().is_some_and(|o| o.is_empty()) =>
                    {
                        "must be absent: a condition of the schema on this record's other fields (such as its subject type) rules this field out".to_owned()
                    }
                    _ => e.to_string(),
                };
                Violation {
                    pointer: e.instance_path().to_string(),
                    rule,
                    message,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> RecordValidator {
        RecordValidator::new(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "required": ["id_number", "name"],
            "properties": {
                "id_number": {"type": "string", "format": "cn-resident-id"},
                "name": {"type": "string", "minLength": 1},
                "division": {"type": "string", "format": "cn-division-code"},
                "born": {"type": "string", "format": "date"}
            }
        }))
        .unwrap()
    }

    #[test]
    fn valid_record_has_no_violations() {
        let v = validator();
        let ok = json!({"id_number": "11010519491231002X", "name": "张三", "division": "211102", "born": "1949-12-31"});
        assert_eq!(v.validate(&ok), vec![]);
    }

    #[test]
    fn every_failure_is_listed_with_pointer_rule_and_reason() {
        let v = validator();
        let bad = json!({"id_number": "110105194912310021", "division": "999999", "born": "1949-13-01", "extra": 1});
        let violations = v.validate(&bad);
        let got: Vec<(&str, &str)> = violations
            .iter()
            .map(|x| (x.pointer.as_str(), x.rule.as_str()))
            .collect();
        for expected in [
            ("", "required"),
            ("", "additionalProperties"),
            ("/id_number", "format"),
            ("/division", "format"),
            ("/born", "format"),
        ] {
            assert!(got.contains(&expected), "{expected:?} not in {got:?}");
        }
        let id = violations
            .iter()
            .find(|x| x.pointer == "/id_number")
            .unwrap();
        assert!(
            id.message.contains("check digit should be X"),
            "{}",
            id.message
        );
    }

    #[test]
    fn a_field_a_condition_forbids_says_so() {
        let v = RecordValidator::new(&json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"kind": {"type": "string"}, "credit_code": {"type": "string"}},
            "if": {"properties": {"kind": {"const": "person"}}, "required": ["kind"]},
            "then": {"properties": {"credit_code": {"not": {}}}}
        }))
        .unwrap();
        let violations = v.validate(&json!({"kind": "person", "credit_code": "x"}));
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].pointer, "/credit_code");
        assert_eq!(violations[0].rule, "not");
        assert!(
            violations[0].message.starts_with("must be absent"),
            "{}",
            violations[0].message
        );
        assert!(v
            .validate(&json!({"kind": "firm", "credit_code": "x"}))
            .is_empty());
    }

    #[test]
    fn a_broken_schema_is_an_error() {
        assert!(RecordValidator::new(&json!({"type": 12})).is_err());
    }
}
