"""`yiju demo`: the whole stack on private local services, a simulated compound, the live console.

What happens, in order: the local stack (private PostgreSQL + Mosquitto under the state directory)
starts and is migrated; a small simulated compound is registered; a demo login is created (its
password is kept in `<state dir>/demo-login.json` so later runs reuse it); ingest, the alert engine,
command dispatch, upkeep and the escalation worker start (the fire escalates to a SIP call that a
SIPp callee answers, pressing 1 to acknowledge); the simulator plays the compound in real time with a
few incidents scheduled in the first minutes (a fire with a door that fails to release, a charger
whose relay is stuck, a door forced open, …); and the API serves the console until Ctrl-C or
`--duration`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devices import credentials
from simulators import behaviour, scenarios
from simulators.compound import Fleet, Size, generate_fleet
from simulators.mqtt_publisher import DevicePublisher, LoadPublisher
from simulators.runner import play
from simulators.stream import SimClock, merge
from storage import maintenance, registry
from storage.db import connection
from storage.maintenance import NewRecord
from storage.migrate import migrate
from storage.users import Role, community_ids_by_code, create_user, get_user_by_username
from yiju.commands.simulate import register_fleet
from yiju.demo_callee import DemoCallee, seed_linkage
from yiju.errors import YijuError
from yiju.metrics import ProcessMetrics, serve_metrics
from yiju.runtime import Runtime, serve_until_signal
from yiju.settings import Settings
from yiju.stack import BrokerAuth, LocalStack, with_credentials

log = logging.getLogger(__name__)

DEMO_SEED = 1
DEMO_PREFIX = "demo"
DEMO_USER = "demo"
LOGIN_FILE = "demo-login.json"
# Incidents played into the demo compound (scenario, seconds after the start). Each scenario plays
# about a minute of normal traffic before its incident, so the first alarm (the fire) comes after
# about a minute and the others follow over the next few minutes.
INCIDENTS: tuple[tuple[str, float], ...] = (
    ("smoke_fire_linkage_door_fails", 0.0),
    ("door_forced_open", 10.0),
    ("charger_overtemp_stuck_relay", 20.0),
    ("gas_high_valve_fails", 40.0),
    ("nvr_retention_short", 60.0),
    ("elevator_trapped_rescued", 80.0),
)
SIMULATOR_STOP_S = 10.0
BROKER_AUTH_DIR = "mqtt-auth"
SECRETS_FILE = "secrets.json"
DEMO_INGEST_USER = "yiju-ingest"
DEMO_GATEWAY_USER = "yiju-gateway"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str | None  # None: created by an earlier run whose password file is gone


def ensure_login(database_url: str, state_dir: Path, fleet: Fleet) -> DemoLogin:
    """An admin login for the demo; the password is generated once and kept beside the stack."""
    path = state_dir / LOGIN_FILE
    with connection(database_url) as conn:
        if get_user_by_username(conn, DEMO_USER) is not None:
            try:
                saved = json.loads(path.read_text())
                return DemoLogin(DEMO_USER, str(saved["password"]))
            except (OSError, ValueError, KeyError):
                return DemoLogin(DEMO_USER, None)
        password = secrets.token_urlsafe(9)
        codes = [c.community.code for c in fleet.compounds]
        create_user(
            conn,
            username=DEMO_USER,
            role=Role.ADMIN,
            password=password,
            community_ids=community_ids_by_code(conn, codes),
            display_name="演示管理员 Demo admin",
        )
        conn.commit()
    path.write_text(json.dumps({"username": DEMO_USER, "password": password}))
    path.chmod(0o600)
    return DemoLogin(DEMO_USER, password)


@dataclass(frozen=True)
class DemoBroker:
    """The demo broker's accounts: Yiju's services log in as `ingest`, the simulator's devices each
    as themselves (`devices`: uid → password), a multiplexing simulator as `gateway`."""

    auth: BrokerAuth
    gateway: tuple[str, str]
    devices: dict[str, str]


def secure_broker(database_url: str, auth_dir: Path, prefix: str) -> DemoBroker:
    """Per-device credentials and the ACL for every registered device, as in production (issue 10
    §8: the demo broker used to accept anonymous clients, so anyone on the machine could read every
    community's telemetry and forge commands).

    Passwords are kept in `<auth_dir>/secrets.json` (mode 0600) so that later runs reuse them; only
    their PBKDF2 hashes reach the database and the broker's password file.
    """
    auth_dir.mkdir(parents=True, exist_ok=True)
    auth_dir.chmod(0o700)
    secrets_path = auth_dir / SECRETS_FILE
    try:
        saved = json.loads(secrets_path.read_text())
        services: dict[str, str] = dict(saved["services"])
        devices: dict[str, str] = dict(saved["devices"])
    except (OSError, ValueError, KeyError, TypeError):
        services, devices = {}, {}
    for name in (DEMO_INGEST_USER, DEMO_GATEWAY_USER):
        services.setdefault(name, credentials.new_password())
    service_accounts = [
        credentials.ServiceAccount(name, role, credentials.hash_password(services[name]))
        for name, role in (
            (DEMO_INGEST_USER, credentials.ServiceRole.INGEST),
            (DEMO_GATEWAY_USER, credentials.ServiceRole.GATEWAY),
        )
    ]
    with connection(database_url) as conn:
        registry.reserve_mqtt_usernames(conn, [a.username for a in service_accounts], "demo service account")
        new_hashes: dict[str, str] = {}
        accounts: list[credentials.DeviceAccount] = []
        for uid, community, stored in registry.credentials(conn):
            encoded = stored
            if encoded is None or uid not in devices:
                devices[uid] = credentials.new_password()
                encoded = credentials.hash_password(devices[uid])
                new_hashes[uid] = encoded
            accounts.append(credentials.DeviceAccount(uid, community, encoded))
        # the passwords reach disk before their hashes are committed: none is ever lost
        _write_private(secrets_path, json.dumps({"services": services, "devices": devices}))
        registry.set_credentials_hashes(conn, new_hashes)
        conn.commit()
    passwd, acl = auth_dir / "passwd", auth_dir / "acl"
    _write_private(passwd, credentials.password_file(accounts, service_accounts))
    _write_private(acl, credentials.acl_file(prefix, accounts, service_accounts))
    # Mosquitto runs as this user (`user` in its config) and must read both files
    auth = BrokerAuth(passwd, acl, DEMO_INGEST_USER, services[DEMO_INGEST_USER])
    return DemoBroker(auth, (DEMO_GATEWAY_USER, services[DEMO_GATEWAY_USER]), devices)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


class SimulatorThread:
    """Plays the demo compound in real time (speed 1) with the incidents above; owned and stoppable.

    Each simulated device logs in to the broker with its own credentials (`broker.devices`); when one
    session per device is not possible, a few multiplexed sessions log in as the gateway account."""

    def __init__(self, settings: Settings, mqtt_url: str, fleet: Fleet, broker: DemoBroker | None) -> None:
        self._settings = settings
        self._mqtt_url = mqtt_url
        self._fleet = fleet
        self._broker = broker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-simulator", daemon=True)
        self.error: BaseException | None = None

    def _stream(self, start: datetime) -> Any:
        compound = self._fleet.compounds[0]
        picker = scenarios.Picker(compound)  # shared, so each incident gets devices of its own
        built = [
            scenarios.build([name], compound, start + timedelta(seconds=offset), picker=picker)[0]
            for name, offset in INCIDENTS
        ]
        claimed = frozenset(uid for s in built for uid in s.devices)
        background = behaviour.fleet_background(self._fleet, start, None, exclude=claimed)
        return merge(background, *(s.messages for s in built))

    def _publisher(self) -> DevicePublisher | LoadPublisher:
        prefix = self._settings.mqtt.topic_prefix
        try:
            DevicePublisher.check_capacity(self._fleet.device_count())
        except YijuError as exc:
            log.warning("one MQTT session per device is not possible here (%s); multiplexing", exc)
            url = (
                self._mqtt_url
                if self._broker is None
                else with_credentials(self._mqtt_url, *self._broker.gateway)
            )
            return LoadPublisher(url, prefix, connections=4)
        if self._broker is None:  # an external broker: the URL's account for every device
            return DevicePublisher(self._mqtt_url, prefix)
        return DevicePublisher(self._mqtt_url, prefix, password_for=self._broker.devices.get)

    def _run(self) -> None:
        start = datetime.now(UTC).replace(microsecond=0)
        try:
            with self._publisher() as publisher:
                play(self._stream(start), publisher, SimClock(start, 1.0, time.monotonic()), stop=self._stop)
        except Exception as exc:  # logged now and reported again at stop; the console keeps serving
            self.error = exc
            log.exception("demo simulator stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SIMULATOR_STOP_S)


def seed_records(database_url: str, fleet: Fleet) -> None:
    """The fire system's maintenance history a real compound would have on file (once): the yearly
    maintenance and last month's system test by the maintenance company, so that the indicator report
    (docs/indicators.md, item [10]) reads as it would on site."""
    now = datetime.now(UTC).replace(microsecond=0)
    with connection(database_url) as conn:
        for compound in fleet.compounds:
            (cid,) = community_ids_by_code(conn, [compound.community.code])
            if maintenance.list_records(conn, cid, limit=1):
                continue
            maintenance.add_records(
                conn,
                cid,
                [
                    NewRecord("smoke_alarm", "maintenance", now - timedelta(days=60), "消防维保公司", "pass",
                              notes="年度维保（演示数据）"),
                    NewRecord("smoke_alarm", "test", now - timedelta(days=10), "消防维保公司", "pass",
                              notes="全系统联动测试（演示数据）"),
                ],
                source="manual",
                recorded_by="demo",
            )  # fmt: skip
        conn.commit()


def run_demo(settings: Settings, *, duration_s: float | None = None, port: int | None = None) -> int:
    fleet = generate_fleet(Size.SMALL, 1, DEMO_SEED, prefix=DEMO_PREFIX)
    prepared: dict[str, Any] = {}

    def before_broker(database_url: str) -> BrokerAuth:
        # the registry must hold the fleet before the broker's password and ACL files are written
        prepared["report"] = migrate(database_url, settings.database)
        register_fleet(database_url, fleet)
        broker = secure_broker(database_url, settings.state_dir / BROKER_AUTH_DIR, settings.mqtt.topic_prefix)
        prepared["broker"] = broker
        return broker.auth

    with LocalStack(settings, before_broker=before_broker) as endpoints, contextlib.ExitStack() as cleanup:
        if "report" in prepared:
            report, broker = prepared["report"], prepared["broker"]
        else:  # an external broker (YIJU_MQTT__URL): it has its own accounts
            report = migrate(endpoints.database_url, settings.database)
            register_fleet(endpoints.database_url, fleet)
            broker = None
        login = ensure_login(endpoints.database_url, settings.state_dir, fleet)
        seed_records(endpoints.database_url, fleet)
        # emergency linkage: the fire escalates to a SIP call answered by SIPp, which presses 1
        seed_linkage(endpoints.database_url, fleet.compounds[0].community.code)
        settings = _with_callee(settings, cleanup)
        runtime = Runtime(settings, endpoints, ProcessMetrics("demo"))
        server = runtime.api_server(port=port)
        m = settings.metrics
        exporter = serve_metrics(runtime.process.registry, m.host, m.port, any_port=True)
        with exporter, runtime:
            sim_url = endpoints.mqtt_url if broker is None else _plain(endpoints.mqtt_url)
            simulator = SimulatorThread(settings, sim_url, fleet, broker)
            simulator.start()
            host, bound_port = server.config.host, server.config.port
            password = login.password or f"(set by an earlier run; see {settings.state_dir / LOGIN_FILE})"
            print(f"storage   {report.mode} ({report.mode_reason})")
            auth = "per-device passwords and ACL" if broker is not None else "external"
            print(f"broker    {_plain(endpoints.mqtt_url)} ({auth})")
            community = fleet.compounds[0].community.code
            print(f"devices   {fleet.device_count():,} simulated in community {community}")
            print(f"console   http://{host}:{bound_port}/console/   login: {login.username} / {password}")
            print(
                f"report    console tab 指标核验, or: yiju report indicators --community {community} --out F"
            )
            print(f"metrics   {exporter.url}")
            _print_linkage(settings)
            print("The first incident (a fire) comes after about a minute. Press Ctrl-C to stop.", flush=True)
            _serve(server, duration_s, simulator)
            if simulator.error is not None:
                print(f"the simulator stopped early: {simulator.error}")
    print("stopped")
    return 0


def _serve(server: Any, duration_s: float | None, simulator: SimulatorThread) -> None:
    """Serve until Ctrl-C / SIGTERM or `duration_s`; the simulator stops with the server."""
    timer: threading.Timer | None = None
    if duration_s is not None:
        timer = threading.Timer(duration_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    try:
        serve_until_signal(server)
    finally:
        if timer is not None:
            timer.cancel()
        simulator.stop()


def _with_callee(settings: Settings, cleanup: contextlib.ExitStack) -> Settings:
    """Start SIPp as the demo's duty phone (when installed) and point the SIP channel at it."""
    callee = DemoCallee(settings.state_dir)
    if not DemoCallee.available():
        return settings
    callee.start()
    cleanup.callback(callee.stop)  # after the runtime has stopped (its calls end first)
    sip = settings.linkage.sip.model_copy(update={"proxy": callee.proxy})
    return settings.model_copy(update={"linkage": settings.linkage.model_copy(update={"sip": sip})})


def _print_linkage(settings: Settings) -> None:
    proxy = settings.linkage.sip.proxy
    if proxy:
        print(f"linkage   fire → duty room → SIP call to the duty phone (SIPp at {proxy}, presses 1)")
    else:
        print("linkage   SIPp (sip-tester) not installed: calls to the duty manager will fail visibly")


def _plain(url: str) -> str:
    """The URL without its credentials (for printing, and as the base of per-device logins)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
