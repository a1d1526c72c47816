"""`yiju demo` end to end: private services, simulated compound, ingest → engine → console/API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from yiju.embedded import free_port

STARTUP_S = 90.0
FIRST_ALARM_S = 150.0


def _wait(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[str],
    output: Callable[[], str],
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"yiju demo exited ({proc.returncode}) while waiting for {what}: {output()}")
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}: {output()}")


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """Outside pytest's private tmp tree: as root, the private cluster runs as 'postgres', which must
    reach it."""
    path = Path(tempfile.mkdtemp(prefix="yiju-demo-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_demo_serves_the_console_and_shows_the_fire(demo_dir: Path) -> None:
    tmp_path = demo_dir
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env["YIJU_STATE_DIR"] = str(tmp_path / "state")
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "yiju.cli", "demo", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    try:
        login: dict[str, str] = {}

        def banner() -> bool:
            match = re.search(r"login: (\S+) / (\S+)", out_path.read_text())
            if match:
                login.update(username=match.group(1), password=match.group(2))
            return bool(match)

        def tail() -> str:
            return out_path.read_text()[-2000:]

        _wait(banner, STARTUP_S, "the console banner", proc, tail)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10.0) as client:
            _wait(lambda: _ok(client, "/console/"), 30.0, "the console page", proc, tail)
            assert "宜居" in client.get("/console/").text
            token = client.post("/api/v1/auth/login", json=login).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            seen: set[str] = set()

            def fire_on_board() -> bool:
                items = client.get("/api/v1/alarms", params={"limit": 50}, headers=headers).json()["items"]
                seen.update(a["type"] for a in items)
                return "fire_alarm" in seen

            # the simulated devices log in with their own credentials, or nothing would arrive
            _wait(fire_on_board, FIRST_ALARM_S, "the simulated fire on the alarm board", proc, tail)
            # issue 10 §8: the demo broker refuses anonymous clients (it used to accept them)
            stack = tmp_path / "state" / "stack.json"
            assert stat.S_IMODE(stack.stat().st_mode) == 0o600
            mqtt_url = json.loads(stack.read_text())["mqtt_url"]
            assert "yiju-ingest:" in mqtt_url
            assert _anonymous_connack(urlsplit(mqtt_url).port or 1883) == NOT_AUTHORIZED_311
            # the failed door release of the same incident is found by the linkage check
            _wait(lambda: fire_on_board() and "linkage_failed" in seen, 30.0, "linkage_failed", proc, tail)
            # the assessor's score sheet of the demo compound, with the fire system's records on file
            (community,) = client.get("/api/v1/communities", headers=headers).json()["items"]
            report = client.get(f"/api/v1/communities/{community['id']}/indicator-report", headers=headers)
            assert report.status_code == 200, report.text
            items = {(i["scheme"], i["number"]): i for i in report.json()["items"]}
            assert items[("jiangsu_basic", "10")]["score"] == 2.0
            assert items[("jiangsu_basic", "33")]["points_max"] == 3.0
            _site_shows_the_fire(client, headers, community["id"])

            # emergency linkage: the fire's incident escalated to a SIP call; SIPp pressed 1
            def fire_acknowledged_by_phone() -> bool:
                incidents = client.get("/api/v1/linkage/incidents", headers=headers).json()["items"]
                return any(
                    i["alarm_type"] == "fire_alarm"
                    and i["state"] == "acknowledged"
                    and (i["ended_by"] or "").startswith("dtmf:")
                    for i in incidents
                )

            _wait(
                fire_acknowledged_by_phone, 60.0, "the fire acknowledged by DTMF on the SIP call", proc, tail
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "stopped" in text
    assert "Traceback" not in text, text[-3000:]


NOT_AUTHORIZED_311 = 5  # CONNACK return code of MQTT 3.1.1


def _anonymous_connack(port: int) -> int:
    """Connect without a username (MQTT 3.1.1, clean session) and return the CONNACK return code."""
    client_id = b"anonymous-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(bytes([0x10, len(variable)]) + variable)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
    assert reply[:2] == b"\x20\x02", reply
    return reply[3]


def _ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def _site_shows_the_fire(client: httpx.Client, headers: dict[str, str], community_id: int) -> None:
    """The site view of the demo compound (issue 13 §5): its buildings in their real order, every device
    counted once (never-reported ones as their own category), the fire's building red, the fire's
    detector placed on the plan at its unit, floor and room."""
    fire = next(
        a
        for a in client.get("/api/v1/alarms", params={"type": "fire_alarm"}, headers=headers).json()["items"]
    )
    assert fire["building_name"] and fire["unit"] and fire["floor"] is not None, fire
    site = client.get(f"/api/v1/communities/{community_id}/site", headers=headers).json()
    assert [b["name"] for b in site["buildings"]] == [
        f"{n}号楼" for n in range(1, len(site["buildings"]) + 1)
    ]
    for tile in site["buildings"] + site["areas"]:
        c = tile["counts"]
        assert c["online"] + c["offline"] + c["never_reported"] + c["disabled"] == c["devices"], tile
    burning = next(b for b in site["buildings"] if b["id"] == fire["building_id"])
    assert burning["counts"]["worst"] == "critical"
    plan = client.get(f"/api/v1/buildings/{fire['building_id']}/plan", headers=headers).json()
    placed = next(d for d in plan["devices"] if d["id"] == fire["device_id"])
    assert (placed["unit"], placed["floor"], placed["state"]) == (fire["unit"], fire["floor"], "critical")
