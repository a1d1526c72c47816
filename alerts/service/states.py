"""The rule states in memory and what of them is not written yet (the write-behind's bookkeeping).

Contract:
- `state(device_id)` is the device's `DeviceState`, created empty on first use; the rule core
  updates it in place.
- A device is `dirty` once its state changed and is not yet stored; `tainted` once its state is
  ahead of outputs that could not be written (stopping with the database down): a tainted state is
  never stored and the checkpoint no longer moves, so the next start replays those messages.
- `rx_mark` is the newest receipt time evaluated: where the next checkpoint goes (recovery.py).
- `dirty_rows()` are the JSON forms to write behind; `rows(devices)` those written with a batch's
  outputs (a written output and its state never disagree). Storing and the checkpoint are
  persistence.py's.
- Owned by the worker thread (and by `stop` after the worker has ended): not thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from alerts.core.model import DeviceState


class RuleStates:
    def __init__(self) -> None:
        self._states: dict[int, DeviceState] = {}
        self.dirty: set[int] = set()
        self.tainted: set[int] = set()  # in-memory state ahead of outputs that could not be written
        self.rx_mark: datetime | None = None  # newest receipt time evaluated (the next checkpoint)

    def load(self, stored: dict[int, dict[str, Any]]) -> list[int]:
        """Take the stored states (at start); returns their device ids."""
        for device_id, doc in stored.items():
            self._states[device_id] = DeviceState.from_json(doc)
        return list(stored)

    def get(self, device_id: int) -> DeviceState | None:
        return self._states.get(device_id)

    def state(self, device_id: int) -> DeviceState:
        st = self._states.get(device_id)
        if st is None:
            st = self._states[device_id] = DeviceState()
        return st

    def received(self, received_at: datetime) -> None:
        if self.rx_mark is None or received_at > self.rx_mark:
            self.rx_mark = received_at

    def dirty_rows(self) -> list[tuple[int, dict[str, Any]]]:
        return [
            (d, self._states[d].to_json()) for d in self.dirty if d in self._states and d not in self.tainted
        ]

    def rows(self, devices: Iterable[int]) -> list[tuple[int, dict[str, Any]]]:
        return [(d, self._states[d].to_json()) for d in devices if d in self._states]
