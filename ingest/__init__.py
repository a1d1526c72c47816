"""MQTT ingest: takes the devices' uplink off the broker and stores it, acknowledging each message only
after it is committed (docs/mqtt.md, docs/architecture.md).

`service` is the ingest service (`IngestService`, run by `yiju ingest`): one MQTT session through
`mqtt_adapter` (the only paho user on the server side; it also holds the downlink `MqttCommandPublisher`),
validation at the edge in `decode` (a raw message becomes a `Decoded` reading or a dead letter with its
reason), the hand-off of every accepted message to the alert engine through the `handoff.MessageSink`
protocol (so ingest never imports the engine), and the batched idempotent writes to `storage`. `config`
holds its settings, `messages` the frozen `RawMessage` a message becomes at the edge, `metrics` its
Prometheus metrics. Imports `devices`, `storage` and (for its settings) `alerts.config`; nothing is
re-exported here.
"""
