"""The timer heap: each device's next due time on the engine clock, so a tick costs the due only.

Contract:
- `offer(device_id, due)` keeps the earlier of `due` and the device's live entry (`math.inf`: no
  timer); a later due time leaves the live entry, which then fires early and is re-offered after
  the tick with the time the rule core computes then (`engine.next_due`): early is harmless, late
  never happens.
- `pop_due(now)` removes and yields the devices whose live entry is due at `now`; superseded
  (stale) heap entries are skipped.
- Owned by the worker thread: not thread-safe.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator


class TimerHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []  # (engine time due, device id)
        self._queued: dict[int, float] = {}  # device id → its live heap entry

    def offer(self, device_id: int, due: float) -> None:
        if due == math.inf:
            return
        queued = self._queued.get(device_id)
        if queued is None or due < queued:
            self._queued[device_id] = due
            heapq.heappush(self._heap, (due, device_id))

    def pop_due(self, now: float) -> Iterator[int]:
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, device_id = heapq.heappop(heap)
            if self._queued.get(device_id) != due:
                continue  # stale: superseded by an earlier entry
            del self._queued[device_id]
            yield device_id

    def __len__(self) -> int:
        return len(self._queued)
