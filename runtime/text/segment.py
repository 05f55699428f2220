"""Language segmentation by script: English runs inside zh/ja/ko/yue text, or full detection for `auto`.

Rules (our own, after the official LangSegmenter's behaviour): Latin letters are English; Hangul is Korean; kana
is Japanese and, when a text holds any kana, its Han chars are Japanese too; other Han chars are Chinese (or the
caller's language in zh/ja/ko/yue mode). Spaces and marks stay with the run before them (the first run takes the
ones that open the text); a unit such as "km" right after a digit stays with the number. A run of digits (with its
decimal point, colon or thousands comma) takes a side like the official digit rule: the only neighbour's language;
the language of both neighbours when they agree; the next one after a sentence mark; otherwise the longer neighbour's.
"""

from __future__ import annotations

import re
from typing import Final

EN: Final = "en"
DIGIT: Final = "digit"
UNIT_WORDS: Final = frozenset(
    "km m cm mm kg g mg ml L h s min km/h m/s kW W V A dB Hz hPa t ft mi mph lb lbs kn".split()
)
SENTENCE_END_MARKS: Final = frozenset(",.!?，。！？")
_LATIN_RE: Final = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:['’][A-Za-z]+)*(?:/[A-Za-z]+)?")
_DIGIT_JOINERS: Final = frozenset(".:,")


def _script(char: str) -> str | None:
    code = ord(char)
    if ("a" <= char.lower() <= "z") or 0xC0 <= code <= 0x24F:
        return "latin"
    if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9F:
        return "kana"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    return None


def _unit_after_digit(text: str, start: int) -> str | None:
    match = _LATIN_RE.match(text, start)
    if match is None:
        return None
    before = text[:start].rstrip(" ")
    unit = match.group(0)
    if unit in {"C", "F"} and before.endswith("°"):
        return unit  # °C, °F
    return unit if unit in UNIT_WORDS and before and before[-1].isdigit() else None


def _items(text: str, lang: str) -> tuple[str, list[list[str]]]:
    """[[label, text], ...] with labels en/zh/ja/ko/<lang>/digit; returns also the neutral chars opening the text."""
    has_kana = any(_script(char) == "kana" for char in text)
    items: list[list[str]] = []
    pending = ""
    index = 0
    while index < len(text):
        char = text[index]
        unit = _unit_after_digit(text, index) if _script(char) == "latin" else None
        chunk = unit or char
        index += len(chunk)
        if char.isdigit() and char.isascii():
            if items and items[-1][0] == DIGIT and (items[-1][1][-1].isdigit() or items[-1][1][-1] in _DIGIT_JOINERS):
                items[-1][1] += chunk
            else:
                items.append([DIGIT, pending + chunk])
                pending = ""
            continue
        script = None if unit else _script(char)
        if script is None:
            if items:
                items[-1][1] += chunk
            else:
                pending += chunk
            continue
        label = _label(script, lang, has_kana)
        if items and items[-1][0] == label:
            items[-1][1] += chunk
        else:
            items.append([label, pending + chunk])
            pending = ""
    return pending, items


def _resolve_digits(items: list[list[str]], fallback: str) -> None:
    """Give each digit run a language, in place (see the module docstring)."""
    for index, item in enumerate(items):
        if item[0] != DIGIT:
            continue
        before = items[index - 1] if index > 0 else None
        after = next((other for other in items[index + 1 :] if other[0] != DIGIT), None)
        if before is None and after is None:
            item[0] = fallback
        elif after is None:
            item[0] = before[0]
        elif before is None:
            item[0] = after[0]
        elif before[0] == after[0]:
            item[0] = before[0]
        elif before[1].rstrip()[-1:] in SENTENCE_END_MARKS:
            item[0] = after[0]
        elif item[1].rstrip()[-1:] in {"。", "."}:
            item[0] = before[0]
        else:
            item[0] = before[0] if len(before[1]) >= len(after[1]) else after[0]


def segment(text: str, lang: str) -> list[tuple[str, str]]:
    """Split text into (lang, text) runs. lang is zh/ja/ko/yue (that language mixed with English), en or auto."""
    if lang == EN:
        return [(EN, text)] if text else []
    pending, items = _items(text, lang)
    fallback = "zh" if lang == "auto" else lang
    if not items:
        return [(fallback, pending)] if pending.strip() else []
    _resolve_digits(items, fallback)
    runs: list[list[str]] = []
    for label, chunk in items:
        if runs and runs[-1][0] == label:
            runs[-1][1] += chunk
        else:
            runs.append([label, chunk])
    if pending:
        runs[0][1] = pending + runs[0][1]
    return [(label, chunk) for label, chunk in runs if chunk.strip()]


def _label(script: str, lang: str, has_kana: bool) -> str:
    if script == "latin":
        return EN
    if lang != "auto":
        return lang
    if script == "hangul":
        return "ko"
    if script == "kana" or (script == "han" and has_kana):
        return "ja"
    return "zh"
