"""A bound on password hashes computed at once (issue 10 §4).

scrypt costs ~32 MiB and 50-100 ms of CPU per login, and an unauthenticated caller can ask for as
many as it likes: 16 concurrent wrong logins pushed a normal request from 19 ms to 5.3 s. Logins
take a slot here (waiting at most `wait_s`, else 429); the rest of the API keeps its CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import too_many


class HashGate:
    def __init__(self, slots: int, wait_s: float) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0  # most slots ever used at once (observability and tests)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_s):
            raise too_many("too many logins at once; retry in a moment", 1)
        with self._lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._slots.release()
