"""The one exception tree of Yiju.

Every error that crosses a package boundary is a `YijuError`. Third-party exceptions (psycopg,
paho, OS errors) are translated at the edge that talks to them, so callers catch our types only:

    YijuError
    ├── ConfigurationError          settings that cannot work (bad URL, missing binary)
    ├── ServiceError                an external service
    │   ├── DatabaseUnavailable     PostgreSQL cannot be reached
    │   ├── BrokerUnavailable       the MQTT broker cannot be reached
    │   │   └── MalformedPacket     it sent bytes that are not a well-formed MQTT 5 packet
    │   ├── MessagingUnavailable    NATS JetStream cannot be reached or did not answer in time
    │   └── ServiceStartError       an embedded (private) service failed to start
    ├── StorageError                the database answered, but not as we need
    │   ├── DataRefused             a row violates a constraint or a value does not fit its column
    │   └── MigrationError          a migration cannot be applied
    │       └── MigrationChecksumError  an applied migration file was edited afterwards
    └── InputError                  input from outside (devices, CSV files, API users) is invalid
"""

from __future__ import annotations


class YijuError(Exception):
    """Base of every error Yiju raises on purpose."""


class ConfigurationError(YijuError):
    """The settings cannot work as given."""


class ServiceError(YijuError):
    """An external service (database, broker) failed."""


class DatabaseUnavailable(ServiceError):
    """PostgreSQL could not be reached or went away."""


class BrokerUnavailable(ServiceError):
    """The MQTT broker could not be reached or went away."""


class MalformedPacket(BrokerUnavailable):
    """The broker sent bytes that are not a well-formed MQTT 5 packet (`devices.mqtt_wire`): the
    connection cannot be used any further."""


class MessagingUnavailable(ServiceError):
    """NATS JetStream (scale-out mode) could not be reached, or did not confirm in time."""


class ServiceStartError(ServiceError):
    """A private PostgreSQL cluster or Mosquitto broker started by Yiju did not come up."""


class StorageError(YijuError):
    """The database is reachable but refused or could not do what was asked."""


class DataRefused(StorageError):
    """The database refused the data itself (a constraint, a value its column cannot hold): retrying the
    same write fails the same way, unlike `DatabaseUnavailable`."""


class MigrationError(StorageError):
    """Schema migrations cannot be applied."""


class MigrationChecksumError(MigrationError):
    """A migration that was already applied has been edited since; the schema can no longer be trusted."""


class InputError(YijuError):
    """Invalid input from outside: a device message, an imported file, an API request."""
