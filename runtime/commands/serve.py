"""`skyvoice serve`: Run the box daemon: MQTT commands to the PA."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="Run the box daemon: MQTT commands to the PA")
    parser.add_argument("--config", required=True, metavar="FILE", help="box config (TOML); see configs/box.example.toml")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from runtime.daemon.config import load_config
    from runtime.daemon.service import Service

    config = load_config(args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service = Service(config)
    service.start()
    print(f"skyvoice serve: box {config.box_id} on {config.mqtt.host}:{config.mqtt.port}; Ctrl-C stops", flush=True)
    try:
        stop.wait()
    finally:
        service.stop()
    return 0
