"""The SMS / cloud-voice HTTP gateway adapter against a local server that behaves like a vendor's:
signed requests, template + parameters, the caller's out_id (the idempotency key), the vendor's
request id, receipts by polling, throttling — and the per-number rate limit of the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from linkage_support import gateway, seed

from alerts.escalation.channels.base import Attempt
from alerts.escalation.channels.http import GatewayChannel, GatewayConfig
from alerts.escalation.config import LinkageSettings
from alerts.escalation.worker import EscalationWorker
from storage import alarms
from storage import escalation as store
from storage.db import connect

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _attempt(key: str = "3:0:1:person:2:sms") -> Attempt:
    return Attempt(
        idem_key=key,
        incident_id=3,
        alarm_id=8,
        alarm_type="gas_high_alarm",
        severity="critical",
        summary="2号楼 厨房",
        address="13900000002",
        target_name="李主任",
        drill=False,
        community="lk1",
        attempt=1,
        alarm_at=T0,
    )


def _config(url: str, **kw: object) -> GatewayConfig:
    return GatewayConfig(
        base_url=url, access_key="AK1", secret="gw-secret", receipt_poll_s=0.05, receipt_timeout_s=2, **kw
    )  # type: ignore[arg-type]


def test_sms_is_signed_templated_and_receipted() -> None:
    with gateway() as gw:
        outcome = GatewayChannel(_config(gw.url), "sms").send(_attempt())
        again = GatewayChannel(_config(gw.url), "sms").send(_attempt())  # resend after a crash
    assert outcome.status == "delivered" and outcome.provider_ref == "req-1"
    assert again.provider_ref == "req-1" and len(gw.sends) == 1  # the gateway recognised the out_id
    [sent] = gw.sends
    assert sent["template_id"] == "YIJU_ALARM" and sent["params"]["alarm"] == "燃气高限报警"
    assert sent["out_id"] == "3:0:1:person:2:sms" and sent["phone"] == "13900000002"
    assert gw.refused == [] and gw.polls >= 1


def test_wrong_secret_is_refused_not_retried() -> None:
    with gateway(secret="other") as gw:
        outcome = GatewayChannel(_config(gw.url), "sms").send(_attempt())
    assert outcome.status == "failed" and not outcome.retryable and gw.refused == ["signature"]


def test_throttling_is_retryable() -> None:
    with gateway(throttle=1) as gw:
        first = GatewayChannel(_config(gw.url), "sms").send(_attempt())
        second = GatewayChannel(_config(gw.url), "sms").send(_attempt())
    assert first.status == "failed" and first.retryable and "BUSINESS_LIMIT_CONTROL" in first.detail
    assert second.status == "delivered"


def test_voice_call_receipt_with_dtmf_acknowledges() -> None:
    with gateway(receipt="answered", dtmf="1") as gw:
        outcome = GatewayChannel(_config(gw.url), "voice").send(_attempt("3:0:1:person:2:voice"))
    assert outcome.status == "acknowledged" and gw.sends[0]["path"] == "/v1/voice/call"
    with gateway(receipt="no_answer") as gw:
        assert GatewayChannel(_config(gw.url), "voice").send(_attempt()).status == "no_answer"


def test_per_number_rate_limit_holds_back_the_second_sms(db_url: str) -> None:
    """Cloud providers cap one number at 1/min (standards.md §11 [V]): three incidents for the same
    person within a minute send one SMS now; the others wait, audited as rate limited."""
    ids = seed(db_url)
    with connect(db_url, autocommit=True) as conn:
        person = store.create_person(conn, community_id=ids["community"], name="李主任", phone="13900000002")
        chain = store.save_chain(
            conn,
            community_id=ids["community"],
            name="sms",
            definition={
                "steps": [
                    {"delay_s": 0, "targets": [{"kind": "person", "ref": person.id}], "channels": ["sms"]}
                ]
            },
        )
        store.create_policy(conn, community_id=ids["community"], name="all", chain_id=chain.id)
    now = [T0]
    with gateway() as gw:
        worker = EscalationWorker(
            db_url,
            LinkageSettings(),
            {"sms": GatewayChannel(_config(gw.url), "sms")},
            clock=lambda: now[0],
        )
        try:
            with connect(db_url, autocommit=True) as conn:
                for device in ("smk1", "gas1", "door1"):
                    alarms.raise_or_update(
                        conn,
                        community_id=ids["community"],
                        device_id=ids[device],
                        type="door_duress",
                        severity="critical",
                        at=T0,
                    )
            worker.step()
            assert len(gw.sends) == 1
            now[0] = T0 + timedelta(seconds=30)
            worker.step()
            assert len(gw.sends) == 1
            now[0] = T0 + timedelta(seconds=60)
            worker.step()
            assert len(gw.sends) == 2
            now[0] = T0 + timedelta(seconds=120)
            worker.step()
            assert len(gw.sends) == 3
        finally:
            worker.close()
    assert worker.metrics.rate_limited._value.get() >= 2
