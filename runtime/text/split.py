"""Sentence splitting for streaming: the official cut0..cut5 methods and the pre-segmentation around them.

Behaviour follows GPT-SoVITS `TTS_infer_pack/TextPreprocessor.pre_seg_text` and `text_segmentation_method`
(re-implemented from the documented rules): a first sentence shorter than 4 chars gets "。" ("." for en) in front,
the chosen cut runs, pieces shorter than 5 chars merge into their neighbours, every piece ends in punctuation, and
a piece longer than 510 chars is split again at punctuation.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Final

from runtime.errors import FrontendError

_LOGGER = logging.getLogger(__name__)

DEFAULT_METHOD: Final = "cut5"
MAX_PIECE_CHARS: Final = 510
MIN_PIECE_CHARS: Final = 5
MIN_FIRST_SENTENCE_CHARS: Final = 4
CUT2_TARGET_CHARS: Final = 50
CUT1_SENTENCES_PER_PIECE: Final = 4

# Marks that end a sentence for pre-segmentation (`splits` in the official code).
SENTENCE_MARKS: Final = frozenset("，。？！,.?!~:：—…")
# Marks that cut5 splits at; a "." between two digits is a decimal point and stays.
CUT5_MARKS: Final = frozenset(",.;?!、，。？！;：…")
# Sentence-final marks used by cut1/cut2 (sentence boundaries for grouping).
_SENTENCE_END: Final = frozenset("，。？！,.?!~:：—…")


def _split_keep(text: str, marks: frozenset[str]) -> list[str]:
    """Split after each mark, keeping the mark on the left piece."""
    pieces, current = [], []
    for char in text:
        current.append(char)
        if char in marks:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return pieces


def _only_marks(piece: str, marks: frozenset[str]) -> bool:
    return all(char in marks or char.isspace() for char in piece)


def cut0(text: str) -> list[str]:
    """No split: the whole text is one piece."""
    return [text] if text.strip() else []


def cut1(text: str) -> list[str]:
    """Group every four sentences."""
    sentences = [s for s in _split_keep(text, _SENTENCE_END) if s.strip()]
    return [
        "".join(sentences[i : i + CUT1_SENTENCES_PER_PIECE])
        for i in range(0, len(sentences), CUT1_SENTENCES_PER_PIECE)
    ]


def cut2(text: str) -> list[str]:
    """Accumulate sentences until a piece exceeds ~50 chars; a short tail joins the previous piece."""
    sentences = [s for s in _split_keep(text, _SENTENCE_END) if s.strip()]
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        current += sentence
        if len(current) > CUT2_TARGET_CHARS:
            pieces.append(current)
            current = ""
    if current:
        if pieces and len(current) < CUT2_TARGET_CHARS:
            pieces[-1] += current
        else:
            pieces.append(current)
    return pieces


def cut3(text: str) -> list[str]:
    """Split at the Chinese full stop "。"."""
    return [p for p in _split_keep(text.strip("\n"), frozenset("。")) if p.strip() and not _only_marks(p, CUT5_MARKS)]


def cut4(text: str) -> list[str]:
    """Split at "." except between digits (decimal points)."""
    return [p for p in _split_decimal_aware(text.strip("\n"), frozenset(".")) if p.strip()]


def cut5(text: str) -> list[str]:
    """Split at every punctuation mark, keeping decimal points; pieces that are only marks are dropped."""
    pieces = _split_decimal_aware(text.strip("\n"), CUT5_MARKS)
    return [p for p in pieces if p.strip() and not _only_marks(p, CUT5_MARKS)]


def _split_decimal_aware(text: str, marks: frozenset[str]) -> list[str]:
    pieces, current = [], []
    for index, char in enumerate(text):
        current.append(char)
        if char not in marks:
            continue
        is_decimal_point = (
            char == "." and 0 < index < len(text) - 1 and text[index - 1].isdigit() and text[index + 1].isdigit()
        )
        if not is_decimal_point:
            pieces.append("".join(current))
            current = []
    if current:
        pieces.append("".join(current))
    return pieces


CUT_METHODS: Final[dict[str, Callable[[str], list[str]]]] = {
    "cut0": cut0,
    "cut1": cut1,
    "cut2": cut2,
    "cut3": cut3,
    "cut4": cut4,
    "cut5": cut5,
}


def _first_sentence(text: str) -> str:
    pattern = "[" + "".join(re.escape(mark) for mark in sorted(SENTENCE_MARKS)) + "]"
    return re.split(pattern, text)[0].strip()


def merge_short_pieces(pieces: list[str], threshold: int = MIN_PIECE_CHARS) -> list[str]:
    """Join pieces until each is at least `threshold` chars; a short tail joins the last piece."""
    if len(pieces) < 2:
        return list(pieces)
    merged: list[str] = []
    current = ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def split_long_piece(piece: str, max_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """Split a piece longer than max_chars at punctuation (hard cut when one run has no mark)."""
    out: list[str] = []
    current = ""
    for part in _split_keep(piece, SENTENCE_MARKS | CUT5_MARKS):
        while len(part) > max_chars:
            if current:
                out.append(current)
                current = ""
            out.append(part[:max_chars])
            part = part[max_chars:]
        if len(current) + len(part) > max_chars:
            out.append(current)
            current = part
        else:
            current += part
    if current:
        out.append(current)
    return out


def split_sentences(text: str, method: str = DEFAULT_METHOD, lang: str = "zh") -> list[str]:
    """Pre-segment text for synthesis the way the official pipeline does; returns pieces that end in a mark."""
    if method not in CUT_METHODS:
        raise FrontendError(f"split method {method!r} is unknown; use one of {', '.join(CUT_METHODS)}")
    text = text.strip("\n")
    if not text.strip():
        return []
    full_stop = "." if lang == "en" else "。"
    if text[0] not in SENTENCE_MARKS and len(_first_sentence(text)) < MIN_FIRST_SENTENCE_CHARS:
        text = full_stop + text
    pieces = [p for p in CUT_METHODS[method](text) if p.strip()]
    pieces = merge_short_pieces(pieces, MIN_PIECE_CHARS)
    out: list[str] = []
    for piece in pieces:
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue  # only marks and spaces: nothing to say
        if piece[-1] not in SENTENCE_MARKS:
            piece += full_stop
        out.extend(split_long_piece(piece) if len(piece) > MAX_PIECE_CHARS else [piece])
    _LOGGER.debug("split method=%s pieces=%d", method, len(out))
    return out
