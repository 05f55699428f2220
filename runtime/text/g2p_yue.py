"""Cantonese G2P: Han text -> Jyutping (ToJyutping, offline) -> the v2 "Y"-prefixed initial/final symbols.

Normalisation reuses the Mandarin number verbaliser (the digits are then read in Cantonese) and keeps only Han
chars and the v2 marks. Each syllable splits at the first matching onset of the official onset list (which also
holds whole zero-onset rhymes such as "aa" or "ong"; an empty rest repeats the onset's last letter), giving
"Y<onset>" and "Y<rest><tone>": 2 phones per char, 1 per mark, like Mandarin. Cantonese gets zero BERT features.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from runtime.errors import FrontendError
from runtime.text import normalize_zh
from runtime.text.symbols import PUNCTUATION, SYMBOL_TO_ID, UNK

ONSETS: Final = (
    "aa aai aak aap aat aau ai au ap at ak a p b e ts t dz d kw k gw g f h l m ng n s y w c z j "
    "ong on ou oi ok o uk ung".split()
)
_JYUTPING_RE: Final = re.compile(r"^([a-z]+)([1-6])$")
_HAN_RE: Final = re.compile(r"[\u4e00-\u9fa5]")


def syllable_phones(jyutping: str) -> list[str]:
    """"nei5" -> ["Yn", "Yei5"]; "aa3" -> ["Yaa", "Ya3"]; unknown -> [UNK, UNK]."""
    match = _JYUTPING_RE.match(jyutping)
    if match is None:
        return [UNK, UNK]
    body, tone = match.groups()
    onset = next((o for o in ONSETS if body.startswith(o)), None)
    if onset is None:
        return [UNK, UNK]
    rest = body[len(onset) :] or onset[-1]
    phones = ["Y" + onset, "Y" + rest + tone]
    return [p if p in SYMBOL_TO_ID else UNK for p in phones]


class CantoneseG2p:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lookup = None

    def _load(self):
        with self._lock:
            if self._lookup is None:
                try:
                    import ToJyutping
                except ImportError as exc:
                    raise FrontendError(
                        "Cantonese needs the ToJyutping package (pure Python, bundled data); "
                        "install it with `pip install ToJyutping`"
                    ) from exc
                self._lookup = ToJyutping.get_jyutping_list
            return self._lookup

    def phonemize(self, text: str) -> tuple[list[str], list[int], str]:
        lookup = self._load()
        norm = normalize_zh.normalize(text, alt_one=False)
        phones: list[str] = []
        word2ph: list[int] = []
        for char, jyutping in lookup(norm) if norm else []:
            if char in PUNCTUATION:
                phones.append(char)
                word2ph.append(1)
            elif _HAN_RE.match(char):
                # A char with several readings comes as "liu4 ge3"-style only for multi-char items; take the first.
                unit = syllable_phones(jyutping.split()[0]) if jyutping else [UNK, UNK]
                phones += unit
                word2ph.append(2)
        return phones, word2ph, norm
