"""Start-up of the `yiju` command: `yiju --help` against a bare interpreter and against importing
everything the CLI used to import at start (every command's modules), side by side in one run.

    .venv/bin/python bench/cli_startup.py [--runs 20]

Each figure is the median wall time of fresh processes (no warm interpreter), run interleaved so
all three see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YIJU = ROOT / ".venv" / "bin" / "yiju"

# what yiju.cli imported at start before the commands imported lazily (each command's modules)
EAGER = (
    "import yiju.settings, yiju.runtime, yiju.demo, yiju.doctor, storage.migrate, storage.timeseries, "
    "api.app, uvicorn, storage.users, storage.registry, storage.findings, devices.catalog, "
    "ingest.service, simulators.scenarios, simulators.behaviour, simulators.runner, "
    "simulators.mqtt_publisher"
)

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "yiju --help": [str(YIJU), "--help"],
    "eager imports (before)": [sys.executable, "-c", EAGER],
}


def _run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for cmd in CASES.values():
        _run(cmd)  # warm the page cache once
    for _ in range(args.runs):
        for name, cmd in CASES.items():
            times[name].append(_run(cmd))
    med = {name: statistics.median(v) for name, v in times.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}",
        "median_s": {name: round(v, 3) for name, v in med.items()},
        "max_s": {name: round(max(v), 3) for name, v in times.items()},
        "ratio_eager_over_help": round(med["eager imports (before)"] / med["yiju --help"], 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
