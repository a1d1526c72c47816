# ruff: noqa: PLC0415, E501 - a benchmark imports lazily (the smoke check must stay fast) and prints
"""Yiju's ingest side by side with two peers (issue 18): `bench/ingest/run.py --compare`.

    .venv/bin/python bench/ingest/run.py --compare [--rounds 2] [--duration 20] [--compare-rate 6000]
                                         [--compare-saturated-s 10] [--tree LABEL=PATH ...] [--skip ...]
                                         [--compare-peers node]   # only the hand-written peer
    .venv/bin/python bench/ingest/run.py --smoke      # seconds: the peers' files are there and parse

The peers live in bench/ingest/peers/ and are installed by the benchmark itself (`npm ci` from the
committed package.json + package-lock.json into bench/ingest/peers/node_modules/, ignored by git):
- `node-red`: Node-RED run headless (nodered/settings.js, nodered/flow.json): an `mqtt in` node →
  a function node batching multi-row INSERTs via `pg` (1,000 rows or 50 ms);
- `node`: peer.js, a hand-written Node.js program with `mqtt` and `pg`, the same batching.
Each stores one row per message (device, ts, seq, payload jsonb) in a table of its own, created like
Yiju's time series (`yiju_create_timeseries`: a hypertable under TimescaleDB, a partitioned table
otherwise) with the natural key (device, ts, seq) unique, and subscribes at QoS 1 to `bench/#` on
the same private Mosquitto with a persistent MQTT 5 session (clean start off, session expiry 7 days,
Receive Maximum 5,000, keep-alive 30 s, as Yiju's). Unlike Yiju, both acknowledge on receipt.

The same method for every consumer (Yiju, each `--tree` build of it, each peer), each run on a
fresh database, the same publisher and load (`load.py`), alternately, `--rounds` rounds (even
rounds in the reverse order), saturated (publisher flat out for --compare-saturated-s, then the
backlog drained) and paced (--compare-rate msg/s for --duration s); a `--tree` build gets a database
migrated by its own code (its own points layout):
- stored: rows in the consumer's tables (Yiju: telemetry + device_events, one row per message),
  counted every 0.25 s through one connection; stored msg/s = stored ÷ (go → last row counted);
  loss = published (PUBACKed by the broker) − stored;
- publish → stored, p50/p99: per stored row, `pg_xact_commit_timestamp(xmin) − ts`, where ts is the
  publish instant the load stamps into each payload and the commit timestamp is PostgreSQL's own
  (`track_commit_timestamp` is turned on in the session's private cluster); Yiju's own histogram
  (device ts → commit, in ingest) is reported beside it as a cross-check;
- CPU per stored message, go → last row: the consumer's processes from /proc (utime + stime of all
  threads; Yiju: the ingest process and its workers) and PostgreSQL's (the postmaster, its live
  children and the children it reaped, less the counting backend, which never plans parallel
  workers: theirs would count as the consumer's); Yiju's per-thread split too;
- where PostgreSQL's work goes, per stored message: WAL bytes, records and full-page images
  (pg_stat_wal), commits, rows inserted / updated / HOT-updated (pg_stat_*), heap, TOAST and index
  bytes per table at the end, and CPU per process kind (clients by application name, autovacuum,
  background processes; processes that end during the run as last sampled every 0.2 s), with a
  PostgreSQL CPU ratio without autovacuum beside the total (whether autovacuum visits a run's
  database is chance);
- peak RSS: VmHWM of the consumer's process (the largest worker's for Yiju);
- load average (1 min) at the start and end of every run.
Each round reports `ingest_cpu_ratio_vs_node` (Yiju's ingest CPU per message ÷ the hand-written
peer's) and the same for PostgreSQL and throughput.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
NODE_MODULES = PEERS / "node_modules"
PINNED = ("node-red", "mqtt", "pg")
PEER_TABLE = {"node-red": "peer_node_red", "node": "peer_node"}
POLL_S = 0.25
STALL_S = 30.0
READY_S = 120.0
YIJU_METRICS_PORT = 19108


# --- the peers' installation and the smoke check -----------------------------------------------------


def node_binary() -> str:
    found = shutil.which("node")
    if not found:
        raise SystemExit("the peers need Node.js (`node` on PATH; Debian: apt-get install nodejs npm)")
    return found


def installed_versions() -> dict[str, str]:
    out = {}
    for name in PINNED:
        manifest = NODE_MODULES / name / "package.json"
        if manifest.exists():
            out[name] = json.loads(manifest.read_text())["version"]
    return out


def ensure_installed() -> None:
    """`npm ci` into bench/ingest/peers/node_modules unless the pinned versions are already there."""
    pins = json.loads((PEERS / "package.json").read_text())["dependencies"]
    if installed_versions() == pins and (NODE_MODULES / ".package-lock.json").exists():
        print(
            f"peers: {', '.join(f'{k} {v}' for k, v in pins.items())} present in {NODE_MODULES}", flush=True
        )
        return
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("the peers are installed with npm (Debian: apt-get install npm)")
    print(
        f"peers: installing {', '.join(f'{k} {v}' for k, v in pins.items())} with `npm ci` (package-lock.json) into {NODE_MODULES} ...",
        flush=True,
    )
    t0 = time.monotonic()
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=http", "--progress=false"], cwd=PEERS, check=True
    )
    got = installed_versions()
    if got != pins:
        raise SystemExit(f"npm ci installed {got}, package.json pins {pins}")
    print(f"peers: installed in {time.monotonic() - t0:.0f} s", flush=True)


_CHECK_JS = r"""
// Compiles (never runs) the peers' code: peer.js and settings.js as scripts, the function node's
// bodies wrapped as Node-RED 4 wraps them (10-function.js): On Start and the message function in an
// async function, On Stop in a plain one.
const fs = require('fs');
const vm = require('vm');
const problems = [];
const [peer, settings, flowFile] = process.argv.slice(1); // node -e CODE -- FILES
for (const file of [peer, settings]) {
  try { new vm.Script(fs.readFileSync(file, 'utf8'), { filename: file }); }
  catch (e) { problems.push(`${file}: ${e.message}`); }
}
const flow = JSON.parse(fs.readFileSync(flowFile, 'utf8'));
for (const n of flow.filter((n) => n.type === 'function')) {
  const wrapped = {
    initialize: `(async function (__send__) {\n${n.initialize || ''}\n})`,
    func: `(async function (msg, __send__, __done__) {\n${n.func || ''}\n})`,
    finalize: `(function () {\n${n.finalize || ''}\n})`,
  };
  for (const [key, text] of Object.entries(wrapped)) {
    try { new vm.Script(text, { filename: `flow.json function "${n.name}" ${key}` }); }
    catch (e) { problems.push(`flow.json function "${n.name}" ${key}: ${e.message}`); }
  }
}
console.log(JSON.stringify(problems));
"""


def smoke() -> list[str]:
    """What would stop `--compare` from running, found in well under a second without the network:
    the pins and the lock agree, the flow is what the benchmark means, and every JS file parses."""
    problems: list[str] = []
    pkg = json.loads((PEERS / "package.json").read_text())
    pins = pkg["dependencies"]
    lock_path = PEERS / "package-lock.json"
    if not lock_path.exists():
        return ["bench/ingest/peers/package-lock.json is missing (npm install --package-lock-only)"]
    lock = json.loads(lock_path.read_text())
    if lock.get("lockfileVersion", 0) < 2:
        problems.append("package-lock.json: lockfileVersion < 2 (npm ci of npm 7+ wants v2/v3)")
    if sorted(pins) != sorted(PINNED):
        problems.append(f"package.json pins {sorted(pins)}, the benchmark uses {sorted(PINNED)}")
    for name, version in pins.items():
        if not version[:1].isdigit():
            problems.append(f"package.json: {name} {version!r} is a range, not a pinned version")
        if lock.get("packages", {}).get("", {}).get("dependencies", {}).get(name) != version:
            problems.append(f"package-lock.json was not made from package.json's {name} {version}")
        if lock.get("packages", {}).get(f"node_modules/{name}", {}).get("version") != version:
            problems.append(f"package-lock.json does not lock {name} at {version}")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{NODE_MODULES}/"], cwd=HERE, capture_output=True, check=False
    )
    if ignored.returncode == 1:
        problems.append("bench/ingest/peers/node_modules/ is not ignored by git")
    flow = json.loads((PEERS / "nodered" / "flow.json").read_text())
    kinds = sorted(n["type"] for n in flow if n["type"] != "tab")
    if kinds != ["function", "mqtt in", "mqtt-broker"]:
        problems.append(f"flow.json: nodes {kinds}, expected mqtt-broker, mqtt in, function")
    for n in flow:
        if n["type"] == "mqtt-broker" and not (
            n.get("cleansession") is False
            and str(n.get("protocolVersion")) == "5"
            and int(n.get("sessionExpiry") or 0) > 0
            and n.get("autoUnsubscribe") is False
        ):
            problems.append("flow.json: the broker node must keep a persistent MQTT 5 session")
        if n["type"] == "mqtt in" and str(n.get("qos")) != "1":
            problems.append("flow.json: mqtt in must subscribe at QoS 1")
    node = shutil.which("node")
    if node is None:
        problems.append("node is not on PATH: the peers' JavaScript was not checked")
        return problems
    res = subprocess.run(
        [
            node,
            "-e",
            _CHECK_JS,
            "--",
            str(PEERS / "peer.js"),
            str(PEERS / "nodered" / "settings.js"),
            str(PEERS / "nodered" / "flow.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if res.returncode != 0:
        problems.append(f"node could not check the peers: {res.stderr.strip()[-500:]}")
    else:
        problems += json.loads(res.stdout.strip().splitlines()[-1])
    return problems


# --- processes and meters ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _postgres_cpu_s(postmaster: int) -> float:
    """The postmaster's CPU, its live children's, and what its exited children used (cutime/cstime):
    a backend that ends during a run still counts."""
    import run

    parts = _stat(postmaster)
    if not parts:
        return 0.0
    own = sum(int(x) for x in parts[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(run._cpu_s(c) for c in run._children(postmaster))


def _pg_processes(postmaster: int) -> dict[int, tuple[str, float]]:
    """The postmaster's live children: pid → (process title, CPU seconds)."""
    import run

    out = {}
    for c in run._children(postmaster):
        try:
            title = (
                Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            )
        except OSError:
            continue
        out[c] = (title, run._cpu_s(c))
    return out


_DB_STATS = """
SELECT (SELECT wal_records FROM pg_stat_wal), (SELECT wal_fpi FROM pg_stat_wal),
       (SELECT wal_bytes FROM pg_stat_wal)::float8,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables),
       (SELECT coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables)
"""


class _ProcessSampler:
    """The postmaster's children's titles and CPU every 0.2 s on a thread: what a process that ends
    during a run (an autovacuum worker, a short connection) was, and about what it used."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.seen: dict[int, tuple[str, float]] = {}
        self.apps: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for pid, (title, cpu) in _pg_processes(self.postmaster).items():
                old = self.seen.get(pid)
                # a title with the client's state ("idle", "COPY") changes; the first word stays
                self.seen[pid] = (old[0] if old else title, cpu)

    def stop(self) -> dict[int, tuple[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.seen


def _db_stats(conn) -> list[float]:
    """Cluster WAL (pg_stat_wal) and this database's commits and row counts (pg_stat_*; flushed by
    each backend at most every 1 s and at transaction end outside a transaction)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return [float(x) for x in conn.execute(_DB_STATS).fetchone()]


def _backend_kind(title: str, apps: dict[int, str], pid: int) -> str:
    """A PostgreSQL process's kind for the CPU split: the client's application name, else the title."""
    if pid in apps:
        return apps[pid]
    words = title.removeprefix("postgres: ").split()
    if not words:
        return "?"
    if words[0] in (
        "autovacuum",
        "logical",
        "walwriter",
        "checkpointer",
        "background",
        "stats",
        "TimescaleDB",
    ):
        return " ".join(words[:2])
    return "client:" + (words[0] if "(" not in title else "other")


def _sizes(conn) -> dict[str, dict[str, int]]:
    """Heap, TOAST and index bytes of each user table that holds rows (hypertable chunks summed into
    their hypertable, partitions into their parent)."""
    rows = conn.execute(
        """
        SELECT coalesce(h.hypertable_name, pp.relname, c.relname) AS t,
               sum(pg_relation_size(c.oid)), sum(coalesce(pg_total_relation_size(c.reltoastrelid), 0)),
               sum(pg_indexes_size(c.oid)), sum(c.reltuples)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN timescaledb_information.chunks h
               ON h.chunk_schema = n.nspname AND h.chunk_name = c.relname
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_class pp ON pp.oid = i.inhparent AND h.hypertable_name IS NULL
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND pg_relation_size(c.oid) > 65536
        GROUP BY 1 ORDER BY 2 DESC
        """
        if conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
        else """
        SELECT coalesce(pp.relname, c.relname) AS t,
               sum(pg_relation_size(c.oid)), sum(coalesce(pg_total_relation_size(c.reltoastrelid), 0)),
               sum(pg_indexes_size(c.oid)), sum(c.reltuples)
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
        LEFT JOIN pg_class pp ON pp.oid = i.inhparent
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND pg_relation_size(c.oid) > 65536
        GROUP BY 1 ORDER BY 2 DESC
        """
    ).fetchall()
    return {r[0]: {"heap": int(r[1]), "toast": int(r[2]), "indexes": int(r[3])} for r in rows}


class _Lines:
    """Reads a child's output on a thread (a full pipe would stall it), keeps the tail, flags a line."""

    def __init__(self, proc: subprocess.Popen[str], marker: str) -> None:
        self.tail: deque[str] = deque(maxlen=40)
        self.ready = threading.Event()
        self._marker = marker
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.tail.append(line.rstrip())
            if self._marker in line:
                self.ready.set()


def forget_session(mqtt_url: str, client_id: str) -> None:
    """End a persistent session the broker keeps for `client_id` (connect with clean start, session
    expiry 0, disconnect): a finished run's session must not go on queueing the next runs' messages."""
    from devices import mqtt_wire as wire

    addr = wire.parse_mqtt_url(mqtt_url)
    with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
        sock.sendall(wire.encode_connect(client_id, keepalive_s=10, clean_start=True))
        buf = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not wire.split_frames(buf)[0]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        sock.sendall(wire.packet(wire.PacketType.DISCONNECT << 4, b""))


# --- consumers ---------------------------------------------------------------------------------------


class Consumer:
    """One ingest under test: started against a run's database, stopped after it; `pids` are metered."""

    name: str
    tables: tuple[str, ...]

    def database(self, services, fleet) -> str:
        """A fresh database for one run: this checkout's schema and the bench fleet registered."""
        import run

        return run.fresh_db(services, fleet)

    def start(self, services, db_url: str, tag: str) -> None:
        raise NotImplementedError

    @property
    def pids(self) -> list[int]:
        raise NotImplementedError

    def sessions(self) -> list[str]:
        raise NotImplementedError

    def stop(self) -> str:
        raise NotImplementedError


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, a minute to exit cleanly (flush, ack, close), then SIGKILL."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Yiju(Consumer):
    def __init__(self, label: str, tree: Path, workers: int, compounds: int = 1) -> None:
        self.name = "yiju" if label == "this" else f"yiju:{label}"
        self.tree = tree
        self.workers = workers
        self.compounds = compounds
        self.tables = ("telemetry", "device_events")
        self.proc: subprocess.Popen[bytes] | None = None

    def database(self, services, fleet) -> str:
        """Another build brings its own schema (e.g. another points layout): run.fresh_db."""
        import run

        return run.fresh_db(services, fleet, self.tree, self.compounds)

    def start(self, services, db_url: str, tag: str) -> None:
        import run

        self.client_id = f"bench-ingest-{tag}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
        env.update(
            YIJU_DATABASE__URL=db_url,
            YIJU_MQTT__URL=services.mqtt_url,
            YIJU_MQTT__TOPIC_PREFIX=run.PREFIX,
            YIJU_MQTT__CLIENT_ID=self.client_id,
            YIJU_INGEST__SHARED_GROUP=f"bench{time.monotonic_ns()}",
            YIJU_INGEST__METRICS_PORT=str(YIJU_METRICS_PORT),
            YIJU_LOG_LEVEL="WARNING",
        )
        if self.tree != run.ROOT:
            env["PYTHONPATH"] = str(self.tree)
        cmd = [sys.executable, "-m", "yiju.cli", "ingest", "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, cwd=self.tree, env=env)
        self.ports = [YIJU_METRICS_PORT + w for w in range(self.workers)]
        deadline = time.monotonic() + READY_S
        while True:
            try:
                for p in self.ports:
                    run._histogram(p, "yiju_ingest_publish_to_commit_seconds")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} did not start") from None
                time.sleep(0.2)
        time.sleep(1.0)  # sessions subscribed (as run.end_to_end)
        self._pids = sorted({self.proc.pid, *(run._children(self.proc.pid) if self.workers > 1 else [])})
        self.tnames = {p: run._thread_names(p) for p in self._pids}

    @property
    def pids(self) -> list[int]:
        return self._pids

    def sessions(self) -> list[str]:
        return [self.client_id, *(f"{self.client_id}-{i}" for i in range(self.workers))]

    def threads(self) -> dict[int, dict[str, float]]:
        import run

        return {p: run._thread_cpu_s(p, self.tnames[p]) for p in self._pids}

    def lag(self) -> tuple[float, float]:
        from collections import Counter

        import run

        hist: Counter[float] = Counter()
        for p in self.ports:
            hist.update(run._histogram(p, "yiju_ingest_publish_to_commit_seconds"))
        return run._quantile(hist, 0.5), run._quantile(hist, 0.99)

    def stop(self) -> str:
        _terminate(self.proc)
        self.proc = None
        return ""


class NodePeer(Consumer):
    """peer.js (`node`) or Node-RED with flow.json (`node-red`), one Node.js process either way."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tables = (PEER_TABLE[name],)
        self.proc: subprocess.Popen[str] | None = None
        self.user_dir: Path | None = None

    def start(self, services, db_url: str, tag: str) -> None:
        import run

        from devices.mqtt_wire import parse_mqtt_url

        self.client_id = f"bench-{self.name}-{tag}"
        addr = parse_mqtt_url(services.mqtt_url)
        env = {
            **os.environ,
            "PEER_MQTT_URL": services.mqtt_url,
            "PEER_MQTT_HOST": addr.host,
            "PEER_MQTT_PORT": str(addr.port),
            "PEER_CLIENT_ID": self.client_id,
            "PEER_TOPIC": f"{run.PREFIX}/#",
            "PEER_DB_URL": db_url,
            "PEER_TABLE": self.tables[0],
        }
        node = node_binary()
        if self.name == "node":
            cmd, marker = [node, str(PEERS / "peer.js")], "subscribed"
        else:
            self.user_dir = Path(tempfile.mkdtemp(prefix="yiju-bench-nodered-"))
            red = NODE_MODULES / "node-red" / "red.js"
            cmd = [
                node,
                str(red),
                "--settings",
                str(PEERS / "nodered" / "settings.js"),
                "--userDir",
                str(self.user_dir),
                str(PEERS / "nodered" / "flow.json"),
            ]
            marker = "Connected to broker"
        self.proc = subprocess.Popen(
            cmd, cwd=PEERS, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.out = _Lines(self.proc, marker)
        if not self.out.ready.wait(READY_S):
            raise RuntimeError(f"{self.name} did not connect:\n" + "\n".join(self.out.tail))
        time.sleep(1.0)  # subscribed (the SUBSCRIBE follows the CONNACK), as for Yiju

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid]

    def sessions(self) -> list[str]:
        return [self.client_id]

    def stop(self) -> str:
        if self.proc is None:
            return ""
        _terminate(self.proc)
        self.proc = None
        if self.user_dir is not None:
            shutil.rmtree(self.user_dir, ignore_errors=True)
            self.user_dir = None
        time.sleep(0.2)  # the reader thread takes the last lines
        return "\n".join(self.out.tail)


# --- one run -----------------------------------------------------------------------------------------


def _create_peer_table(db_url: str, table: str) -> None:
    from storage.db import connection

    with connection(db_url) as conn:
        # like Yiju's own time series (storage/migrations/0001_core.sql): same storage, same chunks
        conn.execute(
            f"SELECT yiju_create_timeseries('{table}', $cols$"
            " device text NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL, payload jsonb NOT NULL"
            " $cols$, 'ts', yiju_chunk_interval())"
        )
        conn.execute(f"CREATE UNIQUE INDEX {table}_natural_key ON {table} (device, ts, seq)")
        if conn.execute("SELECT yiju_storage_mode()").fetchone()[0] != "timescaledb":
            # storage.timeseries creates Yiju's partitions ahead; the peer's rows all go to one
            conn.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        conn.commit()


def _lag_from_commits(db_url: str, tables: tuple[str, ...]) -> dict:
    from storage.db import connection

    rows = " UNION ALL ".join(f"SELECT xmin, ts FROM {t}" for t in tables)
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY s),"
            " max(s), count(*) FILTER (WHERE s IS NULL)"
            f" FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts)::float8 AS s FROM ({rows}) r) q"
        ).fetchone()
    q, worst, unknown = row
    return {
        "p50_publish_to_stored_s": None if q is None else round(q[0], 3),
        "p99_publish_to_stored_s": None if q is None else round(q[1], 3),
        "max_publish_to_stored_s": None if worst is None else round(worst, 3),
        "rows_without_commit_ts": unknown,
    }


def run_once(
    services, fleet, tpl, consumer: Consumer, *, rate: float | None, duration: float, tag: str
) -> dict:
    import run

    from storage.db import connection

    db_url = consumer.database(services, fleet)
    for table in consumer.tables:
        if table.startswith("peer_"):
            _create_peer_table(db_url, table)
    count_sql = "SELECT " + " + ".join(f"(SELECT count(*) FROM {t})" for t in consumer.tables)
    load_start = os.getloadavg()[0]
    is_yiju = isinstance(consumer, Yiju)
    log = ""
    try:
        consumer.start(services, db_url, tag)
        postmaster = services.postgres.postmaster_pid() if services.postgres else None
        mq_pid = services.broker._proc.pid if services.broker and services.broker._proc else 0
        pub, rq, go = run.start_publisher(services.mqtt_url, tpl, rate, duration)
        with connection(db_url, autocommit=True) as counter:
            counter_pid = int(counter.execute("SELECT pg_backend_pid()").fetchone()[0])
            # the counter's CPU is left out of PostgreSQL's (below): its count(*) must not hand work
            # to parallel workers, whose CPU would be counted as the consumer's (a growing telemetry
            # table's count went parallel, the peer's one-partition table's did not)
            counter.execute("SET max_parallel_workers_per_gather = 0")
            threads0 = consumer.threads() if isinstance(consumer, Yiju) else {}
            cpu0 = sum(run._cpu_s(p) for p in consumer.pids)
            mq0 = run._cpu_s(mq_pid)
            stats0 = _db_stats(counter)
            procs0 = _pg_processes(postmaster) if postmaster else {}
            pg0 = (_postgres_cpu_s(postmaster) - run._cpu_s(counter_pid)) if postmaster else 0.0
            sampler = _ProcessSampler(postmaster) if postmaster else None
            go.set()
            t0 = time.monotonic()
            rep = rq.get(timeout=duration + 900)
            pub_done = time.monotonic()
            pub.join(30)
            want = rep.acked
            n, changed, polls = 0, time.monotonic(), 0
            deadline = time.monotonic() + 900
            stalled = False
            while True:
                got = int(counter.execute(count_sql).fetchone()[0])
                polls += 1
                now = time.monotonic()
                if got != n:
                    n, changed = got, now
                if n >= want or now > deadline:
                    break
                if now - changed > STALL_S and now - pub_done > STALL_S:
                    stalled = True
                    break
                time.sleep(POLL_S)
            done = changed if stalled else time.monotonic()
            cpu = sum(run._cpu_s(p) for p in consumer.pids) - cpu0
            mq = run._cpu_s(mq_pid) - mq0
            pg = (
                ((_postgres_cpu_s(postmaster) - run._cpu_s(counter_pid)) - pg0)
                if postmaster
                else float("nan")
            )
            threads1 = consumer.threads() if isinstance(consumer, Yiju) else {}
            procs1 = _pg_processes(postmaster) if postmaster else {}
            sampled = sampler.stop() if sampler else {}
            apps = {
                int(r[0]): f"client:{r[1] or '-'}" if r[2] == "client backend" else r[2]
                for r in counter.execute(
                    "SELECT pid, application_name, backend_type FROM pg_stat_activity"
                ).fetchall()
            }
            time.sleep(1.1)  # backends flush their statistics at most every second
            stats1 = _db_stats(counter)
            stats1[3] -= polls + 4  # the counter's own transactions (autocommit)
            sizes = _sizes(counter)
        hwm = max(run._hwm_mb(p) for p in consumer.pids)
        own_lag = consumer.lag() if isinstance(consumer, Yiju) else None
    finally:
        log = consumer.stop()
        for session in consumer.sessions():
            try:
                forget_session(services.mqtt_url, session)
            except OSError as exc:
                print(f"could not end session {session}: {exc}", flush=True)
    el = max(1e-6, done - t0)
    res: dict = {
        "consumer": consumer.name,
        "offered": "max" if rate is None else round(rate),
        "published": rep.acked,
        "publish_s": round(rep.seconds, 1),
        "publisher_behind_s": round(rep.max_behind_s, 2),
        "stored": n,
        "lost": want - n,
        "stalled": stalled,
        "drain_after_publish_s": round(done - pub_done, 1),
        "msg_per_s": round(n / el),
        **_lag_from_commits(db_url, consumer.tables),
        "ingest_cpu_us_per_msg": round(1e6 * cpu / max(1, n), 1),
        "ingest_cpu_cores": round(cpu / el, 2),
        "postgres_cpu_us_per_msg": round(1e6 * pg / max(1, n), 1),
        "postgres_cpu_cores": round(pg / el, 2),
        "mosquitto_cpu_us_per_msg": round(1e6 * mq / max(1, n), 1),
        "peak_rss_mb": round(hwm),
        **_pg_breakdown(stats0, stats1, procs0, {**sampled, **procs1}, apps, counter_pid, pg, n, sizes),
        "loadavg_1m_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    if is_yiju:
        from collections import Counter

        split: Counter[str] = Counter()
        for p, names in threads1.items():
            for name, s in names.items():
                split[name] += s - threads0.get(p, {}).get(name, 0.0)
        res["ingest_threads_us_per_msg"] = {
            k: round(1e6 * s / max(1, n), 1) for k, s in split.most_common() if s > 0.005
        }
        res["own_histogram_p50_p99_s"] = [round(x, 3) for x in own_lag] if own_lag else None
        _, _, pts, dls = run.stored(db_url)
        res["duplicates"] = run.duplicates(db_url)
        res["points_missing"] = run.expected_totals(tpl, rep.acked)[2] - pts
        res["dead_letters"] = dls
    else:
        res["log_tail"] = log.splitlines()[-8:]
    services.drop_database(db_url)
    print(json.dumps(res), flush=True)
    return res


def _pg_breakdown(stats0, stats1, procs0, procs1, apps, counter_pid, pg, n, sizes) -> dict:
    """Where PostgreSQL's work per stored message goes: WAL, commits, rows written, table bytes, and
    CPU per process kind (clients by application name; a process that ended during the run as last
    sampled; "unaccounted": what the sampler missed of them)."""
    from collections import Counter

    d = [b - a for a, b in zip(stats0, stats1, strict=True)]
    n = max(1, n)
    cpu: Counter[str] = Counter()
    for pid, (title, s1) in procs1.items():
        if pid == counter_pid:
            continue
        cpu[_backend_kind(title, apps, pid)] += s1 - procs0.get(pid, ("", 0.0))[1]
    cpu["unaccounted"] = pg - sum(cpu.values())
    return {
        "pg_wal_bytes_per_msg": round(d[2] / n, 1),
        "pg_wal_records_per_msg": round(d[0] / n, 2),
        "pg_wal_fpi_per_msg": round(d[1] / n, 3),
        "pg_commits": int(d[3]),
        "pg_msgs_per_commit": round(n / max(1, d[3]), 1),
        "pg_rows_inserted_per_msg": round(d[4] / n, 3),
        "pg_rows_updated_per_msg": round(d[5] / n, 3),
        "pg_rows_hot_updated_per_msg": round(d[6] / n, 3),
        "pg_cpu_us_per_msg_by_process": {
            k: round(1e6 * v / n, 1) for k, v in cpu.most_common() if abs(v) > 0.005
        },
        "pg_bytes_per_msg_by_table": {
            t: {k: round(v / n, 1) for k, v in b.items()} for t, b in sizes.items()
        },
    }


# --- the comparison ----------------------------------------------------------------------------------


def prepare(services) -> None:
    """Commit timestamps on in the private cluster (publish → stored is read from them)."""
    from storage.db import connection

    if services.postgres is None:
        print("external PostgreSQL: track_commit_timestamp must already be on", flush=True)
        return
    with connection(services.admin_url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    services.postgres.restart()
    with connection(services.admin_url) as conn:
        assert conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"


def compare(
    services,
    fleet,
    tpl,
    *,
    trees: list[tuple[str, Path]],
    workers: int,
    compounds: int,
    rounds: int,
    duration: float,
    saturated_s: float,
    paced_rate: float,
    modes: list[str],
    peers: tuple[str, ...] = ("node-red", "node"),
) -> dict:
    consumers: list[Consumer] = [Yiju(label, tree, workers, compounds) for label, tree in trees]
    consumers += [NodePeer(name) for name in peers]
    runs: list[dict] = []
    for rnd in range(1, rounds + 1):
        order = consumers if rnd % 2 else consumers[::-1]
        for mode in modes:
            for c in order:
                rate, seconds = (None, saturated_s) if mode == "saturated" else (paced_rate, duration)
                tag = f"{mode}-{c.name.replace(':', '-')}-r{rnd}"
                print(f"--- round {rnd}, {mode}, {c.name}: load {os.getloadavg()[0]:.2f}", flush=True)
                res = run_once(services, fleet, tpl, c, rate=rate, duration=seconds, tag=tag)
                runs.append({"round": rnd, "mode": mode, **res})
    ratios = []
    for rnd in range(1, rounds + 1):
        for mode in modes:
            by = {r["consumer"]: r for r in runs if r["round"] == rnd and r["mode"] == mode}
            node = by.get("node")
            for name, r in by.items():
                if not name.startswith("yiju") or node is None:
                    continue
                ratios.append(
                    {
                        "round": rnd,
                        "mode": mode,
                        "build": name,
                        "ingest_cpu_ratio_vs_node": round(
                            r["ingest_cpu_us_per_msg"] / max(1e-9, node["ingest_cpu_us_per_msg"]), 2
                        ),
                        "postgres_cpu_ratio_vs_node": round(
                            r["postgres_cpu_us_per_msg"] / max(1e-9, node["postgres_cpu_us_per_msg"]), 2
                        ),
                        # autovacuum visits each database at most once a minute (autovacuum_naptime):
                        # whether it lands in a run of ~1 min is chance, and one pass over a fresh
                        # chunk is several µs per message of that run; this ratio leaves it out
                        "postgres_cpu_ratio_vs_node_without_autovacuum": round(
                            _without_autovacuum(r) / max(1e-9, _without_autovacuum(node)), 2
                        ),
                        "msg_per_s_ratio_vs_node": round(r["msg_per_s"] / max(1, node["msg_per_s"]), 2),
                    }
                )
    return {
        "paced_rate": paced_rate,
        "paced_s": duration,
        "saturated_s": saturated_s,
        "workers": workers,
        "runs": runs,
        "ratios": ratios,
    }


def _without_autovacuum(run: dict) -> float:
    by = run.get("pg_cpu_us_per_msg_by_process", {})
    return run["postgres_cpu_us_per_msg"] - by.get("autovacuum worker", 0.0)


def table(result: dict, floor: float | None) -> str:
    """The comparison as a Markdown table (for bench/RESULTS.md)."""
    lines = [
        "| round | mode | consumer | stored msg/s | lost | p50 / p99 publish→stored | ingest CPU µs/msg | PostgreSQL CPU µs/msg | peak RSS | load 1 min start→end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lat = f"{r['p50_publish_to_stored_s']} / {r['p99_publish_to_stored_s']} s"
        share = (
            f" ({r['msg_per_s'] / floor:.2f} of min(a, b))"
            if floor and math.isfinite(floor) and r["mode"] == "saturated"
            else ""
        )
        lines.append(
            f"| {r['round']} | {r['mode']}{'' if r['offered'] == 'max' else ' ' + format(r['offered'], ',')} | {r['consumer']} | {r['msg_per_s']:,}{share} | {r['lost']:,} | {lat} | {r['ingest_cpu_us_per_msg']} | {r['postgres_cpu_us_per_msg']} | {r['peak_rss_mb']} MB | {r['loadavg_1m_start_end'][0]} → {r['loadavg_1m_start_end'][1]} |"
        )
    lines += [
        "",
        "| round | mode | build | ingest_cpu_ratio_vs_node | PostgreSQL CPU ratio vs node | … without autovacuum | throughput ratio vs node |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in result["ratios"]:
        lines.append(
            f"| {x['round']} | {x['mode']} | {x['build']} | {x['ingest_cpu_ratio_vs_node']} | {x['postgres_cpu_ratio_vs_node']} | {x['postgres_cpu_ratio_vs_node_without_autovacuum']} | {x['msg_per_s_ratio_vs_node']} |"
        )
    return "\n".join(lines)


def results_path(root: Path) -> Path:
    """bench/results/ingest-compare-<date>.json, or -2, -3, ... after it: a second run that day keeps the first."""
    stem = root / "bench" / "results" / f"ingest-compare-{datetime.now(UTC).date().isoformat()}"
    path, k = stem.with_suffix(".json"), 1
    while path.exists():
        k += 1
        path = stem.parent / f"{stem.name}-{k}.json"
    return path
