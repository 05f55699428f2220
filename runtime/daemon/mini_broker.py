"""A minimal in-process MQTT 3.1.1/5 broker for `skyvoice demo` on machines without mosquitto.

Enough for one box and one operator on 127.0.0.1: CONNECT (clean start, will), SUBSCRIBE with `+`/`#`, PUBLISH at
QoS 0/1, retained messages, persistent sessions (clean_start false keeps subscriptions and queues messages while
the client is away), keepalive, PINGREQ, DISCONNECT. MQTT 5 properties are skipped on input and sent empty.
Not for production: no auth, no redelivery of unacknowledged messages, no QoS 2, no will delay.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Optional

_LOGGER = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


class ProtocolError(Exception):
    """The peer sent something this broker does not understand; the connection is closed."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ProtocolError("packet shorter than its fields")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise ProtocolError("malformed variable byte integer")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        return self.binary().decode("utf-8", "replace")

    def skip_properties(self, version: int) -> None:
        if version == 5:
            self.take(self.varint())

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


@dataclass
class _Session:
    client_id: str
    persistent: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    pending: list[tuple[str, bytes, int, bool]] = field(default_factory=list)
    connection: Optional["_Connection"] = None


class MiniBroker:
    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, max_pending: int = 10000):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(32)
        self.port = self._listener.getsockname()[1]
        self.max_pending = max_pending
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._connections: set[_Connection] = set()
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "MiniBroker":
        self._thread = threading.Thread(target=self._accept, name="mini-broker", daemon=True)
        self._thread.start()
        _LOGGER.info("embedded broker listening port=%d", self.port)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close(send_will=False)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.serve, name="mini-broker-client", daemon=True).start()

    # called by connections ------------------------------------------------------------------------------------------

    def attach(self, connection: "_Connection", client_id: str, clean_start: bool) -> tuple[bool, list]:
        """Bind the connection to its session; returns (session present, messages queued while it was away)."""
        with self._lock:
            session = self._sessions.get(client_id)
            present = session is not None and not clean_start
            if session is not None and session.connection is not None and session.connection is not connection:
                session.connection.close(send_will=True)
            if not present:
                session = _Session(client_id, persistent=not clean_start)
                self._sessions[client_id] = session
            session.persistent = not clean_start
            session.connection = connection
            connection.session = session
            pending, session.pending = session.pending, []
        return present, pending

    def detach(self, connection: "_Connection") -> None:
        with self._lock:
            self._connections.discard(connection)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
                if not session.persistent:
                    self._sessions.pop(session.client_id, None)

    def subscribe(self, connection: "_Connection", topic_filter: str, qos: int) -> list[tuple[str, bytes, int, bool]]:
        """Add the subscription; returns the retained messages it matches (sent after the SUBACK)."""
        with self._lock:
            connection.session.subscriptions[topic_filter] = qos
            return [(t, p, min(qos, q), True) for t, (p, q) in self._retained.items() if topic_matches(topic_filter, t)]

    def unsubscribe(self, connection: "_Connection", topic_filter: str) -> None:
        with self._lock:
            connection.session.subscriptions.pop(topic_filter, None)

    def route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self._lock:
            if retain:
                if payload:
                    self._retained[topic] = (payload, qos)
                else:
                    self._retained.pop(topic, None)
            deliveries = []
            for session in self._sessions.values():
                granted = [q for f, q in session.subscriptions.items() if topic_matches(f, topic)]
                if not granted:
                    continue
                effective = min(qos, max(granted))
                if session.connection is not None:
                    deliveries.append((session.connection, effective))
                elif session.persistent and effective > 0 and len(session.pending) < self.max_pending:
                    session.pending.append((topic, payload, effective, False))
        for connection, effective in deliveries:
            connection.send_publish(topic, payload, effective, False)


class _Connection:
    def __init__(self, broker: MiniBroker, sock: socket.socket):
        self.broker, self.sock = broker, sock
        self.version = 4
        self.session: Optional[_Session] = None
        self.will: Optional[tuple[str, bytes, int, bool]] = None
        self._write_lock = threading.Lock()
        self._next_id = 0
        self._closed = False

    def serve(self) -> None:
        try:
            while True:
                header, body = self._read_packet()
                if not self._handle(header >> 4, header & 0x0F, _Reader(body)):
                    self.close(send_will=False)
                    return
        except (OSError, ProtocolError):
            self.close(send_will=True)

    def _read_packet(self) -> tuple[int, bytes]:
        header = self._read_exact(1)[0]
        length, shift = 0, 0
        for _ in range(4):
            byte = self._read_exact(1)[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        return header, self._read_exact(length) if length else b""

    def _read_exact(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ProtocolError("connection closed")
            data += chunk
        return bytes(data)

    def _handle(self, kind: int, flags: int, reader: _Reader) -> bool:
        if kind == CONNECT:
            self._connect(reader)
        elif kind == PUBLISH:
            qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
            topic = reader.string()
            packet_id = reader.u16() if qos else 0
            reader.skip_properties(self.version)
            self.broker.route(topic, reader.rest(), min(qos, 1), retain)
            if qos == 1:
                self._send(PUBACK << 4, struct.pack("!H", packet_id))
        elif kind == SUBSCRIBE:
            packet_id = reader.u16()
            reader.skip_properties(self.version)
            codes, retained = [], []
            while reader.pos < len(reader.data):
                topic_filter, options = reader.string(), reader.u8()
                qos = min(options & 0x03, 1)
                retained += self.broker.subscribe(self, topic_filter, qos)
                codes.append(qos)
            self._send(SUBACK << 4, struct.pack("!H", packet_id) + self._props() + bytes(codes))
            for message in retained:
                self.send_publish(*message)
        elif kind == UNSUBSCRIBE:
            packet_id = reader.u16()
            reader.skip_properties(self.version)
            count = 0
            while reader.pos < len(reader.data):
                self.broker.unsubscribe(self, reader.string())
                count += 1
            codes = bytes(count) if self.version == 5 else b""
            self._send(UNSUBACK << 4, struct.pack("!H", packet_id) + self._props() + codes)
        elif kind == PINGREQ:
            self._send(PINGRESP << 4, b"")
        elif kind == DISCONNECT:
            return False
        # PUBACK from clients: nothing to do (no redelivery in this minimal broker)
        return True

    def _connect(self, reader: _Reader) -> None:
        if reader.string() != "MQTT":
            raise ProtocolError("not MQTT")
        self.version = reader.u8()
        if self.version not in (4, 5):
            raise ProtocolError(f"MQTT protocol level {self.version} is not supported")
        flags = reader.u8()
        keepalive = reader.u16()
        reader.skip_properties(self.version)
        client_id = reader.string() or f"auto-{id(self)}"
        if flags & 0x04:
            reader.skip_properties(self.version)
            will_topic, will_payload = reader.string(), reader.binary()
            self.will = (will_topic, will_payload, min((flags >> 3) & 0x03, 1), bool(flags & 0x20))
        if keepalive:
            self.sock.settimeout(keepalive * 1.5)
        present, pending = self.broker.attach(self, client_id, clean_start=bool(flags & 0x02))
        self._send(CONNACK << 4, bytes([1 if present else 0, 0]) + self._props())
        for message in pending:
            self.send_publish(*message)

    def _props(self) -> bytes:
        return b"\x00" if self.version == 5 else b""

    def send_publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        body = encode_string(topic)
        if qos:
            with self._write_lock:
                self._next_id = self._next_id % 65535 + 1
                packet_id = self._next_id
            body += struct.pack("!H", packet_id)
        body += self._props() + payload
        self._send((PUBLISH << 4) | (qos << 1) | (1 if retain else 0), body)

    def _send(self, header: int, body: bytes) -> None:
        try:
            with self._write_lock:
                self.sock.sendall(bytes([header]) + encode_length(len(body)) + body)
        except OSError:
            pass  # the reader side notices and cleans up

    def close(self, *, send_will: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.broker.detach(self)
        if send_will and self.will is not None:
            self.broker.route(*self.will)
