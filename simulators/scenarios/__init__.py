"""Scenarios with ground truth: each injects one situation into a compound's message stream and says
exactly which alarms and compliance findings a correct engine must produce from it — and nothing else.

The ground-truth format, its matching rules and its times are the contract in `truth`; `builder` holds
what every scenario is made of (`Picker`, `healthy`, `Script`, `Builder`); one module per device family
(`chargers`, `smoke`, `gas`, `elevators`, `doors`, `lighting`, `recorders`), the situations of the fleet
as a whole (`fleet`: clocks, presence, the alarm path) and the bad-input set (`bad_input`) each register
their scenarios. Exports `SCENARIOS` (name → factory, in a fixed order: a shared `Picker` hands out
devices in that order) and `build`, plus the model and builder names the tests use.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from simulators.compound import Compound
from simulators.scenarios import bad_input, chargers, doors, elevators, fleet, gas, lighting, recorders, smoke
from simulators.scenarios.builder import (
    FAULT_ALARM_DEADLINE_S,
    INCIDENT_REPORT_S,
    SLACK_S,
    Builder,
    Factory,
    Picker,
    Script,
    channel_report,
    healthy,
    port_report,
)
from simulators.scenarios.truth import (
    ExpectedAlarm,
    ExpectedDeadLetter,
    ExpectedFinding,
    Registration,
    Scenario,
)

__all__ = [
    "FAULT_ALARM_DEADLINE_S",
    "INCIDENT_REPORT_S",
    "SCENARIOS",
    "SLACK_S",
    "Builder",
    "ExpectedAlarm",
    "ExpectedDeadLetter",
    "ExpectedFinding",
    "Factory",
    "Picker",
    "Registration",
    "Scenario",
    "Script",
    "build",
    "channel_report",
    "healthy",
    "port_report",
]

# The order the scenarios were always listed in (and a shared picker hands out devices in).
SCENARIOS: dict[str, Factory] = {
    **chargers.SCENARIOS,
    **smoke.SCENARIOS,
    **gas.SCENARIOS,
    **elevators.SCENARIOS,
    **doors.SCENARIOS,
    **lighting.SCENARIOS,
    **recorders.SCENARIOS,
    **fleet.SCENARIOS,
    **bad_input.SCENARIOS,
}


def build(
    names: Iterable[str], compound: Compound, start: datetime, *, picker: Picker | None = None
) -> list[Scenario]:
    """The named scenarios on `compound`, each on its own devices, all starting at `start`."""
    picker = picker or Picker(compound)
    out = []
    for name in names:
        try:
            factory = SCENARIOS[name]
        except KeyError:
            raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
        out.append(factory(picker, start))
    return out
