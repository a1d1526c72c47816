"""The one module that talks to nats-py (scale-out mode, docs/scale-out.md).

nats-py is asyncio; Yiju's ingest and engine are threads. `JetStreamLink` owns an event loop on a
thread of its own (started by `start`, stopped by `stop`) and offers blocking calls with timeouts to
the other threads. Every nats-py exception is translated here: the rest of Yiju sees
`MessagingUnavailable` (the cluster is away or did not answer in time), `ConfigurationError`, plain
return values for an expected outcome (a lease that someone else holds), and the frozen types below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from yiju.errors import ConfigurationError, MessagingUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# nats-py raises these for a cluster that is away, electing a leader, or slow
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.Error,  # TimeoutError, NoServersError, ConnectionClosedError, NoRespondersError, …
    nats.js.errors.Error,  # APIError (ServiceUnavailable: no leader yet), NoStreamResponseError, …
    asyncio.TimeoutError,
    OSError,
)
MSG_ID = "Nats-Msg-Id"  # JetStream's duplicate detection header


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The ingest stream: `{prefix}.in.<community>.<device>` is stored as
    `{prefix}.p.<partition>.<community>.<device>` by the stream's subject transform
    (`partition(P, community)`, docs/scale-out.md)."""

    name: str
    source_subject: str  # e.g. yiju.in.*.*
    transformed: str  # e.g. yiju.p.{{partition(8,1)}}.{{wildcard(1)}}.{{wildcard(2)}}
    replicas: int
    duplicate_window_s: float
    max_age_s: float
    max_bytes: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str]
    order_key: str  # messages with one key are published one after the other, in order


@dataclass(frozen=True, slots=True)
class Incoming:
    subject: str
    payload: bytes
    headers: dict[str, str]
    stream_seq: int
    consumer_seq: int  # 1, 2, 3, … per consumer: a gap means a delivery this side never saw
    delivered: int  # 1 on first delivery


@dataclass(frozen=True, slots=True)
class ConsumerState:
    ack_floor: int  # stream sequence up to which everything is acknowledged
    ack_pending: int
    pending: int  # not yet delivered


@dataclass
class LinkStats:
    published: int = 0
    duplicates: int = 0  # publishes JetStream recognised by Nats-Msg-Id (already stored)
    publish_failures: int = 0
    consumer_retries: int = 0  # consumer (re)creation attempts that timed out or found no leader


def parse_servers(urls: str) -> tuple[list[str], str | None, str | None, bool]:
    """`nats://[user:password@]host:port,nats://host2:port` → (servers, user, password, tls).

    One comma-separated list: the client fails over between them (and learns the rest of the
    cluster from the first it reaches). tls:// turns TLS on."""
    servers: list[str] = []
    user = password = None
    tls = False
    for raw in (u.strip() for u in urls.split(",") if u.strip()):
        parts = urlsplit(raw)
        if parts.scheme not in {"nats", "tls"} or not parts.hostname:
            raise ConfigurationError(f"not a NATS URL: {raw!r} (expected nats://[user:password@]host:port)")
        tls = tls or parts.scheme == "tls"
        if parts.username:
            user, password = unquote(parts.username), unquote(parts.password or "")
        servers.append(f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}")
    if not servers:
        raise ConfigurationError("no NATS server given")
    return servers, user, password, tls


class JetStreamLink:
    """One NATS connection with JetStream, on an event loop owned here."""

    def __init__(
        self,
        urls: str,
        *,
        name: str,
        request_timeout_s: float = 5.0,
        ca_file: Path | None = None,
        credentials_file: Path | None = None,
    ) -> None:
        self.servers, self._user, self._password, self._tls = parse_servers(urls)
        self.name = name
        self.request_timeout_s = request_timeout_s
        self._ca_file = ca_file
        self._creds = credentials_file
        self.stats = LinkStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nats-{name}", daemon=True)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.connected = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (the client then reconnects by itself, to any server of the cluster)."""
        if not self._thread.is_alive():
            self._thread.start()
        self._call(self._connect, timeout_s + 1.0)

    async def _connect(self) -> None:
        tls: ssl.SSLContext | None = None
        if self._tls or self._ca_file is not None:
            try:
                tls = ssl.create_default_context(cafile=None if self._ca_file is None else str(self._ca_file))
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot read the NATS CA file {self._ca_file}: {exc}") from exc
            tls.minimum_version = ssl.TLSVersion.TLSv1_2

        async def disconnected() -> None:
            self.connected.clear()
            log.warning("NATS link %s: disconnected; reconnecting", self.name)

        async def reconnected() -> None:
            self.connected.set()
            log.info("NATS link %s: reconnected", self.name)

        async def error(exc: Exception) -> None:
            log.debug("NATS link %s: %s", self.name, exc)

        self._nc = await nats.connect(
            servers=self.servers,
            name=self.name,
            user=self._user,
            password=self._password,
            tls=tls,
            user_credentials=None if self._creds is None else str(self._creds),
            connect_timeout=2,
            max_reconnect_attempts=-1,  # forever: the owner decides when to give up
            reconnect_time_wait=0.25,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
            allow_reconnect=True,
        )
        self._js = self._nc.jetstream(timeout=self.request_timeout_s)
        self.connected.set()

    def stop(self) -> None:
        if self._thread.is_alive():
            try:
                self._call(self._close, 8.0)
            except MessagingUnavailable as exc:
                log.warning("NATS link %s: close: %s", self.name, exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._loop.is_running():
            self._loop.close()

    async def _close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(*_UNAVAILABLE):
                await asyncio.wait_for(self._nc.drain(), 3.0)
            if not self._nc.is_closed:
                await self._nc.close()
        self.connected.clear()
        # whatever nats-py left running (read loop, pinger, drains): ended here, not at interpreter exit
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout_s: float) -> T:
        """Run `fn()` on the loop and wait; nats-py's exceptions become ours."""
        future = asyncio.run_coroutine_threadsafe(fn(), self._loop)
        try:
            return future.result(timeout_s)
        except nats.js.errors.BadRequestError as exc:  # not a passing fault: retrying cannot help
            raise ConfigurationError(f"JetStream refused ({self.name}): {exc.description}") from exc
        except TimeoutError as exc:
            future.cancel()
            raise MessagingUnavailable(f"NATS ({self.name}): no answer within {timeout_s:.1f} s") from exc
        except _UNAVAILABLE as exc:
            raise MessagingUnavailable(f"NATS ({self.name}): {type(exc).__name__}: {exc}") from exc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise MessagingUnavailable(f"NATS link {self.name} is not connected")
        return self._js

    # ------------------------------------------------------------------ streams

    def ensure_stream(self, spec: StreamSpec) -> None:
        """Create the stream, or update it to `spec` (idempotent; every bridge and worker calls it)."""
        config = api.StreamConfig(
            name=spec.name,
            subjects=[spec.source_subject],
            subject_transform=api.SubjectTransform(src=spec.source_subject, dest=spec.transformed),
            num_replicas=spec.replicas,
            duplicate_window=spec.duplicate_window_s,
            max_age=spec.max_age_s,
            max_bytes=spec.max_bytes,
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            discard=api.DiscardPolicy.NEW,  # full: refuse new messages (the bridge retries), never drop old
        )

        async def run() -> None:
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != 10058:  # stream name already in use with a different configuration
                    raise
                await self.js.update_stream(config)

        self._retrying(run, "stream creation")

    def stream_leader(self, stream: str) -> str | None:
        async def run() -> str | None:
            info = await self.js.stream_info(stream)
            return None if info.cluster is None else info.cluster.leader

        return self._call(run, self.request_timeout_s + 1)

    def stream_state(self, stream: str) -> tuple[int, int] | None:
        """(messages, replicas) of `stream`; None if there is no such stream."""

        async def run() -> tuple[int, int] | None:
            try:
                info = await self.js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return None
            return info.state.messages, info.config.num_replicas or 1

        return self._call(run, self.request_timeout_s + 1)

    def stream_messages(self, stream: str) -> int:
        async def run() -> int:
            return (await self.js.stream_info(stream)).state.messages

        return self._call(run, self.request_timeout_s + 1)

    def _retrying(self, fn: Callable[[], Awaitable[T]], what: str, deadline_s: float = 60.0) -> T:
        """Retry `fn` while the cluster has no leader or times out (an election takes seconds)."""
        deadline = time.monotonic() + deadline_s
        backoff = 0.1
        while True:

            async def once() -> T:
                return await fn()

            try:
                return self._call(once, self.request_timeout_s + 1)
            except MessagingUnavailable as exc:
                self.stats.consumer_retries += 1
                if time.monotonic() + backoff > deadline:
                    raise MessagingUnavailable(f"{what} failed for {deadline_s:.0f} s: {exc}") from exc
                log.info("NATS %s: %s; retrying in %.1f s", what, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # ------------------------------------------------------------------ publishing

    def publish(self, items: list[Outgoing], timeout_s: float) -> list[bool]:
        """Publish and await JetStream's acknowledgement of each item. Items with one `order_key` go
        one after the other (the next only once the previous is stored), different keys at once; after
        a failure the rest of that key is not sent. Returns, per item, whether JetStream confirmed it
        (stored now, or a duplicate of one stored within the duplicate window)."""

        async def run() -> list[bool]:
            ok = [False] * len(items)
            chains: dict[str, list[int]] = {}
            for i, item in enumerate(items):
                chains.setdefault(item.order_key, []).append(i)
            js = self.js

            async def chain(indices: list[int]) -> None:
                for i in indices:
                    item = items[i]
                    headers = {**item.headers, MSG_ID: item.msg_id}
                    try:
                        ack = await js.publish(item.subject, item.payload, timeout=timeout_s, headers=headers)
                    except _UNAVAILABLE as exc:
                        self.stats.publish_failures += 1
                        log.debug("publish of %s failed: %s", item.msg_id, exc)
                        return
                    ok[i] = True
                    if ack.duplicate:
                        self.stats.duplicates += 1
                    else:
                        self.stats.published += 1

            await asyncio.gather(*(chain(c) for c in chains.values()))
            return ok

        return self._call(run, timeout_s * max(1, len(items)) + 5.0)

    # ------------------------------------------------------------------ consuming

    def consumer_state(self, stream: str, durable: str) -> ConsumerState | None:
        async def run() -> ConsumerState | None:
            try:
                info = await self.js.consumer_info(stream, durable)
            except nats.js.errors.NotFoundError:
                return None
            return ConsumerState(
                info.ack_floor.stream_seq or 0, info.num_ack_pending or 0, info.num_pending or 0
            )

        return self._retrying(run, f"consumer info {durable}")

    def open_consumer(
        self,
        stream: str,
        durable: str,
        filter_subject: str,
        *,
        ack_wait_s: float,
        max_ack_pending: int,
        replicas: int,
        deadline_s: float = 60.0,
    ) -> PullFeed:
        """(Re)create the durable pull consumer `durable` so that it delivers, in stream order, every
        message after its acknowledgement floor, and bind to it.

        Recreated on every takeover: a message the previous holder fetched but never acknowledged is
        then delivered again *before* newer ones (JetStream would otherwise redeliver it only after
        ack_wait, behind them: per-device order would break). Creation during a leader election may
        time out; it is retried until `deadline_s`."""

        async def run() -> PullFeed:
            js = self.js
            floor = 0
            try:
                info = await js.consumer_info(stream, durable)
                floor = info.ack_floor.stream_seq or 0
                await js.delete_consumer(stream, durable)
            except nats.js.errors.NotFoundError:
                pass
            start = api.DeliverPolicy.BY_START_SEQUENCE if floor else api.DeliverPolicy.ALL
            config = api.ConsumerConfig(
                durable_name=durable,
                name=durable,
                filter_subject=filter_subject,
                deliver_policy=start,
                opt_start_seq=floor + 1 if floor else None,
                ack_policy=api.AckPolicy.ALL,
                ack_wait=ack_wait_s,
                max_ack_pending=max_ack_pending,
                num_replicas=replicas,
                max_waiting=16,
            )
            await js.add_consumer(stream, config)
            sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
            return PullFeed(self, sub, durable)

        return self._retrying(run, f"consumer creation {durable}", deadline_s)

    # ------------------------------------------------------------------ key-value (leases)

    def leases(self, bucket: str, *, ttl_s: float, replicas: int) -> Leases:
        async def run() -> Leases:
            try:
                kv = await self.js.key_value(bucket)
            except nats.js.errors.BucketNotFoundError:
                kv = await self.js.create_key_value(
                    api.KeyValueConfig(bucket=bucket, ttl=ttl_s, history=1, replicas=replicas)
                )
            return Leases(self, kv)

        return self._retrying(run, f"lease bucket {bucket}")


class PullFeed:
    """A bound pull subscription: `fetch` on any thread, `ack_through` acknowledges a message and
    every one before it (AckPolicy.ALL)."""

    def __init__(self, link: JetStreamLink, sub: JetStreamContext.PullSubscription, durable: str) -> None:
        self._link = link
        self._sub = sub
        self.durable = durable
        self._msgs: dict[int, Msg] = {}

    def fetch(self, batch: int, timeout_s: float) -> list[Incoming]:
        async def run() -> list[Incoming]:
            try:
                msgs = await self._sub.fetch(batch, timeout=timeout_s)
            except nats.errors.TimeoutError:
                return []
            out = []
            for m in msgs:
                md = m.metadata
                seq = md.sequence.stream
                self._msgs[seq] = m
                headers = dict(m.headers or {})
                out.append(Incoming(m.subject, m.data, headers, seq, md.sequence.consumer, md.num_delivered))
            return out

        return self._link._call(run, timeout_s + self._link.request_timeout_s + 1)

    def ack_through(self, stream_seq: int) -> None:
        """Acknowledge the message `stream_seq` and, by the consumer's AckPolicy.ALL, all before it."""

        # the delivered messages are kept and dropped on the link's event loop thread only: `fetch`
        # adds to them there, and iterating them on the caller's thread meanwhile could fail
        async def run() -> None:
            msg = self._msgs.get(stream_seq)
            if msg is None:
                return
            await msg.ack()
            for seq in [s for s in self._msgs if s <= stream_seq]:
                del self._msgs[seq]

        self._link._call(run, self._link.request_timeout_s + 1)

    def close(self) -> None:
        async def run() -> None:
            await self._sub.unsubscribe()

        try:
            self._link._call(run, 3.0)
        except MessagingUnavailable as exc:
            log.debug("unsubscribe %s: %s", self.durable, exc)


class Leases:
    """Leases in a JetStream KV bucket whose entries expire after the bucket's TTL: `acquire` creates
    the key only if it is absent (or expired), `renew` rewrites it only if it still is at the
    revision we wrote (compare-and-swap). Both return the new revision, or None if someone else
    holds it."""

    def __init__(self, link: JetStreamLink, kv: KeyValue) -> None:
        self._link = link
        self._kv = kv

    def acquire(self, key: str, holder: str) -> int | None:
        async def run() -> int | None:
            try:
                return await self._kv.create(key, holder.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

        return self._link._call(run, self._link.request_timeout_s + 1)

    def renew(self, key: str, holder: str, revision: int) -> int | None:
        async def run() -> int | None:
            try:
                return await self._kv.update(key, holder.encode(), last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return None

        return self._link._call(run, self._link.request_timeout_s + 1)

    def release(self, key: str, revision: int) -> None:
        async def run() -> None:
            try:
                await self._kv.delete(key, last=revision)
            except nats.js.errors.BadRequestError as exc:  # nats-py raises it plain for delete
                if exc.err_code not in (10071, 10164):  # wrong last sequence: no longer ours
                    raise

        self._link._call(run, self._link.request_timeout_s + 1)

    def holders(self) -> dict[str, str]:
        async def run() -> dict[str, str]:
            try:
                keys = await self._kv.keys()
            except nats.js.errors.NoKeysError:
                return {}
            out: dict[str, str] = {}
            for key in keys:
                try:
                    entry = await self._kv.get(key)
                except nats.js.errors.KeyNotFoundError:
                    continue
                out[key] = (entry.value or b"").decode()
            return out

        return self._link._call(run, self._link.request_timeout_s * 2 + 1)
