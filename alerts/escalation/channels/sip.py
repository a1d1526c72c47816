"""SIP voice call: a small SIP user agent client over UDP (RFC 3261 INVITE client transaction),
G.711 µ-law RTP playback of a Chinese prompt, and RFC 2833/4733 telephone-event receive.

Why our own UA and not a PyPI stack: the PJSIP bindings (pjsua2) are not on PyPI as wheels and need
a C build; pyVoIP is a softphone that insists on REGISTERing with a PBX and handles one media format.
A call-out that must work when nothing else does needs few moving parts: one INVITE, one ACK, RTP
out, telephone events in, BYE — about 300 lines here, tested against SIPp (tests/test_linkage_sip.py).

The call goes to `sip:<number>@<proxy>` (the PBX or SIP trunk routes it); the alarm id travels in
the `X-Yiju-Alarm-Id` header and the idempotency key in `X-Yiju-Idempotency-Key` (and in Call-ID).
Outcomes: 486/600/603 → busy; 408/480/487 or the ring timeout (CANCEL) → no_answer; other final
errors → failed; 200 → answered, acknowledged when the callee presses the ack digit (default "1").
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from alerts.escalation.channels.base import Attempt, Outcome, alarm_label

log = logging.getLogger(__name__)

T1_S = 0.5  # RFC 3261 §17.1.1.1 retransmission timer
RTP_FRAME_S = 0.02
RTP_FRAME_BYTES = 160  # 20 ms of 8 kHz G.711
PT_PCMU = 0
PT_EVENT = 101
DTMF_DIGITS = "0123456789*#ABCD"
_STATUS_RE = re.compile(r"^SIP/2\.0 (\d{3})")


@dataclass(frozen=True, slots=True)
class SipConfig:
    proxy_host: str
    proxy_port: int
    local_host: str = "127.0.0.1"
    from_user: str = "yiju"
    ring_timeout_s: float = 30.0
    prompt_repeats: int = 2
    ack_digit: str = "1"
    answer_wait_after_prompt_s: float = 5.0
    prompt_dir: Path = Path(".yiju/prompts")


# ---------------------------------------------------------------------------------------------
# Prompts: one µ-law 8 kHz file per alarm type, rendered by espeak-ng (Mandarin voice)


def _ulaw(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


_ULAW = bytes(_ulaw(s - 32768) for s in range(65536))


def pcm16_to_ulaw_8k(frames: bytes, rate: int) -> bytes:
    """Resample 16-bit mono PCM to 8 kHz (linear interpolation) and encode it as G.711 µ-law."""
    samples = struct.unpack(f"<{len(frames) // 2}h", frames[: len(frames) // 2 * 2])
    if not samples:
        return b""
    n_out = int(len(samples) * 8000 / rate)
    step = rate / 8000
    out = bytearray(n_out)
    last = len(samples) - 1
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = samples[j]
        b = samples[min(j + 1, last)]
        out[i] = _ULAW[int(a + (b - a) * frac) + 32768]
    return bytes(out)


def _beeps() -> bytes:
    """Fallback prompt when no speech synthesiser is installed: three 1 kHz beeps."""
    pcm = bytearray()
    for k in range(8000 * 3):
        on = (k % 8000) < 4000
        v = int(12000 * math.sin(2 * math.pi * 1000 * k / 8000)) if on else 0
        pcm += struct.pack("<h", v)
    return pcm16_to_ulaw_8k(bytes(pcm), 8000)


def prompt_text(alarm_type: str, summary: str, drill: bool) -> str:
    head = "演练。" if drill else ""
    return f"{head}宜居紧急通知。{alarm_label(alarm_type)}。{summary}。确认请按1。"


def render_prompt(directory: Path, alarm_type: str, summary: str, drill: bool) -> bytes:
    """µ-law audio of the prompt, cached as WAV per alarm type (and summary) under `directory`."""
    text = prompt_text(alarm_type, summary, drill)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    cached = directory / f"{alarm_type}-{digest}.ulaw"
    if cached.exists():
        return cached.read_bytes()
    wav = directory / f"{alarm_type}-{digest}.wav"
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        log.warning("espeak-ng is not installed (deploy/bootstrap.sh installs it); calls play beeps")
        return _beeps()
    try:
        subprocess.run(
            [espeak, "-v", "cmn", "-s", "150", "-w", str(wav), text],
            check=True,
            capture_output=True,
            timeout=30,
        )
        with wave.open(str(wav), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ValueError("espeak-ng wrote an unexpected WAV format")
            audio = pcm16_to_ulaw_8k(w.readframes(w.getnframes()), w.getframerate())
    except (OSError, subprocess.SubprocessError, ValueError, wave.Error) as exc:
        log.warning("voice prompt not synthesised (%s); calls play beeps", exc)
        return _beeps()
    cached.write_bytes(audio)
    return audio


# ---------------------------------------------------------------------------------------------
# SIP messages


def _tag() -> str:
    return f"{random.getrandbits(48):012x}"


def _branch() -> str:
    return f"z9hG4bK{random.getrandbits(64):016x}"


@dataclass
class _Response:
    code: int
    headers: dict[str, str]
    body: str
    raw: str


def _parse(data: bytes) -> tuple[str, dict[str, str], str]:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        key = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}.get(
            key, key
        )
        headers.setdefault(key, value.strip())
    return lines[0], headers, body


def _sdp_media(body: str) -> tuple[str, int, int]:
    """(address, audio port, telephone-event payload type) of an SDP answer."""
    host, port, event_pt = "", 0, PT_EVENT
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
        elif line.startswith("a=rtpmap:") and "telephone-event" in line:
            event_pt = int(line[len("a=rtpmap:") :].split()[0])
    return host, port, event_pt


class SipChannel:
    """`Channel` for voice calls through a SIP proxy; one call per `send`, blocking."""

    name = "sip"

    def __init__(self, config: SipConfig) -> None:
        self.config = config

    def send(self, attempt: Attempt) -> Outcome:
        audio = render_prompt(self.config.prompt_dir, attempt.alarm_type, attempt.summary, attempt.drill)
        try:
            return _Call(self.config, attempt, audio).run()
        except OSError as exc:
            return Outcome("failed", f"network error: {exc}", retryable=True)


class _Call:
    def __init__(self, cfg: SipConfig, attempt: Attempt, audio: bytes) -> None:
        self.cfg, self.attempt, self.audio = cfg, attempt, audio
        self.number = re.sub(r"[^0-9+*#]", "", attempt.address)
        self.call_id = (
            hashlib.sha256(f"{attempt.idem_key}#{attempt.attempt}".encode()).hexdigest()[:24] + "@yiju"
        )
        self.from_tag = _tag()
        self.to_tag = ""
        self.remote_target = f"sip:{self.number}@{cfg.proxy_host}:{cfg.proxy_port}"
        self.proxy = (cfg.proxy_host, cfg.proxy_port)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # -- wire helpers

    def _local(self) -> tuple[str, int]:
        host, port = self.sip.getsockname()
        return str(host), int(port)

    def _request(
        self, method: str, uri: str, branch: str, cseq: int, *, body: str = "", extra: list[str] | None = None
    ) -> bytes:
        host, port = self._local()
        to = f"<sip:{self.number}@{self.cfg.proxy_host}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f'From: "Yiju" <sip:{self.cfg.from_user}@{host}>;tag={self.from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.cfg.from_user}@{host}:{port}>",
            "User-Agent: yiju-linkage",
            *(extra or []),
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def _sdp(self) -> str:
        host = self.cfg.local_host
        port = self.rtp.getsockname()[1]
        sess = random.getrandbits(31)
        return (
            f"v=0\r\no=yiju {sess} {sess} IN IP4 {host}\r\ns=yiju\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {PT_PCMU} {PT_EVENT}\r\na=rtpmap:{PT_PCMU} PCMU/8000\r\n"
            f"a=rtpmap:{PT_EVENT} telephone-event/8000\r\na=fmtp:{PT_EVENT} 0-15\r\n"
            "a=ptime:20\r\na=sendrecv\r\n"
        )

    def _recv(self, timeout_s: float) -> _Response | None:
        """One SIP response (requests from the callee — BYE — are answered here)."""
        ready, _, _ = select.select([self.sip], [], [], max(0.0, timeout_s))
        if not ready:
            return None
        data, addr = self.sip.recvfrom(65535)
        first, headers, body = _parse(data)
        m = _STATUS_RE.match(first)
        if m is None:
            self._answer_request(first, headers, addr)
            return _Response(0, headers, body, first)
        return _Response(int(m.group(1)), headers, body, first)

    def _answer_request(self, first: str, headers: dict[str, str], addr: tuple[str, int]) -> None:
        method = first.split(" ", 1)[0]
        if method in ("BYE", "CANCEL", "OPTIONS", "INFO"):
            resp = "\r\n".join(
                [
                    "SIP/2.0 200 OK",
                    f"Via: {headers.get('via', '')}",
                    f"From: {headers.get('from', '')}",
                    f"To: {headers.get('to', '')}",
                    f"Call-ID: {headers.get('call-id', '')}",
                    f"CSeq: {headers.get('cseq', '')}",
                    "Content-Length: 0",
                ]
            )
            self.sip.sendto((resp + "\r\n\r\n").encode(), addr)
            if method == "BYE":
                self.remote_bye = True

    # -- the call

    remote_bye = False

    def run(self) -> Outcome:
        try:
            self.sip.bind((self.cfg.local_host, 0))
            self.rtp.bind((self.cfg.local_host, 0))
            return self._invite()
        finally:
            self.sip.close()
            self.rtp.close()

    def _invite(self) -> Outcome:
        a = self.attempt
        branch = _branch()
        extra = [
            f"X-Yiju-Alarm-Id: {a.alarm_id if a.alarm_id is not None else 'drill'}",
            f"X-Yiju-Incident-Id: {a.incident_id}",
            f"X-Yiju-Idempotency-Key: {a.idem_key}",
            *(["X-Yiju-Drill: 1"] if a.drill else []),
        ]
        invite = self._request(
            "INVITE",
            f"sip:{self.number}@{self.cfg.proxy_host}:{self.cfg.proxy_port}",
            branch,
            1,
            body=self._sdp(),
            extra=extra,
        )
        self.sip.sendto(invite, self.proxy)
        provisional = False
        started = time.monotonic()
        retrans_at, interval = started + T1_S, T1_S
        while True:
            now = time.monotonic()
            if now - started > self.cfg.ring_timeout_s:
                return self._cancel(branch)
            if not provisional and now >= retrans_at:
                if now - started > 64 * T1_S:
                    return Outcome("failed", "no response from the SIP proxy (timer B)", retryable=True)
                self.sip.sendto(invite, self.proxy)
                interval = min(interval * 2, 4.0)
                retrans_at = now + interval
            resp = self._recv(min(0.1, max(0.0, retrans_at - now)) if not provisional else 0.1)
            if resp is None or resp.code == 0 or "INVITE" not in resp.headers.get("cseq", ""):
                continue
            if resp.code < 200:
                provisional = True
                continue
            self.to_tag = _to_tag(resp.headers.get("to", ""))
            if resp.code >= 300:
                self.sip.sendto(
                    self._request("ACK", invite.split(b" ", 2)[1].decode(), branch, 1), self.proxy
                )
                return _final(resp.code)
            return self._answered(resp)

    def _cancel(self, branch: str) -> Outcome:
        uri = f"sip:{self.number}@{self.cfg.proxy_host}:{self.cfg.proxy_port}"
        saved_tag, self.to_tag = self.to_tag, ""
        cancel = self._request("CANCEL", uri, branch, 1)
        self.to_tag = saved_tag
        self.sip.sendto(cancel, self.proxy)
        deadline = time.monotonic() + 32 * T1_S
        resend_at = time.monotonic() + T1_S
        cancel_done = False
        while time.monotonic() < deadline:
            if not cancel_done and time.monotonic() >= resend_at:
                self.sip.sendto(cancel, self.proxy)
                resend_at = time.monotonic() + 2 * T1_S
            resp = self._recv(0.1)
            if resp is None or resp.code == 0:
                continue
            if "CANCEL" in resp.headers.get("cseq", "") and resp.code >= 200:
                cancel_done = True
                continue
            if "INVITE" in resp.headers.get("cseq", "") and resp.code >= 200:
                self.to_tag = _to_tag(resp.headers.get("to", ""))
                self.sip.sendto(self._request("ACK", uri, branch, 1), self.proxy)
                if resp.code == 200:  # answered just as we gave up: hang up politely
                    self._bye()
                return Outcome("no_answer", f"no answer within {self.cfg.ring_timeout_s:g} s")
        return Outcome("no_answer", f"no answer within {self.cfg.ring_timeout_s:g} s (CANCEL unanswered)")

    def _answered(self, ok: _Response) -> Outcome:
        contact = re.search(r"<([^>]+)>", ok.headers.get("contact", ""))
        if contact:
            self.remote_target = contact.group(1)
        ack = self._request("ACK", self.remote_target, _branch(), 1)
        self.sip.sendto(ack, self.proxy)
        host, port, event_pt = _sdp_media(ok.body)
        digits = self._media((host or self.proxy[0], port), event_pt, ack)
        if not self.remote_bye:
            self._bye()
        acked = self.cfg.ack_digit in digits
        return Outcome(
            "acknowledged" if acked else "answered",
            f"answered; DTMF {digits or 'none'}",
            dtmf=digits,
            extra={"call_id": self.call_id},
            provider_ref=self.call_id,
        )

    def _media(self, remote: tuple[str, int], event_pt: int, ack: bytes) -> str:
        """Play the prompt (repeated) while listening for telephone events; stop on the ack digit,
        a BYE, or `answer_wait_after_prompt_s` after the last repeat."""
        digits = ""
        last_event: tuple[int, int] | None = None  # (timestamp, digit) of the event being reported
        ssrc = random.getrandbits(32)
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        audio = self.audio * max(1, self.cfg.prompt_repeats)
        frames = [audio[i : i + RTP_FRAME_BYTES] for i in range(0, len(audio), RTP_FRAME_BYTES)]
        start = time.monotonic()
        end = start + len(frames) * RTP_FRAME_S + self.cfg.answer_wait_after_prompt_s
        sent = 0
        while time.monotonic() < end and not self.remote_bye:
            due = start + sent * RTP_FRAME_S
            if sent < len(frames) and time.monotonic() >= due and remote[1]:
                payload = frames[sent].ljust(RTP_FRAME_BYTES, b"\xff")
                header = struct.pack("!BBHII", 0x80, PT_PCMU, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                self.rtp.sendto(header + payload, remote)
                seq, ts, sent = seq + 1, ts + RTP_FRAME_BYTES, sent + 1
            wait = max(0.0, min(due + RTP_FRAME_S, end) - time.monotonic())
            ready, _, _ = select.select([self.rtp, self.sip], [], [], min(wait, RTP_FRAME_S))
            if self.sip in ready:
                resp = self._recv(0)
                if resp is not None and resp.code == 200 and "INVITE" in resp.headers.get("cseq", ""):
                    self.sip.sendto(ack, self.proxy)  # our ACK was lost: the 200 is retransmitted
            if self.rtp in ready:
                packet = self.rtp.recv(2048)
                event = _telephone_event(packet, event_pt)
                if event is not None and (event[0], event[1]) != last_event:
                    last_event = (event[0], event[1])
                    digits += DTMF_DIGITS[event[1]] if event[1] < len(DTMF_DIGITS) else "?"
                    if self.cfg.ack_digit in digits:
                        break
        return digits

    def _bye(self) -> None:
        bye = self._request("BYE", self.remote_target, _branch(), 2)
        deadline = time.monotonic() + 8 * T1_S
        resend_at = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= resend_at:
                self.sip.sendto(bye, self.proxy)
                resend_at = time.monotonic() + T1_S
            resp = self._recv(0.1)
            if resp is not None and resp.code >= 200 and "BYE" in resp.headers.get("cseq", ""):
                return


def _to_tag(to: str) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", to)
    return m.group(1) if m else ""


def _telephone_event(packet: bytes, event_pt: int) -> tuple[int, int] | None:
    """(RTP timestamp, event code) of an RFC 4733 telephone-event packet, else None."""
    if len(packet) < 16 or packet[0] >> 6 != 2:
        return None
    pt = packet[1] & 0x7F
    if pt != event_pt:
        return None
    csrc = packet[0] & 0x0F
    offset = 12 + 4 * csrc
    if packet[0] & 0x10:  # header extension
        if len(packet) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack("!H", packet[offset + 2 : offset + 4])[0]
    if len(packet) < offset + 4:
        return None
    timestamp = struct.unpack("!I", packet[4:8])[0]
    return timestamp, packet[offset]


def _final(code: int) -> Outcome:
    if code in (486, 600, 603):
        return Outcome("busy", f"SIP {code} busy / declined")
    if code in (408, 480, 487):
        return Outcome("no_answer", f"SIP {code} not answered")
    if code in (503, 500, 504):
        return Outcome("failed", f"SIP {code} from the proxy", retryable=True)
    return Outcome("failed", f"SIP {code}")
