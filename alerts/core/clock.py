"""A device's clock against Yiju's: its offset measured from its messages, the engine clock turned
into the device's time for timers, and the `clock_skew` alarm (GB 50396-2007 §5.1.3 [S]: event
clocks err < 10 s/day and are synchronised daily).

The rule core keeps every timer and deadline in device time (alerts/core/model.py). Between messages
the tick compares them with Yiju's clock (`AlertSettings.clock = "wall"`): without a correction a
charger 2 minutes behind misses a 90 s deadline the moment it is opened, and a door 4 minutes behind
is silent "for 4 minutes" right after each report. Every message carries the device's time (`ts`)
and ingest's receive time; receive − device time is the clock offset plus the transport delay (≥ 0).

- Timers (`DeviceState.clock_offset_s`): the offset of the device's newest message.
  `device_now(now) = now − offset`. The transport delay in it can only make a tick's verdict
  later, never earlier, and a message decides in device time anyway; for silence it amounts to
  "no message received since".
- The alarm (`DeviceState.clock_window`, a `ClockWindow`: its start (receive time), the least offset
  and the messages seen in it): the least offset of a window filters the transport delay out (the
  NTP clock filter keeps the minimum-delay sample).
  A window is decided once it has lasted `clock_offset_window_s` and holds two messages: beyond
  `clock_skew_alarm_s` raises `clock_skew` with the evidence, within `clock_skew_clear_s` clears it.
- A message ingest found outside its timestamp window (docs/mqtt.md §3) reaches the rules stamped
  with its receive time (`msg.ts` is no longer the envelope's `ts`): a wrong clock on its own
  evidence, `clock_skew` at once, with the device's time in the details (`substituted`). Telemetry
  outside the window is dead-lettered by ingest and handed here too (`refused`).

Event clock (accelerated simulation): receive times are wall time while device times are simulated,
so no offset is measured and the correction is 0. Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from alerts.config import AlertSettings
from alerts.core.model import DeviceState, Out, to_dt
from alerts.core.records import ClockWindow
from devices.alarms import AlarmType
from devices.contract import Decoded

A = AlarmType
SAMPLES_TO_DECIDE = 2


def offset_s(st: DeviceState) -> float:
    """Receive − device time of the device's newest message (0: unknown, or the event clock)."""
    return st.clock_offset_s


def device_now(st: DeviceState, now: float) -> float:
    """The engine clock `now` in the device's time."""
    return now - st.clock_offset_s


def claimed_ts(msg: Decoded) -> datetime | None:
    """The envelope's own time when ingest replaced it by the receive time, else None."""
    claimed: datetime | None = getattr(msg.body, "ts", None)
    if claimed is None or claimed == msg.ts:
        return None
    return claimed


def envelope_ts(payload: bytes) -> datetime | None:
    """The envelope's `ts` of a refused payload, when it is an ISO time with an offset."""
    try:
        doc = json.loads(payload)
        ts = (
            datetime.fromisoformat(doc["ts"])
            if isinstance(doc, dict) and isinstance(doc.get("ts"), str)
            else None
        )
    except (ValueError, RecursionError):
        return None
    return ts if ts is not None and ts.tzinfo is not None else None


def _evidence(claimed: datetime, received: datetime) -> dict[str, Any]:
    return {
        "reason": "timestamp_out_of_window",
        "device_ts": claimed.isoformat(),
        "received_at": received.isoformat(),
        "offset_s": round((received - claimed).total_seconds(), 1),
    }


def observe(out: Out, msg: Decoded, last_ts: float, th: AlertSettings) -> dict[str, Any] | None:
    """Take the clock evidence of one message (before its rules run; `last_ts` is the newest device
    time seen before it). Returns the evidence when its time was replaced by the receive time."""
    claimed = claimed_ts(msg)
    received = msg.received_at
    if claimed is not None:
        evidence = _evidence(claimed, received)
        out.st.clock_offset_s = 0.0  # its time is Yiju's now
        out.raise_(A.CLOCK_SKEW, msg.ts.timestamp(), evidence)
        return evidence
    if th.clock != "wall":
        return None
    ts, rx = msg.ts.timestamp(), received.timestamp()
    sample = rx - ts
    st = out.st
    if ts >= last_ts:
        st.clock_offset_s = round(sample, 3)
    window = st.clock_window
    if window is None:
        st.clock_window = ClockWindow(rx, sample)
        return None
    window.least = min(window.least, sample)
    window.n += 1
    if rx - window.start < th.clock_offset_window_s or window.n < SAMPLES_TO_DECIDE:
        return None
    least, n, span = window.least, window.n, rx - window.start
    st.clock_window = ClockWindow(rx, sample)
    if abs(least) > th.clock_skew_alarm_s:
        out.raise_(
            A.CLOCK_SKEW,
            ts,
            {
                "reason": "offset",
                "offset_s": round(least, 1),
                "behind": least > 0,
                "threshold_s": th.clock_skew_alarm_s,
                "messages": n,
                "window_s": round(span, 1),
            },
        )
    elif abs(least) <= th.clock_skew_clear_s:
        out.clear(A.CLOCK_SKEW, ts, {"offset_s": round(least, 1), "clear_within_s": th.clock_skew_clear_s})
    return None


def refused(out: Out, claimed: datetime, received: float) -> None:
    """Ingest refused the device's telemetry for its timestamp alone (dead-lettered)."""
    evidence = {**_evidence(claimed, to_dt(received)), "dead_lettered": "telemetry"}
    out.raise_(A.CLOCK_SKEW, received, evidence)
