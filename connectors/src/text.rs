//! Turning text fields into typed JSON values, in the declared character encoding.

use serde::Deserialize;
use serde_json::{Number, Value};

/// Character encoding of a text source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    /// UTF-8 (a leading byte-order mark is ignored).
    #[default]
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    /// GB 18030, which includes GBK; department exports are often in it.
    #[serde(rename = "gb18030", alias = "gbk")]
    Gb18030,
}

impl Encoding {
    /// Decodes `bytes`, or says where the first invalid sequence is.
    pub(crate) fn decode<'a>(self, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, str>, String> {
        match self {
            // SIMD validation first (a record is mostly Chinese text, the slow case of a
            // byte-by-byte check); the standard library finds where the error is.
            Encoding::Utf8 => match simdutf8::basic::from_utf8(bytes) {
                Ok(text) => Ok(std::borrow::Cow::Borrowed(text)),
                Err(_) => std::str::from_utf8(bytes)
                    .map(std::borrow::Cow::Borrowed)
                    .map_err(|e| {
                        format!("invalid UTF-8 at byte {} of the field", e.valid_up_to() + 1)
                    }),
            },
            Encoding::Gb18030 => encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .ok_or_else(|| "invalid GB18030/GBK byte sequence".to_owned()),
        }
    }
}

/// The JSON value of a text field for the declared JSON type; text that does not fit the type
/// stays a string, so that schema validation reports it with the field's name.
pub(crate) fn typed_value(text: &str, json_type: Option<&str>) -> Value {
    let t = text.trim();
    match json_type {
        Some("integer") => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        // Only a number every reader reads back as written: another stays text, which the
        // schema then refuses, rather than being rounded on the way in.
        Some("number") => t
            .parse::<f64>()
            .ok()
            .filter(|_| crate::json::reads_back_exactly(t))
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        Some("boolean") => match t {
            "true" | "TRUE" | "True" | "1" | "是" => Value::Bool(true),
            "false" | "FALSE" | "False" | "0" | "否" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        Some("array" | "object") => {
            serde_json::from_str(t).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gbk_and_reports_bad_bytes() {
        let (gbk, _, _) = encoding_rs::GBK.encode("盘锦市兴隆台区");
        assert_eq!(Encoding::Gb18030.decode(&gbk).unwrap(), "盘锦市兴隆台区");
        assert!(Encoding::Gb18030.decode(&[0x81, 0x20]).is_err());
        assert!(Encoding::Utf8.decode(&gbk).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn text_becomes_the_declared_type() {
        assert_eq!(typed_value("42", Some("integer")), Value::from(42));
        assert_eq!(typed_value("12.50", Some("number")), Value::from(12.5));
        assert_eq!(typed_value("是", Some("boolean")), Value::Bool(true));
        assert_eq!(typed_value("abc", Some("integer")), Value::from("abc"));
        assert_eq!(typed_value("0042", None), Value::from("0042"));
        assert_eq!(
            typed_value("[\"罚款\"]", Some("array")),
            serde_json::json!(["罚款"])
        );
    }
}
