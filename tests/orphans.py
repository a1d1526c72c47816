"""Reaping what killed test sessions left running.

A test session (or a benchmark) that is killed never reaches its cleanup: its private PostgreSQL,
Mosquitto and NATS servers, and any process a test spawned (an ingest, a bridge, SIPp), keep running
and burning CPU under /tmp/yiju-test-* and /tmp/yiju-nats-*. So every owner marks what it starts:

- `claim(root)` writes the owner's token ("pid:start-time:pid-namespace", so that neither a recycled
  pid nor a pid of another namespace sharing /tmp is taken for the owner) into `root/owner`, and puts
  the token into the owner's environment as `OWNER_ENV`, which every process it starts afterwards
  inherits (the servers, and the subprocesses of tests, whose environments are copies of ours minus
  `YIJU_*`);
- `reap()`, at the start of the next session, stops every process that carries the token of an
  owner that is gone, or whose command line names a directory such an owner claimed, and removes
  those directories (one where nothing was running only once its owner file is a day old).

A directory without an owner file is left alone: it is being set up right now (claimed a moment
later), or it comes from a build before this module, whose owner cannot be told.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OWNER_ENV = "TEST_SERVICES_OWNER"  # not YIJU_*: tests pass copies of os.environ without those on
OWNER_FILE = "owner"
CLAIMED_PREFIXES = ("yiju-test-", "yiju-nats-")
FORGOTTEN_AFTER_S = 86_400.0  # no session lasts a day: a claimed directory this old is left over
STOP_TIMEOUT_S = 10.0  # a postmaster's immediate shutdown takes well under a second


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (the state) on: the command name may hold spaces and ')'."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str:
    """This process's PID namespace (the inode of /proc/self/ns/pid): a pid means something only in
    its own namespace, and /tmp may be shared with sessions in others (containers, sandboxes)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def token_of(pid: int) -> str | None:
    """`pid:start time in clock ticks since boot:PID namespace` (field 22 of /proc/<pid>/stat), None
    if gone."""
    fields = _stat(pid)
    return f"{pid}:{fields[19]}:{_pid_namespace()}" if fields is not None else None


def owner_alive(token: str) -> bool:
    pid_text, _, rest = token.partition(":")
    if not pid_text.isdigit():
        return True  # not ours to judge
    _, _, namespace = rest.partition(":")
    if namespace and namespace != _pid_namespace():
        return True  # an owner in another PID namespace: its pid says nothing here
    started, _, _ = rest.partition(":")
    fields = _stat(int(pid_text))
    # pid and start time decide, whatever the token's format: a token of an earlier format
    # ("pid:start", no namespace) must not be taken for a dead owner's while its owner runs
    return fields is not None and fields[0] != "Z" and fields[19] == started


def claim(root: Path) -> str:
    """Mark `root` and every process started from now on as this process's."""
    token = token_of(os.getpid())
    assert token is not None
    os.environ[OWNER_ENV] = token
    (root / OWNER_FILE).write_text(token + "\n")
    return token


@dataclass
class Reaped:
    processes: list[int] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.directories)


def _environ_token(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    key = OWNER_ENV.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key) :].decode(errors="replace")
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _ancestors() -> set[int]:
    """This process and its ancestors: never victims, whatever token they inherited."""
    found: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        fields = _stat(pid)
        pid = int(fields[1]) if fields is not None else 0
    return found


def _orphans(dead_roots: list[Path]) -> dict[int, list[str]]:
    """Processes of owners that are gone: by inherited token, or by a claimed directory they name."""
    spared = _ancestors()
    prefixes = [f"{root}/" for root in dead_roots]
    found: dict[int, list[str]] = {}
    verdicts: dict[str, bool] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        pid = int(entry.name)
        token = _environ_token(pid)
        if token is not None and token not in verdicts:
            verdicts[token] = owner_alive(token)
        cmdline = _cmdline(pid)
        if (token is not None and not verdicts[token]) or any(p in arg for p in prefixes for arg in cmdline):
            found[pid] = cmdline
    return found


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def reap(tmp: Path | None = None) -> Reaped:
    """Stop and remove what owners that are gone left behind (see the module docstring)."""
    tmp = tmp or Path(tempfile.gettempdir())
    dead_roots: list[Path] = []
    for prefix in CLAIMED_PREFIXES:
        for root in sorted(tmp.glob(f"{prefix}*")):
            try:
                token = (root / OWNER_FILE).read_text().strip()
            except OSError:
                continue
            if not owner_alive(token):
                dead_roots.append(root)
    victims = _orphans(dead_roots)
    # a postmaster first, with SIGQUIT (immediate shutdown): it stops its children and removes its
    # shared memory; everything else (and a postmaster that does not go) gets SIGKILL
    postmasters = [
        pid for pid, cmd in victims.items() if cmd and Path(cmd[0]).name == "postgres" and "-D" in cmd
    ]
    for pid in postmasters:
        _signal(pid, signal.SIGQUIT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(_alive(pid) for pid in postmasters) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in victims:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    # a directory goes once we stopped a process of it; one with nothing running only when its owner
    # file is a day old: an owner this host cannot see (another machine or namespace sharing /tmp,
    # whatever its token says) must never lose a live session's directory
    removed = []
    for root in dead_roots:
        ran_here = any(f"{root}/" in arg for cmd in victims.values() for arg in cmd)
        if ran_here or _age_s(root / OWNER_FILE) > FORGOTTEN_AFTER_S:
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return Reaped(sorted(victims), removed)


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
