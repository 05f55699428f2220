"""Golden symbol sequences per language (see the header of each golden file for how it was checked)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from runtime.text.frontend import TextFrontend
from runtime.text.symbols import symbols_to_ids

GOLDEN_DIR = Path(__file__).with_name("golden")
OPTIONAL_PACKAGE = {"ja": "pyopenjtalk", "yue": "ToJyutping"}
MIN_SENTENCES = {"zh": 30, "en": 30, "ja": 30, "ko": 30, "yue": 30, "auto": 5}


def _rows(lang: str) -> list[tuple[str, str]]:
    rows = []
    for line in (GOLDEN_DIR / f"{lang}.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            text, _, symbols = line.partition("\t")
            rows.append((text, symbols))
    return rows


def _cases():
    for lang in MIN_SENTENCES:
        marks = []
        package = OPTIONAL_PACKAGE.get(lang)
        if package and importlib.util.find_spec(package) is None:
            marks.append(pytest.mark.skip(reason=f"{package} is not installed"))
        for index, (text, symbols) in enumerate(_rows(lang)):
            yield pytest.param(lang, text, symbols, id=f"{lang}-{index:02d}", marks=marks)


@pytest.fixture(scope="module")
def frontend() -> TextFrontend:
    return TextFrontend()


@pytest.mark.parametrize("lang", sorted(MIN_SENTENCES))
def test_golden_file_is_large_enough(lang):
    rows = _rows(lang)
    assert len(rows) >= MIN_SENTENCES[lang]
    assert len({text for text, _ in rows}) == len(rows), "duplicate sentences"
    for _, symbols in rows:
        symbols_to_ids(symbols.split())  # every expected symbol is in the v2 table


@pytest.mark.parametrize("lang,text,expected", list(_cases()))
def test_golden(frontend, lang, text, expected):
    assert " ".join(frontend.phonemize(text, lang).symbols) == expected
