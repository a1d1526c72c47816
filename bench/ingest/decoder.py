# ruff: noqa: PLC0415 - imports the build under test after choosing its root
"""The decoder thread alone: `IngestService._process` + the per-batch `_flush`, no broker, no database.

    .venv/bin/python bench/ingest/decoder.py [--messages 60000] [--repeat 5] [--tree LABEL=PATH ...]

Load: the first `--templates` messages of the simulator's typical compound (bench/ingest/load.py's
stream), stamped with the current time, as the `RawMessage`s the network thread hands on (one
receive instant per 700 messages: one 256 KiB read). Every device is in the registry. Batches of
`ingest.batch_size`, flushed as the decoder loop flushes them, with the hand-off to the writer
replaced by dropping the batch; the service's gc settings (freeze + gen-0 threshold) apply.
Reports the thread CPU per message (best and median of `--repeat`), per build: this checkout and each
`--tree` checkout, alternately, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("YIJU_BENCH_ROOT") or Path(__file__).resolve().parents[2])
sys.path[:0] = [str(ROOT)]
MESSAGES_PER_READ = 700  # RawMessages sharing one receive instant (a 256 KiB recv of ~340-byte packets)


def measure(n_messages: int, n_templates: int, repeat: int) -> dict[str, Any]:
    import gc
    import itertools
    from datetime import UTC, datetime, timedelta, timezone

    from devices.contract import DeviceRef
    from ingest.decode import Registry
    from ingest.messages import RawMessage
    from ingest.service import IngestService, _Pending
    from simulators import behaviour
    from simulators.compound import Size, generate_fleet
    from yiju.settings import Settings

    settings = Settings()
    service = IngestService(
        settings, database_url="postgresql://bench.invalid/x", mqtt_url="mqtt://127.0.0.1:1"
    )
    fleet = generate_fleet(Size.TYPICAL, 1, 7, prefix="bench")
    communities = {code: k + 1 for k, code in enumerate(sorted({d.community for d in fleet.devices}))}
    devices = {
        d.uid: DeviceRef(k + 1, d.uid, d.community, communities[d.community], d.family)
        for k, d in enumerate(fleet.devices)
    }
    service._registry = Registry(devices, {}, communities)
    service._registry_loaded_at = time.monotonic()
    start = datetime.now(UTC) - timedelta(days=1)
    cst = timezone(timedelta(hours=8))
    stamp = datetime.now(cst).isoformat(timespec="microseconds").encode()
    key = b'"ts":"'
    payloads: list[tuple[str, bytes]] = []
    for m in itertools.islice(behaviour.fleet_background(fleet, start, None), n_templates):
        i = m.payload.index(key) + len(key)
        j = m.payload.index(b'"', i)
        payloads.append((m.topic(service.prefix), m.payload[:i] + stamp + m.payload[j:]))
    service._put = lambda item: None  # type: ignore[method-assign]  # the writer's side is not measured

    def one_pass() -> float:
        raws = []
        now = time.time()
        for k in range(n_messages):
            if k % MESSAGES_PER_READ == 0:
                now += 0.001
            topic, payload = payloads[k % len(payloads)]
            raws.append(RawMessage(topic, payload, (k % 65_535) + 1, 1, now, 1))
        batch = settings.ingest.batch_size
        t0 = time.thread_time()
        pending = _Pending()
        for raw in raws:
            service._process(raw, pending)
            if len(pending.tokens) >= batch:
                pending = service._flush(pending)
        service._flush(pending, force_presence=True)
        return (time.thread_time() - t0) / n_messages * 1e6

    gc.freeze()
    gc.set_threshold(settings.ingest.gc_gen0_threshold, 20, 20)
    one_pass()  # warm: topic cache, presence dict
    runs = [one_pass() for _ in range(repeat)]
    return {
        "us_per_msg_best": round(min(runs), 2),
        "us_per_msg_median": round(statistics.median(runs), 2),
        "runs": [round(r, 2) for r in runs],
        "stats_received": service.stats.received,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--templates", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.messages, args.templates, args.repeat)))
        return
    builds = [("this", str(ROOT))] + [tuple(t.split("=", 1)) for t in args.tree]
    out: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for label, root in builds:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--messages",
                str(args.messages),
                "--templates",
                str(args.templates),
                "--repeat",
                str(args.repeat),
            ]
            done = subprocess.run(
                cmd, env={**os.environ, "YIJU_BENCH_ROOT": root}, check=True, capture_output=True, text=True
            )
            res = {"round": rnd, "build": label, "load_1min": os.getloadavg()[0], **json.loads(done.stdout)}
            out.append(res)
            print(
                f"round {rnd} {label:<10} best {res['us_per_msg_best']:6.2f} µs/msg  "
                f"median {res['us_per_msg_median']:6.2f}  load {res['load_1min']:.2f}",
                flush=True,
            )
    for label, _ in builds:
        best = min(r["us_per_msg_best"] for r in out if r["build"] == label)
        print(f"{label:<10} best of all rounds {best:6.2f} µs/msg")
    if args.json:
        args.json.write_text(json.dumps({"command": sys.argv, "results": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
