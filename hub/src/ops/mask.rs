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
    mask_with_replacements(raw, Some(rules), key).0
}

/// What a value was shown as: its text in the record and the text that replaced it.
#[derive(Debug, Clone, Default)]
pub struct Replacements(Vec<(String, String)>);

/// What a dropped value is shown as where a text quotes it.
const DROPPED: &str = "[dropped]";

impl Replacements {
    fn add(&mut self, original: String, shown: String) {
        // One character tells nothing, and replacing it would garble the text around it.
        if original.chars().count() >= 2 && original != shown {
            self.0.push((original, shown));
        }
    }

    /// `text` with every value masked in the payload replaced by what the payload shows
    /// instead: the same rule applied to the texts that quote the record (reasons, origins).
    pub fn apply(&self, text: &str) -> String {
        let mut pairs: Vec<&(String, String)> = self.0.iter().collect();
        // Longest first, so that a value containing another is replaced whole.
        pairs.sort_by_key(|(original, _)| std::cmp::Reverse(original.len()));
        let mut out = text.to_owned();
        for (original, shown) in &pairs {
            if out.contains(original.as_str()) {
                out = out.replace(original.as_str(), shown);
            }
        }
        // A reason cut to its stored length (`storable::cut`) may end inside a value: what
        // is left of it is the value's beginning, which no whole replacement finds.
        // The longest such beginning over every value decides: a shorter one of another
        // value may match only the last characters of it.
        if let Some((head, tail)) = split_cut_marker(&out) {
            if let Some(kept) = pairs
                .iter()
                .filter_map(|(original, _)| cut_inside(head, original))
                .min()
            {
                return format!("{}{CUT_VALUE}{tail}", &head[..kept]);
            }
        }
        out
    }
}

/// What the beginning of a masked value is shown as where a cut reason ends inside it.
const CUT_VALUE: &str = "[masked]";

/// A reason cut to its stored length ends in `… (N bytes in all)`: the text before the
/// marker and the marker.
fn split_cut_marker(text: &str) -> Option<(&str, &str)> {
    if !text.ends_with(" bytes in all)") {
        return None;
    }
    let at = text.rfind("… (")?;
    Some(text.split_at(at))
}

/// Where `head` would be cut so as not to end with a beginning of `original` two or more
/// characters long (a whole value was replaced already); `None` when it does not.
fn cut_inside(head: &str, original: &str) -> Option<usize> {
    let mut ends: Vec<usize> = original.char_indices().map(|(i, _)| i).skip(2).collect();
    ends.push(original.len());
    ends.into_iter()
        .rev()
        .find(|&end| head.ends_with(&original[..end]))
        .map(|end| head.len() - end)
}

/// Masks `raw` by `rules` (`None`: a dataset without rules, every field masked), and says
/// which texts were replaced by what, so that the texts quoting the record can be masked
/// alike ([`mask_reject`]).
fn mask_with_replacements(
    raw: &str,
    rules: Option<&BTreeMap<String, MaskRule>>,
    key: &ring::hmac::Key,
) -> (Masked, Replacements) {
    let mut replaced = Replacements::default();
    if let (Some(rules), Ok(Value::Object(mut object))) =
        (rules, serde_json::from_str::<Value>(raw))
    {
        mask_object(&mut object, rules, key, &mut replaced);
        return (
            Masked {
                text: Value::Object(object).to_string(),
                masking: Masking::PiiFields,
            },
            replaced,
        );
    }
    (
        Masked {
            text: mask_fields(raw, &mut replaced),
            masking: Masking::AllFields,
        },
        replaced,
    )
}

/// Masks the PII fields of `object` by their rules, at any depth: a rejected record may have
/// its fields in the wrong place, nested in an object or a list.
fn mask_object(
    object: &mut serde_json::Map<String, Value>,
    rules: &BTreeMap<String, MaskRule>,
    key: &ring::hmac::Key,
    replaced: &mut Replacements,
) {
    let fields: Vec<String> = object.keys().cloned().collect();
    for field in fields {
        let Some(rule) = rules.get(&field) else {
            if let Some(value) = object.get_mut(&field) {
                mask_nested(value, rules, key, replaced);
            }
            continue;
        };
        let Some(value) = object.get(&field) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let shown = masked_value(*rule, value, key, replaced);
        match shown {
            None => {
                object.remove(&field);
            }
            Some(shown) => {
                object.insert(field, Value::String(shown));
            }
        }
    }
}

fn mask_nested(
    value: &mut Value,
    rules: &BTreeMap<String, MaskRule>,
    key: &ring::hmac::Key,
    replaced: &mut Replacements,
) {
    match value {
        Value::Object(inner) => mask_object(inner, rules, key, replaced),
        Value::Array(items) => {
            for item in items {
                mask_nested(item, rules, key, replaced);
            }
        }
        _ => {}
    }
}

/// `value` masked by `rule` (`None`: dropped); records what replaced its text, and the
/// texts of the values inside it when it is an object or a list.
fn masked_value(
    rule: MaskRule,
    value: &Value,
    key: &ring::hmac::Key,
    replaced: &mut Replacements,
) -> Option<String> {
    let apply = |text: &str| match rule {
        MaskRule::Drop => None,
        MaskRule::Partial => Some(partial(text)),
        MaskRule::Hash => Some(keyed_hash(text, key)),
    };
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let shown = apply(&text);
    replaced.add(text, shown.clone().unwrap_or_else(|| DROPPED.to_owned()));
    if let Value::Object(_) | Value::Array(_) = value {
        let mut leaves = Vec::new();
        leaf_texts(value, &mut leaves);
        for leaf in leaves {
            let shown = apply(&leaf).unwrap_or_else(|| DROPPED.to_owned());
            replaced.add(leaf, shown);
        }
    }
    shown
}

fn leaf_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push(s.clone()),
        Value::Object(map) => map.values().for_each(|v| leaf_texts(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaf_texts(v, out)),
        other => out.push(other.to_string()),
    }
}

/// A rejected record as the ops team sees it: its payload masked by `rules` (`None`: every
/// field), and its reasons and origin, which quote the record, with every value that the
/// payload masks replaced by what the payload shows; an HTTP push's idempotency key in the
/// origin (`http:DEPT:KEY record N`) shown as its keyed hash.
pub fn mask_reject(
    raw: &str,
    reasons: &Value,
    origin: &str,
    rules: Option<&BTreeMap<String, MaskRule>>,
    key: &ring::hmac::Key,
) -> (Masked, Value, String) {
    let (masked, replaced) = mask_with_replacements(raw, rules, key);
    let reasons = match reasons {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|reason| hide_masked_field_message(reason, rules))
                .map(|reason| mask_texts(&reason, &replaced))
                .collect(),
        ),
        other => mask_texts(other, &replaced),
    };
    let origin = replaced.apply(&mask_push_origin(origin, key));
    (masked, reasons, origin)
}

/// A reason whose pointer passes through a field the dataset masks, with its message
/// replaced by one naming the field and its rule: a check may quote what it read out of the
/// value in another shape (the birth date or the check digit of an identity number), which
/// no replacement of the value's text finds. The pointer and the rule stay.
fn hide_masked_field_message(reason: &Value, rules: Option<&BTreeMap<String, MaskRule>>) -> Value {
    let Value::Object(map) = reason else {
        return reason.clone();
    };
    let Some(pointer) = map.get("pointer").and_then(Value::as_str) else {
        return reason.clone();
    };
    let hidden = |why: String| {
        let mut map = map.clone();
        map.insert("message".to_owned(), Value::String(why));
        Value::Object(map)
    };
    // A pointer cut to its stored length may have lost the masked field's segment.
    if split_cut_marker(pointer).is_some() {
        return hidden(
            "the message is hidden: its pointer was cut, and may pass through a masked field"
                .to_owned(),
        );
    }
    // A dataset the registry does not know has no rules: every field is masked.
    let Some(rules) = rules else {
        return if pointer.is_empty() {
            reason.clone()
        } else {
            hidden(
                "the message is hidden: the dataset is unknown, so every field is masked"
                    .to_owned(),
            )
        };
    };
    let masked = pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .find_map(|field| rules.get(&field).map(|rule| (field, *rule)));
    let Some((field, rule)) = masked else {
        return reason.clone();
    };
    hidden(format!(
        "the value of `{field}` breaks this rule; the message is hidden because the \
         dataset masks `{field}` ({})",
        rule_name(rule)
    ))
}

fn rule_name(rule: MaskRule) -> &'static str {
    match rule {
        MaskRule::Partial => "partial",
        MaskRule::Hash => "hash",
        MaskRule::Drop => "drop",
    }
}

/// Every string of `reasons` but the pointers and rule names, masked by `replaced`.
fn mask_texts(value: &Value, replaced: &Replacements) -> Value {
    match value {
        Value::String(s) => Value::String(replaced.apply(s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask_texts(v, replaced)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if k == "pointer" || k == "rule" {
                        v.clone()
                    } else {
                        mask_texts(v, replaced)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `http:DEPT:KEY record N` with KEY (the department's idempotency key, or the id the hub
/// gave the push) as its keyed hash; any other origin as it is.
fn mask_push_origin(origin: &str, key: &ring::hmac::Key) -> String {
    let Some(rest) = origin.strip_prefix("http:") else {
        return origin.to_owned();
    };
    let Some((department, rest)) = rest.split_once(':') else {
        return origin.to_owned();
    };
    let (push_key, tail) = match rest.rsplit_once(" record ") {
        Some((k, seq)) => (k, format!(" record {seq}")),
        None => (rest, String::new()),
    };
    format!("http:{department}:{}{tail}", keyed_hash(push_key, key))
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
    mask_fields(raw, &mut Replacements::default())
}

fn mask_fields(raw: &str, replaced: &mut Replacements) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut field = String::new();
    let mut flush = |field: &mut String, out: &mut String| {
        let value = field.trim();
        let shown = partial(value);
        out.push_str(&shown);
        replaced.add(value.to_owned(), shown);
        field.clear();
    };
    for c in raw.chars() {
        if matches!(
            c,
            ',' | ';' | '\t' | '|' | '\n' | '\r' | '"' | '{' | '}' | '[' | ']' | ':'
        ) {
            flush(&mut field, &mut out);
            out.push(c);
        } else {
            field.push(c);
        }
    }
    flush(&mut field, &mut out);
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

    #[test]
    fn a_reason_about_a_masked_field_does_not_reshape_its_value_into_view() {
        // The ID-number check quotes the birth date and the check digit it read out of the
        // value: neither is the value's text, so no replacement finds them.
        let raw = r#"{"legal_rep_id_number":"211102195013209203","previous":[{"legal_rep_id_number":"211102195001209204"}]}"#;
        let reasons = serde_json::json!([
            {"pointer": "/legal_rep_id_number", "rule": "format", "message": "birth date 1950-13-20 is not a real date"},
            {"pointer": "/previous/0/legal_rep_id_number", "rule": "format", "message": "check digit should be 3, found 4"},
            {"pointer": "/capital", "rule": "minimum", "message": "-1 is less than the minimum of 0"},
        ]);
        let (_, shown, _) = mask_reject(raw, &reasons, "x", Some(&rules()), &key());
        let text = shown.to_string();
        for secret in ["1950-13-20", "should be 3"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(shown[0]["pointer"], "/legal_rep_id_number");
        assert_eq!(shown[0]["rule"], "format");
        assert!(
            shown[1]["message"]
                .as_str()
                .unwrap()
                .contains("legal_rep_id_number"),
            "{text}"
        );
        // A reason about a field the dataset does not mask stays as it was.
        assert_eq!(shown[2]["message"], "-1 is less than the minimum of 0");
    }

    #[test]
    fn the_longest_beginning_of_any_masked_value_decides_where_a_cut_reason_is_masked() {
        // The phone's first eight digits are left at the cut; the identity number begins with
        // the cut's last two characters: the phone's beginning, the longer, is masked whole.
        let raw = r#"{"contact_mobile":"13912345678","legal_rep_id_number":"451102195001209203"}"#;
        let reasons = serde_json::json!([
            {"pointer": "", "rule": "type", "message": "{\"contact_mobile\":\"13912345… (3000 bytes in all)"},
        ]);
        let (_, shown, _) = mask_reject(raw, &reasons, "x", Some(&rules()), &key());
        let message = shown[0]["message"].as_str().unwrap();
        assert!(!message.contains("139123"), "{message}");
        // A dataset the registry does not know: no message but the record's own is shown.
        let reasons = serde_json::json!([
            {"pointer": "/id", "rule": "format", "message": "birth date 1950-13-20 is not a real date"},
            {"pointer": "/a/b… (1200 bytes in all)", "rule": "format", "message": "check digit should be 3"},
        ]);
        let (_, shown, _) = mask_reject(r#"{"id":"x"}"#, &reasons, "x", None, &key());
        let text = shown.to_string();
        assert!(
            !text.contains("1950-13-20") && !text.contains("should be 3"),
            "{text}"
        );
        // A cut pointer hides its message even where the dataset has rules.
        let (_, shown, _) = mask_reject(raw, &reasons, "x", Some(&rules()), &key());
        assert!(!shown.to_string().contains("should be 3"), "{shown}");
    }

    #[test]
    fn a_reason_cut_inside_a_masked_value_does_not_show_its_beginning() {
        let raw = r#"{"legal_rep_name":"王小明","legal_rep_id_number":"211102195001209203"}"#;
        // A reason quoting the whole record, cut (as reasons are, to 1000 bytes) in the
        // middle of the identity number.
        let reasons = serde_json::json!([
            {"pointer": "", "rule": "type", "message": "{\"legal_rep_name\":\"王小明\",\"legal_rep_id_number\":\"21110219500… (5000 bytes in all)"},
        ]);
        let (_, shown, _) = mask_reject(raw, &reasons, "x", Some(&rules()), &key());
        let message = shown[0]["message"].as_str().unwrap();
        assert!(!message.contains("21110219500"), "{message}");
        assert!(!message.contains("王小明"), "{message}");
        assert!(message.ends_with("… (5000 bytes in all)"), "{message}");
    }

    #[test]
    fn reasons_and_origins_quote_the_record_masked_as_its_payload() {
        let raw = r#"{"legal_rep_id_number":211102195001209203,"legal_rep_name":"王小明","contact_mobile":"13912345678","previous":[{"legal_rep_id_number":"21110219500120920X"}]}"#;
        let reasons = serde_json::json!([
            {"pointer": "", "rule": "additionalProperties", "message": "211102195001209203 is not of type \"string\""},
            {"pointer": "", "rule": "not", "message": "\"13912345678\" does not match"},
            {"pointer": "/previous", "rule": "maxItems", "message": "[{\"legal_rep_id_number\":\"21110219500120920X\"}] has more than 0 items"},
            {"pointer": "/contact_mobile", "rule": "pattern", "message": "\"13912345678\" does not match"},
        ]);
        let (m, shown, origin) = mask_reject(
            raw,
            &reasons,
            "http:market-regulation:batch-7 record 3",
            Some(&rules()),
            &key(),
        );
        let payload: Value = serde_json::from_str(&m.text).unwrap();
        let hashed = payload["legal_rep_id_number"].as_str().unwrap();
        let nested = payload["previous"][0]["legal_rep_id_number"]
            .as_str()
            .unwrap();
        assert!(nested.starts_with("hash:"), "{payload}");
        let text = shown.to_string();
        for secret in ["211102195001209203", "21110219500120920X", "13912345678"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(
            shown[0]["message"],
            format!("{hashed} is not of type \"string\"")
        );
        assert_eq!(shown[1]["message"], "\"[dropped]\" does not match");
        assert!(shown[2]["message"].as_str().unwrap().contains(nested));
        assert_eq!(shown[2]["pointer"], "/previous");
        assert_eq!(shown[3]["pointer"], "/contact_mobile");
        assert_eq!(shown[3]["rule"], "pattern");
        assert!(
            shown[3]["message"]
                .as_str()
                .unwrap()
                .contains("masks `contact_mobile` (drop)"),
            "{text}"
        );
        assert_eq!(
            origin,
            format!(
                "http:market-regulation:{} record 3",
                keyed_hash("batch-7", &key())
            )
        );
        // A CSV line: every field masked, and so is every reason quoting one.
        let (_, shown, origin) = mask_reject(
            "91211100MA0XXXXX1,王小明,21110219900101123X",
            &serde_json::json!([{"pointer": "", "rule": "csv", "message": "`21110219900101123X` in column 3"}]),
            "feed.csv line 4",
            None,
            &key(),
        );
        assert_eq!(shown[0]["message"], "`2****************X` in column 3");
        assert_eq!(origin, "feed.csv line 4");
    }
}
