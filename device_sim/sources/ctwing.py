"""CTWing (China Telecom's AEP): an NB-IoT smoke detector's messages as AEP pushes them to the
subscription URL, `POST {service}/ingest/ctwing/{source_id}?token=...`: a `dataReport` whose
`payload.serviceData` holds the smoke-detector thing model's Alarm_Status (1 alarm, 5 fault, 7
normal, 10 removed, 14 test) and Battery_Level, `upPacketSN` the device's counter (-1 without one),
`timestamp` in epoch ms; a `deviceOnlineOfflineReport` (eventType 1 online, 0 offline) for its
status. AEP retries a push that is not answered 200 up to three times (device_sim.pusher does)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson

from device_sim.sources import Body, Encoder, Out, Registration, digits, need_profile, register, smoke_state, whole
from kernel.ids import DeviceType
from kernel.sources.ctwing import CtwingConfig


@register
class Ctwing(Encoder):
    """CTWing pushes; the address is AEP's deviceId."""

    type = "ctwing"

    def __init__(self, source: Any, *, timezone: str = "Asia/Shanghai") -> None:
        super().__init__(source, timezone=timezone)
        assert isinstance(source, CtwingConfig)
        self.path = f"/ingest/ctwing/{source.id}?token={quote(source.token, safe='')}"
        self.tenant_id = "2000" + digits(f"tenant/{source.id}", 6)
        self.product_id = "1" + digits(f"product/{source.id}", 7)

    def check(self, reg: Registration) -> None:
        need_profile(reg, {"nb-smoke": DeviceType.SMOKE_DETECTOR})

    def _envelope(self, reg: Registration, kind: str, ts: int) -> dict[str, Any]:
        return {"timestamp": ts, "tenantId": self.tenant_id, "protocol": "lwm2m", "productId": self.product_id,
                "messageType": kind, "deviceId": reg.address, "IMEI": _imei(reg)}

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        seq = body.get("seq")
        service_data: dict[str, Any] = {"Alarm_Status": smoke_state(body)}
        battery = whole(body.get("battery_pct"))
        if battery is not None:
            service_data["Battery_Level"] = battery
        message = {"upPacketSN": seq if isinstance(seq, int) else -1, "upDataSN": -1, "topic": "v1/up/ad",
                   **self._envelope(reg, "dataReport", body["ts"]), "serviceId": "1", "IMSI": "undefined",
                   "payload": {"serviceData": service_data}}
        return [Out(self.path, orjson.dumps(message))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        message = self._envelope(reg, "deviceOnlineOfflineReport", int(time.time() * 1000))
        message["eventType"] = 1 if online else 0
        return [Out(self.path, orjson.dumps(message))]


def _imei(reg: Registration) -> str:
    return "86" + digits(f"imei/{reg.address}", 13)
