"""A small asyncio MQTT 3.1.1 client for publishing, cheap enough per message to serve as a load generator.

It speaks only what a publishing device needs: CONNECT (with user name, password and a will),
PUBLISH at QoS 0 or 1, PUBACK, PINGREQ and DISCONNECT. Messages are encoded into a list of byte
strings and written with one `transport.write` per `flush()`, so many messages cost one system call;
PUBACKs are parsed straight from the received bytes. At most `inflight` QoS 1 messages are
unacknowledged at a time: `room()` says how many more may go now, `publish()` waits for room.
"""

from device_sim.mqtt.client import MqttClient
from device_sim.mqtt.packets import (
    CONNACK_REASONS,
    BrokerUrl,
    ConnectionLost,
    ConnectRefused,
    MqttError,
    PacketReader,
    Will,
    connect_packet,
    encode_string,
    encode_topic,
    encode_varint,
    parse_url,
    publish_header,
    publish_packet,
)

__all__ = ["CONNACK_REASONS", "BrokerUrl", "ConnectRefused", "ConnectionLost", "MqttClient", "MqttError",
           "PacketReader", "Will", "connect_packet", "encode_string", "encode_topic", "encode_varint", "parse_url",
           "publish_header", "publish_packet"]
