"""The bad-input set: messages ingest must refuse, each labelled with the dead-letter reason it must
record (`devices.contract.DeadLetterReason`, shared with ingest). None may crash the stream, none may
be dropped silently, and none may reach the rules as a reading (no finding, no row). The one reading
outside the physically possible range (150 %LEL) is a device fault all the same (domain.md §5.2):
ingest hands that refusal to the engine, which raises `sensor_implausible`; telemetry refused for its
timestamp is handed over too and raises `clock_skew` (a wrong clock) — the only two alarms here.

Payloads are built by hand here, on purpose (the emitter validates everything it sends). Sequence
numbers are far above anything the devices use, so a refused message cannot disturb the devices'
real sequences.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from devices.alarms import AlarmType
from devices.contract import CONTRACT_VERSION, Channel, DeadLetterReason, Family
from simulators.compound import SimDevice
from simulators.emitter import iso
from simulators.scenarios.builder import Builder, Factory, Picker, registrar
from simulators.scenarios.truth import ExpectedDeadLetter, Scenario
from simulators.stream import SimMessage

R = DeadLetterReason
SCENARIOS: dict[str, Factory] = {}
scenario = registrar(SCENARIOS)
BAD_SEQ = 1 << 40
OVERSIZE_BYTES = 70 * 1024  # above ingest's default 64 KiB limit
FAR_S = 10 * 86_400  # 10 days: outside ingest's window (3 days back, 5 minutes ahead)


def _gas_doc(uid: str, at: datetime, seq: int, **data: Any) -> dict[str, Any]:
    return {
        "v": CONTRACT_VERSION,
        "device": uid,
        "family": Family.GAS_ALARM.value,
        "ts": iso(at),
        "seq": seq,
        "data": {"state": "normal", "lel_pct": 1.0, "co_ppm": 2.0, "valve": "open", **data},
    }


@scenario("bad_input")
def bad_input(p: Picker, start: datetime) -> Scenario:
    b = Builder(
        "bad_input",
        p.compound,
        start,
        "Malformed JSON, wrong types, out-of-range values, a missing field, an unknown device, topic/"
        "device and family mismatches, far-future and far-past timestamps, an oversize payload and bad "
        "topics: each must become one dead letter with its reason; the out-of-range reading also raises "
        "sensor_implausible.",
    )
    a, other = p.take(Family.GAS_ALARM), p.take(Family.GAS_ALARM)
    b.devices += [a.uid, other.uid]
    community = p.compound.community.code
    seq = iter(range(BAD_SEQ, BAD_SEQ + 1000))
    at = 60.0

    def send(reason: DeadLetterReason, payload: bytes, *, device: SimDevice | None = None, topic: str = "",
             uid: str | None = None, recorded_uid: str | None = "") -> None:  # fmt: skip
        nonlocal at
        uid = uid or (device or a).uid
        topic = topic or f"v{CONTRACT_VERSION}/{community}/{uid}/{Channel.TELEMETRY.value}"
        b.add(SimMessage(b.t(at), community, uid, Channel.TELEMETRY, payload, raw_topic=topic))
        b.dead.append(ExpectedDeadLetter(reason.value, topic, uid if recorded_uid == "" else recorded_uid))
        at += 1

    def doc(**data: Any) -> dict[str, Any]:
        return _gas_doc(a.uid, b.t(at), next(seq), **data)

    def dump(d: dict[str, Any]) -> bytes:
        return json.dumps(d, ensure_ascii=False).encode()

    send(R.MALFORMED_JSON, dump(doc())[:40])
    send(R.MALFORMED_JSON, b"\xff\xfe not utf-8 at all")
    send(R.SCHEMA_VIOLATION, dump(doc(lel_pct="3.5")))  # a string where a number belongs
    b.alarm(AlarmType.SENSOR_IMPLAUSIBLE, a.uid, at)  # the refused reading's own time
    send(R.SCHEMA_VIOLATION, dump(doc(lel_pct=150.0)))  # above 100 %LEL: physically impossible
    send(R.SCHEMA_VIOLATION, dump(doc(valve="half-open")))  # not a valve state
    missing = doc()
    del missing["data"]["valve"]
    send(R.SCHEMA_VIOLATION, dump(missing))
    unknown = f"{community}-ghost-001"
    send(R.UNKNOWN_DEVICE, dump({**doc(), "device": unknown}), uid=unknown)
    # topic of `a`, envelope of `other`
    send(R.TOPIC_MISMATCH, dump(_gas_doc(other.uid, b.t(at), next(seq))))
    # topic names a community the device does not belong to
    stranger = "zz-other-community"
    send(
        R.TOPIC_MISMATCH,
        dump(doc()),
        topic=f"v{CONTRACT_VERSION}/{stranger}/{a.uid}/{Channel.TELEMETRY.value}",
    )
    send(R.FAMILY_MISMATCH, dump({**doc(), "family": Family.LIGHT.value}))
    # telemetry refused for its time alone: a wrong clock, flagged at the receive time
    b.alarm(AlarmType.CLOCK_SKEW, a.uid, at, received=True)
    send(R.TIMESTAMP_OUT_OF_WINDOW, dump({**doc(), "ts": iso(b.t(at) + timedelta(seconds=FAR_S))}))
    send(R.TIMESTAMP_OUT_OF_WINDOW, dump({**doc(), "ts": iso(b.t(at) - timedelta(seconds=3 * FAR_S))}))
    big = doc()
    big["pad"] = "x" * OVERSIZE_BYTES
    send(R.OVERSIZE, dump(big), recorded_uid=None)
    send(
        R.BAD_TOPIC,
        dump(doc()),
        topic=f"v{CONTRACT_VERSION}/{community}/{a.uid}/{Channel.TELEMETRY.value}/extra",
        recorded_uid=None,
    )
    send(
        R.BAD_TOPIC,
        dump(doc()),
        topic=f"v{CONTRACT_VERSION}/{community}/{a.uid}/telemetryx",
        recorded_uid=None,
    )
    send(
        R.UNSUPPORTED_VERSION,
        dump(doc()),
        topic=f"v{CONTRACT_VERSION + 1}/{community}/{a.uid}/{Channel.TELEMETRY.value}",
        recorded_uid=None,
    )
    return b.build()
