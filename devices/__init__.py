"""Device families and the MQTT contract: wire models, codes, default thresholds, the alarm vocabulary."""
