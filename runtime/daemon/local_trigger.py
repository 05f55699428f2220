"""Fire a configured standard alert on the box itself, with the uplink down.

Sources: software (`LocalTrigger.fire`, what tests and the local-topic handler call), a message on the box's own
broker (`skyvoice/<box>/local/trigger`, payload = the standard alert's name), and a GPIO line via Jetson.GPIO.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from runtime.errors import ConfigError

_LOGGER = logging.getLogger(__name__)


class LocalTrigger:
    """The software interface: `fire(name)` queues the standard alert `name` and returns its command id."""

    def __init__(self, names: set[str], fire_alert: Callable[[str, str], str]):
        self.names = names
        self._fire_alert = fire_alert

    def fire(self, name: str, *, source: str = "software") -> str:
        if name not in self.names:
            raise ConfigError(f"local trigger names unknown standard alert {name!r}; configured: {', '.join(sorted(self.names)) or 'none'}")
        _LOGGER.warning("local trigger fired alert=%s source=%s", name, source)
        return self._fire_alert(name, source)

    def fire_from_topic(self, payload: bytes) -> Optional[str]:
        """A message on the local trigger topic: the payload is the alert's name. Unknown names are logged, not fatal."""
        name = payload.decode("utf-8", "replace").strip()
        try:
            return self.fire(name, source="local-topic")
        except ConfigError as exc:
            _LOGGER.warning("local trigger ignored: %s", exc)
            return None


class GpioTrigger:
    """A falling edge on a BOARD pin fires one standard alert. Needs Jetson.GPIO (only on the Jetson)."""

    def __init__(self, trigger: LocalTrigger, pin: int, alert: str, *, bounce_ms: int = 300):
        self.trigger, self.pin, self.alert, self.bounce_ms = trigger, pin, alert, bounce_ms
        self._gpio = None

    def start(self) -> bool:
        try:
            import Jetson.GPIO as GPIO  # only on the Jetson
        except ImportError:
            _LOGGER.warning("gpio trigger disabled: Jetson.GPIO is not installed pin=%d", self.pin)
            return False
        GPIO.setmode(GPIO.BOARD)
        GPIO.setup(self.pin, GPIO.IN)
        GPIO.add_event_detect(self.pin, GPIO.FALLING, callback=self._edge, bouncetime=self.bounce_ms)
        self._gpio = GPIO
        _LOGGER.info("gpio trigger armed pin=%d alert=%s", self.pin, self.alert)
        return True

    def stop(self) -> None:
        if self._gpio is not None:
            self._gpio.remove_event_detect(self.pin)
            self._gpio.cleanup(self.pin)
            self._gpio = None

    def _edge(self, channel: int) -> None:
        self.trigger.fire(self.alert, source=f"gpio:{channel}")
