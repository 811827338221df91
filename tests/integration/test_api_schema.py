"""Schemathesis against a real service's own /openapi.json, without a token and with an admin's: no answer is
a server error, every answer's status is documented and its body fits the documented schema."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from device_sim.receiver import Receiver
from tests.servers import InfluxD, Mosquitto
from tests.service import ADMIN, DevicePublisher, ServiceProcess, recipients_at, site_config, telemetry

pytestmark = pytest.mark.integration
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# Examples per operation, generation mode and token: enough to reach past the schema's obvious values,
# few enough that the whole run stays near a minute on a shared machine.
EXAMPLES = 30
# Without a token every guarded operation answers 401 whatever it is sent: a few examples show that.
EXAMPLES_WITHOUT_TOKEN = 5


def send(client: httpx.Client, case: Any, headers: dict[str, str]) -> httpx.Response:
    """A generated case sent with httpx.

    Schemathesis sends with requests by default; here requests runs over urllib3-future (which
    grafana-client's niquests installs in urllib3's place) and schemathesis's transport cannot count its
    connections. The request is the one schemathesis serialises; only the client differs.
    """
    kw = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"), headers=headers)
    body: dict[str, Any] = {}
    if "json" in kw:
        body["json"] = kw["json"]
    if "data" in kw:
        body["content" if isinstance(kw["data"], bytes | str) else "data"] = kw["data"]
    if "files" in kw:
        body["files"] = kw["files"]
    client.cookies.clear()
    return client.request(kw["method"], kw["url"], params=kw.get("params"), headers=kw["headers"],
                          cookies=kw.get("cookies") or None, **body)


def run_operation(client: httpx.Client, operation: Any, headers: dict[str, str], mode: GenerationMode,
                  examples: int = EXAMPLES) -> int:
    """Every generated case of one operation, called and checked; how many were called."""
    calls = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.validate_response(send(client, case, headers), checks=CHECKS, headers=headers)

    try:
        check()
    except Unsatisfiable:
        # An operation with no parameter and no body has no invalid request to make.
        assert mode is GenerationMode.NEGATIVE and calls == 0
    return calls


def test_the_api_answers_as_its_schema_says(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxD,
                                           influx_db: str, unique_prefix: str, receiver: Receiver) -> None:
    config = site_config(tmp_path, mqtt_url=mosquitto.url, influx_url=influxdb.url, database=influx_db,
                         prefix=unique_prefix, extra={"recipients": recipients_at(receiver.base)})
    svc = ServiceProcess(config).start()
    pub = DevicePublisher(mosquitto.url, f"dev-{unique_prefix}")
    try:
        svc.wait_healthy()
        # Something to find: a device heard from and an alert raised, so lists are not all empty.
        pub.publish(telemetry(unique_prefix, "linfen-yicun", "smoke_detector", "sd-b01-0501"),
                    {"ts": int(time.time() * 1000), "seq": 0, "alarm": True})
        pub.wait_acked()
        svc.wait_for(lambda: svc.api("/alerts").json(), 20, "an alert")
        # The event stream never ends: a generated request to it would wait forever for the body to be
        # complete. Its guard is tried in test_route_guard.py and its messages in test_event_stream_scope.py.
        schema = schemathesis.openapi.from_url(f"{svc.base}/openapi.json").exclude(path="/api/v1/events")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 14
        started = time.monotonic()
        calls = 0
        client = httpx.Client(base_url=svc.base, timeout=10)
        for headers, examples in (({}, EXAMPLES_WITHOUT_TOKEN), ({"Authorization": f"Bearer {ADMIN}"}, EXAMPLES)):
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    calls += run_operation(client, operation, headers, mode, examples)
        print(f"schemathesis: {len(operations)} operations, {calls} calls in {time.monotonic() - started:.1f} s")
        assert calls >= len(operations) * 2
        code, health = svc.health()
        assert code == 200, health
    finally:
        pub.close()
        svc.close()
