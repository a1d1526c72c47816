"""The `yiju` command. Builds the settings once and hands them to the command that does the work.

Start-up is kept short (`yiju --help` ≤ 0.5 s, bench/cli_startup.py): this module and the command
modules import only the standard library and light modules at the top; settings (pydantic), the
database, the broker and the web stack are imported when a command runs. tests/test_cli_startup.py
keeps it so.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from yiju.commands import api, compliance, core, devices, grafana, ingest, linkage, report, scale, simulate
from yiju.commands.base import Handler
from yiju.errors import YijuError

# Each feature's command group; add one line per new module.
COMMAND_GROUPS = (core, api, ingest, scale, devices, compliance, report, simulate, grafana, linkage)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yiju",
        description="Yiju (宜居) — monitoring backend for smart residential communities.",
        epilog="Settings come from YIJU_* environment variables; see README.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    from yiju.settings import Settings, unknown_environment

    unknown = unknown_environment(os.environ)
    if unknown:
        print(f"error: unknown setting(s) {', '.join(unknown)}; see README.md for the names", file=sys.stderr)
        return 2
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except YijuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
