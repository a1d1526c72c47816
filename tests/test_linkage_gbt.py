"""GB/T 26875.3-2011 user-information transmission against a fire remote-monitoring centre written
in the test from the standard's frame layout (tests/linkage_support.Centre): golden frames, the
checksum span, send-and-confirm, a lost first frame confirmed by a resend within 10 s, three
resends and no more, deny."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from linkage_support import centre

from alerts.escalation.channels import gbt26875 as gbt
from alerts.escalation.channels.base import Attempt

AT = datetime(2026, 12, 1, 10, 20, 30, tzinfo=ZoneInfo("Asia/Shanghai"))

# A send-data frame (command 2) carrying ADU type 2 (component status): fire alarm of component 42,
# written out by hand field by field from the layout in standards.md §11.
GOLDEN_SEND = bytes.fromhex(
    "4040"  # start @@
    "0100"  # serial number 1, little-endian
    "0100"  # protocol version 1.0
    "1e140a010c1a"  # time: 30 s, 20 min, 10 h, day 1, month 12, year 26
    "010000000000"  # source address 1
    "0000000000ab"  # destination address
    "3000"  # ADU length 48
    "02"  # command: send data
    "0201"  # ADU type 2 (component status), 1 object
    "01"  # system type 1 (fire alarm system)
    "00"  # system address 0
    "00"  # component type 0
    "2a000000"  # component address 42
    "0300"  # status: bit 0 normal operation, bit 1 fire alarm
    "31bac5c2a52033b2e3"
    + "00"
    * 22  # description "1号楼 3层" in GB18030, 31 bytes zero padded
    + "1e140a010c1a"  # time of the event
    "d6"  # checksum: sum of serial..command and the ADU, mod 256
    "2323"  # end ##
)
# The centre's confirm (command 3) of serial 1, addresses swapped, empty ADU.
GOLDEN_CONFIRM = bytes.fromhex("4040010001001e140a010c1a0000000000ab010000000000000003142323")


def test_golden_frames() -> None:
    adu = gbt.adu_component_status(1, 0, 0, 42, gbt.STATUS_NORMAL | gbt.STATUS_FIRE, "1号楼 3层", AT)
    frame = gbt.Frame(
        1, (1, 0), gbt.time_bytes(AT), gbt.address(1), gbt.address("0000000000ab"), gbt.CMD_SEND, adu
    )
    assert gbt.encode(frame) == GOLDEN_SEND
    decoded, rest, error = gbt.decode(b"noise" + GOLDEN_CONFIRM + b"@@")
    assert error == "" and rest == b"@@" and decoded is not None
    assert (decoded.serial, decoded.command, decoded.adu) == (1, gbt.CMD_CONFIRM, b"")
    assert decoded.source == gbt.address("0000000000ab") and decoded.time == (30, 20, 10, 1, 12, 26)
    # a corrupted byte fails the checksum and is reported, never accepted
    bad = bytearray(GOLDEN_SEND)
    bad[30] ^= 0x01
    assert gbt.decode(bytes(bad))[0] is None and gbt.decode(bytes(bad))[2] == "checksum mismatch"
    # a system-status ADU (type 1) and the 31-byte description limit (whole characters only)
    assert gbt.adu_system_status(1, 0, 0x0003, AT) == bytes.fromhex("0101010003001e140a010c1a")
    assert len(gbt.description("很长的描述" * 10)) == 31


def _attempt(port: int, *, drill: bool = False) -> Attempt:
    return Attempt(
        idem_key="9:0:2:endpoint:1:gbt26875",
        incident_id=9,
        alarm_id=5,
        alarm_type="fire_alarm",
        severity="critical",
        summary="1号楼 3层",
        address=f"127.0.0.1:{port}",
        target_name="市消防远程监控中心",
        drill=drill,
        community="lk1",
        attempt=1,
        alarm_at=datetime.now(UTC),
        context={"timezone": "Asia/Shanghai", "device_id": 42},
        endpoint={"source": 1, "destination": "0000000000ab"},
    )


def test_first_frame_lost_is_confirmed_after_a_resend_within_10_s() -> None:
    channel = gbt.Gbt26875Channel(gbt.GbtConfig())  # defaults: 3 s confirm timeout, 3 resends
    with centre(drop_first=1) as c:
        started = time.monotonic()
        outcome = channel.send(_attempt(c.port))
        took = time.monotonic() - started
    assert outcome.status == "delivered" and outcome.extra["resends"] == 1
    assert took <= 10.0, took  # GB/T 26875.1: the alarm reaches the centre within 10 s
    (t1, f1), (t2, f2) = c.frames
    assert f1 == f2 and f1.command == gbt.CMD_SEND and 2.9 <= t2 - t1 <= 4.0
    status = int.from_bytes(f1.adu[9:11], "little")
    assert f1.adu[0] == 2 and status & gbt.STATUS_FIRE and status & gbt.STATUS_NORMAL
    assert f1.adu[11:42].rstrip(b"\0").decode("gb18030") == "1号楼 3层" and c.errors == []


def test_three_resends_then_failed_retryable() -> None:
    channel = gbt.Gbt26875Channel(gbt.GbtConfig(confirm_timeout_s=0.2, resends=3))
    with centre(drop_first=100) as c:
        outcome = channel.send(_attempt(c.port))
    assert outcome.status == "failed" and outcome.retryable and len(c.frames) == 4
    assert len({f.serial for _, f in c.frames}) == 1


def test_deny_and_drill_marked_as_test() -> None:
    channel = gbt.Gbt26875Channel(gbt.GbtConfig(confirm_timeout_s=1))
    with centre(deny=True) as c:
        outcome = channel.send(_attempt(c.port, drill=True))
    assert outcome.status == "failed" and not outcome.retryable and "denied" in outcome.detail
    [(_, frame)] = c.frames
    status = int.from_bytes(frame.adu[9:11], "little")
    assert not status & gbt.STATUS_NORMAL  # bit 0 = 0: test, not a real fire
    assert frame.adu[11:42].rstrip(b"\0").decode("gb18030").startswith("演练")
