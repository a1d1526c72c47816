"""deploy/ as an operator uses it: the systemd units pass `systemd-analyze verify` and are hardened, the
environment template names only real settings, every command the units and the compose file run is a
real `yiju` command, and the compose file is consistent (`docker compose config` when docker is there)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from yiju.cli import build_parser
from yiju.settings import unknown_environment

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
COMPOSE = ROOT / "deploy" / "compose"
UNITS = sorted(SYSTEMD.glob("*.service"))
HARDENING = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
}


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return dict(pairs)  # type: ignore[arg-type]


def test_units_are_hardened_restart_and_run_real_commands() -> None:
    assert {p.name for p in UNITS} >= {"yiju.service", "yiju-api.service", "yiju-ingest.service"}
    parser = build_parser()
    for path in UNITS:
        service = unit(path)["Service"]
        for key, want in HARDENING.items():
            assert service.get(key) == want, f"{path.name}: {key}"
        assert service["EnvironmentFile"] == "/etc/yiju/yiju.env"
        argv = shlex.split(service["ExecStart"])
        assert argv[0] == "/opt/yiju/.venv/bin/yiju", path.name
        parser.parse_args(argv[1:])  # exits (fails the test) on an unknown command or option
        if service.get("Type") != "oneshot":
            assert service["Restart"] == "on-failure", path.name
        for assignment in shlex.split(service.get("Environment", "")):
            assert unknown_environment(dict([assignment.split("=", 1)])) == [], path.name
    assert unit(SYSTEMD / "yiju-maintain.timer")["Timer"]["OnUnitActiveSec"]


def test_environment_template_names_only_settings() -> None:
    env = env_file(SYSTEMD / "yiju.env")
    assert "YIJU_DATABASE__URL" in env and env["YIJU_MQTT__URL"].startswith("mqtts://")
    assert unknown_environment(env) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """The units as shipped, pointed at this checkout's yiju and environment template."""
    yiju = ROOT / ".venv" / "bin" / "yiju"
    if not yiju.exists():
        pytest.skip("no .venv/bin/yiju (run deploy/bootstrap.sh)")
    for path in [*UNITS, SYSTEMD / "yiju-maintain.timer"]:
        text = path.read_text().replace("/opt/yiju/.venv/bin/yiju", str(yiju))
        (tmp_path / path.name).write_text(text.replace("/etc/yiju/yiju.env", str(SYSTEMD / "yiju.env")))
    names = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert [line for line in output.splitlines() if "/yiju" in line] == [], output


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return doc


def test_compose_stack_is_consistent() -> None:
    services = compose()["services"]
    assert set(services) >= {"db", "mosquitto", "migrate", "yiju", "prometheus", "grafana"}
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image!r})"
    assert services["grafana"]["image"].startswith("grafana/grafana:11.6")
    parser = build_parser()
    for name in ("migrate", "yiju"):
        parser.parse_args(services[name]["command"])
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert unknown_environment(env) == [], name
        assert env["YIJU_MQTT__URL"].startswith("mqtts://")
    # bind mounts: shipped files exist; certs/, mqtt/ and grafana/ are made by the steps in
    # docs/operations.md ("Compose")
    generated = {"certs", "mqtt", "grafana"}
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith("."):
                continue  # a named volume
            path = (COMPOSE / source).resolve()
            made = path.is_relative_to(COMPOSE) and path.relative_to(COMPOSE).parts[0] in generated
            assert path.exists() or made, f"{name}: {source}"
    # Prometheus in compose loads the same rules and scrapes yiju
    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert {j["job_name"] for j in prom["scrape_configs"]} >= {"yiju"}


def _docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _docker_compose(), reason="docker compose is not installed on this machine")
def test_docker_compose_config_accepts_the_file() -> None:
    env = {
        line.split("=", 1)[0]: "x"
        for line in (COMPOSE / "env.example").read_text().splitlines()
        if "=" in line
    }
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE / "compose.yaml"), "config", "--quiet"],
        env={**env, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
