"""A tiny driver for the pure rule core: one simulated device whose messages are decoded by the real
catalogue, evaluated in device time, with the outputs collected for assertions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.config import AlertSettings
from alerts.core import engine
from alerts.core.model import (
    ClearAlarm,
    DeviceContext,
    DeviceState,
    Escalate,
    Output,
    RaiseAlarm,
    SendCommand,
)
from devices import catalog, samples
from devices.alarms import Finding
from devices.contract import Channel, Decoded, DeviceRef, Family

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai


class Dev:
    def __init__(
        self,
        family: Family,
        *,
        settings: AlertSettings | None = None,
        building_id: int | None = 1,
        evacuation_route: bool = False,
        device_id: int = 1,
        rx_skew_s: float = 0.0,
    ) -> None:
        """`rx_skew_s`: the device's clock is this far behind Yiju's (negative: ahead); messages are
        received `rx_skew_s` after their device time, and `tick` takes Yiju's time."""
        self.family = family
        self.rx_skew_s = rx_skew_s
        self.th = settings or AlertSettings()
        self.ctx = DeviceContext(
            device_id=device_id,
            uid=f"D{device_id}",
            community_id=1,
            family=family,
            building_id=building_id,
            evacuation_route=evacuation_route,
        )
        self.st = DeviceState()
        self.seq = 0
        self.outputs: list[Output] = []
        self.telemetry = copy.deepcopy(samples.TELEMETRY[family])

    def _send(
        self,
        channel: Channel,
        at_s: float,
        fill: dict[str, Any],
        seq: int | None = None,
        *,
        claimed: datetime | None = None,
    ) -> list[Output]:
        """`claimed`: the envelope says this time, outside ingest's window, so ingest stamped the
        message with its receive time (device time `at_s` + `rx_skew_s`)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        ts = T0 + timedelta(seconds=at_s)
        rx = ts + timedelta(seconds=self.rx_skew_s)
        msg = samples.envelope(self.family, device=self.ctx.uid, seq=seq, ts=(claimed or ts).isoformat())
        msg.update(fill)
        body = catalog.decode(self.family, channel, json.dumps(msg))
        ref = DeviceRef(self.ctx.device_id, self.ctx.uid, "c1", 1, self.family)
        decoded = Decoded(ref, channel, rx if claimed else ts, seq, rx, body, b"")
        out = engine.evaluate(self.ctx, self.st, decoded, self.th)
        self.outputs += out
        return out

    def tele(self, at_s: float, *, seq: int | None = None, **changes: Any) -> list[Output]:
        data = copy.deepcopy(self.telemetry)
        data.update(changes)
        return self._send(Channel.TELEMETRY, at_s, {"data": data}, seq)

    def port_tele(self, at_s: float, port: int, **changes: Any) -> list[Output]:
        data = copy.deepcopy(self.telemetry)
        for p in data["ports"]:
            if p["port"] == port:
                p.update(changes)
        return self._send(Channel.TELEMETRY, at_s, {"data": data})

    def event(
        self, at_s: float, seq: int | None = None, *, claimed: datetime | None = None, **event: Any
    ) -> list[Output]:
        return self._send(Channel.EVENT, at_s, {"event": event}, seq, claimed=claimed)

    def status(
        self, at_s: float, state: str = "online", heartbeat_s: int | None = None, *, seq: int | None = None
    ) -> list[Output]:
        fill: dict[str, Any] = {"state": state}
        if heartbeat_s:
            fill["heartbeat_s"] = heartbeat_s
        return self._send(Channel.STATUS, at_s, fill, seq)

    def tick(self, at_s: float) -> list[Output]:
        out = engine.tick(self.ctx, self.st, (T0 + timedelta(seconds=at_s)).timestamp(), self.th)
        self.outputs += out
        return out

    # queries over everything emitted so far
    def raised(self, ignore: tuple[str, ...] = ("device_offline",)) -> list[str]:
        """Alarm types raised so far (by default without the offline alarms that long ticks cause)."""
        return [
            o.type.value for o in self.outputs if isinstance(o, RaiseAlarm) and o.type.value not in ignore
        ]

    def cleared(self) -> list[str]:
        return [o.type.value for o in self.outputs if isinstance(o, ClearAlarm)]

    def findings(self, check: str | None = None) -> list[Finding]:
        return [
            o for o in self.outputs if isinstance(o, Finding) and (check is None or o.check.value == check)
        ]

    def commands(self) -> list[SendCommand]:
        return [o for o in self.outputs if isinstance(o, SendCommand)]

    def escalations(self) -> list[Escalate]:
        return [o for o in self.outputs if isinstance(o, Escalate)]

    def open(self) -> set[str]:
        return set(self.st.open)

    def restart(self) -> None:
        """Persist and reload the state, as a process restart would."""
        self.st = DeviceState.from_json(json.loads(json.dumps(self.st.to_json())))
