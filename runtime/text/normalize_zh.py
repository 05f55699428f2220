"""Mandarin text normalisation: numbers, dates, times, units, phone numbers, punctuation -> speakable Han text.

Follows the behaviour of PaddleSpeech's zh_normalization as GPT-SoVITS uses it (our own implementation):
dates and times are verbalised, integers of 3+ digits without a measure word are read digit by digit (codes,
gate and train numbers, 1 read as 幺 as in phone numbers), then punctuation maps to the v2 marks
`! ? … , . -` and every char that is neither Han nor a mark is dropped (Latin runs must be split out as English first).
"""

from __future__ import annotations

import re
from typing import Final

from runtime.text import numbers_zh as nz
from runtime.text.symbols import PUNCTUATION

PUNCT_MAP: Final = {
    "：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
    "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…", ":": ",", ";": ",",
}
_PUNCT_RE: Final = re.compile("|".join(re.escape(key) for key in sorted(PUNCT_MAP, key=len, reverse=True)))
_MARKS: Final = "".join(re.escape(mark) for mark in PUNCTUATION)
_DROP_RE: Final = re.compile(r"[^\u4e00-\u9fa5" + _MARKS + r"]+")
_DROP_KEEP_LATIN_RE: Final = re.compile(r"[^\u4e00-\u9fa5A-Za-z" + _MARKS + r"]+")
_REPEATED_MARKS_RE: Final = re.compile(f"([{_MARKS}])([{_MARKS}])+")

# Measure words after which a number is a quantity (read as a cardinal even with 3+ digits).
QUANTIFIERS: Final = (
    "个只人元块角分岁年月日天号时小时分钟秒米千米公里厘米毫米克千克公斤吨升毫升次位名家条辆架艘班趟列节层楼座张本件"
    "台部份度倍户组批道项种站排路号线层级期届瓶杯碗盒包袋箱斤两亩平方元美元英镑欧元港币点场篇首句段行页周"
)
_QUANTIFIER_RE: Final = re.compile(r"(\d+)([多余几]?)(?=[" + QUANTIFIERS + r"])")
UNITS: Final = (
    ("km/h", "千米每小时"), ("m/s", "米每秒"), ("km²", "平方千米"), ("m²", "平方米"), ("m³", "立方米"),
    ("cm²", "平方厘米"), ("km2", "平方千米"), ("m2", "平方米"), ("m3", "立方米"), ("km", "千米"), ("cm", "厘米"),
    ("mm", "毫米"), ("kg", "千克"), ("mg", "毫克"), ("ml", "毫升"), ("mL", "毫升"), ("kW", "千瓦"), ("kw", "千瓦"),
    ("dB", "分贝"), ("db", "分贝"), ("Hz", "赫兹"), ("hPa", "百帕"), ("min", "分钟"), ("h", "小时"), ("m", "米"),
    ("g", "克"), ("s", "秒"), ("L", "升"), ("t", "吨"), ("V", "伏"), ("W", "瓦"), ("A", "安"),
)
_UNIT_RE: Final = re.compile(
    r"(\d)\s*(" + "|".join(re.escape(unit) for unit, _ in UNITS) + r")(?![A-Za-z0-9])"
)
_UNIT_WORDS: Final = dict(UNITS)
ABBREVIATIONS: Final = {"No.": "编号", "NO.": "编号", "Tel": "电话", "&": "和", "@": "艾特", "+": "加", "=": "等于"}

_FULLWIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F) if chr(code) not in "，。！？：；（）～"}
_DATE_RE: Final = re.compile(r"(\d{4}|\d{2})年(?:(0?[1-9]|1[0-2])月)?(?:(0?[1-9]|[12]\d|3[01])([日号]))?")
_DATE2_RE: Final = re.compile(r"(?<!\d)(\d{4})([-/.])(0?[1-9]|1[0-2])\2(0?[1-9]|[12]\d|3[01])(?!\d)")
_MONTH_DAY_RE: Final = re.compile(r"(?<!\d)(0?[1-9]|1[0-2])月(0?[1-9]|[12]\d|3[01])([日号])")
_TIME_RANGE_RE: Final = re.compile(
    r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*[-~～到至]\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?!\d)"
)
_TIME_RE: Final = re.compile(r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?!\d)")
_RATIO_RE: Final = re.compile(r"(?<![\d:])(\d{1,3}):(\d)(?![\d:])")
_TEMPERATURE_RE: Final = re.compile(r"(-?)(\d+(?:\.\d+)?)\s*(°C|℃|°F|℉|°|度|摄氏度)")
_FRACTION_RE: Final = re.compile(r"(?<![\d/])(-?)(\d+)/(\d+)(?![\d/])")
_PERCENT_RE: Final = re.compile(r"(-?)(\d+(?:\.\d+)?)\s*[%％]")
_MOBILE_RE: Final = re.compile(r"(?<!\d)((?:\+?86 ?)?1(?:[38]\d|5[0-35-9]|7[0-8]|9[0-35-9])\d{8})(?!\d)")
_LANDLINE_RE: Final = re.compile(r"(?<!\d)((?:0(?:10|2\d|[3-9]\d{2})-)?[1-9]\d{6,7})(?!\d)")
_RANGE_RE: Final = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[-~～]\s*(\d+(?:\.\d+)?)(?![\d.])")
_NEGATIVE_RE: Final = re.compile(r"(?<![\dA-Za-z])-(\d+(?:\.\d+)?)")
_DECIMAL_RE: Final = re.compile(r"(\d+)\.(\d+)")
_LONG_NUMBER_RE: Final = re.compile(r"\d{3,}")
_NUMBER_RE: Final = re.compile(r"\d+")
_THOUSANDS_RE: Final = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _date(match: re.Match) -> str:
    year, month, day, day_word = match.groups()
    out = nz.digits(year) + "年"
    if month:
        out += nz.cardinal(int(month)) + "月"
    if day:
        out += nz.cardinal(int(day)) + day_word
    return out


def _date2(match: re.Match) -> str:
    year, _, month, day = match.groups()
    return f"{nz.digits(year)}年{nz.cardinal(int(month))}月{nz.cardinal(int(day))}日"


def _clock(hour: str, minute: str, second: str | None, half: bool = True) -> str:
    """15:30 -> 十五点半 on its own; inside a range the official reading is 十五点三十分."""
    out = nz.cardinal(int(hour)) + "点"
    if half and int(minute) == 30 and not (second and int(second)):
        out += "半"
    elif int(minute):
        out += ("零" if minute.startswith("0") else "") + nz.cardinal(int(minute)) + "分"
    if second and int(second):
        out += ("零" if second.startswith("0") else "") + nz.cardinal(int(second)) + "秒"
    return out


def _temperature(match: re.Match) -> str:
    sign, value, unit = match.groups()
    words = ("零下" if sign else "") + nz.number(value)
    if unit == "摄氏度":
        return words + "摄氏度"
    if unit in {"°F", "℉"}:
        return words + "华氏度"
    return words + "度"


def _percent(match: re.Match) -> str:
    sign, value = match.groups()
    return ("负" if sign else "") + "百分之" + nz.number(value)


def _phone(match: re.Match, alt_one: bool = True) -> str:
    parts = re.split(r"[-\s]+", match.group(1).lstrip("+"))
    return ",".join(nz.digits(part, alt_one=alt_one) for part in parts if part)


def normalize_numbers(text: str, alt_one: bool = True) -> str:
    """Verbalise every number-like token in a Mandarin sentence (Latin letters are left alone).

    alt_one reads 1 in phone numbers as 幺 (Mandarin); Cantonese passes False.
    """
    text = text.translate(_FULLWIDTH)
    text = _THOUSANDS_RE.sub("", text)
    text = _DATE_RE.sub(_date, text)
    text = _DATE2_RE.sub(_date2, text)
    text = _MONTH_DAY_RE.sub(
        lambda m: f"{nz.cardinal(int(m.group(1)))}月{nz.cardinal(int(m.group(2)))}{m.group(3)}", text
    )
    text = _TIME_RANGE_RE.sub(
        lambda m: _clock(*m.group(1, 2, 3), half=False) + "至" + _clock(*m.group(4, 5, 6), half=False), text
    )
    text = _TIME_RE.sub(lambda m: _clock(m.group(1), m.group(2), m.group(3)), text)
    text = _RATIO_RE.sub(lambda m: nz.cardinal(int(m.group(1))) + "比" + nz.cardinal(int(m.group(2))), text)  # 3:2
    text = _MOBILE_RE.sub(lambda m: _phone(m, alt_one), text)
    text = _LANDLINE_RE.sub(lambda m: _phone(m, alt_one), text)
    # A range reads its left number now; the right one keeps its unit for the passes below (20~25度).
    text = _RANGE_RE.sub(lambda m: nz.number(m.group(1)) + "到" + m.group(2), text)
    text = _TEMPERATURE_RE.sub(_temperature, text)
    text = _PERCENT_RE.sub(_percent, text)
    text = _UNIT_RE.sub(lambda m: m.group(1) + _UNIT_WORDS[m.group(2)], text)
    text = _FRACTION_RE.sub(
        lambda m: ("负" if m.group(1) else "") + nz.cardinal(int(m.group(3))) + "分之" + nz.cardinal(int(m.group(2))),
        text,
    )
    text = _NEGATIVE_RE.sub(lambda m: "负" + nz.number(m.group(1)), text)
    text = _DECIMAL_RE.sub(lambda m: nz.number(m.group(0)), text)
    text = _QUANTIFIER_RE.sub(lambda m: nz.cardinal(int(m.group(1))) + m.group(2), text)
    text = _LONG_NUMBER_RE.sub(lambda m: nz.digits(m.group(0), alt_one=alt_one), text)
    return _NUMBER_RE.sub(lambda m: nz.cardinal(int(m.group(0))), text)


def replace_abbreviations(text: str) -> str:
    for short, words in ABBREVIATIONS.items():
        text = text.replace(short, words)
    return text


def map_punctuation(text: str, keep_latin: bool = False) -> str:
    """Map punctuation to the v2 marks, drop every other non-Han char, collapse repeated marks."""
    text = text.replace("嗯", "恩").replace("呣", "母")
    text = _PUNCT_RE.sub(lambda m: PUNCT_MAP[m.group(0)], text)
    text = (_DROP_KEEP_LATIN_RE if keep_latin else _DROP_RE).sub("", text)
    return _REPEATED_MARKS_RE.sub(r"\1", text)


def normalize(text: str, keep_latin: bool = False, alt_one: bool = True) -> str:
    """Full Mandarin normalisation: numbers and units verbalised, punctuation mapped, other chars dropped."""
    return map_punctuation(normalize_numbers(replace_abbreviations(text), alt_one=alt_one), keep_latin=keep_latin)
