"""Rule states of form 3 as the engine of the previous version wrote them (every record a positional
list under a mark key), one per family, for the form-4 reader (tests/test_rules_core.py) and
migration 0026 (tests/test_migrations.py)."""

from __future__ import annotations

from typing import Any

_BASE: dict[str, Any] = {"v": 3, "t": 1000.0, "x": 1001.5, "h": 0, "o": {}, "e": [7, 127, 1000.0, 900.0]}

FORM_3_STATES: dict[str, dict[str, Any]] = {
    "charger": {
        **_BASE,
        "o": {"charger_over_temperature": 950.0, "auto_cutoff_failed": 990.0},
        "m": {
            "co": 1.5,
            "ck": [990.0, 1.25, 3],
            "f:charger_over_temperature": [2, 900.0],
            "h:sensor_implausible": [-1, 1],
            "rf:3:fuse_blown": [960.0, "charger_fault"],
            "sf:4:relay_welded": [970.0, 1, "charger_fault"],
            "sf:*": [980.0, 0, "charger_fault"],
            "t:over_temperature:3": 940.0,
            "t:fullsince:2": 800.0,  # a timer of even earlier versions, dropped by the rules
            "q:charger_overload": 995.0,
            "ev:smoke": 1,
            "ps:3": [975.0, "over_temperature"],
            "np:1": [976.0, "user_unplug"],
            "np:3": [977.0, "power_loss"],
            "fw:2": [850.0, 7200],
            "on": [1, 2, 5],
            "p": ["over_temp_c_loose"],
        },
        "cuts": {"over_temperature:3": {"t0": 950.0, "deadline": 980.0, "stage": 0, "ports": [3]}},
    },
    "charger_old_protection_bits": {**_BASE, "m": {"p": 3, "on": []}},
    "cctv": {
        **_BASE,
        "m": {
            "co": 0.0,
            "c1": [3, 0.0, 0, 990.0, 100.0],
            "c2": [1, 950.0, 10, 990.0, 0.0],
            "g2": [[900.0, 120.0], [950.0, 30.5]],
            "c3": [0, 0.0, -1, 0.0, 0.0],
            "g4": [],
            "cl": 999.0,
            "ro": 1,
            "ow": 0,
            "ca:cctv_recording_gap": [2],
            "rf:disk_full": [980.0, "cctv_disk_fault"],
            "t:off3": 960.0,
        },
    },
    "elevator": {
        **_BASE,
        "o": {"elevator_trapped": 910.0},
        "m": {
            "mode": "normal",
            "r": [910.0, 1],
            "rd": 800.0,
            "tre": 1,
            "trt": 0,
            "sf:d:moving_with_door_open": [990.0, 0, "elevator_door_open_while_moving", 1],
            "sf:trapped_at_level": [910.0, 0, "elevator_trapped"],
            "ex:elevator_recall": "inspection",
            "sat:door_release": 1,
            "t:trap": 905.0,
        },
    },
    "smoke": {
        **_BASE,
        "m": {"bs": [900.0, 25200, 1, 0], "bc": 1, "ev:fire": 1, "f:low_battery": [4, 100.0]},
    },
    "smoke_unannounced_silence": {**_BASE, "m": {"bs": [900.0, -1, 0, 1], "bc": 0}},
    "gas": {
        **_BASE,
        "m": {
            "ge": 2,
            "gs": 0,
            "gr": [12.5, -1.0],
            "valve": "open",
            "gc": 1003.0,
            "sf:*": [990.0, 1, "gas_detector_fault"],
        },
        "actions": {"valve_close": {"t0": 1000.0, "deadline": 1030.0, "stage": 0}},
    },
    "gas_even_older": {**_BASE, "m": {"ev:gas": 1, "gs": 1, "gr": [3.0, 40.0], "valve": "none"}},
    "door": {
        **_BASE,
        "m": {
            "c:denied": [3, 990.0],
            "ev:held": 1,
            "t:open": 950.0,
            "ex:door_release": "",
            "sat:door_release": 1,
        },
    },
    "plain": {**_BASE, "m": {}},
}
