"""English number words: cardinals, ordinals, years, digit strings and decimals."""

from __future__ import annotations

from typing import Final

ONES: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split()
)
TENS: Final = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES: Final = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS: Final = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(value: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(value, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        words.append(TENS[rest // 10])
        if rest % 10:
            words.append(ONES[rest % 10])
    elif rest:
        words.append(ONES[rest])
    return words


def cardinal(value: int) -> str:
    """1234 -> "one thousand two hundred thirty four" (no "and", as the official expander)."""
    if value < 0:
        return "negative " + cardinal(-value)
    if value == 0:
        return "zero"
    if value >= 10**15:
        return digits(str(value))
    words: list[str] = []
    for scale, name in SCALES:
        if value >= scale:
            words += _below_thousand(value // scale) + [name]
            value %= scale
    words += _below_thousand(value)
    return " ".join(words)


def year(value: int) -> str:
    """Years 1001..2999 read in pairs (1998 -> nineteen ninety eight, 2005 -> two thousand five)."""
    if not 1000 < value < 3000:
        return cardinal(value)
    if value == 2000:
        return "two thousand"
    if 2000 < value < 2010:
        return "two thousand " + cardinal(value % 100)
    if value % 100 == 0:
        return cardinal(value // 100) + " hundred"
    high, low = divmod(value, 100)
    return cardinal(high) + (" oh " + ONES[low] if low < 10 else " " + cardinal(low))


def ordinal(value: int) -> str:
    words = cardinal(value).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits(text: str, zero: str = "zero") -> str:
    """Digit by digit: "0451" -> "zero four five one"."""
    return " ".join(zero if char == "0" else ONES[int(char)] for char in text if char.isdigit())


def number(text: str) -> str:
    """"12" -> twelve, "3.14" -> three point one four, "-2" -> negative two (the official expander's word)."""
    sign = ""
    if text.startswith("-"):
        sign, text = "negative ", text[1:]
    whole, _, fraction = text.partition(".")
    words = cardinal(int(whole)) if whole else "zero"
    if fraction:
        words += " point " + digits(fraction)
    return sign + words


def fraction(numerator: int, denominator: int) -> str:
    """1/2 one half, 3/2 three halves, 1/3 one third, 3/4 three fourths, 6/1 six (the official rules)."""
    top = cardinal(numerator)
    if denominator == 1:
        return top
    if denominator == 2:
        return f"{top} {'half' if numerator == 1 else 'halves'}"
    bottom = ordinal(denominator)
    return f"{top} {bottom}{'s' if numerator > 1 else ''}"
