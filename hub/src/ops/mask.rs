//! Masking of rejected payloads before the ops team sees them (the dashboard's dead-letter
//! viewer). Pure functions over bytes and the dataset's PII rules.
//!
//! A payload that is a JSON object is masked field by field, by the rules of the dataset's
//! manifest (`[pii]`): `partial` keeps the first and last character, `hash` shows a keyed
//! hash (the key is random per process, so equal values look equal within one hub's answers
//! but cannot be looked up in a table of identity numbers), `drop` removes the field. Any
//! other payload (a CSV line, broken JSON) has no field names to go by, so every field of it
//! is masked `partial`: a rejected record may be rejected precisely because its fields are
//! in the wrong place.

use std::collections::BTreeMap;

use bohai_schemas::registry::MaskRule;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// How a payload was masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Masking {
    /// A JSON object: the dataset's PII fields were masked by their rules.
    PiiFields,
    /// Not a JSON object: every field was masked partially.
    AllFields,
}

/// A payload ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The masked text.
    pub text: String,
    /// How it was masked.
    pub masking: Masking,
}

/// Masks `raw` (already decoded to text) by `rules`; `key` keys the `hash` rule.
pub fn mask_payload(
    raw: &str,
    rules: &BTreeMap<String, MaskRule>,
    key: &ring::hmac::Key,
) -> Masked {
    if let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(raw) {
        for (field, rule) in rules {
            let Some(value) = object.get(field) else {
                continue;
            };
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match rule {
                MaskRule::Drop => {
                    object.remove(field);
                }
                MaskRule::Partial => {
                    object.insert(field.clone(), Value::String(partial(&text)));
                }
                MaskRule::Hash => {
                    object.insert(field.clone(), Value::String(keyed_hash(&text, key)));
                }
            }
        }
        return Masked {
            text: Value::Object(object).to_string(),
            masking: Masking::PiiFields,
        };
    }
    Masked {
        text: mask_every_field(raw),
        masking: Masking::AllFields,
    }
}

/// Keeps the first and last character and stars the rest (`张*三`, `2***************X`); one
/// or two characters keep only the first.
pub fn partial(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".to_owned(),
        2 => format!("{}*", chars[0]),
        n => {
            let mut out = String::with_capacity(value.len());
            out.push(chars[0]);
            out.extend(std::iter::repeat_n('*', n - 2));
            out.push(chars[n - 1]);
            out
        }
    }
}

/// `hash:` and the first 12 hex digits of HMAC-SHA-256 of `value` under `key`.
pub fn keyed_hash(value: &str, key: &ring::hmac::Key) -> String {
    let tag = ring::hmac::sign(key, value.as_bytes());
    let hex: String = tag.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("hash:{hex}")
}

/// Masks every field of a delimited line (`,`, `;`, tab, `|`) partially, keeping the
/// delimiters, quotes and line ends so that the shape of the record stays visible.
pub fn mask_every_field(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut field = String::new();
    for c in raw.chars() {
        if matches!(
            c,
            ',' | ';' | '\t' | '|' | '\n' | '\r' | '"' | '{' | '}' | '[' | ']' | ':'
        ) {
            out.push_str(&partial(field.trim()));
            field.clear();
            out.push(c);
        } else {
            field.push(c);
        }
    }
    out.push_str(&partial(field.trim()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"test key")
    }

    fn rules() -> BTreeMap<String, MaskRule> {
        BTreeMap::from([
            ("legal_rep_name".to_owned(), MaskRule::Partial),
            ("legal_rep_id_number".to_owned(), MaskRule::Hash),
            ("contact_mobile".to_owned(), MaskRule::Drop),
        ])
    }

    #[test]
    fn partial_keeps_the_ends_of_chinese_and_latin_values() {
        assert_eq!(partial("张三丰"), "张*丰");
        assert_eq!(partial("张三"), "张*");
        assert_eq!(partial("张"), "*");
        assert_eq!(partial(""), "");
        assert_eq!(partial("21110219900101123X"), "2****************X");
    }

    #[test]
    fn a_json_record_is_masked_by_the_datasets_rules_and_other_fields_stay() {
        let raw = r#"{"credit_code":"91211100MA0XXXXX1","legal_rep_name":"王小明","legal_rep_id_number":"21110219900101123X","contact_mobile":"13912345678","capital":100}"#;
        let m = mask_payload(raw, &rules(), &key());
        assert_eq!(m.masking, Masking::PiiFields);
        let v: Value = serde_json::from_str(&m.text).unwrap();
        assert_eq!(v["credit_code"], "91211100MA0XXXXX1");
        assert_eq!(v["legal_rep_name"], "王*明");
        assert!(v.get("contact_mobile").is_none());
        let hashed = v["legal_rep_id_number"].as_str().unwrap();
        assert!(
            hashed.starts_with("hash:") && hashed.len() == 17,
            "{hashed}"
        );
        assert!(!m.text.contains("21110219900101123X"));
        assert!(!m.text.contains("13912345678"));
        assert_eq!(v["capital"], 100);
        // Same value, same hash; another key, another hash.
        assert_eq!(keyed_hash("x", &key()), keyed_hash("x", &key()));
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert_ne!(keyed_hash("x", &key()), keyed_hash("x", &other));
    }

    #[test]
    fn pii_values_of_the_wrong_type_are_masked_too() {
        let raw = r#"{"legal_rep_name":12345,"legal_rep_id_number":null}"#;
        let m = mask_payload(raw, &rules(), &key());
        let v: Value = serde_json::from_str(&m.text).unwrap();
        assert_eq!(v["legal_rep_name"], "1***5");
        assert!(v["legal_rep_id_number"].is_null());
    }

    #[test]
    fn a_csv_line_or_broken_json_has_every_field_masked() {
        let m = mask_payload(
            "91211100MA0XXXXX1,王小明,21110219900101123X\n",
            &rules(),
            &key(),
        );
        assert_eq!(m.masking, Masking::AllFields);
        assert_eq!(m.text, "9***************1,王*明,2****************X\n");
        let m = mask_payload(r#"{"legal_rep_name":"王小明""#, &rules(), &key());
        assert_eq!(m.masking, Masking::AllFields);
        assert!(!m.text.contains("王小明"), "{}", m.text);
        // A JSON value that is not an object has no field names either.
        let m = mask_payload("42", &rules(), &key());
        assert_eq!(m.text, "4*");
    }
}
