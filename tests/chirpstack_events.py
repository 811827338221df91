"""ChirpStack v4 uplink events for tests, built with ChirpStack's own protobufs (chirpstack-api) and
written as its JSON integrations (MQTT, HTTP, ...) write them.

What was checked, and where:
- chirpstack/chirpstack `api/proto/integration/integration.proto`: UplinkEvent (deduplication_id,
  time, device_info{..., application_id, dev_eui, tags}, dev_addr, adr, dr, f_cnt, f_port,
  confirmed, data, object, rx_info[], tx_info, and since then relay_rx_info, join_server_context,
  region_config_id); `object` is a google.protobuf.Struct, "only set when a codec is configured in
  the Device Profile". chirpstack/src/codec/js/mod.rs: `object` is the `data` the codec's
  decodeUplink returned (its `errors` make the decode fail instead).
- chirpstack/chirpstack-docs `src/chirpstack/integrations/events.md`: events are JSON "based on the
  Protocol Buffers JSON mapping": camelCase names (deduplicationId, deviceInfo.devEui,
  deviceInfo.applicationId, fPort, rxInfo[].rssi, txInfo.modulation.lora.codeRate "CR_4_5"), bytes
  in base64 (`"data": "qg=="`), enums by name, and fields at their zero value left out: its `up`
  example, an uplink with frame counter 0, has no `fCnt`, and, with no codec, no `object`.
- Its examples write `time` as "2022-07-18T09:34:15.775023242+00:00"; protobuf's own JSON writes
  the same instant with "Z". Both are RFC 3339; uplink_json writes "+00:00", as the examples do, and
  parse_uplink reads either.
- Numbers in a Struct are doubles: a codec's `battery: 100` reaches the JSON as 100.0.

uplink_json(..., extra_fields=...) adds top-level keys the protobufs here do not know (a newer
ChirpStack's), which parse_uplink skips (ignore_unknown_fields=True).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from chirpstack_api.gw import gw_pb2
from chirpstack_api.integration import integration_pb2
from google.protobuf import json_format


def uplink_event(dev_eui: str, application_id: str, *, f_cnt: int, f_port: int, data: bytes,
                 obj: Mapping[str, Any] | None = None, rssi: Sequence[int] = (), time: datetime | None = None,
                 dedup_id: str | None = None) -> integration_pb2.UplinkEvent:
    """The UplinkEvent protobuf; None (and 0, b"", ()) leave a field unset, as ChirpStack would."""
    event = integration_pb2.UplinkEvent(f_cnt=f_cnt, f_port=f_port, data=data, deduplication_id=dedup_id or "")
    event.device_info.dev_eui = dev_eui
    event.device_info.application_id = application_id
    if time is not None:
        if time.tzinfo is None:
            raise ValueError("time needs a timezone")
        event.time.FromDatetime(time)
    if obj is not None:
        event.object.SetInParent()  # a message field: written when set, even empty
        event.object.update(dict(obj))
    for i, level in enumerate(rssi):
        event.rx_info.append(gw_pb2.UplinkRxInfo(gateway_id=f"{i + 1:016x}", rssi=level))
    return event


def event_dict(event: integration_pb2.UplinkEvent) -> dict[str, Any]:
    """The event as ChirpStack's JSON has it: camelCase, zero values left out, time with +00:00."""
    out: dict[str, Any] = json_format.MessageToDict(event, preserving_proto_field_name=False)
    if isinstance(out.get("time"), str) and out["time"].endswith("Z"):
        out["time"] = out["time"][:-1] + "+00:00"
    return out


def uplink_json(dev_eui: str, application_id: str, *, f_cnt: int, f_port: int, data: bytes,
                obj: Mapping[str, Any] | None = None, rssi: Sequence[int] = (), time: datetime | None = None,
                dedup_id: str | None = None, extra_fields: Mapping[str, Any] | None = None) -> bytes:
    """An `up` event's JSON body, as ChirpStack publishes it (extra_fields: top-level keys it may add)."""
    out = event_dict(uplink_event(dev_eui, application_id, f_cnt=f_cnt, f_port=f_port, data=data, obj=obj,
                                  rssi=rssi, time=time, dedup_id=dedup_id))
    out.update(extra_fields or {})
    return orjson.dumps(out)


def parse_uplink(payload: bytes | str) -> integration_pb2.UplinkEvent:
    """An `up` event's JSON read into the protobuf; keys it does not know are skipped."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    return json_format.Parse(text, integration_pb2.UplinkEvent(), ignore_unknown_fields=True)
