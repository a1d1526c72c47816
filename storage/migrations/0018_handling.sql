-- The handling workflow of an alarm (处置流程, issue 13): acknowledge → dispatch (to whom) → on site →
-- result (real / false alarm / test / device fault, with a required comment) → close. Each step is a
-- transition; the alarm row holds the step reached and the result, so the board and the history
-- search read them without scanning transitions. storage/alarms.py `handle` enforces the order.

ALTER TABLE alarm_transitions DROP CONSTRAINT alarm_transitions_action_check;
ALTER TABLE alarm_transitions ADD CONSTRAINT alarm_transitions_action_check CHECK (action IN (
    'raised', 'updated', 'acknowledged', 'commented', 'cleared', 'escalated', 'notified',
    'dispatched', 'on_site', 'resolved', 'closed'));

ALTER TABLE alarms
    ADD COLUMN handling text CHECK (handling IN ('dispatched', 'on_site', 'resolved', 'closed')),
    ADD COLUMN result text CHECK (result IN ('real', 'false_alarm', 'test', 'device_fault')),
    ADD CONSTRAINT alarms_result_when_resolved CHECK ((result IS NULL) = (handling IS NULL OR handling IN ('dispatched', 'on_site')));
