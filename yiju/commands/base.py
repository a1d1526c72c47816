"""Types shared by the command modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yiju.settings import Settings

# "Settings" as a string: importing the settings (pydantic) is left to the command that runs
Handler = Callable[[argparse.Namespace, "Settings"], int]

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction
