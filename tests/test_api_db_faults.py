"""Issue 10 §7 on the real PostgreSQL: a restart gives 503s while it is down and never a 500 after
(pooled connections are checked), and a frozen server gives a 503 at the request deadline instead of
a hang."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import httpx
from test_api_support import World, serve, world

from yiju.embedded import PostgresServer, _children
from yiju.settings import Settings

__all__ = ["world"]


def _tuned(settings: Settings, **api: object) -> Settings:
    return settings.model_copy(
        update={
            # every pooled connection exists before the restart, so each would be stale after it
            "database": settings.database.model_copy(
                update={"pool_min_size": 4, "pool_max_size": 4, "connect_timeout_s": 1.0}
            ),
            "api": settings.api.model_copy(update=api),
        }
    )


def test_restart_gives_503_while_down_and_no_500_after(
    settings: Settings, world: World, postgres_server: PostgresServer
) -> None:
    with serve(_tuned(settings)) as server, httpx.Client(base_url=server.base, timeout=30.0) as client:
        headers = world.auth("operator_a")
        assert client.get("/api/v1/alarms", headers=headers).status_code == 200
        postgres_server.stop()
        down = client.get("/api/v1/alarms", headers=headers)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "unavailable" and "database" in down.json()["message"]
        assert int(down.headers["Retry-After"]) > 0
        postgres_server.start()
        # the pool reconnects in the background (with back-off): 503 until it has, then 200; never a
        # 500 from a pooled connection the restart killed (AdminShutdown), as there were 8 of before
        statuses = [client.get("/api/v1/alarms", headers=headers).status_code]
        while statuses[-1] != 200 and len(statuses) < 30:
            statuses.append(client.get("/api/v1/alarms", headers=headers).status_code)
        statuses += [client.get("/api/v1/alarms", headers=headers).status_code for _ in range(12)]
        assert set(statuses[:-12]) <= {200, 503}, statuses
        assert statuses[-12:] == [200] * 12, statuses


@contextlib.contextmanager
def _frozen(server: PostgresServer) -> Iterator[None]:
    """SIGSTOP the postmaster and every backend: a server that accepts bytes and never answers."""
    pid = server.postmaster_pid()
    assert pid is not None
    victims = [pid, *_children(pid)]
    for victim in victims:
        os.kill(victim, signal.SIGSTOP)
    try:
        yield
    finally:
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)


def test_frozen_database_gives_503_at_the_deadline_not_a_hang(
    settings: Settings, world: World, postgres_server: PostgresServer
) -> None:
    deadline_s = 1.5
    with (
        serve(_tuned(settings, request_deadline_s=deadline_s)) as server,
        httpx.Client(base_url=server.base, timeout=10 * deadline_s) as client,
    ):
        headers = world.auth("operator_a")
        assert client.get("/api/v1/alarms", headers=headers).status_code == 200
        with _frozen(postgres_server):
            # another query than the one just answered: that one's page and caller are kept
            # (api/kept.py) and answered without the database; this one needs it (a hang would raise
            # ReadTimeout)
            r = client.get("/api/v1/alarms?limit=7", headers=headers)
            assert r.status_code == 503 and r.json()["error"] == "unavailable"
            assert "no answer within 1.5 s" in r.json()["message"]
            assert r.headers["x-frame-options"] == "DENY"  # still our response, headers and all
        # thawed: the same server answers again
        assert client.get("/api/v1/alarms", headers=headers).status_code == 200
