"""GB/T 26875.3-2011 user-information transmission to a city fire remote-monitoring centre.

Frame (standards.md §11 [S2]; little-endian where a field has two bytes):

    @@ | serial 2 | version 2 | time 6 (s min h d m yy) | source 6 | destination 6 | ADU length 2 |
    command 1 | ADU (≤ 1024) | checksum 1 | ##

checksum = byte sum, mod 256, of every header field from the serial number through the command,
plus the ADU. Commands: 1 control, 2 send data, 3 confirm, 4 request, 5 response, 6 deny.

ADU (type flag, object count, objects):
- type 1, building fire-facility system status: system type 1, system address 1, status word 2
  (bit 0 normal operation (0 = test), bit 1 fire alarm, bit 2 fault, …), time 6;
- type 2, component status: system type 1, system address 1, component type 1, component address 4,
  status word 2 (same bits), description 31 bytes GB18030 (zero padded), time 6.

Send-and-confirm: the centre answers a send-data frame with a confirm (or deny) carrying the same
serial number. No confirm within `confirm_timeout_s` → the same frame again, at most `resends`
times (standards.md §11 [S2]: timeout ≤ 10 s, 3 resends). The defaults (3 s, 3) keep a frame whose
first copy is lost inside part 1's 10 s delivery bound.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.escalation.channels.base import Attempt, Outcome

START = b"@@"
END = b"##"
CMD_CONTROL, CMD_SEND, CMD_CONFIRM, CMD_REQUEST, CMD_RESPONSE, CMD_DENY = 1, 2, 3, 4, 5, 6
ADU_MAX = 1024
STATUS_NORMAL = 1 << 0  # 1: normal operation, 0: test (a drill is sent as a test)
STATUS_FIRE = 1 << 1
STATUS_FAULT = 1 << 2
DESCRIPTION_BYTES = 31
FIRE_TYPES = frozenset({"fire_alarm", "charger_smoke"})


@dataclass(frozen=True, slots=True)
class Frame:
    serial: int
    version: tuple[int, int]
    time: tuple[int, int, int, int, int, int]  # s, min, h, d, m, yy
    source: bytes
    destination: bytes
    command: int
    adu: bytes


def checksum(header: bytes, adu: bytes) -> int:
    return (sum(header) + sum(adu)) & 0xFF


def encode(frame: Frame) -> bytes:
    if len(frame.adu) > ADU_MAX:
        raise ValueError(f"ADU of {len(frame.adu)} bytes exceeds {ADU_MAX}")
    if len(frame.source) != 6 or len(frame.destination) != 6:
        raise ValueError("addresses are 6 bytes")
    header = (
        struct.pack("<H", frame.serial & 0xFFFF)
        + bytes(frame.version)
        + bytes(frame.time)
        + frame.source
        + frame.destination
        + struct.pack("<H", len(frame.adu))
        + bytes([frame.command])
    )
    return START + header + frame.adu + bytes([checksum(header, frame.adu)]) + END


HEADER_BYTES = 2 + 2 + 6 + 6 + 6 + 2 + 1


def decode(data: bytes) -> tuple[Frame | None, bytes, str]:  # noqa: PLR0911 - one return per case
    """The first frame in `data`: (frame or None, the bytes after it, error). Garbage before `@@`
    is skipped; an incomplete frame returns (None, data, "")."""
    start = data.find(START)
    if start < 0:
        return None, data[-1:], ""
    data = data[start:]
    if len(data) < 2 + HEADER_BYTES:
        return None, data, ""
    header = data[2 : 2 + HEADER_BYTES]
    (length,) = struct.unpack("<H", header[22:24])
    if length > ADU_MAX:
        return None, data[2:], f"ADU length {length} over {ADU_MAX}"
    total = 2 + HEADER_BYTES + length + 1 + 2
    if len(data) < total:
        return None, data, ""
    adu = data[2 + HEADER_BYTES : 2 + HEADER_BYTES + length]
    check = data[2 + HEADER_BYTES + length]
    if data[total - 2 : total] != END:
        return None, data[2:], "missing ## terminator"
    if check != checksum(header, adu):
        return None, data[total:], "checksum mismatch"
    frame = Frame(
        serial=struct.unpack("<H", header[0:2])[0],
        version=(header[2], header[3]),
        time=tuple(header[4:10]),  # type: ignore[arg-type]
        source=header[10:16],
        destination=header[16:22],
        command=header[24],
        adu=adu,
    )
    return frame, data[total:], ""


def time_bytes(at: datetime) -> tuple[int, int, int, int, int, int]:
    return (at.second, at.minute, at.hour, at.day, at.month, at.year % 100)


def description(text: str) -> bytes:
    raw = text.encode("gb18030")
    while len(raw) > DESCRIPTION_BYTES:  # cut whole characters only
        text = text[:-1]
        raw = text.encode("gb18030")
    return raw.ljust(DESCRIPTION_BYTES, b"\x00")


def adu_system_status(system_type: int, system_address: int, status: int, at: datetime) -> bytes:
    return bytes([1, 1, system_type, system_address]) + struct.pack("<H", status) + bytes(time_bytes(at))


def adu_component_status(  # noqa: PLR0917 - the ADU's fields in wire order
    system_type: int,
    system_address: int,
    component_type: int,
    component_address: int,
    status: int,
    text: str,
    at: datetime,
) -> bytes:
    return (
        bytes([2, 1, system_type, system_address, component_type])
        + struct.pack("<I", component_address)
        + struct.pack("<H", status)
        + description(text)
        + bytes(time_bytes(at))
    )


def address(value: str | int) -> bytes:
    """A 6-byte address from an integer (little-endian) or 12 hex digits."""
    if isinstance(value, int):
        return value.to_bytes(6, "little")
    text = value.strip()
    if len(text) == 12 and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    return int(text).to_bytes(6, "little")


@dataclass(frozen=True, slots=True)
class GbtConfig:
    confirm_timeout_s: float = 3.0
    resends: int = 3
    connect_timeout_s: float = 3.0
    version: tuple[int, int] = (1, 0)


class Gbt26875Channel:
    """`Channel` for a fire remote-monitoring centre; `attempt.address` is host:port and
    `attempt.endpoint` holds `source`, `destination` (6-byte addresses), and optional
    `system_type`, `system_address`, `component_type`."""

    name = "gbt26875"

    def __init__(self, config: GbtConfig) -> None:
        self.config = config
        self._serial = int(time.time()) & 0xFFFF

    def _next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    def frame_for(self, a: Attempt, serial: int) -> Frame:
        cfg = a.endpoint
        tz = ZoneInfo(str(a.context.get("timezone", "Asia/Shanghai")))
        at = a.alarm_at.astimezone(tz)
        now = datetime.now(tz)
        status = 0 if a.drill else STATUS_NORMAL
        status |= STATUS_FIRE if a.alarm_type in FIRE_TYPES else STATUS_FAULT
        text = ("演练" if a.drill else "") + a.summary
        adu = adu_component_status(
            int(cfg.get("system_type", 1)),
            int(cfg.get("system_address", 0)),
            int(cfg.get("component_type", 0)),
            int(a.context.get("device_id", 0)) & 0xFFFFFFFF,
            status,
            text,
            at,
        )
        return Frame(
            serial=serial,
            version=self.config.version,
            time=time_bytes(now),
            source=address(cfg.get("source", 1)),
            destination=address(cfg.get("destination", 0)),
            command=CMD_SEND,
            adu=adu,
        )

    def send(self, attempt: Attempt) -> Outcome:
        host, _, port_text = attempt.address.rpartition(":")
        try:
            port = int(port_text)
            frame = self.frame_for(attempt, self._next_serial())
        except (ValueError, KeyError) as exc:
            return Outcome("failed", f"bad GB/T 26875.3 endpoint: {exc}")
        wire = encode(frame)
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=self.config.connect_timeout_s) as sock:
                for attempt_no in range(1 + self.config.resends):
                    sock.sendall(wire)
                    answer = self._await(sock, frame.serial, self.config.confirm_timeout_s)
                    if answer == CMD_CONFIRM:
                        took = time.monotonic() - started
                        return Outcome(
                            "delivered",
                            f"confirmed after {attempt_no} resend(s), {took:.2f} s",
                            provider_ref=f"serial:{frame.serial}",
                            extra={"resends": attempt_no, "confirm_s": round(took, 3)},
                        )
                    if answer == CMD_DENY:
                        return Outcome(
                            "failed", "the centre denied the frame", provider_ref=f"serial:{frame.serial}"
                        )
        except OSError as exc:
            return Outcome("failed", f"network error: {exc}", retryable=True)
        return Outcome(
            "failed",
            f"no confirm after {self.config.resends} resends",
            retryable=True,
            provider_ref=f"serial:{frame.serial}",
        )

    @staticmethod
    def _await(sock: socket.socket, serial: int, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                return None
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the centre closed the connection")
            buf += chunk
            while True:
                frame, buf, error = decode(buf)
                if frame is None:
                    if error:
                        continue  # a damaged frame: skip it, look for the next one
                    break
                if frame.serial == serial and frame.command in (CMD_CONFIRM, CMD_DENY):
                    return frame.command
