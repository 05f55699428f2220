"""TextFrontend: text + language -> GPT-SoVITS v2 phones (symbols, ids, word2ph, segments, BERT mask).

Per segment it runs the language's normaliser and G2P, like the official `get_phones_and_bert`; a result shorter
than 6 phones is redone once with "." in front; English shorter than 4 phones gets "," in front. Chinese BERT
features are not computed on the box: `is_zh_mask` marks the phones where a BERT model would apply, and every
phone gets zeros (the official treatment of non-Chinese text), which costs some prosody on Chinese.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from runtime.errors import FrontendError
from runtime.text import normalize_en, normalize_zh, segment, split
from runtime.text.symbols import PUNCTUATION, UNK, known_or_unk, symbols_to_ids

_LOGGER = logging.getLogger(__name__)

LANGUAGES: Final = ("zh", "en", "ja", "ko", "yue", "auto")
DEFAULT_MAX_CHARS: Final = 1000
MIN_PHONES: Final = 6
MIN_EN_PHONES: Final = 4
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


@dataclass(frozen=True)
class Phonemes:
    """Phones of one text. word2ph: phones per char of norm_text for zh segments, one entry per other segment."""

    symbols: tuple[str, ...]
    ids: tuple[int, ...]
    norm_text: str
    word2ph: tuple[int, ...]
    segments: tuple[tuple[str, str], ...]
    is_zh_mask: tuple[bool, ...]  # per phone: True where Chinese BERT features would apply
    segment_norm_texts: tuple[str, ...] = field(default=())
    segment_word2ph: tuple[tuple[int, ...], ...] = field(default=())  # per segment, as its G2P returned it
    segment_phone_starts: tuple[int, ...] = field(default=())  # index of each segment's first phone

    def __len__(self) -> int:
        return len(self.ids)


def clean_text(text: str) -> str:
    """Drop control and zero-width chars (newlines become sentence ends, tabs spaces); NFC-compose."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL_RE.sub("", text)


class TextFrontend:
    """Thread-safe; language back-ends load on first use of their language."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, g2pw_dir: Path | str | None = None) -> None:
        """g2pw_dir: a local G2PWModel directory for Mandarin polyphones (see g2pw.py); None = pypinyin only."""
        if max_chars < 1:
            raise FrontendError(f"max_chars={max_chars} must be at least 1")
        self.max_chars = max_chars
        self._lock = threading.Lock()
        self._backends: dict[str, object] = {}
        self._g2pw = None
        if g2pw_dir is not None:
            from runtime.text.g2pw import G2pwPredictor

            self._g2pw = G2pwPredictor(Path(g2pw_dir))

    # --- public -----------------------------------------------------------------------------------------
    def phonemize(self, text: str, lang: str) -> Phonemes:
        """Phones for text in lang (zh/ja/ko/yue mixed with English, en, or auto); FrontendError on bad input."""
        text = self._validate(text, lang)
        result = self._phonemize_once(text, lang)
        if len(result.symbols) < MIN_PHONES:
            result = self._phonemize_once("." + text, lang)
        if all(symbol in PUNCTUATION or symbol == UNK for symbol in result.symbols):
            raise FrontendError(
                f"text {text[:40]!r} has nothing to speak in language {lang!r} (only marks, emoji or symbols); "
                "pass words"
            )
        _LOGGER.debug("phonemized lang=%s chars=%d phones=%d", lang, len(text), len(result.symbols))
        return result

    def warm_up(self, langs: tuple[str, ...] = ("zh", "en")) -> None:
        """Load the dictionaries of langs now (about 1-1.5 s CPU for zh+en) instead of on the first request."""
        samples = {"zh": "预热一下。", "en": "Warm up.", "ja": "準備します。", "ko": "준비합니다.", "yue": "準備緊。"}
        if self._g2pw is not None and "zh" in langs:
            self._g2pw.load()
        for lang in langs:
            self.phonemize(samples.get(lang, samples["en"]), lang)
        _LOGGER.info("frontend warm langs=%s", ",".join(langs))

    def split_sentences(self, text: str, method: str = split.DEFAULT_METHOD, lang: str = "zh") -> list[str]:
        """Pieces for streaming synthesis (official pre-segmentation + cut method, cut5 by default)."""
        text = self._validate(text, lang)
        return split.split_sentences(text, method=method, lang="en" if lang == "en" else "zh")

    # --- internals ---------------------------------------------------------------------------------------
    def _validate(self, text: str, lang: str) -> str:
        if lang not in LANGUAGES:
            raise FrontendError(f"language {lang!r} is not supported; use one of {', '.join(LANGUAGES)}")
        if not isinstance(text, str):
            raise FrontendError(f"text must be a string, got {type(text).__name__}")
        if len(text) > self.max_chars:
            raise FrontendError(
                f"text has {len(text)} chars, more than the cap of {self.max_chars}; split it or raise max_chars"
            )
        text = clean_text(text).strip()
        if not text:
            raise FrontendError("text is empty or only whitespace/control characters; pass words to speak")
        return text

    def _phonemize_once(self, text: str, lang: str) -> Phonemes:
        symbols: list[str] = []
        word2ph: list[int] = []
        mask: list[bool] = []
        norm_texts: list[str] = []
        seg_word2ph_all: list[tuple[int, ...]] = []
        starts: list[int] = []
        segments = segment.segment(text, lang)
        for seg_lang, seg_text in segments:
            phones, seg_word2ph, norm = self._segment_phones(seg_lang, seg_text)
            phones = [known_or_unk(p) for p in phones]
            if seg_lang == "en" and 0 < len(phones) < MIN_EN_PHONES and not (symbols and symbols[-1] in PUNCTUATION):
                # The official cleaner puts "," before short English; we skip it right after a mark (no ", ,").
                phones = [","] + phones
                seg_word2ph = [len(phones)]
            starts.append(len(symbols))
            seg_word2ph_all.append(tuple(seg_word2ph))
            symbols += phones
            word2ph += seg_word2ph
            mask += [seg_lang == "zh"] * len(phones)
            norm_texts.append(norm)
        ids = symbols_to_ids(symbols)
        return Phonemes(
            symbols=tuple(symbols),
            ids=tuple(ids),
            norm_text="".join(norm_texts),
            word2ph=tuple(word2ph),
            segments=tuple(segments),
            is_zh_mask=tuple(mask),
            segment_norm_texts=tuple(norm_texts),
            segment_word2ph=tuple(seg_word2ph_all),
            segment_phone_starts=tuple(starts),
        )

    def _segment_phones(self, lang: str, text: str) -> tuple[list[str], list[int], str]:
        if lang == "zh":
            norm = normalize_zh.normalize(text)
            phones, word2ph = self._backend("zh").g2p(norm) if norm else ([], [])
            return phones, word2ph, norm
        if lang == "en":
            norm = normalize_en.normalize(text)
            phones = self._backend("en").g2p(norm)
            return phones, [len(phones)] if phones else [], norm
        backend = self._backend(lang)
        phones, word2ph, norm = backend.phonemize(text)
        return phones, word2ph, norm

    def _backend(self, lang: str):
        with self._lock:
            backend = self._backends.get(lang)
            if backend is None:
                backend = _make_backend(lang, self._g2pw)
                self._backends[lang] = backend
            return backend


def _make_backend(lang: str, g2pw=None):
    if lang == "zh":
        from runtime.text.g2p_zh import MandarinG2p

        return MandarinG2p(g2pw)
    if lang == "en":
        from runtime.text.g2p_en import EnglishG2p

        return EnglishG2p()
    if lang == "ja":
        from runtime.text.g2p_ja import JapaneseG2p

        return JapaneseG2p()
    if lang == "ko":
        from runtime.text.g2p_ko import KoreanG2p

        return KoreanG2p()
    if lang == "yue":
        from runtime.text.g2p_yue import CantoneseG2p

        return CantoneseG2p()
    raise FrontendError(f"language {lang!r} has no G2P back-end; use one of {', '.join(LANGUAGES)}")
