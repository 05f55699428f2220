"""skyvoice device layer: PA amplifier over RS485 and audio sinks. Imports neither runtime nor export."""
