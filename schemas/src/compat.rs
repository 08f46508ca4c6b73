//! Schema compatibility, without I/O: a new version of a dataset's schema is backward
//! compatible with an earlier one when every record valid under the earlier one is still
//! valid under the new one and still has every field readers may have been granted.
//!
//! Checked per top-level field: a field may not disappear, become required, change or
//! narrow its type, gain or change a `format` or `pattern`, lose `enum` values, or tighten
//! a bound (`minLength`, `maxLength`, `minimum`, `maximum`); closing the record with
//! `additionalProperties: false` is a change too. New optional fields and loosened rules
//! are compatible. Each refusal names the field, the old rule and the new rule.

use std::fmt;

use serde_json::Value;

/// One incompatible change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The field (`(record)` for a change to the record as a whole).
    pub field: String,
    /// The rule in the earlier version.
    pub old_rule: String,
    /// The rule in the new version.
    pub new_rule: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}`: was {}, now {}",
            self.field, self.old_rule, self.new_rule
        )
    }
}

fn types(p: &Value) -> Option<Vec<String>> {
    match p.get("type")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule(key: &str, v: Option<&Value>) -> String {
    match v {
        Some(v) => format!("{key} {v}"),
        None => format!("no {key}"),
    }
}

/// Every incompatible change from `old` to `new` (empty: compatible).
pub fn incompatibilities(old: &Value, new: &Value) -> Vec<Incompatibility> {
    let mut found = Vec::new();
    let mut push = |field: &str, old_rule: String, new_rule: String| {
        found.push(Incompatibility {
            field: field.to_owned(),
            old_rule,
            new_rule,
        })
    };
    let closed = |s: &Value| s.get("additionalProperties") == Some(&Value::Bool(false));
    if closed(new) && !closed(old) {
        push(
            "(record)",
            "additional properties allowed".to_owned(),
            "additionalProperties false".to_owned(),
        );
    }
    let empty = serde_json::Map::new();
    let old_props = old
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_props = new
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let old_required = required(old);
    let new_required = required(new);
    for (name, new_p) in new_props {
        if new_required.contains(&name.as_str()) && !old_required.contains(&name.as_str()) {
            push(name, "optional".to_owned(), "required".to_owned());
        }
        if !old_props.contains_key(name) {
            continue;
        }
        let old_p = &old_props[name];
        if let Some(new_t) = types(new_p) {
            let widened = types(old_p).is_some_and(|old_t| {
                old_t.iter().all(|t| {
                    new_t.contains(t) || (t == "integer" && new_t.iter().any(|n| n == "number"))
                })
            });
            if !widened {
                push(
                    name,
                    rule("type", old_p.get("type")),
                    rule("type", new_p.get("type")),
                );
            }
        }
        for key in ["format", "pattern", "const"] {
            if new_p.get(key).is_some() && new_p.get(key) != old_p.get(key) {
                push(name, rule(key, old_p.get(key)), rule(key, new_p.get(key)));
            }
        }
        if let Some(new_enum) = new_p.get("enum").and_then(Value::as_array) {
            let kept = old_p
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|old_enum| old_enum.iter().all(|v| new_enum.contains(v)));
            if !kept {
                push(
                    name,
                    rule("enum", old_p.get("enum")),
                    rule("enum", new_p.get("enum")),
                );
            }
        }
        for (key, lower) in [
            ("minLength", true),
            ("minimum", true),
            ("exclusiveMinimum", true),
            ("maxLength", false),
            ("maximum", false),
            ("exclusiveMaximum", false),
        ] {
            let Some(n) = new_p.get(key).and_then(Value::as_f64) else {
                continue;
            };
            let tighter = match old_p.get(key).and_then(Value::as_f64) {
                None => true,
                Some(o) if lower => n > o,
                Some(o) => n < o,
            };
            if tighter {
                push(name, rule(key, old_p.get(key)), rule(key, new_p.get(key)));
            }
        }
    }
    for name in old_props.keys() {
        if !new_props.contains_key(name) {
            push(name, "a property".to_owned(), "removed".to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "format": "cn-resident-id"},
                "name": {"type": "string", "maxLength": 50},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "count": {"type": "integer", "minimum": 0}
            }
        })
    }

    #[test]
    fn added_optional_fields_and_loosened_rules_are_compatible() {
        let mut new = base();
        new["properties"]["note"] = json!({"type": "string"});
        new["properties"]["name"]["maxLength"] = json!(100);
        new["properties"]["kind"]["enum"] = json!(["a", "b", "c"]);
        new["properties"]["count"]["type"] = json!("number");
        assert_eq!(incompatibilities(&base(), &new), vec![]);
    }

    #[test]
    fn each_incompatible_change_is_named_with_both_rules() {
        let mut new = base();
        new["required"] = json!(["id", "name"]);
        new["properties"]["name"]["maxLength"] = json!(20);
        new["properties"]["kind"]["enum"] = json!(["a"]);
        new["properties"]["count"]["type"] = json!("string");
        new["properties"]["id"]["format"] = json!("cn-credit-code");
        new["properties"].as_object_mut().unwrap().remove("count");
        let found = incompatibilities(&base(), &new);
        let fields: Vec<&str> = found.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["id", "kind", "name", "name", "count"], "{found:?}");
        assert_eq!(found[0].old_rule, "format \"cn-resident-id\"");
        assert_eq!(found[0].new_rule, "format \"cn-credit-code\"");
        assert_eq!(
            found[2].to_string(),
            "field `name`: was optional, now required"
        );
        assert_eq!(found[3].new_rule, "maxLength 20");
        assert_eq!(found[4].new_rule, "removed");
    }
}
