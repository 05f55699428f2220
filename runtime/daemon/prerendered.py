"""Standard alerts rendered to audio ahead of time: they play at once, and even when synthesis fails."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from runtime.synth.synthesizer import Synthesizer

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class StandardAlert:
    """A configured alert: fired by name (local trigger) or matched by text (a remote alert with the same text)."""

    name: str
    text: str
    status: str = "Actual"
    priority: int = 240
    lang: str = "auto"
    zones: tuple[int, ...] = ()
    repeat: int = 2
    ttl_s: float = 600.0


@dataclass(frozen=True)
class RenderedAudio:
    samples: np.ndarray
    sample_rate_hz: int


class PrerenderedAlerts:
    """Audio of the configured standard alerts, keyed by (text, lang)."""

    def __init__(self, alerts: Sequence[StandardAlert]):
        self.alerts = {alert.name: alert for alert in alerts}
        self._audio: dict[tuple[str, str], RenderedAudio] = {}

    def render_all(self, synthesizer: Synthesizer, *, voice: Optional[str] = None, options=None) -> int:
        """Render every standard alert with `synthesizer`; an alert that fails keeps its old audio. Returns how many."""
        rendered = 0
        for alert in self.alerts.values():
            try:
                chunks = list(synthesizer.synthesize(alert.text, voice=voice, lang=alert.lang, options=options))
            except Exception as exc:  # any voice failure: keep serving; the fallback voice will speak this alert
                _LOGGER.warning("standard alert not pre-rendered name=%s error=%s", alert.name, exc)
                continue
            if not chunks:
                continue
            samples = np.concatenate([np.asarray(c.samples, dtype=np.float32).reshape(-1) for c in chunks])
            self._audio[(alert.text, alert.lang)] = RenderedAudio(samples, chunks[0].sample_rate_hz)
            rendered += 1
        _LOGGER.info("standard alerts pre-rendered count=%d of=%d", rendered, len(self.alerts))
        return rendered

    def lookup(self, text: str, lang: str) -> Optional[RenderedAudio]:
        return self._audio.get((text, lang))
