"""Every MQTT topic the daemon uses is built and parsed here, and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Optional

ROOT: Final = "skyvoice"
COMMAND_KINDS: Final = ("speak", "alert", "cancel", "voice", "status")
EVENT_KINDS: Final = ("ack", "status", "telemetry")
_BOX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_box_id(box_id: str) -> bool:
    """A box id is one topic level: letters, digits, `_ . -`, at most 64 characters."""
    return bool(_BOX_ID.match(box_id))


def valid_reply_topic(topic: str) -> bool:
    """A reply topic is a plain topic name: no wildcards, no NUL, not empty, at most 256 characters."""
    return 0 < len(topic) <= 256 and not any(c in topic for c in "+#\x00") and not topic.startswith("$")


@dataclass(frozen=True)
class Topics:
    """The topic tree of one box: `skyvoice/<box_id>/cmd/<kind>`, `skyvoice/<box_id>/evt/<kind>`, `.../local/trigger`."""

    box_id: str

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.box_id}"

    def command(self, kind: str) -> str:
        if kind not in COMMAND_KINDS:
            raise ValueError(f"unknown command kind {kind!r}; expected one of {', '.join(COMMAND_KINDS)}")
        return f"{self.base}/cmd/{kind}"

    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def event(self, kind: str) -> str:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
        return f"{self.base}/evt/{kind}"

    @property
    def ack(self) -> str:
        return self.event("ack")

    @property
    def status(self) -> str:
        return self.event("status")

    @property
    def telemetry(self) -> str:
        return self.event("telemetry")

    @property
    def local_trigger(self) -> str:
        return f"{self.base}/local/trigger"

    def command_kind(self, topic: str) -> Optional[str]:
        """The command kind of `topic`, or None when it is not one of this box's command topics."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        kind = topic[len(prefix):]
        return kind if kind in COMMAND_KINDS else None
