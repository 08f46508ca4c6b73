//! A record's JSON text parsed into the field map the validator reads.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ReadFailure;

/// Parses JSON text that must be one JSON object.
pub(crate) fn json_object(text: &str) -> Result<Map<String, Value>, ReadFailure> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let top = parser
        .deserialize_any(TopLevel)
        .and_then(|top| parser.end().map(|()| top));
    match top {
        Ok(Ok(map)) => Ok(map),
        Ok(Err(kind)) => Err(ReadFailure {
            pointer: String::new(),
            rule: "not_an_object",
            message: format!("a record must be a JSON object, found {kind}"),
        }),
        Err(e) => Err(ReadFailure {
            pointer: String::new(),
            rule: "json_syntax",
            message: format!("not JSON: {e}"),
        }),
    }
}

/// The top level of a record's text: its members, or what it is instead of an object.
///
/// The members are gathered in a vector and the map is built from it at once: a `BTreeMap`
/// built from all its entries (sorted once, then filled bottom-up) costs a fraction of
/// inserting them one by one, which was a sixth of a record's cost in the ingest profile. A
/// name given twice keeps its last value, as with one-by-one inserts.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Result<Map<String, Value>, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, Value)> =
            Vec::with_capacity(members.size_hint().unwrap_or(16));
        while let Some(entry) = members.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Ok(entries.into_iter().collect()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_parses_to_the_same_map_as_serde_json_value() {
        for text in [
            r#"{"b": 1, "a": "甲", "c": {"z": [1, 2.5, null]}, "d": true}"#,
            r#"{}"#,
            r#" {"only": "x"} "#,
            r#"{"k": 1, "k": 2}"#,
        ] {
            let expected = match serde_json::from_str::<Value>(text).unwrap() {
                Value::Object(map) => map,
                other => panic!("{other}"),
            };
            assert_eq!(json_object(text).unwrap(), expected, "{text}");
        }
        assert_eq!(json_object(r#"{"k": 1, "k": 2}"#).unwrap()["k"], json!(2));
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
    }
}
