"""A killed test session's private servers and spawned processes are stopped, and its directory removed,
by the next session's start (tests/orphans.py); a live session's are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import ServiceSet
from orphans import FORGOTTEN_AFTER_S, OWNER_ENV, OWNER_FILE, owner_alive, reap, token_of

TESTS = Path(__file__).resolve().parent

# a session as the harness starts one, plus a long-lived process a test spawned; then it waits to be
# killed, as a run killed mid-test would be
SESSION = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from harness import start_services
services = start_services()
spawned = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(services.root, services.postgres.postmaster_pid(), spawned.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _processes_naming(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"{root}/".encode() in entry.read_bytes():
                found.append(int(entry.parent.name))
        except OSError:
            continue
    return found


def test_a_killed_sessions_servers_are_reaped_and_a_live_one_is_kept(services: ServiceSet) -> None:
    # private servers whatever YIJU_TEST_* says: this test needs processes to reap
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_") and k != OWNER_ENV}
    child = subprocess.Popen(
        [sys.executable, "-c", SESSION, str(TESTS)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        root_text, postmaster_text, spawned_text = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)  # no cleanup runs: pytest killed by a timeout or by hand
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    root, postmaster, spawned = Path(root_text), int(postmaster_text), int(spawned_text)
    try:
        servers = _processes_naming(root)
        assert postmaster in servers and len(servers) >= 2, "PostgreSQL and Mosquitto in the session dir"
        owner = (root / OWNER_FILE).read_text().strip()
        assert owner.split(":")[0] == str(child.pid) and not owner_alive(owner)
        time.sleep(0.2)  # the orphans outlive their owner by far more than this, unless reaped
        assert all(_alive(pid) for pid in [*servers, spawned]), "the orphans keep running"

        reaped = reap()

        assert root in reaped.directories and not root.exists()
        assert {*servers, spawned} <= set(reaped.processes)
        assert not any(_alive(pid) for pid in [*servers, spawned])
        # this session's own services (owner alive) are untouched
        assert services.root.exists() and services.root not in reaped.directories
        if services.postgres is not None:
            assert services.postgres.running()
        if services.broker is not None:
            assert services.broker.running()
        assert os.environ[OWNER_ENV] == token_of(os.getpid())
    finally:
        for pid in [*_processes_naming(root), spawned]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_owner_in_another_pid_namespace_is_not_judged() -> None:
    """/tmp may be shared with sessions in other PID namespaces: their pids say nothing here, so their
    directories are never taken for a dead owner's (and removed under a live session)."""
    mine = token_of(os.getpid())
    assert mine is not None and owner_alive(mine)
    pid, start, _namespace = mine.split(":")
    assert owner_alive(f"999999999:{start}:1")  # no such pid here, but another namespace's token
    assert not owner_alive(f"999999999:{start}:{_namespace}")  # this namespace: gone
    assert not owner_alive(f"{pid}:0:{_namespace}")  # this pid, another start time: recycled
    assert owner_alive(f"{pid}:{start}")  # a live owner's token of the earlier format (no namespace)


def test_a_gone_owners_directory_with_nothing_running_is_kept_for_a_day(tmp_path: Path) -> None:
    """Nothing running in it: its owner may be one this host cannot see (/tmp shared with another
    machine or namespace), so the directory stays until its owner file is a day old."""
    mine = token_of(os.getpid())
    assert mine is not None
    _pid, start, namespace = mine.split(":")
    root = tmp_path / "yiju-test-left"
    root.mkdir()
    (root / OWNER_FILE).write_text(f"999999999:{start}:{namespace}\n")  # this namespace, gone
    assert reap(tmp_path).directories == [] and root.exists()
    old = time.time() - FORGOTTEN_AFTER_S - 60
    os.utime(root / OWNER_FILE, (old, old))
    assert reap(tmp_path).directories == [root] and not root.exists()
