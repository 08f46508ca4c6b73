//! The named formats Chinese government data needs, usable in any dataset schema as
//! `"format": "cn-resident-id"` and so on.
//!
//! Each check returns `Ok(())` or the reason the value fails, so that a rejected record says
//! exactly what is wrong (for example which check digit was expected).

use std::collections::HashSet;
use std::sync::OnceLock;

/// 18-digit resident identity number (GB 11643): province prefix, valid birth date, check digit.
pub const RESIDENT_ID: &str = "cn-resident-id";
/// 18-character unified social credit code (GB 32100), with the organisation code's own check
/// character (GB 11714).
pub const CREDIT_CODE: &str = "cn-credit-code";
/// 6-digit administrative division code that exists in the current edition.
pub const DIVISION_CODE: &str = "cn-division-code";
/// Mainland mobile number: 11 digits starting 13–19.
pub const MOBILE: &str = "cn-mobile";

/// A format check: `Ok` or the reason the value fails.
pub type Check = fn(&str) -> Result<(), String>;

/// Every named format this module defines, with its check.
pub const ALL: [(&str, Check); 4] = [
    (RESIDENT_ID, check_resident_id),
    (CREDIT_CODE, check_credit_code),
    (DIVISION_CODE, check_division_code),
    (MOBILE, check_mobile),
];

/// The check for a named format, if it is one of ours.
pub fn checker(name: &str) -> Option<Check> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// GB 11643 resident identity number.
pub fn check_resident_id(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    if bytes.len() != 18 {
        return Err(format!(
            "must be 18 characters, found {}",
            value.chars().count()
        ));
    }
    if !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err("the first 17 characters must be digits".to_owned());
    }
    let last = bytes[17];
    if !(last.is_ascii_digit() || last == b'X') {
        return Err("the check character must be a digit or an upper-case X".to_owned());
    }
    let province = &value[..2];
    if !provinces().contains(province) && !matches!(province, "81" | "82" | "83") {
        return Err(format!("`{province}` is not a province code"));
    }
    let (y, m, d) = (&value[6..10], &value[10..12], &value[12..14]);
    if !is_valid_birth_date(y, m, d) {
        return Err(format!("birth date {y}-{m}-{d} is not a real date"));
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let expected = ID_CHECK[(sum % 11) as usize];
    if last != expected {
        return Err(format!(
            "check digit should be {}, found {}",
            expected as char, last as char
        ));
    }
    Ok(())
}

fn is_valid_birth_date(y: &str, m: &str, d: &str) -> bool {
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    if !(1900..=2100).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    d <= days
}

const CREDIT_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// GB 32100 unified social credit code.
pub fn check_credit_code(value: &str) -> Result<(), String> {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() != 18 {
        return Err(format!("must be 18 characters, found {}", chars.len()));
    }
    let mut values = [0u32; 18];
    for (i, c) in chars.iter().enumerate() {
        match CREDIT_CHARSET.chars().position(|x| x == *c) {
            Some(v) => values[i] = u32::try_from(v).unwrap_or(u32::MAX),
            None => {
                return Err(format!(
                    "character {} (`{c}`) is not allowed: use digits and upper-case letters except I, O, S, V, Z",
                    i + 1
                ))
            }
        }
    }
    if !chars[2..8].iter().all(char::is_ascii_digit) {
        return Err("characters 3–8 must be the 6-digit division code".to_owned());
    }
    // Characters 9–17: the organisation code (GB 11714), whose 9th character is its own check.
    let org = &chars[8..17];
    let mut sum = 0u32;
    for (c, w) in org[..8].iter().zip(ORG_WEIGHTS) {
        let v = match c {
            '0'..='9' => *c as u32 - '0' as u32,
            'A'..='Z' => *c as u32 - 'A' as u32 + 10,
            _ => return Err(format!("organisation code character `{c}` is not allowed")),
        };
        sum += v * w;
    }
    let org_check = match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10).unwrap_or('?'),
    };
    if org[8] != org_check {
        return Err(format!(
            "organisation code check character (17th) should be {org_check}, found {}",
            org[8]
        ));
    }
    let sum: u32 = values[..17]
        .iter()
        .zip(CREDIT_WEIGHTS)
        .map(|(v, w)| v * w)
        .sum();
    let check = (31 - sum % 31) % 31;
    let expected = CREDIT_CHARSET.chars().nth(check as usize).unwrap_or('?');
    if chars[17] != expected {
        return Err(format!(
            "check character should be {expected}, found {}",
            chars[17]
        ));
    }
    Ok(())
}

/// A current 6-digit division code: county level, or a prefecture (`XXXX00`) or province
/// (`XX0000`).
pub fn check_division_code(value: &str) -> Result<(), String> {
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be 6 digits".to_owned());
    }
    if divisions().contains(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a current administrative division code"
        ))
    }
}

/// Mainland mobile number.
pub fn check_mobile(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    if b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
    {
        Ok(())
    } else {
        Err("must be 11 digits starting with 13 to 19".to_owned())
    }
}

fn first_column(csv: &'static str) -> impl Iterator<Item = &'static str> {
    csv.lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .map(str::trim)
}

fn provinces() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| first_column(include_str!("../data/provinces.csv")).collect())
}

fn divisions() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set: HashSet<String> = first_column(include_str!("../data/areas.csv"))
            .map(str::to_owned)
            .collect();
        set.extend(first_column(include_str!("../data/cities.csv")).map(|c| format!("{c}00")));
        set.extend(provinces().iter().map(|p| format!("{p}0000")));
        set
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a valid identity number from its first 17 digits.
    fn with_check(first17: &str) -> String {
        let sum: u32 = first17
            .bytes()
            .zip(ID_WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        format!("{first17}{}", ID_CHECK[(sum % 11) as usize] as char)
    }

    #[test]
    fn resident_id_standard_example_and_failures() {
        // The example number of GB 11643-1999's appendix.
        assert_eq!(check_resident_id("11010519491231002X"), Ok(()));
        let err = check_resident_id("110105194912310021").unwrap_err();
        assert!(err.contains("should be X, found 1"), "{err}");
        let feb30 = with_check("21110219900230123");
        assert!(check_resident_id(&feb30)
            .unwrap_err()
            .contains("1990-02-30"));
        assert!(
            check_resident_id(&with_check("21110220000229123")).is_ok(),
            "leap day"
        );
        assert!(
            check_resident_id(&with_check("21110219000229123")).is_err(),
            "1900 not leap"
        );
        assert!(check_resident_id(&with_check("99110219900101123"))
            .unwrap_err()
            .contains("province"));
        assert!(check_resident_id("2111021990").unwrap_err().contains("18"));
        assert!(
            check_resident_id("21110219900101123x").is_err(),
            "lower-case x"
        );
        assert!(
            check_resident_id("２１１１０２１９９００１０１１２３４").is_err(),
            "full-width digits"
        );
    }

    #[test]
    fn credit_code_standard_example_and_failures() {
        // A code printed on a real business licence (GB 32100 examples use this shape).
        assert_eq!(check_credit_code("91350100M000100Y43"), Ok(()));
        let err = check_credit_code("91350100M000100Y44").unwrap_err();
        assert!(err.contains("should be 3"), "{err}");
        assert!(check_credit_code("91350100M000100Y4")
            .unwrap_err()
            .contains("18"));
        assert!(check_credit_code("91350100M000100I43")
            .unwrap_err()
            .contains("not allowed"));
        let err = check_credit_code("91350100M000101Y43").unwrap_err();
        assert!(err.contains("organisation code"), "{err}");
    }

    #[test]
    fn division_codes_of_panjin() {
        for code in ["211102", "211103", "211104", "211122", "211100", "210000"] {
            assert_eq!(check_division_code(code), Ok(()), "{code}");
        }
        assert!(check_division_code("999999")
            .unwrap_err()
            .contains("not a current"));
        assert!(check_division_code("21110").is_err());
    }

    #[test]
    fn mobile_numbers() {
        assert!(check_mobile("13904270000").is_ok());
        assert!(check_mobile("19900000000").is_ok());
        assert!(check_mobile("12904270000").is_err());
        assert!(check_mobile("1390427000").is_err());
        assert!(check_mobile("+8613904270000").is_err());
    }
}
