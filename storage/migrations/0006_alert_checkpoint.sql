-- Alert engine crash recovery: the receipt time up to which every stored message has been evaluated
-- and its rule state written (one row per engine). On start the engine replays the telemetry and
-- device events received after it (storage/replay.py).

CREATE TABLE alert_checkpoint (
    engine       text PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
