"""Japanese normalisation for announcements; OpenJTalk already reads plain numbers, dates and counters.

Adds what OpenJTalk reads badly: clock times (15:30 -> 15時30分), temperatures (-3°C -> マイナス3度), units
(km/h, m/s, km, kg, cm, mm), percentages, and phone numbers digit by digit (03-1234-5678 -> ゼロサンの…).
"""

from __future__ import annotations

import re
from typing import Final

PHONE_DIGITS: Final = ("ゼロ", "イチ", "ニー", "サン", "ヨン", "ゴー", "ロク", "ナナ", "ハチ", "キュー")
UNITS: Final = (
    ("km/h", "キロメートル毎時"), ("m/s", "メートル毎秒"), ("km", "キロメートル"), ("kg", "キログラム"),
    ("cm", "センチメートル"), ("mm", "ミリメートル"), ("ml", "ミリリットル"), ("m", "メートル"), ("g", "グラム"),
)
_PHONE_RE: Final = re.compile(r"(?<!\d)0\d{1,4}-\d{1,4}-\d{3,4}(?!\d)")
_TIME_RE: Final = re.compile(r"(?<!\d)([01]?\d|2[0-3])[:：]([0-5]\d)(?!\d)")
_TEMPERATURE_RE: Final = re.compile(r"([-−]?)(\d+(?:\.\d+)?)\s*(?:°C|℃|度)")
_UNIT_RE: Final = re.compile(r"(\d)\s*(" + "|".join(re.escape(u) for u, _ in UNITS) + r")(?![A-Za-z])")
_UNIT_WORDS: Final = dict(UNITS)


def _time(match: re.Match) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    return f"{hour}時" + (f"{minute}分" if minute else "")


def _digits(part: str) -> str:
    return "".join(PHONE_DIGITS[int(char)] for char in part)


def normalize(text: str) -> str:
    text = _PHONE_RE.sub(lambda m: "の".join(_digits(part) for part in m.group(0).split("-")), text)
    text = _TIME_RE.sub(_time, text)
    text = _TEMPERATURE_RE.sub(lambda m: ("マイナス" if m.group(1) else "") + m.group(2) + "度", text)
    text = _UNIT_RE.sub(lambda m: m.group(1) + _UNIT_WORDS[m.group(2)], text)
    return text.replace("％", "パーセント").replace("%", "パーセント")
