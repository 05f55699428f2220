"""Korean normalisation: numbers (Sino-Korean, native before counters), times, units, %, phone numbers."""

from __future__ import annotations

import re
from typing import Final

SINO_DIGITS: Final = "영일이삼사오육칠팔구"
PHONE_DIGITS: Final = "공일이삼사오육칠팔구"
NATIVE_ONES: Final = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
NATIVE_TENS: Final = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
# Counters that take native numbers (1..99).
COUNTERS: Final = (
    "개", "명", "시", "마리", "번째", "살", "대", "권", "잔", "병", "그루", "켤레", "척", "통", "장", "사람", "가지", "군데",
)
UNITS: Final = (
    ("km/h", "킬로미터 퍼 아워"), ("m/s", "미터 퍼 세크"), ("km", "킬로미터"), ("cm", "센티미터"), ("mm", "밀리미터"),
    ("kg", "킬로그램"), ("°C", "도"), ("℃", "도"), ("%", "퍼센트"), ("m", "미터"), ("g", "그램"),
)
_PHONE_RE: Final = re.compile(r"(?<!\d)(0\d{1,2})-(\d{3,4})-(\d{4})(?!\d)")
_TIME_RE: Final = re.compile(r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)(?!\d)")
_UNIT_RE: Final = re.compile(r"(\d)\s*(" + "|".join(re.escape(u) for u, _ in UNITS) + r")(?![A-Za-z])")
_COUNTER_RE: Final = re.compile(r"(\d+)\s*(?=(" + "|".join(COUNTERS) + "))")
_DECIMAL_RE: Final = re.compile(r"(\d+)\.(\d+)")
_NUMBER_RE: Final = re.compile(r"\d+")
_UNIT_WORDS: Final = dict(UNITS)


def sino(value: int) -> str:
    """Sino-Korean reading: 1 -> 일, 10 -> 십, 15 -> 십오, 100 -> 백, 2024 -> 이천이십사, 10000 -> 만."""
    if value == 0:
        return "영"
    out = []
    for big, big_name in ((10**12, "조"), (10**8, "억"), (10**4, "만"), (1, "")):
        group, value = divmod(value, big)
        if not group:
            continue
        words = ""
        for unit, name in ((1000, "천"), (100, "백"), (10, "십"), (1, "")):
            digit, group = divmod(group, unit)
            if digit:
                words += ("" if digit == 1 and name else SINO_DIGITS[digit]) + name
        if big_name == "만" and words == "일":
            words = ""
        out.append(words + big_name)
    return "".join(out)


def native(value: int) -> str:
    """Native reading before counters (1..99): 1 -> 한, 20 -> 스무, 21 -> 스물한; larger values read Sino."""
    if not 0 < value < 100:
        return sino(value)
    if value == 20:
        return "스무"
    return NATIVE_TENS[value // 10] + NATIVE_ONES[value % 10]


def normalize(text: str) -> str:
    text = _PHONE_RE.sub(lambda m: " ".join("".join(PHONE_DIGITS[int(c)] for c in part) for part in m.groups()), text)
    text = _TIME_RE.sub(
        lambda m: f"{native(int(m.group(1)))} 시" + (f" {sino(int(m.group(2)))} 분" if int(m.group(2)) else ""), text
    )
    text = _UNIT_RE.sub(lambda m: m.group(1) + " " + _UNIT_WORDS[m.group(2)], text)
    text = _COUNTER_RE.sub(lambda m: native(int(m.group(1))) + " ", text)
    text = _DECIMAL_RE.sub(lambda m: sino(int(m.group(1))) + " 점 " + "".join(SINO_DIGITS[int(c)] for c in m.group(2)),
                           text)
    return _NUMBER_RE.sub(lambda m: _integer(m.group(0)), text)


def _integer(text: str) -> str:
    """Codes with a leading zero and numbers past 10^12 read digit by digit; the rest Sino-Korean."""
    if (text.startswith("0") and len(text) > 1) or len(text) > 12:
        return "".join(SINO_DIGITS[int(char)] for char in text)
    return sino(int(text))
