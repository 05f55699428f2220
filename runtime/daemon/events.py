"""What the box says: `evt/ack` per command, `evt/status` (retained; the will says offline), `evt/telemetry`."""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Any, Callable, Final, Optional, Protocol

from runtime.daemon.envelope import format_time
from runtime.daemon.topics import Topics

_LOGGER = logging.getLogger(__name__)

ACK_STATES: Final = ("queued", "playing", "done", "duplicate", "expired", "rejected", "preempted", "cancelled", "failed")


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


def status_payload(box_id: str, state: str, **details: Any) -> bytes:
    return json.dumps({"box": box_id, "state": state, **details}, sort_keys=True).encode()


class EventPublisher:
    def __init__(self, publisher: Publisher, topics: Topics, *, clock: Callable[[], float] = time.time):
        self.publisher = publisher
        self.topics = topics
        self.clock = clock
        self._sequence = itertools.count(1)  # per daemon run: with `at`, tells a QoS 1 redelivery from a new event

    def ack(self, command_id: Optional[str], state: str, *, kind: Optional[str] = None, reason: Optional[str] = None,
            reply_to: Optional[str] = None, **extra: Any) -> None:
        if state not in ACK_STATES:
            raise ValueError(f"unknown ack state {state!r}")
        event = {"id": command_id, "state": state, "at": format_time(self.clock()), "box": self.topics.box_id,
                 "seq": next(self._sequence)}
        if kind:
            event["kind"] = kind
        if reason:
            event["reason"] = reason
        event.update(extra)
        payload = json.dumps(event, sort_keys=True).encode()
        _LOGGER.info("ack id=%s state=%s reason=%s", command_id, state, reason)
        self.publisher.publish(self.topics.ack, payload)
        if reply_to and reply_to != self.topics.ack:
            self.publisher.publish(reply_to, payload)

    def status(self, state: str, **details: Any) -> None:
        details["at"] = format_time(self.clock())
        self.publisher.publish(self.topics.status, status_payload(self.topics.box_id, state, **details), retain=True)

    def telemetry(self, **values: Any) -> None:
        values["at"] = format_time(self.clock())
        values["box"] = self.topics.box_id
        self.publisher.publish(self.topics.telemetry, json.dumps(values, sort_keys=True).encode())
