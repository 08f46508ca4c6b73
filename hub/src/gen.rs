//! Realistic generated feeds for tests and benchmarks (`bohai gen DATASET N`).
//!
//! Each record starts from one of the dataset's valid examples and gets fresh values: valid
//! resident identity numbers and credit codes, Panjin division codes, Chinese names, dates,
//! amounts, and the digits of patterned fields redrawn. Every record meant to be valid is
//! checked with the dataset's own validator (a field that came out wrong falls back to the
//! example's value); a configurable share is made invalid on purpose, in a known way.

use bohai_schemas::formats;
use bohai_schemas::{Dataset, LicenceType, RecordValidator};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "海", "波", "宁", "建", "国", "志", "红",
];
/// The furthest back (in days, about 20 years) a record's example dates are moved.
const MAX_DAY_SHIFT: i64 = 7305;
/// Panjin's county-level divisions: 双台子区, 兴隆台区, 大洼区, 盘山县.
const PANJIN_COUNTIES: &[&str] = &["211102", "211103", "211104", "211122"];

/// Why a generator cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The dataset (or licence type) has no valid examples to start from.
    #[error("`{dataset}` has no valid examples in {path}")]
    NoExamples {
        /// The dataset or licence type.
        dataset: String,
        /// Where they were looked for.
        path: String,
    },
}

/// A generated record and whether it was made valid.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The record.
    pub record: Map<String, Value>,
    /// True when the record should pass validation; false when it was broken on purpose.
    pub valid: bool,
}

/// A deterministic generator of records for one dataset (or licence subjects for one
/// licence type).
#[derive(Debug)]
pub struct Generator<'a> {
    schema: &'a Value,
    validator: &'a RecordValidator,
    /// The field a broken record loses: a dataset's first primary-key field.
    key_field: Option<&'a str>,
    /// Fields an `if` of the schema reads (a credit entry's `subject_type`): they keep the
    /// example's value, so that the fields their condition asks for are the ones present.
    conditions: Vec<&'a str>,
    templates: Vec<Map<String, Value>>,
    rng: StdRng,
    invalid_ratio: f64,
    /// Days every example date of the record being made moves by: one shift per record, so
    /// a record's dates keep their order and spacing (a list date stays before its end date).
    day_shift: i64,
}

impl<'a> Generator<'a> {
    /// A generator seeded with `seed`; `invalid_ratio` (0–1) of the records are invalid.
    pub fn new(dataset: &'a Dataset, seed: u64, invalid_ratio: f64) -> Result<Self, GenError> {
        let mut g = Self::from_parts(
            (&dataset.id, &dataset.dir),
            &dataset.schema,
            &dataset.validator,
            seed,
            invalid_ratio,
        )?;
        g.key_field = dataset.primary_key.first().map(String::as_str);
        Ok(g)
    }

    /// A generator of licence subjects (`{"holder", "fields"}`) of one licence type.
    pub fn for_licence_type(
        licence_type: &'a LicenceType,
        seed: u64,
        invalid_ratio: f64,
    ) -> Result<Self, GenError> {
        Self::from_parts(
            (&licence_type.id, &licence_type.dir),
            &licence_type.schema,
            &licence_type.validator,
            seed,
            invalid_ratio,
        )
    }

    fn from_parts(
        (id, dir): (&str, &std::path::Path),
        schema: &'a Value,
        validator: &'a RecordValidator,
        seed: u64,
        invalid_ratio: f64,
    ) -> Result<Self, GenError> {
        let path = dir.join("examples/valid.jsonl");
        let templates: Vec<Map<String, Value>> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Map<String, Value>>(l).ok())
            .collect();
        if templates.is_empty() {
            return Err(GenError::NoExamples {
                dataset: id.to_owned(),
                path: path.display().to_string(),
            });
        }
        Ok(Self {
            schema,
            validator,
            key_field: None,
            conditions: condition_fields(schema),
            templates,
            rng: StdRng::seed_from_u64(seed),
            invalid_ratio: invalid_ratio.clamp(0.0, 1.0),
            day_shift: 0,
        })
    }

    /// The next record.
    pub fn next_record(&mut self) -> Generated {
        let template = self.templates[self.rng.random_range(0..self.templates.len())].clone();
        self.day_shift = self.rng.random_range(-MAX_DAY_SHIFT..=0);
        let mut record = Map::with_capacity(template.len());
        for (field, example) in &template {
            if self.conditions.contains(&field.as_str()) {
                record.insert(field.clone(), example.clone());
                continue;
            }
            let prop = self
                .schema
                .get("properties")
                .and_then(|p| p.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            record.insert(field.clone(), self.value_for(field, &prop, example));
        }
        // A field that did not come out valid gets a gentler redraw (only its last run of
        // digits, which keeps years and fixed prefixes of patterned identifiers); if that
        // fails too, the example's value.
        for gentle in [true, false] {
            let value = Value::Object(record);
            let violations = self.validator.validate(&value);
            let Value::Object(fixed) = value else {
                unreachable!("built as an object")
            };
            record = fixed;
            if violations.is_empty() {
                break;
            }
            for v in violations {
                let field = v
                    .pointer
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default();
                if let Some(example) = template.get(field) {
                    let replacement = match example {
                        Value::String(s) if gentle => Value::String(self.redraw_last_digits(s)),
                        other => other.clone(),
                    };
                    record.insert(field.to_owned(), replacement);
                }
            }
        }
        if self.rng.random_bool(self.invalid_ratio) {
            self.break_record(&mut record);
            Generated {
                record,
                valid: false,
            }
        } else {
            Generated {
                record,
                valid: true,
            }
        }
    }

    fn value_for(&mut self, field: &str, prop: &Value, example: &Value) -> Value {
        // Nested objects (a licence's holder and fields): each property drawn the same way.
        if let (Value::Object(fields), Some(props)) = (example, prop.get("properties")) {
            let mut out = Map::with_capacity(fields.len());
            for (name, value) in fields {
                let p = props.get(name).cloned().unwrap_or(Value::Null);
                out.insert(name.clone(), self.value_for(name, &p, value));
            }
            return Value::Object(out);
        }
        if let Some(choices) = prop.get("enum").and_then(Value::as_array) {
            if !choices.is_empty() {
                return choices[self.rng.random_range(0..choices.len())].clone();
            }
        }
        match prop.get("format").and_then(Value::as_str) {
            Some(formats::RESIDENT_ID) => return Value::String(self.resident_id()),
            Some(formats::CREDIT_CODE) => return Value::String(self.credit_code()),
            Some(formats::DIVISION_CODE) => {
                return Value::String(PANJIN_COUNTIES[self.rng.random_range(0..4)].to_owned())
            }
            Some(formats::MOBILE) => {
                let second = self.rng.random_range(3..=9);
                let rest: u64 = self.rng.random_range(0..1_000_000_000);
                return Value::String(format!("1{second}{rest:09}"));
            }
            Some("date") => {
                let shifted = example
                    .as_str()
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .and_then(|d| d.checked_add_signed(chrono::TimeDelta::days(self.day_shift)));
                return Value::String(match shifted {
                    Some(d) => d.format("%Y-%m-%d").to_string(),
                    None => self.date(1995, 2024),
                });
            }
            Some("date-time") => {
                return Value::String(format!(
                    "{}T{:02}:{:02}:{:02}+08:00",
                    self.date(2023, 2024),
                    self.rng.random_range(8..18),
                    self.rng.random_range(0..60),
                    self.rng.random_range(0..60)
                ))
            }
            _ => {}
        }
        match example {
            Value::String(s) if field.ends_with("name") && s.chars().count() <= 4 => {
                Value::String(self.person_name())
            }
            Value::String(s) => Value::String(self.redraw_digits(s)),
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0) * self.rng.random_range(0.5..2.0);
                if let Some(i) = n.as_i64() {
                    // Integers (points, counts) scale the same way, staying integers.
                    let scaled = i.saturating_mul(self.rng.random_range(50..200)) / 100;
                    Value::from(scaled)
                } else {
                    serde_json::Number::from_f64((x * 100.0).round() / 100.0)
                        .map(Value::Number)
                        .unwrap_or_else(|| example.clone())
                }
            }
            Value::Bool(_) => Value::Bool(self.rng.random_bool(0.5)),
            other => other.clone(),
        }
    }

    fn redraw_digits(&mut self, s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    char::from(b'0' + self.rng.random_range(0..10u8))
                } else {
                    c
                }
            })
            .collect()
    }

    /// Redraws only the last run of ASCII digits of `s`.
    fn redraw_last_digits(&mut self, s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let Some(end) = chars.iter().rposition(char::is_ascii_digit) else {
            return s.to_owned();
        };
        let start = chars[..end]
            .iter()
            .rposition(|c| !c.is_ascii_digit())
            .map_or(0, |i| i + 1);
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if (start..=end).contains(&i) {
                    char::from(b'0' + self.rng.random_range(0..10u8))
                } else {
                    *c
                }
            })
            .collect()
    }

    fn person_name(&mut self) -> String {
        let mut name = SURNAMES[self.rng.random_range(0..SURNAMES.len())].to_owned();
        for _ in 0..self.rng.random_range(1..=2) {
            name.push_str(GIVEN[self.rng.random_range(0..GIVEN.len())]);
        }
        name
    }

    fn date(&mut self, from_year: u32, to_year: u32) -> String {
        format!(
            "{}-{:02}-{:02}",
            self.rng.random_range(from_year..=to_year),
            self.rng.random_range(1..=12),
            self.rng.random_range(1..=28)
        )
    }

    /// A valid 18-digit resident identity number of someone born in Panjin, 1950–2005.
    fn resident_id(&mut self) -> String {
        let first17 = format!(
            "{}{}{:03}",
            PANJIN_COUNTIES[self.rng.random_range(0..4)],
            self.date(1950, 2005).replace('-', ""),
            self.rng.random_range(0..1000)
        );
        with_id_check(&first17)
    }

    /// A valid unified social credit code of a Panjin enterprise (`91` + division + org code).
    fn credit_code(&mut self) -> String {
        const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
        let mut org: String = (0..8)
            .map(|_| char::from(CHARS[self.rng.random_range(0..10)]))
            .collect();
        // GB 11714 check character of the organisation code.
        let sum: u32 = org
            .bytes()
            .zip([3, 7, 9, 10, 5, 8, 4, 2])
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        org.push(match 11 - sum % 11 {
            10 => 'X',
            11 => '0',
            n => char::from_digit(n, 10).unwrap_or('0'),
        });
        let first17 = format!("91{}{org}", PANJIN_COUNTIES[self.rng.random_range(0..4)]);
        let sum: u32 = first17
            .chars()
            .zip([
                1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
            ])
            .map(|(c, w)| {
                let v = CHARS.iter().position(|x| char::from(*x) == c).unwrap_or(0);
                u32::try_from(v).unwrap_or(0) * w
            })
            .sum();
        let check = CHARS[((31 - sum % 31) % 31) as usize];
        format!("{first17}{}", char::from(check))
    }

    /// Breaks the record in one of several ways a department export goes wrong.
    fn break_record(&mut self, record: &mut Map<String, Value>) {
        let props = self
            .schema
            .get("properties")
            .cloned()
            .unwrap_or(Value::Null);
        let with_format = |name: &str| {
            record
                .keys()
                .find(|k| {
                    props
                        .get(*k)
                        .and_then(|p| p.get("format"))
                        .and_then(Value::as_str)
                        == Some(name)
                })
                .cloned()
        };
        match self.rng.random_range(0..4) {
            0 => {
                if let Some(k) = with_format(formats::RESIDENT_ID) {
                    if let Some(Value::String(id)) = record.get(&k) {
                        // Same number with the wrong check digit.
                        let last = if id.ends_with('0') { '1' } else { '0' };
                        let broken = format!("{}{last}", &id[..17]);
                        record.insert(k, Value::String(broken));
                        return;
                    }
                }
            }
            1 => {
                if let Some(k) = with_format(formats::DIVISION_CODE) {
                    record.insert(k, Value::String("999999".to_owned()));
                    return;
                }
            }
            2 => {
                if let Some(k) =
                    with_format(formats::MOBILE).or_else(|| with_format(formats::CREDIT_CODE))
                {
                    record.insert(k, Value::String("12345".to_owned()));
                    return;
                }
            }
            _ => {}
        }
        // Otherwise: a required field (the primary key, for a dataset) is missing.
        let required = self.key_field.or_else(|| {
            self.schema
                .get("required")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(Value::as_str)
        });
        if let Some(first) = required {
            record.remove(first);
        }
    }
}

/// The top-level fields that the schema's conditions (`if`, at the top or in `allOf`) read.
fn condition_fields(schema: &Value) -> Vec<&str> {
    let top = std::iter::once(schema);
    let all_of = schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut fields: Vec<&str> = top
        .chain(all_of)
        .filter_map(|s| s.get("if"))
        .flat_map(|c| {
            let read = c.get("properties").and_then(Value::as_object);
            let required = c.get("required").and_then(Value::as_array);
            read.into_iter()
                .flat_map(|p| p.keys().map(String::as_str))
                .chain(required.into_iter().flatten().filter_map(Value::as_str))
        })
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

fn with_id_check(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!(
        "{first17}{}",
        char::from(b"10X98765432"[(sum % 11) as usize])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bohai_schemas::Registry;

    #[test]
    fn generated_records_are_valid_or_broken_as_declared() {
        let registry = Registry::load_builtin().unwrap();
        for ds in &registry.datasets {
            let mut g = Generator::new(ds, 7, 0.2).unwrap();
            let (mut valid, mut invalid) = (0, 0);
            for _ in 0..300 {
                let r = g.next_record();
                let violations = ds.validator.validate(&Value::Object(r.record.clone()));
                assert_eq!(
                    violations.is_empty(),
                    r.valid,
                    "{}: {violations:?} {:?}",
                    ds.id,
                    r.record
                );
                if r.valid {
                    valid += 1
                } else {
                    invalid += 1
                }
            }
            assert!(
                valid > 150 && invalid > 20,
                "{}: {valid} valid, {invalid} invalid",
                ds.id
            );
        }
    }

    #[test]
    fn patterned_primary_keys_are_redrawn_not_copied() {
        let registry = Registry::load_builtin().unwrap();
        for ds in &registry.datasets {
            let mut g = Generator::new(ds, 5, 0.0).unwrap();
            let keys: std::collections::HashSet<String> = (0..1000)
                .map(|_| {
                    let r = g.next_record();
                    crate::pipeline::ingest::primary_key(ds, &r.record).unwrap()
                })
                .collect();
            assert!(
                keys.len() > 900,
                "{}: only {} distinct keys in 1000",
                ds.id,
                keys.len()
            );
        }
    }

    #[test]
    fn fields_a_condition_reads_keep_the_example_value() {
        let registry = Registry::load_builtin().unwrap();
        let ds = registry.dataset("credit-black-list").unwrap();
        assert_eq!(condition_fields(&ds.schema), vec!["subject_type"]);
        let mut g = Generator::new(ds, 3, 0.0).unwrap();
        let types: std::collections::HashSet<String> = (0..200)
            .map(|_| {
                let r = g.next_record();
                let t = r.record["subject_type"].as_str().unwrap().to_owned();
                // A natural person is identified by a resident identity number only.
                assert_eq!(
                    t == "自然人",
                    r.record.contains_key("subject_id_number"),
                    "{:?}",
                    r.record
                );
                t
            })
            .collect();
        assert!(types.len() >= 3, "{types:?}");
    }

    #[test]
    fn a_record_s_dates_keep_their_order() {
        let registry = Registry::load_builtin().unwrap();
        for id in ["credit-commitments", "credit-red-list", "credit-black-list"] {
            let ds = registry.dataset(id).unwrap();
            let mut g = Generator::new(ds, 11, 0.0).unwrap();
            let mut list_dates = std::collections::HashSet::new();
            for _ in 0..300 {
                let r = g.next_record();
                let date = |f: &str| r.record.get(f).and_then(Value::as_str).map(str::to_owned);
                let list = date("list_date").unwrap();
                if let Some(end) = date("end_date") {
                    assert!(list <= end, "{id}: listed {list}, ends {end}");
                }
                list_dates.insert(list);
            }
            assert!(
                list_dates.len() > 200,
                "{id}: {} list dates",
                list_dates.len()
            );
        }
    }

    #[test]
    fn generated_identity_numbers_and_credit_codes_pass_the_format_checks() {
        let registry = Registry::load_builtin().unwrap();
        let ds = registry.dataset("business-registrations").unwrap();
        let mut g = Generator::new(ds, 1, 0.0).unwrap();
        for _ in 0..1000 {
            assert_eq!(formats::check_resident_id(&g.resident_id()), Ok(()));
            assert_eq!(formats::check_credit_code(&g.credit_code()), Ok(()));
        }
    }
}
