"""Values this process keeps between requests and serves again until anything that could change them
is notified: the shared rule of the alarm pages (api/alarms/pages.py) and the callers (api/deps.py).

A value is kept under its key and under the generation current when the read that produced it
started. It stops being served when:
- `changed()` is called: by the notification listener (api/alarms/stream.py `StreamHub`) when a
  change is notified after its commit, and on every (re)connect of the listener (what was committed
  while it was away was not heard), and by this process's own writes before their response is sent
  (api/middleware.py `AfterWrites`);
- while a write of this process is in flight (`write_begins` … `write_ends`): between its commit and
  its response a read could otherwise be served, or keep, the state from before the commit, and the
  caller the write answers next may be the one that reads it;
- `max_age_s` passes since its read started (bounds what changes without a notification);
- `fresh(value)` says no (a token past its expiry, api/deps.py).
While the listener is not connected (`listening()` false, the case until the app's lifespan wires it)
nothing is kept or served. A value read before a change but put after it is not kept (its generation
is no longer the current one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    """Thread-safe: the listener calls `changed` on the event loop, requests `get`/`put` on the loop
    or in threads (a `get` takes no lock: one dict lookup, atomic under the GIL)."""

    def __init__(
        self, *, max_age_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.listening: Callable[[], bool] = lambda: False
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._writing = 0  # writes of this process begun and not yet answered
        self._entries: dict[K, tuple[int, float, V]] = {}

    def changed(self) -> None:
        """Something a kept value may show changed (or may have: a reconnect); none is served again."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def write_begins(self) -> None:
        """A write request of this process starts: nothing is served or kept until it is answered.
        (A long write, the CSV import, turns keeping off for its duration: slower, never stale.)"""
        with self._lock:
            self._writing += 1

    def write_ends(self) -> None:
        """The write has committed (or failed): what was kept before it is not served again."""
        with self._lock:
            self._writing -= 1
            self._generation += 1
            self._entries.clear()

    def generation(self) -> int:
        """Read before the value's read starts; pass to `put`."""
        return self._generation

    def fresh(self, value: V) -> bool:
        """Whether `value` may still be served apart from its age (a subclass's own rule)."""
        return True

    def get(self, key: K) -> V | None:
        if not self.listening() or self._writing:
            return None
        entry = self._entries.get(key)
        if (
            entry is None
            or entry[0] != self._generation
            or self._clock() - entry[1] > self.max_age_s
            or not self.fresh(entry[2])
        ):
            return None
        return entry[2]

    def put(self, key: K, generation: int, value: V, started: float) -> None:
        """Keep `value` of `key`, read from `started` (`clock()`) on in `generation`."""
        if not self.listening():
            return
        with self._lock:
            if self._writing or generation != self._generation:
                return  # something changed (or may be changing) while the read ran
            self._entries.pop(key, None)
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # the oldest kept (dicts keep insertion order)
            self._entries[key] = (generation, started, value)

    def clock(self) -> float:
        return self._clock()

    def __len__(self) -> int:
        """Values kept (served or not)."""
        return len(self._entries)
