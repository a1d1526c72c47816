"""Encoded alarm pages (lists and details) of this process, served again until anything that could
change them happens (compliance summaries are kept by the same rule: api/compliance/pages.py).

Why: the alarm board is the duty room's most frequent request (every console refreshes it) and its
page of 50 alarms with their devices and places was the mix's costliest read (bench/api.py); between
two alarm changes every console gets the same bytes; so does an alarm's detail (the alarm with its
history) that several consoles open. A page is kept under the key of its whole query — the caller's
community scope included, so a page is only ever served to callers with the same scope — and under
the cache's generation when its query started.

When a page stops being served (the rule of api/kept.py, shared with the callers kept):
- a compliance finding, or a pre-aggregate of them, changes anywhere (a compliance summary's inputs;
  migration 0031 notifies `yiju_compliance`); every notification below drops every kept value,
  alarm pages and summaries alike (simpler than telling them apart, and these changes are rare);
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

import time
from collections.abc import Callable, Hashable

from api.kept import Kept

# How long a page may be served without a notification: bounds how long a place renamed outside this
# process (no notification) shows its old name. Not a safety setting; well under a console's refresh.
MAX_AGE_S = 5.0
MAX_PAGES = 512  # distinct queries kept (scopes x filters x pages, details); beyond it the oldest goes


class AlarmPages(Kept[Hashable, bytes]):
    """Encoded pages by their whole query (the caller's scope included)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_age_s=MAX_AGE_S, max_entries=MAX_PAGES, clock=clock)
