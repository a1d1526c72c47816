"""One module per device family (domain.md §3). Each defines the same interface:

- `Telemetry`: the periodic facts, units in field names, physical ranges validated;
- `Event`: an annotated union discriminated by `type`;
- `Command`: an annotated union discriminated by `command` (None when the family takes no commands);
- code enums with `*_INFO` tables (zh, en, vendor code);
- `DEFAULTS`: the default thresholds of the rules, each documented with its source and evidence label;
- `points(t) -> [(metric, channel, value)]`: the numeric facts kept for charts and rollups.

`devices.catalog` ties them to the MQTT envelopes.
"""
