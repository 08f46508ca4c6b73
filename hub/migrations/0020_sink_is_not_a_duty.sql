-- Instances older than migration 0018 ran the repository sink as a duty, without the
-- partition fence 0018 brought. One left running while the others are upgraded declared the
-- duty again after 0018 deleted it, took it and wrote the repository beside the consumer
-- group, unfenced. Declaring it is refused from here on (SQLSTATE BH002): such an
-- instance's cluster rounds fail, so it stops every duty it holds within two thirds of a
-- lease and takes none (it goes on answering HTTP) until it is upgraded.
DELETE FROM duty_leases WHERE duty = 'sink';

CREATE FUNCTION bohai_refuse_sink_duty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the repository sink is no longer a duty (migration 0018): this instance runs a bohai older than its database; upgrade it'
        USING ERRCODE = 'BH002';
END
$$;

CREATE TRIGGER duty_leases_no_sink BEFORE INSERT OR UPDATE ON duty_leases
    FOR EACH ROW WHEN (NEW.duty = 'sink') EXECUTE FUNCTION bohai_refuse_sink_duty();
