"""The demo's emergency-linkage peer: SIPp (Debian's sip-tester) as the duty manager's phone, which
answers every call, listens to the prompt and presses "1" (RFC 2833) — and the demo community's
linkage configuration (a duty manager on duty around the clock, a fire chain, a policy).

Without SIPp installed the demo runs without the callee and says so; the incident then shows the
calls failing (no SIP peer), which is what would happen with a PBX down.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from storage import escalation as store
from storage.db import connection
from storage.users import community_ids_by_code
from yiju.errors import ServiceStartError

CHAIN_NAME = "demo-fire"
DUTY_PHONE = "13800000001"
# the duty room at once; the manager on duty 5 s later (demo pace: a real chain waits a minute or so)
DEMO_CHAIN: dict[str, Any] = {
    "steps": [
        {"name": "值班室", "delay_s": 0, "targets": [{"kind": "console"}], "channels": ["console"]},
        {
            "name": "值班经理",
            "delay_s": 5,
            "targets": [{"kind": "on_duty", "group": "manager"}],
            "channels": ["sip"],
        },
    ],
    "loops": 3,
    "repeat_delay_s": 30,
}
DEMO_TYPES = ["fire_alarm", "gas_high_alarm", "linkage_failed", "elevator_trapped", "auto_cutoff_failed"]

_SCENARIO = """<?xml version="1.0" encoding="UTF-8"?>
<scenario name="yiju demo duty phone: answer, press 1">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15

]]></send>
  <recv request="ACK" crlf="true"/>
  <pause milliseconds="2000"/>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/></action></nop>
  <recv request="BYE" timeout="60000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoCallee:
    """SIPp answering on a free loopback port until stopped; `proxy` is what the SIP channel dials."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = (state_dir / "sipp").resolve()  # SIPp runs in this directory: no relative paths
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @staticmethod
    def available() -> bool:
        return shutil.which("sipp") is not None

    @property
    def proxy(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("sipp")
        if binary is None:
            raise ServiceStartError("SIPp (package sip-tester) is not installed")
        self._dir.mkdir(parents=True, exist_ok=True)
        scenario = self._dir / "duty_phone.xml"
        scenario.write_text(_SCENARIO)
        self.port = _free_udp_port()
        log = (self._dir / "sipp.err").open("wb")
        self._proc = subprocess.Popen(
            [
                binary,
                "-sf",
                str(scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-mi",
                "127.0.0.1",
                "-mp",
                str(_free_udp_port()),
                "-nostdin",
                "-trace_err",
                "-error_file",
                str(self._dir / "errors.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self._dir,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready once it holds its port
            if self._proc.poll() is not None:
                raise ServiceStartError(
                    f"SIPp exited: {(self._dir / 'sipp.err').read_text(errors='replace')}"
                )
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                return
            finally:
                probe.close()
            time.sleep(0.05)
        raise ServiceStartError("SIPp did not bind its port within 10 s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None


def seed_linkage(database_url: str, community_code: str) -> None:
    """The demo community's duty manager (on duty around the clock), fire chain and policy; idempotent."""
    with connection(database_url) as conn:
        [community_id] = community_ids_by_code(conn, [community_code])
        if any(c.name == CHAIN_NAME for c in store.list_chains(conn, [community_id])):
            return
        person = store.create_person(
            conn, community_id=community_id, name="张工（值班经理）", phone=DUTY_PHONE, duty_group="manager"
        )
        store.set_schedule(conn, person.id, [([1, 2, 3, 4, 5, 6, 7], 0, 1440)])
        chain = store.save_chain(conn, community_id=community_id, name=CHAIN_NAME, definition=DEMO_CHAIN)
        store.create_policy(
            conn,
            community_id=community_id,
            name="演示：火灾/燃气/困人",
            chain_id=chain.id,
            alarm_types=DEMO_TYPES,
        )
        conn.commit()
