"""Korean G2P: Hangul -> the official v2 jamo symbols, with rule-based pronunciation changes.

The official frontend runs g2pk2 (which downloads NLTK's cmudict at import and needs MeCab), then decomposes
syllables into compatibility jamo, splits compound vowels (ㅘ -> ㅗㅏ, ㅑ -> ㅣㅏ ...), writes a space as 空 and
anything else outside the table as 停. We do the same decomposition, and instead of g2pk2 apply the regular
phonological rules ourselves: liaison (with palatalisation, 같이 -> 가치), coda neutralisation and cluster
simplification, nasalisation, liquidisation, ㅎ aspiration and deletion, and tensing after obstruents. Morphology-dependent rules (ㄴ insertion, 의 variants,
tensing after modifiers) are not applied.
"""

from __future__ import annotations

import re
from typing import Final

from runtime.text import normalize_ko
from runtime.text.symbols import SYMBOL_TO_ID

_S_BASE: Final = 0xAC00
CHOSEONG: Final = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
JUNGSEONG: Final = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
JONGSEONG: Final = ("", *"ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ")
VOWEL_SPLIT: Final = {
    "ㅘ": "ㅗㅏ", "ㅙ": "ㅗㅐ", "ㅚ": "ㅗㅣ", "ㅝ": "ㅜㅓ", "ㅞ": "ㅜㅔ", "ㅟ": "ㅜㅣ", "ㅢ": "ㅡㅣ", "ㅑ": "ㅣㅏ",
    "ㅒ": "ㅣㅐ", "ㅕ": "ㅣㅓ", "ㅖ": "ㅣㅔ", "ㅛ": "ㅣㅗ", "ㅠ": "ㅣㅜ",
}
# Cluster codas: the jamo kept before a consonant, and (stays, moves) when the next syllable has no onset.
CLUSTER_BEFORE_CONSONANT: Final = {
    "ㄳ": "ㄱ", "ㄵ": "ㄴ", "ㄶ": "ㄴ", "ㄺ": "ㄱ", "ㄻ": "ㅁ", "ㄼ": "ㄹ", "ㄽ": "ㄹ", "ㄾ": "ㄹ", "ㄿ": "ㅂ", "ㅀ": "ㄹ",
    "ㅄ": "ㅂ",
}
CLUSTER_LIAISON: Final = {
    "ㄳ": ("ㄱ", "ㅆ"), "ㄵ": ("ㄴ", "ㅈ"), "ㄶ": ("", "ㄴ"), "ㄺ": ("ㄹ", "ㄱ"), "ㄻ": ("ㄹ", "ㅁ"), "ㄼ": ("ㄹ", "ㅂ"),
    "ㄽ": ("ㄹ", "ㅆ"), "ㄾ": ("ㄹ", "ㅌ"), "ㄿ": ("ㄹ", "ㅍ"), "ㅀ": ("", "ㄹ"), "ㅄ": ("ㅂ", "ㅆ"),
}
PALATAL: Final = {"ㄷ": "ㅈ", "ㅌ": "ㅊ"}
NEUTRAL_CODA: Final = {"ㄲ": "ㄱ", "ㅋ": "ㄱ", "ㅅ": "ㄷ", "ㅆ": "ㄷ", "ㅈ": "ㄷ", "ㅊ": "ㄷ", "ㅌ": "ㄷ", "ㅎ": "ㄷ", "ㅍ": "ㅂ"}
NASAL: Final = {"ㄱ": "ㅇ", "ㄷ": "ㄴ", "ㅂ": "ㅁ"}
ASPIRATE: Final = {"ㄱ": "ㅋ", "ㄷ": "ㅌ", "ㅂ": "ㅍ", "ㅈ": "ㅊ"}
TENSE: Final = {"ㄱ": "ㄲ", "ㄷ": "ㄸ", "ㅂ": "ㅃ", "ㅅ": "ㅆ", "ㅈ": "ㅉ"}
MARK_MAP: Final = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ",",
                   "...": "…", " ": "空"}
LATIN_NAMES: Final = dict(zip("abcdefghijklmnopqrstuvwxyz", (
    "에이 비 시 디 이 에프 지 에이치 아이 제이 케이 엘 엠 엔 오 피 큐 아르 에스 티 유 브이 더블유 엑스 와이 제트".split())))
_HANGUL_RE: Final = re.compile("[\uac00-\ud7a3]+")


def _decompose(char: str) -> list[str]:
    index = ord(char) - _S_BASE
    return [CHOSEONG[index // 588], JUNGSEONG[(index % 588) // 28], JONGSEONG[index % 28]]


def pronounce(word: str) -> list[list[str]]:
    """[onset, vowel, coda] per syllable of a Hangul run, after the regular sound changes."""
    syllables = [_decompose(char) for char in word]
    for i in range(len(syllables) - 1):
        cur, nxt = syllables[i], syllables[i + 1]
        coda, onset = cur[2], nxt[0]
        if not coda:
            continue
        if onset == "ㅇ":  # liaison (palatalised before ㅣ: 같이 -> 가치)
            if coda in CLUSTER_LIAISON:
                cur[2], nxt[0] = CLUSTER_LIAISON[coda]
                if coda == "ㄾ" and nxt[1] == "ㅣ":
                    nxt[0] = "ㅊ"
            elif coda == "ㅎ":
                cur[2] = ""
            elif coda != "ㅇ":
                cur[2], nxt[0] = "", PALATAL.get(coda, coda) if nxt[1] == "ㅣ" else coda
            continue
        if onset == "ㅎ" and coda in {"ㄱ", "ㄷ", "ㅂ", "ㅈ", "ㅅ", "ㄺ", "ㄼ", "ㄵ"}:
            base = CLUSTER_LIAISON[coda][1] if coda in CLUSTER_LIAISON else coda
            cur[2] = CLUSTER_LIAISON[coda][0] if coda in CLUSTER_LIAISON else ""
            nxt[0] = ASPIRATE.get("ㄷ" if base == "ㅅ" else base, onset)
            continue
        if coda in {"ㅎ", "ㄶ", "ㅀ"} and onset in ASPIRATE:
            cur[2] = CLUSTER_BEFORE_CONSONANT.get(coda, "")
            nxt[0] = ASPIRATE[onset]
            continue
        simple = CLUSTER_BEFORE_CONSONANT.get(coda, coda)
        simple = NEUTRAL_CODA.get(simple, simple)
        if onset in {"ㄴ", "ㅁ"} and simple in NASAL:
            simple = NASAL[simple]
        elif onset == "ㄹ" and simple in {"ㄴ", "ㄹ"}:
            simple, nxt[0] = "ㄹ", "ㄹ"
        elif onset == "ㄴ" and simple == "ㄹ":
            nxt[0] = "ㄹ"
        elif onset == "ㄹ" and simple in {"ㅁ", "ㅇ", "ㄱ", "ㅂ"}:
            nxt[0] = "ㄴ"
            simple = NASAL.get(simple, simple)
        elif onset in TENSE and (simple in {"ㄱ", "ㄷ", "ㅂ"} or coda in {"ㄼ", "ㄾ", "ㄵ", "ㄻ"}):
            nxt[0] = TENSE[onset]  # tensing after obstruents and after the verb-stem clusters (넓다 -> 널따)
        cur[2] = simple
    if syllables:
        last = syllables[-1]
        simple = CLUSTER_BEFORE_CONSONANT.get(last[2], last[2])
        last[2] = NEUTRAL_CODA.get(simple, simple)
    return syllables


def hangul_to_jamo(word: str) -> list[str]:
    out: list[str] = []
    for onset, vowel, coda in pronounce(word):
        out.append(onset)
        out.extend(VOWEL_SPLIT.get(vowel, vowel))
        if coda:
            out.append(coda)
    return out


class KoreanG2p:
    def phonemize(self, text: str) -> tuple[list[str], list[int], str]:
        norm = normalize_ko.normalize(text)
        norm = re.sub("[A-Za-z]", lambda m: LATIN_NAMES[m.group(0).lower()], norm)
        norm = re.sub(r"\s+", " ", norm).strip()
        phones: list[str] = []
        position = 0
        for match in _HANGUL_RE.finditer(norm):
            phones += [_mark(char) for char in norm[position : match.start()]]
            phones += hangul_to_jamo(match.group(0))
            position = match.end()
        phones += [_mark(char) for char in norm[position:]]
        if phones and phones[-1] not in {".", ",", "!", "?", "…", "-", "空", "停"}:
            phones.append(".")
        return phones, [len(phones)] if phones else [], norm


def _mark(char: str) -> str:
    mark = MARK_MAP.get(char, char)
    return mark if mark in SYMBOL_TO_ID else "停"
