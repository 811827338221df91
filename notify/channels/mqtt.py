"""The MQTT channel: the notification published (QoS 1) to `{prefix}/{community}/alerts`."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from kernel.backoff import Backoff
from kernel.channels.mqtt import MqttChannelConfig
from kernel.topics import alerts_topic
from notify.channels import ChannelContext, Outcome, register_factory
from notify.notification import Notification

# As paho's own reconnect delays were: from 1 s up to 30 s.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0


class MqttPublisher:
    """One connection for every MQTT channel of the service, kept up by its own thread; a broker
    that is down or drops it is tried again after the service's one backoff (kernel/backoff.py)."""

    def __init__(self, url: str, client_id: str, *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> None:
        parts = urlsplit(url)
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311)
        if username is None and parts.username:
            username, password = unquote(parts.username), unquote(parts.password or "")
        if username is not None:
            self.client.username_pw_set(username, password)
        tls = parts.scheme in ("mqtts", "ssl")
        if tls:
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883)
        self.backoff = Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.last_error: str | None = None
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried)."""
        if not self._started.is_set():
            self._started.set()
            self._thread = threading.Thread(target=self._run, name="mqtt-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                rc = self.client.connect(self.host, self.port, keepalive=30)
                while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                    rc = self.client.loop(timeout=0.2)
                    if self.client.is_connected():
                        self.backoff.reset()
                self.last_error = None if self._stopping.is_set() else f"connection ended ({rc.name})"
            except (OSError, ValueError) as exc:
                self.last_error = f"cannot connect to {self.host}:{self.port}: {exc}"
            if self._stopping.is_set():
                break
            self._stopping.wait(self.backoff.next())

    def stop(self) -> None:
        """Disconnect."""
        if self._started.is_set():
            self._stopping.set()
            self.client.disconnect()
            if self._thread is not None:
                self._thread.join(timeout=2.0)

    async def publish(self, topic: str, payload: bytes, timeout_s: float) -> Outcome:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        self.start()
        if not self.client.is_connected():
            return Outcome(False, retryable=True, error="not connected to the broker")
        info = self.client.publish(topic, payload, qos=1)
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while not info.is_published():
                if asyncio.get_running_loop().time() > deadline:
                    return Outcome(False, retryable=True, error="no PUBACK in time")
                await asyncio.sleep(0.01)
        except (RuntimeError, ValueError) as exc:  # the connection dropped under the message
            return Outcome(False, retryable=True, error=str(exc))
        return Outcome(True)


class MqttChannel:
    """Publishes to the alert's community topic."""

    type = "mqtt"

    def __init__(self, publisher: MqttPublisher, prefix: str, timeout_s: float = 5.0) -> None:
        self.publisher = publisher
        self.prefix = prefix
        self.timeout_s = timeout_s

    async def send(self, n: Notification) -> Outcome:
        """One attempt."""
        return await self.publisher.publish(alerts_topic(self.prefix, n.community), n.payload, self.timeout_s)


def make_mqtt(config: MqttChannelConfig, context: ChannelContext) -> MqttChannel:
    """The MQTT channel on the service's one publisher."""
    return MqttChannel(context.mqtt_publisher(), context.mqtt_prefix)


register_factory("mqtt", make_mqtt)
