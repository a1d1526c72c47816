"""Every rule parameter in one catalogue: default, unit, evidence label, source and scope, read from the
settings models themselves. It feeds the generated table (docs/rules.md), `yiju doctor`'s warning
about unsourced defaults, and the tests that keep both in step with the code.

The rule parameters are the family groups of `AlertSettings` (each family's `DEFAULTS` from
devices/families/*.py plus the extras in alerts/config.py), the engine-wide rule settings of
`AlertSettings` (those whose description carries an evidence label; the rest are operational knobs)
and ingest's timestamp window.

Convention for a description (standards.md §0): the text, then ` — [LABEL] source`, the label one of
[S], [S2], [V], [NOT FOUND]. A description that does not follow it yet still yields the weakest
label it mentions; one with no label at all is "unsourced". [NOT FOUND] values are required settings
(standards.md §0): the default is only a starting point, and `yiju doctor` warns for every community
that runs on one.

Scope: `community` — overridable per community under `communities.settings.alerts` (e.g.
`{"ebike_charger": {"port_over_temp_c": 70}}`); `device` — the device's own announcement wins
(`heartbeat_s` in its status message), else the community's; a field may state its scope in
`json_schema_extra={"scope": "building"}`; `deployment` — one value per Yiju deployment (settings).
A parameter that is no safety threshold (how often Yiju re-evaluates, how it measures) says
`json_schema_extra={"safety": False}`: doctor does not warn about it.

    python -m yiju.parameters > docs/rules.md      # regenerate the table
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from alerts.config import AlertSettings
from ingest.config import IngestSettings

LABELS = ("S", "S2", "V", "NOT FOUND")  # strongest first
_CONVENTION = re.compile(r"\s+—\s+\[(S|S2|V|NOT FOUND)\]\s*:?\s*(.*)$", re.S)
_LABEL = re.compile(r"\[(S|S2|V|NOT FOUND)\]")
INGEST_RULE_FIELDS = ("max_past", "max_future")  # the timestamp window (docs/mqtt.md §3)
DEVICE_SCOPED = {"heartbeat_s": "device, else community (the status message's `heartbeat_s`)"}
UNITS = (  # name suffix → unit (units live in the names: GUIDE.md)
    ("_lel_pct", "%LEL"),
    ("_pct", "%"),
    ("_ppm", "ppm"),
    ("_ma", "mA"),
    ("_days", "d"),
    ("_ratio", "×"),
    ("_kwh", "kWh"),
    ("_w", "W"),
    ("_v", "V"),
    ("_a", "A"),
    ("_c", "°C"),
    ("_s", "s"),
)


@dataclass(frozen=True, slots=True)
class Parameter:
    key: str  # settings path: "alerts.ebike_charger.port_over_temp_c", "ingest.max_future"
    default: Any
    unit: str
    label: str  # one of LABELS, or "" (unsourced)
    source: str
    text: str
    scope: str
    convention: bool  # the description follows ` — [LABEL] source`
    safety: bool = True  # a threshold, deadline or timer of a rule (not how often Yiju looks)

    @property
    def override_key(self) -> str:
        """The key under `communities.settings.alerts` ("ebike_charger.port_over_temp_c")."""
        return self.key.removeprefix("alerts.")

    @property
    def required(self) -> bool:
        """No source that fixes the number (standards.md §0: [NOT FOUND] is a required setting)."""
        return self.label in ("NOT FOUND", "")


def parse(description: str | None) -> tuple[str, str, str, bool]:
    """(text, label, source, follows the convention) of a field description."""
    desc = " ".join((description or "").split())
    m = _CONVENTION.search(desc)
    if m is not None:
        return desc[: m.start()].strip(), m.group(1), m.group(2).strip(), True
    found = _LABEL.findall(desc)
    label = max(found, key=LABELS.index) if found else ""
    text, _, source = desc.partition(" — ")
    return text.strip(), label, source.strip(), False


def _unit(name: str, value: Any) -> str:
    if isinstance(value, timedelta):
        return "s"
    if name.endswith(("_start", "_end")) and isinstance(value, str) and ":" in value:
        return "local time"
    for suffix, unit in UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def _param(prefix: str, model: type[BaseModel], name: str, value: Any, scope: str) -> Parameter:
    field = model.model_fields[name]
    text, label, source, convention = parse(field.description)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if isinstance(extra.get("scope"), str):
        scope = str(extra["scope"])
    elif scope == "community" and name in DEVICE_SCOPED:
        scope = DEVICE_SCOPED[name]
    return Parameter(
        f"{prefix}.{name}",
        _default(value),
        _unit(name, value),
        label,
        source,
        text,
        scope,
        convention,
        extra.get("safety") is not False,
    )


def catalogue(alerts: AlertSettings | None = None, ingest: IngestSettings | None = None) -> list[Parameter]:
    """Every rule parameter with the given settings' values as defaults (None: the code's)."""
    alerts = alerts or AlertSettings()
    ingest = ingest or IngestSettings()
    out: list[Parameter] = []
    groups: list[tuple[str, BaseModel]] = []
    for name in AlertSettings.model_fields:
        value = getattr(alerts, name)
        if isinstance(value, BaseModel):
            groups.append((name, value))
        elif _LABEL.search(AlertSettings.model_fields[name].description or ""):
            out.append(_param("alerts", AlertSettings, name, value, "community"))
    for group, model in groups:
        cls = type(model)
        out += [_param(f"alerts.{group}", cls, n, getattr(model, n), "community") for n in cls.model_fields]
    out += [_param("ingest", IngestSettings, n, getattr(ingest, n), "deployment") for n in INGEST_RULE_FIELDS]
    return out


def _cell(value: Any) -> str:
    if isinstance(value, tuple | list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("|", "\\|")


def markdown() -> str:
    """docs/rules.md."""
    params = catalogue()
    required = [p for p in params if p.required]
    lines = [
        "# Rule parameters",
        "",
        "<!-- Generated by `python -m yiju.parameters > docs/rules.md` from the settings models "
        "(alerts/config.py, devices/families/*.py, ingest/config.py); tests/test_parameters.py keeps "
        "it in step. Do not edit by hand. -->",
        "",
        "Every threshold, deadline and timer the rules use, with its default, its unit, the evidence "
        "label of its source in `../shared/spec/standards.md` (§0) and where it can be set:",
        "",
        "- **[S]** a standard's text; **[S2]** a secondary source quoting one (verify against the "
        "original); **[V]** vendor or open-source practice, not a legal limit; **[NOT FOUND]** no source "
        "confirms the number: it is a **required setting** — the default is only a starting point, and "
        "`yiju doctor` warns for every community that runs on it.",
        "- **scope** `community`: set per community in `communities.settings` under `alerts`, e.g. "
        '`{"alerts": {"ebike_charger": {"port_over_temp_c": 70}}}` (the key is the parameter without '
        "`alerts.`); deployment-wide through the settings (`YIJU_ALERTS__…`). `device`: the device's "
        "own announcement wins. `deployment`: one value for the whole deployment (`YIJU_INGEST__…`).",
        "",
        f"{len(params)} parameters, {len(required)} of them without a source that fixes the number.",
        "",
        "| parameter | default | unit | label | source | scope | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in params:
        label = f"[{p.label}]" if p.label else "unsourced"
        lines.append(
            f"| `{p.key}` | {_cell(p.default)} | {p.unit} | {label} | {_cell(p.source)} | {p.scope} "
            f"| {_cell(p.text)}{'' if p.safety else ' (not a safety threshold)'} |"
        )
    return "\n".join(lines) + "\n"


def unsourced_defaults(alerts: AlertSettings, overrides: dict[str, Any] | None) -> list[Parameter]:
    """The community-scoped safety parameters a community runs on at their [NOT FOUND]/unsourced code
    default: neither the deployment's settings nor the community's overrides set them."""
    code = {p.key: p.default for p in catalogue()}
    deployed = {p.key: p.default for p in catalogue(alerts)}
    overrides = overrides or {}
    out = []
    for p in catalogue():
        if not (p.required and p.safety) or not p.key.startswith("alerts.") or deployed[p.key] != code[p.key]:
            continue
        path = p.override_key.split(".")
        node: Any = overrides
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            out.append(p)
    return out


if __name__ == "__main__":
    sys.stdout.write(markdown())
