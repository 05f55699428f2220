"""Build the amplifier, audio sink and playback driver from the box config (device/ when present)."""

from __future__ import annotations

import logging

from runtime.daemon.config import BoxConfig
from runtime.daemon.direct_playback import DirectPlayback
from runtime.daemon.wav_sink import AppendingWavSink, NoAmplifier, NullAudioSink, PacedSink
from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


def build_amplifier(config: BoxConfig):
    if config.amplifier.kind == "null":
        try:
            from device.null_amplifier import NullAmplifier
        except ImportError:
            return NoAmplifier()
        return NullAmplifier()
    try:
        from device.open_amplifier import open_amplifier
    except ImportError:
        raise ConfigError("amplifier.kind = 'profile' needs device.open_amplifier, which this build lacks; use kind = 'null'") from None
    if not config.amplifier.profile or not config.amplifier.port:
        raise ConfigError("amplifier.kind = 'profile' needs amplifier.profile and amplifier.port")
    return open_amplifier(config.amplifier.profile, config.amplifier.port)


def build_sink(config: BoxConfig):
    audio = config.audio
    if audio.sink == "alsa":
        try:
            from device.sinks import AlsaSink
        except ImportError:
            raise ConfigError("audio.sink = 'alsa' needs device.sinks.AlsaSink, which this build lacks; use 'wav' or 'null'") from None
        return AlsaSink(audio.device)
    if audio.sink == "wav":
        sink = AppendingWavSink(audio.wav_path)
    else:
        sink = NullAudioSink()
    return PacedSink(sink) if audio.realtime else sink


def build_playback(config: BoxConfig, amplifier=None, sink=None) -> DirectPlayback:
    amplifier = amplifier if amplifier is not None else build_amplifier(config)
    sink = sink if sink is not None else build_sink(config)
    return DirectPlayback(amplifier, sink, config.playback.sample_rate_hz)
