"""The box daemon: MQTT commands → validated Command → durable queue → scheduler → player → PA.

Message path: topics (names) · envelope (JSON → Command) · signatures (Ed25519) · command_store (SQLite WAL) ·
scheduler (priorities, pre-emption) · player (chime, wording, synthesis with fallback, repeats) · outputs
(device/ amplifier, sink, playback sequencer) · events (acks, status, telemetry) · mqtt_link (the only paho user).
Around it: config (box TOML) · service (wiring, worker) · fallback (espeak-ng voice) · prerendered (standard
alerts) · local_trigger (software, local topic, GPIO) · chime · paced_sink. For `skyvoice demo`: demo_loop,
local_broker (mosquitto on a free port), mini_broker (embedded broker when mosquitto is absent).
"""
