"""Yiju (宜居): the composition root — settings, the CLI and the wiring of the other packages.

Nothing here runs at import time; `yiju.cli.main` builds the settings once and hands them down.
"""

__version__ = "0.1.0"
