"""Private PostgreSQL clusters and Mosquitto brokers, started by Yiju itself.

The demo runs on them when no external URL is configured, and the test harness starts one of each per
test session on free loopback ports so that tests can stop, restart or kill them. Both are ordinary
Debian packages (`postgresql`, `mosquitto`); nothing here downloads anything.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yiju.errors import ConfigurationError, ServiceStartError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05
LOOPBACK = "127.0.0.1"
SUPERUSER = "yiju"


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    what: str,
    log_path: Path,
    *,
    on_timeout: Callable[[], None],
) -> None:
    """Wait until `ready()`; a process that exits or a service that never gets ready is an error."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceStartError(f"{what} exited with {proc.returncode}:\n{_tail(log_path)}")
        if ready():
            return
        time.sleep(POLL_INTERVAL_S)
    on_timeout()
    raise ServiceStartError(f"{what} was not ready within {START_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class PostgresBinaries:
    bin_dir: Path
    version: str
    share_dir: Path

    @property
    def timescaledb_available(self) -> bool:
        """The timescaledb extension is installed for this PostgreSQL (it still needs preloading)."""
        return (self.share_dir / "extension" / "timescaledb.control").exists()


def find_postgres() -> PostgresBinaries:
    """Locate initdb/pg_ctl: PATH first, then Debian's /usr/lib/postgresql/<major>/bin (newest)."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for bin_dir in candidates:
        if (
            (bin_dir / "initdb").exists()
            and (bin_dir / "pg_ctl").exists()
            and (bin_dir / "postgres").exists()
        ):
            out = subprocess.run(
                [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            version = out.rsplit(" ", 1)[-1] if out else "unknown"
            share = _share_dir(bin_dir)
            return PostgresBinaries(bin_dir=bin_dir, version=version, share_dir=share)
    raise ConfigurationError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package 'postgresql' "
        "or set YIJU_DATABASE__URL to an existing server"
    )


def _share_dir(bin_dir: Path) -> Path:
    pg_config = bin_dir / "pg_config"
    if pg_config.exists():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    # Debian layout: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15
    return Path("/usr/share/postgresql") / bin_dir.parent.name


def _run_as_owner() -> list[str]:
    """PostgreSQL refuses to run as root; as root we run it as the 'postgres' system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ConfigurationError(
            "running as root needs the 'postgres' system user (created by Debian's postgresql package)"
        ) from exc
    return ["runuser", "-u", "postgres", "--"]


class PostgresServer:
    """A private PostgreSQL cluster in `data_dir`, listening on loopback only, trust authentication.

    `fsync=False` is for tests: data survives a killed server (the OS keeps the pages) but not a
    crashed machine. Commits stay synchronous so a killed server never loses a commit it confirmed.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        preload_timescaledb: bool | None = None,
        fsync: bool = True,
        binaries: PostgresBinaries | None = None,
    ) -> None:
        self.binaries = binaries or find_postgres()
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.fsync = fsync
        available = self.binaries.timescaledb_available
        if preload_timescaledb and not available:
            raise ConfigurationError("timescaledb was requested but its extension files are not installed")
        self.timescaledb = available if preload_timescaledb is None else preload_timescaledb
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._owner = _run_as_owner()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self._owner, str(self.binaries.bin_dir / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise ServiceStartError(
                f"{tool} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def _chown(self, path: Path) -> None:
        if self._owner:
            shutil.chown(path, user="postgres", group="postgres")

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        if self._owner:
            probe = subprocess.run(
                [*self._owner, "test", "-w", str(self.data_dir)], capture_output=True, check=False
            )
            if probe.returncode != 0:
                raise ConfigurationError(
                    f"the 'postgres' user cannot reach {self.data_dir}; set YIJU_STATE_DIR to a path it can "
                    "reach (e.g. under /var/tmp)"
                )
        self._pg(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )  # fmt: skip

    def _options(self) -> list[str]:
        opts = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "on" if self.fsync else "off",
            "full_page_writes": "on" if self.fsync else "off",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "max_worker_processes": "32",
            "timezone": "UTC",
            "logging_collector": "off",
        }
        if self.timescaledb:
            opts["shared_preload_libraries"] = "timescaledb"
            opts["timescaledb.telemetry_level"] = "off"
            opts["timescaledb.max_background_workers"] = "16"
        args: list[str] = []
        for key, value in opts.items():
            args += ["-c", f"{key}={value}"]
        return args

    def start(self) -> None:
        """Start the postmaster as our own child (so a killed one is reaped, never left a zombie)."""
        self.init()
        pid = self.postmaster_pid()
        if pid is not None and not self._is_postmaster(pid):
            # a killed postmaster's lock file; its pid may name another process by now (pids wrap at
            # pid_max, 32768 on small machines), and PostgreSQL then refuses to start ("lock file
            # postmaster.pid already exists")
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    *self._owner,
                    str(self.binaries.bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    *self._options(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        isready = [str(self.binaries.bin_dir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port)]
        _wait_ready(
            self._proc,
            lambda: subprocess.run(isready, check=False).returncode == 0,
            f"PostgreSQL on port {self.port}",
            self.log_path,
            on_timeout=self.kill,
        )

    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        pid = self.postmaster_pid()
        return pid is not None and self._is_postmaster(pid)

    def _is_postmaster(self, pid: int) -> bool:
        """`pid` is alive and a postgres server of this data directory (not a recycled pid)."""
        if not _alive(pid):
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(argv)
            and Path(argv[0].decode(errors="replace")).name == "postgres"
            and (str(self.data_dir).encode() in argv)
        )

    def stop(self, mode: str = "fast") -> None:
        """Shut down (fast: roll back open transactions, checkpoint, exit)."""
        pid = self.postmaster_pid()
        if pid is not None and _alive(pid):
            sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            _wait_gone([pid])
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster and its children, as a crash would. `start()` recovers it."""
        pid = self.postmaster_pid()
        if pid is not None and _alive(pid):
            victims = [pid, *_children(pid)]
            for victim in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
            _wait_gone(victims)
        self._reap()

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds no resources any more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_S)


# --------------------------------------------------------------------------------------------------
# Mosquitto


def find_mosquitto() -> Path:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise ConfigurationError(
        "mosquitto not found: install the Debian package 'mosquitto' or set YIJU_MQTT__URL to a broker"
    )


def mosquitto_version(binary: Path | None = None) -> str:
    binary = binary or find_mosquitto()
    out = subprocess.run([str(binary), "-h"], capture_output=True, text=True, check=False)
    match = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


class MosquittoBroker:
    """A private Mosquitto (MQTT 5 capable) on a loopback port, with on-disk persistence.

    Queue limits are raised from Mosquitto's defaults (20 in flight, 1,000 queued per client), which
    would silently drop QoS 1 messages for a consumer that is busy or away: an ingest session must be
    able to hold a long outage's worth of messages.
    """

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        extra_config: str = "",
    ) -> None:
        self.binary = find_mosquitto()
        self.state_dir = state_dir.resolve()
        self.port = port or free_port()
        self.password_file = password_file
        self.acl_file = acl_file
        self.extra_config = extra_config
        self.config_path = self.state_dir / "mosquitto.conf"
        self.log_path = self.state_dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {LOOPBACK}",
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.state_dir}/",
            "autosave_interval 30",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
            # ≥ ingest's Receive Maximum (5,000), so that ingest's window governs: with 1,000 the
            # session waited for each commit with a half-full batch (bench/RESULTS.md, issue 18)
            "max_inflight_messages 10000",
            "max_queued_messages 5000000",
            "max_packet_size 1048576",
            "persistent_client_expiration 14d",
        ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.extra_config:
            lines.append(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.write_config()
        self._proc = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_ready(
            self._proc,
            lambda: port_open(LOOPBACK, self.port),
            f"mosquitto on port {self.port}",
            self.log_path,
            on_timeout=self.kill,
        )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Graceful stop: Mosquitto writes its persistence file on SIGTERM."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: re-read the password and ACL files without dropping connections."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)
