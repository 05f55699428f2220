"""The v2 symbol table: size, notable ids, conversion errors."""

from __future__ import annotations

import pytest

from runtime.errors import FrontendError
from runtime.text.symbols import (
    SYMBOL_TO_ID,
    SYMBOLS_V2,
    ids_to_symbols,
    parse_phones,
    symbols_to_ids,
)


def test_table_has_732_unique_symbols():
    assert len(SYMBOLS_V2) == 732
    assert len(SYMBOL_TO_ID) == 732


@pytest.mark.parametrize(
    "symbol,index",
    [("!", 0), (",", 1), ("-", 2), (".", 3), ("?", 4), ("SP", 77), ("UNK", 86), ("_", 95), ("…", 321),
     ("[", 322), ("]", 323), ("ㄱ", 324), ("停", 351), ("空", 352), ("Ya", 353)],
)
def test_notable_ids(symbol, index):
    assert SYMBOL_TO_ID[symbol] == index


def test_v1_block_is_sorted_by_code_point():
    assert list(SYMBOLS_V2[:322]) == sorted(SYMBOLS_V2[:322])


def test_symbols_to_ids_round_trip():
    symbols = ["n", "i2", "h", "ao3", ",", "HH", "AH0", "Yn", "Yei5", "ㅏ"]
    assert ids_to_symbols(symbols_to_ids(symbols)) == symbols


def test_unknown_symbol_is_named():
    with pytest.raises(FrontendError, match="'xyz' at position 1"):
        symbols_to_ids(["a", "xyz"])


def test_parse_phones():
    assert parse_phones("  n i2\th ao3 ") == symbols_to_ids(["n", "i2", "h", "ao3"])
    with pytest.raises(FrontendError, match="empty"):
        parse_phones("   ")


def test_ids_outside_table():
    with pytest.raises(FrontendError, match="732"):
        ids_to_symbols([732])
