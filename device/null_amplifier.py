"""`NullAmplifier`: no amplifier (line-level output, or a bench without RS485). Records what it was asked to do."""

from __future__ import annotations

import threading
from typing import Sequence

from device.amplifier import AmplifierState


class NullAmplifier:
    """Accepts every command at once and remembers the state; `calls` lists the commands in order."""

    def __init__(self, warmup_s: float = 0.0) -> None:
        self.warmup_s = warmup_s
        self.poll_interval_s = 0.0  # nothing to poll
        self.calls: list[tuple] = []
        self._lock = threading.Lock()
        self._state = AmplifierState(powered=False, muted=True, volume_pct=0)

    def _record(self, call: tuple, **changes) -> None:
        from dataclasses import replace

        with self._lock:
            self.calls.append(call)
            self._state = replace(self._state, **changes)

    def power_on(self) -> None:
        self._record(("power_on",), powered=True)

    def standby(self) -> None:
        self._record(("standby",), powered=False)

    def set_zones(self, zones: Sequence[int]) -> None:
        self._record(("set_zones", tuple(zones)), zones=tuple(zones))

    def set_volume(self, volume_pct: int) -> None:
        self._record(("set_volume", int(volume_pct)), volume_pct=int(volume_pct))

    def set_emergency(self, enabled: bool) -> None:
        self._record(("set_emergency", bool(enabled)), emergency=bool(enabled))

    def mute(self) -> None:
        self._record(("mute",), muted=True)

    def unmute(self) -> None:
        self._record(("unmute",), muted=False)

    def read_state(self) -> AmplifierState:
        with self._lock:
            return self._state

    def close(self) -> None:
        pass
