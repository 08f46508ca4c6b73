//! What the shared repository can store, checked on every record before it is accepted,
//! however it was read (JSON text, a CSV line, a table row): a record the validator passes
//! must never be one that PostgreSQL refuses later, when it would stop the repository sink.
//!
//! The limits (also in `docs/formats.md`):
//! - no text (member name or string value) contains U+0000: PostgreSQL's `jsonb` and `text`
//!   refuse it (`storable_text`);
//! - values nest at most [`MAX_DEPTH`] levels below the record (`nesting_depth`);
//! - a member name is at most [`MAX_MEMBER_NAME_BYTES`] bytes (`member_name_size`);
//! - a primary key is at most [`MAX_KEY_BYTES`] bytes as text (`key_size`, checked where the
//!   key is made): the repository indexes it, and an index entry has a size limit.
//!
//! Lone surrogates cannot reach here (Rust strings are Unicode, and the JSON parser refuses
//! `\ud800` alone), and numbers that cannot be kept exactly are refused by the JSON parser,
//! which still sees their text.

use serde_json::{Map, Value};

use crate::Violation;

/// The deepest a value may nest below the record: a record is level 0, its members' values
/// level 1.
pub const MAX_DEPTH: usize = 32;

/// The longest member name, in bytes of UTF-8.
pub const MAX_MEMBER_NAME_BYTES: usize = 256;

/// The longest primary key, in bytes of its text.
pub const MAX_KEY_BYTES: usize = 512;

/// At most this many reasons are listed for one record: a record can repeat a fault endlessly.
const MAX_REASONS: usize = 20;

/// Every reason the repository could not store `record`; empty when it can.
pub fn check(record: &Map<String, Value>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut pointer = String::new();
    members(record, 1, &mut pointer, &mut found);
    found
}

fn members(
    map: &Map<String, Value>,
    depth: usize,
    pointer: &mut String,
    found: &mut Vec<Violation>,
) {
    for (name, value) in map {
        let len = pointer.len();
        pointer.push('/');
        push_escaped(pointer, name);
        if name.len() > MAX_MEMBER_NAME_BYTES {
            report(
                found,
                pointer,
                "member_name_size",
                format!(
                    "a member name is {} bytes long; at most {MAX_MEMBER_NAME_BYTES} are stored",
                    name.len()
                ),
            );
        }
        if name.contains('\0') {
            report(found, pointer, "storable_text", nul_message("member name"));
        }
        value_at(value, depth, pointer, found);
        pointer.truncate(len);
    }
}

fn value_at(value: &Value, depth: usize, pointer: &mut String, found: &mut Vec<Violation>) {
    match value {
        Value::String(s) if s.contains('\0') => {
            report(found, pointer, "storable_text", nul_message("text"));
        }
        Value::Array(_) | Value::Object(_) if depth >= MAX_DEPTH => report(
            found,
            pointer,
            "nesting_depth",
            format!("values nest deeper than {MAX_DEPTH} levels here"),
        ),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                value_at(item, depth + 1, pointer, found);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => members(map, depth + 1, pointer, found),
        _ => {}
    }
}

fn nul_message(what: &str) -> String {
    format!("the {what} contains the character U+0000, which the repository cannot store")
}

fn report(found: &mut Vec<Violation>, pointer: &str, rule: &str, message: String) {
    if found.len() < MAX_REASONS {
        found.push(Violation::new(pointer, rule, message));
    }
}

/// The longest pointer or message of a reason kept, in bytes; a longer one is cut.
pub const MAX_REASON_BYTES: usize = 1000;

/// The most reasons kept for one rejected record.
pub const MAX_RECORD_REASONS: usize = 20;

/// `violation` as it can be stored and sent with its record: every U+0000 of its pointer and
/// message written as the six characters `\u0000` (a reason quotes the record, and the
/// reasons of a rejected record are stored too, where U+0000 cannot be), each cut to
/// [`MAX_REASON_BYTES`] (a reason that quotes a long value would otherwise make a
/// dead-letter record larger than the broker takes).
pub fn storable_violation(mut violation: Violation) -> Violation {
    violation.pointer = cut(storable_text(violation.pointer));
    violation.message = cut(storable_text(violation.message));
    violation
}

/// The reasons of one rejected record as they are kept: each storable, at most
/// [`MAX_RECORD_REASONS`] of them, the last saying how many more there were.
pub fn storable_reasons(reasons: Vec<Violation>) -> Vec<Violation> {
    let total = reasons.len();
    let mut kept: Vec<Violation> = reasons
        .into_iter()
        .take(MAX_RECORD_REASONS)
        .map(storable_violation)
        .collect();
    if total > MAX_RECORD_REASONS {
        kept.pop();
        kept.push(Violation::new(
            "",
            "more_reasons",
            format!(
                "and {} more reasons, not listed",
                total - MAX_RECORD_REASONS + 1
            ),
        ));
    }
    kept
}

/// `text` cut to at most [`MAX_REASON_BYTES`] at a character boundary, saying how long it was.
fn cut(text: String) -> String {
    if text.len() <= MAX_REASON_BYTES {
        return text;
    }
    let mut end = MAX_REASON_BYTES - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// `text` with every U+0000 written as the six characters `\u0000`.
pub fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\\u0000")
    } else {
        text
    }
}

/// Appends a JSON pointer segment, escaped (RFC 6901).
fn push_escaped(pointer: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(record: Value) -> Vec<(String, String)> {
        let Value::Object(map) = record else {
            panic!("not an object")
        };
        check(&map)
            .into_iter()
            .map(|v| (v.pointer, v.rule))
            .collect()
    }

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn a_record_the_repository_keeps_passes() {
        assert!(
            rules(json!({"name": "张三", "a/b": {"c": [1, "x", null]}, "deep": nested(31)}))
                .is_empty()
        );
    }

    #[test]
    fn text_with_u0000_is_refused_wherever_it_is() {
        assert_eq!(
            rules(json!({"address": "盘锦\u{0}市", "ok": "x", "list": [{"k\u{0}": 1}]})),
            vec![
                ("/address".to_owned(), "storable_text".to_owned()),
                ("/list/0/k\u{0}".to_owned(), "storable_text".to_owned()),
            ]
        );
    }

    #[test]
    fn nesting_and_names_have_limits() {
        assert_eq!(
            rules(json!({"deep": nested(32)})),
            vec![(
                format!("/deep{}", "/0".repeat(31)),
                "nesting_depth".to_owned()
            )]
        );
        let long = "n".repeat(MAX_MEMBER_NAME_BYTES + 1);
        assert_eq!(
            rules(json!({ long.clone(): 1 })),
            vec![(format!("/{long}"), "member_name_size".to_owned())]
        );
    }

    #[test]
    fn reasons_that_quote_u0000_can_be_stored() {
        let v = storable_violation(Violation::new("/a\u{0}b", "storable_text", "x\u{0}"));
        assert_eq!(
            (v.pointer.as_str(), v.message.as_str()),
            ("/a\\u0000b", "x\\u0000")
        );
        assert_eq!(storable_text("plain".to_owned()), "plain");
    }

    #[test]
    fn reasons_are_bounded_in_length_and_number() {
        let long = "盘".repeat(2000);
        let v = storable_violation(Violation::new(
            format!("/{long}"),
            "maxLength",
            long.clone(),
        ));
        assert!(v.message.len() <= MAX_REASON_BYTES, "{}", v.message.len());
        assert!(v.pointer.len() <= MAX_REASON_BYTES);
        assert!(
            v.message.ends_with("(6000 bytes in all)"),
            "{}",
            &v.message[900..]
        );
        let many: Vec<Violation> = (0..50)
            .map(|i| Violation::new(format!("/{i}"), "type", "x"))
            .collect();
        let kept = storable_reasons(many);
        assert_eq!(kept.len(), MAX_RECORD_REASONS);
        assert_eq!(kept[19].rule, "more_reasons");
        assert!(kept[19].message.contains("31 more"), "{}", kept[19].message);
        assert_eq!(
            storable_reasons(vec![Violation::new("/a", "type", "x")]).len(),
            1
        );
    }

    #[test]
    fn a_record_that_repeats_a_fault_lists_it_a_bounded_number_of_times() {
        let many: Vec<Value> = (0..1000).map(|_| json!("\u{0}")).collect();
        assert_eq!(rules(json!({ "many": many })).len(), MAX_REASONS);
    }
}
