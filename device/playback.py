"""`PlaybackSequencer`: drive the amplifier around each playback, poll its faults, and stream audio to a sink.

Around one playback the amplifier gets, in this order:
    power_on (only when in standby) → warm-up delay → set_zones (when zones are given) →
    set_emergency(True) (emergency only) → set_volume (emergency: `emergency_volume_pct`) → unmute →
    [audio] → mute → set_emergency(False) (after an emergency)
and `standby` after `idle_standby_s` without playback. A background thread polls `read_state` every
`fault_poll_interval_s` and turns changes into `DeviceEvent`s: new faults, recoveries, the amplifier going silent and
coming back. A failing amplifier step is reported (`amp_error`) and, with `play_without_amplifier`, the audio still
plays. The remaining set-up steps are skipped, so a dead bus costs two timeout budgets (set-up, then the final
mute), not six. Nothing here waits without a bound: every amplifier call ends within the profile's timeout × tries,
and `cancel` aborts the sink at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from device.amplifier import Amplifier, AmplifierState
from device.audio_sink import AudioSink
from device.errors import AmplifierFault

_LOGGER = logging.getLogger(__name__)

# DeviceEvent kinds
AMP_ERROR = "amp_error"  # an amplifier command failed (no answer, exception reply, read-back mismatch)
AMP_FAULT = "amp_fault"  # the amplifier reports fault conditions (thermal, overload...): `faults` lists them
AMP_RECOVERED = "amp_recovered"  # the reported faults cleared
AMP_UNREACHABLE = "amp_unreachable"  # polling got no valid answer
AMP_REACHABLE = "amp_reachable"  # polling works again after `amp_unreachable`
AMP_STANDBY = "amp_standby"  # put in standby after the idle timeout
PLAYBACK_STARTED = "playback_started"
PLAYBACK_FINISHED = "playback_finished"
PLAYBACK_PREEMPTED = "playback_preempted"

_CANCEL_POLL_S = 0.01  # how often the cancel watcher looks at the caller's Event (bounds pre-emption latency)


class _Once:
    """Calls `action` the first time it is called, from whichever thread gets there first; later calls do nothing."""

    def __init__(self, action: Callable[[], None]):
        self._action = action
        self._lock = threading.Lock()
        self._called = False

    def __call__(self) -> None:
        with self._lock:
            if self._called:
                return
            self._called = True
        self._action()


@dataclass(frozen=True)
class PlaybackConfig:
    """How the sequencer treats the amplifier. `warmup_s=None` and `fault_poll_interval_s=None` take the amplifier's
    own values (its profile's warmup_ms and poll_interval_ms)."""

    default_volume_pct: int = 70
    emergency_volume_pct: int = 100
    default_zones: tuple[int, ...] = ()
    idle_standby_s: float = 300.0  # negative: never put the amplifier in standby
    warmup_s: Optional[float] = None
    fault_poll_interval_s: Optional[float] = None  # None: the amplifier's own (profile poll_interval_ms); 0: off
    play_without_amplifier: bool = True
    sample_rate_hz: int = 32000  # rate of the chunks given to play()


@dataclass(frozen=True)
class DeviceEvent:
    """Something the daemon should publish as status/telemetry."""

    kind: str
    message: str
    faults: tuple[str, ...] = ()
    state: Optional[AmplifierState] = None
    step: str = ""

    def as_dict(self) -> dict:
        """JSON-ready fields for status/telemetry payloads."""
        out: dict = {"kind": self.kind, "message": self.message}
        if self.faults:
            out["faults"] = list(self.faults)
        if self.step:
            out["step"] = self.step
        if self.state is not None:
            out["amplifier"] = {
                "powered": self.state.powered,
                "muted": self.state.muted,
                "volume_pct": self.state.volume_pct,
                "zones": list(self.state.zones),
                "emergency": self.state.emergency,
                "faults": list(self.state.faults),
                "temperature_c": self.state.temperature_c,
            }
        return out


@dataclass(frozen=True)
class PlaybackResult:
    """What happened to one playback."""

    completed: bool  # all chunks reached the sink and were drained
    preempted: bool  # `cancel` was set before the end
    samples: int  # samples handed to the sink
    amp_errors: tuple[str, ...] = field(default_factory=tuple)  # amplifier failures during this playback

    def __bool__(self) -> bool:  # `if sequencer.play(...)`: True when the playback completed
        return self.completed


EventCallback = Callable[[DeviceEvent], None]


class PlaybackSequencer:
    """`PlaybackSequencer(amplifier, sink, config, on_event=callable)`; `play(...)` one utterance; `close()` at exit.

    Thread-safety: `play` calls are serialised (one playback at a time); `preempt()` and setting the `cancel` Event
    passed to `play` may come from any thread. `on_event` is called from the playing thread and from the polling
    thread; it must be quick and must not call back into the sequencer.
    """

    def __init__(
        self,
        amplifier: Amplifier,
        sink: AudioSink,
        config: PlaybackConfig = PlaybackConfig(),
        on_event: Optional[EventCallback] = None,
    ) -> None:
        self.amplifier = amplifier
        self.sink = sink
        self.config = config
        self._on_event = on_event
        self._play_lock = threading.Lock()
        self._amp_lock = threading.RLock()  # sequencer-level steps (standby vs playback start)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._powered = False
        self._emergency_on = False
        self._playing = False
        self._standby_at: Optional[float] = None
        self._current_cancel: Optional[threading.Event] = None
        self._last_faults: tuple[str, ...] = ()
        self._reachable = True
        self._supervisor = threading.Thread(target=self._supervise, name="amp-supervisor", daemon=True)
        self._supervisor.start()

    # --- public -------------------------------------------------------------------------------------------------

    def play(
        self,
        chunks: Iterable[np.ndarray],
        *,
        emergency: bool = False,
        zones: Optional[Sequence[int]] = None,
        volume_pct: Optional[int] = None,
        cancel: Optional[threading.Event] = None,
        sample_rate_hz: Optional[int] = None,
    ) -> PlaybackResult:
        """Play mono `chunks` with the amplifier set up; returns a `PlaybackResult` (truthy when completed).

        A chunk is a float32 array in [-1, 1] at `sample_rate_hz` (default `config.sample_rate_hz`), or an object
        with `.samples` and `.sample_rate_hz` (runtime's `AudioChunk`; the first chunk's rate opens the sink).
        `zones=None` uses `config.default_zones` (empty: leave routing alone); `volume_pct=None` uses
        `config.default_volume_pct`; `emergency=True` raises the volume to at least `config.emergency_volume_pct`
        and turns on the amplifier's emergency/priority mode. Setting `cancel` (or calling `preempt()`) aborts the
        sink within ~10 ms and mutes.
        Raises `AmplifierFault` only when `play_without_amplifier` is off; raises `AudioSinkError` from the sink.
        """
        cancel = cancel if cancel is not None else threading.Event()
        rate = int(sample_rate_hz or self.config.sample_rate_hz)
        zones_to_set = tuple(self.config.default_zones if zones is None else zones)
        volume = self.config.default_volume_pct if volume_pct is None else int(volume_pct)
        if emergency:  # the override: never quieter than the emergency level
            volume = max(volume if volume_pct is not None else 0, self.config.emergency_volume_pct)
        errors: list[str] = []
        samples = 0
        completed = preempted = False
        with self._play_lock:
            with self._amp_lock:
                self._playing = True
                self._standby_at = None
                self._current_cancel = cancel
            try:
                self._emit(DeviceEvent(PLAYBACK_STARTED, f"playback start emergency={emergency} volume={volume}"))
                self._prepare(emergency, zones_to_set, volume, cancel, errors)
                if not cancel.is_set():
                    samples, completed = self._stream(chunks, rate, cancel)
                preempted = cancel.is_set()
            finally:
                self._finish(emergency, errors)
        if preempted:
            self._emit(DeviceEvent(PLAYBACK_PREEMPTED, f"playback pre-empted after {samples} samples"))
        else:
            self._emit(DeviceEvent(PLAYBACK_FINISHED, f"playback finished samples={samples}"))
        return PlaybackResult(completed=completed, preempted=preempted, samples=samples, amp_errors=tuple(errors))

    def preempt(self) -> None:
        """Abort the current playback (if any) as if its `cancel` Event had been set. Never blocks."""
        cancel = self._current_cancel  # a plain read: the amp lock may be held by a slow amplifier step
        if cancel is not None:
            cancel.set()

    def poll_now(self) -> Optional[AmplifierState]:
        """Read the amplifier's state now and emit fault/recovery events; None when it did not answer."""
        return self._poll()

    def close(self) -> None:
        """Stop polling; leave the amplifier muted. Does not close the amplifier or the sink (their owner does)."""
        self._stop.set()
        self._wake.set()
        self._supervisor.join(timeout=10.0)

    def __enter__(self) -> "PlaybackSequencer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- playback steps -----------------------------------------------------------------------------------------

    def _prepare(self, emergency: bool, zones: tuple, volume: int, cancel: threading.Event, errors: list) -> None:
        amp = self.amplifier
        steps: list[tuple[str, Callable[[], None]]] = []
        if not self._powered:
            steps.append(("power_on", self._power_on))
        if zones:
            steps.append(("set_zones", lambda: amp.set_zones(zones)))
        if emergency:
            steps.append(("set_emergency", lambda: self._set_emergency(True)))
        elif self._emergency_on:  # a previous emergency could not be cleared
            steps.append(("set_emergency", lambda: self._set_emergency(False)))
        steps.append(("set_volume", lambda: amp.set_volume(volume)))
        steps.append(("unmute", amp.unmute))
        for name, step in steps:
            if cancel.is_set():
                return
            if not self._run_step(name, step, errors):
                return  # skip the rest: one dead-bus timeout, not one per step
            if name == "power_on":
                warmup = self.config.warmup_s
                if warmup is None:
                    warmup = float(getattr(amp, "warmup_s", 0.0))
                if warmup > 0:
                    _LOGGER.info("amp warmup seconds=%.3f", warmup)
                    cancel.wait(warmup)  # returns early on pre-emption

    def _power_on(self) -> None:
        self.amplifier.power_on()
        self._powered = True

    def _set_emergency(self, enabled: bool) -> None:
        self.amplifier.set_emergency(enabled)
        self._emergency_on = enabled

    def _run_step(self, name: str, step: Callable[[], None], errors: list) -> bool:
        try:
            with self._amp_lock:
                step()
            return True
        except AmplifierFault as exc:
            errors.append(f"{name}: {exc}")
            _LOGGER.warning("amp step failed step=%s error=%s", name, exc)
            self._emit(DeviceEvent(AMP_ERROR, str(exc), step=name))
            if not self.config.play_without_amplifier:
                raise
            return False

    def _stream(self, chunks: Iterable[np.ndarray], rate: int, cancel: threading.Event) -> tuple[int, bool]:
        sink = self.sink
        done = threading.Event()
        aborted = _Once(sink.abort)
        watcher = threading.Thread(target=self._watch_cancel, args=(cancel, done, aborted), name="playback-cancel",
                                   daemon=True)
        watcher.start()
        samples = 0
        opened = False
        try:
            for chunk in chunks:
                if cancel.is_set():
                    break
                if not opened:
                    sink.open(int(getattr(chunk, "sample_rate_hz", 0) or rate))
                    opened = True
                data = np.asarray(getattr(chunk, "samples", chunk), dtype=np.float32).reshape(-1)
                sink.write(data)
                samples += data.size
            if opened and not cancel.is_set():
                sink.drain()
        finally:
            done.set()
            watcher.join()
        if cancel.is_set():
            aborted()  # the loop may see the cancel before the watcher does: what the sink holds goes all the same
        return samples, not cancel.is_set()

    @staticmethod
    def _watch_cancel(cancel: threading.Event, done: threading.Event, abort: Callable[[], None]) -> None:
        while not done.is_set():
            if cancel.wait(_CANCEL_POLL_S):
                _LOGGER.info("playback preempted: aborting sink")
                abort()
                return

    def _finish(self, emergency: bool, errors: list) -> None:
        try:
            muted = self._run_step("mute", self.amplifier.mute, errors)
            if muted and (emergency or self._emergency_on):  # not muted: the bus is down, the next playback resets it
                self._run_step("set_emergency", lambda: self._set_emergency(False), errors)
        except AmplifierFault:
            pass  # already reported by _run_step; the playback's own outcome matters more here
        finally:
            with self._amp_lock:
                self._playing = False
                self._current_cancel = None
                if self._powered and self.config.idle_standby_s >= 0:
                    self._standby_at = time.monotonic() + self.config.idle_standby_s
            self._wake.set()

    # --- background: idle standby and fault polling ---------------------------------------------------------------

    def _supervise(self) -> None:
        interval = self.config.fault_poll_interval_s
        if interval is None:
            interval = float(getattr(self.amplifier, "poll_interval_s", 5.0))
        next_poll = time.monotonic() + interval if interval > 0 else None
        while not self._stop.is_set():
            now = time.monotonic()
            deadlines = [t for t in (next_poll, self._standby_at) if t is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            self._standby_if_idle(now)
            if next_poll is not None and now >= next_poll:
                self._poll()
                next_poll = time.monotonic() + interval

    def _standby_if_idle(self, now: float) -> None:
        with self._amp_lock:
            if self._playing or self._standby_at is None or now < self._standby_at:
                return
            self._standby_at = None
            try:
                self.amplifier.standby()
                self._powered = False
                _LOGGER.info("amp standby after idle")
                self._emit(DeviceEvent(AMP_STANDBY, "amplifier in standby after the idle timeout"))
            except AmplifierFault as exc:
                _LOGGER.warning("amp standby failed error=%s", exc)
                self._emit(DeviceEvent(AMP_ERROR, str(exc), step="standby"))

    def _poll(self) -> Optional[AmplifierState]:
        try:
            state = self.amplifier.read_state()
        except AmplifierFault as exc:
            if self._reachable:
                self._reachable = False
                _LOGGER.warning("amp unreachable error=%s", exc)
                self._emit(DeviceEvent(AMP_UNREACHABLE, str(exc)))
            return None
        if not self._reachable:
            self._reachable = True
            self._emit(DeviceEvent(AMP_REACHABLE, "amplifier answers again", state=state))
        faults = tuple(state.faults)
        if faults != self._last_faults:
            if faults:
                self._emit(DeviceEvent(AMP_FAULT, f"amplifier reports {', '.join(faults)}", faults=faults, state=state))
            else:
                self._emit(DeviceEvent(AMP_RECOVERED, "amplifier faults cleared", state=state))
            self._last_faults = faults
        return state

    def _emit(self, event: DeviceEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # the daemon's callback: a bug there must not stop the PA; log it with its traceback
            _LOGGER.exception("device event callback failed kind=%s", event.kind)
