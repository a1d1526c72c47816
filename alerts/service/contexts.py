"""The context and threshold cache: what the rule core is told about each device and community.

Contract:
- `load(conn)` fills the cache from the registry at start (devices, their buildings and sites,
  community overrides); a device first seen later is loaded on its first message (`get`), so a
  device registered while the engine runs is evaluated without a restart.
- `refresh(...)` rebuilds it from a fresh read, every `context_refresh_s` (the worker's loop): edits
  to a device's building, location or rule parameters and to the overrides reach the rules.
- `add(row)` maps a registry row to its `DeviceContext`: rule parameters from the device's metadata
  (`DeviceParams.from_metadata`; a refused value is logged and the community's setting applies).
- `settings_for(community_id)` is the community's `AlertSettings` (defaults with its overrides).
- `building(building_id, community_id)` lists the devices of a building in that community (the
  fire linkage's members); `ref(ctx)` gives the `DeviceRef` ingest would have made (crash replay).
- Owned by the worker thread: not thread-safe.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from alerts.config import AlertSettings, DeviceParams
from alerts.core.model import DeviceContext
from devices.contract import DeviceRef, Family
from storage import rule_state
from storage.db import Connection
from yiju.errors import YijuError

log = logging.getLogger(__name__)
_UNSEEN = object()


class Contexts:
    def __init__(self, settings: AlertSettings) -> None:
        self._settings = settings
        self._ctx: dict[int, DeviceContext] = {}
        self._codes: dict[int, str] = {}  # community id → code (for command topics)
        self._by_building: dict[int, list[int]] = defaultdict(list)
        self._thresholds: dict[int, AlertSettings] = {}
        self._metadata: dict[int, Any] = {}  # as last read, to warn about refused parameters once
        self._refused: dict[int, Any] = {}  # community id → the override last refused (warned once)

    def load(self, contexts: list[rule_state.DeviceContextRow], overrides: dict[int, dict[str, Any]]) -> None:
        """At start: a community override the settings refuse stops the engine (ConfigurationError),
        before it evaluates anything with thresholds nobody chose."""
        for row in contexts:
            self.add(row)
        for community_id, override in overrides.items():
            self._thresholds[community_id] = self._settings.with_overrides(override)

    def refresh(
        self, contexts: list[rule_state.DeviceContextRow], overrides: dict[int, dict[str, Any]]
    ) -> list[int]:
        """Replace the cache with a fresh read of the registry; the devices whose contexts changed.

        Why whole: a move to another building must also leave the old building's member list, and an
        override removed must fall back to the defaults — a rebuild gets both right by construction.
        The new maps are built aside and swapped in at the end, so nothing is ever half-built. An
        override the settings refuse (an edit by hand) keeps that community on the thresholds it had,
        logged once per refused value; the other communities are not touched by it."""
        thresholds: dict[int, AlertSettings] = {}
        for community_id, override in overrides.items():
            try:
                thresholds[community_id] = self._settings.with_overrides(override)
                self._refused.pop(community_id, None)
            except YijuError as exc:
                kept = self._thresholds.get(community_id)
                if kept is not None:
                    thresholds[community_id] = kept
                if self._refused.get(community_id) != override:
                    self._refused[community_id] = override
                    log.error(
                        "community %d: alert overrides refused, %s: %s",
                        community_id,
                        "keeping its previous thresholds" if kept is not None else "using the defaults",
                        exc,
                    )
        fresh = Contexts(self._settings)
        for row in contexts:
            fresh.add(row, warn=self._metadata.get(row.device_id, _UNSEEN) != row.metadata)
        before = self._ctx
        self._ctx, self._codes, self._by_building = fresh._ctx, fresh._codes, fresh._by_building
        self._metadata, self._thresholds = fresh._metadata, thresholds
        return [device_id for device_id, ctx in self._ctx.items() if before.get(device_id) != ctx]

    def add(self, row: rule_state.DeviceContextRow, *, warn: bool = True) -> DeviceContext:
        params, problems = DeviceParams.from_metadata(row.metadata)
        self._metadata[row.device_id] = row.metadata
        if problems and warn:  # the rules fall back to the community's settings for these
            log.warning("device %s: rule parameters in metadata refused: %s", row.uid, "; ".join(problems))
        ctx = DeviceContext(
            device_id=row.device_id,
            uid=row.uid,
            community_id=row.community_id,
            family=Family(row.family),
            building_id=row.building_id,
            location_id=row.location_id,
            evacuation_route=row.evacuation_route,
            timezone=row.timezone,
            latitude=row.latitude,
            longitude=row.longitude,
            floors=params.floors or row.building_floors,
            rated_speed_mps=params.rated_speed_mps,
            held_open_s=params.held_open_s,
        )
        if row.device_id not in self._ctx and row.building_id is not None:
            self._by_building[row.building_id].append(row.device_id)
        self._ctx[row.device_id] = ctx
        self._codes[row.community_id] = row.community_code
        return ctx

    def cached(self, device_id: int) -> DeviceContext | None:
        return self._ctx.get(device_id)

    def get(self, device_id: int, conn: Connection | None) -> DeviceContext | None:
        """The device's context, loaded from the registry if it is not cached yet."""
        ctx = self._ctx.get(device_id)
        if ctx is None and conn is not None:
            with conn.transaction():
                rows = rule_state.load_contexts(conn, [device_id])
            if rows:
                ctx = self.add(rows[0])
        return ctx

    def settings_for(self, community_id: int) -> AlertSettings:
        return self._thresholds.get(community_id, self._settings)

    def code(self, community_id: int) -> str:
        return self._codes.get(community_id, "")

    def building(self, building_id: int, community_id: int) -> list[DeviceContext]:
        members = (self._ctx[device_id] for device_id in self._by_building.get(building_id, []))
        return [ctx for ctx in members if ctx.community_id == community_id]

    def ref(self, ctx: DeviceContext) -> DeviceRef:
        return DeviceRef(ctx.device_id, ctx.uid, self.code(ctx.community_id), ctx.community_id, ctx.family)
