"""Decode throughput of the device catalogue (one core): `devices.catalog.decode` + `points_of` per family.

    .venv/bin/python bench/devices_decode.py [--seconds 1.0]

Ingest runs this once per message; it must stay far above the ingest target on one core.
"""

from __future__ import annotations

import argparse
import time

from devices import catalog, samples
from devices.contract import Channel, Family


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per case")
    args = parser.parse_args()
    print(f"{'family':<15} {'channel':<10} {'bytes':>6} {'decode/s':>10} {'decode+points/s':>16}")
    for family in Family:
        for channel in (Channel.TELEMETRY, Channel.EVENT, Channel.STATUS):
            payload = samples.payload(family, channel)
            rates = []
            for with_points in (False, True):
                n, t0 = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - t0) < args.seconds:
                    for _ in range(200):
                        msg = catalog.decode(family, channel, payload)
                        if with_points and channel is Channel.TELEMETRY:
                            catalog.points_of(family, msg)
                    n += 200
                rates.append(n / elapsed)
            name = f"{family.value:<15} {channel.value:<10}"
            print(f"{name} {len(payload):>6} {rates[0]:>10,.0f} {rates[1]:>16,.0f}")


if __name__ == "__main__":
    main()
