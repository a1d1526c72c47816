# ruff: noqa: TID251, PLC0415 - a benchmark drives paho directly, imports per build and prints
"""Ingest's receive path alone: CPU per PUBLISH of framing what one `recv()` brought, per build.

    .venv/bin/python bench/ingest/framing.py [--messages 200000] [--tree LABEL=PATH ...]

The same bytes (the ingest benchmark's typical-compound PUBLISH packets, ≈ 330 bytes each) go through
`ingest.mqtt_adapter._BulkClient._consume` of this checkout and of each `--tree` (another checkout of
Yiju, e.g. one from before the codec), each in its own process, in 256 KiB chunks as the bulk path
reads them; and through stock paho's receive path (`loop_read` on a socket pair, one packet per call,
an `MQTTMessage` each) for what the bulk path buys. Reports µs per message, best of 5 rounds.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 256 * 1024


def _stream(n: int) -> bytes:
    sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
    from load import bench_fleet, templates

    tpl = templates(bench_fleet(1), "bench", 5000)
    ts = b"2026-12-01T20:00:00.000000+08:00"
    return b"".join(
        t.head + (k % 65_535 + 1).to_bytes(2, "big") + t.pre + ts + t.post
        for k, t in ((k, tpl[k % len(tpl)]) for k in range(n))
    )


def _bulk(tree: Path, data: bytes, n: int) -> float:
    sys.path.insert(0, str(tree))  # before the editable install's path: that build's ingest
    from paho.mqtt.enums import CallbackAPIVersion

    from ingest.mqtt_adapter import _BulkClient

    got = [0]

    def on_batch(items: list) -> None:
        got[0] += len(items)

    client = _BulkClient(CallbackAPIVersion.VERSION2, on_batch=on_batch)
    sock = object()
    client._sock = sock
    best = float("inf")
    for _ in range(5):
        got[0] = 0
        t0 = time.process_time()
        for i in range(0, len(data), CHUNK):
            client._rx += data[i : i + CHUNK]
            client._consume(sock)
        best = min(best, time.process_time() - t0)
        assert got[0] == n, (got[0], n)
        assert not client._rx
    client._sock = None
    return 1e6 * best / n


def _stock(data: bytes, n: int) -> float:
    import paho.mqtt.client as mqtt

    best = float("inf")
    for _ in range(5):
        got = [0]
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_message = lambda c, u, m, got=got: got.__setitem__(0, got[0] + 1)
        a, b = socket.socketpair()
        client._sock = a
        writer = threading.Thread(target=b.sendall, args=(data,), daemon=True)
        writer.start()
        t0 = time.process_time()
        while got[0] < n:
            client.loop_read()
        spent = time.process_time() - t0  # includes the writer thread's sendall (small: one copy)
        best = min(best, spent)
        writer.join()
        client._sock = None
        a.close()
        b.close()
    return 1e6 * best / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=PATH")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "PATH", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:  # a fresh process per build: nothing of Yiju imported before its ingest
        kind, path, stream = args.worker
        data = Path(stream).read_bytes()
        us = _bulk(Path(path), data, args.messages) if kind == "bulk" else _stock(data, args.messages)
        print(json.dumps({"us_per_msg": round(us, 3)}))
        return 0
    data = _stream(args.messages)
    stream = Path(tempfile.mkstemp(prefix="yiju-framing-")[1])
    stream.write_bytes(data)
    runs = (
        [("this", "bulk", ROOT)]
        + [(label, "bulk", Path(p).resolve()) for label, _, p in (x.partition("=") for x in args.tree)]
        + [("stock paho", "stock", ROOT)]
    )
    out = {"messages": args.messages, "bytes_per_message": round(len(data) / args.messages)}
    for label, kind, tree in runs:
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--messages",
                str(args.messages),
                "--worker",
                kind,
                str(tree),
                str(stream),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        out[label] = json.loads(res.stdout.strip().splitlines()[-1])["us_per_msg"]
        print(f"{label}: {out[label]:.2f} µs per message", flush=True)
    stream.unlink()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
