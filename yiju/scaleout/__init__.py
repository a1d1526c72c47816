"""Scale-out mode (docs/scale-out.md): MQTT → stateless bridges → NATS JetStream (partitioned by
community) → partition workers running ingest's decode/store and the alert engine for their share."""
