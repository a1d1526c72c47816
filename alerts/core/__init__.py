"""The pure rule core of the alert engine (no I/O): see `alerts.core.engine`."""
