-- A credit repair is of an entry as it stood when it was applied for (review of 0024): the
-- record's version is kept with the application, a decision is refused once the entry has
-- changed, and an approval exempts the entry only while the repository still holds that
-- version. An entry extended or corrected by its listing department after a repair is
-- listed again, and may be applied for again.
ALTER TABLE credit_repairs ADD COLUMN entry_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credit_repairs ALTER COLUMN entry_version DROP DEFAULT;

DROP INDEX credit_repairs_one_open_per_entry;
CREATE UNIQUE INDEX credit_repairs_one_open_per_version
    ON credit_repairs (dataset, entry, entry_version)
    WHERE state IN ('pending', 'approved');
