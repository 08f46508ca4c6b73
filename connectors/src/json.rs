//! A record's JSON text parsed into the field map the validator reads.
//!
//! What is accepted here must mean one thing to every reader, because a valid record is
//! published as the bytes it came as and stored by PostgreSQL from those bytes, while it was
//! validated as the value parsed here. So two things JSON itself allows are refused:
//!
//! - an object naming a member twice (`duplicate_member`): readers disagree on which value
//!   counts (the validator would see the last, another reader the first);
//! - a number that cannot be read back as written (`number_precision`): the repository keeps
//!   the decimal text exactly, but the validator and every reader of the API see it as a
//!   64-bit integer or a double, so `12345678901234567890123` or `0.10000000000000000001`
//!   would be validated as one number and served as another.
//!
//! Text PostgreSQL refuses (`\u0000`) and limits that apply to every record, however it was
//! read, are checked on the parsed value by `bohai_schemas::storable`.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::ReadFailure;

/// Parses JSON text that must be one JSON object.
pub(crate) fn json_object(text: &str) -> Result<Map<String, Value>, ReadFailure> {
    let found = Found::default();
    let mut parser = serde_json::Deserializer::from_str(text);
    let top = parser
        .deserialize_any(TopLevel(&found))
        .and_then(|top| parser.end().map(|()| top));
    match top {
        Ok(Ok(map)) => {
            if found.inexact_number.get() {
                check_numbers(text, &map)?;
            }
            Ok(map)
        }
        Ok(Err(kind)) => Err(ReadFailure {
            pointer: String::new(),
            rule: "not_an_object",
            message: format!("a record must be a JSON object, found {kind}"),
        }),
        Err(e) => match found.duplicate.into_inner() {
            Some(duplicate) => Err(duplicate.into_failure()),
            None => Err(ReadFailure {
                pointer: String::new(),
                rule: "json_syntax",
                message: format!("not JSON: {e}"),
            }),
        },
    }
}

/// What the parse noticed on its way.
#[derive(Default)]
struct Found {
    /// An object named a member twice: where.
    duplicate: RefCell<Option<Duplicate>>,
    /// A number was read as a double (a fraction, an exponent or an integer beyond 64 bits),
    /// so its text must be compared with the value it was read as.
    inexact_number: Cell<bool>,
}

/// A member named twice, and the path to its object, innermost segment first.
struct Duplicate {
    name: String,
    path: Vec<String>,
}

impl Duplicate {
    fn into_failure(self) -> ReadFailure {
        let mut pointer = String::new();
        for segment in self.path.iter().rev().chain(std::iter::once(&self.name)) {
            pointer.push('/');
            push_escaped(&mut pointer, segment);
        }
        ReadFailure {
            pointer,
            message: format!(
                "member `{}` is given more than once; a record must name each member once",
                self.name
            ),
            rule: "duplicate_member",
        }
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

/// The members of an object as a map, refusing a name given twice.
///
/// The members are gathered in a vector, sorted by name (which also shows a duplicate as two
/// neighbours) and the map is built from them at once: a `BTreeMap` built from sorted entries
/// costs a fraction of inserting them one by one, which was a sixth of a record's cost in the
/// ingest profile.
fn members<'de, A: MapAccess<'de>>(
    found: &Found,
    mut access: A,
) -> Result<Map<String, Value>, A::Error> {
    let mut entries: Vec<(String, Value)> = Vec::with_capacity(access.size_hint().unwrap_or(16));
    while let Some(name) = access.next_key::<String>()? {
        match access.next_value_seed(Element(found)) {
            Ok(value) => entries.push((name, value)),
            Err(e) => {
                if let Some(d) = found.duplicate.borrow_mut().as_mut() {
                    d.path.push(name);
                }
                return Err(e);
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        *found.duplicate.borrow_mut() = Some(Duplicate {
            name: pair[0].0.clone(),
            path: Vec::new(),
        });
        return Err(de::Error::custom("a member is given more than once"));
    }
    Ok(entries.into_iter().collect())
}

/// The top level of a record's text: its members, or what it is instead of an object.
struct TopLevel<'f>(&'f Found);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Result<Map<String, Value>, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Self::Value, A::Error> {
        members(self.0, access).map(Ok)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err("null"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("a string"))
    }
}

/// A value inside a record: serde_json's `Value`, with the record's own checks.
struct Element<'f>(&'f Found);

impl<'de> DeserializeSeed<'de> for Element<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.inexact_number.set(true);
        // serde_json never reads a JSON number as a double that is not finite.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(items.size_hint().unwrap_or(0).min(1024));
        loop {
            match items.next_element_seed(Element(self.0)) {
                Ok(Some(v)) => values.push(v),
                Ok(None) => return Ok(Value::Array(values)),
                Err(e) => {
                    if let Some(d) = self.0.duplicate.borrow_mut().as_mut() {
                        d.path.push(values.len().to_string());
                    }
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<Value, A::Error> {
        members(self.0, access).map(Value::Object)
    }
}

/// Compares every number in `text` that was read as a double with the text it was written as:
/// the first one that reads back as another number is refused, with its place in `map`.
fn check_numbers(text: &str, map: &Map<String, Value>) -> Result<(), ReadFailure> {
    for token in number_tokens(text) {
        if let Some(read_as) = inexact(token) {
            let pointer = read_as
                .as_ref()
                .and_then(|v| pointer_to_number(map, v))
                .unwrap_or_default();
            let message = match read_as {
                Some(v) => format!(
                    "the number {} cannot be kept exactly: every reader would see {v}; \
                     send it as a string if every digit matters",
                    abbreviated(token)
                ),
                None => format!(
                    "the number {} is beyond what can be kept exactly",
                    abbreviated(token)
                ),
            };
            return Err(ReadFailure {
                pointer,
                rule: "number_precision",
                message,
            });
        }
    }
    Ok(())
}

/// The number tokens of JSON text (outside strings), as written.
fn number_tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    // Skip the string: up to the next quote that no backslash escapes.
                    i += 1;
                    while i < bytes.len() {
                        match bytes[i] {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                    i += 1;
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while i < bytes.len()
                        && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    {
                        i += 1;
                    }
                    return text.get(start..i);
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// The most characters a number may be written with.
const MAX_NUMBER_CHARS: usize = 100;
/// The largest exponent a number may be written with (a double's range ends near 1e308).
const MAX_EXPONENT: i64 = 400;

/// Whether the number written as `text` is read back exactly (see [`inexact`]).
pub(crate) fn reads_back_exactly(text: &str) -> bool {
    inexact(text).is_none()
}

/// `None` when the number written as `token` is read back exactly; else what it is read as
/// (`Some(None)` when it cannot be read as a number at all).
fn inexact(token: &str) -> Option<Option<Value>> {
    // PostgreSQL's numeric refuses more than 16,383 digits after the point and very large
    // exponents (`0e-16384` reads as 0 here, and the repository would refuse it); no writer
    // of real data needs more than this to write a number a double can hold.
    let exponent = token
        .find(['e', 'E'])
        .map(|at| token[at + 1..].trim_start_matches('+').parse::<i64>().ok());
    if token.len() > MAX_NUMBER_CHARS
        || matches!(exponent, Some(None))
        || exponent.flatten().is_some_and(|e| e.abs() > MAX_EXPONENT)
    {
        return Some(None);
    }
    let integer = !token.contains(['.', 'e', 'E']);
    if integer && (token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok()) {
        return None;
    }
    let Some(read) = token
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
    else {
        return Some(None);
    };
    // An integer beyond 64 bits is read as a double: never exact for a reader of integers.
    if !integer && decimal(token) == decimal(&read.to_string()) {
        return None;
    }
    Some(Some(read))
}

/// A decimal number's sign, significant digits and the power of ten of its first digit, so
/// that `1.50`, `15e-1` and `0.15E1` compare equal; `None` for text that is not a number.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..]
                .trim_start_matches('+')
                .parse::<i64>()
                .ok()?,
        ),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let significant = digits.trim_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = i64::try_from(whole.len()).ok()? - i64::try_from(leading).ok()?;
    Some((
        negative,
        significant.to_owned(),
        point.checked_add(exponent)?,
    ))
}

/// The pointer to the first number in `map` equal to `number`.
fn pointer_to_number(map: &Map<String, Value>, number: &Value) -> Option<String> {
    fn find(value: &Value, number: &Value, pointer: &mut String) -> bool {
        let len = pointer.len();
        let found = match value {
            Value::Number(_) => value == number,
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                pointer.truncate(len);
                pointer.push('/');
                pointer.push_str(&i.to_string());
                find(v, number, pointer)
            }),
            Value::Object(members) => members.iter().any(|(k, v)| {
                pointer.truncate(len);
                pointer.push('/');
                push_escaped(pointer, k);
                find(v, number, pointer)
            }),
            _ => false,
        };
        if !found {
            pointer.truncate(len);
        }
        found
    }
    let mut pointer = String::new();
    map.iter()
        .any(|(k, v)| {
            pointer.clear();
            pointer.push('/');
            push_escaped(&mut pointer, k);
            find(v, number, &mut pointer)
        })
        .then_some(pointer)
}

/// At most 40 characters of a number, for a message.
fn abbreviated(token: &str) -> String {
    match token.get(..40) {
        Some(start) if token.len() > 40 => format!("{start}… ({} characters)", token.len()),
        _ => token.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_parses_to_the_same_map_as_serde_json_value() {
        for text in [
            r#"{"b": 1, "a": "甲", "c": {"z": [1, 2.5, null, {"y": -0.125}]}, "d": true}"#,
            r#"{}"#,
            r#" {"only": "x"} "#,
            r#"{"n": [18446744073709551615, -9223372036854775808, 1e300, 0.1, 1.50, 15e-1]}"#,
            r#"{"s": "a \" 0.10000000000000000001 \\", "t": 3}"#,
        ] {
            let expected = match serde_json::from_str::<Value>(text).unwrap() {
                Value::Object(map) => map,
                other => panic!("{other}"),
            };
            assert_eq!(json_object(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        for (text, pointer) in [
            (r#"{"k": 1, "k": 2}"#, "/k"),
            (r#"{"a": {"x": 1, "y": 2, "x": 1}}"#, "/a/x"),
            (r#"{"a": [0, {"b/c": {"~": 1, "~": 1}}]}"#, "/a/1/b~1c/~0"),
        ] {
            let failure = json_object(text).unwrap_err();
            assert_eq!(failure.rule, "duplicate_member", "{text}");
            assert_eq!(failure.pointer, pointer, "{text}");
            assert!(failure.message.contains("more than once"), "{text}");
        }
    }

    #[test]
    fn a_number_that_would_be_read_as_another_is_refused_with_its_place() {
        for (text, pointer, read_as) in [
            (
                r#"{"a": 12345678901234567890123}"#,
                "/a",
                "1.2345678901234568e+22",
            ),
            (
                r#"{"a": {"b": [1, -18446744073709551616]}}"#,
                "/a/b/1",
                "-1.8446744073709552e+19",
            ),
            (
                r#"{"x": 1, "pi": 3.14159265358979323846}"#,
                "/pi",
                "3.141592653589793",
            ),
            (r#"{"a": 0.10000000000000000001}"#, "/a", "0.1"),
        ] {
            let failure = json_object(text).unwrap_err();
            assert_eq!(failure.rule, "number_precision", "{text}");
            assert_eq!(failure.pointer, pointer, "{text}");
            assert!(
                failure.message.contains(read_as),
                "{text}: {}",
                failure.message
            );
        }
        // Beyond a double's range: serde_json refuses the text itself.
        assert_eq!(
            json_object(r#"{"a": 1e400}"#).unwrap_err().rule,
            "json_syntax"
        );
        // Numbers PostgreSQL's numeric refuses although a double reads them (as 0 or 1).
        let long = format!(r#"{{"a": 1.{}}}"#, "0".repeat(16_384));
        for text in [
            r#"{"a": 0e-16384}"#,
            r#"{"a": 0e1073741823}"#,
            long.as_str(),
        ] {
            let failure = json_object(text).unwrap_err();
            assert_eq!(failure.rule, "number_precision", "{}", &text[..20]);
            assert!(failure.message.contains("beyond"), "{}", failure.message);
        }
        // serde_json reads decimals exactly (float_roundtrip): this is not 1.
        assert_eq!(
            json_object(r#"{"a": 0.9999999999999999}"#).unwrap()["a"],
            json!(0.9999999999999999)
        );
        assert_ne!(json!(0.9999999999999999), json!(1.0));
    }

    #[test]
    fn decimals_compare_by_value_not_by_spelling() {
        assert_eq!(decimal("1.50"), decimal("15e-1"));
        assert_eq!(decimal("0.15E1"), decimal("1.5"));
        assert_eq!(decimal("100"), decimal("1e2"));
        assert_eq!(decimal("-0.0"), decimal("0"));
        assert_ne!(decimal("-1.5"), decimal("1.5"));
        assert_ne!(decimal("0.1"), decimal("0.10000000000000000001"));
        assert_eq!(decimal("1e99999999999999999999"), None);
    }

    #[test]
    fn text_that_is_not_unicode_is_refused() {
        // A lone surrogate escape is not a character: PostgreSQL would refuse it too.
        for text in [r#"{"a": "\ud800"}"#, r#"{"a": "x\udc00y"}"#] {
            assert_eq!(json_object(text).unwrap_err().rule, "json_syntax", "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_what_it_is() {
        for (text, rule, found) in [
            ("[1, {\"a\": 2}]", "not_an_object", "an array"),
            ("null", "not_an_object", "null"),
            ("true", "not_an_object", "a boolean"),
            ("-3", "not_an_object", "a number"),
            ("1.5", "not_an_object", "a number"),
            ("\"text\"", "not_an_object", "a string"),
            ("{\"a\": 1", "json_syntax", "EOF"),
            ("{\"a\": 1} x", "json_syntax", "trailing characters"),
            ("", "json_syntax", "EOF"),
        ] {
            let failure = json_object(text).unwrap_err();
            assert_eq!(failure.rule, rule, "{text}");
            assert!(
                failure.message.contains(found),
                "{text}: {}",
                failure.message
            );
        }
        assert_eq!(json_object(r#"{"a": 1}"#).unwrap()["a"], json!(1));
    }
}
