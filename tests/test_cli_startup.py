"""`yiju --help` starts fast because the parser imports no heavy library (issue 14 item 7).

The time itself is a benchmark (bench/cli_startup.py, figures in bench/RESULTS.md); what a test can
hold without timing anything is the cause: building the parser imports none of the libraries that
made start-up slow, and the commands still work once they run.
"""

from __future__ import annotations

import json
import subprocess
import sys

from storage.users import Role
from yiju.commands.api import ROLE_NAMES

# each of these took tens to hundreds of milliseconds to import (python -X importtime)
HEAVY = ("pydantic", "psycopg", "fastapi", "starlette", "uvicorn", "paho", "prometheus_client")

_PROBE = """
import json, sys
import yiju.cli
yiju.cli.build_parser().format_help()
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
"""


def test_building_the_parser_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out))
    assert "yiju" in loaded  # the probe really imported the CLI
    assert sorted(loaded & set(HEAVY)) == []


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yiju.cli", "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    commands = ("db", "doctor", "run", "demo", "ingest", "api", "users", "compliance", "devices", "simulate")
    for command in commands:
        assert command in result.stdout


def test_role_choices_match_the_roles() -> None:
    assert tuple(r.value for r in Role) == ROLE_NAMES
