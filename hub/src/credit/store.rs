//! The credit profile's queries of `repository_records`: the records of the credit datasets
//! and the administrative penalties that name a subject. Each lookup is an index scan of the
//! expression indexes of migration 0019, whose expressions and predicate are repeated here
//! word for word.

use serde_json::Value;
use sqlx::PgPool;

/// Which identifier fields a lookup matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// Only the credit-code fields (`subject_credit_code`, `party_credit_code`): an identity
    /// number never matches.
    CreditCode,
    /// The credit-code fields and the identity-number fields (`subject_id_number`,
    /// `party_id_number`).
    Any,
}

/// A stored record that names the subject.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Row {
    /// Its dataset.
    pub(crate) dataset: String,
    /// Its primary key as stored.
    pub(crate) pk: String,
    /// The record.
    pub(crate) data: Value,
    /// The city's day its repair was approved, if it was (`credit_repairs`).
    pub(crate) repaired_on: Option<chrono::NaiveDate>,
}

/// The column of [`Row::repaired_on`] for a row `r` of `repository_records`.
macro_rules! repaired_on {
    () => {
        "(SELECT (c.decided_at AT TIME ZONE 'Asia/Shanghai')::date FROM credit_repairs c
          WHERE c.dataset = r.dataset AND c.entry = r.pk AND c.entry_version = r.version
            AND c.state = 'approved') AS repaired_on"
    };
}

/// `SELECT` of the [`Row`] columns from the records of the credit datasets and the
/// administrative penalties (`repository_records r`), as the partial indexes' predicate says;
/// a query goes on with `AND`.
macro_rules! credit_rows {
    () => {
        concat!(
            "SELECT dataset, pk, data, ",
            repaired_on!(),
            " FROM repository_records r
             WHERE dataset IN ('credit-commitments', 'credit-red-list', 'credit-black-list',
                               'administrative-penalties')"
        )
    };
}

/// The expression of the credit-code index (migration 0019), word for word.
macro_rules! credit_code {
    () => {
        "COALESCE(data->>'subject_credit_code', data->>'party_credit_code')"
    };
}

/// The expression of the identity-number index (migration 0019), word for word.
macro_rules! id_number {
    () => {
        "COALESCE(data->>'subject_id_number', data->>'party_id_number')"
    };
}

/// Every record of the credit datasets and the administrative penalties whose identifier
/// fields (as `by` says) equal `subject`, by dataset and key.
pub(crate) async fn records_naming(
    db: &PgPool,
    subject: &str,
    by: Match,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(concat!(
        credit_rows!(),
        " AND ",
        credit_code!(),
        " = $1 UNION ",
        credit_rows!(),
        " AND ",
        id_number!(),
        " = $1 AND $2 ORDER BY dataset, pk"
    ))
    .bind(subject)
    .bind(by == Match::Any)
    .fetch_all(db)
    .await
}

/// Every record of the credit lists `lists` whose credit-code fields are one of
/// `credit_codes` or whose identity-number fields are one of `id_numbers`: the
/// joint-discipline check of a batch of licences, by the same expression indexes (each value
/// looked up only in the index it can be found in).
pub(crate) async fn list_entries_naming(
    db: &PgPool,
    lists: &[&str],
    (credit_codes, id_numbers): (&[&str], &[&str]),
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(concat!(
        credit_rows!(),
        " AND dataset = ANY($1) AND ",
        credit_code!(),
        " = ANY($2) UNION ",
        credit_rows!(),
        " AND dataset = ANY($1) AND ",
        id_number!(),
        " = ANY($3)"
    ))
    .bind(lists)
    .bind(credit_codes)
    .bind(id_numbers)
    .fetch_all(db)
    .await
}
