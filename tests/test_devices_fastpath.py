"""The compiled fast path agrees with the pydantic wire models (devices/fastpath.py's contract).

Whatever the fast path accepts, the models accept, with equal values (same types, enum members,
instants and offsets); what it declines goes the models' way, so every refusal reads as before. Checked
on every sample payload and on hypothesis mutations of them: values replaced at any path (numbers at
and beyond their bounds, strings of every shape, device times just outside the contract's format),
keys removed, unknown keys added, and the raw text edited (duplicate keys, escapes, bytes).
"""

from __future__ import annotations

import copy
import enum
import json
import math
from datetime import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from devices import catalog, fastpath, samples
from devices.contract import Channel, Family

CASES = [
    (family, channel)
    for family in Family
    for channel in (Channel.TELEMETRY, Channel.STATUS, Channel.EVENT, Channel.COMMAND_ACK)
]
FAST = [(f, c) for f, c in CASES if c in fastpath.FAST_CHANNELS]


def _id(case: tuple[Family, Channel]) -> str:
    return f"{case[0].value}.{case[1].value}"


def same(fast: Any, model: Any, path: str = "$") -> None:
    """`fast` (a Struct tree) carries exactly the values of `model` (a pydantic model tree)."""
    if isinstance(model, BaseModel):
        assert isinstance(fast, msgspec.Struct), path
        assert set(fast.__struct_fields__) == set(type(model).model_fields), path
        for name in type(model).model_fields:
            same(getattr(fast, name), getattr(model, name), f"{path}.{name}")
        if hasattr(type(model), "refused"):
            assert dict(fast.refused) == dict(model.refused) == {}, path
        return
    if isinstance(model, list):
        assert isinstance(fast, list) and len(fast) == len(model), path
        for i, (a, b) in enumerate(zip(fast, model, strict=True)):
            same(a, b, f"{path}[{i}]")
        return
    if isinstance(model, enum.Enum):
        assert fast is model, path
        return
    if isinstance(model, datetime):
        assert isinstance(fast, datetime), path
        assert fast == model and fast.utcoffset() == model.utcoffset(), path
        assert fast.isoformat() == model.isoformat(), path
        return
    assert type(fast) is type(model), f"{path}: {type(fast).__name__} vs {type(model).__name__}"
    if isinstance(model, float) and math.isnan(model):
        assert math.isnan(fast), path
    else:
        assert fast == model, path


def check(family: Family, channel: Channel, payload: bytes | str) -> str:
    """Assert the contract for one payload; say which way it went."""
    fast = catalog.FAST.decode(family, channel, payload)
    try:
        model = catalog.decode(family, channel, payload)
    except (ValidationError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        assert fast is None, f"the fast path accepted what the models refuse: {refused}"
        return "both refuse"
    if fast is None:
        return "declined, the models accept"
    same(fast, model)
    return "fast path"


def _doc(family: Family, channel: Channel) -> dict[str, Any]:
    return json.loads(samples.payload(family, channel))


@pytest.mark.parametrize("case", FAST, ids=[_id(c) for c in FAST])
def test_every_sample_takes_the_fast_path(case: tuple[Family, Channel]) -> None:
    family, channel = case
    assert check(family, channel, samples.payload(family, channel)) == "fast path"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_accept_decodes_as_before(case: tuple[Family, Channel]) -> None:
    """`catalog.accept` takes the fast path on the fast channels only, with the models' values."""
    family, channel = case
    for family_, channel_, doc in samples.all_messages():
        if (family_, channel_) != case:
            continue
        payload = json.dumps(doc).encode()
        body = catalog.accept(family, channel, payload)
        model = catalog.decode(family, channel, payload)
        if channel in fastpath.FAST_CHANNELS:
            same(body, model)
        else:
            assert body == model and isinstance(body, BaseModel)


def test_the_charger_refusing_one_reading_still_goes_the_models_way() -> None:
    doc = _doc(Family.EBIKE_CHARGER, Channel.TELEMETRY)
    doc["data"]["ports"][0]["port_temp_c"] = 999.0
    payload = json.dumps(doc).encode()
    assert catalog.FAST.decode(Family.EBIKE_CHARGER, Channel.TELEMETRY, payload) is None
    body: Any = catalog.accept(Family.EBIKE_CHARGER, Channel.TELEMETRY, payload)
    assert isinstance(body, BaseModel) and dict(body.data.refused) == {"ports[1].port_temp_c": 999.0}


def test_methods_and_properties_of_the_models_work_on_fast_bodies() -> None:
    doc = _doc(Family.LIGHT, Channel.TELEMETRY)
    doc["data"]["schedule"] = [{"on_at": "18:00", "off_at": "06:00"}]
    payload = json.dumps(doc).encode()
    body: Any = catalog.FAST.decode(Family.LIGHT, Channel.TELEMETRY, payload)
    model: Any = catalog.decode(Family.LIGHT, Channel.TELEMETRY, payload)
    from datetime import time  # noqa: PLC0415

    for t in (time(5), time(12), time(19)):
        assert body.data.schedule[0].covers(t) == model.data.schedule[0].covers(t)
    charger: Any = catalog.FAST.decode(
        Family.EBIKE_CHARGER, Channel.TELEMETRY, samples.payload(Family.EBIKE_CHARGER, Channel.TELEMETRY)
    )
    assert not charger.data.refused


# --- mutations ------------------------------------------------------------------------------------

DEVICE_TIMES = st.one_of(
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z"),
    st.sampled_from(
        [
            "2026-06-01T08:00:00+08:00",
            "2026-06-01T08:00:00Z",
            "2026-06-01T08:00:00-00:00",
            "2026-06-01T08:00:00.123456+08:00",
            "2026-06-01T08:00:00.1234567+08:00",
            "2026-06-01T08:00:00.123456789Z",
            "2026-06-01t08:00:00+08:00",
            "2026-06-01 08:00:00+08:00",
            "2026-06-01T08:00:00z",
            "2026-06-01T08:00:00",
            "2026-06-01T08:00+08:00",
            "2026-06-01T24:00:00+08:00",
            "2026-06-01T23:59:60+08:00",
            "2026-02-30T08:00:00+08:00",
            "2026-06-01T08:00:00+24:00",
            "2026-06-01T08:00:00+23:59",
            "2026-06-01T08:00:00+08:60",
            "2026-06-01T08:00:00+0800",
            "2026-06-01T08:00:00+08:00\n",
            "1796111959",
            "2026-06-01",
            "２０２６-06-01T08:00:00+08:00",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, 30, 32, 33, 64, 255, 256, 86_400, 86_401]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-320, 1e308, 100.0, 100.00001, -50.0, -50.0001, 300.0, 500.0]),
    st.text(max_size=70),
    st.sampled_from(["online", "offline", "charging", "idle", "normal", "on", "", "SAMPLE-1", "18:00"]),
    DEVICE_TIMES,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for p in path[:-1]:
        node = node[p]
    return node


@st.composite
def mutated(draw: st.DrawFn, family: Family, channel: Channel) -> bytes:
    doc = _doc(family, channel)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "nudge"]))
        leaf = path[-1]
        if kind == "replace":
            parent[leaf] = draw(VALUES)
        elif kind == "delete":
            if isinstance(parent, dict):
                del parent[leaf]
            else:
                parent.pop(leaf)
        elif kind == "add":
            target = parent[leaf] if isinstance(parent[leaf], dict) else parent
            if isinstance(target, dict):
                target[draw(st.sampled_from(["extra", "Port", "ts ", "data", "refused", "_refused"]))] = draw(
                    VALUES
                )
            else:
                target.append(copy.deepcopy(draw(st.sampled_from(target))) if target else draw(VALUES))
        else:  # a number just around a bound, or of the other numeric type
            value = parent[leaf]
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            parent[leaf] = draw(
                st.sampled_from(
                    [
                        float(value),
                        int(value),
                        value + 1,
                        value - 1,
                        -value,
                        value * 1000,
                        math.nextafter(float(value), math.inf),
                        math.nextafter(float(value), -math.inf),
                    ]
                )
            )
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    edit = draw(st.sampled_from(["none", "none", "dup", "escape", "bytes", "space", "trailing"]))
    if edit == "dup" and text.startswith("{") and len(text) > 2:
        # a key given twice: the first occurrence repeated at the front, with another value
        key = draw(st.sampled_from(sorted(doc) if isinstance(doc, dict) and doc else ["v"]))
        text = "{" + json.dumps(key) + ":" + json.dumps(draw(VALUES)) + "," + text[1:]
    elif edit == "escape":
        text = text.replace(
            '"SAMPLE-1"', draw(st.sampled_from(['"SAMPLE\\u002d1"', '"\\ud800"', '"S\\u0000"']))
        )
    elif edit == "space":
        text = " \n" + text + " \t"
    elif edit == "trailing":
        text = text + draw(st.sampled_from([",", "}", "x", "\x00"]))
    raw = text.encode()
    if edit == "bytes":
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xe2\x80\xa8"])) + raw[i:]
    return raw


@pytest.mark.parametrize("case", FAST, ids=[_id(c) for c in FAST])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutations_agree_with_the_models(case: tuple[Family, Channel], data: st.DataObject) -> None:
    family, channel = case
    payload = data.draw(mutated(family, channel))
    assume(b"\\u0000" not in payload)  # refused before decoding (ingest.decode), whatever the models say
    event(check(family, channel, payload))


@pytest.mark.parametrize("case", FAST, ids=[_id(c) for c in FAST])
@settings(max_examples=200, deadline=None)
@given(ts=DEVICE_TIMES)
def test_device_times_agree_with_the_models(case: tuple[Family, Channel], ts: str) -> None:
    family, channel = case
    doc = _doc(family, channel)
    doc["ts"] = ts
    check(family, channel, json.dumps(doc).encode())


def _leaves(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [p for p in _paths(node, prefix) if p and not isinstance(_get(node, p), dict | list)]


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def plausible(draw: st.DrawFn, family: Family, channel: Channel) -> bytes:
    """Mostly valid variations: numbers of either type around their value, booleans flipped, strings
    swapped for other sample strings, optional keys dropped, keys reordered, other spacing."""
    doc = _doc(family, channel)
    for path in draw(st.lists(st.sampled_from(_leaves(doc)), max_size=6, unique=True)):
        parent, leaf = _parent(doc, path), path[-1]
        value = parent[leaf]
        if isinstance(value, bool):
            parent[leaf] = draw(st.booleans())
        elif isinstance(value, int | float):
            parent[leaf] = draw(
                st.one_of(
                    st.sampled_from([float(value), int(value), 0, 0.0, 1, 2, 100, 0.5]),
                    st.floats(min_value=-10, max_value=1000, allow_nan=False),
                    st.integers(min_value=-1, max_value=1000),
                )
            )
        elif value is None and draw(st.booleans()):
            del parent[leaf]
        elif isinstance(value, str):
            parent[leaf] = draw(
                st.sampled_from(
                    [
                        value,
                        "normal",
                        "online",
                        "offline",
                        "idle",
                        "charging",
                        "closed",
                        "up",
                        "18:00",
                        "24:00",
                    ]
                )
            )
    if draw(st.booleans()):
        doc = dict(reversed(list(doc.items())))
    return json.dumps(doc, indent=draw(st.sampled_from([None, 1])), ensure_ascii=draw(st.booleans())).encode()


@pytest.mark.parametrize("case", FAST, ids=[_id(c) for c in FAST])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_plausible_variations_agree_with_the_models(
    case: tuple[Family, Channel], data: st.DataObject
) -> None:
    family, channel = case
    event(check(family, channel, data.draw(plausible(family, channel))))
