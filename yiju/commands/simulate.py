"""`yiju simulate`: play simulated compounds (and scenarios) onto the MQTT broker.

The composition root for the simulator: it generates the fleet, registers it in the database when
asked (`--register`, through storage.registry: the simulator itself never touches storage), builds
the scenarios, and plays everything paced by a simulated clock — or, with `--load`, as fast as the
broker takes it over a few multiplexed connections (and processes).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.compound import Fleet, Size, generate_fleet
from yiju.commands.base import Subparsers
from yiju.errors import ConfigurationError, InputError

if TYPE_CHECKING:
    from simulators import scenarios
    from simulators.compound import SimDevice
    from simulators.mqtt_publisher import DevicePublisher, LoadPublisher
    from simulators.runner import Progress
    from simulators.stream import SimMessage
    from yiju.settings import Settings

# Scenarios, publishers and the database are imported when the command runs, so that `yiju --help`
# starts fast.

MAX_PAST = timedelta(days=2)  # keep device times well inside ingest's 3-day window


def register_fleet(database_url: str, fleet: Fleet) -> tuple[int, int]:
    """Upsert the fleet's communities, buildings, locations and devices; (inserted, updated) devices."""
    from storage import registry
    from storage.db import connection

    inserted = updated = 0
    with connection(database_url) as conn:
        for c in fleet.compounds:
            com = c.community
            lat, lon = com.site or (None, None)
            registry.upsert_community(
                conn,
                registry.CommunityIn(
                    com.code, com.name, city=com.city, timezone=com.timezone, latitude=lat, longitude=lon
                ),
            )
            with conn.transaction():
                buildings = [
                    registry.BuildingIn(b.community, b.code, b.name, b.floors, b.units, b.high_rise)
                    for b in c.buildings
                ]
                registry.upsert_buildings(conn, buildings)
                registry.upsert_locations(
                    conn,
                    [
                        registry.LocationIn(
                            x.community,
                            x.code,
                            x.kind,
                            x.name,
                            x.building,
                            x.floor,
                            x.unit,
                            x.evacuation_route,
                        )
                        for x in c.locations
                    ],
                )
                counts = registry.upsert_devices(
                    conn,
                    [
                        registry.DeviceIn(
                            d.uid, d.community, d.family.value, d.location, d.model, d.vendor,
                            retrofit=d.retrofit, metadata=d.metadata(), room=d.household, post=d.post,
                        )
                        for d in c.devices
                    ],
                )  # fmt: skip
                if counts.refused:
                    shown = ", ".join(counts.refused[:5])
                    raise InputError(
                        f"{len(counts.refused)} simulated device uid(s) are registered in another community "
                        f"or reserved ({shown}…): use another --prefix"
                    )
            conn.commit()
            inserted += counts.inserted
            updated += counts.updated
    return inserted, updated


def register_devices(database_url: str, devices: Iterable[SimDevice]) -> None:
    """Register single devices the way POST /devices does (one upsert, committed at once): the
    scenarios' registrations during play (simulators.scenarios.Registration)."""
    from storage import registry
    from storage.db import connection

    rows = [
        registry.DeviceIn(
            d.uid, d.community, d.family.value, d.location, d.model, d.vendor,
            retrofit=d.retrofit, metadata=d.metadata(), room=d.household, post=d.post,
        )
        for d in devices
    ]  # fmt: skip
    with connection(database_url) as conn:
        registry.upsert_devices(conn, rows)
        conn.commit()


def with_registrations(
    stream: Iterable[SimMessage], registrations: Iterable[scenarios.Registration], database_url: str
) -> Iterator[SimMessage]:
    """`stream`, registering each scenario device just before the first message at or after its
    registration instant is played."""
    pending = sorted(registrations, key=lambda r: r.at)
    for m in stream:
        while pending and pending[0].at <= m.at:
            register_devices(database_url, [pending.pop(0).device])
        yield m


def _registering(
    stream: Iterator[SimMessage], built: list[scenarios.Scenario], register: bool, settings: Settings
) -> Iterator[SimMessage]:
    from yiju.stack import resolve

    registrations = [r for s in built for r in s.registrations]
    if registrations and register:
        return with_registrations(stream, registrations, resolve(settings).database_url)
    if registrations:
        print(
            f"note: {len(registrations)} scenario device(s) are registered during play only with "
            "--register; without it their messages are dead-lettered unknown_device"
        )
    return stream


def _passwords(path: Path | None) -> dict[str, str] | None:
    """username → password from the CSV `yiju devices credentials` writes (username,community,password)."""
    if path is None:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {row["username"]: row["password"] for row in csv.DictReader(fh)}
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: cannot read device passwords ({exc})") from exc


def _line(p: Progress, total: int | None) -> str:
    sim = p.sim_now.astimezone().strftime("%Y-%m-%d %H:%M:%S") if p.sim_now else "-"
    of = f"/{total:,}" if total else ""
    tail = " (caught up with real time)" if p.caught_up else ""
    return f"\rsent {p.messages:,}{of} msgs  {p.rate:,.0f} msg/s  simulated time {sim}{tail}   "


def _start(args: argparse.Namespace, duration: timedelta | None) -> datetime:
    if args.start:
        start = datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            raise InputError("--start needs a UTC offset, e.g. 2026-06-01T20:00:00+08:00")
        return start
    now = datetime.now(UTC).replace(microsecond=0)
    # in the past, so an accelerated run stays behind real time (ingest refuses future device times)
    accelerated = args.speed > 1 or args.speed <= 0
    return now - min(duration, MAX_PAST) if duration and accelerated else now


def _publisher(
    args: argparse.Namespace, settings: Settings, mqtt_url: str, devices: int
) -> DevicePublisher | LoadPublisher:
    from simulators.mqtt_publisher import DevicePublisher, LoadPublisher

    prefix = settings.mqtt.topic_prefix
    if args.connections:
        return LoadPublisher(mqtt_url, prefix, connections=args.connections)
    DevicePublisher.check_capacity(devices)
    passwords = _passwords(Path(args.passwords) if args.passwords else None)
    return DevicePublisher(mqtt_url, prefix, password_for=passwords.get if passwords is not None else None)


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators import behaviour, scenarios
    from simulators.runner import play
    from simulators.stream import SimClock, merge
    from yiju.stack import resolve

    if args.list_scenarios:
        for name in scenarios.SCENARIOS:
            print(name)
        return 0
    names = list(scenarios.SCENARIOS) if args.scenario == ["all"] else args.scenario
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown:
        raise ConfigurationError(f"unknown scenario(s) {', '.join(unknown)}; see --list-scenarios")
    size = Size(args.size)
    fleet = generate_fleet(size, args.communities, args.seed, prefix=args.prefix)
    mqtt_url = settings.mqtt.url or resolve(settings).mqtt_url
    if args.register:
        ins, upd = register_fleet(resolve(settings).database_url, fleet)
        n, k = fleet.device_count(), len(fleet.compounds)
        print(f"registered {n:,} devices in {k} communities ({ins} new, {upd} updated)")
    if args.load:
        return _load(args, settings, mqtt_url, size)
    duration = timedelta(seconds=args.duration) if args.duration is not None else None
    start = _start(args, duration)
    end = start + duration if duration else None
    built = scenarios.build(names, fleet.compounds[0], start)
    streams: list[Any] = [s.messages for s in built]
    if not args.no_background:
        claimed = frozenset(uid for s in built for uid in s.devices)
        streams.insert(0, behaviour.fleet_background(fleet, start, end, exclude=claimed))
    stream = _registering(merge(*streams), built, args.register, settings)
    if end is not None:
        stream = (m for m in stream if m.at <= end)
    if args.ground_truth:
        _write_ground_truth(Path(args.ground_truth), built)
    speed = math.inf if args.speed <= 0 else args.speed
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    print(
        f"simulating {fleet.device_count():,} devices in {len(fleet.compounds)} {size.value} communities "
        f"from {start.isoformat()} at {'max' if math.isinf(speed) else f'{speed:g}×'} speed"
        + (f", scenarios: {', '.join(names)}" if names else "")
    )
    clock = SimClock(start, speed, time.monotonic())
    try:
        pub = _publisher(args, settings, mqtt_url, fleet.device_count())
        with pub:
            progress = play(
                stream, pub, clock, stop=stop, progress=lambda p: print(_line(p, None), end="", flush=True)
            )
            pub.pump(0.5)
            stats = pub.stats
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    print(_line(progress, None))
    print(
        f"done: {progress.messages:,} messages in {progress.wall_s:.1f} s ({progress.rate:,.0f} msg/s); "
        f"published {stats.published:,}, acknowledged {stats.acked:,}, failed {stats.failed:,}; "
        f"{stats.connections:,} MQTT connection(s); by channel: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(progress.by_channel.items()))
    )
    for s in built:
        print(
            f"scenario {s.name}: {len(s.messages)} messages, expects {len(s.expected_alarms)} alarm(s), "
            f"{len(s.expected_findings)} finding(s), {len(s.expected_dead_letters)} dead letter(s)"
        )
    return 0 if stats.failed == 0 else 1


def _load(args: argparse.Namespace, settings: Settings, mqtt_url: str, size: Size) -> int:
    from simulators.mqtt_publisher import run_load
    from simulators.runner import LoadPlan, prepare_share

    window = float(args.duration or 3600)
    plan = LoadPlan(
        size=size,
        communities=args.communities,
        seed=args.seed,
        start=datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=window),
        window_s=window,
        workers=args.processes,
        prefix=settings.mqtt.topic_prefix,
        limit=args.limit,
    )
    print(
        f"load mode: {args.processes} process(es) × {args.connections or 1} connection(s); preparing "
        f"{window:.0f} s of simulated traffic of {args.communities} {size.value} communities…",
        flush=True,
    )
    result = run_load(
        mqtt_url,
        settings.mqtt.topic_prefix,
        partial(prepare_share, plan),
        processes=args.processes,
        connections_per_process=args.connections or 1,
    )
    s = result.stats
    print(
        f"done: {s.acked:,} acknowledged of {s.published:,} published in {result.elapsed_s:.2f} s = "
        f"{result.rate:,.0f} msg/s ({s.bytes / result.elapsed_s / 1e6:.1f} MB/s); failed {s.failed}"
    )
    for e in s.errors[:5]:
        print(f"error: {e}", file=sys.stderr)
    return 0 if s.failed == 0 and not s.errors else 1


def _write_ground_truth(path: Path, built: list[scenarios.Scenario]) -> None:
    doc = [
        {
            "name": s.name,
            "description": s.description,
            "community": s.community,
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "devices": list(s.devices),
            "messages": len(s.messages),
            "expected_alarms": [asdict(a) for a in s.expected_alarms],
            "expected_findings": [asdict(f) for f in s.expected_findings],
            "expected_dead_letters": [asdict(d) for d in s.expected_dead_letters],
            "expected_rows": s.expected_rows,
        }
        for s in built
    ]
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str))
    print(f"ground truth: {path}")


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "simulate",
        help="play simulated compounds and scenarios onto the MQTT broker",
        description="Simulated devices over real MQTT 5: per-device sessions (retained status + Last Will), "
        "or --load for multiplexed connections as fast as the broker acknowledges.",
    )
    p.add_argument("--size", choices=[s.value for s in Size], default=Size.SMALL.value)
    p.add_argument("--communities", type=int, default=1, help="number of compounds (default 1)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same compound and message stream")
    p.add_argument("--prefix", default="sim", help="community codes are <prefix>001, <prefix>002, …")
    p.add_argument(
        "--speed", type=float, default=60.0,
        help="time acceleration (60 = a simulated minute per second; 0 = as fast as possible)",
    )  # fmt: skip
    p.add_argument(
        "--duration", type=float, default=None, help="simulated seconds to play (default: forever)"
    )
    p.add_argument(
        "--start", default=None, help="simulated start, ISO 8601 with offset (default: in the past)"
    )
    p.add_argument(
        "--scenario", action="append", default=[], metavar="NAME",
        help="inject a scenario into the first community (repeatable; 'all' for every one)",
    )  # fmt: skip
    p.add_argument("--list-scenarios", action="store_true", help="print the scenario names and exit")
    p.add_argument("--no-background", action="store_true", help="only the scenarios, no normal traffic")
    p.add_argument(
        "--ground-truth", metavar="FILE", help="write the scenarios' expected alarms/findings as JSON"
    )
    p.add_argument(
        "--register", action="store_true", help="upsert the generated compounds into the database first"
    )
    p.add_argument("--passwords", metavar="CSV", help="device passwords (from `yiju devices credentials`)")
    p.add_argument("--load", action="store_true", help="load mode: pre-serialised, as fast as possible")
    p.add_argument("--processes", type=int, default=1, help="load mode: worker processes")
    p.add_argument(
        "--connections", type=int, default=0,
        help="multiplexed MQTT connections (per process in load mode); 0 = one session per device",
    )  # fmt: skip
    p.add_argument(
        "--limit", type=int, default=None, help="load mode: at most this many messages per process"
    )
    p.set_defaults(handler=_cmd_simulate)
