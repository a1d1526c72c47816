"""Compound generator: a deterministic, plausible residential compound (小区) for a seed.

Pure: no I/O. The output is plain frozen dataclasses; the composition root (`yiju simulate --register`)
turns them into registry rows, and the fleet behaviour (`simulators.fleet`) makes them talk.

Proportions follow domain.md §2 for the `typical` size (3,000 households: ~40 buildings, ~60 elevators,
~30 charging posts of 10–12 ports in 5–10 sheds, ~3,000 smoke and ~3,000 gas alarms, ~400 lamps,
~120 access doors, ~300 CCTV channels on ~15 recorders; about 7,000 devices in all).

Layout rules that the scenarios rely on:
- every building unit (单元) has a lobby location with one unit door (on the evacuation route, so it
  must be released on fire: GB 50396-2007 §9.0.1(2), GB 51348-2019 §14.4.3), one lobby smoke alarm and
  lobby + stair lamps; high-rise units have an elevator, some low-rise units a retrofitted one;
- every household has one smoke alarm and one kitchen gas alarm (with a shut-off valve in high-rise
  buildings and some low-rise ones) on its floor location;
- pedestrian gates at entrances are on the evacuation route, vehicle gates and shed doors are not.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from devices.contract import Family


class Size(StrEnum):
    SMALL = "small"
    TYPICAL = "typical"
    LARGE = "large"


@dataclass(frozen=True, slots=True)
class SizeSpec:
    """How big one compound is. Buildings are high-rise (with an elevator per unit) or low-rise."""

    high_rise_buildings: int
    high_rise_floors: int
    high_rise_units: int
    low_rise_buildings: int
    low_rise_floors: int
    low_rise_units: int
    households_per_floor: int  # per unit and floor
    retrofit_share: float  # share of low-rise units that had an elevator added later
    sheds: int
    posts_per_shed: tuple[int, int]  # inclusive range
    roads: int
    lamps_per_road: int
    entrances: int
    recorders: int
    channels_per_recorder: int


SIZES: dict[Size, SizeSpec] = {
    Size.SMALL: SizeSpec(
        high_rise_buildings=5, high_rise_floors=8, high_rise_units=2,
        low_rise_buildings=2, low_rise_floors=6, low_rise_units=2,
        households_per_floor=2, retrofit_share=0.5,
        sheds=3, posts_per_shed=(4, 4), roads=3, lamps_per_road=10, entrances=2,
        recorders=6, channels_per_recorder=16,
    ),
    Size.TYPICAL: SizeSpec(
        high_rise_buildings=30, high_rise_floors=20, high_rise_units=2,
        low_rise_buildings=10, low_rise_floors=6, low_rise_units=4,
        households_per_floor=2, retrofit_share=0.15,
        sheds=8, posts_per_shed=(3, 5), roads=8, lamps_per_road=20, entrances=4,
        recorders=15, channels_per_recorder=20,
    ),
    Size.LARGE: SizeSpec(
        high_rise_buildings=80, high_rise_floors=26, high_rise_units=2,
        low_rise_buildings=20, low_rise_floors=6, low_rise_units=4,
        households_per_floor=2, retrofit_share=0.15,
        sheds=20, posts_per_shed=(4, 6), roads=20, lamps_per_road=20, entrances=8,
        recorders=40, channels_per_recorder=24,
    ),
}  # fmt: skip

CITIES = ("上海", "杭州", "南京", "苏州", "深圳", "武汉", "成都", "重庆")
# (latitude °N, longitude °E) of each city centre: the registry's community location (sunset)
CITY_LOCATIONS: dict[str, tuple[float, float]] = {
    "上海": (31.23, 121.47), "杭州": (30.27, 120.16), "南京": (32.06, 118.80), "苏州": (31.30, 120.59),
    "深圳": (22.54, 114.06), "武汉": (30.59, 114.31), "成都": (30.57, 104.07), "重庆": (29.56, 106.55),
}  # fmt: skip
TIMEZONE = "Asia/Shanghai"
RATED_SPEED_MPS = {False: 1.75, True: 1.0}  # elevators by `retrofit`: high-rise cars / retrofitted ones


@dataclass(frozen=True, slots=True)
class SimCommunity:
    code: str
    name: str
    city: str
    timezone: str = TIMEZONE

    @property
    def site(self) -> tuple[float, float] | None:
        return CITY_LOCATIONS.get(self.city)


@dataclass(frozen=True, slots=True)
class SimBuilding:
    community: str
    code: str
    name: str
    floors: int
    units: int
    high_rise: bool


@dataclass(frozen=True, slots=True)
class SimLocation:
    """A place in the compound; `kind` is one of the registry's location kinds."""

    community: str
    code: str
    kind: str
    name: str
    building: str | None = None
    floor: int | None = None
    unit: str | None = None
    evacuation_route: bool = False


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One device. `ports` (chargers), `channels` (recorders) and `floors` (elevators) size the
    family-specific state; `household` names the flat a household alarm is in."""

    uid: str
    community: str
    family: Family
    location: str  # SimLocation.code
    model: str
    vendor: str
    retrofit: bool = False
    ports: int = 0
    channels: int = 0
    floors: int = 0
    household: str | None = None  # also the registry's room (房号)
    post: str | None = None  # chargers: the post number (桩号) in their shed
    valve: bool = False  # gas alarm with a linked shut-off valve
    electrical_fire: bool = False  # smoke_alarm that is an electrical-fire (residual current) detector
    site: tuple[float, float] | None = None  # lamps: (latitude, longitude) for their astronomical clock

    def metadata(self) -> dict[str, Any]:
        """The family-specific facts, as the registry's `devices.metadata` would hold them."""
        meta: dict[str, Any] = {}
        if self.ports:
            meta["ports"] = self.ports
        if self.channels:
            meta["channels"] = self.channels
        if self.floors:
            meta["floors"] = self.floors
        if self.family is Family.ELEVATOR:
            meta["rated_speed_mps"] = RATED_SPEED_MPS[self.retrofit]
        if self.household:
            meta["household"] = self.household
        if self.family is Family.GAS_ALARM:
            meta["valve"] = self.valve
        if self.electrical_fire:
            meta["electrical_fire"] = True
        return meta


@dataclass(frozen=True, slots=True)
class Compound:
    community: SimCommunity
    buildings: tuple[SimBuilding, ...]
    locations: tuple[SimLocation, ...]
    devices: tuple[SimDevice, ...]
    _by_uid: dict[str, SimDevice] = field(default_factory=dict, compare=False, repr=False, hash=False)
    _by_code: dict[str, SimLocation] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        self._by_uid.update((d.uid, d) for d in self.devices)
        self._by_code.update((loc.code, loc) for loc in self.locations)

    def device(self, uid: str) -> SimDevice:
        return self._by_uid[uid]

    def location(self, code: str) -> SimLocation:
        return self._by_code[code]

    def of(self, family: Family) -> list[SimDevice]:
        return [d for d in self.devices if d.family is family]

    def counts(self) -> Counter[str]:
        return Counter(d.family.value for d in self.devices)

    def in_building(self, building: str) -> list[SimDevice]:
        """Devices whose location belongs to `building`."""
        return [d for d in self.devices if self._by_code[d.location].building == building]


@dataclass(frozen=True, slots=True)
class Fleet:
    """Several compounds, as one simulator run plays them."""

    seed: int
    size: Size
    compounds: tuple[Compound, ...]

    @property
    def devices(self) -> Iterator[SimDevice]:
        for compound in self.compounds:
            yield from compound.devices

    def device_count(self) -> int:
        return sum(len(c.devices) for c in self.compounds)

    def compound(self, community: str) -> Compound:
        for c in self.compounds:
            if c.community.code == community:
                return c
        raise KeyError(community)


CHARGER_MODELS = (("AP3000-10", "dny", 10), ("AP3000-12", "dny", 12), ("X10P-12", "x10p", 12))


def generate_compound(code: str, size: Size = Size.SMALL, seed: int = 0, *, index: int = 0) -> Compound:
    """One compound. The same (code, size, seed) always gives the same compound."""
    spec = SIZES[size]
    rng = random.Random(f"{seed}:{code}")  # noqa: S311 - simulation; str seeds hash deterministically
    community = SimCommunity(
        code=code, name=f"模拟小区 {index + 1:03d}", city=CITIES[(seed + index) % len(CITIES)]
    )
    b = _Builder(code, community.site)
    for n in range(spec.high_rise_buildings + spec.low_rise_buildings):
        high = n < spec.high_rise_buildings
        floors = spec.high_rise_floors if high else spec.low_rise_floors
        units = spec.high_rise_units if high else spec.low_rise_units
        bcode = f"b{n + 1:02d}"
        b.buildings.append(SimBuilding(code, bcode, f"{n + 1}号楼", floors, units, high))
        b.location(f"{bcode}", "building", f"{n + 1}号楼", building=bcode)
        # Old low-rise compounds often have gas alarms without a valve; high-rise ones have one.
        valves = high or rng.random() < 0.5
        for u in range(1, units + 1):
            lobby = b.location(
                f"{bcode}-u{u}", "lobby", f"{n + 1}号楼{u}单元大堂", building=bcode, unit=str(u),
                evacuation_route=True,
            )  # fmt: skip
            b.device("door", Family.ACCESS_DOOR, lobby, "DS-K1T", "hik", suffix=f"{bcode}u{u}")
            b.device("smk", Family.SMOKE_ALARM, lobby, "JTY-GD", "gst", suffix=f"{bcode}u{u}")
            b.device("lmp", Family.LIGHT, lobby, "SLC-1", "tcl", suffix=f"{bcode}u{u}a")
            b.device("lmp", Family.LIGHT, lobby, "SLC-1", "tcl", suffix=f"{bcode}u{u}s")
            retrofit = not high and rng.random() < spec.retrofit_share
            if high or retrofit:
                b.device(
                    "elv", Family.ELEVATOR, lobby, "EM-3" if high else "RT-1", "sjec" if high else "rtf",
                    suffix=f"{bcode}u{u}", retrofit=retrofit, floors=floors,
                )  # fmt: skip
            for f in range(1, floors + 1):
                floor = b.location(
                    f"{bcode}-u{u}-f{f:02d}", "floor", f"{n + 1}号楼{u}单元{f}层",
                    building=bcode, floor=f, unit=str(u),
                )  # fmt: skip
                for h in range(1, spec.households_per_floor + 1):
                    flat = f"{f}{h:02d}"
                    sfx = f"{bcode}u{u}r{flat}"
                    b.device("smk", Family.SMOKE_ALARM, floor, "JTY-GF", "nb", suffix=sfx, household=flat)
                    b.device(
                        "gas", Family.GAS_ALARM, floor, "JT-K1", "hanwei", suffix=sfx, household=flat,
                        valve=valves,
                    )  # fmt: skip
    for s in range(1, spec.sheds + 1):
        shed = b.location(f"shed{s:02d}", "shed", f"{s}号充电棚")
        lo, hi = spec.posts_per_shed
        for p in range(1, rng.randint(lo, hi) + 1):
            model, vendor, ports = rng.choice(CHARGER_MODELS)
            b.device(
                "chg",
                Family.EBIKE_CHARGER,
                shed,
                model,
                vendor,
                suffix=f"s{s:02d}p{p}",
                ports=ports,
                post=str(p),
            )
        # electrical-fire detector on the shed's final circuit (GB 51348-2019 13.5.5 [S2])
        b.device("smk", Family.SMOKE_ALARM, shed, "ElF-1", "acrel", suffix=f"s{s:02d}", electrical_fire=True)
        b.device("door", Family.ACCESS_DOOR, shed, "DS-K1T", "hik", suffix=f"s{s:02d}")
        for k in range(2):
            b.device("lmp", Family.LIGHT, shed, "SLC-1", "tcl", suffix=f"s{s:02d}{k}")
    for r in range(1, spec.roads + 1):
        road = b.location(f"road{r:02d}", "road", f"{r}号路")
        for k in range(1, spec.lamps_per_road + 1):
            b.device("lmp", Family.LIGHT, road, "SL-60", "opple", suffix=f"r{r:02d}n{k:02d}")
    for e in range(1, spec.entrances + 1):
        walk = b.location(f"gate{e}-p", "entrance", f"{e}号门人行通道", evacuation_route=True)
        b.device("door", Family.ACCESS_DOOR, walk, "DS-K3G", "hik", suffix=f"g{e}p")
        drive = b.location(f"gate{e}-v", "entrance", f"{e}号门车行道闸")
        b.device("door", Family.ACCESS_DOOR, drive, "BR-1", "hik", suffix=f"g{e}v")
    duty = b.location("duty", "duty_room", "监控中心")
    for n in range(1, spec.recorders + 1):
        b.device(
            "nvr", Family.CCTV_RECORDER, duty, "DS-9632N", "hik", suffix=f"{n:02d}",
            channels=spec.channels_per_recorder,
        )  # fmt: skip
    return Compound(community, tuple(b.buildings), tuple(b.locations), tuple(b.devices))


def generate_fleet(
    size: Size = Size.SMALL, communities: int = 1, seed: int = 0, *, prefix: str = "sim"
) -> Fleet:
    """`communities` compounds named `{prefix}{n:03d}`; device uids are unique across all of them."""
    compounds = tuple(
        generate_compound(f"{prefix}{i + 1:03d}", size, seed, index=i) for i in range(communities)
    )
    return Fleet(seed=seed, size=size, compounds=compounds)


class _Builder:
    def __init__(self, community: str, site: tuple[float, float] | None = None) -> None:
        self.community = community
        self.site = site
        self.buildings: list[SimBuilding] = []
        self.locations: list[SimLocation] = []
        self.devices: list[SimDevice] = []

    def location(
        self,
        code: str,
        kind: str,
        name: str,
        *,
        building: str | None = None,
        floor: int | None = None,
        unit: str | None = None,
        evacuation_route: bool = False,
    ) -> SimLocation:
        loc = SimLocation(self.community, code, kind, name, building, floor, unit, evacuation_route)
        self.locations.append(loc)
        return loc

    def device(
        self,
        short: str,
        family: Family,
        where: SimLocation,
        model: str,
        vendor: str,
        *,
        suffix: str,
        **extra: Any,
    ) -> SimDevice:
        uid = f"{self.community}-{short}-{suffix}"
        if family is Family.LIGHT:
            extra["site"] = self.site
        dev = SimDevice(uid, self.community, family, where.code, model, vendor, **extra)
        self.devices.append(dev)
        return dev


def on_evacuation_route(compound: Compound, device: SimDevice) -> bool:
    return compound.location(device.location).evacuation_route
