"""Playing a stream onto the broker: paced by a simulated clock, or as fast as possible (load mode).

`play` owns no thread: it waits for each message's wall instant while pumping the publisher (acks,
keep-alives), reports progress through a callback, and stops early when `stop` is set. Simulated
time is never allowed to run ahead of real time by more than `max_lead_s`: ingest refuses device
times in the future (5 min by default), so an accelerated run should start in the past, and once
it has caught up with the present it continues at real time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from devices.mqtt_wire import encode_publish
from simulators import behaviour
from simulators.compound import Size, generate_fleet
from simulators.mqtt_publisher import DevicePublisher, LoadPublisher, Prepared
from simulators.stream import SimClock, SimMessage

MAX_LEAD_S = 60.0  # simulated time may lead real time by this much (ingest allows 5 min of skew)
PROGRESS_EVERY_S = 1.0


@dataclass(slots=True)
class Progress:
    messages: int = 0
    sim_now: datetime | None = None
    wall_s: float = 0.0
    by_channel: Counter[str] = field(default_factory=Counter)
    caught_up: bool = False  # simulated time reached real time; now playing at real time

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


def play(
    messages: Iterable[SimMessage],
    publisher: DevicePublisher | LoadPublisher,
    clock: SimClock,
    *,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    max_lead_s: float = MAX_LEAD_S,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Progress:
    p = Progress()
    last_report = time.monotonic()
    for msg in messages:
        target = clock.wall_at(msg.at)
        while True:
            wall = time.monotonic()
            lead = (msg.at - now()).total_seconds() - max_lead_s
            wait = max(target - wall if math.isfinite(target) else 0.0, lead)
            if lead > 0:
                p.caught_up = True
            if wait <= 0 or (stop is not None and stop.is_set()):
                break
            publisher.pump(min(wait, 0.2))
            if progress and wall - last_report >= PROGRESS_EVERY_S:
                last_report = wall
                p.wall_s = wall - clock.wall0
                progress(p)
        if stop is not None and stop.is_set():
            break
        publisher.publish(msg)
        p.messages += 1
        p.by_channel[msg.channel.value] += 1
        p.sim_now = msg.at
        wall = time.monotonic()
        if wall - last_report >= PROGRESS_EVERY_S:
            publisher.pump(0)
            last_report = wall
            p.wall_s = wall - clock.wall0
            if progress:
                progress(p)
    p.wall_s = time.monotonic() - clock.wall0
    return p


# --------------------------------------------------------------------------------------------------
# Load mode: pre-serialised background traffic, one share per worker process


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What each load worker publishes: the background of its communities over a simulated window.

    Worker i of n plays communities i, i+n, i+2n, … of a fleet of `communities` compounds, so device
    ids (and each device's order) stay with one worker.
    """

    size: Size
    communities: int
    seed: int
    start: datetime
    window_s: float
    workers: int
    prefix: str
    limit: int | None = None  # at most this many messages per worker


def prepare_share(plan: LoadPlan, index: int) -> Prepared:
    """Worker `index`'s messages, encoded as MQTT PUBLISH packets (picklable entry point)."""
    fleet = generate_fleet(plan.size, plan.communities, plan.seed)
    compounds = fleet.compounds[index :: plan.workers]
    devices = [d for c in compounds for d in c.devices]
    end = plan.start + timedelta(seconds=plan.window_s)
    out: Prepared = []
    for m in _limited(behaviour.background(devices, plan.start, end, seed=plan.seed), plan.limit):
        head, tail = encode_publish(m.topic(plan.prefix), m.payload, retain=m.retain)
        out.append((m.device, head, tail))
    return out


def _limited(stream: Iterator[SimMessage], limit: int | None) -> Iterator[SimMessage]:
    for i, m in enumerate(stream):
        if limit is not None and i >= limit:
            return
        yield m
