"""Building blocks shared by the family wire models: strict numeric types with units, code tables.

Numbers and booleans are strict (a JSON string "220" is not a voltage, 1 is not `true`): devices
that send the wrong type are broken and must be told so by a dead letter, not silently coerced.
Ranges are *physically possible* ranges, not alarm thresholds: a value outside them is an
implausible reading (domain.md §5.2) and fails validation; thresholds live in each family's DEFAULTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import Field, Strict

from devices.envelope import Frozen

# Strict scalars: no str→number, no int→bool, no float→int coercion.
Num = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]

# Common physical quantities (units in the names of the fields that use them).
TempC = Annotated[float, Strict(), Field(ge=-50, le=300, allow_inf_nan=False)]
Percent = Annotated[float, Strict(), Field(ge=0, le=100, allow_inf_nan=False)]
MainsVolts = Annotated[float, Strict(), Field(ge=0, le=500, allow_inf_nan=False)]
Watts = Annotated[float, Strict(), Field(ge=0, le=50_000, allow_inf_nan=False)]
Amps = Annotated[float, Strict(), Field(ge=0, le=250, allow_inf_nan=False)]
Seconds = Annotated[int, Strict(), Field(ge=0, le=10 * 365 * 86_400)]
# Durations of one session or one open door: a month is already absurd.
DurationS = Annotated[int, Strict(), Field(ge=0, le=30 * 86_400)]


class Wire(Frozen):
    """Base of the family payload models (immutable, unknown fields refused)."""


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What a code means, in Chinese and English, and the vendor's number for it when one exists
    (standards.md §1.2: the AP3000 protocol numbers), so that a protocol gateway can map codes."""

    zh: str
    en: str
    vendor_code: int | None = None


E = TypeVar("E", bound=StrEnum)


def by_vendor_code(table: dict[E, CodeInfo]) -> dict[int, E]:
    """Reverse map vendor code → our code, for gateways translating a vendor protocol."""
    return {info.vendor_code: code for code, info in table.items() if info.vendor_code is not None}


def ensure_unique(numbers: list[int], what: str) -> None:
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate {what} numbers: {sorted(numbers)}")
