"""Chinese number words: cardinals, digit strings and decimals (the verbalisers normalize_zh builds on)."""

from __future__ import annotations

from typing import Final

DIGITS: Final = "零一二三四五六七八九"
_SMALL_UNITS: Final = ("", "十", "百", "千")
_BIG_UNITS: Final = ("", "万", "亿", "兆")


def digits(text: str, alt_one: bool = False) -> str:
    """Read a digit string digit by digit ("110" -> 一一零; alt_one reads 1 as 幺, as phone numbers do)."""
    out = []
    for char in text:
        if char.isdigit():
            word = DIGITS[int(char)]
            out.append("幺" if alt_one and char == "1" else word)
    return "".join(out)


def _four_digits(value: int) -> str:
    """0 < value < 10000, with inner zeros read once (1005 -> 一千零五)."""
    out, pending_zero = [], False
    text = str(value).zfill(4)
    for position, char in enumerate(text):
        digit = int(char)
        unit = _SMALL_UNITS[3 - position]
        if digit == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        out.append(DIGITS[digit] + unit)
    return "".join(out)


def cardinal(value: int) -> str:
    """Read a non-negative integer (10 -> 十, 12 -> 十二, 110 -> 一百一十, 20005 -> 二万零五)."""
    if value == 0:
        return "零"
    groups = []
    while value:
        groups.append(value % 10000)
        value //= 10000
    if len(groups) > len(_BIG_UNITS):
        return digits("".join(str(g) for g in reversed(groups)))
    out: list[str] = []
    need_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or group < 1000):
            out.append("零")
        need_zero = False
        out.append(_four_digits(group) + _BIG_UNITS[index])
    text = "".join(out)
    if text.startswith("一十"):
        text = text[1:]
    return text


def number(text: str) -> str:
    """Read "12", "3.14", "-5", ".5" or "007" the way a cardinal with decimals is read."""
    sign = ""
    if text.startswith("-"):
        sign, text = "负", text[1:]
    whole, _, fraction = text.partition(".")
    whole_words = cardinal(int(whole)) if whole else "零"
    if fraction:
        fraction = fraction.rstrip("0")
        if fraction:
            return sign + whole_words + "点" + digits(fraction)
    return sign + whole_words
