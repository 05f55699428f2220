"""The GPT-SoVITS v2 symbol table (732 symbols, id order) and symbol <-> id conversion."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from runtime.errors import FrontendError

_LOGGER = logging.getLogger(__name__)

SYMBOLS_FILE: Final = Path(__file__).with_name("symbols_v2.txt")
EXPECTED_SYMBOL_COUNT: Final = 732

PAD: Final = "_"
UNK: Final = "UNK"
SP: Final = "SP"
# Pause punctuation that is a symbol of its own (text/symbols.py `pu_symbols` without the SP/UNK markers).
PUNCTUATION: Final = ("!", "?", "…", ",", ".", "-")


def _load_symbols(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    # The first line is a '# ' comment; every other line holds exactly one symbol.
    symbols = tuple(line for line in lines[1:] if line != "")
    if len(symbols) != EXPECTED_SYMBOL_COUNT or len(set(symbols)) != EXPECTED_SYMBOL_COUNT:
        raise FrontendError(
            f"symbol table {path} holds {len(symbols)} symbols ({len(set(symbols))} distinct), expected "
            f"{EXPECTED_SYMBOL_COUNT}; reinstall skyvoice"
        )
    return symbols


SYMBOLS_V2: Final[tuple[str, ...]] = _load_symbols(SYMBOLS_FILE)
assert len(SYMBOLS_V2) == EXPECTED_SYMBOL_COUNT  # import-time contract: the GPT's phoneme vocabulary is 732
SYMBOL_TO_ID: Final[dict[str, int]] = {symbol: index for index, symbol in enumerate(SYMBOLS_V2)}


def symbols_to_ids(symbols: list[str] | tuple[str, ...]) -> list[int]:
    """Map symbols to v2 ids; an unknown symbol raises FrontendError naming it."""
    ids = []
    for position, symbol in enumerate(symbols):
        index = SYMBOL_TO_ID.get(symbol)
        if index is None:
            raise FrontendError(
                f"symbol {symbol!r} at position {position} is not in the GPT-SoVITS v2 table; "
                f"use one of the {EXPECTED_SYMBOL_COUNT} symbols in {SYMBOLS_FILE.name}"
            )
        ids.append(index)
    return ids


def parse_phones(text: str) -> list[int]:
    """Parse space-separated symbols (as `skyvoice phonemize` prints them) into ids."""
    symbols = text.split()
    if not symbols:
        raise FrontendError("phone string is empty; pass space-separated v2 symbols such as 'n i2 h ao3'")
    return symbols_to_ids(symbols)


def ids_to_symbols(ids: list[int] | tuple[int, ...]) -> list[str]:
    """Inverse of symbols_to_ids; an id outside 0..731 raises FrontendError."""
    out = []
    for index in ids:
        if not 0 <= index < EXPECTED_SYMBOL_COUNT:
            raise FrontendError(f"phone id {index} is outside the v2 table (0..{EXPECTED_SYMBOL_COUNT - 1})")
        out.append(SYMBOLS_V2[index])
    return out


def known_or_unk(symbol: str) -> str:
    """The official cleaner's last step: any phone outside the table becomes UNK."""
    return symbol if symbol in SYMBOL_TO_ID else UNK
