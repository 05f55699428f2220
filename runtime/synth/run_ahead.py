"""`run_ahead`: run an iterator in its own thread so its consumer never waits for work it could have had done.

The synthesizer chains two stages with it: the GPT (tokens, sentence after sentence) runs ahead of the SoVITS
decoder, and the decoder runs ahead of whoever plays the audio. ONNX Runtime releases the GIL while a graph runs, so
on a multi-core box the next sentence's GPT overlaps this sentence's decoding, and both overlap playback. The
daemon's player starts a command's audio with `AheadStream` before the amplifier is ready, so synthesis also
overlaps the amplifier's power-up and the alert chime.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Final, Iterator, Optional, TypeVar

T = TypeVar("T")

_PUT_WAKEUP_S: Final = 0.05  # a producer blocked on a full queue re-checks `stop` this often
_DONE = object()


class StopSignal:
    """Set when the consumer stopped (closed, cancelled) or, if given, when an outer cancel event is set; an
    `Event`-like object the producer polls between units of work."""

    def __init__(self, outer: Optional[threading.Event] = None) -> None:
        self._own = threading.Event()
        self._outer = outer

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or (self._outer is not None and self._outer.is_set())


class AheadStream:
    """The items of `produce(stop)`, which starts at once in a daemon thread named `name`: iterate it, then `close()`
    it (or use it as a context manager) so its producer never outlives the consumer.

    At most `max_ahead` items wait in between (0: no bound). An exception in the producer is raised in the consumer
    after the items before it. `close()` (or `cancel`, if given, being set) sets `stop`; the producer's generator is
    closed in its own thread, and `close()` joins that thread. `produce` should check `stop.is_set()` between units
    of work. Start one before the consumer is ready (the daemon starts synthesis while the amplifier warms up and the
    chime plays); use `run_ahead` where the work should start with the first `next()`.
    """

    def __init__(
        self,
        produce: Callable[[StopSignal], Iterator[T]],
        *,
        name: str,
        max_ahead: int = 0,
        cancel: Optional[threading.Event] = None,
    ) -> None:
        self.stop = StopSignal(cancel)
        self._items: "queue.Queue[tuple[str, object]]" = queue.Queue(maxsize=max(0, int(max_ahead)))
        self._ended = False
        self._worker = threading.Thread(target=self._work, args=(produce,), name=name, daemon=True)
        self._worker.start()

    def _put(self, kind: str, value: object) -> bool:
        while True:
            try:
                self._items.put((kind, value), timeout=_PUT_WAKEUP_S)
                return True
            except queue.Full:
                if self.stop.is_set():
                    return False

    def _work(self, produce: Callable[[StopSignal], Iterator[T]]) -> None:
        try:
            source = produce(self.stop)
            try:
                for item in source:
                    if self.stop.is_set() or not self._put("item", item):
                        break
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            self._put("done", _DONE)
        except BaseException as exc:  # handed to the consumer's thread and raised there
            self._put("error", exc)

    def __iter__(self) -> "AheadStream":
        return self

    def __next__(self) -> T:
        if self._ended:
            raise StopIteration
        kind, value = self._items.get()
        if kind == "done" or (kind == "item" and self.stop.is_set()):
            self._ended = True
            raise StopIteration
        if kind == "error":
            self._ended = True
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the producer and join its thread (idempotent)."""
        self._ended = True
        self.stop.set()
        while self._worker.is_alive():  # drain, so a producer waiting on a full queue sees `stop` and leaves
            try:
                self._items.get(timeout=_PUT_WAKEUP_S)
            except queue.Empty:
                pass
        self._worker.join()

    def __enter__(self) -> "AheadStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_ahead(
    produce: Callable[[StopSignal], Iterator[T]],
    *,
    name: str,
    max_ahead: int = 0,
    cancel: Optional[threading.Event] = None,
) -> Iterator[T]:
    """Yield the items of `produce(stop)`, which runs in a daemon thread named `name` from the first `next()` on.

    `AheadStream`'s contract (bound, errors, `stop`), as a generator: when the consumer stops early (closes the
    generator, or `cancel` is set), the producer is stopped, closed and joined before this returns, so no work
    outlives the call.
    """
    stream = AheadStream(produce, name=name, max_ahead=max_ahead, cancel=cancel)
    try:
        yield from stream
    finally:
        stream.close()
