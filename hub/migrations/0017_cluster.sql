-- Bohai as a cluster: every `bohai serve` on a hub database registers itself with a heartbeat,
-- and each duty that must run once (the repository sink, licence events, subscription delivery,
-- the periodic duties, each connector run by `serve`) is held by one instance at a time through
-- its own lease. The single hold on all the workers is gone.
DROP TABLE worker_holds;

-- The instances of the hub, by identity (`cluster.instance`, default host name and port). An
-- instance whose heartbeat expired is dead for the others: its row stays until an instance
-- with the same identity starts again.
CREATE TABLE hub_instances (
    id            TEXT PRIMARY KEY,
    -- This run of the instance: a second process with the same identity is refused while the
    -- first one's heartbeat is fresh.
    incarnation   UUID NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    http_addr     TEXT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);

-- One lease per duty. `epoch` grows by one each time the duty changes hands: it is the fencing
-- token a holder's writes are checked against (bohai_hold_duty), so that a holder that lost
-- its lease (paused, cut off, slow) can never write for the duty afterwards.
CREATE TABLE duty_leases (
    duty          TEXT PRIMARY KEY,
    holder        TEXT,
    epoch         BIGINT NOT NULL DEFAULT 0,
    since         TIMESTAMPTZ,
    renewed_at    TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);

-- Called first in a duty's writing transaction: fails with SQLSTATE BH001 unless `holder`
-- still holds `duty` at `epoch` and the lease has not expired, and otherwise keeps the lease
-- row from changing hands (FOR SHARE) until the transaction ends, so that the writes commit
-- only under a lease that is valid the whole time.
CREATE FUNCTION bohai_hold_duty(p_duty TEXT, p_holder TEXT, p_epoch BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM duty_leases
    WHERE duty = p_duty AND holder = p_holder AND epoch = p_epoch
      AND expires_at > clock_timestamp()
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the lease on duty % is no longer held by % at epoch %',
            p_duty, p_holder, p_epoch
            USING ERRCODE = 'BH001';
    END IF;
END
$$;

-- How far the licence-event publisher recorded the licence-events topic, per partition (the
-- offset after its last marked event). A new holder of the duty reads the topic's committed
-- records beyond these offsets and marks the events it finds as published: a batch the
-- previous holder made visible just before it died or was paused is not published twice.
CREATE TABLE licence_event_positions (
    partition    INTEGER PRIMARY KEY,
    next_offset  BIGINT NOT NULL
);
