"""Language segmentation by script: English runs inside zh/ja/ko/yue text, or full detection for `auto`.

Rules (our own, in the spirit of the official LangSegmenter): Latin letters are English; Hangul is Korean; kana
is Japanese and, when a text holds any kana, its Han chars are Japanese too; other Han chars are Chinese
(or the caller's language in zh/ja/ko/yue mode). Digits, spaces and marks are neutral: they stay with the segment
before them (the first segment takes the neutral chars that open the text). A unit such as "km" right after a
digit stays neutral so that the number's language reads it.
"""

from __future__ import annotations

import re
from typing import Final

EN: Final = "en"
UNIT_WORDS: Final = frozenset(
    "km m cm mm kg g mg ml L h s min km/h m/s kW W V A dB Hz hPa t ft mi mph lb lbs kn".split()
)
_LATIN_RE: Final = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:['’][A-Za-z]+)*(?:/[A-Za-z]+)?")


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


def _unit_after_digit(text: str, start: int) -> bool:
    match = _LATIN_RE.match(text, start)
    if match is None:
        return False
    before = text[:start].rstrip(" ")
    if match.group(0) in {"C", "F"} and before.endswith("°"):
        return True  # °C, °F
    return match.group(0) in UNIT_WORDS and bool(before) and before[-1].isdigit()


def segment(text: str, lang: str) -> list[tuple[str, str]]:
    """Split text into (lang, text) runs. lang is zh/ja/ko/yue (that language mixed with English), en or auto."""
    if lang == EN:
        return [(EN, text)] if text else []
    has_kana = any(_script(char) == "kana" for char in text)
    runs: list[list[str]] = []  # [lang, text]
    pending = ""  # neutral chars before the first labelled char
    index = 0
    while index < len(text):
        char = text[index]
        script = _script(char)
        if script == "latin" and _unit_after_digit(text, index):
            unit = _LATIN_RE.match(text, index).group(0)
            script, chunk = None, unit
        else:
            chunk = char
        label = None if script is None else _label(script, lang, has_kana)
        if label is None:
            if runs:
                runs[-1][1] += chunk
            else:
                pending += chunk
        elif runs and runs[-1][0] == label:
            runs[-1][1] += chunk
        else:
            runs.append([label, pending + chunk])
            pending = ""
        index += len(chunk)
    if pending:  # the text holds no letters at all: digits and marks read in the requested language
        runs.append([EN if lang == "auto" else lang, pending])
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
