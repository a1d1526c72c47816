"""API benchmark: the duty-room mix against a typical compound, beside a bare endpoint (the ceiling).

    .venv/bin/python bench/api.py [--seconds 6] [--concurrency 1 20 100]

What runs: the test harness's private PostgreSQL (or YIJU_TEST_DATABASE_URL) with a migrated
database holding a typical simulated compound (~7,000 devices), 300 alarms with their transitions,
24 h of per-minute port temperatures for 60 chargers (hourly rollup refreshed) and compliance
findings. Two servers, each one uvicorn process, measured one after the other on the same machine:

- ceiling: a bare FastAPI app whose only endpoint returns a constant;
- yiju: `create_app(settings)` as `yiju api` serves it (all middleware, auth by bearer token).

The load generator is this process: asyncio, one keep-alive HTTP/1.1 connection per concurrent
client, each sending its next request when the previous answer is complete (closed loop). The mix,
what a duty room's consoles ask for: alarm board 30 %, alarm detail 20 %, device list 20 %,
telemetry buckets (7 days, hourly) 20 %, compliance summary 10 %.

Reported per concurrency: req/s, p50 and p99 latency, and req/s as a share of the ceiling's in the
same run, and the server's CPU per request (user + system, from /proc: the figure that compares builds
on a shared machine). Goal (issue 10): the mix at >= 0.3 of the ceiling and p99 <= 100 ms at
concurrency 20 on a quiet machine.

    --tree LABEL=PATH (repeatable): serve the API from other checkouts too and measure their mix
    alternately with this one's, on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import start_services  # noqa: E402

from simulators.compound import Size, generate_fleet  # noqa: E402
from storage import alarms, users  # noqa: E402
from storage.db import connect  # noqa: E402
from storage.timeseries import refresh_recent  # noqa: E402
from storage.users import Role  # noqa: E402
from yiju.commands.simulate import register_fleet  # noqa: E402
from yiju.embedded import free_port, port_open  # noqa: E402

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
ALARMS = 300
CHARGERS_WITH_TELEMETRY = 60


# ---------------------------------------------------------------------------------------------
# Data


def seed(url: str) -> dict[str, Any]:
    fleet = generate_fleet(Size.TYPICAL, 1, 7, prefix="bench")
    register_fleet(url, fleet)
    with connect(url, autocommit=True) as conn:
        community_id, code = conn.execute("SELECT id, code FROM communities ORDER BY id LIMIT 1").fetchone()  # type: ignore[misc]
        devices = conn.execute(
            "SELECT id, family FROM devices WHERE community_id = %s ORDER BY id", (community_id,)
        ).fetchall()
        chargers = [d for d, f in devices if f == "ebike_charger"][:CHARGERS_WITH_TELEMETRY]
        rng = random.Random(7)
        alarm_ids: list[int] = []
        kinds = [
            ("smoke_alarm", "smoke_detector_fault", "minor"),
            ("ebike_charger", "charger_over_temperature", "major"),
        ]
        candidates = [(d, f) for d, f in devices if f in {"smoke_alarm", "ebike_charger"}]
        for i, (device_id, family) in enumerate(rng.sample(candidates, ALARMS)):
            _, type_, severity = next(k for k in kinds if k[0] == family)
            change = alarms.raise_or_update(
                conn,
                community_id=community_id,
                device_id=device_id,
                type=type_,
                severity="critical" if i % 10 == 0 else severity,
                at=NOW - timedelta(minutes=rng.randint(1, 600)),
            )
            alarm_ids.append(change.alarm.id)
            if i % 3 == 0:
                alarms.acknowledge(conn, change.alarm.id, actor="user:bench", comment="已派人")
        start = NOW - timedelta(hours=24)
        # one telemetry message a minute per charger, its point in the row's arrays as ingest stores it
        # (migration 0028; the `points` view reads them)
        with conn.cursor().copy(
            "COPY telemetry (ts, device_id, seq, received_at, body, point_metrics, point_channels, "
            "point_values) FROM STDIN"
        ) as copy:
            copy.set_types(
                ["timestamptz", "int4", "int8", "timestamptz", "jsonb", "text[]", "int2[]", "float8[]"]
            )
            for device_id in chargers:
                for minute in range(24 * 60):
                    ts = start + timedelta(minutes=minute)
                    copy.write_row(
                        (
                            ts,
                            device_id,
                            minute,
                            ts,
                            "{}",
                            ["port_temperature_c"],
                            [1],
                            [30 + rng.random() * 10],
                        )
                    )
        # as the running service's upkeep leaves it: the settled hours materialised and the watermark
        # moved, the last ~2-3 h read raw by points_hourly (storage/timeseries.refresh_recent); a bare
        # recompute would leave the watermark at the start and every bucket read from raw rows
        refresh_recent(conn, NOW)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO compliance_findings (community_id, device_id, check_name, kind, compliant, "
                "observed_at, measured_s) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        community_id,
                        d,
                        "auto_cutoff",
                        "over_temperature",
                        rng.random() > 0.05,
                        NOW - timedelta(hours=h),
                        20.0,
                    )
                    for d in chargers
                    for h in range(0, 24 * 30, 12)
                ],
            )
        user = users.create_user(
            conn,
            username="duty",
            role=Role.OPERATOR,
            password="bench-password",
            community_ids=frozenset({community_id}),
        )
        token, _ = users.issue_token(conn, user.id, timedelta(hours=6))
        conn.execute("ANALYZE")  # what autovacuum does on a live database after an import
    return {
        "community_id": community_id,
        "code": code,
        "devices": len(devices),
        "alarm_ids": alarm_ids,
        "chargers": chargers,
        "token": token,
    }


KINDS = (
    ("alarm board", 0.3),
    ("alarm detail", 0.2),
    ("device list", 0.2),
    ("telemetry", 0.2),
    ("compliance", 0.1),
)


def path_of(kind: str, world: dict[str, Any], rng: random.Random) -> str:
    cid = world["community_id"]
    if kind == "alarm board":
        return f"/api/v1/alarms?community_id={cid}&status=active&order=worst&limit=50"
    if kind == "alarm detail":
        return f"/api/v1/alarms/{rng.choice(world['alarm_ids'])}"
    if kind == "device list":
        return f"/api/v1/devices?community_id={cid}&limit=100"
    if kind == "telemetry":
        since = (NOW - timedelta(days=7)).isoformat().replace("+00:00", "Z")
        return (
            f"/api/v1/devices/{rng.choice(world['chargers'])}/telemetry?metric=port_temperature_c&channel=1"
            f"&resolution=hour&since={since}"
        )
    return f"/api/v1/compliance/summary?community_id={cid}"


def mix(world: dict[str, Any], rng: random.Random) -> str:
    roll = rng.random()
    for kind, share in KINDS:
        if roll < share:
            return path_of(kind, world, rng)
        roll -= share
    return path_of(KINDS[-1][0], world, rng)


# ---------------------------------------------------------------------------------------------
# Servers (each its own process)

SERVE_YIJU = """
import sys, uvicorn
sys.path[:0] = [{root!r}]
from api.app import create_app
from yiju.settings import DatabaseSettings, Settings
app = create_app(Settings(database=DatabaseSettings(url={url!r})))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""
SERVE_BARE = """
import uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/ceiling")
def ceiling() -> dict[str, str]:
    return {{"status": "ok"}}
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def start_server(code: str, root: Path = ROOT) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", code.format(root=str(root), port=port, url=os.environ.get("_BENCH_URL", ""))],
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not start")
        time.sleep(0.1)
    return proc, port


# ---------------------------------------------------------------------------------------------
# Load


async def _client(
    port: int, headers: bytes, paths: Any, until: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            path = paths()
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n".encode() + headers + b"\r\n")
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            status = int(status_line.split()[1])
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) of process `pid` so far, from /proc: unlike latency, hardly moved by
    what else the machine runs, so builds compare on a shared machine too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def run_load(
    port: int, concurrency: int, seconds: float, headers: bytes, paths: Any, pid: int | None = None
) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []

    async def main() -> float:
        # warm-up, not counted: every client for half a second (at least one request each; the first
        # requests after the server starts wait for its pool's connections and lazy set-up)
        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(_client(port, headers, paths, warm, [], []) for _ in range(concurrency)))
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(
            *(_client(port, headers, paths, until, latencies, errors) for _ in range(concurrency))
        )
        return time.perf_counter() - start

    cpu_before = cpu_s(pid) if pid else 0.0
    elapsed = asyncio.run(main())
    # includes the half-second warm-up's requests in the CPU but not in the count: a small overstatement
    cpu = cpu_s(pid) - cpu_before if pid else 0.0
    latencies.sort()
    return {
        "server_cpu_ms_per_request": 1000 * cpu / max(1, len(latencies)),
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also serve the API from another checkout of Yiju and measure the mix alternately with this one",
    )
    args = parser.parse_args()
    trees = [("this", ROOT)] + [(t.split("=", 1)[0], Path(t.split("=", 1)[1])) for t in args.tree]

    services = start_services()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = services.create_database()
        t = time.perf_counter()
        world = seed(url)
        seeded = time.perf_counter() - t
        print(
            f"seeded {world['devices']:,} devices, {ALARMS} alarms, telemetry for "
            f"{len(world['chargers'])} chargers in {seeded:.1f} s",
            flush=True,
        )
        os.environ["_BENCH_URL"] = url
        bare, bare_port = start_server(SERVE_BARE)
        procs.append(bare)
        servers: list[tuple[str, subprocess.Popen[bytes], int]] = []
        for label, root in trees:
            proc, port = start_server(SERVE_YIJU, root)
            procs.append(proc)
            servers.append((label, proc, port))
        _, yiju, yiju_port = servers[0]
        auth = f"Authorization: Bearer {world['token']}\r\n".encode()
        rng = random.Random(1)
        rows: list[dict[str, Any]] = []
        for _, _, port in servers:  # the servers' first requests, not counted
            run_load(port, 4, 2.0, auth, lambda: mix(world, rng))
        # where the time goes: each kind of request alone, one client, on every tree
        for label, proc, port in servers:
            for kind, _ in KINDS:
                alone = run_load(
                    port, 1, min(args.seconds, 3.0), auth, lambda k=kind: path_of(k, world, rng), proc.pid
                )
                print(
                    f"  {label}: {kind:<13} alone at c=1: p50 {alone['p50_ms']:6.1f} ms, "
                    f"p99 {alone['p99_ms']:6.1f} ms, server CPU {alone['server_cpu_ms_per_request']:.2f} "
                    "ms/request",
                    flush=True,
                )
                rows.append({"alone": kind, "tree": label, "mix": alone})
        for c in args.concurrency:
            ceiling = run_load(bare_port, c, args.seconds, b"", lambda: "/ceiling", bare.pid)
            duty = run_load(yiju_port, c, args.seconds, auth, lambda: mix(world, rng), yiju.pid)
            for label, proc, port in servers[1:]:
                other = run_load(port, c, args.seconds, auth, lambda: mix(world, rng), proc.pid)
                print(
                    f"c={c:<4} {label}: mix {other['rps']:6.0f} req/s p50 {other['p50_ms']:6.1f} ms "
                    f"p99 {other['p99_ms']:6.1f} ms, server CPU {other['server_cpu_ms_per_request']:.2f} "
                    f"ms/request | this: {duty['rps']:6.0f} req/s, server CPU "
                    f"{duty['server_cpu_ms_per_request']:.2f} ms/request",
                    flush=True,
                )
                rows.append({"concurrency": c, "tree": label, "mix": other})
            rows.append(
                {"concurrency": c, "ceiling": ceiling, "mix": duty, "ratio": duty["rps"] / ceiling["rps"]}
            )
            print(
                f"c={c:<4} ceiling {ceiling['rps']:6.0f} req/s p50 {ceiling['p50_ms']:6.1f} ms "
                f"p99 {ceiling['p99_ms']:6.1f} ms | mix {duty['rps']:6.0f} req/s "
                f"p50 {duty['p50_ms']:6.1f} ms "
                f"p99 {duty['p99_ms']:6.1f} ms errors {duty['errors']} "
                f"| ratio {duty['rps'] / ceiling['rps']:.2f} | server CPU per request: ceiling "
                f"{ceiling['server_cpu_ms_per_request']:.2f} ms, "
                f"mix {duty['server_cpu_ms_per_request']:.2f} ms",
                flush=True,
            )
        print(json.dumps({"load_average": os.getloadavg(), "cpus": os.cpu_count(), "rows": rows}))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        services.stop()


if __name__ == "__main__":
    main()
