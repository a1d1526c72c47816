"""Encoded alarm pages (lists and details) of this process, served again until anything that could
change them happens.

Why: the alarm board is the duty room's most frequent request (every console refreshes it) and its
page of 50 alarms with their devices and places was the mix's costliest read (bench/api.py); between
two alarm changes every console gets the same bytes; so does an alarm's detail (the alarm with its
history) that several consoles open. A page is kept under the key of its whole query — the caller's
community scope included, so a page is only ever served to callers with the same scope — and under
the cache's generation when its query started.

When a page stops being served (the generation moves on):
- an alarm changes anywhere: every change writes a transition with `pg_notify('yiju_alarm_events')`
  (storage/alarms.py), which the process's listener (api/alarms/stream.py `StreamHub`) receives after
  the commit; a registry change (device uid, community, family, enabled flag) notifies
  `yiju_registry` (storage/registry_events.py) the same way;
- this process commits any write request (api/deps.py): before its response is sent, so a caller
  that acknowledged an alarm never gets the page from before it;
- the listener (re)connects: what was committed while it was away was not heard. While it is not
  connected nothing is kept or served;
- `MAX_AGE_S` passes: a location or building renamed, or a user's display name changed, by another
  process notifies nobody.

A page read before a change but finished after it is not kept (its generation is no longer the
current one). What remains is the delay between another process's commit and its notification
reaching this process — the live stream's own delay (a few milliseconds on one machine).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

# How long a page may be served without a notification: bounds how long a place renamed outside this
# process (no notification) shows its old name. Not a safety setting; well under a console's refresh.
MAX_AGE_S = 5.0
MAX_PAGES = 512  # distinct queries kept (scopes x filters x pages, details); beyond it the oldest goes


class AlarmPages:
    """Thread-safe: the listener calls `changed` on the event loop, requests `get`/`put` in threads."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        # whether the listener is connected (set by the app's lifespan once it has one): until then,
        # and whenever it is not, nothing is kept or served
        self.listening: Callable[[], bool] = lambda: False
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self._pages: dict[Hashable, tuple[int, float, bytes]] = {}

    def changed(self) -> None:
        """Something a page may show changed (or may have: a reconnect); nothing kept is served again."""
        with self._lock:
            self._generation += 1
            self._pages.clear()

    def generation(self) -> int:
        """Read before the page's query starts; pass to `put`."""
        return self._generation

    def get(self, key: Hashable) -> bytes | None:
        if not self.listening():
            return None
        page = self._pages.get(key)
        if page is None or page[0] != self._generation or self._clock() - page[1] > MAX_AGE_S:
            return None
        return page[2]

    def put(self, key: Hashable, generation: int, body: bytes, started: float) -> None:
        """Keep `body`, the page of `key` whose query started at `started` (`clock`) in `generation`."""
        if not self.listening():
            return
        with self._lock:
            if generation != self._generation:
                return  # something changed while the query ran: the page may show the state before
            self._pages.pop(key, None)
            if len(self._pages) >= MAX_PAGES:
                del self._pages[next(iter(self._pages))]  # the oldest kept (dicts keep insertion order)
            self._pages[key] = (generation, started, body)

    def clock(self) -> float:
        return self._clock()

    def __len__(self) -> int:
        """Pages kept (served or not)."""
        return len(self._pages)
