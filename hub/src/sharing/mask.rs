//! Masking, without I/O: what a reader outside the owning department sees of a record.
//!
//! Each PII field is masked by the rule its dataset's manifest names: `partial` keeps a
//! quarter of the characters at each end and stars the rest (张*三, 2111**********123X,
//! 13*******34), `hash` replaces the value with HMAC-SHA256 under the hub's salt in hex (the
//! same value always gives the same hash, so records can still be joined, but the salt is
//! needed to test a guess), `drop` removes the field.

use std::fmt;

use bohai_schemas::{Dataset, MaskRule};
use serde_json::{Map, Value};

/// The secret salt of `hash` masking. Never printed.
#[derive(Clone)]
pub struct Salt(ring::hmac::Key);

impl Salt {
    /// A salt from its bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Salt(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    /// A 32-byte key for `purpose`, derived from the salt: HMAC-SHA256 of U+0000 followed by
    /// the purpose. A masked value is the HMAC of a stored text, and no stored text contains
    /// U+0000 (`bohai_schemas::storable`), so a derived key never equals a masked value that
    /// a reader could be shown.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut input = Vec::with_capacity(purpose.len() + 1);
        input.push(0);
        input.extend_from_slice(purpose.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ring::hmac::sign(&self.0, &input).as_ref());
        key
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(REDACTED)")
    }
}

/// `s` with its middle starred: a quarter of the characters (at least one) kept at each end.
pub fn partial(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    match n {
        0 => String::new(),
        1 => "*".to_owned(),
        2 => format!("{}*", chars[0]),
        _ => {
            let keep = (n / 4).max(1);
            let mut out: String = chars[..keep].iter().collect();
            out.extend(std::iter::repeat_n('*', n - 2 * keep));
            out.extend(&chars[n - keep..]);
            out
        }
    }
}

/// The text a value is masked as: a string itself, anything else its JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// HMAC-SHA256 of the value's text under `salt`, in lowercase hex.
pub fn salted_hash(salt: &Salt, value: &Value) -> String {
    let tag = ring::hmac::sign(&salt.0, text(value).as_bytes());
    crate::seals::service::hex_lower(tag.as_ref())
}

/// `value` masked by `rule`; `None` when the field is dropped. Nulls stay null.
pub fn mask(rule: MaskRule, value: &Value, salt: &Salt) -> Option<Value> {
    if value.is_null() {
        return (rule != MaskRule::Drop).then_some(Value::Null);
    }
    match rule {
        MaskRule::Partial => Some(Value::String(partial(&text(value)))),
        MaskRule::Hash => Some(Value::String(salted_hash(salt, value))),
        MaskRule::Drop => None,
    }
}

/// How a reader sees a dataset's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View<'a> {
    /// The owning department: every field as stored.
    Owner,
    /// Another department: only `fields`, PII masked.
    Shared {
        /// The approved fields.
        fields: &'a [String],
    },
}

/// The record `data` of `dataset` as `view` sees it.
pub fn project(dataset: &Dataset, data: &Value, view: View<'_>, salt: &Salt) -> Value {
    let Some(map) = data.as_object() else {
        return Value::Object(Map::new());
    };
    match view {
        View::Owner => Value::Object(map.clone()),
        View::Shared { fields } => {
            let mut out = Map::new();
            for f in fields {
                let Some(v) = map.get(f) else { continue };
                let shown = match dataset.pii.get(f) {
                    Some(rule) => mask(*rule, v, salt),
                    None => Some(v.clone()),
                };
                if let Some(shown) = shown {
                    out.insert(f.clone(), shown);
                }
            }
            Value::Object(out)
        }
    }
}

/// The record's key as `view` sees it: the stored key for the owner; for others, built like
/// the stored key from the primary-key fields, each masked by its rule (`None` if one of
/// them is dropped).
pub fn key(
    dataset: &Dataset,
    pk: &str,
    data: &Value,
    view: View<'_>,
    salt: &Salt,
) -> Option<String> {
    if view == View::Owner
        || dataset
            .primary_key
            .iter()
            .all(|f| !dataset.pii.contains_key(f))
    {
        return Some(pk.to_owned());
    }
    let mut parts = Vec::new();
    for f in &dataset.primary_key {
        let v = data.get(f).unwrap_or(&Value::Null);
        let shown = match dataset.pii.get(f) {
            Some(rule) => mask(*rule, v, salt)?,
            None => v.clone(),
        };
        parts.push(shown);
    }
    Some(crate::pipeline::ingest::key_text(&parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_masks_keep_a_quarter_at_each_end() {
        assert_eq!(partial("张三丰"), "张*丰");
        assert_eq!(partial("张三"), "张*");
        assert_eq!(partial("211102199001011234"), "2111**********1234");
        assert_eq!(partial("13812345678"), "13*******78");
        assert_eq!(partial("x"), "*");
        assert_eq!(partial(""), "");
    }

    #[test]
    fn hashes_are_salted_and_stable() {
        let a = Salt::new(b"salt-a");
        let b = Salt::new(b"salt-b");
        let v = json!("211102199001011234");
        assert_eq!(salted_hash(&a, &v), salted_hash(&a, &v));
        assert_ne!(salted_hash(&a, &v), salted_hash(&b, &v));
        assert_eq!(salted_hash(&a, &v).len(), 64);
        assert!(!format!("{a:?}").contains("salt-a"));
    }

    #[test]
    fn rules_apply_and_nulls_stay_null() {
        let s = Salt::new(b"s");
        assert_eq!(mask(MaskRule::Drop, &json!("x"), &s), None);
        assert_eq!(mask(MaskRule::Drop, &Value::Null, &s), None);
        assert_eq!(mask(MaskRule::Hash, &Value::Null, &s), Some(Value::Null));
        assert_eq!(
            mask(MaskRule::Partial, &json!(13812345678u64), &s),
            Some(json!("13*******78"))
        );
    }

    #[test]
    fn a_shared_view_has_only_approved_fields_masked() {
        let registry = bohai_schemas::Registry::load_builtin().unwrap();
        let ds = registry.dataset("resident-registrations").unwrap();
        let salt = Salt::new(b"test");
        let data = json!({"id_number": "211102199001011234", "name": "张三丰", "gender": "male"});
        let fields = vec!["id_number".to_owned(), "name".to_owned()];
        let view = View::Shared { fields: &fields };
        let shown = project(ds, &data, view, &salt);
        assert_eq!(shown["name"], "张*丰");
        assert_eq!(
            shown["id_number"],
            salted_hash(&salt, &json!("211102199001011234"))
        );
        assert!(shown.get("gender").is_none());
        assert_eq!(
            key(ds, "211102199001011234", &data, view, &salt).as_deref(),
            shown["id_number"].as_str()
        );
        assert_eq!(project(ds, &data, View::Owner, &salt), data);
    }
}
