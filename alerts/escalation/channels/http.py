"""Signed HTTP deliveries: the third-party webhook and the SMS / cloud-voice gateway.

Webhook (96333 elevator platforms, 119 relays, any integrator): `POST <url>` with a JSON body and
    X-Yiju-Timestamp: <unix seconds>
    X-Yiju-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    Idempotency-Key: <incident:loop:step:target:channel>
A receiver recomputes the signature over the exact bytes, refuses timestamps outside its replay
window (`verify_webhook` is the reference implementation, used by the tests' receiver), and treats a
repeated Idempotency-Key as already done. 2xx or 409 → delivered; 408/425/429/5xx and network errors
→ retried with back-off; other 4xx → failed (a signature or configuration problem that retrying
cannot fix). Timeout 10 s, retries 1 s/2 s/4 s (standards.md §8 [V], IoT-Zinx push spec).

Gateway: the shape common to Chinese SMS / voice-notification vendors — a signed request naming a
template and its parameters, the caller's own request id (`out_id` = the idempotency key, so a
resend after a crash is recognised by the gateway), the vendor's request id back, and a delivery
receipt fetched by polling (`GET /v1/receipts/<request id>`). Throttling (HTTP 429 or the vendor's
business-limit code) is retryable; the per-number limits are enforced before sending (outbox claim).
    X-Access-Key, X-Timestamp, X-Nonce,
    X-Signature: hex HMAC-SHA256(secret, "POST\\n<path>\\n<timestamp>\\n<nonce>\\n<body>")
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from alerts.escalation.channels.base import Attempt, Outcome, Status, alarm_label, message_zh

WEBHOOK_TIMEOUT_S = 10.0  # standards.md §8 [V]: 10 s per push
RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
THROTTLE_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "THROTTLED", "isv.DAY_LIMIT_CONTROL"})


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(
    secret: str, headers: dict[str, str], body: bytes, *, now: float, window_s: float
) -> str | None:
    """None if the request is authentic and fresh, else the reason to refuse it (receiver side)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ts_text = lowered.get("x-yiju-timestamp", "")
    if not ts_text.isdigit():
        return "missing timestamp"
    if abs(now - int(ts_text)) > window_s:
        return "timestamp outside the replay window"
    expected = sign_webhook(secret, int(ts_text), body)
    if not hmac.compare_digest(expected, lowered.get("x-yiju-signature", "")):
        return "bad signature"
    return None


def webhook_body(a: Attempt) -> bytes:
    body = {
        "event": "yiju.linkage.alarm",
        "drill": a.drill,
        "incident_id": a.incident_id,
        "alarm_id": a.alarm_id,
        "alarm_type": a.alarm_type,
        "alarm_label": alarm_label(a.alarm_type),
        "severity": a.severity,
        "community": a.community,
        "summary": a.summary,
        "text": message_zh(a),
        "alarm_at": a.alarm_at.isoformat(),
        "attempt": a.attempt,
        "idempotency_key": a.idem_key,
        "context": a.context,
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


class WebhookChannel:
    name = "webhook"

    def __init__(self, timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def send(self, attempt: Attempt) -> Outcome:
        body = webhook_body(attempt)
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Yiju-Timestamp": str(ts),
            "X-Yiju-Signature": sign_webhook(attempt.secret, ts, body),
            "Idempotency-Key": attempt.idem_key,
            "X-Yiju-Event": "linkage.alarm",
            "User-Agent": "yiju-linkage",
        }
        try:
            code, text = _post(attempt.address, body, headers, self.timeout_s)
        except (OSError, ValueError) as exc:
            return Outcome("failed", f"network error: {exc}", retryable=not isinstance(exc, ValueError))
        if 200 <= code < 300 or code == 409:
            return Outcome("delivered", f"HTTP {code}", extra={"http_status": code})
        detail = f"HTTP {code}: {text[:200].decode('utf-8', 'replace')}"
        return Outcome("failed", detail, retryable=code in RETRYABLE_HTTP, extra={"http_status": code})


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    base_url: str
    access_key: str
    secret: str
    sms_template: str = "YIJU_ALARM"
    voice_template: str = "YIJU_ALARM_TTS"
    timeout_s: float = 10.0
    receipt_timeout_s: float = 60.0
    receipt_poll_s: float = 1.0


def sign_gateway(secret: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    text = f"POST\n{path}\n{timestamp}\n{nonce}\n".encode() + body
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


class GatewayChannel:
    """SMS (`kind="sms"`) or cloud voice notification (`kind="voice"`) through an HTTP gateway."""

    def __init__(self, config: GatewayConfig, kind: str) -> None:
        if kind not in ("sms", "voice"):
            raise ValueError(kind)
        self.config = config
        self.name = kind

    def _signed(self, path: str, body: bytes) -> dict[str, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-Access-Key": self.config.access_key,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": sign_gateway(self.config.secret, path, ts, nonce, body),
        }

    def send(self, attempt: Attempt) -> Outcome:
        cfg = self.config
        path = "/v1/sms/send" if self.name == "sms" else "/v1/voice/call"
        params: dict[str, Any] = {
            "community": attempt.community,
            "alarm": alarm_label(attempt.alarm_type),
            "where": attempt.summary,
            "drill": "演练" if attempt.drill else "",
        }
        body = json.dumps(
            {
                "phone": attempt.address,
                "template_id": cfg.sms_template if self.name == "sms" else cfg.voice_template,
                "params": params,
                "out_id": attempt.idem_key,
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode()
        try:
            code, text = _post(cfg.base_url.rstrip("/") + path, body, self._signed(path, body), cfg.timeout_s)
        except (OSError, ValueError) as exc:
            return Outcome("failed", f"network error: {exc}", retryable=not isinstance(exc, ValueError))
        reply = _json(text)
        vendor_code = str(reply.get("code", ""))
        if code == 429 or vendor_code in THROTTLE_CODES:
            return Outcome("failed", f"throttled by the gateway ({vendor_code or code})", retryable=True)
        if code >= 500:
            return Outcome("failed", f"gateway HTTP {code}", retryable=True)
        if code != 200 or vendor_code != "OK":
            return Outcome("failed", f"gateway refused: HTTP {code} {vendor_code} {reply.get('message', '')}")
        request_id = str(reply.get("request_id", ""))
        return self._receipt(request_id)

    def _receipt(self, request_id: str) -> Outcome:
        """Poll the delivery receipt until it is final or `receipt_timeout_s` passes."""
        cfg = self.config
        deadline = time.monotonic() + cfg.receipt_timeout_s
        url = cfg.base_url.rstrip("/") + "/v1/receipts/" + urllib.parse.quote(request_id, safe="")
        last = "pending"
        while time.monotonic() < deadline:
            try:
                code, text = _get(url, {"X-Access-Key": cfg.access_key}, cfg.timeout_s)
            except OSError as exc:
                last = f"receipt poll failed: {exc}"
                time.sleep(cfg.receipt_poll_s)
                continue
            state = str(_json(text).get("status", "")) if code == 200 else ""
            dtmf = str(_json(text).get("dtmf", "")) if code == 200 else ""
            if state == "delivered":
                return Outcome("delivered", "receipt: delivered", provider_ref=request_id)
            if state == "answered":
                status: Status = "acknowledged" if "1" in dtmf else "answered"
                return Outcome(
                    status, f"receipt: answered, DTMF {dtmf or 'none'}", provider_ref=request_id, dtmf=dtmf
                )
            if state == "busy":
                return Outcome("busy", "receipt: busy", provider_ref=request_id)
            if state == "no_answer":
                return Outcome("no_answer", "receipt: no_answer", provider_ref=request_id)
            if state == "failed":
                return Outcome("failed", "receipt: failed", provider_ref=request_id)
            last = state or f"HTTP {code}"
            time.sleep(cfg.receipt_poll_s)
        return Outcome(
            "delivered",
            f"accepted, no final receipt in {cfg.receipt_timeout_s:g} s ({last})",
            provider_ref=request_id,
        )


def _json(text: bytes) -> dict[str, Any]:
    try:
        value = json.loads(text or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
