"""Schemathesis against our own OpenAPI on the running app and the real database: no generated input,
valid or invalid, produces a server error. Bounded examples per operation keep it to seconds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from test_api_support import LiveServer, World, live, world

__all__ = ["live", "world"]

EXAMPLES_PER_OPERATION = 12
# the stream never ends by itself; logout would revoke the token the fuzzer runs with
SKIP = {("GET", "/api/v1/alarms/stream"), ("POST", "/api/v1/auth/logout")}


def test_no_input_produces_a_server_error(live: LiveServer, world: World) -> None:
    schema = schemathesis.openapi.from_dict(live.app.openapi())
    headers = world.auth("admin")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    checked = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIP:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Any) -> None:
                    kwargs = case.as_transport_kwargs(base_url=live.base, headers=headers)
                    response = session.request(**kwargs, timeout=10)
                    statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        failures.append(
                            f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}"
                            f" -> {response.status_code} {response.text[:200]}"
                        )

                run()
                checked += 1
    assert checked >= 40
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert statuses[200] > 0 and statuses[422] > 0 and statuses[404] > 0
    assert failures == []
