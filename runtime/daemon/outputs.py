"""Build the amplifier, audio sink and playback sequencer (device/) from the box config."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from device.playback import DeviceEvent, PlaybackConfig, PlaybackSequencer
from device.sinks import AlsaSink, NullSink, WavFileSink
from runtime.daemon.config import BoxConfig
from runtime.daemon.paced_sink import PacedSink
from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


@dataclass
class Outputs:
    amplifier: object
    sink: object
    sequencer: PlaybackSequencer

    def close(self) -> None:
        try:
            self.sequencer.close()
        finally:
            try:
                self.sink.close()
            finally:
                self.amplifier.close()


def build_amplifier(config: BoxConfig):
    if config.amplifier.kind == "null":
        from device.null_amplifier import NullAmplifier

        return NullAmplifier()
    from device.open_amplifier import open_amplifier

    if not config.amplifier.profile:
        raise ConfigError("amplifier.kind = 'profile' needs amplifier.profile (a TOML under configs/amplifiers)")
    return open_amplifier(config.amplifier.profile, config.amplifier.port)


def build_sink(config: BoxConfig):
    audio = config.audio
    if audio.sink == "alsa":
        return AlsaSink(audio.device)
    sink = WavFileSink(audio.wav_path) if audio.sink == "wav" else NullSink()
    return PacedSink(sink) if audio.realtime else sink


def build_outputs(
    config: BoxConfig, *, amplifier=None, sink=None, on_event: Optional[Callable[[DeviceEvent], None]] = None
) -> Outputs:
    amplifier = amplifier if amplifier is not None else build_amplifier(config)
    sink = sink if sink is not None else build_sink(config)
    playback = config.playback
    sequencer = PlaybackSequencer(
        amplifier,
        sink,
        PlaybackConfig(
            default_volume_pct=playback.default_volume_pct,
            emergency_volume_pct=playback.emergency_volume_pct,
            sample_rate_hz=playback.sample_rate_hz,
            default_zones=config.amplifier.all_zones,
            idle_standby_s=config.amplifier.idle_standby_s,
            play_without_amplifier=config.amplifier.play_without_amplifier,
        ),
        on_event=on_event,
    )
    return Outputs(amplifier, sink, sequencer)
