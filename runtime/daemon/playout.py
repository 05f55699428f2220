"""Playout hold: how long the box lets streamed speech build up before it starts playing, learned from the last one.

Streamed speech starts with its first piece, and on a box whose CPU only just keeps up (the decoder re-decodes context
around every piece) the next piece can come after the first has played: a stall mid-word. A jitter buffer fixes that
by starting later. The delay that would have avoided every stall is known once the speech is made: for pieces made at
t_i lasting d_i, it is max_i (t_i - t_0 - sum of d_j for j < i), how far the latest piece came behind the audio before
it. The player holds the next announcement's speech after its first piece for the largest such delay of the last
`REMEMBERED` announcements (less whatever the amplifier's warm-up and the chime already waited): one announcement's
delay varies with the sentences and the load (0.18-0.56 s in five runs of the same text on the 2-core VM, where the
last value alone let every other announcement stall). A fast box learns 0 and keeps its early first audio; a slow one
trades a little first-audio latency for speech without gaps. The delay is measured from production times, not from
playback, so a hold that worked does not unlearn itself.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final, Sequence

_LOGGER = logging.getLogger(__name__)

MAX_HOLD_S: Final = 3.0  # never hold speech longer than this, whatever a bad announcement measured
REMEMBERED: Final = 5  # announcements whose stall-free delays the hold covers


def stall_free_delay(timeline: Sequence[tuple[float, float]]) -> float:
    """Seconds to wait after the first piece is made so that playback never runs dry. `timeline`: (time the piece
    was made, its seconds of audio), in order."""
    if not timeline:
        return 0.0
    start = timeline[0][0]
    played, need = 0.0, 0.0
    for made_at, seconds in timeline:
        need = max(need, made_at - start - played)
        played += seconds
    return need


class PlayoutHold:
    """The hold for the next announcement's speech: `seconds`; `learn(timeline)` after a neural announcement."""

    def __init__(self, max_hold_s: float = MAX_HOLD_S, remembered: int = REMEMBERED) -> None:
        self.max_hold_s = float(max_hold_s)
        self._delays: deque[float] = deque(maxlen=max(1, int(remembered)))
        self.seconds = 0.0

    def learn(self, timeline: Sequence[tuple[float, float]]) -> None:
        self._delays.append(min(stall_free_delay(timeline), self.max_hold_s))
        learned = max(self._delays)
        if abs(learned - self.seconds) >= 0.001:
            _LOGGER.info("playout hold learned seconds=%.3f previous=%.3f last_delay=%.3f", learned, self.seconds, self._delays[-1])
        self.seconds = learned
