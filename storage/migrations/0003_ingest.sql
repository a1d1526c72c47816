-- Ingest: the heartbeat period each device announces in its status message, so that a device that
-- stops sending is marked offline after `heartbeat_misses` periods (standards.md §1.2, AP3000 [V]).
ALTER TABLE device_presence ADD COLUMN heartbeat_s integer CHECK (heartbeat_s BETWEEN 1 AND 86400);
CREATE INDEX device_presence_online_last_seen ON device_presence (last_seen) WHERE online;
