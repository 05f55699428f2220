"""Mandarin G2P: normalised Han text -> v2 phones (initial + final-with-tone per char, the mark itself per mark).

Pipeline (the official chinese2 path without the optional g2pW model): jieba POS segmentation, the sandhi word
merges, pypinyin initials and FINALS_TONE3 (neutral tone as 5), ToneSandhi, erhua (儿 after a word keeps its own
two phones and takes the previous syllable's tone), then the opencpop-strict split. jieba and pypinyin load on
first use; jieba's dictionary cache goes to the user cache dir, never next to the package.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Final

from runtime.text.symbols import PUNCTUATION, SYMBOL_TO_ID, UNK
from runtime.text.zh_pinyin import split_syllable
from runtime.text.zh_tone_sandhi import ToneSandhi

_LOGGER = logging.getLogger(__name__)

MUST_ERHUA: Final = frozenset("小院儿 胡同儿 范儿 老汉儿 撒欢儿 寻老礼儿 妥妥儿 媳妇儿".split())
NOT_ERHUA: Final = frozenset(
    "虐儿 为儿 护儿 瞒儿 救儿 替儿 有儿 一儿 我儿 俺儿 妻儿 拐儿 聋儿 乞儿 患儿 幼儿 孤儿 婴儿 婴幼儿 连体儿 脑瘫儿 "
    "流浪儿 体弱儿 混血儿 蜜雪儿 舫儿 祖儿 美儿 应采儿 可儿 侄儿 孙儿 侄孙儿 女儿 男儿 红孩儿 花儿 虫儿 马儿 鸟儿 "
    "猪儿 猫儿 狗儿 少儿".split()
)
_SENTENCE_RE: Final = re.compile("(?<=[" + "".join(re.escape(p) for p in PUNCTUATION) + r"])\s*")
_LATIN_RE: Final = re.compile("[a-zA-Z]+")
WORD_CACHE_SIZE: Final = 50_000  # words whose pinyin is memoised (pypinyin dominates the per-sentence cost)


def cache_dir() -> Path:
    """Where jieba may write its dictionary cache: $SKYVOICE_CACHE_DIR, else the user cache, else the temp dir."""
    configured = os.environ.get("SKYVOICE_CACHE_DIR")
    user_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skyvoice"
    base = Path(configured) if configured else user_cache
    try:
        base.mkdir(parents=True, exist_ok=True)
        return base
    except OSError:
        return Path(tempfile.gettempdir())


class MandarinG2p:
    """Loads jieba/pypinyin once (thread-safe) and converts normalised text to phones and word2ph.

    With a `runtime.text.g2pw.G2pwPredictor`, its per-char readings (and polyphonic.rep corrections) replace
    pypinyin's before tone sandhi, as the official chinese2 does with g2pW on.
    """

    def __init__(self, g2pw=None) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._g2pw = g2pw

    def _load(self) -> None:
        with self._lock:
            if self._ready:
                return
            import jieba
            import jieba.posseg
            from pypinyin import Style, lazy_pinyin

            jieba.setLogLevel(logging.WARNING)
            jieba.dt.tmp_dir = str(cache_dir())
            jieba.dt.initialize()
            self._posseg = jieba.posseg.lcut
            self._search = jieba.cut_for_search
            self._finals_cached = lru_cache(maxsize=WORD_CACHE_SIZE)(
                lambda word: tuple(lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3))
            )
            self._initials_cached = lru_cache(maxsize=WORD_CACHE_SIZE)(
                lambda word: tuple(lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS))
            )
            self._sandhi = ToneSandhi(self._finals, lambda word: list(self._search(word)))
            self._ready = True
            _LOGGER.debug("mandarin g2p loaded cache_dir=%s", jieba.dt.tmp_dir)

    def _finals(self, word: str) -> list[str]:
        return list(self._finals_cached(word))

    def _initials(self, word: str) -> list[str]:
        return list(self._initials_cached(word))

    def g2p(self, norm_text: str) -> tuple[list[str], list[int]]:
        """Phones and phones-per-char for text that normalize_zh produced (Han chars and v2 marks only)."""
        self._load()
        phones: list[str] = []
        word2ph: list[int] = []
        for sentence in (s for s in _SENTENCE_RE.split(norm_text) if s.strip()):
            sentence = _LATIN_RE.sub("", sentence)
            seg = self._sandhi.pre_merge(self._posseg(sentence))
            overrides = self._g2pw.predict(sentence) if self._g2pw is not None else None
            offset = 0
            for word, pos in seg:
                start, offset = offset, offset + len(word)
                if pos == "eng":
                    continue
                initials, finals = self._initials(word), self._finals(word)
                if overrides is not None and sentence[start:offset] == word:
                    initials, finals = self._g2pw.override(word, overrides[start:offset], initials, finals)
                finals = self._sandhi.modify(word, pos, finals)
                initials, finals = merge_erhua(initials, finals, word, pos)
                for initial, final in zip(initials, finals):
                    unit = syllable_phones(initial, final)
                    phones += unit
                    word2ph.append(len(unit))
        return phones, word2ph


def merge_erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    """儿 ending a word: er1 -> er2; a non-lexical 儿 (花儿 excepted) takes the previous syllable's tone."""
    finals = list(finals)
    if finals and len(finals) == len(word) and word[-1] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in MUST_ERHUA and (word in NOT_ERHUA or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word) or len(word) < 2:
        return initials, finals
    if word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in NOT_ERHUA and finals[-2][-1:].isdigit():
        finals[-1] = "er" + finals[-2][-1]
    return initials, finals


def _canonical_pinyin(initial: str, final: str) -> str:
    """pypinyin strict initial + final (no tone) -> the spelled syllable ("" + "iou" -> "you", "g" + "uei" -> "gui")."""
    if initial:
        contracted = {"uei": "ui", "iou": "iu", "uen": "un"}
        return initial + contracted.get(final, final)
    whole = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
    if final in whole:
        return whole[final]
    leading = {"v": "yu", "e": "e", "i": "y", "u": "w"}
    if final[:1] in leading:
        return leading[final[0]] + final[1:]
    return final


def syllable_phones(initial: str, final: str) -> list[str]:
    """One char's phones: [mark] for punctuation, [initial, final+tone] for a syllable, [UNK, UNK] otherwise."""
    if initial == final:
        return [final] if final in PUNCTUATION else [UNK]
    tone = final[-1:]
    if tone not in set("12345"):
        _LOGGER.warning("pinyin without tone initial=%s final=%s", initial, final)
        return [UNK, UNK]
    split = split_syllable(_canonical_pinyin(initial, final[:-1]))
    if split is None or split[1] + tone not in SYMBOL_TO_ID:
        _LOGGER.warning("pinyin outside opencpop table initial=%s final=%s", initial, final)
        return [UNK, UNK]
    return [split[0], split[1] + tone]
