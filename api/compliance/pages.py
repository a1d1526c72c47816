"""Compliance summaries of this process, served again until anything they show changes.

The rule is api/kept.py's, with the alarm pages' signals (api/alarms/pages.py): a finding or a
pre-aggregate of them changes anywhere (`yiju_compliance`, migration 0031), the registry changes (a
device's uid or family), this process writes, the listener reconnects, or `MAX_AGE_S` passes.

What is kept is bounded apart from the alarm pages, because a summary is not paginated: it lists
every failing device of the community (1.6 MB for 7,000 failing smoke alarms), and a caller may ask
any window. So only the default window — the last 30 days until now, what every console asks for —
is kept, one entry per community, at most `MAX_SUMMARIES` of them and none larger than
`MAX_SUMMARY_BYTES`; a window the caller chose is computed on every request. Nothing a caller
varies can push the duty room's kept alarm board out, or grow this past its bounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from api.alarms.pages import MAX_AGE_S
from api.kept import Kept

MAX_SUMMARIES = 64  # communities whose default summary is kept; beyond it the oldest goes
# larger summaries (thousands of failing devices) are computed on every request: bounds the memory
# kept to MAX_SUMMARIES x this
MAX_SUMMARY_BYTES = 256 * 1024


class ComplianceSummaries(Kept[int, bytes]):
    """Encoded default-window summaries by community id (served only to callers who see it)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_age_s=MAX_AGE_S, max_entries=MAX_SUMMARIES, clock=clock)

    def put(self, key: int, generation: int, value: bytes, started: float) -> None:
        if len(value) <= MAX_SUMMARY_BYTES:
            super().put(key, generation, value, started)
