"""`run_ahead`: run an iterator in its own thread so its consumer never waits for work it could have had done.

The synthesizer chains two stages with it: the GPT (tokens, sentence after sentence) runs ahead of the SoVITS
decoder, and the decoder runs ahead of whoever plays the audio. ONNX Runtime releases the GIL while a graph runs, so
on a multi-core box the next sentence's GPT overlaps this sentence's decoding, and both overlap playback.
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


def run_ahead(
    produce: Callable[[StopSignal], Iterator[T]],
    *,
    name: str,
    max_ahead: int = 0,
    cancel: Optional[threading.Event] = None,
) -> Iterator[T]:
    """Yield the items of `produce(stop)`, which runs in a daemon thread named `name`.

    At most `max_ahead` items wait in between (0: no bound). An exception in the producer is raised in the consumer
    after the items before it. When the consumer stops early (closes the generator, or `cancel` is set), `stop` is
    set, the producer's generator is closed in its own thread, and the thread is joined before this returns, so no
    work outlives the call. `produce` should check `stop.is_set()` between units of work.
    """
    stop = StopSignal(cancel)
    items: "queue.Queue[tuple[str, object]]" = queue.Queue(maxsize=max(0, int(max_ahead)))

    def put(kind: str, value: object) -> bool:
        while True:
            try:
                items.put((kind, value), timeout=_PUT_WAKEUP_S)
                return True
            except queue.Full:
                if stop.is_set():
                    return False

    def work() -> None:
        try:
            source = produce(stop)
            try:
                for item in source:
                    if stop.is_set() or not put("item", item):
                        break
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            put("done", _DONE)
        except BaseException as exc:  # handed to the consumer's thread and raised there
            put("error", exc)

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "done":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            if stop.is_set():
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # drain, so a producer waiting on a full queue sees `stop` and leaves
            try:
                items.get(timeout=_PUT_WAKEUP_S)
            except queue.Empty:
                pass
        worker.join()
