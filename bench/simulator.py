"""Simulator publish rate in load mode against a private Mosquitto, with a bare subscriber draining.

    .venv/bin/python bench/simulator.py [--processes 1 2 4] [--messages 150000] [--connections 1]

For each process count: the workers pre-serialise background traffic of typical compounds (each
worker its own communities, encoded as MQTT 5 QoS 1 PUBLISH packets), connect, wait for each
other, then publish as fast as the broker acknowledges. Reported: PUBACKed messages per second
from the common start to the last acknowledgement, and what the subscriber received.
Target (issue #3): ≥ 60,000 msg/s, three times the 20,000 msg/s ingest target.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from simulators.compound import Size
from simulators.mqtt_publisher import drain_count, run_load
from simulators.runner import LoadPlan, prepare_share
from yiju.embedded import MosquittoBroker, mosquitto_version

PREFIX = "bench"


def _drain(url: str, expected: int, ready: Any, out: Any) -> None:
    out.put(drain_count(url, f"{PREFIX}/#", expected, timeout_s=600, ready=ready))


def run(
    processes: int, messages: int, connections: int, subscriber: bool, broker: MosquittoBroker
) -> dict[str, Any]:
    plan = LoadPlan(
        size=Size.TYPICAL,
        communities=processes * 4,
        seed=1,
        start=datetime.now(UTC) - timedelta(hours=2),
        window_s=2 * 3600,
        workers=processes,
        prefix=PREFIX,
        limit=messages,
    )
    ctx = mp.get_context("spawn")
    drain = None
    results = ctx.Queue()
    if subscriber:
        ready = ctx.Event()
        drain = ctx.Process(target=_drain, args=(broker.url, processes * messages, ready, results))
        drain.start()
        if not ready.wait(30):
            raise RuntimeError("subscriber did not subscribe")
    t0 = time.monotonic()
    result = run_load(
        broker.url,
        PREFIX,
        partial(prepare_share, plan),
        processes=processes,
        connections_per_process=connections,
    )
    row: dict[str, Any] = {
        "processes": processes,
        "connections": processes * connections,
        "published": result.stats.published,
        "acked": result.stats.acked,
        "seconds": result.elapsed_s,
        "rate": result.rate,
        "mb_s": result.stats.bytes / result.elapsed_s / 1e6,
        "wall_incl_prepare": time.monotonic() - t0,
    }
    if drain is not None:
        received, span = results.get(timeout=660)
        drain.join(30)
        row["received"] = received
        row["received_rate"] = received / span if span > 0 else 0.0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--messages", type=int, default=150_000, help="per process")
    ap.add_argument("--connections", type=int, default=1, help="per process")
    ap.add_argument("--no-subscriber", action="store_true")
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"Mosquitto {mosquitto_version()}; Python {platform.python_version()}"
    )
    print("| processes | connections | published | acked | seconds | acked msg/s | MB/s | subscriber msg/s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="yiju-bench-sim-") as tmp:
        broker = MosquittoBroker(Path(tmp))
        broker.start()
        try:
            for n in args.processes:
                r = run(n, args.messages, args.connections, not args.no_subscriber, broker)
                sub = f"{r['received_rate']:,.0f} ({r['received']:,} received)" if "received" in r else "—"
                print(
                    f"| {r['processes']} | {r['connections']} | {r['published']:,} | {r['acked']:,} | "
                    f"{r['seconds']:.2f} | **{r['rate']:,.0f}** | {r['mb_s']:.1f} | {sub} |",
                    flush=True,
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
