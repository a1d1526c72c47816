"""The ingest benchmark's peers stay runnable (bench/ingest/compare.py, issue 18): without the network
and in well under a second, the pinned versions and package-lock.json agree, node_modules/ is
ignored, the Node-RED flow keeps a persistent QoS 1 session, and the peers' JavaScript parses."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_peers_are_runnable() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the benchmark's peers cannot run here")
    spec = importlib.util.spec_from_file_location("bench_ingest_compare", ROOT / "bench/ingest/compare.py")
    assert spec is not None
    assert spec.loader is not None
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    assert compare.smoke() == []
