"""Crash recovery: the stored messages received after the checkpoint are evaluated again on start.

Contract:
- The checkpoint (`alert_checkpoint`, row `ENGINE_NAME`) is the newest receipt time whose effects are
  stored: it moves with each full state flush (persistence.py). On the very first start there is no
  checkpoint: it is set to now and nothing is replayed.
- `replay(...)` reads the stored messages received since checkpoint − `replay_slack_s` (device time
  back to `replay_ts_lookback_s`, storage/replay.py) and passes them, decoded as ingest accepted
  them, through the same evaluation and persistence path as live messages, in batches of
  `BATCH_MAX`. A message whose receipt is not after its device's stored `last_rx` is skipped (the
  state written with its outputs already includes it); so is a device no longer registered or a
  payload that no longer decodes (logged). A database error restarts the replay after a back-off;
  a stop ends it. `count(n)` is told how many were replayed, before their states are flushed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from alerts.config import AlertSettings
from alerts.service.contexts import Contexts
from alerts.service.persistence import Persistence
from alerts.service.sink import BATCH_MAX, Item
from alerts.service.states import RuleStates
from devices.catalog import accept
from devices.contract import Channel, Decoded
from storage import replay as stored
from storage import rule_state
from storage.db import connect, translated
from yiju.errors import YijuError

log = logging.getLogger(__name__)


def replay(
    store: Persistence,
    *,
    settings: AlertSettings,
    contexts: Contexts,
    states: RuleStates,
    stop: threading.Event,
    process: Callable[[list[Item]], None],
    count: Callable[[int], None],
) -> None:
    """Evaluate again the stored messages received after the checkpoint (what a crash lost)."""
    backoff = 0.2
    while not stop.is_set():
        try:
            with translated():
                _replay_once(store, settings, contexts=contexts, states=states, process=process, count=count)
            return
        except YijuError as exc:
            log.warning("alert engine replay failed (%s); retrying", exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, settings.persist_retry_max_s)
            store.reconnect()


def _replay_once(
    store: Persistence,
    s: AlertSettings,
    *,
    contexts: Contexts,
    states: RuleStates,
    process: Callable[[list[Item]], None],
    count: Callable[[int], None],
) -> None:
    conn = store.conn
    assert conn is not None
    with conn.transaction():
        since = rule_state.load_checkpoint(conn, store.name)
        if since is None:  # first start: everything received from now on is ours
            started = datetime.now(UTC)
            rule_state.save_checkpoint(conn, store.name, started)
            return
    start = since - timedelta(seconds=s.replay_slack_s)
    reader = connect(store.url, autocommit=True)
    n = 0
    try:
        batch: list[Item] = []
        for row in stored.received_since(
            reader, start, ts_lookback=timedelta(seconds=s.replay_ts_lookback_s)
        ):
            msg = _stored_to_decoded(row, contexts, states, store)
            if msg is None:
                continue
            n += 1
            batch.append(msg)
            if len(batch) >= BATCH_MAX:
                process(batch)
                batch = []
        if batch:
            process(batch)
    finally:
        reader.close()
    count(n)
    if n:
        log.info("alert engine replayed %d stored message(s) received since %s", n, start.isoformat())
        store.flush_states()


def _stored_to_decoded(
    row: stored.StoredMessage, contexts: Contexts, states: RuleStates, store: Persistence
) -> Decoded | None:
    ctx = contexts.get(row.device_id, store.conn)
    if ctx is None:
        return None
    st = states.get(row.device_id)
    if st is not None and row.received_at.timestamp() <= st.last_rx:
        return None  # its state already includes it (written with its outputs)
    channel = {
        "telemetry": Channel.TELEMETRY,
        "status": Channel.STATUS,
        "cmd_ack": Channel.COMMAND_ACK,
    }.get(row.kind, Channel.EVENT)
    try:
        body: Any = accept(ctx.family, channel, row.payload)  # as ingest accepted it
    except (ValidationError, ValueError) as exc:
        log.warning("replay: stored %s of device %d does not decode: %s", row.kind, row.device_id, exc)
        return None
    return Decoded(contexts.ref(ctx), channel, row.ts, row.seq, row.received_at, body, row.payload)
