"""Settings of the alert engine (`Settings.alerts`): the engine's own knobs and one threshold group per
device family.

Each family group extends that family's `DEFAULTS` model from `devices/families/*.py` (whose fields
cite their sources in standards.md) with the few extra numbers the rules need (clear thresholds for
hysteresis, confirmation times); every extra default cites its source or says it is vendor practice
[V] / not found normatively [NOT FOUND]. Per-community overrides come from `communities.settings`
(jsonb) under the key "alerts", e.g. `{"alerts": {"ebike_charger": {"port_over_temp_c": 70}}}`, and
are applied with `with_overrides()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.families import (
    access_door,
    cctv_recorder,
    ebike_charger,
    elevator,
    gas_alarm,
    light,
    smoke_alarm,
)
from yiju.errors import ConfigurationError


class ChargerRules(ebike_charger.Defaults):
    temp_clear_hysteresis_c: float = Field(
        default=5.0,
        description="Over-temperature clears below the threshold minus this, °C — [NOT FOUND] no source "
        "for a clear point; configurable",
    )
    leakage_clear_ratio: float = Field(
        default=0.8,
        description="Leakage alarm clears below this × leakage_trip_ma — [NOT FOUND] no source for a "
        "clear point; configurable",
    )
    relay_off_current_a: float = Field(
        default=0.5,
        description="A port carrying more than this counts as drawing current (implausible through an "
        "open relay), A — [NOT FOUND] no source; configurable",
    )

    @model_validator(mode="after")
    def _deadlines_cover_confirmation(self) -> ChargerRules:
        """A trigger's deadline runs from its first report, so it must outlast its confirmation time
        (a condition shorter than that is not a trigger)."""
        for kind in TRIGGERS:
            confirm = confirm_s(self, kind)
            if cutoff_s(self, kind) <= confirm:
                raise ValueError(f"{kind}_cutoff_s must exceed the confirmation time ({confirm} s)")
        return self


# Auto-cutoff trigger kinds (the `kind` of an auto_cutoff finding): each one's deadline setting
# `<kind>_cutoff_s` and its confirmation time (none: the first report is the trigger).
_CUTOFF: dict[str, Callable[[ChargerRules], float]] = {
    "over_temperature": lambda r: r.over_temperature_cutoff_s,
    "ambient_over_temperature": lambda r: r.ambient_over_temperature_cutoff_s,
    "cabinet_over_temperature": lambda r: r.cabinet_over_temperature_cutoff_s,
    "overload": lambda r: r.overload_cutoff_s,
    "over_current": lambda r: r.over_current_cutoff_s,
    "over_voltage": lambda r: r.over_voltage_cutoff_s,
    "under_voltage": lambda r: r.under_voltage_cutoff_s,
    "leakage": lambda r: r.leakage_cutoff_s,
    "short_circuit": lambda r: r.short_circuit_cutoff_s,
    "water": lambda r: r.water_cutoff_s,
    "smoke": lambda r: r.smoke_cutoff_s,
    "fire": lambda r: r.fire_cutoff_s,
    "full": lambda r: r.full_cutoff_s,
    "max_time": lambda r: r.max_time_cutoff_s,
}
_CONFIRM: dict[str, Callable[[ChargerRules], float]] = {
    "over_temperature": lambda r: r.over_temp_confirm_s,
    "ambient_over_temperature": lambda r: r.over_temp_confirm_s,
    "cabinet_over_temperature": lambda r: r.over_temp_confirm_s,
    "overload": lambda r: r.overload_confirm_s,
    "over_current": lambda r: r.overload_confirm_s,
    "over_voltage": lambda r: r.voltage_confirm_s,
    "under_voltage": lambda r: r.voltage_confirm_s,
    "leakage": lambda r: r.leakage_confirm_s,
}
TRIGGERS = tuple(_CUTOFF)


def cutoff_s(r: ChargerRules, kind: str) -> float:
    """The deadline of trigger `kind`, s from its instant (docs/mqtt.md §12)."""
    return _CUTOFF[kind](r)


def confirm_s(r: ChargerRules, kind: str) -> float:
    """How long trigger `kind`'s condition must last to be a trigger, s."""
    confirm = _CONFIRM.get(kind)
    return 0.0 if confirm is None else confirm(r)


class SmokeRules(smoke_alarm.Defaults):
    battery_clear_pct: float = Field(
        default=25.0,
        description="Low-battery clears at or above this, % — [NOT FOUND] no source for a clear point; "
        "configurable",
    )
    residual_clear_ratio: float = Field(
        default=0.8,
        description="Electrical-fire alarms clear below this × their alarm value — [NOT FOUND] no source "
        "for a clear point; configurable",
    )


class GasRules(gas_alarm.Defaults):
    pass


class LightRules(light.Defaults):
    pass


class ElevatorRules(elevator.Defaults):
    recall_floor: int = Field(
        default=1,
        description="Fire recall floor (the ground or a transfer floor), per community — [S] GB 50116-2013 "
        "elevator linkage clause",
    )


class DoorRules(access_door.Defaults):
    pass


class CctvRules(cctv_recorder.Defaults):
    daily_evaluation_s: int = Field(
        default=86_400,
        description="Retention is re-evaluated at least this often per channel, s — [NOT FOUND] "
        "domain.md §5.3 asks for a daily evaluation",
        json_schema_extra={"safety": False},
    )


class DeviceParams(BaseModel):
    """Per-device rule parameters kept in the registry's `devices.metadata` (a CSV column of the same
    name, or `metadata` in POST /devices): what one door or one car needs that a community-wide setting
    cannot say. Other metadata keys are not rule parameters and are ignored here."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    held_open_s: float | None = Field(
        default=None, gt=0, le=86_400, description="Doors: this door's held-open alarm time, s"
    )
    floors: int | None = Field(
        default=None, ge=1, le=200, description="Elevators: floors this car serves (else the building's)"
    )
    rated_speed_mps: float | None = Field(
        default=None, gt=0, le=20, description="Elevators: the car's rated speed, m/s"
    )

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any] | None) -> tuple[DeviceParams, list[str]]:
        """The parameters in `metadata` (numbers, or numeric strings as a CSV import stores them), and
        a description of each value refused (the rule then falls back to the community setting)."""
        known = {k: v for k, v in (metadata or {}).items() if k in cls.model_fields}
        problems: list[str] = []
        while True:
            try:
                return cls.model_validate(known), problems
            except ValidationError as exc:
                errors = [(str(e["loc"][0]), e["msg"]) for e in exc.errors() if e["loc"]]
                problems += [f"{k}={known.get(k)!r}: {msg}" for k, msg in errors]
                bad = {k for k, _ in errors}
                known = {k: v for k, v in known.items() if k not in bad}
                if not bad:  # pragma: no cover - every field error names its field
                    return cls(), problems


class AlertSettings(BaseModel):
    """The alert engine: clocks, queues, timings, and thresholds per family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock: Literal["wall", "event"] = Field(
        default="wall",
        description="What the periodic tick compares deadlines against: the wall clock (production) or "
        "the event-time watermark, the newest device time seen (accelerated simulation), so that "
        "accelerated scenarios behave exactly like real time.",
    )
    event_clock_max_lead_s: float = Field(
        default=300.0,
        ge=0,
        description="event clock: a device time further ahead of the watermark than this does not move it "
        "(one device with a wrong clock must not expire everyone's timers).",
    )
    tick_s: float = Field(default=1.0, gt=0, le=60, description="Period of the timer evaluation tick.")
    context_refresh_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="The engine re-reads the registry this often: a device's building and location, its rule "
        "parameters, buildings' floors and the communities' threshold overrides. A device moved to another "
        "building joins that building's fire linkage (GB 50116-2013 §4.1.6) within this.",
    )
    tick_grace_s: float = Field(
        default=2.0,
        ge=0,
        description="A deadline is declared missed by the tick only this long after it passed, so a message "
        "already in flight can still meet it (device time decides, not arrival).",
    )
    queue_size: int = Field(default=100_000, ge=100, description="Engine input queue (messages).")
    state_flush_s: float = Field(
        default=5.0, gt=0, description="Rule state is written behind in batches at least this often."
    )
    fault_alarm_deadline_s: float = Field(
        default=60.0,
        ge=0,
        description="A fault state seen in telemetry must be matched by the device's own fault event "
        "within this time, else silent_fault, s — [NOT FOUND] domain.md §5.2 asks for a deadline; "
        "no number in standards.md",
    )
    implausible_clear_messages: int = Field(
        default=3,
        ge=1,
        description="sensor_implausible from an out-of-range reading (refused at the edge) clears after "
        "this many good reports in a row (hysteresis) — [NOT FOUND] domain.md §4 hysteresis; no number "
        "in standards.md",
    )
    replay_slack_s: float = Field(
        default=5.0,
        ge=0,
        description="Crash recovery: stored messages received this long before the engine's checkpoint "
        "are replayed too (receipt clocks jitter; the sequence window skips what was evaluated).",
    )
    replay_ts_lookback_s: float = Field(
        default=6 * 3600.0,
        gt=0,
        description="Crash recovery reads messages whose device time is at most this much older than the "
        "checkpoint (bounds the scan; older buffered data is stored but not re-evaluated).",
    )
    persist_retry_max_s: float = Field(
        default=5.0, gt=0, description="Back-off ceiling while the database refuses the engine's writes."
    )
    command_verify_s: float = Field(
        default=60.0,
        gt=0,
        description="After a remote cutoff/close command, its effect must be seen within this time or the "
        "alarm is escalated (domain.md §5.1), s — [V] AP3000 ack timeout 15 s with one resend "
        "(standards.md §1.2), plus the next telemetry",
    )
    flap_window_s: float = Field(
        default=600.0,
        gt=0,
        description="Flapping: window over which raises of one alarm are counted, s — [NOT FOUND] "
        "domain.md §4 asks for flapping suppression; no number in standards.md",
    )
    flap_max_raises: int = Field(
        default=4,
        ge=2,
        description="Flapping: from this many raises within the window, the alarm is held open until the "
        "condition stays clear for a whole window — [NOT FOUND] domain.md §4; no number in standards.md",
    )
    clock_skew_alarm_s: float = Field(
        default=30.0,
        gt=0,
        description="A device whose measured clock offset (the least receive − device time over a "
        "window) exceeds this raises clock_skew, s — [S] GB 50396-2007 §5.1.3: event clocks err "
        "< 10 s/day with a daily sync; the rest is room for transport delay",
    )
    clock_skew_clear_s: float = Field(
        default=10.0,
        gt=0,
        description="clock_skew clears once the measured offset is back within this, s — [S] "
        "GB 50396-2007 §5.1.3 (< 10 s/day)",
    )
    clock_offset_window_s: float = Field(
        default=600.0,
        gt=0,
        description="The clock offset is the least receive − device time over a window this long "
        "holding at least two messages (the minimum filters the transport delay out), s — [V] "
        "practice: the NTP clock filter keeps the minimum-delay sample",
        json_schema_extra={"safety": False},
    )
    fire_linkage_signals: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Independent alarm signals that confirm a fire before the building-wide linkage "
        "(doors on evacuation routes released, elevators recalled, common lighting forced on): distinct "
        "detectors or manual call points of the building with their fire alarm open at once. One signal "
        "raises and notifies the fire alarm but starts no linkage; 1 links on any single detector — "
        "[S] GB 50116-2013 §4.1.2, §4.1.6 (与, AND logic of two independent alarm triggering devices)",
    )
    ebike_charger: ChargerRules = Field(default_factory=ChargerRules)
    smoke_alarm: SmokeRules = Field(default_factory=SmokeRules)
    gas_alarm: GasRules = Field(default_factory=GasRules)
    light: LightRules = Field(default_factory=LightRules)
    elevator: ElevatorRules = Field(default_factory=ElevatorRules)
    access_door: DoorRules = Field(default_factory=DoorRules)
    cctv_recorder: CctvRules = Field(default_factory=CctvRules)

    def with_overrides(self, overrides: dict[str, Any] | None) -> AlertSettings:
        """These settings with a community's overrides (its `settings["alerts"]`) applied."""
        if not overrides:
            return self
        merged = self.model_dump()
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        try:
            return AlertSettings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid alert overrides {overrides!r}: {exc}") from exc
