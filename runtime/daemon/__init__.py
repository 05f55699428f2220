"""The box daemon: MQTT commands → validated Command → durable queue → scheduler → player → PA.

Modules: topics (names), envelope (JSON → Command), signatures (Ed25519), command_store (SQLite WAL),
scheduler (priorities, pre-emption), player (chime, synthesis, playback), fallback (espeak-ng voice),
prerendered (standard alerts), local_trigger, events (acks, status, telemetry), mqtt_link (the only paho user),
config (box TOML), service (wiring).
"""
