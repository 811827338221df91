"""OneNET (China Mobile): a smoke detector on OneNET Studio as its data push delivers it,
`POST {service}/ingest/onenet/{source_id}` with `{"msg": ..., "nonce": ..., "signature": ...}`:
`msg` the JSON text of a property notify (`messageType: notify`, `notifyType: property`, the
standard smoke-detector model's SmokeSensorState, BatteryPercentage, TamperAlarm and ErrorCode under
`data.params`, each `{value, time}`), a fresh nonce, and signature = Base64(MD5(token + nonce + msg)).
Its status is a `lifeCycle` message (`data.status` online / offline). The model has no self-test
property: a detector's self-test is not reported as smoke. No counter."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from device_sim.sources import Body, Encoder, Out, Registration, digits, need_profile, register, whole
from kernel.ids import DeviceType
from kernel.sources.onenet import OnenetConfig, signature

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


@register
class Onenet(Encoder):
    """OneNET Studio pushes; the address is the device's deviceName."""

    type = "onenet"

    def __init__(self, source: Any, *, timezone: str = "Asia/Shanghai") -> None:
        super().__init__(source, timezone=timezone)
        assert isinstance(source, OnenetConfig)
        self.token = source.token
        self.path = f"/ingest/onenet/{source.id}"
        # A Studio product id: 10 letters and digits, the same for the same source.
        self.product_id = "".join(_ALPHABET[int(digits(f"product/{source.id}/{i}", 4)) % len(_ALPHABET)]
                                  for i in range(10))

    def check(self, reg: Registration) -> None:
        need_profile(reg, {"nb-smoke-studio": DeviceType.SMOKE_DETECTOR})

    def _message(self, reg: Registration, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"productId": self.product_id, "deviceId": int(digits(f"device/{reg.address}", 7)),
                "deviceName": reg.address, "messageType": kind, **data}

    def push(self, msg: dict[str, Any]) -> Out:
        """A signed push of one message."""
        text = orjson.dumps(msg).decode()
        nonce = secrets.token_urlsafe(6)
        envelope = {"msg": text, "nonce": nonce, "signature": signature(self.token, nonce, text)}
        return Out(self.path, orjson.dumps(envelope))

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        ts = body["ts"]
        smoke = bool(body.get("alarm")) and not body.get("self_test")
        params: dict[str, Any] = {"SmokeSensorState": {"value": 1 if smoke else 0, "time": ts}}
        battery = whole(body.get("battery_pct"))
        if battery is not None:
            params["BatteryPercentage"] = {"value": battery, "time": ts}
        params["TamperAlarm"] = {"value": 1 if body.get("tamper") else 0, "time": ts}
        params["ErrorCode"] = {"value": 1 if body.get("fault") else 0, "time": ts}
        seq = body.get("seq")
        data = {"id": str(seq if isinstance(seq, int) else ts), "version": "1.0", "params": params}
        return [self.push(self._message(reg, "notify", {"notifyType": "property", "data": data}))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        data = {"status": "online" if online else "offline", "time": int(time.time() * 1000)}
        return [self.push(self._message(reg, "lifeCycle", {"data": data}))]
