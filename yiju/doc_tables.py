"""Reference tables of docs/mqtt.md and docs/api.md, generated from the code they describe.

Each table sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` in its document, so
the prose around it stays hand-written. `tests/test_doc_tables.py` fails when a document and the code
disagree; regenerate with

    .venv/bin/python -m yiju.doc_tables          # rewrites the generated blocks in place

Pure apart from `main` (which reads and writes the two files).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from alerts.config import AlertSettings
from devices.alarms import ALARM_INFO, AlarmType, Check
from devices.contract import DeadLetterReason
from devices.csv_import import COLUMNS, META_PREFIX, REMARK_COLUMNS
from ingest.config import IngestSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"

# What each refusal means and whose dead letter it is (GET /api/v1/dead-letters scoping). Keyed by
# the enum, so a new reason without a line here fails the documentation test.
REASONS: dict[DeadLetterReason, str] = {
    DeadLetterReason.OVERSIZE: "payload larger than `max_payload_bytes` (checked first, nothing parsed)",
    DeadLetterReason.BAD_TOPIC: "topic not `{prefix}/v1/<community>/<device>/<channel>` (wrong depth, an "
    "unknown channel, ids outside `[A-Za-z0-9_-]{1,64}`), or something other than a command on `cmd`",
    DeadLetterReason.UNSUPPORTED_VERSION: "topic version (`v2`, …) or envelope `v` other than 1",
    DeadLetterReason.UNKNOWN_DEVICE: "no registered device with the topic's id — after a direct registry "
    "lookup, never because of a stale cache",
    DeadLetterReason.DEVICE_DISABLED: "the device is registered but disabled (decommissioned)",
    DeadLetterReason.TOPIC_MISMATCH: "envelope `device` ≠ the topic's device, **or the topic names a "
    "community other than the device's**",
    DeadLetterReason.FAMILY_MISMATCH: "envelope `family` ≠ the registered family",
    DeadLetterReason.MALFORMED_JSON: "not UTF-8 JSON, or not a JSON object",
    DeadLetterReason.SCHEMA_VIOLATION: "JSON, but not the family's model for the channel; the detail names "
    "the field (a string `seq`, an epoch `ts`, a value outside the physical range, an unknown field)",
    DeadLetterReason.TIMESTAMP_OUT_OF_WINDOW: "telemetry whose device `ts` is outside the timestamp window "
    "(§3); events, status and acknowledgements are never refused for their time alone",
    DeadLetterReason.ENGINE_OUTPUT_REFUSED: "not the message itself: what the alert engine made of it "
    "(an alarm, finding or command) was refused by the database for its content; topic `engine/<device>`, "
    "the outputs as text and the error in the detail — recorded instead of retried forever",
}

CHECKS: dict[Check, tuple[str, str]] = {
    Check.AUTO_CUTOFF: ("自动断电", "a charging port's power cut after a trigger, within the deadline"),
    Check.PROTECTION_CONFIG: ("保护设置", "a post's protections (over-temperature cut, …) switched on"),
    Check.FAULT_ALARM: (
        "故障报警",
        "every fault is reported by the device itself; a fault seen only in telemetry is `silent_fault`",
    ),
    Check.CCTV_RETENTION: ("录像保存≥30天", "each camera channel keeps ≥ 30 days, no long gaps, recording"),
    Check.LINKAGE: ("联动", "on fire: doors released, elevators recalled, lights forced on in time"),
    Check.RESCUE: ("困人救援", "a rescuer arrives at a trapped elevator within the rescue time"),
    Check.SELF_TEST: (
        "探测器自检记录",
        "a smoke alarm's self-tests and test alarms (records), its battery self-check within 24 h",
    ),
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400} days"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} s"


def dead_letter_reasons() -> str:
    missing = set(DeadLetterReason) - set(REASONS)
    if missing:
        raise KeyError(f"doc_tables.REASONS lacks {sorted(missing)}")
    return _table(["reason", "when"], [[f"`{r.value}`", REASONS[r]] for r in DeadLetterReason])


def timestamp_window() -> str:
    s = IngestSettings()
    fields = IngestSettings.model_fields
    return _table(
        ["bound", "default", "setting", "why"],
        [
            ["oldest accepted `ts`", f"now − {_duration(s.max_past)}", "`YIJU_INGEST__MAX_PAST`",
             fields["max_past"].description or ""],
            ["newest accepted `ts`", f"now + {_duration(s.max_future)}", "`YIJU_INGEST__MAX_FUTURE`",
             fields["max_future"].description or ""],
        ],
    )  # fmt: skip


def silent_fault() -> str:
    a = AlertSettings()
    return _table(
        ["what", "default", "setting"],
        [
            [
                "a fault state in telemetry without the device's own fault event → `silent_fault`",
                f"{a.fault_alarm_deadline_s:g} s after the first report showing it",
                "`YIJU_ALERTS__FAULT_ALARM_DEADLINE_S`",
            ],
            [
                "…decided by the timer when no further message arrives, after a grace of",
                f"{a.tick_grace_s:g} s",
                "`YIJU_ALERTS__TICK_GRACE_S`",
            ],
        ],
    )


def alarm_types() -> str:
    return _table(
        ["type", "severity", "中文", "English"],
        [
            [f"`{t.value}`", ALARM_INFO[t].severity.value, ALARM_INFO[t].zh, ALARM_INFO[t].en]
            for t in AlarmType
        ],
    )


def check_names() -> str:
    missing = set(Check) - set(CHECKS)
    if missing:
        raise KeyError(f"doc_tables.CHECKS lacks {sorted(missing)}")
    return _table(["check", "中文", "what it verifies"], [[f"`{c.value}`", *CHECKS[c]] for c in Check])


def csv_columns() -> str:
    return (
        ", ".join(f"`{c}`" for c in COLUMNS)
        + "; free text: "
        + ", ".join(f"`{c}`" for c in sorted(REMARK_COLUMNS))
        + f", `{META_PREFIX}<key>`"
    )


TABLES: dict[str, dict[str, Callable[[], str]]] = {
    "mqtt.md": {
        "dead-letter-reasons": dead_letter_reasons,
        "timestamp-window": timestamp_window,
        "silent-fault": silent_fault,
        "alarm-types": alarm_types,
        "check-names": check_names,
    },
    "api.md": {
        "dead-letter-reasons": dead_letter_reasons,
        "csv-columns": csv_columns,
    },
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.DOTALL)


def render(doc_name: str, text: str) -> str:
    """`text` (the document `doc_name`) with every generated block rewritten from the code."""
    for name, make in TABLES[doc_name].items():
        pattern = _block(name)
        if not pattern.search(text):
            raise KeyError(f"docs/{doc_name} has no <!-- generated:{name} --> block")
        body = make()
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(3), text)  # type: ignore[misc]
    return text


def main() -> int:
    for doc_name in TABLES:
        path = DOCS / doc_name
        text = path.read_text(encoding="utf-8")
        new = render(doc_name, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
