"""Japanese G2P: OpenJTalk full-context labels -> phones with the prosody marks the v2 model was trained on.

Needs `pyopenjtalk-plus` (its wheel bundles the OpenJTalk dictionary, so nothing downloads). Per run of Japanese
chars: phones from the labels' current-phone field (unvoiced vowels written lower-case), "_" for a pause,
"[" at an accent rise, "]" after the accent nucleus, "#" at an accent-phrase border (not a v2 symbol, so it
becomes UNK exactly as in the official frontend); utterance start/end markers are dropped. Marks between runs
map to the v2 marks; other marks become UNK; spaces vanish. OpenJTalk reads numbers; normalize_ja adds times,
temperatures, units and phone numbers.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

from runtime.errors import FrontendError
from runtime.text import normalize_ja
from runtime.text.symbols import PUNCTUATION

_LOGGER = logging.getLogger(__name__)

_JA_CHARS: Final = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JA_CHAR_RE: Final = re.compile(f"[{_JA_CHARS}]")
_MARK_RE: Final = re.compile(f"[^{_JA_CHARS}]")
MARK_MAP: Final = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
                   "...": "…"}
_MARKS: Final = "".join(map(re.escape, PUNCTUATION))
_REPEATED_MARKS_RE: Final = re.compile(f"([{_MARKS}])([{_MARKS}])+")
_CURRENT_PHONE_RE: Final = re.compile(r"-(.*?)\+")
_A1_RE: Final = re.compile(r"/A:([0-9\-]+)\+")
_A2_RE: Final = re.compile(r"\+(\d+)\+")
_A3_RE: Final = re.compile(r"\+(\d+)/")
_F1_RE: Final = re.compile(r"/F:(\d+)_")
_MISSING: Final = -50


def _feature(regex: re.Pattern, label: str) -> int:
    match = regex.search(label)
    return int(match.group(1)) if match else _MISSING


def prosody_phones(labels: list[str]) -> list[str]:
    """Phones and accent marks from OpenJTalk labels, without the utterance start/end markers."""
    phones: list[str] = []
    for index, label in enumerate(labels):
        phone = _CURRENT_PHONE_RE.search(label).group(1)
        if phone in {"A", "E", "I", "O", "U"}:
            phone = phone.lower()  # unvoiced vowels are written as voiced ones
        if phone == "sil":
            continue
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        if index + 1 >= len(labels):
            continue
        a1, a2, a3 = _feature(_A1_RE, label), _feature(_A2_RE, label), _feature(_A3_RE, label)
        f1 = _feature(_F1_RE, label)
        a2_next = _feature(_A2_RE, labels[index + 1])
        if a3 == 1 and a2_next == 1 and phone in set("aeiouAEIOU") | {"N", "cl"}:
            phones.append("#")  # accent-phrase border
        elif a1 == 0 and a2_next == a2 + 1 and a2 != f1:
            phones.append("]")  # pitch falls after the nucleus
        elif a2 == 1 and a2_next == 2:
            phones.append("[")  # pitch rises
    return phones


class JapaneseG2p:
    """pyopenjtalk loads on first use; a missing package is one clear FrontendError."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jtalk = None

    def _load(self):
        with self._lock:
            if self._jtalk is None:
                try:
                    import pyopenjtalk
                except ImportError as exc:
                    raise FrontendError(
                        "Japanese needs the pyopenjtalk-plus package (its wheel bundles the dictionary); "
                        "install it with `pip install pyopenjtalk-plus`"
                    ) from exc
                self._jtalk = pyopenjtalk
            return self._jtalk

    def phonemize(self, text: str) -> tuple[list[str], list[int], str]:
        jtalk = self._load()
        norm = _REPEATED_MARKS_RE.sub(r"\1", normalize_ja.normalize(text))
        lowered = norm.lower()
        runs = _MARK_RE.split(lowered)
        marks = _MARK_RE.findall(lowered)
        phones: list[str] = []
        for index, run in enumerate(runs):
            if _JA_CHAR_RE.match(run):
                phones += prosody_phones(jtalk.make_label(jtalk.run_frontend(run)))
            if index < len(marks) and marks[index] != " ":
                phones.append(MARK_MAP.get(marks[index], marks[index]))
        return phones, [len(phones)] if phones else [], norm
