"""The torch-free GPT decode loop: prefill graph, then one decode-step graph per token, sampling on the host.

By default the decoder owns the KV cache in host memory (`HostKvCache`): one contiguous K and one V buffer in the
decode-step graph's head-major layout ([L, 1, H, R, D/H] float32), grown in buckets of rows. Prefill rows are copied
in once; each step gets every layer's buffer by address (no copies) and writes the new token's K/V at row `kv_len`;
the graph masks rows >= kv_len. With `static_cache=True` (a fixed-shape engine fed from the host) R is the capacity.
A `KvStep` that keeps the cache on the device (TensorRT's `TrtDecodeStep`) can be passed instead of the step runner.

Official semantics (GPT-SoVITS `infer_panel_naive`): the EOS column is dropped for steps 0..10; a step stops when the
argmax of the penalised logits or the sample is EOS (that token is dropped); the token generated at step idx enters at
audio position P + idx; at most `max_tokens` tokens are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Final, Iterator, Optional, Protocol, Union

import numpy as np

from runtime.errors import SynthesisError
from runtime.synth.runner import GraphRunner
from runtime.synth.sampling import SampledToken, exponential_noise, greedy_token, sample_token
from runtime.synth.synthesizer import SynthesisOptions

_LOGGER = logging.getLogger(__name__)

EOS: Final = 1024
MIN_STEPS_BEFORE_EOS: Final = 11  # the EOS column is dropped for steps 0..10
MAX_TOKENS_LIMIT: Final = 1500
DEFAULT_CHUNK_TOKENS: Final = 16
DEFAULT_BUCKET_ROWS: Final = 32  # host KV cache growth step (rows); a step reads < one bucket of masked rows
BERT_DIM: Final = 1024


class KvStep(Protocol):
    """The decode step together with the KV cache it reads: host buffers (`HostKvCache`) or device-resident ones
    (`runtime.synth.trt_runner.TrtDecodeStep`)."""

    def load_prefill(self, k_prefill: np.ndarray, v_prefill: np.ndarray) -> int:
        """Put prefill K/V rows [L,1,R,D] (token-major, as the prefill graph writes them) into rows 0..R-1 of the
        head-major cache; return R, the next kv_len."""
        ...

    def step(self, token: int, audio_position: int, kv_len: int) -> np.ndarray:
        """Run one token against rows < kv_len, append its K/V at row kv_len; return logits ([V] or [1,V])."""
        ...


class HostKvCache:
    """`KvStep` over a decode-step `GraphRunner`, with the cache in host memory in the graph's head-major layout:
    one float32 K and one V buffer [L, 1, H, R, D/H]; layer i's cache is the contiguous view [1, H, R, D/H].

    R, the rows held, grows in buckets of `bucket_rows` (re-laid out when a bucket fills, once per `bucket_rows`
    tokens), so a step reads at most a bucket of masked rows beyond kv_len instead of the whole capacity; the graph
    masks rows >= kv_len. With `static_cache` (a fixed-shape engine fed from the host) R is the capacity at once.

    With an `OrtRunner` (it has `bind`), every input and output is bound by address through ORT I/O binding, once
    per layout: the cache is never copied per step, the step's outputs land in preallocated buffers, and only the
    new token's row (L x D floats for K and for V) is written into the cache."""

    def __init__(
        self,
        runner: GraphRunner,
        *,
        n_layer: int,
        d_model: int,
        capacity: int,
        static_cache: bool = False,
        n_head: Optional[int] = None,
        bucket_rows: int = DEFAULT_BUCKET_ROWS,
    ) -> None:
        declared = _declared_cache_heads(runner)
        if n_head is not None and declared is not None and n_head != declared:
            raise SynthesisError(f"the decode-step graph's caches have {declared} heads but the bundle says n_head={n_head}; rebuild the bundle")
        heads = n_head or declared or 1
        if d_model % heads:
            raise SynthesisError(f"d_model {d_model} is not a multiple of n_head {heads}; the bundle's manifest is inconsistent")
        self.runner = runner
        self.n_layer = n_layer
        self.heads, self.head_dim = heads, d_model // heads
        self.capacity = capacity
        # A runner that reads only rows < kv_len (the native step) gets the cache laid out at full capacity once:
        # no growth moves, and rows beyond those in use are never zeroed (nor touched, so never paged in).
        self.valid_rows_only = bool(getattr(runner, "reads_only_valid_rows", False))
        self._runner_writes_rows = bool(getattr(runner, "writes_cache_rows", False))  # the native step writes row kv_len
        self.static_cache = static_cache or self.valid_rows_only
        self.bucket_rows = max(1, int(bucket_rows))
        self.rows = 0  # rows held per layer (R)
        self.k_all = self.v_all = np.zeros((n_layer, 1, heads, 0, self.head_dim), dtype=np.float32)
        self._arena_k: Optional[np.ndarray] = None
        self._arena_v: Optional[np.ndarray] = None
        self._run: Optional[Callable[[], None]] = None  # the step bound by address (ORT), valid until a re-layout
        columns = _declared_logits_columns(runner)
        self._bound = callable(getattr(runner, "bind", None)) and columns is not None
        self._token = np.zeros((1, 1), dtype=np.int64)
        self._position = np.zeros(1, dtype=np.int64)
        self._kv_len = np.zeros(1, dtype=np.int64)
        self._logits = np.zeros((1, columns or EOS + 1), dtype=np.float32)
        self._k_new = np.zeros((n_layer, 1, 1, d_model), dtype=np.float32)
        self._v_new = np.zeros((n_layer, 1, 1, d_model), dtype=np.float32)
        self._outputs = {"logits": self._logits, "k_new": self._k_new, "v_new": self._v_new}

    def _rows_for(self, needed: int) -> int:
        if self.static_cache:
            return self.capacity
        return min(self.capacity, -(-needed // self.bucket_rows) * self.bucket_rows)

    def _layout(self, rows: int, keep: int) -> None:
        """Lay the cache out as [L,1,H,rows,hd] views over two arenas, keeping the first `keep` rows of every head.

        The arenas are allocated once at full capacity and never touched beyond the rows in use, so memory grows with
        the rows actually used. Growing moves each head's rows forward in place, last head first (a move never
        overwrites rows not yet moved); reused memory is never faulted in again. Rows >= keep are zeroed: masked
        rows must be finite, as 0 x NaN would poison the attention's weighted sum (not for a runner that reads only
        rows < kv_len: there they are never read)."""
        blocks, hd = self.n_layer * self.heads, self.head_dim
        if self._arena_k is None:
            self._arena_k = _arena(blocks * self.capacity * hd, sparse=self.valid_rows_only)
            self._arena_v = _arena(blocks * self.capacity * hd, sparse=self.valid_rows_only)
        old_rows = self.rows
        views = []
        for arena in (self._arena_k, self._arena_v):
            if keep and rows != old_rows:
                span = keep * hd
                order = range(blocks - 1, -1, -1) if rows > old_rows else range(blocks)
                for block in order:
                    src, dst = block * old_rows * hd, block * rows * hd
                    arena[dst : dst + span] = arena[src : src + span]
            view = arena[: blocks * rows * hd].reshape(self.n_layer, 1, self.heads, rows, hd)
            if not self.valid_rows_only:
                view[:, :, :, keep:] = 0.0
            views.append(view)
        self.k_all, self.v_all = views
        self.rows = rows
        self._run = None  # addresses or shapes changed: bind again

    def load_prefill(self, k_prefill: np.ndarray, v_prefill: np.ndarray) -> int:
        """Prefill K/V rows [L,1,R,D] → rows 0..R-1 of the head-major cache (later rows zeroed); returns R."""
        rows = k_prefill.shape[2]
        if rows > self.capacity:
            raise SynthesisError(f"the prompt needs {rows} GPT cache rows but the capacity is {self.capacity}; shorten the text")
        self._layout(self._rows_for(min(rows + 1, self.capacity)), keep=0)
        split = (self.n_layer, 1, rows, self.heads, self.head_dim)
        self.k_all[:, :, :, :rows] = k_prefill.reshape(split).transpose(0, 1, 3, 2, 4)
        self.v_all[:, :, :, :rows] = v_prefill.reshape(split).transpose(0, 1, 3, 2, 4)
        return rows

    def _feeds(self, token: int, audio_position: int, kv_len: int) -> dict[str, np.ndarray]:
        if self._bound:  # bound by address for this run only: the preallocated scalars can be reused
            self._token[0, 0], self._position[0], self._kv_len[0] = token, audio_position, kv_len
            token_a, position_a, kv_len_a = self._token, self._position, self._kv_len
        else:  # a plain runner may keep the feeds: give it fresh arrays
            token_a = np.array([[token]], dtype=np.int64)
            position_a = np.array([audio_position], dtype=np.int64)
            kv_len_a = np.array([kv_len], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {"token": token_a, "audio_position": position_a, "kv_len": kv_len_a}
        for i in range(self.n_layer):
            feeds[f"k_cache_{i}"] = self.k_all[i]
            feeds[f"v_cache_{i}"] = self.v_all[i]
        return feeds

    def step(self, token: int, audio_position: int, kv_len: int) -> np.ndarray:
        if kv_len >= self.capacity:
            raise SynthesisError(f"the GPT cache is full at {kv_len} rows; raise the bundle's kv_capacity")
        if kv_len >= self.rows:  # the new row needs a bucket more
            self._layout(self._rows_for(kv_len + 1), keep=min(kv_len, self.rows))
        if self._bound:
            if self._run is None:  # the scalars live at fixed addresses: one binding serves every step until a re-layout
                self._run = self.runner.bind(self._feeds(token, audio_position, kv_len), self._outputs)
            else:
                self._token[0, 0], self._position[0], self._kv_len[0] = token, audio_position, kv_len
            self._run()
            k_new, v_new, logits = self._k_new, self._v_new, self._logits.copy()
        else:
            out = self.runner.run(self._feeds(token, audio_position, kv_len))
            k_new, v_new, logits = out["k_new"], out["v_new"], out["logits"]
        if not self._runner_writes_rows:
            split = (self.n_layer, 1, self.heads, self.head_dim)
            self.k_all[:, :, :, kv_len] = np.asarray(k_new).reshape(split)
            self.v_all[:, :, :, kv_len] = np.asarray(v_new).reshape(split)
        return logits


def _arena(count: int, *, sparse: bool) -> np.ndarray:
    """`count` float32 values for a cache arena. A `sparse` one is laid out at full capacity with each head's rows
    used from its start only, so it is anonymous memory kept off transparent huge pages: only the 4 KiB pages of rows
    in use become resident, not every 2 MiB page that some head's first rows fall in (with THP on, the whole arena)."""
    if not sparse:
        return np.empty(count, dtype=np.float32)
    import mmap

    memory = mmap.mmap(-1, max(1, count) * 4)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(memory, dtype=np.float32, count=count)


def _declared_cache_heads(runner: GraphRunner) -> Optional[int]:
    """H of an ORT decode-step graph's head-major `k_cache_0` [1,H,C,D/H], or None when it declares none.

    A graph with token-major caches [1,C,D] (bundles built before the head-major layout) is refused clearly."""
    session = getattr(runner, "session", None)
    if session is None or not hasattr(session, "get_inputs"):
        return None
    for graph_input in session.get_inputs():
        if graph_input.name == "k_cache_0":
            shape = list(graph_input.shape or [])
            if len(shape) != 4:
                raise SynthesisError(
                    f"the decode-step graph takes k_cache_0 as {shape}, not head-major [1,H,C,D/H]: the bundle was built "
                    "by an older skyvoice; rebuild it with 'skyvoice build'"
                )
            return int(shape[1]) if isinstance(shape[1], int) else None
    return None


def _declared_logits_columns(runner: GraphRunner) -> Optional[int]:
    """The static logits width a decode-step runner declares (an ORT graph's output, or a native step's
    `logits_columns`), or None (then plain `run` is used)."""
    if isinstance(getattr(runner, "logits_columns", None), int):
        return runner.logits_columns
    session = getattr(runner, "session", None)
    if session is None or not hasattr(session, "get_outputs"):
        return None
    for output in session.get_outputs():
        if output.name == "logits" and output.shape and isinstance(output.shape[-1], int):
            return int(output.shape[-1])
    return None


class GptDecoder:
    """Generates semantic tokens for one utterance at a time (the KV cache is shared, so calls must not overlap).

    `step` is a decode-step `GraphRunner` (wrapped in a `HostKvCache` of at most `capacity` rows; `n_head` defaults to
    what the graph declares) or a ready `KvStep` with its own cache, such as TensorRT's device-resident `TrtDecodeStep`.
    """

    def __init__(
        self,
        prefill: GraphRunner,
        step: Union[GraphRunner, KvStep],
        *,
        n_layer: int,
        d_model: int,
        capacity: int,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        static_cache: bool = False,
        eos: int = EOS,
        n_head: Optional[int] = None,
    ) -> None:
        if capacity < 2:
            raise SynthesisError(f"GPT cache capacity {capacity} is too small; use at least the longest phones+prompt+tokens")
        if chunk_tokens < 1:
            raise SynthesisError(f"chunk_tokens {chunk_tokens} must be at least 1")
        self.prefill = prefill
        self.n_layer = n_layer
        self.d_model = d_model
        self.capacity = capacity
        self.chunk_tokens = chunk_tokens
        self.eos = eos
        if hasattr(step, "load_prefill") and hasattr(step, "step"):
            self.kv: KvStep = step
        else:
            self.kv = HostKvCache(step, n_layer=n_layer, d_model=d_model, capacity=capacity, static_cache=static_cache, n_head=n_head)
        self._busy = threading.Lock()
        # Benchmark-only: never stop on EOS (the EOS column is always dropped), so random-weight models do a fixed
        # `max_tokens` of work. Never set in production.
        self.ignore_eos = False

    def generate(
        self,
        phones: np.ndarray,
        bert: np.ndarray,
        prompt_tokens: np.ndarray,
        options: SynthesisOptions,
        rng: Optional[np.random.Generator] = None,
        cancel: Optional[threading.Event] = None,
        first_chunk_tokens: Optional[int] = None,
    ) -> Iterator[list[int]]:
        """Yield lists of newly generated tokens (`chunk_tokens` each, the last one shorter); EOS is never yielded.

        phones: int64 [X] or [1,X] (prompt phones + target phones); bert: float32 [X,1024] or [1,X,1024];
        prompt_tokens: int64 [P] or [1,P], P >= 1. `options.top_k == 1` takes the greedy path. `rng` defaults to
        one seeded from `options.seed` (-1: fresh entropy). Setting `cancel` ends the generator early without error.
        `first_chunk_tokens` sizes the first chunk alone (a streaming consumer's first piece: early first audio).
        """
        phones2, bert3, prompt2 = self._check_inputs(phones, bert, prompt_tokens, options)
        first = self.chunk_tokens if first_chunk_tokens is None else max(1, int(first_chunk_tokens))
        return self._exclusive(phones2, bert3, prompt2, options, rng, cancel, first)

    def generate_all(
        self,
        phones: np.ndarray,
        bert: np.ndarray,
        prompt_tokens: np.ndarray,
        options: SynthesisOptions,
        rng: Optional[np.random.Generator] = None,
        cancel: Optional[threading.Event] = None,
    ) -> list[int]:
        tokens: list[int] = []
        for chunk in self.generate(phones, bert, prompt_tokens, options, rng, cancel):
            tokens.extend(chunk)
        return tokens

    def _check_inputs(
        self, phones: np.ndarray, bert: np.ndarray, prompt_tokens: np.ndarray, options: SynthesisOptions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phones2 = np.ascontiguousarray(np.asarray(phones, dtype=np.int64).reshape(1, -1))
        prompt2 = np.ascontiguousarray(np.asarray(prompt_tokens, dtype=np.int64).reshape(1, -1))
        bert3 = np.ascontiguousarray(np.asarray(bert, dtype=np.float32).reshape(1, -1, BERT_DIM))
        x_len, p_len = phones2.shape[1], prompt2.shape[1]
        if x_len == 0:
            raise SynthesisError("phones are empty; the text frontend produced nothing to speak")
        if p_len == 0:
            raise SynthesisError("prompt_tokens are empty; the voice pack must hold the reference's semantic tokens")
        if prompt2.min() < 0 or prompt2.max() >= self.eos:
            raise SynthesisError(
                f"prompt_tokens must be semantic codes in 0..{self.eos - 1}, got {prompt2.min()}..{prompt2.max()}; "
                "re-enroll the voice pack"
            )
        if phones2.min() < 0:
            raise SynthesisError(f"phones hold a negative id {phones2.min()}; the text frontend output is corrupt")
        if bert3.shape[1] != x_len:
            raise SynthesisError(f"bert features have {bert3.shape[1]} rows but phones have {x_len}; they must match")
        if not 1 <= options.max_tokens <= MAX_TOKENS_LIMIT:
            raise SynthesisError(f"max_tokens {options.max_tokens} must be within 1..{MAX_TOKENS_LIMIT}")
        need = x_len + p_len + options.max_tokens
        if need > self.capacity:
            raise SynthesisError(
                f"phones ({x_len}) + prompt tokens ({p_len}) + max_tokens ({options.max_tokens}) = {need} exceed the GPT "
                f"cache capacity {self.capacity}; shorten the sentence or the reference, or lower max_tokens"
            )
        return phones2, bert3, prompt2

    def _exclusive(self, *args) -> Iterator[list[int]]:
        if not self._busy.acquire(blocking=False):
            raise SynthesisError("the GPT decoder is already generating; run one utterance at a time per decoder")
        try:
            yield from self._generate(*args)
        finally:
            self._busy.release()

    def _generate(
        self,
        phones: np.ndarray,
        bert: np.ndarray,
        prompt: np.ndarray,
        options: SynthesisOptions,
        rng: Optional[np.random.Generator],
        cancel: Optional[threading.Event],
        first_chunk_tokens: int,
    ) -> Iterator[list[int]]:
        if rng is None:
            rng = np.random.default_rng(None if options.seed < 0 else options.seed)
        greedy = options.top_k == 1
        started = time.perf_counter()
        out = self.prefill.run({"phones": phones, "bert_features": bert, "prompt_tokens": prompt})
        kv_len = self.kv.load_prefill(out["k_prefill"], out["v_prefill"])
        prefill_s = time.perf_counter() - started
        logits = out["logits"][0]

        seen = np.zeros(self.eos + 1, dtype=bool)  # distinct previous tokens (prompt + generated) for the penalty
        seen[prompt[0]] = True
        p_len = prompt.shape[1]
        pending: list[int] = []
        count = 0
        stop_reason = "max_tokens"
        for idx in range(options.max_tokens):
            if cancel is not None and cancel.is_set():
                stop_reason = "cancelled"
                break
            row = logits[: self.eos] if idx < MIN_STEPS_BEFORE_EOS or self.ignore_eos else logits
            picked = self._pick(row, seen, options, greedy, rng)
            if picked.token == self.eos or picked.argmax == self.eos:
                stop_reason = "eos"
                break
            pending.append(picked.token)
            count += 1
            seen[picked.token] = True
            if len(pending) >= (first_chunk_tokens if count == len(pending) else self.chunk_tokens):
                yield pending
                pending = []
            if idx == options.max_tokens - 1:
                break
            logits = np.asarray(self.kv.step(picked.token, p_len + idx, kv_len)).reshape(-1)
            kv_len += 1
        if pending:
            yield pending
        elapsed = time.perf_counter() - started
        _LOGGER.info(
            "gpt decode done tokens=%d stop=%s prefill_ms=%.1f step_ms=%.2f",
            count, stop_reason, prefill_s * 1e3, (elapsed - prefill_s) * 1e3 / max(count, 1),
        )

    def _pick(
        self, row: np.ndarray, seen: np.ndarray, options: SynthesisOptions, greedy: bool, rng: np.random.Generator
    ) -> SampledToken:
        """`seen`: the boolean mask of the distinct previous tokens (prompt + generated) the penalty applies to."""
        if greedy:
            return greedy_token(row, seen, repetition_penalty=options.repetition_penalty)
        return sample_token(
            row,
            seen,
            top_k=options.top_k,
            top_p=options.top_p,
            temperature=options.temperature,
            repetition_penalty=options.repetition_penalty,
            noise=exponential_noise(rng, row.shape[0]),
        )
