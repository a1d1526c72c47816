"""MQTT ingest: the broker adapter, decoding and validation at the edge, the batch writer."""
