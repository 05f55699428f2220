"""Builders for command documents used across the daemon tests."""

from __future__ import annotations

import itertools
import json
import time

from runtime.daemon.envelope import format_time
from runtime.daemon.signatures import sign_document

_COUNTER = itertools.count()


def new_id(prefix: str = "cmd") -> str:
    return f"{prefix}-{time.time_ns()}-{next(_COUNTER)}"


def speak_doc(text: str = "Hello from the bridge.", *, now: float | None = None, ttl: float = 600, **extra) -> dict:
    now = time.time() if now is None else now
    doc = {"id": new_id("speak"), "issued_at": format_time(now), "expires_at": format_time(now + ttl), "text": text}
    doc.update(extra)
    return doc


def alert_doc(text: str = "Fire in the engine room.", *, now: float | None = None, ttl: float = 600, status: str = "Test", **extra) -> dict:
    now = time.time() if now is None else now
    doc = {
        "id": new_id("alert"),
        "issued_at": format_time(now),
        "expires_at": format_time(now + ttl),
        "priority": 220,
        "text": text,
        "status": status,
    }
    doc.update(extra)
    return doc


def signed(doc: dict, kind: str, *keys) -> dict:
    return sign_document(doc, kind, keys)


def payload(doc: dict) -> bytes:
    return json.dumps(doc).encode()
