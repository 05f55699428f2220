"""`AsciiLineAmplifier`: a PA amplifier with a line-based ASCII protocol on RS485/RS232 (pyserial).

The profile gives command templates, the line terminator, the acknowledgement and refusal patterns, and for each
function a query whose reply pattern captures `value`. A write is: send the command, wait for the `ack` line (when
the profile has one; a line matching `error` is a refusal), then send the query and compare the captured value
(read-back). Lines that match neither the expected reply nor `error` are unsolicited status updates (many mixers
broadcast changes) and are skipped. The whole exchange holds the bus lock, waits the inter-frame gap before each
line, and retries a silent device `retries` times before raising `AmplifierUnreachable`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Optional, Sequence

from device.amplifier import AmplifierState
from device.errors import AmplifierFault, AmplifierUnreachable, ReadBackMismatch
from device.profiles import (
    AmplifierProfile,
    AsciiProtocol,
    AsciiSwitch,
    mask_to_zones,
    raw_to_volume,
    volume_to_raw,
    zones_to_mask,
)

_LOGGER = logging.getLogger(__name__)


def _open_serial(profile: AmplifierProfile, port: str):
    import serial

    return serial.serial_for_url(
        port,
        baudrate=profile.serial.baudrate,
        bytesize=profile.serial.bytesize,
        parity=profile.serial.parity,
        stopbits=profile.serial.stopbits,
        timeout=profile.timing.response_timeout_s,
        write_timeout=profile.timing.response_timeout_s,
        exclusive=True,
    )


class AsciiLineAmplifier:
    """Drive one ASCII-protocol amplifier described by `profile` on serial `port` (opened at the first call)."""

    def __init__(self, profile: AmplifierProfile, port: str, *, serial_factory=None) -> None:
        if profile.ascii is None:
            raise AmplifierFault(f"{profile.source}: profile '{profile.name}' has no [ascii] map, use an ASCII profile")
        self.profile = profile
        self.port = port
        self.warmup_s = profile.timing.warmup_s
        self.poll_interval_s = profile.timing.poll_interval_s
        self._proto: AsciiProtocol = profile.ascii
        self._serial_factory = serial_factory or _open_serial
        self._serial = None
        self._bus_lock = threading.RLock()
        self._last_frame_end = 0.0
        self._terminator = self._proto.terminator.encode(self._proto.encoding)
        self._ack = re.compile(self._proto.ack) if self._proto.ack else None
        self._error = re.compile(self._proto.error) if self._proto.error else None

    # --- Amplifier ----------------------------------------------------------------------------------------------

    def power_on(self) -> None:
        self._switch("power", self._proto.power, True)

    def standby(self) -> None:
        self._switch("power", self._proto.power, False)

    def mute(self) -> None:
        self._switch("mute", self._proto.mute, True)

    def unmute(self) -> None:
        self._switch("mute", self._proto.mute, False)

    def set_emergency(self, enabled: bool) -> None:
        self._switch("emergency", self._proto.emergency, enabled)

    def set_volume(self, volume_pct: int) -> None:
        point = self._proto.volume
        raw = volume_to_raw(volume_pct, point.raw_min, point.raw_max)
        with self._bus_lock:
            self._command("volume", point.set.format(raw=raw))
            if point.query:
                self._check("volume", raw, int(self._query("volume", point.query, point.reply), point.base))

    def set_zones(self, zones: Sequence[int]) -> None:
        point = self._proto.zones
        if point is None:
            _LOGGER.debug("amp skip function=zones reason=not_in_profile profile=%s", self.profile.name)
            return
        mask = zones_to_mask(tuple(zones), point.count, self.profile.source)
        with self._bus_lock:
            self._command("zones", point.set.format(mask=mask))
            if point.query:
                self._check("zones", mask, int(self._query("zones", point.query, point.reply), point.base))

    def read_state(self) -> AmplifierState:
        proto = self._proto
        with self._bus_lock:
            powered = self._read_switch("power", proto.power, default=True)
            muted = self._read_switch("mute", proto.mute, default=False)
            emergency = self._read_switch("emergency", proto.emergency, default=False)
            volume_pct = 0
            if proto.volume.query:
                raw = int(self._query("volume", proto.volume.query, proto.volume.reply), proto.volume.base)
                volume_pct = raw_to_volume(raw, proto.volume.raw_min, proto.volume.raw_max)
            zones: tuple[int, ...] = ()
            if proto.zones is not None and proto.zones.query:
                mask = int(self._query("zones", proto.zones.query, proto.zones.reply), proto.zones.base)
                zones = mask_to_zones(mask, proto.zones.count)
            faults: tuple[str, ...] = ()
            if proto.faults is not None:
                faults = self._faults(self._query("faults", proto.faults.query, proto.faults.reply))
            temperature = None
            if proto.temperature is not None:
                text = self._query("temperature", proto.temperature.query, proto.temperature.reply)
                try:
                    temperature = float(text) * proto.temperature.scale + proto.temperature.offset
                except ValueError:
                    raise AmplifierFault(
                        f"amplifier '{self.profile.name}' on {self.port}: temperature reply value {text!r} is not a "
                        "number; fix ascii.temperature.reply in the profile"
                    ) from None
        return AmplifierState(
            powered=powered, muted=muted, volume_pct=volume_pct, zones=zones, emergency=emergency, faults=faults,
            temperature_c=temperature,
        )  # fmt: skip

    def close(self) -> None:
        with self._bus_lock:
            if self._serial is not None:
                self._serial.close()
                self._serial = None

    # --- functions ----------------------------------------------------------------------------------------------

    def _switch(self, what: str, point: Optional[AsciiSwitch], on: bool) -> None:
        if point is None:
            _LOGGER.debug("amp skip function=%s reason=not_in_profile profile=%s", what, self.profile.name)
            return
        with self._bus_lock:
            self._command(what, point.on if on else point.off)
            if point.query:
                expected = point.on_value if on else point.off_value
                self._check(what, expected, self._query(what, point.query, point.reply))

    def _read_switch(self, what: str, point: Optional[AsciiSwitch], default: bool) -> bool:
        if point is None or not point.query:
            return default
        value = self._query(what, point.query, point.reply)
        if value.upper() == point.on_value.upper():
            return True
        if value.upper() == point.off_value.upper():
            return False
        raise AmplifierFault(
            f"amplifier '{self.profile.name}' on {self.port}: {what} reads {value!r}, neither on_value "
            f"{point.on_value!r} nor off_value {point.off_value!r}; fix ascii.{what} in the profile"
        )

    def _faults(self, value: str) -> tuple[str, ...]:
        faults = self._proto.faults
        if value.upper() == faults.ok_value.upper():
            return ()
        if faults.base:
            try:
                word = int(value, faults.base)
            except ValueError:
                return (f"fault_{value}",)
            names = dict(faults.bits)
            return tuple(names.get(bit, f"fault_bit_{bit}") for bit in range(32) if word & (1 << bit))
        codes = {code.upper(): name for code, name in faults.codes}
        return (codes.get(value.upper(), f"fault_{value}"),)

    def _check(self, what: str, expected, actual) -> None:
        same = expected.upper() == actual.upper() if isinstance(expected, str) else expected == actual
        if not same:
            raise ReadBackMismatch(
                f"amplifier '{self.profile.name}' on {self.port}: set {what} to {expected!r} but read back "
                f"{actual!r}; the amplifier refused it or the profile's template or scale is wrong"
            )
        _LOGGER.info("amp write function=%s value=%s ok", what, expected)

    # --- line I/O -----------------------------------------------------------------------------------------------

    def _command(self, what: str, line: str) -> None:
        """Send a write; wait for the ack when the profile defines one."""
        if self._ack is None:
            with self._bus_lock:
                self._send(line)
            return
        self._exchange(what, line, self._ack)

    def _query(self, what: str, line: str, reply: str) -> str:
        match = self._exchange(what, line, re.compile(reply))
        return match.group("value")

    def _exchange(self, what: str, line: str, expect: "re.Pattern[str]") -> "re.Match[str]":
        timing = self.profile.timing
        with self._bus_lock:
            for attempt in range(timing.retries + 1):
                self._send(line)
                deadline = time.monotonic() + timing.response_timeout_s
                while True:
                    answer = self._read_line(deadline)
                    if answer is None:
                        _LOGGER.debug("amp no answer function=%s attempt=%d", what, attempt + 1)
                        break
                    if self._error is not None and (refusal := self._error.match(answer)):
                        reason = refusal.groupdict().get("reason") or answer
                        raise AmplifierFault(
                            f"amplifier '{self.profile.name}' on {self.port} refused {what} ({line!r} → {reason!r}); "
                            "check the command template in the profile against the manual"
                        )
                    match = expect.match(answer)
                    if match:
                        return match
                    _LOGGER.debug("amp skip unsolicited line=%r while=%s", answer, what)
        raise AmplifierUnreachable(
            f"amplifier '{self.profile.name}' on {self.port} did not answer {what} ({line!r}) after "
            f"{timing.retries + 1} tries of {timing.response_timeout_s:g} s; check power, wiring, baud rate and the "
            "profile's terminator"
        )

    def _port(self):
        if self._serial is None:
            try:
                self._serial = self._serial_factory(self.profile, self.port)
            except (OSError, ValueError) as exc:  # serial.SerialException derives from OSError
                raise AmplifierUnreachable(
                    f"amplifier '{self.profile.name}': cannot open serial port {self.port} ({exc}); check the --port path"
                ) from None
            if self.profile.serial.rs485_mode:
                from serial.rs485 import RS485Settings

                try:
                    self._serial.rs485_mode = RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
                except (ValueError, OSError) as exc:
                    self.close()
                    raise AmplifierFault(
                        f"{self.profile.source}: port {self.port} does not support kernel RS485 mode ({exc}); set "
                        "serial.rs485_mode = false for ptys and auto-direction adapters"
                    ) from None
        return self._serial

    def _send(self, line: str) -> None:
        port = self._port()
        wait = self._last_frame_end + self.profile.timing.inter_frame_gap_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            stale = port.in_waiting
            if stale:
                _LOGGER.debug("amp discard unsolicited bytes=%r", port.read(stale))
            port.write(line.encode(self._proto.encoding) + self._terminator)
            port.flush()
        except OSError as exc:
            self.close()
            raise AmplifierUnreachable(
                f"amplifier '{self.profile.name}': writing to {self.port} failed ({exc}); check the adapter"
            ) from None
        finally:
            self._last_frame_end = time.monotonic()

    def _read_line(self, deadline: float) -> Optional[str]:
        port = self._port()
        buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            port.timeout = remaining
            try:
                chunk = port.read_until(self._terminator)
            except OSError as exc:
                self.close()
                raise AmplifierUnreachable(
                    f"amplifier '{self.profile.name}': reading from {self.port} failed ({exc}); check the adapter"
                ) from None
            buffer += chunk
            if buffer.endswith(self._terminator):
                self._last_frame_end = time.monotonic()
                text = buffer[: -len(self._terminator)].decode(self._proto.encoding, errors="replace")
                return text.strip("\r\n")
