"""One valid sample of every message, per family and channel, for tests of the models, the simulator
and ingest. Every event type and every command of every family has a sample too.

Samples are plain JSON-able dicts (what a device would put on the wire); `payload()` wraps them in
the contract v1 envelope and encodes them.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from devices.contract import Channel, Family

CST = timezone(timedelta(hours=8))
SAMPLE_TS = datetime(2026, 6, 1, 8, 0, tzinfo=CST)
SAMPLE_COMMAND_ID = "6f1c1f4e-8a8e-4b6e-9d44-0d6a3c2f8b10"
_TS = SAMPLE_TS.isoformat()
_HASH = "5f2b" * 16

_PROTECTION = {
    "full_auto_stop": True,
    "over_temp_cutoff": True,
    "over_temp_c": 80.0,
    "port_power_limit_w": 2000.0,
    "max_session_s": 36_000,
    "float_time_s": 3600,
    "leakage_trip_ma": 30.0,
    "over_voltage_v": 270.0,
    "under_voltage_v": 100.0,
}


def _port(n: int, *, charging: bool) -> dict[str, Any]:
    return {
        "port": n,
        "state": "charging" if charging else "idle",
        "relay_on": charging,
        "voltage_v": 229.5,
        "current_a": 1.2 if charging else 0.0,
        "power_w": 275.4 if charging else 0.0,
        "session_energy_kwh": 0.42 if charging else 0.0,
        "port_temp_c": 31.5,
        "fault_code": None,
        "session_s": 5400 if charging else 0,
    }


TELEMETRY: dict[Family, dict[str, Any]] = {
    Family.EBIKE_CHARGER: {
        "ports": [_port(n, charging=n in (1, 4)) for n in range(1, 11)],
        "ambient_temp_c": 24.0,
        "smoke": False,
        "leakage_ma": 3.5,
        "breaker_closed": True,
        "total_power_w": 550.8,
        "protection": _PROTECTION,
    },
    Family.SMOKE_ALARM: {
        "state": "normal",
        "battery_pct": 87.0,
        "battery_checked_at": "2026-06-01T03:00:00+08:00",
        "residual_current_ma": None,
        "cable_temp_c": None,
    },
    Family.GAS_ALARM: {"state": "normal", "lel_pct": 0.0, "co_ppm": 2.0, "valve": "open"},
    Family.LIGHT: {
        "on": True,
        "dim_pct": 60.0,
        "power_w": 18.5,
        "current_a": 0.09,
        "voltage_v": 228.0,
        "rated_power_w": 30.0,
        "mode": "schedule",
    },
    Family.ELEVATOR: {
        "floor": 7,
        "direction": "up",
        "moving": True,
        "door": "closed",
        "at_level": False,
        "speed_mps": 1.5,
        "occupied": True,
        "load_kg": 230.0,
        "mode": "normal",
        "faults": [],
    },
    Family.ACCESS_DOOR: {"open": False, "locked": True, "mode": "normal", "open_s": None},
    Family.CCTV_RECORDER: {
        "channels": [
            {
                "channel": n,
                "online": True,
                "recording": True,
                "earliest_recording": "2026-04-28T08:00:00+08:00",
                "latest_recording": "2026-06-01T07:59:30+08:00",
            }
            for n in range(1, 17)
        ],
        "disk_total_gb": 16_000.0,
        "disk_free_gb": 120.5,
        "disk_healthy": True,
    },
}

EVENTS: dict[Family, list[dict[str, Any]]] = {
    Family.EBIKE_CHARGER: [
        {"type": "session_start", "port": 4, "session_id": "S-0001"},
        {"type": "session_stop", "port": 4, "reason": "full", "energy_kwh": 1.1, "duration_s": 14_400},
        {"type": "fault", "port": 2, "code": "relay_welded", "active": True},
        {"type": "alarm", "kind": "temperature", "active": True, "port": 0, "value": 82.0},
    ],
    Family.SMOKE_ALARM: [
        {"type": "alarm", "kind": "smoke"},
        {"type": "cleared", "kind": "smoke"},
        {"type": "fault", "code": "low_battery", "active": True},
        {"type": "self_test", "ok": True},
        {"type": "silenced", "duration_s": 600, "by": "button"},
    ],
    Family.GAS_ALARM: [
        {"type": "low", "gas": "combustible", "lel_pct": 26.0},
        {"type": "high", "gas": "combustible", "lel_pct": 52.0},
        {"type": "cleared", "gas": "combustible"},
        {"type": "valve_closed", "by": "alarm"},
        {"type": "valve_opened"},
        {"type": "fault", "code": "valve", "active": True},
    ],
    Family.LIGHT: [
        {"type": "lamp_failure", "active": True},
        {"type": "controller_fault", "code": "comm", "active": False},
    ],
    Family.ELEVATOR: [
        {"type": "fault", "code": "trapped_not_at_level", "active": True, "floor": 7},
        {"type": "alarm_button", "floor": 7},
        {"type": "ebike_detected", "floor": 1},
        {"type": "rescue_arrived", "by": "维保单位A"},
    ],
    Family.ACCESS_DOOR: [
        {"type": "granted", "method": "card", "credential_hash": _HASH},
        {"type": "denied", "method": "card", "reason": "unknown_credential", "credential_hash": _HASH},
        {"type": "forced_open"},
        {"type": "held_open", "active": True, "open_s": 90},
        {"type": "duress", "credential_hash": _HASH},
        {"type": "tamper", "active": True},
        {"type": "comm_loss", "active": True, "peer": "reader-2"},
        {"type": "released", "by": "fire"},
        {"type": "restored"},
    ],
    Family.CCTV_RECORDER: [
        {"type": "channel_offline", "channel": 3},
        {"type": "channel_online", "channel": 3},
        {"type": "recording_stopped", "channel": 5},
        {"type": "recording_started", "channel": 5},
        {"type": "disk_fault", "active": True, "disk": 2},
        {"type": "disk_full", "active": True},
        {
            "type": "gap",
            "channel": 5,
            "start": "2026-05-30T01:00:00+08:00",
            "end": "2026-05-30T03:30:00+08:00",
        },
    ],
}

# Command bodies: {"command": name, **params}
COMMANDS: dict[Family, list[dict[str, Any]]] = {
    Family.EBIKE_CHARGER: [
        {"command": "stop_port", "port": 4},
        {"command": "cut_power"},
        {"command": "set_limits", "over_temp_cutoff": True, "over_temp_c": 75.0},
    ],
    Family.SMOKE_ALARM: [{"command": "silence", "duration_s": 300}],
    Family.GAS_ALARM: [{"command": "close_valve"}],
    Family.LIGHT: [
        {"command": "set", "on": True, "dim_pct": 80.0},
        {"command": "force_on", "active": True},
        {"command": "schedule", "entries": [{"on_at": "18:30", "off_at": "06:00", "dim_pct": 70.0}]},
    ],
    Family.ELEVATOR: [{"command": "recall", "floor": 1}, {"command": "hold"}, {"command": "release"}],
    Family.ACCESS_DOOR: [
        {"command": "unlock", "duration_s": 6},
        {"command": "release_all"},
        {"command": "restore"},
    ],
    Family.CCTV_RECORDER: [],
}


def envelope(family: Family, *, device: str = "SAMPLE-1", seq: int = 1, ts: str = _TS) -> dict[str, Any]:
    return {"v": 1, "device": device, "family": family.value, "ts": ts, "seq": seq}


def message(
    family: Family,
    channel: Channel,
    *,
    device: str = "SAMPLE-1",
    seq: int = 1,
    ts: str = _TS,
    index: int = 0,
) -> dict[str, Any]:
    """A whole message as a dict; `index` picks the event or command sample."""
    if channel is Channel.COMMAND:
        body = copy.deepcopy(COMMANDS[family][index])
        name = body.pop("command")
        return {"v": 1, "id": SAMPLE_COMMAND_ID, "ts": ts, "command": name, "params": body}
    msg = envelope(family, device=device, seq=seq, ts=ts)
    if channel is Channel.TELEMETRY:
        msg["data"] = copy.deepcopy(TELEMETRY[family])
    elif channel is Channel.EVENT:
        msg["event"] = copy.deepcopy(EVENTS[family][index])
    elif channel is Channel.STATUS:
        msg.update(state="online", firmware="1.2.3", heartbeat_s=60)
    else:
        msg.update(id=SAMPLE_COMMAND_ID, ok=True, code=None, detail=None)
    return msg


def payload(family: Family, channel: Channel, **kw: Any) -> bytes:
    return json.dumps(message(family, channel, **kw), ensure_ascii=False).encode()


def all_messages() -> list[tuple[Family, Channel, dict[str, Any]]]:
    """Every sample: telemetry, status, cmd_ack per family, each event type, each command."""
    out: list[tuple[Family, Channel, dict[str, Any]]] = []
    for family in Family:
        for channel in (Channel.TELEMETRY, Channel.STATUS, Channel.COMMAND_ACK):
            out.append((family, channel, message(family, channel)))
        out += [
            (family, Channel.EVENT, message(family, Channel.EVENT, index=i))
            for i in range(len(EVENTS[family]))
        ]
        out += [
            (family, Channel.COMMAND, message(family, Channel.COMMAND, index=i))
            for i in range(len(COMMANDS[family]))
        ]
    return out
