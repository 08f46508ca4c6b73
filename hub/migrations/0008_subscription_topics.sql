-- Subscription topics (issue 6): the hub fills a Kafka topic per approved subscription with
-- the approved fields of the dataset's records, masked; and a subscription can be withdrawn.

-- The transaction that last wrote each repository row. A delivery reads rows in
-- (change_xid, pk) order and only below the oldest transaction still running
-- (pg_snapshot_xmin), so a row committed late by a transaction that began early is never
-- passed over (see hub/src/sharing/delivery.rs). Rows written before this migration share
-- one value; they are delivered in key order.
ALTER TABLE repository_records ADD COLUMN change_xid xid8 NOT NULL DEFAULT '1';
ALTER TABLE repository_records ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX repository_records_changes ON repository_records (dataset, change_xid, pk);

-- Withdrawal: the requester no longer needs the data, or the owner (or a hub operator) ends
-- the access. The decision columns keep the approval that came before.
ALTER TABLE subscriptions
    ADD COLUMN withdrawn_at TIMESTAMPTZ,
    ADD COLUMN withdrawn_by TEXT,
    ADD COLUMN withdrawal_reason TEXT,
    ADD CONSTRAINT subscriptions_withdrawal CHECK (
        (status = 'withdrawn') = (withdrawn_at IS NOT NULL)
        AND (withdrawn_at IS NULL OR length(withdrawal_reason) > 0));

-- Where the delivery into each subscription's topic stands. Rows up to (last_xid, last_pk)
-- are on the topic. A batch is first audited and marked pending up to (pending_xid,
-- pending_pk), then produced, then its end becomes the new last position; a batch a crash
-- interrupted is produced again from the pending mark (at least once, never unaudited).
CREATE TABLE subscription_deliveries (
    subscription      UUID PRIMARY KEY REFERENCES subscriptions (id),
    topic             TEXT NOT NULL,
    last_xid          xid8 NOT NULL DEFAULT '0',
    last_pk           TEXT NOT NULL DEFAULT '',
    pending_xid       xid8,
    pending_pk        TEXT,
    delivered_total   BIGINT NOT NULL DEFAULT 0,
    last_delivery_at  TIMESTAMPTZ,
    -- When access ended (expiry or withdrawal) and filling the topic stopped.
    closed_at         TIMESTAMPTZ,
    CHECK ((pending_xid IS NULL) = (pending_pk IS NULL))
);
