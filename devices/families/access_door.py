"""Access doors: entrance gates and unit doors (门禁). standards.md §5 and §3 (fire release).

Credentials (card numbers, face ids, PINs) never travel or rest in clear: devices send
`credential_hash` = hex HMAC-SHA256 of the credential under a per-community key (`hash_credential`).
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from devices.families.common import Bool, CodeInfo, DurationS, Seconds, Wire

CredentialHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="hex HMAC-SHA256, never clear")]


def hash_credential(credential: str, key: bytes) -> str:
    return hmac.new(key, credential.encode(), hashlib.sha256).hexdigest()


class Mode(StrEnum):
    NORMAL = "normal"
    RELEASED = "released"  # unlocked for evacuation (fire linkage or manual)
    REMAIN_OPEN = "remain_open"  # 常开: held open by the door's own schedule (daytime) or an operator


MODE_INFO: dict[Mode, CodeInfo] = {
    Mode.NORMAL: CodeInfo("正常(受控)", "Normal (controlled)"),
    Mode.RELEASED: CodeInfo("疏散释放", "Released for evacuation"),
    Mode.REMAIN_OPEN: CodeInfo("常开(按时段或人工)", "Remain open (schedule or operator)"),
}


class Method(StrEnum):
    CARD = "card"
    FACE = "face"
    QR = "qr"
    PIN = "pin"
    FINGERPRINT = "fingerprint"
    REMOTE = "remote"
    EXIT_BUTTON = "exit_button"


class DenyReason(StrEnum):
    UNKNOWN_CREDENTIAL = "unknown_credential"
    EXPIRED = "expired"
    OUTSIDE_SCHEDULE = "outside_schedule"
    BLACKLISTED = "blacklisted"
    ANTI_PASSBACK = "anti_passback"


DENY_REASON_INFO: dict[DenyReason, CodeInfo] = {
    DenyReason.UNKNOWN_CREDENTIAL: CodeInfo("无效凭证", "Unknown credential"),
    DenyReason.EXPIRED: CodeInfo("凭证过期", "Credential expired"),
    DenyReason.OUTSIDE_SCHEDULE: CodeInfo("不在通行时段", "Outside allowed hours"),
    DenyReason.BLACKLISTED: CodeInfo("黑名单", "Blacklisted"),
    DenyReason.ANTI_PASSBACK: CodeInfo("防潜回", "Anti-passback"),
}


class Telemetry(Wire):
    open: Bool = Field(description="Door contact: open")
    locked: Bool
    mode: Mode
    open_s: DurationS | None = Field(default=None, description="How long it has been open, s")


class Granted(Wire):
    type: Literal["granted"]
    method: Method
    credential_hash: CredentialHash | None = None


class Denied(Wire):
    type: Literal["denied"]
    method: Method
    reason: DenyReason
    credential_hash: CredentialHash | None = None


class ForcedOpen(Wire):
    type: Literal["forced_open"]


class HeldOpen(Wire):
    type: Literal["held_open"]
    active: Bool
    open_s: Seconds | None = None


class Duress(Wire):
    """Duress code used: latching, cleared only by an operator (GB 50394-2007 §5.2.3 [S])."""

    type: Literal["duress"]
    credential_hash: CredentialHash | None = None


class Tamper(Wire):
    type: Literal["tamper"]
    active: Bool


class CommLoss(Wire):
    type: Literal["comm_loss"]
    active: Bool
    peer: str | None = Field(default=None, max_length=64, description="Reader or lock that went silent")


class Released(Wire):
    type: Literal["released"]
    by: Literal["fire", "manual", "command"]


class Restored(Wire):
    type: Literal["restored"]


Event = Annotated[
    Granted | Denied | ForcedOpen | HeldOpen | Duress | Tamper | CommLoss | Released | Restored,
    Field(discriminator="type"),
]


class Unlock(Wire):
    command: Literal["unlock"]
    duration_s: int = Field(default=6, strict=True, ge=1, le=300)


class ReleaseAll(Wire):
    """Release for evacuation (GB 55024-2022 §5.3.6, GB 50396-2007 §9.0.1(2) [S])."""

    command: Literal["release_all"]


class Restore(Wire):
    command: Literal["restore"]


Command = Annotated[Unlock | ReleaseAll | Restore, Field(discriminator="command")]


class Defaults(Wire):
    """Door rules. Descriptions end with their source label (standards.md §0): text — [LABEL] source."""

    held_open_s: float = Field(
        default=60.0,
        description="A door open this long in normal mode is held open, s (a door's own limit in the "
        "registry, devices.metadata.held_open_s, wins; GB 51348-2019 §14.4.1(3) requires the alarm, not a "
        "time; vendors hold a door open 6 s) — [NOT FOUND]: configurable per door",
        json_schema_extra={"scope": "device (`devices.metadata.held_open_s`), else community"},
    )
    denied_repeat_count: int = Field(
        default=5,
        description="Consecutive invalid credentials before the alarm (≤ 5) — [S] GB 50396-2007 §5.1.5(1)",
    )
    denied_repeat_window_s: float = Field(
        default=300.0,
        description="Window for counting invalid credentials, s — [NOT FOUND]: configurable",
    )
    release_deadline_s: float = Field(
        default=3.0, description="Confirmed fire → door released, s — [S2] GB 50166-2019 (3 s linkage)"
    )
    heartbeat_s: int = Field(default=60, description="Telemetry/heartbeat period, s — [V] vendor practice")
    missed_heartbeats: int = Field(default=3, description="Missed heartbeats before offline — [V] 2–3")


DEFAULTS = Defaults()


def points(t: Telemetry) -> list[tuple[str, int, float]]:
    return [("door_open", 0, float(t.open)), ("locked", 0, float(t.locked))]
