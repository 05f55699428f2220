"""The box config (TOML) → frozen dataclasses. Unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from runtime.daemon.prerendered import StandardAlert
from runtime.daemon.topics import valid_box_id
from runtime.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # default: skyvoice-<box_id>
    keepalive_s: int = 30  # 20-30 on Starlink, 60 on GEO
    session_expiry_s: int = 7 * 86400  # the broker keeps our subscription and queued commands this long
    will_delay_s: int = 60  # ride out short outages before the broker publishes 'offline'
    max_inflight: int = 20  # unacknowledged QoS 1 events in flight; raise on GEO links (window / RTT = throughput)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    username: str = ""
    password_file: str = ""
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class StoreConfig:
    path: str = "/var/lib/skyvoice/commands.db"
    retention_days: float = 7.0


@dataclass(frozen=True)
class SecurityConfig:
    trusted_keys_dir: str = ""  # empty: trust nobody (every alert is rejected)
    replay_window_s: float = 3600.0  # ids are remembered far longer (store.retention_days), so a replay inside it is a duplicate
    clock_skew_s: float = 30.0
    actual_requires_two: bool = False
    require_signed_speak: bool = False


@dataclass(frozen=True)
class PlaybackConfig:
    requeue_preempted: bool = True
    sample_rate_hz: int = 32000
    default_volume_pct: int = 60
    emergency_volume_pct: int = 90
    speak_default_ttl_s: float = 900.0


@dataclass(frozen=True)
class AudioConfig:
    sink: str = "null"  # null | wav | alsa
    wav_path: str = ""
    realtime: bool = True  # pace the WAV/null sink like a sound card (pre-emption behaves as on ALSA)
    device: str = "default"


@dataclass(frozen=True)
class AmplifierConfig:
    kind: str = "null"  # null | profile
    profile: str = ""
    port: str = ""
    all_zones: tuple[int, ...] = ()  # the site's zones: a command without zones plays in all of them; empty: routing untouched
    idle_standby_s: float = 300.0  # standby after this long without playback; negative: never
    play_without_amplifier: bool = True  # a silent amplifier is reported and the audio still plays


@dataclass(frozen=True)
class VoiceConfig:
    bundle_dir: str = ""  # empty: the fallback voice speaks everything
    default_voice: str = ""
    max_tokens: int = 0  # semantic tokens per sentence (bounds synthesis time); 0: the engine's default


@dataclass(frozen=True)
class LocalTriggerConfig:
    topic: bool = True  # skyvoice/<box>/local/trigger with a standard alert's name as payload
    gpio_pin: int = 0  # BOARD pin number; 0: off
    gpio_alert: str = ""  # the standard alert the GPIO line fires


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = 60.0


@dataclass(frozen=True)
class BoxConfig:
    box_id: str
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    playback: PlaybackConfig = field(default_factory=PlaybackConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    amplifier: AmplifierConfig = field(default_factory=AmplifierConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    local_trigger: LocalTriggerConfig = field(default_factory=LocalTriggerConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    standard_alerts: tuple[StandardAlert, ...] = ()

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"skyvoice-{self.box_id}"


def load_config(path: str | os.PathLike) -> BoxConfig:
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"box config {path} does not exist; start from configs/box.example.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"box config {path} is not valid TOML: {exc}") from None
    return config_from_dict(table, where=str(path), base_dir=path.parent)


def config_from_dict(table: dict, *, where: str = "box config", base_dir: Optional[Path] = None) -> BoxConfig:
    table = dict(table)
    alerts = table.pop("standard_alerts", [])
    if not isinstance(alerts, list):
        raise ConfigError(f"{where}: 'standard_alerts' must be an array of tables ([[standard_alerts]])")
    config = _build(BoxConfig, table, where, "")
    if not valid_box_id(config.box_id):
        raise ConfigError(f"{where}: box_id {config.box_id!r} must be one topic level of letters, digits, _ . -")
    standard = tuple(_build(StandardAlert, a, where, f"standard_alerts[{i}].") for i, a in enumerate(alerts))
    names = [a.name for a in standard]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: two standard_alerts share a name; names must be unique")
    _check_choice(where, "audio.sink", config.audio.sink, ("null", "wav", "alsa"))
    _check_choice(where, "amplifier.kind", config.amplifier.kind, ("null", "profile"))
    if config.audio.sink == "wav" and not config.audio.wav_path:
        raise ConfigError(f"{where}: audio.sink = 'wav' needs audio.wav_path")
    if config.local_trigger.gpio_pin and config.local_trigger.gpio_alert not in names:
        raise ConfigError(f"{where}: local_trigger.gpio_alert must name one of standard_alerts ({', '.join(names) or 'none'})")
    if base_dir is not None:
        config = dataclasses.replace(config, store=dataclasses.replace(config.store, path=str(base_dir / config.store.path)))
        if config.security.trusted_keys_dir:
            keys = str(base_dir / config.security.trusted_keys_dir)
            config = dataclasses.replace(config, security=dataclasses.replace(config.security, trusted_keys_dir=keys))
        if config.audio.wav_path:
            config = dataclasses.replace(config, audio=dataclasses.replace(config.audio, wav_path=str(base_dir / config.audio.wav_path)))
    return dataclasses.replace(config, standard_alerts=standard)


def _check_choice(where: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {key} = {value!r} must be one of {', '.join(choices)}")


def _build(cls: type, table: Any, where: str, prefix: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{prefix.rstrip('.') or 'top level'}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{prefix}{unknown[0]}'; allowed: {', '.join(sorted(fields))}")
    values = {}
    for name, value in table.items():
        spec = fields[name]
        default = _default_of(spec)
        key = prefix + name
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, where, key + ".")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{where}: {key} must be a list of integers")
            values[name] = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false")
            values[name] = value
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key} must be a number")
            values[name] = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: {key} must be an integer")
            values[name] = value
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {key} must be a string")
            values[name] = value
    missing = [n for n, f in fields.items() if n not in values and _default_of(f) is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required key '{prefix}{missing[0]}'")
    return cls(**values)


def _default_of(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return spec.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING  # required fields (box_id, a standard alert's name and text) are strings
