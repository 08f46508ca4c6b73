-- Where each partition of a subscription's topic ended after the last batch marked
-- delivered ({"partition": next offset}). A batch left pending (produced, perhaps, but not
-- marked: the instance died in between, or the mark's commit failed) is looked for beyond
-- these offsets before it is produced again, so that it reaches the topic exactly once.
-- NULL: not known yet (a topic filled before this migration); the delivery then reads the
-- topic's ends from the broker at its next batch.
ALTER TABLE subscription_deliveries ADD COLUMN topic_offsets JSONB;
