"""Gas alarms on the pure rule core (issue 19): the valve's two deadlines, readings in warm-up and
fault, and the device's own alarm combined with Yiju's thresholds."""

from __future__ import annotations

from rules_kit import Dev

from devices.contract import Family

G = Family.GAS_ALARM


def test_a_motorised_valve_closing_in_20_s_is_compliant_and_the_close_signal_is_due_at_3_s() -> None:
    d = Dev(G)  # close signal within 3 s (GB 50166), valve reported closed within 30 s
    d.tele(0)
    d.event(10, type="high", lel_pct=60.0)
    d.tick(10 + 3 + 2.1)
    assert [c.name for c in d.commands()] == ["close_valve"]  # the device's own linkage did not close it
    d.event(30, type="valve_closed", by="command")
    (f,) = d.findings("linkage")
    assert (f.kind, f.compliant, f.measured_s, f.deadline_s) == ("valve_close", True, 20.0, 30.0)
    assert "linkage_failed" not in d.raised()

    quick = Dev(G)  # an electromagnetic valve closed by the detector itself within 1 s: no command
    quick.tele(0)
    quick.event(10, type="high", lel_pct=60.0)
    quick.tele(11, state="high_alarm", lel_pct=60.0, valve="closed")
    quick.tick(100)
    assert quick.commands() == [] and quick.findings("linkage")[0].compliant is True


def test_readings_in_warmup_and_fault_raise_nothing() -> None:
    d = Dev(G)
    d.status(0)  # power back after a cut: the sensor warms up reading nonsense
    for s in (1, 30, 60):
        d.tele(s, state="warmup", lel_pct=80.0, co_ppm=400.0)
    d.tick(120)
    assert d.raised() == [] and d.commands() == [] and d.findings() == []
    d.tele(150, state="normal", lel_pct=1.0)
    d.tele(200, state="fault", lel_pct=90.0)  # a fault is its own alarm, not a gas reading
    d.event(201, type="fault", code="sensor", active=True)
    assert d.raised() == ["gas_detector_fault"] and d.commands() == []


def test_the_device_alarm_and_yiju_thresholds_combine_without_churn() -> None:
    d = Dev(G)  # the device's own high alarm at 35 %LEL, under Yiju's 50 %LEL threshold
    for s in range(0, 600, 60):
        d.tele(s, state="high_alarm", lel_pct=35.0, valve="closed")
    assert d.raised() == ["gas_high_alarm", "gas_low_alarm"] and d.cleared() == []
    d.event(600, type="cleared")  # the device clears; Yiju's reading (35 ≥ 25 %LEL) keeps the low one
    assert d.cleared() == ["gas_high_alarm"]
    d.tele(660, state="normal", lel_pct=2.0, valve="closed")
    assert d.cleared() == ["gas_high_alarm", "gas_low_alarm"]

    co = Dev(G)  # CO 200 ppm (high 150 ppm): one alarm, held while CO stays high
    for s in range(0, 600, 60):
        co.tele(s, co_ppm=200.0, valve="closed")
    assert co.raised() == ["gas_high_alarm", "gas_low_alarm"] and co.cleared() == []
    co.tele(600, co_ppm=145.0, valve="closed")  # above 150 − 10 ppm: still held
    assert co.cleared() == []
    co.tele(660, co_ppm=5.0, valve="closed")
    assert set(co.cleared()) == {"gas_high_alarm", "gas_low_alarm"}
