"""The rule-parameter catalogue (yiju/parameters.py): the generated table in docs/rules.md matches the
code, every parameter names its evidence label, unsourced defaults are found per community, and no
documented parameter is silently left unread by the rules."""

from __future__ import annotations

import re
from pathlib import Path

from alerts.config import AlertSettings, CctvRules
from yiju import parameters

ROOT = Path(__file__).resolve().parent.parent
# Parameters documented as starting settings that no rule reads yet (issue 19: use them or remove
# them). Each belongs to the family whose rules are being reworked in parallel; the list may only
# shrink: a new parameter must be read by a rule.
KNOWN_UNREAD: set[str] = set()


# groups whose every description follows the convention
STRICT_GROUPS = (
    "alerts.cctv_recorder.",
    "alerts.ebike_charger.",
    "alerts.smoke_alarm.",
    "alerts.gas_alarm.",
)


def test_docs_table_is_generated_from_the_code() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert doc == parameters.markdown(), (
        "docs/rules.md is stale: .venv/bin/python -m yiju.parameters > docs/rules.md"
    )


def test_every_parameter_names_its_evidence_label() -> None:
    params = parameters.catalogue()
    assert [p.key for p in params if not p.label] == []
    assert len({p.key for p in params}) == len(params)
    # the engine-wide, CCTV and ingest parameters follow the convention ` — [LABEL] source`
    strict = [
        p.key
        for p in params
        if (p.key.count(".") == 1 or p.key.startswith(STRICT_GROUPS)) and not p.convention
    ]
    assert strict == []


def test_the_description_convention_is_parsed_and_old_styles_still_yield_a_label() -> None:
    assert parameters.parse("Trip current, mA — [S] GB 50116-2013 §9.2.3: 300–500 mA") == (
        "Trip current, mA",
        "S",
        "GB 50116-2013 §9.2.3: 300–500 mA",
        True,
    )
    assert parameters.parse("Gap, s — [NOT FOUND]: configurable")[1:] == ("NOT FOUND", "configurable", True)
    # not (yet) in the convention: the weakest label mentioned
    text, label, _, convention = parameters.parse("Set-point — GB/T 50493 [S]; household [NOT FOUND]")
    assert (text, label, convention) == ("Set-point", "NOT FOUND", False)
    assert parameters.parse("No source at all")[1] == ""


def test_units_and_scopes() -> None:
    by_key = {p.key: p for p in parameters.catalogue()}
    assert by_key["alerts.ebike_charger.port_over_temp_c"].unit == "°C"
    assert by_key["alerts.gas_alarm.low_alarm_lel_pct"].unit == "%LEL"
    assert by_key["alerts.cctv_recorder.retention_days"].unit == "d"
    assert by_key["ingest.max_future"].default == 300.0 and by_key["ingest.max_future"].scope == "deployment"
    assert by_key["alerts.smoke_alarm.heartbeat_s"].scope.startswith("device")
    assert by_key["alerts.cctv_recorder.gap_tolerance_s"].scope == "community"


def test_no_new_parameter_goes_unread_by_the_rules() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "alerts").rglob("*.py"))
    source += "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "ingest").rglob("*.py"))
    unread = {
        p.key
        for p in parameters.catalogue()
        if not re.search(rf"\.{re.escape(p.key.rsplit('.', 1)[1])}\b", source)
    }
    assert unread <= KNOWN_UNREAD, f"read by no rule: {sorted(unread - KNOWN_UNREAD)}"


def test_unsourced_defaults_a_community_runs_on() -> None:
    th = AlertSettings()
    keys = {p.override_key for p in parameters.unsourced_defaults(th, None)}
    assert "cctv_recorder.gap_tolerance_s" in keys and "ebike_charger.port_current_limit_a" in keys
    assert "cctv_recorder.retention_days" not in keys  # [S2]: sourced
    assert "cctv_recorder.daily_evaluation_s" not in keys  # [NOT FOUND], but no safety threshold
    overridden = parameters.unsourced_defaults(th, {"cctv_recorder": {"gap_tolerance_s": 600}})
    assert "cctv_recorder.gap_tolerance_s" not in {p.override_key for p in overridden}
    deployed = AlertSettings(cctv_recorder=CctvRules(gap_tolerance_s=120.0))
    assert "cctv_recorder.gap_tolerance_s" not in {
        p.override_key for p in parameters.unsourced_defaults(deployed, None)
    }
