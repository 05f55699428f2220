"""Optional g2pW polyphone model: per-char pinyin overrides for a Mandarin sentence, from a local G2PWModel dir.

The official chinese2 path runs g2pW (a BERT classifier over bopomofo labels, trained on traditional characters)
on every sentence: the text goes simplified -> Taiwan-traditional through OpenCC, each polyphonic char becomes
one batch row whose label mask allows only that char's readings, monophonic chars take the table's reading, and
the word dictionary `polyphonic.rep` corrects the result before tone sandhi. This module does the same on ONNX
Runtime. It never downloads: the directory must already hold the files below.

Model directory (the official `G2PWModel`, plus the BERT vocab copied from chinese-roberta-wwm-ext-large):

* `g2pW.onnx` (or `g2pw.onnx`): int64 inputs `input_ids`, `token_type_ids`, `attention_mask` [N,T],
  float32 `phoneme_mask` [N,L], int64 `char_ids` [N] and `position_ids` [N] (the query char's token index,
  [CLS] = 0); first output: label scores [N,L] (argmax taken).
* `POLYPHONIC_CHARS.txt` / `MONOPHONIC_CHARS.txt`: `char<TAB>bopomofo+tone` lines. Labels are the sorted
  distinct bopomofo readings of the polyphonic table (or sorted `char reading` pairs with `use_char_phoneme`).
* `bopomofo_to_pinyin_wo_tune_dict.json`: bopomofo without tone -> pinyin without tone.
* `vocab.txt`: WordPiece vocabulary, one token a line, id = line number.
* `config.py` (optional): only the literal assignments `use_mask` and `use_char_phoneme` are read (never run).
* `polyphonic.rep`, `polyphonic-fix.rep` (optional): `word: ['pin1', 'yin1']` lines; a whole jieba word found
  there takes the listed readings, otherwise each listed single char takes its first reading.

Needs the `opencc` package (simplified -> traditional, as the official does) and onnxruntime.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Optional

import numpy as np
from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

from runtime.errors import FrontendError

_LOGGER = logging.getLogger(__name__)

MODEL_FILES: Final = ("g2pW.onnx", "g2pw.onnx")
POLYPHONIC_FILE: Final = "POLYPHONIC_CHARS.txt"
MONOPHONIC_FILE: Final = "MONOPHONIC_CHARS.txt"
BOPOMOFO_FILE: Final = "bopomofo_to_pinyin_wo_tune_dict.json"
VOCAB_FILE: Final = "vocab.txt"
CONFIG_FILE: Final = "config.py"
CORRECTION_FILES: Final = ("polyphonic.rep", "polyphonic-fix.rep")
REQUIRED_FILES: Final = (POLYPHONIC_FILE, MONOPHONIC_FILE, BOPOMOFO_FILE, VOCAB_FILE)
INPUT_NAMES: Final = ("input_ids", "token_type_ids", "attention_mask", "phoneme_mask", "char_ids", "position_ids")
CONTEXT_CHARS: Final = 16  # chars of context kept left of the first and right of the last polyphonic char
MAX_TOKENS: Final = 512  # BERT limit, [CLS] and [SEP] included
# The official wrapper leaves these to pypinyin (and tone sandhi) although the table lists them as polyphonic.
NOT_POLYPHONIC: Final = frozenset("一不和咋嗲剖差攢倒難奔勁拗肖瘙誒泊听噢")
NOT_MONOPHONIC: Final = frozenset("似攢")
_ALNUM_RE: Final = re.compile("[a-z0-9]+")

Pinyins = list[Optional[str]]  # per char: TONE3 pinyin ("zhang3", neutral as 5) or None for "no opinion"


@dataclass(frozen=True)
class G2pwConfig:
    """The two training switches that change the model's inputs and labels."""

    use_mask: bool = True
    use_char_phoneme: bool = False


def read_config(path: Path) -> G2pwConfig:
    """Literal `use_mask` / `use_char_phoneme` assignments of config.py (defaults when absent); the file is not run."""
    if not path.is_file():
        return G2pwConfig()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise FrontendError(f"{path} is not valid Python ({exc}); restore the G2PWModel config.py") from exc
    values: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("use_mask", "use_char_phoneme"):
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise FrontendError(f"{path}: {node.targets[0].id} must be True or False") from exc
    return G2pwConfig(**{key: bool(value) for key, value in values.items()})


def _read_char_table(path: Path) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 2 or len(parts[0]) != 1 or not parts[1]:
            raise FrontendError(f"{path} line {number} is not 'char<TAB>reading'; restore the G2PWModel file")
        rows.append((parts[0], parts[1].strip()))
    if not rows:
        raise FrontendError(f"{path} is empty; restore the G2PWModel file")
    return rows


def read_corrections(paths: list[Path]) -> dict[str, tuple[str, ...]]:
    """`word: ['pin1', ...]` lines of polyphonic.rep files, later files winning."""
    table: dict[str, tuple[str, ...]] = {}
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            word, sep, value = line.partition(":")
            try:
                readings = ast.literal_eval(value.strip()) if sep else None
            except (SyntaxError, ValueError):
                readings = None
            if not isinstance(readings, list) or not all(isinstance(r, str) for r in readings) or not word.strip():
                raise FrontendError(f"{path} line {number} is not \"word: ['pin1', ...]\"; fix or remove the file")
            table[word.strip()] = tuple(readings)
    return table


class WordPieceVocab:
    """The official g2pW tokenisation: lower-case; spaces give no token; a Latin/digit run is WordPiece-split;
    any other char is one token (or [UNK])."""

    def __init__(self, path: Path) -> None:
        # split at "\n" only, like the BERT tokenizer: the vocab may hold tokens that str.splitlines() breaks
        tokens = path.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.ids = {token: index for index, token in enumerate(tokens)}
        for special in ("[CLS]", "[SEP]", "[UNK]"):
            if special not in self.ids:
                raise FrontendError(
                    f"{path} lacks the token {special}; copy vocab.txt from chinese-roberta-wwm-ext-large"
                )

    def encode(self, text: str) -> tuple[list[int], list[Optional[int]]]:
        """Token ids (no [CLS]/[SEP]) and, per char of text, the index of its token (None for spaces)."""
        text = text.lower()
        ids: list[int] = []
        char_to_token: list[Optional[int]] = [None] * len(text)
        pos = 0
        while pos < len(text):
            if text[pos] == " ":
                pos += 1
                continue
            match = _ALNUM_RE.match(text, pos)
            if match:
                for start, end, token_id in self._wordpiece(match.group(0), pos):
                    char_to_token[start:end] = [len(ids)] * (end - start)
                    ids.append(token_id)
                pos = match.end()
                continue
            char_to_token[pos] = len(ids)
            ids.append(self.ids.get(text[pos], self.ids["[UNK]"]))
            pos += 1
        return ids, char_to_token

    def _wordpiece(self, word: str, offset: int) -> list[tuple[int, int, int]]:
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    pieces.append((offset + start, offset + end, self.ids[piece]))
                    break
                end -= 1
            if end == start:
                return [(offset, offset + len(word), self.ids["[UNK]"])]
            start = end
        return pieces


def _token_window(n_tokens: int, query_token: int) -> tuple[int, int]:
    """[start, end) of at most MAX_TOKENS-2 tokens around the query, shifted to stay inside the sentence."""
    size = MAX_TOKENS - 2
    if n_tokens <= size:
        return 0, n_tokens
    start = min(max(0, query_token - size // 2), n_tokens - size)
    return start, start + size


class G2pwPredictor:
    """Checks the directory at construction; loads tables, OpenCC and the ONNX session on first use (thread-safe)."""

    def __init__(self, model_dir: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        self.model_dir = Path(model_dir)
        self.providers = providers
        if not self.model_dir.is_dir():
            raise FrontendError(
                f"g2pW directory {self.model_dir} does not exist; pass the unpacked G2PWModel directory or omit g2pW"
            )
        self.model_path = next((self.model_dir / n for n in MODEL_FILES if (self.model_dir / n).is_file()), None)
        missing = [name for name in REQUIRED_FILES if not (self.model_dir / name).is_file()]
        if self.model_path is None:
            missing.insert(0, MODEL_FILES[0])
        if missing:
            raise FrontendError(
                f"g2pW directory {self.model_dir} lacks {', '.join(missing)}; unpack G2PWModel there "
                f"(and copy {VOCAB_FILE} from chinese-roberta-wwm-ext-large) or omit g2pW"
            )
        if importlib.util.find_spec("opencc") is None:
            raise FrontendError(
                "g2pW needs the opencc package to map simplified to traditional chars; pip install opencc"
            )
        self._lock = threading.Lock()
        self._session = None

    # --- loading ---------------------------------------------------------------------------------------
    def load(self) -> None:
        """Read every file and open the model now; FrontendError naming the file when one is unusable."""
        with self._lock:
            if self._session is not None:
                return
            config = read_config(self.model_dir / CONFIG_FILE)
            polyphonic = _read_char_table(self.model_dir / POLYPHONIC_FILE)
            monophonic = _read_char_table(self.model_dir / MONOPHONIC_FILE)
            self._bopomofo = self._read_bopomofo(self.model_dir / BOPOMOFO_FILE)
            self._vocab = WordPieceVocab(self.model_dir / VOCAB_FILE)
            self._corrections = read_corrections(
                [self.model_dir / n for n in CORRECTION_FILES if (self.model_dir / n).is_file()]
            )
            if config.use_char_phoneme:
                keys = [f"{char} {reading}" for char, reading in polyphonic]
            else:
                keys = [reading for _, reading in polyphonic]
            self._labels = sorted(set(keys))
            label_index = {label: index for index, label in enumerate(self._labels)}
            char_labels: dict[str, list[int]] = {}
            for (char, _), key in zip(polyphonic, keys):
                char_labels.setdefault(char, []).append(label_index[key])
            self._char_ids = {char: index for index, char in enumerate(sorted(char_labels))}
            self._masks = {}
            for char, indices in char_labels.items():
                mask = np.full(len(self._labels), 0.0 if config.use_mask else 1.0, dtype=np.float32)
                mask[indices] = 1.0
                self._masks[char] = mask
            self._use_char_phoneme = config.use_char_phoneme
            self._polyphonic = frozenset(char_labels) - NOT_POLYPHONIC
            self._monophonic = {c: r for c, r in monophonic if c not in NOT_MONOPHONIC}
            self._converter = self._open_converter()
            self._session = self._open_session()
            _LOGGER.info(
                "g2pw loaded dir=%s labels=%d polyphonic=%d monophonic=%d corrections=%d",
                self.model_dir, len(self._labels), len(self._polyphonic), len(self._monophonic),
                len(self._corrections),
            )

    @staticmethod
    def _read_bopomofo(path: Path) -> dict[str, str]:
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FrontendError(f"{path} is not valid JSON ({exc}); restore the G2PWModel file") from exc
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise FrontendError(f"{path} must map bopomofo strings to pinyin strings; restore the G2PWModel file")
        return table

    @staticmethod
    def _open_converter():
        try:
            import opencc
        except ImportError as exc:
            raise FrontendError(
                "g2pW needs the opencc package to map simplified to traditional chars; pip install opencc"
            ) from exc
        return opencc.OpenCC("s2tw")

    def _open_session(self):
        import onnxruntime

        try:
            session = onnxruntime.InferenceSession(str(self.model_path), providers=list(self.providers))
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
            raise FrontendError(
                f"{self.model_path} is not a loadable ONNX model ({type(exc).__name__}); re-copy g2pW.onnx"
            ) from exc
        names = {i.name for i in session.get_inputs()}
        if not set(INPUT_NAMES) <= names:
            raise FrontendError(
                f"{self.model_path} has inputs {sorted(names)}, expected {list(INPUT_NAMES)}; "
                "use the official g2pW.onnx"
            )
        return session

    # --- prediction ------------------------------------------------------------------------------------
    def predict(self, sentence: str) -> Pinyins:
        """Per char: the model's reading for polyphonic chars, the table's for monophonic ones, else None."""
        self.load()
        traditional = self._to_traditional(sentence)
        result: Pinyins = [None] * len(sentence)
        queries = []
        for index, char in enumerate(traditional):
            if char in self._polyphonic:
                queries.append(index)
            elif char in self._monophonic:
                result[index] = self._to_pinyin(self._monophonic[char])
        if queries:
            left = max(0, queries[0] - CONTEXT_CHARS)
            right = min(len(traditional), queries[-1] + CONTEXT_CHARS + 1)
            labels = self._run(traditional[left:right], [q - left for q in queries])
            for index, label in zip(queries, labels):
                result[index] = self._to_pinyin(label.split(" ")[1] if self._use_char_phoneme else label)
        return result

    def correct_word(self, word: str, pinyins: Pinyins) -> Pinyins:
        """The polyphonic.rep step: a listed word takes its readings, else each listed char its first reading."""
        listed = self._corrections.get(word)
        if listed is not None and len(listed) == len(word):
            return list(listed)
        pinyins = list(pinyins)
        for index, char in enumerate(word):
            readings = self._corrections.get(char)
            if readings and index < len(pinyins):
                pinyins[index] = readings[0]
        return pinyins

    def override(
        self, word: str, pinyins: Pinyins, initials: list[str], finals: list[str]
    ) -> tuple[list[str], list[str]]:
        """pypinyin's initials/finals of word with predict()'s readings for its chars, corrected, applied."""
        return apply_pinyins(initials, finals, self.correct_word(word, pinyins))

    def _to_traditional(self, sentence: str) -> str:
        converted = self._converter.convert(sentence)
        if len(converted) != len(sentence):  # a phrase rule changed the length: convert char by char instead
            converted = "".join(c if len(t := self._converter.convert(c)) != 1 else t for c in sentence)
        return converted

    def _to_pinyin(self, bopomofo: str) -> Optional[str]:
        tone = bopomofo[-1:]
        base = self._bopomofo.get(bopomofo[:-1])
        if tone not in set("12345") or base is None:
            _LOGGER.warning("g2pw reading without pinyin reading=%s", bopomofo)
            return None
        return base + tone

    def _run(self, text: str, query_ids: list[int]) -> list[str]:
        token_ids, char_to_token = self._vocab.encode(text)
        cls, sep = self._vocab.ids["[CLS]"], self._vocab.ids["[SEP]"]
        rows, positions = [], []
        for query in query_ids:
            query_token = char_to_token[query]
            start, end = _token_window(len(token_ids), query_token)
            rows.append([cls] + token_ids[start:end] + [sep])
            positions.append(query_token - start + 1)
        width = max(len(row) for row in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            attention[index, : len(row)] = 1
        chars = [text[q] for q in query_ids]
        feeds = {
            "input_ids": input_ids,
            "token_type_ids": np.zeros_like(input_ids),
            "attention_mask": attention,
            "phoneme_mask": np.stack([self._masks[c] for c in chars]),
            "char_ids": np.asarray([self._char_ids[c] for c in chars], dtype=np.int64),
            "position_ids": np.asarray(positions, dtype=np.int64),
        }
        scores = self._session.run([self._session.get_outputs()[0].name], feeds)[0]
        if scores.shape != (len(rows), len(self._labels)):
            raise FrontendError(
                f"{self.model_path} returned scores of shape {scores.shape}, expected ({len(rows)}, "
                f"{len(self._labels)}) for {POLYPHONIC_FILE}; use the model and tables from the same G2PWModel"
            )
        return [self._labels[i] for i in np.argmax(scores, axis=1).tolist()]


def apply_pinyins(initials: list[str], finals: list[str], pinyins: Pinyins) -> tuple[list[str], list[str]]:
    """Replace pypinyin's initial/final (FINALS_TONE3, neutral 5) per char where pinyins has a usable reading."""
    if len(pinyins) != len(finals):
        return initials, finals
    initials, finals = list(initials), list(finals)
    for index, pinyin in enumerate(pinyins):
        if not pinyin or not pinyin[0].isalpha():
            continue
        final = to_finals_tone3(pinyin, neutral_tone_with_five=True)
        if not final or final[-1] not in "12345":
            _LOGGER.warning("g2pw reading ignored pinyin=%s", pinyin)
            continue
        initials[index] = to_initials(pinyin)
        finals[index] = final
    return initials, finals
