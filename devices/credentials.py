"""Per-device MQTT credentials and the Mosquitto files that enforce them (pure: text in, text out).

- username = device uid; password = 144 random bits shown once; only its hash is stored
  (`devices.credentials_hash`), in the exact form Mosquitto 2.0 reads from a password file:
  `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>` (mosquitto_passwd's format; 12-byte
  salt, 64-byte digest). One format means the broker file is just `uid:hash` lines.
- The iteration count is 1,000, ten times Mosquitto 2.0's own default (101). The broker runs PBKDF2
  on every connect: at ~1.6 ms per check (measured here), a reconnect storm of a 7,000-device
  compound costs about 11 s of broker CPU, spread over the devices' reconnect back-off; 10,000
  would cost minutes. The passwords are random 144-bit tokens, not human choices, so the iterations
  are defence in depth: a stolen hash cannot be guessed back at any count. Existing hashes keep
  their own count (it is stored in the hash) until rotated.
- Usernames are one namespace on the broker: `RESERVED_USERNAMES` (and any service account issued)
  are reserved in the registry (`mqtt_reserved_usernames`, migration 0011), so no device uid can
  equal a service account.
- ACL: a device may write only its own uplink topics under its own community — in any contract
  version, so that a device speaking another version reaches Yiju and is told so by a dead letter
  (`unsupported_version`) instead of vanishing — and read only its own v1 `cmd`; the ingest service
  reads everything under the prefix (what its subscription asks for, devices.contract.subscriptions)
  and writes every `cmd`; a gateway account (multiplexed publishers, e.g. the simulator's load mode)
  writes every uplink and reads every `cmd`. Nobody but ingest may write a `cmd` topic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from devices.contract import CONTRACT_VERSION, ID_PATTERN, UPLINK_CHANNELS, Channel, subscriptions

PBKDF2_ITERATIONS = 1000
# MQTT usernames Yiju's own services use; seeded into mqtt_reserved_usernames by migration 0011
RESERVED_USERNAMES = ("yiju", "yiju-ingest", "yiju-gateway", "yiju-commands", "yiju-simulator")
SALT_BYTES = 12
PASSWORD_BYTES = 18  # 144 bits → 24 URL-safe characters
_ID_RE = re.compile(ID_PATTERN)


class ServiceRole(StrEnum):
    INGEST = "ingest"  # reads all uplinks, writes commands
    GATEWAY = "gateway"  # writes all uplinks, reads all commands (multiplexed device publishers)


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    uid: str
    community: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    username: str
    role: ServiceRole
    password_hash: str


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def _check_user(name: str) -> str:
    # ':' and newlines would corrupt the password file; ids are restricted anyway
    if not _ID_RE.match(name):
        raise ValueError(f"account name {name!r} must match {ID_PATTERN}")
    return name


def duplicate_usernames(devices: Iterable[DeviceAccount], services: Iterable[ServiceAccount]) -> list[str]:
    """Usernames that appear more than once (a service account named like a device, or twice)."""
    seen: set[str] = set()
    dup: set[str] = set()
    for name in [s.username for s in services] + [d.uid for d in devices]:
        (dup if name in seen else seen).add(name)
    return sorted(dup)


def password_file(devices: Iterable[DeviceAccount], services: Iterable[ServiceAccount] = ()) -> str:
    """Mosquitto's password file; ValueError for a username given twice (the broker would take one)."""
    devices, services = list(devices), list(services)
    dup = duplicate_usernames(devices, services)
    if dup:
        raise ValueError(f"MQTT username(s) given twice: {', '.join(dup)}")
    lines = [f"{_check_user(s.username)}:{s.password_hash}" for s in services]
    lines += [f"{_check_user(d.uid)}:{d.password_hash}" for d in devices]
    return "\n".join(lines) + "\n"


def device_topics(prefix: str, community: str, uid: str) -> tuple[list[str], list[str]]:
    """(topic filters the device may write, topics it may read). The version level is a wildcard."""
    writes = [f"{prefix}/+/{community}/{uid}/{c.value}" for c in UPLINK_CHANNELS]
    return writes, [f"{prefix}/v{CONTRACT_VERSION}/{community}/{uid}/{Channel.COMMAND.value}"]


def gateway_topics(prefix: str) -> tuple[list[str], list[str]]:
    """(topic filters a gateway account may write, topic filters it may read)."""
    writes = [f"{prefix}/+/+/+/{c.value}" for c in UPLINK_CHANNELS]
    return writes, [f"{prefix}/v{CONTRACT_VERSION}/+/+/{Channel.COMMAND.value}"]


def acl_file(prefix: str, devices: Iterable[DeviceAccount], services: Iterable[ServiceAccount] = ()) -> str:
    """A Mosquitto acl_file: `user` blocks with `topic read|write` lines (anything not listed is denied)."""
    commands = f"{prefix}/v{CONTRACT_VERSION}/+/+/{Channel.COMMAND.value}"
    out = [f"# Yiju MQTT ACL, contract v{CONTRACT_VERSION}, prefix {prefix!r}. Generated: do not edit."]
    for s in services:
        out += ["", f"user {_check_user(s.username)}"]
        if s.role is ServiceRole.INGEST:
            out += [f"topic read {t}" for t in subscriptions(prefix)] + [f"topic write {commands}"]
        else:
            writes, reads = gateway_topics(prefix)
            out += [f"topic write {t}" for t in writes] + [f"topic read {t}" for t in reads]
    for d in devices:
        writes, reads = device_topics(prefix, _check_user(d.community), _check_user(d.uid))
        out += (
            ["", f"user {d.uid}"] + [f"topic write {t}" for t in writes] + [f"topic read {t}" for t in reads]
        )
    return "\n".join(out) + "\n"


def parse_password_file(text: str) -> dict[str, str]:
    """username → hash of an existing password file (to keep service accounts across regenerations)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            user, sep, encoded = line.partition(":")
            if sep:
                found[user] = encoded
    return found
