//! Joint discipline at the licence counter (联合惩戒): before a licence of a type whose manifest
//! has `[discipline]` is issued, the identifiers it names (the holder's credit code, a legal
//! representative's identity number) are looked up in the credit lists the type consults.
//! An entry in force on the city's day (from its list date through its end date) is a match;
//! the licence service refuses the request with every match, or issues it with an officer's
//! recorded override where the type allows one.
//!
//! Pure functions here (which identifiers a request presents, which entries match which);
//! the lookup is one indexed query per batch in `store.rs`.

use std::collections::{BTreeMap, BTreeSet};

use bohai_schemas::licences::{Discipline, LIST_SUBJECT_FIELDS};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{city_day, date_field, published, store};

/// One credit-list entry in force that an identifier of a licence matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ListMatch {
    /// Where in the licence subject the matched identifier is (`/holder/credit_code`).
    pub pointer: String,
    /// The credit list (dataset) of the entry.
    pub dataset: String,
    /// The entry's key (its entry number).
    pub entry: String,
    /// The list within the dataset (`失信被执行人`, ...), if the entry says.
    pub category: Option<String>,
    /// The department that listed the subject.
    pub listing_department: Option<String>,
    /// The day the entry took effect.
    pub list_date: Option<NaiveDate>,
    /// Its last day.
    pub end_date: Option<NaiveDate>,
}

/// The identifiers `subject` (`{"holder", "fields"}`) presents at `discipline`'s pointers:
/// `(pointer, value)`, the value trimmed and in upper case (an identity number's `x`), those
/// absent or not text left out (the schema judges them).
pub fn identifiers(discipline: &Discipline, subject: &Value) -> Vec<(String, String)> {
    discipline
        .subjects
        .iter()
        .filter_map(|pointer| {
            let value = subject.pointer(pointer)?.as_str()?.trim();
            (!value.is_empty()).then(|| (pointer.clone(), value.to_ascii_uppercase()))
        })
        .collect()
}

/// An entry of a credit list as the check reads it.
#[derive(Debug, Clone)]
pub struct ListedEntry {
    dataset: String,
    pk: String,
    data: Value,
    repaired: bool,
}

impl ListedEntry {
    /// Whether it is in force on `today`: published by its dates, and not repaired.
    fn in_force(&self, today: NaiveDate) -> bool {
        !self.repaired
            && date_field(&self.data, "list_date")
                .is_some_and(|from| published(from, date_field(&self.data, "end_date"), today))
    }

    /// The identifiers naming its subject.
    fn names(&self) -> impl Iterator<Item = &str> {
        LIST_SUBJECT_FIELDS
            .iter()
            .filter_map(|f| self.data.get(*f)?.as_str())
    }

    fn text(&self, field: &str) -> Option<String> {
        self.data.get(field)?.as_str().map(str::to_owned)
    }
}

/// Every entry of `lists` in force at `now` (the city's day) that names one of `values`,
/// by the value it names.
pub async fn entries_in_force(
    db: &PgPool,
    lists: &BTreeSet<&str>,
    values: &BTreeSet<&str>,
    now: DateTime<Utc>,
) -> Result<InForce, sqlx::Error> {
    let mut by_value: BTreeMap<String, Vec<ListedEntry>> = BTreeMap::new();
    if lists.is_empty() || values.is_empty() {
        return Ok(InForce(by_value));
    }
    let today = city_day(now);
    let lists: Vec<&str> = lists.iter().copied().collect();
    // The lists' records were validated when they came in: a credit-code field holds a valid
    // credit code, an identity-number field a valid identity number. A value is looked up
    // only where it could be (a value valid as both, or as neither, in both).
    let (mut codes, mut ids) = (Vec::new(), Vec::new());
    for &value in values {
        let code = bohai_schemas::formats::check_credit_code(value).is_ok();
        let id = bohai_schemas::formats::check_resident_id(value).is_ok();
        if code || !id {
            codes.push(value);
        }
        if id || !code {
            ids.push(value);
        }
    }
    for row in store::list_entries_naming(db, &lists, (&codes, &ids)).await? {
        let entry = ListedEntry {
            dataset: row.dataset,
            pk: row.pk,
            data: row.data,
            repaired: row.repaired_on.is_some(),
        };
        if !entry.in_force(today) {
            continue;
        }
        let named: Vec<String> = entry
            .names()
            .filter(|v| values.contains(v))
            .map(str::to_owned)
            .collect();
        for value in named {
            by_value.entry(value).or_default().push(entry.clone());
        }
    }
    Ok(InForce(by_value))
}

/// The entries in force, by the identifier they name ([`entries_in_force`]).
#[derive(Debug, Default)]
pub struct InForce(BTreeMap<String, Vec<ListedEntry>>);

impl InForce {
    /// Whether no entry in force names any of the values looked up.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every match of `identifiers` in the lists `discipline` consults.
    pub fn matches(
        &self,
        discipline: &Discipline,
        identifiers: &[(String, String)],
    ) -> Vec<ListMatch> {
        identifiers
            .iter()
            .flat_map(|(pointer, value)| {
                self.0
                    .get(value)
                    .into_iter()
                    .flatten()
                    .filter(|e| discipline.lists.contains(&e.dataset))
                    .map(move |e| ListMatch {
                        pointer: pointer.clone(),
                        dataset: e.dataset.clone(),
                        entry: e.text("entry_number").unwrap_or_else(|| e.pk.clone()),
                        category: e.text("category"),
                        listing_department: e.text("listing_department"),
                        list_date: date_field(&e.data, "list_date"),
                        end_date: date_field(&e.data, "end_date"),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bohai_schemas::licences::OnMatch;
    use serde_json::json;

    fn discipline() -> Discipline {
        Discipline {
            lists: vec!["credit-black-list".to_owned()],
            subjects: vec![
                "/holder/credit_code".to_owned(),
                "/fields/responsible_person_id_number".to_owned(),
            ],
            on_match: OnMatch::Refuse,
        }
    }

    fn entry(dataset: &str, data: Value) -> ListedEntry {
        ListedEntry {
            dataset: dataset.to_owned(),
            pk: data["entry_number"].as_str().unwrap_or("pk").to_owned(),
            data,
            repaired: false,
        }
    }

    #[test]
    fn identifiers_are_read_at_the_pointers_trimmed_and_in_upper_case() {
        let subject = json!({"holder": {"credit_code": " 91211103MA0Q9F4B6R "},
                             "fields": {"responsible_person_id_number": "21110219690827151x"}});
        assert_eq!(
            identifiers(&discipline(), &subject),
            vec![
                (
                    "/holder/credit_code".to_owned(),
                    "91211103MA0Q9F4B6R".to_owned()
                ),
                (
                    "/fields/responsible_person_id_number".to_owned(),
                    "21110219690827151X".to_owned()
                ),
            ]
        );
        // Absent, empty or not text: nothing to check there.
        let subject =
            json!({"holder": {"credit_code": ""}, "fields": {"responsible_person_id_number": 7}});
        assert!(identifiers(&discipline(), &subject).is_empty());
    }

    #[test]
    fn an_entry_is_in_force_from_its_list_date_through_its_end_date() {
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        let e = entry(
            "credit-black-list",
            json!({"list_date": "2026-01-10", "end_date": "2026-12-31"}),
        );
        assert!(!e.in_force(day("2026-01-09")));
        assert!(e.in_force(day("2026-01-10")));
        assert!(e.in_force(day("2026-12-31")));
        assert!(!e.in_force(day("2027-01-01")));
        // No list date: never in force (the schema requires one).
        assert!(!entry("credit-black-list", json!({})).in_force(day("2026-06-01")));
        // Repaired: no longer in force, whatever its dates.
        let repaired = ListedEntry {
            repaired: true,
            ..e
        };
        assert!(!repaired.in_force(day("2026-06-01")));
    }

    #[test]
    fn matches_name_the_pointer_and_only_the_lists_the_type_consults() {
        let black = entry(
            "credit-black-list",
            json!({"entry_number": "PJ-BL-2026-000001", "category": "失信被执行人",
                   "listing_department": "court", "subject_credit_code": "91211103MA0Q9F4B6R",
                   "list_date": "2026-01-10", "end_date": "2027-01-09"}),
        );
        let red = entry(
            "credit-red-list",
            json!({"entry_number": "PJ-RL-2026-000001", "subject_credit_code": "91211103MA0Q9F4B6R"}),
        );
        let in_force = InForce(BTreeMap::from([(
            "91211103MA0Q9F4B6R".to_owned(),
            vec![black, red],
        )]));
        let found = in_force.matches(
            &discipline(),
            &[(
                "/holder/credit_code".to_owned(),
                "91211103MA0Q9F4B6R".to_owned(),
            )],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].entry, "PJ-BL-2026-000001");
        assert_eq!(found[0].pointer, "/holder/credit_code");
        assert_eq!(found[0].category.as_deref(), Some("失信被执行人"));
        assert_eq!(
            found[0].end_date,
            Some("2027-01-09".parse::<NaiveDate>().unwrap())
        );
        assert!(in_force
            .matches(&discipline(), &[("/x".to_owned(), "OTHER".to_owned())])
            .is_empty());
    }
}
