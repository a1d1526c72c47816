"""The alert engine: alarms, compliance findings and commands from the devices' messages.

- `alerts.core` — the pure rule core (no I/O): per-family rules, timers, fire linkage decisions;
  entry points in `alerts.core.engine`.
- `alerts.service` — the I/O shell around it: `AlertService`, ingest's message sink, which
  evaluates, persists, publishes commands and tells its bus (`EngineEvent`).
- `alerts.commands` — downlink commands: `CommandPublisher`, `CommandSender` (the command on the
  device's cmd topic) and `CommandDispatcher` (commands requested through the API, acknowledgements).
- `alerts.config` — `AlertSettings` (every threshold with its source) and per-device `DeviceParams`;
  `alerts.metrics` — the engine's Prometheus metric set.
- `alerts.escalation` — emergency linkage with call systems (domain.md §6): alarms → incidents →
  calls, webhooks, SMS, GB/T 26875.3;
  `alerts.indicators` — indicator verification (indicators.md): the assessor's score sheet.
"""
