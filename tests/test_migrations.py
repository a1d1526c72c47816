"""Versioned migrations: idempotent, checksummed, refusing edited history; storage mode recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import pytest
from form3_states import FORM_3_STATES
from harness import ServiceSet

from alerts.core.model import DeviceState, Obligation, Stage
from storage import migrate as migrate_module
from storage.db import connection, ensure_database
from storage.migrate import Migration, load_migrations, migrate, pending
from yiju.errors import MigrationChecksumError, MigrationError, StorageError
from yiju.settings import DatabaseSettings


def _fresh_empty_db(services: ServiceSet, name: str) -> str:
    url = services.admin_url.rsplit("/", 1)[0] + "/" + name
    services.drop_database(url)
    ensure_database(services.admin_url, name)
    return url


def _yiju(*args: str, db_url: str, mqtt_url: str = "mqtt://127.0.0.1:1") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YIJU_DATABASE__URL": db_url, "YIJU_MQTT__URL": mqtt_url}
    return subprocess.run(
        [sys.executable, "-m", "yiju.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_migrate_twice_applies_nothing_the_second_time(services: ServiceSet) -> None:
    url = _fresh_empty_db(services, "yiju_mig_twice")
    try:
        first = _yiju("db", "migrate", db_url=url)
        assert first.returncode == 0, first.stderr
        assert "applied 0001_core" in first.stdout
        second = _yiju("db", "migrate", db_url=url)
        assert second.returncode == 0, second.stderr
        assert "nothing to apply" in second.stdout
        assert "applied" not in second.stdout.replace("already applied", "")
        assert pending(url) == []
    finally:
        services.drop_database(url)


def test_edited_applied_migration_is_refused(services: ServiceSet) -> None:
    url = _fresh_empty_db(services, "yiju_mig_edited")
    try:
        migrate(url, DatabaseSettings())
        # what editing 0001_core.sql after it was applied looks like from the database's side
        with connection(url, autocommit=True) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        result = _yiju("db", "migrate", db_url=url)
        assert result.returncode == 1
        assert "0001_core.sql was edited after it was applied" in result.stderr
        with pytest.raises(MigrationChecksumError):
            pending(url)
    finally:
        services.drop_database(url)


def test_edited_file_is_refused_in_process(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    original = load_migrations()
    edited = [replace(original[0], sql=original[0].sql + "\n-- a harmless-looking edit\n"), *original[1:]]
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: edited)
    with pytest.raises(MigrationChecksumError, match="was edited after it was applied"):
        migrate(db_url, DatabaseSettings())


def test_database_newer_than_code_is_refused(db_url: str) -> None:
    with connection(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(MigrationError, match="newer version"):
        migrate(db_url, DatabaseSettings())


def test_failing_migration_rolls_back_and_says_which(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    broken = Migration(9000, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: [*load_migrations(), broken])
    with pytest.raises(MigrationError, match="9000_broken failed"):
        migrate(db_url, DatabaseSettings())
    with connection(db_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)


def test_mode_is_recorded_and_kept(make_db: Callable[[str | None], str], storage_mode: str) -> None:
    url = make_db(storage_mode)
    # asking for the other mode later does not change a database that already has data layout
    other = "partitioned" if storage_mode == "timescaledb" else "timescaledb"
    report = migrate(url, DatabaseSettings(timeseries_mode=other))  # type: ignore[arg-type]
    assert report.mode == storage_mode
    assert report.applied == []


def test_timescaledb_requested_but_unavailable_is_a_clear_error(services: ServiceSet) -> None:
    if services.timescaledb:
        pytest.skip("TimescaleDB is installed here; the refusal path needs a server without it")
    url = _fresh_empty_db(services, "yiju_mig_notsdb")
    try:
        with pytest.raises(StorageError, match="TimescaleDB was requested"):
            migrate(url, DatabaseSettings(timeseries_mode="timescaledb"))
    finally:
        services.drop_database(url)


def test_partitioned_mode_on_a_timescaledb_server_says_why(services: ServiceSet) -> None:
    url = _fresh_empty_db(services, "yiju_mig_forced")
    try:
        report = migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        assert report.mode == "partitioned"
        assert "requested in settings" in report.mode_reason
    finally:
        services.drop_database(url)


def test_0007_rewrites_stored_rule_state_and_attributes_dead_letters(
    services: ServiceSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _fresh_empty_db(services, "yiju_mig_0007")
    try:
        everything = load_migrations()
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 7]
        )
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        with connection(url) as conn:
            cid = conn.execute(
                "INSERT INTO communities (code, name) VALUES ('c7', 'C') RETURNING id"
            ).fetchone()
            did = conn.execute(
                "INSERT INTO devices (uid, community_id, family) VALUES ('d7', %s, 'light') RETURNING id", cid
            ).fetchone()
            assert cid and did
            conn.execute(
                "INSERT INTO rule_state (device_id, state) VALUES (%s, %s)",
                (did[0], '{"t": 100.5, "x": 1.0, "s": 63, "k": 255, "h": 0, "o": {}, "m": {}}'),
            )
            for topic, uid in (("yiju/v1/c7/d7/telemetry", "d7"), ("yiju/v1/c7/ghost/bogus", None)):
                conn.execute(
                    "INSERT INTO dead_letters (received_at, topic, payload, payload_size, reason, "
                    "device_uid) VALUES (now(), %s, '', 0, 'bad_topic', %s)",
                    (topic, uid),
                )
            conn.commit()
        # up to form 2 (0020 rewrites the state again: its own test below)
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 20]
        )
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        with connection(url) as conn:
            (state,) = conn.execute("SELECT state FROM rule_state").fetchone() or ()
            rows = conn.execute(
                "SELECT device_uid, community_id, device_id FROM dead_letters ORDER BY id"
            ).fetchall()
        assert state == {"v": 2, "t": 100.5, "x": 1.0, "h": 0, "o": {}, "m": {}, "e": [63, 255, 100.5, 0]}
        assert rows == [("d7", cid[0], did[0]), (None, cid[0], None)]
    finally:
        services.drop_database(url)


# A form-2 rule state as the engine of the previous version wrote it: a charging post with an
# auto-cutoff still to be cut on two ports and a missed post-wide one, a linkage action confirmed by
# two signals and one without signals, beside ordinary marks.
FORM_2_STATE = {
    "v": 2,
    "t": 1000.0,
    "x": 1001.0,
    "h": 0,
    "o": {"auto_cutoff_failed": 990.0},
    "e": [7, 127, 1000.0, 900.0],
    "m": {
        "o:over_temperature:3": [950.0, 980.0, 0, 3, 4],
        "o:fire:0": [900.0, 995.0, 1, 1, 2, 5],
        "l:door_release": [960.0, 963.0, 0, ["smoke_alarm:s1", "smoke_alarm:s2"]],
        "l:valve_close": [970.0, 1030.0, 2, []],
        "ps:3": [975.0, "over_temperature"],
        "on": [1, 2, 5],
    },
}


def test_0020_rewrites_obligations_as_typed_records(
    services: ServiceSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _fresh_empty_db(services, "yiju_mig_0020")
    try:
        everything = load_migrations()
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 20]
        )
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        with connection(url) as conn:
            cid = conn.execute(
                "INSERT INTO communities (code, name) VALUES ('c20', 'C') RETURNING id"
            ).fetchone()
            assert cid
            ids = []
            for uid in ("post", "plain"):
                row = conn.execute(
                    "INSERT INTO devices (uid, community_id, family) "
                    "VALUES (%s, %s, 'ebike_charger') RETURNING id",
                    (uid, cid[0]),
                ).fetchone()
                assert row
                ids.append(row[0])
            plain = {"v": 2, "t": 5.0, "x": 5.0, "h": 0, "o": {}, "m": {}}
            for device_id, doc in zip(ids, (FORM_2_STATE, plain), strict=True):
                conn.execute(
                    "INSERT INTO rule_state (device_id, state) VALUES (%s, %s)", (device_id, json.dumps(doc))
                )
            conn.commit()
        # up to form 3 (0026 takes it on to form 4: test_0026_…)
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 26]
        )
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        with connection(url) as conn:
            stored = dict(conn.execute("SELECT device_id, state FROM rule_state").fetchall())
    finally:
        services.drop_database(url)
    post, untouched = stored[ids[0]], stored[ids[1]]
    assert post == {
        "v": 3,
        "t": 1000.0,
        "x": 1001.0,
        "h": 0,
        "o": {"auto_cutoff_failed": 990.0},
        "e": [7, 127, 1000.0, 900.0],
        "m": {"ps:3": [975.0, "over_temperature"], "on": [1, 2, 5]},
        "cuts": {
            "over_temperature:3": {"t0": 950.0, "deadline": 980.0, "stage": 0, "ports": [3, 4]},
            "fire:0": {"t0": 900.0, "deadline": 995.0, "stage": 1, "ports": [1, 2, 5]},
        },
        "actions": {
            "door_release": {
                "t0": 960.0,
                "deadline": 963.0,
                "stage": 0,
                "signals": ["smoke_alarm:s1", "smoke_alarm:s2"],
            },
            "valve_close": {"t0": 970.0, "deadline": 1030.0, "stage": 2},
        },
    }
    assert untouched == {"v": 3, "t": 5.0, "x": 5.0, "h": 0, "o": {}, "m": {}}
    # the migrated row reads the same as the old form
    migrated, old = DeviceState.from_json(post), DeviceState.from_json(FORM_2_STATE)
    assert migrated.to_json() == old.to_json()
    assert migrated.cuts[("over_temperature", 3)] == Obligation(950.0, 980.0, Stage.WAITING, ports=(3, 4))
    assert migrated.actions["valve_close"] == Obligation(970.0, 1030.0, Stage.ESCALATED)


def test_0026_rewrites_the_records_of_form_3_as_the_engine_writes_them(
    services: ServiceSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each family's form-3 state (tests/form3_states.py) becomes, in SQL, exactly the document the
    engine writes for it after reading the old form; a form-4 row is left as it is."""
    url = _fresh_empty_db(services, "yiju_mig_0026")
    names = list(FORM_3_STATES)
    try:
        everything = load_migrations()
        monkeypatch.setattr(
            migrate_module, "load_migrations", lambda: [m for m in everything if m.version < 26]
        )
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        current = DeviceState.from_json(FORM_3_STATES["charger"]).to_json()
        with connection(url) as conn:
            cid = conn.execute(
                "INSERT INTO communities (code, name) VALUES ('c26', 'C') RETURNING id"
            ).fetchone()
            assert cid
            ids = {}
            for name, doc in [*FORM_3_STATES.items(), ("current", current)]:
                row = conn.execute(
                    "INSERT INTO devices (uid, community_id, family) "
                    "VALUES (%s, %s, 'ebike_charger') RETURNING id",
                    (name.replace("_", "-"), cid[0]),
                ).fetchone()
                assert row
                ids[name] = row[0]
                conn.execute(
                    "INSERT INTO rule_state (device_id, state) VALUES (%s, %s)", (row[0], json.dumps(doc))
                )
            conn.commit()
        monkeypatch.setattr(migrate_module, "load_migrations", lambda: everything)
        migrate(url, DatabaseSettings(timeseries_mode="partitioned"))
        with connection(url) as conn:
            stored = dict(conn.execute("SELECT device_id, state FROM rule_state").fetchall())
    finally:
        services.drop_database(url)
    for name in names:
        engine_writes = DeviceState.from_json(FORM_3_STATES[name]).to_json()
        assert stored[ids[name]] == engine_writes, name
        assert DeviceState.from_json(stored[ids[name]]).to_json() == engine_writes, name
    assert stored[ids["current"]] == current


def test_registry_writes_notify_at_commit(db_url: str) -> None:
    with connection(db_url, autocommit=True) as listener, connection(db_url) as conn:
        listener.execute("LISTEN yiju_registry")
        cid = conn.execute("INSERT INTO communities (code, name) VALUES ('cn', 'C') RETURNING id").fetchone()
        assert cid
        conn.commit()
        conn.execute("INSERT INTO devices (uid, community_id, family) VALUES ('n1', %s, 'light')", cid)
        conn.execute(
            "UPDATE devices SET credentials_hash = 'x', metadata = '{\"a\": 1}'"
        )  # not cached: quiet
        assert [n.payload for n in listener.notifies(timeout=0.2)] == ["*"]  # the community; n1 uncommitted
        conn.commit()
        conn.execute("UPDATE devices SET enabled = false WHERE uid = 'n1'")
        conn.commit()
        conn.execute(
            "INSERT INTO devices (uid, community_id, family) "
            "SELECT 'bulk-' || lpad(i::text, 6, '0'), %s, 'light' FROM generate_series(1, 1000) i",
            cid,
        )
        conn.commit()
        got = [n.payload for n in listener.notifies(timeout=0.5)]
    assert got == ["d:n1", "d:n1", "*"]  # inserted, disabled, too many for one payload
