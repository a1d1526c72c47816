"""SIP voice calls against SIPp (Debian's sip-tester) as the callee: answer, busy 486, no answer
(CANCEL → 487), and answer + RFC 2833 DTMF "1" — which acknowledges the incident and its alarm
end to end through the worker. The alarm id travels in the X-Yiju-Alarm-Id header (SIPp's scenario
logs it), and the prompt is Mandarin speech from espeak-ng (G.711 µ-law)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from linkage_support import seed, sipp, wait_for

from alerts.escalation.channels.base import Attempt
from alerts.escalation.channels.sip import SipChannel, SipConfig, pcm16_to_ulaw_8k, render_prompt
from alerts.escalation.config import LinkageSettings
from alerts.escalation.worker import EscalationWorker
from storage import alarms
from storage import escalation as store
from storage.db import connect


def _attempt(alarm_id: int | None = 42) -> Attempt:
    return Attempt(
        idem_key="7:0:1:person:3:sip",
        incident_id=7,
        alarm_id=alarm_id,
        alarm_type="fire_alarm",
        severity="critical",
        summary="1号楼 3层",
        address="13800000001",
        target_name="张经理",
        drill=False,
        community="lk1",
        attempt=1,
        alarm_at=datetime.now(UTC),
    )


def _channel(port: int, tmp: Path, ring_timeout_s: float = 10.0) -> SipChannel:
    return SipChannel(
        SipConfig(
            "127.0.0.1",
            port,
            ring_timeout_s=ring_timeout_s,
            prompt_repeats=1,
            answer_wait_after_prompt_s=0.5,
            prompt_dir=tmp / "prompts",
        )
    )


def test_prompt_is_mandarin_speech_in_g711(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed; deploy/bootstrap.sh installs it")
    audio = render_prompt(tmp_path, "fire_alarm", "1号楼 3层", drill=False)
    assert len(audio) > 8000  # more than a second of 8 kHz speech, not the beep fallback (3 s exactly)
    assert len(audio) != 24000 and len(set(audio)) > 50
    assert (
        list(tmp_path.glob("fire_alarm-*.wav"))
        and render_prompt(tmp_path, "fire_alarm", "1号楼 3层", False) == audio
    )
    assert pcm16_to_ulaw_8k(b"\x00\x00" * 16000, 16000) == b"\xff" * 8000  # silence: µ-law 0xFF


def test_answer_with_dtmf_1_acknowledges(tmp_path: Path) -> None:
    with sipp("answer_dtmf", tmp_path) as peer:
        outcome = _channel(peer.port, tmp_path).send(_attempt())
        assert peer.wait(10) == 0  # SIPp: every call followed the scenario
    assert outcome.status == "acknowledged" and outcome.dtmf.startswith("1")
    assert [line.split()[-2] for line in peer.invites()] == ["alarm=42"]


def test_answer_without_dtmf_is_answered_not_acknowledged(tmp_path: Path) -> None:
    with sipp("answer", tmp_path) as peer:
        outcome = _channel(peer.port, tmp_path).send(_attempt())
        assert peer.wait(10) == 0
    assert outcome.status == "answered" and outcome.dtmf == ""


def test_busy(tmp_path: Path) -> None:
    with sipp("busy", tmp_path) as peer:
        outcome = _channel(peer.port, tmp_path).send(_attempt())
        assert peer.wait(10) == 0
    assert outcome.status == "busy" and "486" in outcome.detail


def test_no_answer_is_cancelled_after_the_ring_timeout(tmp_path: Path) -> None:
    with sipp("no_answer", tmp_path) as peer:
        outcome = _channel(peer.port, tmp_path, ring_timeout_s=1.5).send(_attempt())
        assert peer.wait(10) == 0  # SIPp saw CANCEL, answered 200 + 487 and got the ACK
    assert outcome.status == "no_answer"


def test_dtmf_1_acknowledges_the_incident_and_the_alarm_end_to_end(db_url: str, tmp_path: Path) -> None:
    ids = seed(db_url)
    with connect(db_url, autocommit=True) as conn:
        person = store.create_person(conn, community_id=ids["community"], name="张经理", phone="13800000001")
        chain = store.save_chain(
            conn,
            community_id=ids["community"],
            name="fire",
            definition={
                "steps": [
                    {"delay_s": 0, "targets": [{"kind": "person", "ref": person.id}], "channels": ["sip"]},
                    {"delay_s": 60, "targets": [{"kind": "person", "ref": person.id}], "channels": ["sip"]},
                ]
            },
        )
        store.create_policy(conn, community_id=ids["community"], name="fire", chain_id=chain.id)
    with sipp("answer_dtmf", tmp_path) as peer:
        worker = EscalationWorker(
            db_url,
            LinkageSettings(),
            {"sip": _channel(peer.port, tmp_path)},
        )
        with worker:
            with connect(db_url, autocommit=True) as conn:
                alarm_id = alarms.raise_or_update(
                    conn,
                    community_id=ids["community"],
                    device_id=ids["smk1"],
                    type="fire_alarm",
                    severity="critical",
                    at=datetime.now(UTC),
                    source="device",
                ).alarm.id
            assert peer.wait(20) == 0

            def acknowledged() -> store.IncidentRow | None:
                with connect(db_url, autocommit=True) as conn:
                    inc = store.incident_of_alarm(conn, alarm_id)
                return inc if inc is not None and inc.state == "acknowledged" else None

            inc = wait_for(acknowledged, 20, "the DTMF ack to reach the incident")
    with connect(db_url, autocommit=True) as conn:
        alarm = alarms.get(conn, alarm_id)
        rows = store.outbox_of(conn, inc.id)
        kinds = [a.kind for a in store.audit_of(conn, inc.id)]
    assert alarm is not None and alarm.acknowledged and alarm.acknowledged_by == "dtmf:张经理"
    assert [(r.step, r.status) for r in rows] == [(0, "acknowledged")]  # step 1 never created
    assert "dtmf" in kinds and kinds[-1] == "acknowledged"
    assert [line.split()[-2] for line in peer.invites()] == [f"alarm={alarm_id}"]
    assert worker.metrics.attempts.labels("sip", "acknowledged")._value.get() == 1
    assert worker.metrics.first_attempt_s._sum.get() < 1.0
