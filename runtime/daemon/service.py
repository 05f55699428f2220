"""The daemon: wires link → envelope → signatures → store → scheduler → player, and reports every step.

Threads: paho's network thread runs `handle_message` (validate, store, ack: milliseconds); one worker thread plays.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from device.errors import DeviceError
from runtime import __version__
from runtime.daemon import command_store as states
from runtime.daemon.command_store import CommandStore
from runtime.daemon.config import BoxConfig
from runtime.daemon.envelope import (
    AlertCommand,
    CancelCommand,
    Command,
    SpeakCommand,
    StatusCommand,
    VoiceCommand,
    best_effort_id,
    decode_payload,
    format_time,
    parse,
    parse_document,
)
from runtime.daemon.events import EventPublisher, status_payload
from runtime.daemon.fallback import EspeakSynthesizer
from runtime.daemon.local_trigger import GpioTrigger, LocalTrigger
from runtime.daemon.outputs import build_outputs
from runtime.daemon.player import Player, PlayerConfig
from runtime.daemon.prerendered import PrerenderedAlerts
from runtime.daemon.scheduler import Playback, Scheduler
from runtime.daemon.signatures import SignaturePolicy
from runtime.daemon.topics import Topics
from runtime.errors import BundleRejected, CommandRejected, SkyvoiceError
from runtime.keys import TrustStore
from runtime.synth.synthesizer import SynthesisOptions

_LOGGER = logging.getLogger(__name__)

WORKER_POLL_S = 0.25


class Service:
    def __init__(self, config: BoxConfig, *, amplifier=None, sink=None, clock: Callable[[], float] = time.time,
                 publisher=None):
        self.config = config
        self.clock = clock
        self.topics = Topics(config.box_id)
        self.store = CommandStore(config.store.path, retention_s=config.store.retention_days * 86400.0, clock=clock)
        self.scheduler = Scheduler(requeue_preempted=config.playback.requeue_preempted)
        security = config.security
        trust = TrustStore.from_dir(security.trusted_keys_dir) if security.trusted_keys_dir else TrustStore({})
        self.policy = SignaturePolicy(
            trust,
            replay_window_s=security.replay_window_s,
            clock_skew_s=security.clock_skew_s,
            actual_requires_two=security.actual_requires_two,
            require_signed_speak=security.require_signed_speak,
            clock=clock,
        )
        self.fallback = EspeakSynthesizer()
        self.neural = self._load_neural_voice()
        self.prerendered = PrerenderedAlerts(config.standard_alerts)
        synthesis = SynthesisOptions(max_tokens=config.voice.max_tokens) if config.voice.max_tokens else None
        if self.neural is not None:
            self.prerendered.render_all(self.neural, voice=config.voice.default_voice or None, options=synthesis)
        self.outputs = build_outputs(config, amplifier=amplifier, sink=sink, on_event=self._device_event)
        playback_config = config.playback
        self.player = Player(
            self.outputs.sequencer,
            self.fallback,
            neural=lambda: self.neural,
            prerendered=self.prerendered,
            config=PlayerConfig(
                playback_config.sample_rate_hz,
                playback_config.default_volume_pct,
                playback_config.emergency_volume_pct,
                config.voice.default_voice or None,
                synthesis,
            ),
        )
        self.trigger = LocalTrigger({a.name for a in config.standard_alerts}, self._fire_standard_alert)
        self.gpio = (
            GpioTrigger(self.trigger, config.local_trigger.gpio_pin, config.local_trigger.gpio_alert)
            if config.local_trigger.gpio_pin
            else None
        )
        subscriptions = [self.topics.command_filter()]
        if config.local_trigger.topic:
            subscriptions.append(self.topics.local_trigger)
        if publisher is None:
            from runtime.daemon.mqtt_link import MqttLink

            self.link = MqttLink(
                config.mqtt,
                client_id=config.client_id,
                subscriptions=subscriptions,
                on_message=self.handle_message,
                will_topic=self.topics.status,
                will_payload=status_payload(config.box_id, "offline", reason="connection lost"),
                on_connected=self._on_connected,
            )
            publisher = self.link
        else:
            self.link = None
        self.events = EventPublisher(publisher, self.topics, clock=clock)
        self._stopping = threading.Event()
        self._worker: Optional[threading.Thread] = None
        # cmd/voice: verifying a pack and (first time) loading the neural voice take from ms to seconds; they run here,
        # one at a time, never in the MQTT network thread that delivered the command.
        self._installer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice-install")
        self._started_at = clock()
        self._last_telemetry = 0.0
        self.played = 0

    # lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        restored = 0
        for stored in self.store.pending():
            try:
                command = parse(stored.payload, stored.kind, speak_default_ttl_s=self.config.playback.speak_default_ttl_s)
            except CommandRejected as exc:  # stored by an older version with other rules
                self.store.set_state(stored.id, states.FAILED, f"cannot be restored: {exc}")
                continue
            if isinstance(command, (SpeakCommand, AlertCommand)):
                self.store.set_state(stored.id, states.QUEUED)
                self.scheduler.submit(command)
                restored += 1
            elif isinstance(command, VoiceCommand):  # accepted before a stop, not installed yet
                self._installer.submit(self._install_voice_task, command)
                restored += 1
        _LOGGER.info("service starting box=%s restored=%d voice=%s", self.config.box_id, restored,
                     "neural" if self.neural is not None else "fallback")
        self._worker = threading.Thread(target=self._work, name="skyvoice-player", daemon=False)
        self._worker.start()
        if self.gpio is not None:
            self.gpio.start()
        if self.link is not None:
            self.link.start()

    def stop(self) -> None:
        """Stop playing (an unfinished announcement stays queued for the next start), say offline, disconnect."""
        self._stopping.set()
        current = self.scheduler.current
        if current is not None:
            current.cancel.set()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
        self._installer.shutdown(wait=True)  # an accepted install finishes (and is acked) before the store closes
        if self.gpio is not None:
            self.gpio.stop()
        if self.link is not None:
            self.link.publish_and_wait(self.topics.status, status_payload(self.config.box_id, "offline", reason="stopped"),
                                       retain=True)
            self.link.stop()
        self.outputs.close()
        self.store.close()

    # the MQTT callback path: validate, store, ack -------------------------------------------------------------------

    def handle_message(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.local_trigger:
            self.trigger.fire_from_topic(payload)
            return
        kind = self.topics.command_kind(topic)
        if kind is None:
            _LOGGER.warning("message on unexpected topic ignored topic=%s", topic)
            return
        try:
            document = decode_payload(payload)
            command = parse_document(document, kind, speak_default_ttl_s=self.config.playback.speak_default_ttl_s)
            if self.store.get(command.envelope.id) is not None:
                # a redelivery after a long outage is a duplicate, not a replay: nothing plays either way
                self.events.ack(command.envelope.id, "duplicate", kind=kind, reply_to=command.envelope.reply_to)
                return
            self.policy.check(command, document)
            self._check_voice(command)
        except CommandRejected as exc:
            self.events.ack(best_effort_id(payload), "rejected", kind=kind, reason=str(exc))
            return
        self.accept(command, payload)

    def accept(self, command: Command, payload: bytes) -> None:
        envelope = command.envelope
        reply_to = envelope.reply_to
        if not self.store.add(envelope.id, command.kind, payload):
            self.events.ack(envelope.id, "duplicate", kind=command.kind, reply_to=reply_to)
            return
        if envelope.expires_at is not None and self.clock() >= envelope.expires_at:
            self._finish(command, states.EXPIRED, f"expired at {format_time(envelope.expires_at)} before it was queued")
            return
        if isinstance(command, AlertCommand) and command.is_cap_cancel:
            self._cap_cancel(command)
        elif isinstance(command, (SpeakCommand, AlertCommand)):
            self.events.ack(envelope.id, "queued", kind=command.kind, reply_to=reply_to)
            for dropped in self.scheduler.submit(command):
                self._finish(dropped.command, dropped.state, dropped.reason)
        elif isinstance(command, CancelCommand):
            self._cancel(command)
        elif isinstance(command, StatusCommand):
            self._publish_status("online")
            self._finish(command, states.DONE, None)
        else:
            self.events.ack(envelope.id, "queued", kind=command.kind, reply_to=reply_to)
            self._installer.submit(self._install_voice_task, command)

    def _cancel(self, command: CancelCommand) -> None:
        if self._cancel_one(command.cancels, command.envelope.id) is None:
            self._finish(command, states.FAILED, f"no queued or playing command has id {command.cancels}")
        else:
            self._finish(command, states.DONE, None)

    def _cap_cancel(self, command: AlertCommand) -> None:
        """A CAP msgType=Cancel: stop or drop every alert whose CAP identifier it references."""
        targets = self.scheduler.ids_matching(
            lambda queued: isinstance(queued, AlertCommand) and queued.cap_identifier in command.cap_cancels
        )
        for target in targets:
            self._cancel_one(target, command.envelope.id)
        if targets:
            self._finish(command, states.DONE, None)
        else:
            references = ", ".join(command.cap_cancels)
            self._finish(command, states.FAILED, f"no queued or playing alert has CAP identifier {references}")

    def _cancel_one(self, target: str, by: str) -> Optional[str]:
        where = self.scheduler.cancel(target)
        if where == "queued":  # a playing one is acked by the worker when its playback stops
            self.store.set_state(target, states.CANCELLED, f"cancelled by {by}")
            self.events.ack(target, "cancelled", reason=f"cancelled by {by}")
        return where

    def _finish(self, command: Command, state: str, reason: Optional[str]) -> None:
        self.store.set_state(command.envelope.id, state, reason)
        self.events.ack(command.envelope.id, state, kind=command.kind, reason=reason, reply_to=command.envelope.reply_to)

    # the worker ----------------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._maybe_telemetry()
            playback = self.scheduler.next(timeout=WORKER_POLL_S)
            if playback is None:
                continue
            try:
                self._play(playback)
            finally:
                self.scheduler.finish(playback)

    def _play(self, playback: Playback) -> None:
        command = playback.command
        envelope = command.envelope
        if self._stopping.is_set():
            playback.requeue = False
            return  # stays queued in the store for the next start
        if envelope.expires_at is not None and self.clock() >= envelope.expires_at:
            self._finish(command, states.EXPIRED, f"expired at {format_time(envelope.expires_at)} while queued")
            return
        self.store.set_state(envelope.id, states.PLAYING)
        self.events.ack(envelope.id, "playing", kind=command.kind, reply_to=envelope.reply_to)
        try:
            completed = bool(self.player.play(command, playback.cancel))
        except (SkyvoiceError, DeviceError) as exc:
            playback.requeue = False
            self._finish(command, states.FAILED, f"{type(exc).__name__}: {exc}")
            return
        if playback.interruption is not None:
            state, reason = playback.interruption
            if playback.requeue:
                self.store.set_state(envelope.id, states.QUEUED, reason)
                self.events.ack(envelope.id, "preempted", kind=command.kind, reason=f"{reason}; re-queued",
                                reply_to=envelope.reply_to)
            else:
                self._finish(command, state, reason)
        elif completed:
            self.played += 1
            self.store.set_state(envelope.id, states.DONE)
            first_audio = self.player.first_audio_at
            self.events.ack(envelope.id, "done", kind=command.kind, reply_to=envelope.reply_to,
                            first_audio_at=format_time(first_audio) if first_audio else None)
        # else: stopped by shutdown; the store still says playing, so the next start plays it again

    # status, telemetry, local alerts, voices ---------------------------------------------------------------------------

    def _on_connected(self, session_present: bool) -> None:
        self._publish_status("online", session_present=session_present)

    def _publish_status(self, state: str, **extra) -> None:
        self.events.status(
            state,
            version=__version__,
            voice="neural" if self.neural is not None else "fallback",
            queued=self.scheduler.queued_count(),
            playing=(self.scheduler.current.command.envelope.id if self.scheduler.current else None),
            standard_alerts=sorted(self.prerendered.alerts),
            **extra,
        )

    def _device_event(self, event) -> None:
        """Amplifier faults, recoveries and standby from the playback sequencer go out as telemetry."""
        events = getattr(self, "events", None)
        if events is not None and not event.kind.startswith("playback_"):  # playback progress is on evt/ack
            events.telemetry(device_event=event.kind, message=event.message, faults=list(event.faults), step=event.step)

    def _maybe_telemetry(self) -> None:
        now = self.clock()
        if now - self._last_telemetry < self.config.telemetry.interval_s:
            return
        self._last_telemetry = now
        self.events.telemetry(
            uptime_s=round(now - self._started_at, 1),
            queued=self.scheduler.queued_count(),
            played=self.played,
            connected=bool(self.link is not None and self.link.connected.is_set()),
        )

    def _fire_standard_alert(self, name: str, source: str) -> str:
        alert = self.prerendered.alerts[name]
        now = self.clock()
        document = {
            "id": f"local-{name}-{uuid.uuid4().hex[:12]}",
            "issued_at": format_time(now),
            "expires_at": format_time(now + alert.ttl_s),
            "priority": alert.priority,
            "zones": list(alert.zones),
            "repeat": alert.repeat,
            "text": alert.text,
            "lang": alert.lang,
            "status": alert.status,
        }
        payload = json.dumps(document).encode()
        command = parse_document(document, "alert")
        self.accept(command, payload)
        return document["id"]

    def _load_neural_voice(self):
        bundle_dir = self.config.voice.bundle_dir
        if not bundle_dir:
            _LOGGER.info("no voice bundle configured; the fallback voice speaks")
            return None
        try:
            from runtime.synth.voice_engine import load_synthesizer
        except ImportError:
            _LOGGER.warning("neural voice engine not available in this build; the fallback voice speaks")
            return None
        _recover_unconfirmed_release(bundle_dir)
        try:
            synth = load_synthesizer(bundle_dir)
            synth.frontend.warm_up(("zh", "en"))  # dictionaries load now, not on the first alert
            return synth
        except SkyvoiceError as exc:
            _LOGGER.error("voice bundle not loaded bundle=%s error=%s; the fallback voice speaks", bundle_dir, exc)
            return None

    def _check_voice(self, command: Command) -> None:
        voice = getattr(command, "voice", None)
        if not voice or self.neural is None or not hasattr(self.neural, "voice_names"):
            return  # the fallback voice speaks any text with its one voice
        voices = self.neural.voice_names()
        if voice not in voices:
            raise CommandRejected(f"unknown voice {voice!r}; installed: {', '.join(sorted(voices)) or 'none'}")

    def _install_voice_task(self, command: VoiceCommand) -> None:
        try:
            self._install_voice(command)
        except Exception as exc:  # an executor would swallow it: the command must still end with a state
            _LOGGER.exception("voice install failed id=%s", command.envelope.id)
            self._finish(command, states.FAILED, f"voice install failed: {type(exc).__name__}: {exc}")

    def _install_voice(self, command: VoiceCommand) -> None:
        """Verify and install a signed voice pack into the bundle (in the installer thread), then load the neural voice
        if none was loaded yet."""
        from runtime.bundle.voices import install_voice

        if not self.config.voice.bundle_dir:
            self._finish(command, states.FAILED, "no voice bundle is configured (voice.bundle_dir); install a bundle first")
            return
        try:
            install_voice(command.pack, self.config.voice.bundle_dir, self.policy.trust)
        except BundleRejected as exc:
            self._finish(command, states.REJECTED, str(exc))
            return
        except SkyvoiceError as exc:
            self._finish(command, states.FAILED, str(exc))
            return
        if self.neural is None:
            self.neural = self._load_neural_voice()
        self._finish(command, states.DONE, None)


def _recover_unconfirmed_release(bundle_dir: str) -> None:
    """When the bundle is a flashed release (ROOT/current), roll back a release whose health check never confirmed."""
    from pathlib import Path

    path = Path(bundle_dir)
    if path.name != "current" or not (path.parent / "releases").is_dir():
        return
    from runtime.bundle.releases import ReleaseStore

    ReleaseStore(path.parent).recover()
