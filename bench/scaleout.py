"""Scale-out benchmark (issue 16): messages per second end to end and CPU per message, single-node mode
side by side with scale-out on a private 3-node JetStream cluster with 2 bridges and 1, 2, 4 partition
workers, in one run on the same machine, database server and broker.

    .venv/bin/python bench/scaleout.py [--messages 20000] [--compounds 8]

Each configuration gets a fresh database and topic prefix; the same telemetry (every device of
`--compounds` compounds in turn) is published over MQTT QoS 1, and the clock runs from the first
publish until the last row is committed. CPU is read from /proc for each process of the
configuration (bridges, workers, NATS servers; single node: the `yiju run` process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402
from ingest_support import Msg, Publisher, good_messages, register_fleet  # noqa: E402
from nats_cluster import start_cluster  # noqa: E402

from storage.db import connection  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def pg_cpu_s(postmaster: int) -> float:
    """CPU of the PostgreSQL server so far: the postmaster, its live children (backends, WAL writer,
    checkpointer) and, through the postmaster's cutime/cstime, every child it has reaped."""
    own = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(own[i]) for i in (11, 12, 13, 14)) / TICK
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile: counted in the postmaster's cutime
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def rows(db: str) -> int:
    with connection(db) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry) + (SELECT count(*) FROM device_events)"
        ).fetchone()
    assert row is not None
    return int(row[0])


def workload(prefix: str, db: str, compounds: int, n: int) -> list[Msg]:
    msgs: list[Msg] = []
    for c in range(compounds):
        fleet = register_fleet(db, per_family=20, community=f"c{c}")
        msgs += good_messages(prefix, fleet, n // compounds, community=f"c{c}", start_seq=1)
    # interleave the compounds, as a city's traffic arrives
    per = n // compounds
    return [msgs[c * per + i] for i in range(per) for c in range(compounds)]


def ready(kind: str, prefix: str, log_dir: Path, procs: dict[str, subprocess.Popen[bytes]]) -> bool:
    text = {name: (log_dir / f"{prefix}-{name}.log").read_text() for name in procs}
    if kind == "single":
        return "connected to" in text["run"]
    taken = sum(
        t.count(" taken (") - t.count(" handed back") for n, t in text.items() if n.startswith("worker")
    )
    return all("subscribed" in t for n, t in text.items() if n.startswith("bridge")) and taken >= 8


def run(
    kind: str, workers: int, services: object, cluster: object, n: int, compounds: int, log_dir: Path
) -> dict[str, float]:
    db = services.create_database(None)  # type: ignore[attr-defined]
    prefix = f"bs{kind}{workers}x{int(time.time()) % 100000}"
    msgs = workload(prefix, db, compounds, n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env |= {
        "YIJU_DATABASE__URL": db,
        "YIJU_MQTT__URL": services.mqtt_url,  # type: ignore[attr-defined]
        "YIJU_MQTT__TOPIC_PREFIX": prefix,
        "YIJU_MQTT__CLIENT_ID": f"{prefix}-ingest",
        "YIJU_INGEST__METRICS_PORT": "0",
        "YIJU_METRICS__PORT": "0",
        "YIJU_LINKAGE__ENABLED": "false",
        "YIJU_SCALE__NATS_URL": cluster.url,  # type: ignore[attr-defined]
        "YIJU_SCALE__PARTITIONS": "8",
        # 20,000 messages are ~10 MB; JetStream reserves max_bytes on every replica when it places a
        # stream, and the private cluster's nodes hold 2 GB each: at 1 GiB the third run's stream had
        # no room ("no suitable peers for placement, insufficient storage")
        "YIJU_SCALE__STREAM_MAX_BYTES": str(256 * 1024**2),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, *args: str) -> None:
        out = (log_dir / f"{prefix}-{name}.log").open("ab")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "yiju.cli", *args], env=env, stdout=out, stderr=out
        )

    if kind == "single":
        spawn("run", "run", "--port", "0")
    else:
        env["YIJU_SCALE__MODE"] = "jetstream"
        spawn("bridge1", "bridge", "--id", f"{prefix}-b1")
        spawn("bridge2", "bridge", "--id", f"{prefix}-b2")
        for w in range(workers):
            spawn(f"worker{w}", "partition-worker", "--id", f"{prefix}-w{w}")
    # the clock starts once the sessions are subscribed and every partition is leased
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ready(kind, prefix, log_dir, procs):
        time.sleep(0.2)
    nats_pids = [node.proc.pid for node in cluster.nodes]  # type: ignore[attr-defined]
    postmaster = services.postgres.postmaster_pid() or 0  # type: ignore[attr-defined]
    before = {name: cpu_s(p.pid) for name, p in procs.items()} | {
        f"nats{i}": cpu_s(p) for i, p in enumerate(nats_pids)
    }
    before["postgres"] = pg_cpu_s(postmaster)
    pub = Publisher(services.mqtt_url, f"{prefix}-pub")  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    pub.publish(msgs)
    deadline = time.monotonic() + 600
    while rows(db) < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    after = {name: cpu_s(p.pid) for name, p in procs.items()} | {
        f"nats{i}": cpu_s(p) for i, p in enumerate(nats_pids)
    }
    after["postgres"] = pg_cpu_s(postmaster)
    pub.close()
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        p.wait(30)
    used = {k: after[k] - before[k] for k in after}
    per = lambda prefix_: sum(v for k, v in used.items() if k.startswith(prefix_)) / len(msgs) * 1e6  # noqa: E731
    services.drop_database(db)  # type: ignore[attr-defined]
    return {
        "msg_s": len(msgs) / elapsed,
        "run_us": per("run"),
        "bridge_us": per("bridge"),
        "worker_us": per("worker"),
        "nats_us": per("nats"),
        "postgres_us": per("postgres"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--compounds", type=int, default=8)
    args = ap.parse_args()
    services = start_services()
    cluster = start_cluster()
    log_dir = Path(tempfile.mkdtemp(prefix="yiju-bench-scaleout-"))
    try:
        print(f"load before: {os.getloadavg()}  messages {args.messages}, compounds {args.compounds}")
        print("| mode | msg/s | CPU µs/msg: yiju run | bridges (2) | workers | NATS (3 nodes) | PostgreSQL |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind, workers in (("single", 0), ("jetstream", 1), ("jetstream", 2), ("jetstream", 4)):
            r = run(kind, workers, services, cluster, args.messages, args.compounds, log_dir)
            label = "single node" if kind == "single" else f"JetStream, {workers} worker(s)"
            print(
                f"| {label} | {r['msg_s']:.0f} | {r['run_us']:.0f} | {r['bridge_us']:.0f} | "
                f"{r['worker_us']:.0f} | {r['nats_us']:.0f} | {r['postgres_us']:.0f} |",
                flush=True,
            )
        print(f"load after: {os.getloadavg()}; logs in {log_dir}")
    finally:
        cluster.stop()
        services.stop()


if __name__ == "__main__":
    main()
