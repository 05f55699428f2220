"""The `Amplifier` capability: what the player needs from a PA amplifier, whatever its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence


@dataclass(frozen=True)
class AmplifierState:
    """A snapshot read back from the amplifier."""

    powered: bool
    muted: bool
    volume_pct: int
    zones: tuple[int, ...] = ()
    emergency: bool = False
    faults: tuple[str, ...] = ()
    temperature_c: Optional[float] = None
    extra: dict = field(default_factory=dict)


class Amplifier(Protocol):
    """Drive a PA amplifier around a playback. Every method raises `AmplifierFault` on failure.

    Writes are confirmed by reading the value back (`ReadBackMismatch` when it differs); a silent bus raises
    `AmplifierUnreachable` after the profile's response timeout and retries, never later. A function the
    amplifier's profile does not define is skipped (logged at debug). `warmup_s` is the delay the amplifier needs
    after `power_on` before audio may start; `poll_interval_s` how often to poll its faults (0: never).
    `read_state` reports faults as names in `AmplifierState.faults`.
    """

    warmup_s: float
    poll_interval_s: float

    def power_on(self) -> None: ...

    def standby(self) -> None: ...

    def set_zones(self, zones: Sequence[int]) -> None: ...

    def set_volume(self, volume_pct: int) -> None: ...

    def set_emergency(self, enabled: bool) -> None: ...

    def mute(self) -> None: ...

    def unmute(self) -> None: ...

    def read_state(self) -> AmplifierState: ...

    def close(self) -> None: ...
