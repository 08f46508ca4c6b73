-- A withdrawn subscription's topic is deleted from the broker (hub/src/sharing/delivery.rs),
-- with the records it held. When that happened; NULL while the topic is still there. The
-- topics of subscriptions withdrawn before this migration were kept on purpose and are
-- deleted now too, by the first delivery round after it.
ALTER TABLE subscription_deliveries ADD COLUMN topic_deleted_at TIMESTAMPTZ;
