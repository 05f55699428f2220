"""JSON payload → validated, frozen `Command`. Every field is checked; anything else is `CommandRejected`.

The envelope carries everything a v3.1.1 bridge may strip from MQTT 5 properties (id, times, reply topic,
signatures), so the payload alone decides. Times are RFC 3339 strings with an explicit offset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Optional, Union
from xml.etree import ElementTree

from runtime.daemon.topics import COMMAND_KINDS, valid_reply_topic
from runtime.errors import CommandRejected

MAX_PAYLOAD_BYTES: Final = 65536
MAX_TEXT_CHARS: Final = 2000
ALERT_MIN_PRIORITY: Final = 200
SPEAK_DEFAULT_PRIORITY: Final = 100
ALERT_DEFAULT_PRIORITY: Final = 220
ALERT_STATUSES: Final = ("Actual", "Exercise", "Test")
LANGS: Final = ("auto", "en", "zh", "ja", "yue", "ko")
MAX_ZONE: Final = 64
MAX_REPEAT: Final = 10

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"

COMMON_FIELDS: Final = frozenset(
    {"id", "issued_at", "expires_at", "priority", "zones", "volume", "repeat", "reply_to", "signatures"}
)
KIND_FIELDS: Final = {
    "speak": frozenset({"text", "voice", "lang"}),
    "alert": frozenset({"text", "cap", "status", "chime", "voice", "lang"}),
    "cancel": frozenset({"cancels"}),
    "voice": frozenset({"pack"}),
    "status": frozenset(),
}


@dataclass(frozen=True)
class Envelope:
    """Fields every command carries. Times are POSIX seconds."""

    id: str
    issued_at: float
    expires_at: Optional[float]
    priority: int
    zones: tuple[int, ...] = ()
    volume: Optional[int] = None
    repeat: int = 1
    reply_to: Optional[str] = None
    signatures: tuple[tuple[str, str], ...] = ()  # (key_id, base64 signature)


@dataclass(frozen=True)
class SpeakCommand:
    envelope: Envelope
    text: str
    voice: Optional[str] = None
    lang: str = "auto"
    kind: str = field(default="speak", init=False)


@dataclass(frozen=True)
class AlertCommand:
    envelope: Envelope
    text: str  # from `text`, or headline/description/instruction of the CAP document
    status: str  # Actual / Exercise / Test
    chime: bool = True
    voice: Optional[str] = None
    lang: str = "auto"
    cap_identifier: Optional[str] = None
    cap_cancels: tuple[str, ...] = ()  # a CAP msgType=Cancel: the identifiers of the CAP alerts it cancels
    kind: str = field(default="alert", init=False)

    @property
    def is_cap_cancel(self) -> bool:
        return bool(self.cap_cancels)


@dataclass(frozen=True)
class CancelCommand:
    envelope: Envelope
    cancels: str
    kind: str = field(default="cancel", init=False)


@dataclass(frozen=True)
class VoiceCommand:
    envelope: Envelope
    pack: str  # path of a signed voice pack on the box
    kind: str = field(default="voice", init=False)


@dataclass(frozen=True)
class StatusCommand:
    envelope: Envelope
    kind: str = field(default="status", init=False)


Command = Union[SpeakCommand, AlertCommand, CancelCommand, VoiceCommand, StatusCommand]


def parse_time(value: Any, name: str) -> float:
    """An RFC 3339 timestamp with an offset ('2026-12-02T04:40:00Z') → POSIX seconds."""
    if not isinstance(value, str) or not _TIME.match(value):
        raise CommandRejected(f"field '{name}' must be an RFC 3339 time with an offset, like 2026-12-02T04:40:00Z")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandRejected(f"field '{name}' holds an impossible date {value!r}; send a real calendar time") from None
    return moment.timestamp()


def format_time(seconds: float) -> str:
    """POSIX seconds → RFC 3339 UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def decode_payload(payload: bytes) -> dict:
    """Bytes → JSON object, or CommandRejected('bad JSON ...')."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandRejected(f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandRejected("bad JSON: the payload must be one UTF-8 JSON object") from None
    if not isinstance(document, dict):
        raise CommandRejected("bad JSON: the payload must be a JSON object, not a " + type(document).__name__)
    return document


def best_effort_id(payload: bytes) -> Optional[str]:
    """The command id of a payload that failed validation, when one can be read, for the `rejected` ack."""
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(document, dict) and isinstance(document.get("id"), str) and _ID.match(document["id"]):
        return document["id"]
    return None


def parse(payload: bytes, kind: str, *, speak_default_ttl_s: float = 900.0) -> Command:
    """Validate a payload received on `cmd/<kind>`; raise CommandRejected naming the first bad field."""
    return parse_document(decode_payload(payload), kind, speak_default_ttl_s=speak_default_ttl_s)


def parse_document(document: dict, kind: str, *, speak_default_ttl_s: float = 900.0) -> Command:
    if kind not in COMMAND_KINDS:
        raise CommandRejected(f"unknown command kind {kind!r}; expected one of {', '.join(COMMAND_KINDS)}")
    unknown = sorted(set(document) - COMMON_FIELDS - KIND_FIELDS[kind])
    if unknown:
        raise CommandRejected(f"unknown field {unknown[0]!r} in a {kind} command; remove it")
    envelope = _parse_envelope(document, kind, speak_default_ttl_s)
    if kind == "speak":
        return SpeakCommand(
            envelope, _text(document, "text"), _optional_name(document, "voice"), _lang(document)
        )
    if kind == "alert":
        return _parse_alert(document, envelope)
    if kind == "cancel":
        target = document.get("cancels")
        if not isinstance(target, str) or not _ID.match(target):
            raise CommandRejected("field 'cancels' must be the id of the command to cancel")
        return CancelCommand(envelope, target)
    if kind == "voice":
        pack = document.get("pack")
        if not isinstance(pack, str) or not pack or len(pack) > 1024 or "\x00" in pack:
            raise CommandRejected("field 'pack' must be the path of a signed voice pack on the box")
        return VoiceCommand(envelope, pack)
    return StatusCommand(envelope)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _parse_envelope(document: dict, kind: str, speak_default_ttl_s: float) -> Envelope:
    command_id = document.get("id")
    if not isinstance(command_id, str) or not _ID.match(command_id):
        raise CommandRejected("field 'id' must be 1-128 characters of letters, digits and _ . : - (starting alphanumeric)")
    issued_at = parse_time(document.get("issued_at"), "issued_at")
    expires_at = parse_time(document["expires_at"], "expires_at") if "expires_at" in document else None
    if expires_at is None and kind == "alert":
        raise CommandRejected("field 'expires_at' is required for alerts; add an absolute expiry time")
    if expires_at is None and kind == "speak":
        expires_at = issued_at + speak_default_ttl_s
    if expires_at is not None and expires_at <= issued_at:
        raise CommandRejected("field 'expires_at' must be later than 'issued_at'")
    default_priority = ALERT_DEFAULT_PRIORITY if kind == "alert" else SPEAK_DEFAULT_PRIORITY
    priority = _int(document, "priority", 0, 255, default_priority)
    if kind == "alert" and priority < ALERT_MIN_PRIORITY:
        raise CommandRejected(f"field 'priority' of an alert must be {ALERT_MIN_PRIORITY}-255, not {priority}")
    if kind == "speak" and priority >= ALERT_MIN_PRIORITY:
        raise CommandRejected(f"field 'priority' of a speak must be below {ALERT_MIN_PRIORITY}; send an alert instead")
    zones = document.get("zones", [])
    if not isinstance(zones, list) or len(zones) > MAX_ZONE or not all(_is_int(z) and 1 <= z <= MAX_ZONE for z in zones):
        raise CommandRejected(f"field 'zones' must be a list of zone numbers 1-{MAX_ZONE} (empty: all zones)")
    if len(set(zones)) != len(zones):
        raise CommandRejected("field 'zones' lists a zone twice")
    volume = _int(document, "volume", 0, 100, None)
    repeat = _int(document, "repeat", 1, MAX_REPEAT, 1)
    reply_to = document.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, str) or not valid_reply_topic(reply_to)):
        raise CommandRejected("field 'reply_to' must be a topic name without wildcards, at most 256 characters")
    return Envelope(
        id=command_id,
        issued_at=issued_at,
        expires_at=expires_at,
        priority=priority,
        zones=tuple(sorted(zones)),
        volume=volume,
        repeat=repeat,
        reply_to=reply_to,
        signatures=_signatures(document),
    )


def _signatures(document: dict) -> tuple[tuple[str, str], ...]:
    blocks = document.get("signatures", [])
    if not isinstance(blocks, list) or len(blocks) > 4:
        raise CommandRejected("field 'signatures' must be a list of at most 4 {key_id, signature} blocks")
    parsed = []
    for block in blocks:
        if (
            not isinstance(block, dict)
            or set(block) != {"key_id", "signature"}
            or not isinstance(block["key_id"], str)
            or not isinstance(block["signature"], str)
            or not 0 < len(block["key_id"]) <= 64
            or not 0 < len(block["signature"]) <= 128
        ):
            raise CommandRejected("each entry of 'signatures' must be exactly {\"key_id\": str, \"signature\": base64 str}")
        parsed.append((block["key_id"], block["signature"]))
    return tuple(parsed)


def _parse_alert(document: dict, envelope: Envelope) -> AlertCommand:
    has_text, has_cap = "text" in document, "cap" in document
    if has_text == has_cap:
        raise CommandRejected("an alert needs exactly one of 'text' or 'cap' (a CAP 1.2 XML document)")
    status = document.get("status")
    cap_identifier, cap_cancels = None, ()
    if has_cap:
        cap = parse_cap(document["cap"])
        text, cap_identifier, cap_cancels = cap.text, cap.identifier, cap.references if cap.msg_type == "Cancel" else ()
        if status is None:
            status = cap.status
        elif status != cap.status:
            raise CommandRejected(f"field 'status' {status!r} disagrees with the CAP status {cap.status!r}")
    else:
        text = _text(document, "text")
    if status not in ALERT_STATUSES:
        raise CommandRejected(f"field 'status' must be one of {', '.join(ALERT_STATUSES)}")
    chime = document.get("chime", True)
    if not isinstance(chime, bool):
        raise CommandRejected("field 'chime' must be true or false")
    return AlertCommand(
        envelope, text, status, chime, _optional_name(document, "voice"), _lang(document), cap_identifier, cap_cancels
    )


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    status: str
    msg_type: str
    text: str
    references: tuple[str, ...] = ()  # identifiers from <references> "sender,identifier,sent" triplets


def parse_cap(value: Any) -> CapAlert:
    """The speakable text of a CAP 1.2 `<alert>`: headline, description and instruction of its first `<info>`.

    A `Cancel` names the alerts it cancels in `<references>`; its text is empty (nothing is spoken).
    """
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PAYLOAD_BYTES:
        raise CommandRejected("field 'cap' must be a CAP 1.2 XML document as a string")
    if "<!DOCTYPE" in value.upper() or "<!ENTITY" in value.upper():
        raise CommandRejected("field 'cap' must not contain a DOCTYPE or entity declarations")
    try:
        root = ElementTree.fromstring(value)
    except ElementTree.ParseError:
        raise CommandRejected("field 'cap' is not well-formed XML") from None
    if root.tag != f"{{{_CAP_NS}}}alert":
        raise CommandRejected(f"field 'cap' must have a root <alert> in namespace {_CAP_NS}")

    def child_text(parent: ElementTree.Element, name: str) -> str:
        node = parent.find(f"{{{_CAP_NS}}}{name}")
        return (node.text or "").strip() if node is not None else ""

    status, msg_type, identifier = child_text(root, "status"), child_text(root, "msgType"), child_text(root, "identifier")
    if not identifier:
        raise CommandRejected("field 'cap' has no <identifier>")
    if status not in ALERT_STATUSES:
        raise CommandRejected(f"field 'cap' has <status> {status!r}; the box plays only {', '.join(ALERT_STATUSES)}")
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise CommandRejected(f"field 'cap' has <msgType> {msg_type!r}; the box takes Alert, Update and Cancel")
    if msg_type == "Cancel":
        references = tuple(t.split(",")[1] for t in child_text(root, "references").split() if t.count(",") == 2)
        if not references:
            raise CommandRejected("field 'cap' is a Cancel without <references> sender,identifier,sent triplets")
        return CapAlert(identifier, status, msg_type, "", references)
    info = root.find(f"{{{_CAP_NS}}}info")
    if info is None:
        raise CommandRejected("field 'cap' has no <info> block to speak")
    parts = [child_text(info, name) for name in ("headline", "description", "instruction")]
    text = " ".join(_sentence(part) for part in parts if part)
    if not text:
        raise CommandRejected("field 'cap' has no headline, description or instruction to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise CommandRejected(f"field 'cap' gives {len(text)} characters of text; the limit is {MAX_TEXT_CHARS}")
    return CapAlert(identifier, status, msg_type, text)


def _sentence(part: str) -> str:
    part = " ".join(part.split())
    return part if part[-1:] in ".!?。！？" else part + "."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(document: dict, name: str, low: int, high: int, default: Optional[int]) -> Optional[int]:
    if name not in document:
        return default
    value = document[name]
    if not _is_int(value) or not low <= value <= high:
        raise CommandRejected(f"field '{name}' must be an integer {low}-{high}")
    return value


def _text(document: dict, name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CommandRejected(f"field '{name}' must be non-empty text")
    if len(value) > MAX_TEXT_CHARS:
        raise CommandRejected(f"field '{name}' has {len(value)} characters; the limit is {MAX_TEXT_CHARS}")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise CommandRejected(f"field '{name}' contains control characters")
    return value.strip()


def _optional_name(document: dict, name: str) -> Optional[str]:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise CommandRejected(f"field '{name}' must be a name of letters, digits and _ . - (at most 64)")
    return value


def _lang(document: dict) -> str:
    lang = document.get("lang", "auto")
    if lang not in LANGS:
        raise CommandRejected(f"field 'lang' must be one of {', '.join(LANGS)}")
    return lang
