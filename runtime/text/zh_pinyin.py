"""Pinyin syllable -> (initial, final) in the opencpop-strict convention the v2 symbols use.

Rules (derived from the symbol inventory, not copied from a table):
- zero-initial syllables starting with a/e/o take the pseudo-initials AA/EE/OO and keep the syllable as final;
- y/w are initials: "ya" -> y a, "yan" -> y En, "ye" -> y E, "you" -> y ou, "yu" -> y v, "wo" -> w o;
- after zh/ch/sh/r the apical "i" is "ir"; after z/c/s it is "i0";
- after j/q/x (and the spellings lv/nv) "u" is the umlaut "v";
- contracted finals stay contracted (gui -> g ui, liu -> l iu, dun -> d un).
"""

from __future__ import annotations

from typing import Final

INITIALS: Final = (
    *"zh ch sh b p m f d t n l g k h j q x r z c s y w".split(),
)
_ZERO_INITIAL: Final = {"a": "AA", "e": "EE", "o": "OO"}
_Y_FINALS: Final = {
    "a": "a", "an": "En", "ang": "ang", "ao": "ao", "e": "E", "i": "i", "in": "in", "ing": "ing", "o": "o",
    "ong": "ong", "ou": "ou", "u": "v", "v": "v", "uan": "van", "van": "van", "ue": "ve", "ve": "ve", "un": "vn",
    "vn": "vn",
}
# Finals that exist after a consonant initial (the opencpop inventory, tone-less).
_FINALS: Final = frozenset(
    "a ai an ang ao e ei en eng er i i0 ia ian iang iao ie in ing iong iu ir o ong ou u ua uai uan uang ui un uo "
    "v van ve vn E En".split()
)


def split_syllable(pinyin: str) -> tuple[str, str] | None:
    """Split a tone-less canonical pinyin syllable ("zhong", "lv", "yuan"); None if it is not a syllable."""
    if not pinyin or not pinyin.isalpha() or not pinyin.islower():
        return None
    if pinyin[0] in _ZERO_INITIAL:
        return _ZERO_INITIAL[pinyin[0]], pinyin
    initial = next((i for i in INITIALS if pinyin.startswith(i) and len(pinyin) > len(i)), None)
    if initial is None:
        return None
    final = pinyin[len(initial) :]
    if initial == "y":
        mapped = _Y_FINALS.get(final)
        return (initial, mapped) if mapped else None
    if initial == "w":
        return (initial, final) if final in {"a", "ai", "an", "ang", "ei", "en", "eng", "o", "u"} else None
    if final == "i" and initial in {"zh", "ch", "sh", "r"}:
        final = "ir"
    elif final == "i" and initial in {"z", "c", "s"}:
        final = "i0"
    elif initial in {"j", "q", "x"} and final[0] == "u":
        final = "v" + final[1:]
    if final not in _FINALS or final in {"E", "En", "er"}:
        return None
    return initial, final
