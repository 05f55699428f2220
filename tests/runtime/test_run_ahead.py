"""`run_ahead`: a producer in its own thread, items in order, errors re-raised, early stop closes and joins it."""

from __future__ import annotations

import threading

import pytest

from runtime.synth.run_ahead import run_ahead


def _alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_items_arrive_in_order_and_the_thread_ends():
    assert list(run_ahead(lambda stop: iter(range(50)), name="ahead-order")) == list(range(50))
    assert not _alive("ahead-order")


def test_the_producer_runs_ahead_of_a_consumer_that_has_not_asked_yet():
    produced_all = threading.Event()

    def produce(stop):
        yield from range(5)
        produced_all.set()

    items = run_ahead(produce, name="ahead-eager")
    assert next(items) == 0
    assert produced_all.wait(5), "the producer waited for the consumer"
    assert list(items) == [1, 2, 3, 4]


def test_a_producer_error_reaches_the_consumer_after_the_items_before_it():
    def produce(stop):
        yield 1
        raise ValueError("decoder graph failed")

    got = []
    with pytest.raises(ValueError, match="decoder graph failed"):
        for item in run_ahead(produce, name="ahead-error"):
            got.append(item)
    assert got == [1]


def _counter(ended: threading.Event):
    """A producer counting until told to stop; `ended` is set when its generator finishes or is closed."""

    def produce(stop):
        try:
            n = 0
            while not stop.is_set():
                yield n
                n += 1
        finally:
            ended.set()

    return produce


def test_closing_early_stops_a_bounded_producer_closes_it_and_joins():
    closed = threading.Event()
    items = run_ahead(_counter(closed), name="ahead-close", max_ahead=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set() and not _alive("ahead-close")


def test_an_outer_cancel_stops_both_sides():
    cancel = threading.Event()
    ended = threading.Event()
    items = run_ahead(_counter(ended), name="ahead-cancel", max_ahead=1, cancel=cancel)
    assert next(items) == 0
    cancel.set()
    assert list(items) == []
    assert ended.is_set() and not _alive("ahead-cancel")

