"""Priorities, pre-emption, latest-wins for same-priority alerts, cancel."""

from __future__ import annotations

from daemon_docs import alert_doc, speak_doc
from runtime.daemon.envelope import parse_document
from runtime.daemon.scheduler import Scheduler


def speak(priority=100):
    return parse_document(speak_doc(priority=priority), "speak")


def alert(priority=220):
    return parse_document(alert_doc(priority=priority), "alert")


def test_highest_priority_first_then_fifo():
    scheduler = Scheduler()
    a, b, c = speak(10), speak(50), speak(50)
    for command in (a, b, c):
        scheduler.submit(command)
    order = []
    for _ in range(3):
        playback = scheduler.next(timeout=0.1)
        order.append(playback.command)
        scheduler.finish(playback)
    assert order == [b, c, a]
    assert scheduler.next(timeout=0.01) is None


def test_higher_priority_preempts_and_the_speak_is_requeued():
    scheduler = Scheduler(requeue_preempted=True)
    low = speak()
    scheduler.submit(low)
    playing = scheduler.next(timeout=0.1)
    urgent = alert()
    scheduler.submit(urgent)
    assert playing.cancel.is_set() and playing.interruption[0] == "preempted" and playing.requeue
    scheduler.finish(playing)
    assert scheduler.next(timeout=0.1).command is urgent


def test_preempted_speak_is_dropped_when_configured():
    scheduler = Scheduler(requeue_preempted=False)
    scheduler.submit(speak())
    playing = scheduler.next(timeout=0.1)
    scheduler.submit(alert())
    assert playing.cancel.is_set() and not playing.requeue


def test_same_priority_alerts_latest_wins():
    scheduler = Scheduler()
    first = alert()
    scheduler.submit(first)
    playing = scheduler.next(timeout=0.1)
    queued = alert()
    later = alert()
    assert scheduler.submit(queued) == []
    dropped = scheduler.submit(later)
    assert [d.command for d in dropped] == [queued]
    assert playing.cancel.is_set() and "superseded" in playing.interruption[1] and not playing.requeue
    scheduler.finish(playing)
    assert scheduler.next(timeout=0.1).command is later


def test_lower_priority_does_not_preempt():
    scheduler = Scheduler()
    scheduler.submit(alert(250))
    playing = scheduler.next(timeout=0.1)
    scheduler.submit(alert(210))
    assert not playing.cancel.is_set()


def test_cancel_queued_and_playing():
    scheduler = Scheduler()
    first, second = speak(), speak()
    scheduler.submit(first)
    scheduler.submit(second)
    playing = scheduler.next(timeout=0.1)
    assert scheduler.cancel(second.envelope.id) == "queued"
    assert scheduler.cancel(first.envelope.id) == "playing"
    assert playing.interruption[0] == "cancelled"
    assert scheduler.cancel("nope") is None
    scheduler.finish(playing)
    assert scheduler.next(timeout=0.01) is None
