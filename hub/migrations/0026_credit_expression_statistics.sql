-- The joint-discipline check (hub/src/credit/store.rs, list_entries_naming) looks up a whole
-- batch of licences' subjects at once: `COALESCE(...) = ANY($values)` with up to thousands of
-- values. The expression indexes of migration 0019 are partial, and PostgreSQL keeps no
-- statistics it will use for a partial index's expression: it guessed 0.5 % of the table per
-- value, and for a batch of 2,500 subjects over 10 million list entries chose a scan of the
-- whole repository (2.9 s a batch, the check cutting issuance from 11,276 to 470 licences/s;
-- docs/benchmarks.md). Statistics on the expressions themselves (PostgreSQL 14 and later)
-- give it the real, near-unique distribution, and it takes the index (5 ms a batch).
-- Both statements take a SHARE UPDATE EXCLUSIVE lock on repository_records (the sink's reads
-- and writes go on); a vacuum or index build holding one makes this wait, and the hub's
-- start with it: give up after 30 s (run the migration again when it is done) rather than
-- stall. Extended statistics on expressions need PostgreSQL 14 or later.
SET LOCAL lock_timeout = '30s';

CREATE STATISTICS IF NOT EXISTS repository_records_credit_code_stats
    ON (COALESCE(data->>'subject_credit_code', data->>'party_credit_code'))
    FROM repository_records;

CREATE STATISTICS IF NOT EXISTS repository_records_credit_id_number_stats
    ON (COALESCE(data->>'subject_id_number', data->>'party_id_number'))
    FROM repository_records;

-- Built by the next ANALYZE (autovacuum's, or this one: a sample, seconds even for a large
-- repository).
ANALYZE repository_records;
