"""Settings of emergency linkage (`Settings.linkage`). Every deadline and limit is a setting whose
default cites its source in `../shared/spec/standards.md` (label in brackets) or says it is practice.

Environment: `YIJU_LINKAGE__SIP__PROXY=pbx.internal:5060`, `YIJU_LINKAGE__GATEWAY__BASE_URL=…`, etc.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SipSettings(BaseModel):
    proxy: str | None = Field(
        default=None, description="host:port of the SIP proxy / PBX / trunk that routes sip:<number>@proxy"
    )
    local_host: str = Field(
        default="127.0.0.1", description="Address of this host the PBX can reach (SDP, Via)"
    )
    from_user: str = "yiju"
    ring_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="Give up ringing (CANCEL) after this, s — [S2] GB/T 24475-2023 remote alarm answer "
        "'typically ≤ 30 s' (standards.md §4), used as the longest a duty phone may ring",
    )
    prompt_repeats: int = Field(default=2, ge=1, le=5, description="Times the voice prompt is played")
    ack_digit: str = Field(default="1", pattern=r"^[0-9*#]$", description="DTMF digit that acknowledges")
    answer_wait_after_prompt_s: float = Field(default=5.0, ge=0, le=60)


class GatewaySettings(BaseModel):
    base_url: str | None = Field(
        default=None, description="SMS / cloud-voice HTTP gateway, e.g. https://sms.vendor"
    )
    access_key: str = ""
    secret: str = ""
    sms_template: str = "YIJU_ALARM"
    voice_template: str = "YIJU_ALARM_TTS"
    receipt_timeout_s: float = Field(default=60.0, gt=0, le=600)
    receipt_poll_s: float = Field(default=1.0, gt=0, le=60)


class GbtSettings(BaseModel):
    confirm_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=10,
        description="Wait for the centre's confirm before resending, s — [S2] GB/T 26875.3-2011 timeout "
        "≤ 10 s (standards.md §11); 3 s keeps a lost first frame inside part 1's 10 s delivery",
    )
    resends: int = Field(
        default=3,
        ge=0,
        le=3,
        description="Resends without confirm — [S2] GB/T 26875.3-2011: 3 (standards.md §11)",
    )


# A critical alarm of a community without a matching policy still reaches people: the duty room at
# once, the manager on duty after 60 s, the director on duty after 120 s more, three loops.
DEFAULT_CHAIN: dict[str, Any] = {
    "steps": [
        {"name": "值班室", "delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
        {
            "name": "值班经理",
            "delay_s": 60,
            "targets": [{"kind": "on_duty", "group": "manager"}],
            "channels": ["sip"],
        },
        {
            "name": "上级",
            "delay_s": 120,
            "targets": [{"kind": "on_duty", "group": "director"}],
            "channels": ["sip"],
        },
    ],
    "loops": 3,
    "repeat_delay_s": 60,
}


class LinkageSettings(BaseModel):
    enabled: bool = Field(default=True, description="Run the escalation worker in `yiju run` / `yiju demo`")
    own_process: bool = Field(
        default=False,
        description="Run the worker in a child process (not sharing the interpreter with ingest and the "
        "engine: lower alarm-to-call latency under heavy ingest; its metrics are then not on /metrics)",
    )
    senders: int = Field(default=8, ge=1, le=64, description="Deliveries in flight at once (calls last)")
    poll_s: float = Field(default=1.0, gt=0, le=60, description="Wake-up when no NOTIFY arrives")
    lease_s: float = Field(
        default=180.0,
        gt=0,
        description="A delivery still 'sending' after this belongs to a dead worker (longer than a call)",
    )
    retry_backoff_s: list[float] = Field(
        default=[1.0, 2.0, 4.0],
        description="Delays before retries 1..n of a failed delivery, s — [V] IoT-Zinx push spec: 3 "
        "retries 1 s / 2 s / 4 s (standards.md §8)",
    )
    rate_limits: dict[str, list[tuple[float, int]]] = Field(
        default={
            "sms": [(60.0, 1), (3600.0, 5), (86400.0, 20)],
            "voice": [(60.0, 1), (3600.0, 5), (86400.0, 20)],
        },
        description="Per number and channel: (window s, max attempts) — [V] cloud voice providers cap one "
        "number at 1/min, 5/h, 20/24 h (standards.md §11)",
    )
    webhook_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="Webhook request timeout, s — [V] IoT-Zinx push spec: 10 s (standards.md §8)",
    )
    default_chain: dict[str, Any] | None = Field(
        default_factory=lambda: dict(DEFAULT_CHAIN),
        description="Chain for a critical alarm that matches no policy (None: no incident)",
    )
    sip: SipSettings = Field(default_factory=SipSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    gbt26875: GbtSettings = Field(default_factory=GbtSettings)
