-- The alarm history search and export (issue 13 §7, storage/alarm_history.py): one community's alarms
-- by when they began, newest first, with the keyset's tie-breaker. alarms_first_at (0001) serves the
-- all-communities (admin) case; this one keeps a community's search from walking every other
-- community's alarms.
CREATE INDEX alarms_community_first_at ON alarms (community_id, first_at DESC, id DESC);
