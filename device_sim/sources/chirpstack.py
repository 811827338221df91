"""ChirpStack v4: a LoRaWAN device's uplink as the MQTT integration publishes it on
`{topic_prefix}/{application_id}/device/{dev_eui}/event/up`: the protobuf JSON of its UplinkEvent
(camelCase, zero values left out, so frame counter 0 has no `fCnt`; the payload bytes in base64;
`object` the device profile's codec output, its numbers doubles as a protobuf Struct holds them).

The bytes are the device's own: a Milesight GS524N smoke detector (fPort 85) and a Dragino DDS75-LB
distance sensor (fPort 2) send what their vendors' decoders read, and `object` is what those
decoders make of them (the `-js` profiles run the same decoders in the service). A device without a
profile sends its section-1 fields as JSON and `object` holds them as a JSON codec would. ChirpStack
says nothing when a device goes quiet: availability is not published."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson

from device_sim.sources import (
    Body,
    Encoder,
    Out,
    Registration,
    Unsupported,
    need_profile,
    register,
    smoke_state,
    utc,
    whole,
)
from kernel.ids import DeviceType
from kernel.sources.chirpstack import ChirpStackConfig

_NS = uuid.UUID("0f6d1c52-54c4-4b5e-9d1f-4f1c2b7f0a10")  # ids that stay the same for the same names
PROFILES: dict[str | None, DeviceType | None] = {
    None: None, "gs524n": DeviceType.SMOKE_DETECTOR, "gs524n-js": DeviceType.SMOKE_DETECTOR,
    "dds75-lb": DeviceType.WATER_LEVEL, "dds75-lb-js": DeviceType.WATER_LEVEL,
}
# The GS524N's event codes (its decoder's getMessageType) by the shared state code.
GS524N_EVENTS = {1: "alarm", 2: "silent", 4: "low battery", 5: "failover", 7: "normal", 10: "removed",
                 11: "installed", 14: "testing alarm with normal battery", 15: "testing alarm with low battery"}
_GS524N_LOW_BATTERY = 10.0


@register
class ChirpStack(Encoder):
    """A ChirpStack network server's MQTT integration; the address is the DevEUI."""

    type = "chirpstack"

    def __init__(self, source: Any, *, timezone: str = "Asia/Shanghai") -> None:
        super().__init__(source, timezone=timezone)
        assert isinstance(source, ChirpStackConfig)
        self.prefix = source.topic_prefix
        self.application_id = source.application_id or str(uuid.uuid5(_NS, f"application/{source.id}"))
        self.tenant_id = str(uuid.uuid5(_NS, f"tenant/{source.id}"))

    def check(self, reg: Registration) -> None:
        need_profile(reg, PROFILES)
        if reg.profile in ("dds75-lb", "dds75-lb-js") and _number(reg.vars.get("mount_height_cm")) is None:
            raise Unsupported("a DDS75-LB needs its mount_height_cm (a number) under vars")

    def reading(self, reg: Registration, body: Body) -> list[Out]:
        dev_eui = reg.address.lower()
        port, data, obj = self._payload(reg, body)
        event: dict[str, Any] = {
            "deduplicationId": str(uuid.uuid4()),
            "time": utc(body["ts"]).isoformat(),
            "deviceInfo": {"tenantId": self.tenant_id, "tenantName": "ChirpStack",
                           "applicationId": self.application_id, "applicationName": self.source.id,
                           "deviceProfileId": str(uuid.uuid5(_NS, f"profile/{reg.profile or reg.device_type.value}")),
                           "deviceProfileName": reg.profile or reg.device_type.value,
                           "deviceName": reg.device_id, "devEui": dev_eui, "deviceClassEnabled": "CLASS_A"},
            "devAddr": f"{uuid.uuid5(_NS, dev_eui).int & 0xFFFFFFFF:08x}",
            "adr": True, "dr": 2,
        }
        seq = body.get("seq")
        if isinstance(seq, int) and seq > 0:
            event["fCnt"] = seq & 0xFFFFFFFF
        event |= {"fPort": port, "data": base64.b64encode(data).decode("ascii"), "object": obj,
                  "rxInfo": [_rx(body, dev_eui)],
                  "txInfo": {"frequency": 470300000,
                             "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 10,
                                                     "codeRate": "CR_4_5"}}}}
        return [Out(f"{self.prefix}/{self.application_id}/device/{dev_eui}/event/up", orjson.dumps(event))]

    def status(self, reg: Registration, online: bool) -> list[Out]:
        return []

    def _payload(self, reg: Registration, body: Body) -> tuple[int, bytes, dict[str, Any]]:
        """fPort, the device's bytes and the codec's object."""
        if reg.profile in ("gs524n", "gs524n-js"):
            return 85, *gs524n(body)
        if reg.profile in ("dds75-lb", "dds75-lb-js"):
            mount = _number(reg.vars.get("mount_height_cm")) or 0.0
            return 2, *dds75_lb(body, mount)
        # (the signal is the gateway's measure, in rxInfo)
        fields = {k: v for k, v in body.items() if k not in ("ts", "seq", "rssi_dbm")}
        return 1, orjson.dumps(fields), {k: float(v) if _plain_number(v) else v for k, v in fields.items()}


def gs524n(body: Body) -> tuple[bytes, dict[str, Any]]:
    """A Milesight GS524N's 6 bytes (version 2 protocol 2; smoke sensor and event; battery %;
    concentration; temperature °C, signed; a last byte its decoder skips) and its decoder's object."""
    battery = min(100, max(0, whole(body.get("battery_pct")) or 0))
    code = smoke_state(body)
    low = battery < _GS524N_LOW_BATTERY
    if code == 14 and low:
        code = 15
    elif code == 7 and low:
        code = 4
    temperature = min(127, max(-128, whole(body.get("temperature_c")) or 0))
    concentration = min(255, max(0, whole(body.get("obscuration_pct_m")) or 0))
    data = bytes((0x22, 0x10 | code, battery, concentration, temperature & 0xFF, 0x00))
    obj = {"version": 2.0, "protocol": 2.0, "type": "smoke sensor", "event": GS524N_EVENTS[code],
           "battery": float(battery), "concentration": float(concentration), "temperature": float(temperature)}
    return data, obj


def dds75_lb(body: Body, mount_height_cm: float) -> tuple[bytes, dict[str, Any]]:
    """A Dragino DDS75-LB's fPort 2 bytes (battery mV, distance mm, interrupt, DS18B20 ×10, sensor flag)
    and its decoder's object: the distance from the sensor down to the water's surface."""
    level = body.get("level_cm")
    distance = round((mount_height_cm - level) * 10.0) if isinstance(level, int | float) else 0
    distance = min(0xFFFF, max(1, distance)) if isinstance(level, int | float) else 0
    battery_mv = round(3000 + 600 * min(100.0, max(0.0, float(body.get("battery_pct") or 0.0))) / 100.0)
    data = battery_mv.to_bytes(2, "big") + distance.to_bytes(2, "big") + bytes((0, 0, 0, 1))
    obj = {"Node_type": "DDS75-LB", "Bat": battery_mv / 1000.0, "Distance": float(distance),
           "Interrupt_flag": 0.0, "TempC_DS18B20": "0.00", "Sensor_flag": 1.0}
    return data, obj


def _rx(body: Body, dev_eui: str) -> dict[str, Any]:
    rssi = body.get("rssi_dbm")
    rssi = round(rssi) if isinstance(rssi, int | float) else -100
    gateway = f"{uuid.uuid5(_NS, 'gateway/' + dev_eui[-4:]).int & 0xFFFFFFFFFFFFFFFF:016x}"
    return {"gatewayId": gateway, "uplinkId": uuid.uuid4().int & 0xFFFFFFFF, "rssi": rssi,
            "snr": round(min(10.0, (rssi + 120) / 4.0), 1), "channel": 1, "context": "AAAAAA==",
            "crcStatus": "CRC_OK"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
