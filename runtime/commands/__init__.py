"""One module per `skyvoice` subcommand; each exposes `register(subparsers)` and keeps heavy imports inside `run`."""
