"""Any text in any language gives valid phones or one FrontendError: never another exception."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.errors import FrontendError
from runtime.text.frontend import TextFrontend
from runtime.text.symbols import SYMBOL_TO_ID

LANGS = [lang for lang in ("zh", "en", "ko", "auto", "ja", "yue")
         if {"ja": "pyopenjtalk", "yue": "ToJyutping"}.get(lang) is None
         or importlib.util.find_spec({"ja": "pyopenjtalk", "yue": "ToJyutping"}[lang]) is not None]
PIECES = st.sampled_from(
    ["你好", "列车", "一", "不", "儿", "。", "，", "！", "?", "...", "~", "-", " ", "\n", "\t", "\x00", "12", "3.5",
     "15:30", "-3°C", "5m/s", "km", "%", "2024-03-05", "13812345678", "Gate", "A", "iPhone", "'s", "😀", "東京",
     "です", "안녕", "하세요", "係", "嘅", "$", "1,234", "No.", "e.g.", "Ω", "ß", "ـ", "\u200b", "／", "ｶﾀｶﾅ"]
)
TEXTS = st.one_of(st.lists(PIECES, min_size=1, max_size=12).map("".join), st.text(max_size=40))


@pytest.fixture(scope="module")
def frontend() -> TextFrontend:
    return TextFrontend(max_chars=500)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, lang=st.sampled_from(LANGS))
def test_valid_phones_or_frontend_error(frontend, text, lang):
    try:
        result = frontend.phonemize(text, lang)
    except FrontendError:
        return
    assert result.symbols and all(symbol in SYMBOL_TO_ID for symbol in result.symbols)
    assert len(result.ids) == len(result.is_zh_mask) and sum(result.word2ph) == len(result.ids)
