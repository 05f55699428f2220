"""Which command plays next: highest priority first, FIFO within a priority; pre-emption and cancel.

A submitted command that outranks the one playing sets that playback's cancel event (the player stops within one
audio chunk, well inside 200 ms). Same-priority alerts: the latest wins (the older one is dropped, superseded).
An interrupted lower-priority command is re-queued or dropped per `requeue_preempted`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass, field
from typing import Optional

from runtime.daemon.envelope import AlertCommand, Command


@dataclass
class Playback:
    """The command being played, its cancel event, and why it was interrupted (state, reason) if it was."""

    command: Command
    cancel: threading.Event = field(default_factory=threading.Event)
    interruption: Optional[tuple[str, str]] = None
    requeue: bool = False


@dataclass(frozen=True)
class Dropped:
    """A queued command removed without playing: (command, state, reason), for the caller to record and ack."""

    command: Command
    state: str
    reason: str


class Scheduler:
    def __init__(self, *, requeue_preempted: bool = True):
        self.requeue_preempted = requeue_preempted
        self._condition = threading.Condition()
        self._heap: list[tuple[int, int, Command]] = []
        self._removed: set[str] = set()
        self._order = itertools.count()
        self._current: Optional[Playback] = None

    def submit(self, command: Command) -> list[Dropped]:
        """Queue a command; pre-empt the current playback if it outranks it. Returns queued commands it superseded."""
        dropped: list[Dropped] = []
        with self._condition:
            if isinstance(command, AlertCommand):
                for _, _, queued in self._heap:
                    if queued.envelope.id not in self._removed and _same_priority_alerts(queued, command):
                        self._removed.add(queued.envelope.id)
                        dropped.append(Dropped(queued, "preempted", f"superseded by {command.envelope.id}"))
            heapq.heappush(self._heap, (-command.envelope.priority, next(self._order), command))
            current = self._current
            if current is not None and current.interruption is None:
                if _same_priority_alerts(current.command, command):
                    current.interruption = ("preempted", f"superseded by {command.envelope.id}")
                    current.requeue = False
                    current.cancel.set()
                elif command.envelope.priority > current.command.envelope.priority:
                    current.interruption = ("preempted", f"pre-empted by {command.envelope.id}")
                    current.requeue = self.requeue_preempted
                    current.cancel.set()
            self._condition.notify_all()
        return dropped

    def cancel(self, command_id: str) -> Optional[str]:
        """Cancel a queued or playing command: 'queued' or 'playing' when found, None when not."""
        with self._condition:
            current = self._current
            if current is not None and current.command.envelope.id == command_id and (current.interruption is None or current.requeue):
                current.interruption = ("cancelled", "cancelled by operator")
                current.requeue = False
                current.cancel.set()
                return "playing"
            for _, _, queued in self._heap:
                if queued.envelope.id == command_id and command_id not in self._removed:
                    self._removed.add(command_id)
                    return "queued"
        return None

    def ids_matching(self, predicate) -> list[str]:
        """Ids of the queued and playing commands for which predicate(command) is true (CAP Cancel lookups)."""
        with self._condition:
            candidates = [c for _, _, c in self._heap if c.envelope.id not in self._removed]
            if self._current is not None and self._current.interruption is None:
                candidates.append(self._current.command)
            return [c.envelope.id for c in candidates if predicate(c)]

    def next(self, timeout: float) -> Optional[Playback]:
        """The next command to play (it becomes current), or None after `timeout` seconds with nothing queued."""
        with self._condition:
            if not self._condition.wait_for(self._has_work, timeout=timeout):
                return None
            _, _, command = heapq.heappop(self._heap)
            self._current = Playback(command)
            return self._current

    def finish(self, playback: Playback) -> None:
        """The worker is done with `playback`; a pre-empted one goes back into the queue when configured."""
        with self._condition:
            if self._current is playback:
                self._current = None
            if playback.requeue:
                heapq.heappush(self._heap, (-playback.command.envelope.priority, next(self._order), playback.command))
            self._condition.notify_all()

    def queued_count(self) -> int:
        with self._condition:
            return sum(1 for _, _, c in self._heap if c.envelope.id not in self._removed)

    @property
    def current(self) -> Optional[Playback]:
        with self._condition:
            return self._current

    def _has_work(self) -> bool:
        while self._heap and self._heap[0][2].envelope.id in self._removed:
            _, _, command = heapq.heappop(self._heap)
            self._removed.discard(command.envelope.id)
        return bool(self._heap)


def _same_priority_alerts(older: Command, newer: Command) -> bool:
    return (
        isinstance(older, AlertCommand)
        and isinstance(newer, AlertCommand)
        and older.envelope.priority == newer.envelope.priority
        and older.envelope.id != newer.envelope.id
    )
