"""The only paho user: one long-lived MQTT 5 connection with a persistent session, QoS 1 both ways.

- `clean_start=False` + Session Expiry: the broker keeps our subscription and queues commands while we are away
  (paho's default, clean start on the first connect, would wipe them on every restart).
- Manual acks: PUBACK goes out only after the handler returned, i.e. after the command is stored (or answered).
- The will (retained `offline` on evt/status) is delayed by `will_delay_s` so short outages do not flap.
- Publishing while disconnected queues in paho and goes out after reconnect.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from runtime.daemon.config import MqttConfig
from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

MAX_QUEUED_OUTGOING = 10000


class MqttLink:
    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str,
        subscriptions: list[str],
        on_message: Callable[[str, bytes], None],
        will_topic: str,
        will_payload: bytes,
        on_connected: Optional[Callable[[bool], None]] = None,
    ):
        self.config = config
        self.subscriptions = subscriptions
        self._handler = on_message
        self._on_connected = on_connected
        self.connected = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=max(1, int(config.reconnect_min_s)), max_delay=max(1, int(config.reconnect_max_s)))
        client.max_queued_messages_set(MAX_QUEUED_OUTGOING)
        client.max_inflight_messages_set(config.max_inflight)
        will_properties = Properties(PacketTypes.WILLMESSAGE)
        will_properties.WillDelayInterval = config.will_delay_s
        client.will_set(will_topic, will_payload, qos=1, retain=True, properties=will_properties)
        if config.username:
            password = None
            if config.password_file:
                try:
                    password = Path(config.password_file).read_text().strip()
                except OSError as exc:
                    raise ConfigError(f"mqtt.password_file {config.password_file} cannot be read: {exc}") from None
            client.username_pw_set(config.username, password)
        if config.tls.ca_file:
            client.tls_set(
                ca_certs=config.tls.ca_file,
                certfile=config.tls.cert_file or None,
                keyfile=config.tls.key_file or None,
            )
        self._client = client

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()
        _LOGGER.info("mqtt connecting host=%s port=%d", self.config.host, self.config.port)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            _LOGGER.warning("publish not queued topic=%s rc=%s", topic, mqtt.error_string(info.rc))

    def stop(self) -> None:
        """Disconnect cleanly (the broker keeps the session; the will is not sent) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish_and_wait(self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 2.0) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if self.connected.is_set():
            info.wait_for_publish(timeout=timeout_s)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            _LOGGER.warning("mqtt connect refused reason=%s", reason_code)
            return
        session_present = bool(getattr(flags, "session_present", False))
        _LOGGER.info("mqtt connected session_present=%s", session_present)
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.connected.set()
        if self._on_connected is not None:
            self._on_connected(session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # paho may report one disconnect twice (issue #870): keep this idempotent.
        if self.connected.is_set() and reason_code != 0:
            _LOGGER.warning("mqtt disconnected reason=%s; reconnecting", reason_code)
        self.connected.clear()

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._handler(message.topic, bytes(message.payload))
        except Exception:  # a bug or a store failure (disk full): log it, do not ack, the broker redelivers later
            _LOGGER.exception("command handling failed topic=%s mid=%s; left unacknowledged", message.topic, message.mid)
            return
        client.ack(message.mid, message.qos)


class OperatorClient:
    """An independent MQTT 5 client (the operator's side), used by `skyvoice demo`: publish commands, read events."""

    def __init__(self, host: str, port: int, *, client_id: str = "skyvoice-operator"):
        import queue

        self.messages: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self._subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        client.on_subscribe = lambda *args: self._subscribed.set()
        self._client = client
        self._host, self._port = host, port

    def connect(self, subscribe: str, timeout_s: float = 10.0) -> None:
        connected = threading.Event()
        self._client.on_connect = lambda *args: connected.set()
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not connected.wait(timeout_s):
            raise ConfigError(f"operator client could not connect to {self._host}:{self._port} within {timeout_s:.0f} s")
        self._client.subscribe(subscribe, qos=1)
        if not self._subscribed.wait(timeout_s):
            raise ConfigError(f"operator client could not subscribe to {subscribe}")

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(timeout=timeout_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
