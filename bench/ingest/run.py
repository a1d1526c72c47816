# ruff: noqa: TID251, PLC0415, E501 - a benchmark drives paho directly, imports lazily in child processes and prints
"""Ingest benchmark: one command, all measurements, on private PostgreSQL + Mosquitto it starts.

    .venv/bin/python bench/ingest/run.py [--duration 60] [--workers 1 2] [--compounds 1]
                                         [--rates auto | --rates 8000 10000] [--profile DIR [--profile-native]]
                                         [--tree LABEL=PATH ...] [--rounds N]

Load: the simulator's typical-compound traffic (`bench/ingest/load.py`), re-stamped at publish
time and published at QoS 1 by the simulator's raw-socket publisher.

(a) broker ceiling: publisher flat out → a bare QoS 1 subscriber (raw socket, bulk PUBACKs); also
    the same through a bare paho subscriber (what one Python paho session can receive);
(b) database ceiling: IngestWriter.write of the same rows in 2,000-message batches;
(c) end to end, per worker count: `yiju ingest --workers N`
    - saturation: the publisher as fast as the broker's windows allow for --duration s;
    - sustained: paced at a fixed offered rate for --duration s; the highest rate tried at which
      every message was committed within 5 s of the end and p99 publish-to-commit lag < 1 s.
    Reports msg/s, points/s, p50/p99 lag (ingest's histogram: device ts → commit), CPU (cores) of
    ingest, Mosquitto, PostgreSQL and the publisher, ingest peak RSS, loss, ratio (c)/min(a, b).
--profile DIR: py-spy records each ingest worker during the saturation runs (raw stacks per named
thread, `--threads --nonblocking`, and a self/inclusive table overall and per thread; py-spy's own
messages in *.py-spy.log); --profile-native adds C frames (py-spy --native, which stops ingest for
each sample: its CPU figures are then not comparable). py-spy is a dev dependency (pyproject.toml). py-spy attaches with ptrace: as the same
user it needs CAP_SYS_PTRACE, or a capability set that includes the target's (Linux
cap_ptrace_access_check) — a profiler started with fewer capabilities than ingest (a container without
SYS_PTRACE, a sandboxed shell) fails with "Failed to get process executable name" (bench/RESULTS.md). Every end-to-end run also reports ingest's CPU per stored message, split by thread
(names from one `py-spy dump` when py-spy is installed in the venv).
--tree LABEL=PATH (repeatable), --rounds N: builds compared side by side in one session: the
saturation runs and, with --rates, the paced runs, for this checkout and each other checkout of Yiju,
alternately, N rounds, against the same broker, database server and load; each run's database is
migrated (and the fleet registered) by the code of the build that runs on it, so builds with
different schemas (e.g. the points layout of migration 0028) compare fairly.
--compare: Yiju (and each --tree build) and two peers installed from the npm registry (a Node-RED
flow, a hand-written Node.js program) alternately, saturated and paced at --compare-rate, --rounds
rounds, after the ceilings (a) and (b); JSON into bench/results/ingest-compare-<date>.json and a
Markdown table on stdout (method: bench/ingest/compare.py). --smoke: in seconds, without services or
the network, that the peers' files are there and parse.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]

from load import Template, bench_fleet, drain_qos1, expected_totals, publish, templates  # noqa: E402

from storage.db import connection  # noqa: E402

PREFIX = "bench"
LAG_OK_S = 1.0
DRAIN_OK_S = 5.0
STALL_S = 30.0
CTX = mp.get_context("spawn")


# --- processes ------------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _thread_names(pid: int) -> dict[int, str]:
    """Native thread id → Python thread name, from one `py-spy dump` (Python 3.11 does not give its
    thread names to the kernel: every `comm` reads "python"); {} without py-spy."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {}
    try:
        text = subprocess.run(
            [str(spy), "dump", "-p", str(pid)], check=False, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names: dict[int, str] = {}
    for line in text.splitlines():  # Thread 5789 (active+gil): "ingest-writer"
        if line.startswith("Thread ") and '"' in line:
            tid = line.split()[1]
            name = line.split('"')[1]
            if tid.isdigit():
                names[int(tid)] = "paho" if name.startswith("paho-mqtt-client") else name
            elif tid.startswith("0x"):
                names[int(tid, 16)] = name
    return names


def _thread_cpu_s(pid: int, names: dict[int, str]) -> dict[str, float]:
    """CPU seconds per thread of process `pid`, by Python thread name where known."""
    out: Counter[str] = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return {}
    for task in tasks:
        try:
            comm = (task / "comm").read_text().strip()
            parts = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[names.get(int(task.name), comm)] += (int(parts[11]) + int(parts[12])) / tick
    return dict(out)


def start_publisher(url: str, tpl: list[Template], rate: float | None, duration: float) -> tuple:
    """The publisher in a process of its own, loaded and waiting: (process, report queue, go event)."""
    rq, ready, go = CTX.Queue(), CTX.Event(), CTX.Event()
    pub = CTX.Process(
        target=publish,
        args=(url, tpl),
        kwargs={
            "rate": rate,
            "duration_s": duration,
            "start_at": 0.0,
            "report": rq,
            "ready": ready,
            "go": go,
        },
    )
    pub.start()
    if not ready.wait(300):
        raise RuntimeError("publisher did not get ready")
    return pub, rq, go


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


class CpuMeter:
    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.t0 = time.monotonic()
        self.start = {g: {p: _cpu_s(p) for p in pids} for g, pids in groups.items()}

    def cores(self, groups: dict[str, list[int]] | None = None) -> dict[str, float]:
        el = time.monotonic() - self.t0
        out = {}
        for g, pids in (groups or self.groups).items():
            used = sum(_cpu_s(p) - self.start.get(g, {}).get(p, 0.0) for p in pids)
            out[g] = round(used / el, 2)
        return out


# --- metrics --------------------------------------------------------------------------------------
def free_port_run(n: int) -> int:
    """A base port with `n` consecutive free loopback ports (ingest serves /metrics on base + worker
    index): a fixed port collides with another run, a test or an orphan still listening there."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            held = []
            for k in range(n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + k))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError("no run of free loopback ports for the metrics endpoints")


def _histogram(port: int, name: str) -> dict[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def _quantile(buckets: dict[float, float], q: float) -> float:
    items = sorted(buckets.items())
    total = items[-1][1] if items else 0
    if not total:
        return float("nan")
    prev_le, prev_c = 0.0, 0.0
    for le, c in items:
        if c >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((q * total - prev_c) / max(1e-9, c - prev_c))
        prev_le, prev_c = le, c
    return prev_le


# --- setup ----------------------------------------------------------------------------------------


_TREE_DB = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench/ingest"]
from load import bench_fleet
from storage.migrate import migrate
from yiju.commands.simulate import register_fleet
from yiju.settings import DatabaseSettings
migrate(sys.argv[2], DatabaseSettings(timeseries_mode=sys.argv[3]))
register_fleet(sys.argv[2], bench_fleet(int(sys.argv[4])))
"""


def fresh_db(services, fleet, tree: Path = ROOT, compounds: int = 1) -> str:
    """A fresh database for one run with the bench fleet registered. Another build (`--tree`) brings
    its own schema (e.g. another points layout): its run's database is migrated, and the fleet
    registered, by that build's code, in the same storage mode."""
    if tree == ROOT:
        from yiju.commands.simulate import register_fleet

        url = services.create_database(None)
        register_fleet(url, fleet)
        return url
    name = f"yiju_tree_{os.getpid()}_{time.monotonic_ns()}"
    with connection(services.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = services.admin_url.rsplit("/", 1)[0] + "/" + name
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env["PYTHONPATH"] = str(tree)
    args = [str(tree), url, services.default_mode, str(compounds)]
    subprocess.run([sys.executable, "-c", _TREE_DB, *args], cwd=tree, env=env, check=True)
    return url


def stored(db_url: str) -> tuple[int, int, int, int]:
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry), (SELECT count(*) FROM device_events),"
            " (SELECT count(*) FROM points), (SELECT count(*) FROM dead_letters)"
        ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def duplicates(db_url: str) -> int:
    with connection(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) - count(DISTINCT (device_id, ts, seq)) FROM telemetry)"
            " + (SELECT count(*) - count(DISTINCT (device_id, ts, seq)) FROM device_events)"
        ).fetchone()
    return int(row[0])


# --- (a) broker ceiling ---------------------------------------------------------------------------


def _paho_drain(url: str, topic_filter: str, quiet_s: float, ready, result) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from devices.mqtt_wire import parse_mqtt_url

    addr = parse_mqtt_url(url)
    st = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(c, u, m) -> None:
        now = time.monotonic()
        if not st["n"]:
            st["first"] = now
        st["last"] = now
        st["n"] += 1

    def on_subscribe(*a) -> None:
        ready.set()

    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-paho-{time.monotonic_ns()}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    sub.on_message = on_message
    sub.on_subscribe = on_subscribe
    sub.connect(addr.host, addr.port)
    sub.subscribe(topic_filter, qos=1)
    sub.loop_start()
    while not st["n"] or time.monotonic() - st["last"] < quiet_s:
        time.sleep(0.1)
    sub.disconnect()
    sub.loop_stop()
    result.put((st["n"], st["first"], st["last"]))


def broker_ceiling(url: str, tpl: list[Template], seconds: float, subscriber: str) -> tuple[float, int, int]:
    ready, result = CTX.Event(), CTX.Queue()
    target = drain_qos1 if subscriber == "raw" else _paho_drain
    kw = {"quiet_s": 3.0, "ready": ready, "result": result} if subscriber == "raw" else {}
    args = (url, f"{PREFIX}/v1/#") if subscriber == "raw" else (url, f"{PREFIX}/v1/#", 3.0, ready, result)
    sub = CTX.Process(target=target, args=args, kwargs=kw)
    sub.start()
    ready.wait(30)
    rep = publish(url, tpl, rate=None, duration_s=seconds, start_at=time.time())
    got, first, last = result.get(timeout=600)
    sub.join(30)
    return got / max(1e-6, last - first), rep.sent, got


# --- (b) database ceiling -------------------------------------------------------------------------


def db_ceiling(db_url: str, tpl: list[Template], n_msgs: int, batch: int) -> tuple[float, float]:
    from load import CST

    from devices.catalog import points_of
    from devices.contract import Channel
    from ingest.decode import EdgeValidator, Registry, event_fields
    from ingest.messages import RawMessage
    from storage.messages import EventRow, IngestWriter, TelemetryRow, WriteBatch
    from storage.registry import load_device_refs
    from yiju.settings import DatabaseSettings

    with connection(db_url) as conn:
        reg = Registry({r.ref.uid: r.ref for r in load_device_refs(conn)})
    from datetime import timedelta

    v = EdgeValidator(
        PREFIX, max_payload_bytes=1 << 16, max_past=timedelta(days=3), max_future=timedelta(minutes=5)
    )
    now = datetime.now(UTC)
    batches: list[WriteBatch] = []
    b = WriteBatch()
    n_points = 0
    for i in range(n_msgs):
        t = tpl[i % len(tpl)]
        ts = (now - timedelta(seconds=n_msgs - i)).astimezone(CST).isoformat(timespec="microseconds").encode()
        payload = t.pre[1:] + ts + t.post
        topic = t.head[t.head.index(PREFIX.encode()) :].decode()
        d = v.validate(RawMessage(topic, payload, 0, 0, time.time()), reg, now)
        if d.channel is Channel.TELEMETRY:
            pts = tuple(points_of(d.device.family, d.body.data))
            n_points += len(pts)
            b.telemetry.append(TelemetryRow(d.ts, d.device.id, d.seq, now, payload, pts))
        else:
            kind, code, chan = event_fields(d)
            b.events.append(EventRow(d.ts, d.device.id, d.seq, now, kind, code, chan, payload))
        if len(b) >= batch:
            batches.append(b)
            b = WriteBatch()
    if len(b):
        batches.append(b)
    w = IngestWriter(db_url, DatabaseSettings())
    t0 = time.perf_counter()
    for b in batches:
        w.write(b)
    el = time.perf_counter() - t0
    w.close()
    return n_msgs / el, n_points / el


# --- (c) end to end -------------------------------------------------------------------------------


def end_to_end(
    services,
    fleet,
    tpl,
    *,
    workers: int,
    rate: float | None,
    duration: float,
    profile: Path | None,
    tag: str,
    tree: Path = ROOT,
    compounds: int = 1,
    native: bool = False,
) -> dict:
    """One run of `yiju ingest` from the source tree `tree` (another checkout of Yiju, for builds
    compared side by side in one session: it is put first on the path of the ingest process, and
    its run's database has its own schema)."""
    db_url = fresh_db(services, fleet, tree, compounds)
    port = free_port_run(workers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIJU_")}
    env.update(
        YIJU_DATABASE__URL=db_url,
        YIJU_MQTT__URL=services.mqtt_url,
        YIJU_MQTT__TOPIC_PREFIX=PREFIX,
        YIJU_MQTT__CLIENT_ID=f"bench-ingest-{tag}",
        # a group per run: a finished run's sessions persist, and Mosquitto would keep giving them
        # their share of the group's messages
        YIJU_INGEST__SHARED_GROUP=f"bench{time.monotonic_ns()}",
        YIJU_INGEST__METRICS_PORT=str(port),
        YIJU_LOG_LEVEL="WARNING",
    )
    if tree != ROOT:
        env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, "-m", "yiju.cli", "ingest", "--workers", str(workers)]
    ingest = subprocess.Popen(cmd, cwd=tree, env=env)
    try:
        deadline = time.monotonic() + 30
        ports = [port + w for w in range(workers)]
        while time.monotonic() < deadline:
            try:
                for p in ports:
                    _histogram(p, "yiju_ingest_publish_to_commit_seconds")
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)  # sessions subscribed
        workers_pids = _children(ingest.pid) if workers > 1 else [ingest.pid]
        mq_pid = services.broker._proc.pid if services.broker and services.broker._proc else 0
        pg_pids = _children(services.postgres.postmaster_pid() or 0) if services.postgres else []
        pub, rq, go = start_publisher(services.mqtt_url, tpl, rate, duration)
        ingest_pids = sorted({ingest.pid, *workers_pids})
        # thread names first: `py-spy dump` attaches with ptrace, which fails while a `py-spy record`
        # of the same process is attached (the per-thread split then read only "python")
        tnames = {p: _thread_names(p) for p in ingest_pids}
        spies = []
        if profile is not None and shutil.which("py-spy", path=str(Path(sys.executable).parent)):
            spy = str(Path(sys.executable).parent / "py-spy")
            for k, wp in enumerate(workers_pids):
                out = f"{profile / f'{tag}-w{k}'}.txt"
                cmd = [spy, "record", "-p", str(wp), "-d", str(int(duration)), "-r", "97", "-f", "raw"]
                # stacks per thread (named); --native adds C frames (msgspec, psycopg's libpq, the
                # interpreter) but must stop the process for each sample, so it is opt-in
                cmd += ["--threads", *(["--native"] if native else ["--nonblocking"]), "-o", out]
                # its errors are kept: a profiler that cannot attach must say so (see --profile)
                log = (profile / f"{tag}-w{k}.py-spy.log").open("w")
                spies.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        meter = CpuMeter(
            {
                "ingest": sorted({ingest.pid, *workers_pids}),
                "mosquitto": [mq_pid],
                "postgres": pg_pids,
                "publisher": [pub.pid],
            }
        )
        threads0 = {p: _thread_cpu_s(p, tnames[p]) for p in ingest_pids}
        go.set()
        t0 = time.monotonic()
        rep = rq.get(timeout=duration + 900)
        pub_done = time.monotonic()
        cpu = meter.cores(
            {
                **meter.groups,
                "postgres": _children(services.postgres.postmaster_pid() or 0) if services.postgres else [],
            }
        )
        pub.join(30)
        # wait for the last rows
        tel_w, ev_w, pts_w = expected_totals(tpl, rep.acked)
        want = tel_w + ev_w
        drain_deadline = time.monotonic() + 600
        progress = (0, time.monotonic())
        while True:
            tel, ev, pts, dls = stored(db_url)
            if tel + ev >= want or time.monotonic() > drain_deadline:
                break
            if tel + ev != progress[0]:
                progress = (tel + ev, time.monotonic())
            elif time.monotonic() - progress[1] > STALL_S:  # a stall is a bug: show where everyone is
                print(f"STALL: {tel + ev} of {want} stored, no progress for {STALL_S:.0f} s", flush=True)
                spy = Path(sys.executable).parent / "py-spy"
                for wp in workers_pids if spy.exists() else []:
                    subprocess.run([str(spy), "dump", "-p", str(wp)], check=False)
                break
            time.sleep(0.1)
        done = time.monotonic()
        el = done - t0
        threads: Counter[str] = Counter()
        for p in ingest_pids:
            for name, s in _thread_cpu_s(p, tnames[p]).items():
                threads[name] += s - threads0[p].get(name, 0.0)
        lag: Counter[float] = Counter()
        for p in ports:
            lag.update(_histogram(p, "yiju_ingest_publish_to_commit_seconds"))
        hwm = max(_hwm_mb(p) for p in workers_pids)
        for s in spies:
            s.wait(60)
        if profile is not None:
            for k in range(len(workers_pids)):
                _summarise(profile / f"{tag}-w{k}.txt")
    finally:
        ingest.terminate()
        ingest.wait(60)
        # a finished run's persistent session would go on queueing every later run's messages in
        # Mosquitto (its plain subscription matches them all): end it
        from compare import forget_session

        for session in [
            env["YIJU_MQTT__CLIENT_ID"],
            *(f"{env['YIJU_MQTT__CLIENT_ID']}-{i}" for i in range(workers)),
        ]:
            forget_session(services.mqtt_url, session)
    dups = duplicates(db_url)
    services.drop_database(db_url)
    res = {
        "workers": workers,
        "offered": "max" if rate is None else round(rate),
        "published": rep.acked,
        "publish_s": round(rep.seconds, 1),
        "publisher_behind_s": round(rep.max_behind_s, 2),
        "stored": tel + ev,
        "lost": want - (tel + ev),
        "duplicates": dups,
        "points_missing": pts_w - pts,
        "dead_letters": dls,
        "drain_after_publish_s": round(done - pub_done, 1),
        "msg_per_s": round((tel + ev) / el),
        "points_per_s": round(pts / el),
        "p50_lag_s": round(_quantile(lag, 0.5), 3),
        "p99_lag_s": round(_quantile(lag, 0.99), 3),
        "cpu_cores": cpu,
        # from go until the last row is stored, per stored message, split by thread name
        "ingest_cpu_us_per_msg": round(1e6 * sum(threads.values()) / max(1, tel + ev), 1),
        "ingest_threads_us_per_msg": {
            name: round(1e6 * s / max(1, tel + ev), 1) for name, s in threads.most_common() if s > 0.005
        },
        "ingest_peak_rss_mb": round(hwm),
    }
    if tree != ROOT:
        res["tree"] = str(tree)
    print(json.dumps(res), flush=True)
    return res


def _summarise(raw: Path) -> None:
    """Self time per function and inclusive time of a few frames of interest, from py-spy's raw output;
    then self time per thread (py-spy --threads: each stack starts with `thread (tid): name`)."""
    if not raw.exists():
        return
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    per_thread: dict[str, Counter[str]] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        try:
            k = int(n)
        except ValueError:
            continue
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames.pop(0).partition(": ")[2] or frames[0]
            thread = "paho" if thread.startswith("paho-mqtt-client") else thread
        if not frames:
            continue
        total += k
        self_t[frames[-1]] += k
        per_thread.setdefault(thread, Counter())[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    with raw.with_suffix(".summary.txt").open("w") as out:
        out.write(f"{total} samples\n\nself time\n")
        for f, k in self_t.most_common(40):
            out.write(f"{100 * k / total:5.1f}%  {f}\n")
        out.write("\ninclusive time\n")
        for f, k in incl.most_common(60):
            out.write(f"{100 * k / total:5.1f}%  {f}\n")
        for thread, counts in sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values())):
            n = sum(counts.values())
            out.write(f"\nthread {thread}: {n} samples ({100 * n / total:.1f} %), self time\n")
            for f, k in counts.most_common(25):
                out.write(f"{100 * k / n:5.1f}%  {f}\n")


def sustainable(
    services,
    fleet,
    tpl,
    workers: int,
    start_rate: float,
    duration: float,
    rates: list[float] | None,
    profile: Path | None = None,
) -> list[dict]:
    """Paced runs: the given rates, or from `start_rate` down in 15 % steps until one is sustained."""
    out = []
    todo = rates or [start_rate * 0.85**k for k in range(6)]
    for offered in todo:
        r = round(offered, -2)
        res = end_to_end(
            services,
            fleet,
            tpl,
            workers=workers,
            rate=r,
            duration=duration,
            profile=profile,
            tag=f"paced{r:.0f}-{workers}w",
        )
        res["sustained"] = ok(res)
        out.append(res)
        if not rates and res["sustained"]:
            break
    return out


def ok(res: dict) -> bool:
    return (
        res["lost"] == 0
        and res["duplicates"] == 0
        and res["p99_lag_s"] < LAG_OK_S
        and res["drain_after_publish_s"] <= DRAIN_OK_S
        and res["publisher_behind_s"] < LAG_OK_S
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--compounds", type=int, default=1, help="typical compounds in the fleet")
    ap.add_argument("--templates", type=int, default=100_000, help="distinct messages, replayed in a loop")
    ap.add_argument("--rates", nargs="+", default=["auto"], help="offered rates of the paced runs, or 'auto'")
    ap.add_argument("--ceiling-seconds", type=float, default=15.0)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: py-spy --native (C frames too; stops ingest for each sample, so its CPU "
        "figures are not comparable with a run without it)",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "saturation", "paced"])
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also run the saturation runs with ingest from this checkout of Yiju (repeatable): builds "
        "compared side by side, alternately, against the same broker, database and load",
    )
    ap.add_argument("--rounds", type=int, default=1, help="saturation runs per build, alternating builds")
    ap.add_argument(
        "--compare", action="store_true", help="Yiju and the two Node.js peers side by side (compare.py)"
    )
    ap.add_argument(
        "--compare-rate", type=float, default=6000.0, help="offered msg/s of --compare's paced runs"
    )
    ap.add_argument(
        "--compare-saturated-s",
        type=float,
        default=10.0,
        help="--compare's saturated runs: seconds of publishing flat out (then the backlog is drained)",
    )
    ap.add_argument(
        "--compare-peers",
        nargs="*",
        default=["node-red", "node"],
        choices=["node-red", "node"],
        help="--compare's peers (default both; the ratios need `node`)",
    )
    ap.add_argument("--smoke", action="store_true", help="check the peers' files in seconds, then exit")
    args = ap.parse_args()
    import compare

    if args.smoke:
        problems = compare.smoke()
        print("\n".join(problems) or "peers: package.json, package-lock.json, flow and programs OK")
        return 1 if problems else 0
    if args.compare:
        compare.ensure_installed()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        if not shutil.which("py-spy", path=str(Path(sys.executable).parent)):
            ap.error("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")

    from harness import start_services

    services = start_services()
    if args.compare:
        compare.prepare(services)
    out: dict = {
        "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args) | {"profile": str(args.profile)},
    }
    try:
        fleet = bench_fleet(args.compounds)
        n_dev = sum(1 for _ in fleet.devices)
        t = time.monotonic()
        tpl = templates(fleet, PREFIX, args.templates + n_dev)[n_dev:]  # skip the opening status burst
        mix = Counter(x.table for x in tpl)
        out["load"] = {
            "devices": n_dev,
            "templates": len(tpl),
            "telemetry_share": round(mix["telemetry"] / len(tpl), 3),
            "points_per_message": round(sum(x.points for x in tpl) / len(tpl), 2),
            "bytes_per_packet": round(
                sum(len(x.head) + 2 + len(x.pre) + 32 + len(x.post) for x in tpl) / len(tpl)
            ),
        }
        print(
            f"load: {out['load']} (prepared in {time.monotonic() - t:.0f} s); storage mode {services.default_mode}",
            flush=True,
        )
        if "a" not in args.skip:
            db_url = fresh_db(services, fleet)  # noqa: F841 - the topic prefix must be known to nobody else
            rate, sent, got = broker_ceiling(services.mqtt_url, tpl, args.ceiling_seconds, "raw")
            out["a_broker_raw_qos1"] = {"msg_per_s": round(rate), "sent": sent, "received": got}
            print(f"(a) broker ceiling, raw QoS 1 subscriber: {rate:,.0f} msg/s", flush=True)
            rate, sent, got = broker_ceiling(services.mqtt_url, tpl, args.ceiling_seconds, "paho")
            out["a_broker_paho_qos1"] = {"msg_per_s": round(rate), "sent": sent, "received": got}
            print(f"(a') bare paho QoS 1 subscriber: {rate:,.0f} msg/s", flush=True)
        if "b" not in args.skip:
            db_b = fresh_db(services, fleet)
            rate_b, pts_b = db_ceiling(db_b, tpl, 100_000, 2000)
            services.drop_database(db_b)
            out["b_db_copy"] = {"msg_per_s": round(rate_b), "points_per_s": round(pts_b)}
            print(f"(b) database ceiling: {rate_b:,.0f} msg/s ({pts_b:,.0f} points/s)", flush=True)
        rates = None if args.rates == ["auto"] else [float(r) for r in args.rates]
        trees = [("this", ROOT)] + [
            (label, Path(path).resolve()) for label, _, path in (x.partition("=") for x in args.tree)
        ]
        floor = min(
            [out[k]["msg_per_s"] for k in ("a_broker_raw_qos1", "b_db_copy") if k in out] or [float("nan")]
        )
        if args.compare:
            out["compare"] = compare.compare(
                services,
                fleet,
                tpl,
                trees=trees,
                workers=args.workers[0],
                compounds=args.compounds,
                rounds=args.rounds,
                duration=args.duration,
                saturated_s=args.compare_saturated_s,
                paced_rate=args.compare_rate,
                peers=tuple(args.compare_peers),
                modes=[
                    m for m in ("saturated", "paced") if m.replace("saturated", "saturation") not in args.skip
                ],
            )
            for r in out["compare"]["runs"]:
                if r["mode"] == "saturated":
                    r["ratio_to_min_ab"] = round(r["msg_per_s"] / floor, 2)
            out["loadavg_at_end"] = os.getloadavg()
            path = compare.results_path(ROOT)
            path.write_text(json.dumps(out, indent=2, default=str) + "\n")
            print(compare.table(out["compare"], floor))
            print(f"written: {path}")
            return 0
        paired = len(trees) > 1 or args.rounds > 1
        for w in args.workers:
            sat = None
            if "saturation" not in args.skip:
                for rnd in range(1, args.rounds + 1):
                    for label, tree in trees:
                        res = end_to_end(
                            services,
                            fleet,
                            tpl,
                            workers=w,
                            rate=None,
                            duration=args.duration,
                            profile=args.profile,
                            tag=f"sat-{w}w-{label}-r{rnd}",
                            tree=tree,
                            compounds=args.compounds,
                            native=args.profile_native,
                        )
                        out[f"c_saturation_{w}w_{label}_r{rnd}" if paired else f"c_saturation_{w}w"] = res
                        sat = sat or res
            if "paced" not in args.skip and paired and rates:
                # builds compared at fixed offered rates: CPU per message below everyone's ceiling
                for rnd in range(1, args.rounds + 1):
                    for label, tree in trees:
                        for r in rates:
                            res = end_to_end(
                                services,
                                fleet,
                                tpl,
                                workers=w,
                                rate=r,
                                duration=args.duration,
                                profile=args.profile,
                                tag=f"paced{r:.0f}-{w}w-{label}-r{rnd}",
                                tree=tree,
                                compounds=args.compounds,
                            )
                            res["sustained"] = ok(res)
                            out[f"c_compare_{w}w_{r:.0f}_{label}_r{rnd}"] = res
            elif "paced" not in args.skip:
                start = sat["msg_per_s"] if sat else 8000
                out[f"c_paced_{w}w"] = sustainable(
                    services, fleet, tpl, w, start, args.duration, rates, args.profile
                )
        for k, v in list(out.items()):
            if k.startswith("c_saturation"):
                v["ratio_to_min_ab"] = round(v["msg_per_s"] / floor, 2)
            if k.startswith("c_paced"):
                best = max((r for r in v if r["sustained"]), key=lambda r: r["msg_per_s"], default=None)
                out[k.replace("paced", "sustained")] = best and {
                    **best,
                    "ratio_to_min_ab": round(best["msg_per_s"] / floor, 2),
                }
        print(json.dumps(out, indent=2, default=str))
    finally:
        services.stop()
    return 0


def machine() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(int(mem) / 1024**2, 1),
        "loadavg_at_start": os.getloadavg(),
    }


if __name__ == "__main__":
    sys.exit(main())
