"""English text normalisation for announcements: numbers, money, %, times, dates, units, phone numbers, abbreviations.

Number reading follows the official expander (tacotron-style: integers 1001..2999 read as years, no "and");
punctuation maps as the official english.text_normalize does (";" ":" -> ",", Chinese marks -> ASCII), and runs
of marks collapse to the first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from runtime.text import numbers_en as ne
from runtime.text.symbols import PUNCTUATION

ABBREVIATIONS: Final = (
    ("mr.", "mister"), ("mrs.", "misses"), ("ms.", "miz"), ("dr.", "doctor"), ("prof.", "professor"),
    ("st.", "street"), ("ave.", "avenue"), ("rd.", "road"), ("jr.", "junior"), ("sr.", "senior"),
    ("e.g.", "for example"), ("i.e.", "that is"), ("etc.", "et cetera"), ("vs.", "versus"),
    ("approx.", "approximately"), ("dept.", "department"), ("max.", "maximum"), ("tel.", "telephone"),
    ("ext.", "extension"),
)
_ABBREVIATION_RES: Final = tuple(
    (re.compile(r"(?<![A-Za-z0-9])" + re.escape(short), re.IGNORECASE), words) for short, words in ABBREVIATIONS
) + ((re.compile(r"(?<![A-Za-z])No\.\s*(?=\d)", re.IGNORECASE), "number "),)
# unit -> (singular, plural); the singular is read after exactly "1" (the official expander does the same).
UNITS: Final = (
    ("km/h", ("kilometer per hour", "kilometers per hour")), ("mph", ("mile per hour", "miles per hour")),
    ("m/s", ("meter per second", "meters per second")), ("km²", ("square kilometer", "square kilometers")),
    ("m²", ("square meter", "square meters")), ("km", ("kilometer", "kilometers")),
    ("cm", ("centimeter", "centimeters")), ("mm", ("millimeter", "millimeters")), ("kg", ("kilogram", "kilograms")),
    ("mg", ("milligram", "milligrams")), ("ml", ("milliliter", "milliliters")), ("kW", ("kilowatt", "kilowatts")),
    ("dB", ("decibel", "decibels")), ("Hz", ("hertz", "hertz")), ("hPa", ("hectopascal", "hectopascals")),
    ("min", ("minute", "minutes")), ("ft", ("foot", "feet")), ("mi", ("mile", "miles")), ("lb", ("pound", "pounds")),
    ("lbs", ("pound", "pounds")), ("kn", ("knot", "knots")), ("h", ("hour", "hours")), ("m", ("meter", "meters")),
    ("g", ("gram", "grams")), ("s", ("second", "seconds")), ("L", ("liter", "liters")), ("V", ("volt", "volts")),
    ("W", ("watt", "watts")),
)
_UNIT_WORDS: Final = dict(UNITS)
_UNIT_RE: Final = re.compile(
    r"(\d+(?:\.\d+)?)\s*(" + "|".join(re.escape(unit) for unit, _ in UNITS) + r")(?![A-Za-z0-9])"
)
MONTHS: Final = (
    "january february march april may june july august september october november december".split()
)
CURRENCIES: Final = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
                     "€": ("euro", "euros", "cent", "cents"), "¥": ("yuan", "yuan", "fen", "fen")}
PUNCT_MAP: Final = {"；": ",", "：": ",", "，": ",", ";": ",", ":": ",", "。": ".", "！": "!", "？": "?", "、": ",",
                    "—": "-", "–": "-", "~": "", "...": ".", "…": ".", "\n": "."}
_PUNCT_RE: Final = re.compile("|".join(re.escape(k) for k in sorted(PUNCT_MAP, key=len, reverse=True)))
_MARKS: Final = "".join(re.escape(mark) for mark in PUNCTUATION)
_REPEATED_MARKS_RE: Final = re.compile(f"([{_MARKS}\\s])([{_MARKS}])+")

_PHONE_RE: Final = re.compile(
    r"(?<![\d.])(?:(?:\+?\d{1,3}[- ]?)?\(?\d{3}\)?[- ]?\d{3}-\d{4}|\+\d[\d -]{6,}\d|\d{3}-\d{4})(?!\d|\.\d)"
)
_DATE_RE: Final = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_TIME_RE: Final = re.compile(
    r"(?<![\d.])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?!\d)(?:\s*([AaPp])\.?\s*([Mm])\b\.?)?"
)
_AMPM_RE: Final = re.compile(r"(?<=\d)\s*([AaPp])\.?[Mm]\.?(?![A-Za-z])")
_MONEY_RE: Final = re.compile(r"([$£€¥])\s*(\d+)(?:\.(\d{1,2}))?")
_PERCENT_RE: Final = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")
_TEMPERATURE_RE: Final = re.compile(r"(-?\d+(?:\.\d+)?)\s*(°C|℃|°F|℉|°)")
_ORDINAL_RE: Final = re.compile(r"(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_RANGE_RE: Final = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[-~]\s*(?=\d)")
_DECIMAL_RE: Final = re.compile(r"-?\d*\.\d+")
_NUMBER_RE: Final = re.compile(r"-?\d+")
_FRACTION_RE: Final = re.compile(r"(?<![\d/])(\d+)/([1-9]\d*)(?![\d/])")
_CAPITAL_RE: Final = re.compile(r"(?<!^)(?<![\s'-])([A-Z])")
_GROUPED_RE: Final = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_CODE_RE: Final = re.compile(r"(?<=[A-Za-z])\d+|\d+(?=[A-Za-z])")


def _money(match: re.Match) -> str:
    one, many, cent, cents = CURRENCIES[match.group(1)]
    whole = int(match.group(2))
    words = f"{ne.cardinal(whole)} {one if whole == 1 else many}"
    if match.group(3):
        fraction = int(match.group(3).ljust(2, "0"))
        if fraction:
            words += f" and {ne.cardinal(fraction)} {cent if fraction == 1 else cents}"
    return words


def _time(match: re.Match) -> str:
    """24-hour times past noon read as 12-hour P M (as the official expander); a written am/pm is kept."""
    hour, minute, second, half, m = match.groups()
    hour_value = int(hour)
    if not half and hour_value > 12:
        hour_value, half = hour_value - 12, "p"
    words = ne.cardinal(hour_value)
    if int(minute) == 0 and not half:
        words += " o'clock"
    elif int(minute) < 10 and int(minute):
        words += " oh " + ne.cardinal(int(minute))
    elif int(minute):
        words += " " + ne.cardinal(int(minute))
    if second and int(second):
        words += " and " + ne.cardinal(int(second)) + " seconds"
    if half:
        words += " " + half.upper() + " M"  # capital letters are spelled (A -> EY1)
    return words


def _temperature(match: re.Match) -> str:
    value, unit = match.groups()
    words = ne.number(value)
    degree = "degree" if value in {"1", "-1"} else "degrees"
    if unit in {"°C", "℃"}:
        return f"{words} {degree} celsius"
    if unit in {"°F", "℉"}:
        return f"{words} {degree} fahrenheit"
    return f"{words} {degree}"


def _unit(match: re.Match) -> str:
    value, unit = match.groups()
    singular, plural = _UNIT_WORDS[unit]
    return f"{value} {singular if value == '1' else plural}"


def _integer(match: re.Match) -> str:
    text = match.group(0)
    value = int(text)
    if text.lstrip("-").startswith("0") and len(text.lstrip("-")) > 1:
        return ne.digits(text)  # codes such as 007
    return ne.year(value) if 1000 < value < 3000 else ne.cardinal(value)


def normalize_numbers(text: str) -> str:
    text = _PHONE_RE.sub(lambda m: ", ".join(ne.digits(p) for p in re.split(r"[- ()]+", m.group(0)) if p), text)
    text = _DATE_RE.sub(
        lambda m: f"{MONTHS[int(m.group(2)) - 1]} {ne.ordinal(int(m.group(3)))}, {ne.year(int(m.group(1)))}"
        if 1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= 31 else m.group(0),
        text,
    )
    text = _TIME_RE.sub(_time, text)
    text = _FRACTION_RE.sub(lambda m: ne.fraction(int(m.group(1)), int(m.group(2))), text)
    text = _GROUPED_RE.sub(lambda m: ne.cardinal(int(m.group(0).replace(",", ""))), text)
    text = _MONEY_RE.sub(_money, text)
    text = _PERCENT_RE.sub(lambda m: ne.number(m.group(1)) + " percent", text)
    text = _TEMPERATURE_RE.sub(_temperature, text)
    text = _RANGE_RE.sub(lambda m: m.group(1) + " to ", text)
    text = _UNIT_RE.sub(_unit, text)
    text = _AMPM_RE.sub(lambda m: " " + m.group(1).upper() + " M", text)
    text = _ORDINAL_RE.sub(lambda m: ne.ordinal(int(m.group(1))), text)
    text = _CODE_RE.sub(lambda m: " " + ne.digits(m.group(0)) + " ", text)  # CA981, 7A: codes digit by digit
    text = _DECIMAL_RE.sub(lambda m: ne.number(m.group(0)), text)
    return _NUMBER_RE.sub(_integer, text)


def strip_accents(text: str) -> str:
    """café -> cafe (as g2p_en does before its lookup); °, ², ³ are kept for the unit rules."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


def expand_abbreviations(text: str) -> str:
    for pattern, words in _ABBREVIATION_RES:
        text = pattern.sub(words, text)
    return text


def normalize(text: str) -> str:
    """Speakable English: abbreviations and numbers expanded, marks mapped to the v2 set, repeats collapsed."""
    text = strip_accents(text)
    text = expand_abbreviations(text)
    text = normalize_numbers(text)
    text = _PUNCT_RE.sub(lambda m: PUNCT_MAP[m.group(0)], text)
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    # Capitals inside a word start a new one (iPhone -> i Phone, GPS -> G P S), as the official expander does,
    # except right after a hyphen or apostrophe, so that "Wi-Fi" stays one dictionary word.
    text = _CAPITAL_RE.sub(r" \1", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(f"\\s+(?=[{_MARKS}])", "", text)
    return _REPEATED_MARKS_RE.sub(r"\1", text)
