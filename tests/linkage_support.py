"""Real peers for the linkage tests, on free loopback ports: a signed-webhook receiver, an SMS / voice
gateway, a GB/T 26875.3 fire remote-monitoring centre written from the standard's frame layout,
and SIPp as the SIP callee. Each can fail on purpose; none is a mock that cannot fail."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alerts.escalation.channels import gbt26875 as gbt
from alerts.escalation.channels.http import sign_gateway, verify_webhook
from storage.db import connect

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


def seed(url: str, *, tz: str = "Asia/Shanghai") -> dict[str, int]:
    """A community with a building, a location and a smoke alarm, a gas alarm and a door (fixture SQL)."""
    with connect(url, autocommit=True) as conn:
        cid = conn.execute(
            "INSERT INTO communities (code, name, timezone) VALUES ('lk1', '幸福里', %s) RETURNING id", (tz,)
        ).fetchone()
        assert cid
        bid = conn.execute(
            "INSERT INTO buildings (community_id, code, name) VALUES (%s, 'b1', '1号楼') RETURNING id", cid
        ).fetchone()
        assert bid
        lid = conn.execute(
            "INSERT INTO locations (community_id, building_id, kind, code, name) "
            "VALUES (%s, %s, 'floor', 'b1f3', '3层') RETURNING id",
            (cid[0], bid[0]),
        ).fetchone()
        assert lid
        ids = {"community": cid[0], "building": bid[0], "location": lid[0]}
        for uid, family in (("smk1", "smoke_alarm"), ("gas1", "gas_alarm"), ("door1", "access_door")):
            row = conn.execute(
                "INSERT INTO devices (uid, community_id, location_id, family) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (uid, cid[0], lid[0], family),
            ).fetchone()
            assert row
            ids[uid] = row[0]
        return ids


def wait_for(cond: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy (a condition, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Webhook receiver


@dataclass
class WebhookReceiver:
    """Verifies the signature and the replay window, de-duplicates by Idempotency-Key, and answers
    with the statuses queued in `fail_with` first (e.g. [500, 500] → two failures, then 200)."""

    secret: str
    window_s: float = 300.0
    fail_with: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # accepted, first time per key
    duplicates: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.raw.append((headers, body))
            if self.fail_with:
                return self.fail_with.pop(0), b'{"error":"on purpose"}'
            why = verify_webhook(self.secret, headers, body, now=time.time(), window_s=self.window_s)
            if why is not None:
                self.refused.append(why)
                return 401, json.dumps({"error": why}).encode()
            key = {k.lower(): v for k, v in headers.items()}.get("idempotency-key", "")
            if any(r["_key"] == key for r in self.received):
                self.duplicates.append(key)
                return 409, b'{"status":"duplicate"}'
            doc = json.loads(body)
            doc["_key"] = key
            self.received.append(doc)
            return 200, b'{"status":"ok"}'

    def keys(self) -> list[str]:
        with self.lock:
            return [r["_key"] for r in self.received]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _respond(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        code, out = self.server.app.post(self.path, dict(self.headers.items()), body)  # type: ignore[attr-defined]
        self._respond(code, out)

    def do_GET(self) -> None:
        code, out = self.server.app.get(self.path, dict(self.headers.items()))  # type: ignore[attr-defined]
        self._respond(code, out)


@contextmanager
def http_server(app: Any) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.app = app  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _WebhookApp:
    def __init__(self, receiver: WebhookReceiver) -> None:
        self.r = receiver

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        return self.r.handle(headers, body)

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return 404, b"{}"


@contextmanager
def webhook_receiver(secret: str = "s3cret", **kw: Any) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret, **kw)
    with http_server(_WebhookApp(receiver)) as base:
        receiver.url = base + "/hook"
        yield receiver


# ---------------------------------------------------------------------------------------------
# SMS / voice gateway


@dataclass
class Gateway:
    """Behaves like a vendor gateway: checks the access key and signature, de-duplicates by out_id,
    answers with a request id, throttles when asked, and serves receipts."""

    access_key: str = "AK1"
    secret: str = "gw-secret"
    throttle: int = 0  # the next N sends answer the vendor's business-limit code
    receipt: str = "delivered"  # or answered / busy / no_answer / failed
    dtmf: str = ""
    sends: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    by_out_id: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        h = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            if h.get("x-access-key") != self.access_key:
                self.refused.append("access key")
                return 403, b'{"code":"InvalidAccessKeyId"}'
            expected = sign_gateway(self.secret, path, h.get("x-timestamp", ""), h.get("x-nonce", ""), body)
            if expected != h.get("x-signature"):
                self.refused.append("signature")
                return 403, b'{"code":"SignatureDoesNotMatch"}'
            if abs(time.time() - int(h.get("x-timestamp", "0"))) > 300:
                self.refused.append("timestamp")
                return 403, b'{"code":"InvalidTimeStamp"}'
            if self.throttle > 0:
                self.throttle -= 1
                return 200, b'{"code":"isv.BUSINESS_LIMIT_CONTROL","message":"\\u89e6\\u53d1\\u6d41\\u63a7"}'
            doc = json.loads(body)
            out_id = doc.get("out_id", "")
            if out_id in self.by_out_id:  # a resend: the same request, not a second message
                return 200, json.dumps({"code": "OK", "request_id": self.by_out_id[out_id]}).encode()
            request_id = f"req-{len(self.by_out_id) + 1}"
            self.by_out_id[out_id] = request_id
            self.sends.append({**doc, "path": path, "request_id": request_id})
            return 200, json.dumps({"code": "OK", "request_id": request_id}).encode()

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        with self.lock:
            self.polls += 1
            if not path.startswith("/v1/receipts/"):
                return 404, b"{}"
            return 200, json.dumps({"status": self.receipt, "dtmf": self.dtmf}).encode()


@contextmanager
def gateway(**kw: Any) -> Iterator[Gateway]:
    gw = Gateway(**kw)
    with http_server(gw) as base:
        gw.url = base
        yield gw


# ---------------------------------------------------------------------------------------------
# GB/T 26875.3 centre


@dataclass
class Centre:
    """A fire remote-monitoring centre: reads frames from the layout, confirms send-data frames with
    the same serial number; drops the first `drop_first` frames unanswered; denies when `deny`."""

    drop_first: int = 0
    deny: bool = False
    frames: list[tuple[float, gbt.Frame]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._conn, args=(conn, stop), daemon=True).start()

    def _conn(self, conn: socket.socket, stop: threading.Event) -> None:
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while True:
                    frame, buf, error = gbt.decode(buf)
                    if error:
                        with self.lock:
                            self.errors.append(error)
                        continue
                    if frame is None:
                        break
                    with self.lock:
                        self.frames.append((time.monotonic(), frame))
                        n = len(self.frames)
                    if n <= self.drop_first:
                        continue  # lost on purpose: no confirm
                    reply = gbt.Frame(
                        serial=frame.serial,
                        version=frame.version,
                        time=frame.time,
                        source=frame.destination,
                        destination=frame.source,
                        command=gbt.CMD_DENY if self.deny else gbt.CMD_CONFIRM,
                        adu=b"",
                    )
                    conn.sendall(gbt.encode(reply))


@contextmanager
def centre(**kw: Any) -> Iterator[Centre]:
    c = Centre(**kw)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    c.port = sock.getsockname()[1]
    stop = threading.Event()
    thread = threading.Thread(target=c.serve, args=(sock, stop), daemon=True)
    thread.start()
    try:
        yield c
    finally:
        stop.set()
        thread.join(5)
        sock.close()


# ---------------------------------------------------------------------------------------------
# SIPp


@dataclass
class Sipp:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    messages: Path

    def invites(self) -> list[str]:
        """The 'INVITE alarm=… call=…' lines the scenario logged (one per call received)."""
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text(errors="replace").splitlines() if "INVITE alarm=" in line]

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout=timeout_s)


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if not found:
        raise RuntimeError(
            "SIPp (Debian package sip-tester) is not installed; deploy/bootstrap.sh installs it"
        )
    return found


@contextmanager
def sipp(scenario: str, tmp: Path, *, calls: int = 1) -> Iterator[Sipp]:
    """SIPp as the callee (UAS) running `tests/sipp/<scenario>.xml` on a free loopback port; it exits
    after `calls` calls (its exit status says whether every call followed the scenario)."""
    port, media = free_port(), free_port()
    log, messages = tmp / f"{scenario}.log", tmp / f"{scenario}.msg"
    proc = subprocess.Popen(
        [
            sipp_binary(),
            "-sf",
            str(SIPP_DIR / f"{scenario}.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(media),
            "-m",
            str(calls),
            "-nostdin",
            "-trace_logs",
            "-log_file",
            str(log),
            "-trace_msg",
            "-message_file",
            str(messages),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp,
    )
    try:
        # SIPp is ready once it holds its UDP port
        def bound() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"SIPp exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
            finally:
                probe.close()
            return False

        wait_for(bound, 10, "SIPp to bind its port")
        yield Sipp(port, proc, log, messages)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
