-- The repository sink as a Kafka consumer group shared by every instance: each topic
-- partition is written by the instance the group gave it to. `owner_epoch` grows by one
-- each time an instance takes the partition (pipeline/partitions.rs): the sink's writing
-- transaction locks the partition's row and checks the epoch it took the partition at, so
-- that an instance that lost a partition (paused, cut off, slow) can never commit a batch
-- for it afterwards.
ALTER TABLE sink_offsets
    ADD COLUMN owner        TEXT,
    ADD COLUMN owner_epoch  BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN owned_since  TIMESTAMPTZ;

-- The sink is no longer a duty held by one instance.
DELETE FROM duty_leases WHERE duty = 'sink';
