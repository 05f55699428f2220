"""The neural voice: a bundle's graphs and voice packs → audio chunks (implements `Synthesizer`).

Per sentence (the frontend's cut5 split): target phones → GPT input = prompt phones + target phones (BERT features:
the voice pack's prompt BERT where present, zeros elsewhere, as the official code does without a BERT model) → semantic
tokens → SoVITS decoder on the target phones only → 32 kHz audio, with 0.3 s of silence between sentences
(the official `fragment_interval`). In streaming mode the audio of each sentence is produced in token chunks
(`runtime/synth/streaming.py`), so the first audio leaves long before the sentence is finished.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final, Iterator, Optional, Sequence

import numpy as np

from runtime.errors import SynthesisError
from runtime.synth.gpt_loop import BERT_DIM, GptDecoder
from runtime.synth.runner import GraphRunner, OrtRunner
from runtime.synth.synthesizer import AudioChunk, SynthesisOptions

_LOGGER = logging.getLogger(__name__)

FRAGMENT_INTERVAL_S: Final = 0.3
AUDIO_CHUNKS_AHEAD: Final = 64  # decoded pieces waiting for the player at most (bounds memory on long texts)
RUNTIME_GRAPHS: Final = ("gpt_prefill", "gpt_decode_step", "sovits_decoder")

RunnerFactory = Callable[[str, Path], GraphRunner]


# The decode step gets two intra-op threads (never more than the box has cores), without spinning. Each token is a
# chain of matrix-vector products over ~80 MB of INT8 weights and the cache; a second thread takes half of each
# product's rows. ORT's parallel loops are work-sharing: when the second core is busy with the decoder stage, the
# calling thread takes the rows itself, so the step never waits for a descheduled helper, and the decoder loses the
# core only for the moments the helper runs. Measured side by side on the 2-core Xeon VM (19:37 UTC, full-size INT8
# bundle, 2 rounds): 2 threads vs 1, decode step 10.5-11.1 vs 13.4-14.6 ms, end-to-end RTF 0.40-0.43 vs 0.45-0.53,
# first audio 413-483 vs 490-628 ms, streaming stalls 0-11 vs 24-454 ms. Spinning threads (SKYVOICE_ORT_SPIN=1) made
# the step alone faster still but the product slower (they hold the decoder's core).
DECODE_STEP_THREADS: Final = 2


def decode_step_threads() -> int:
    """DECODE_STEP_THREADS capped at the cores this process may use, or SKYVOICE_DECODE_STEP_THREADS."""
    value = os.environ.get("SKYVOICE_DECODE_STEP_THREADS")
    if value is None:
        return max(1, min(DECODE_STEP_THREADS, _usable_cores()))
    if not value.isdigit() or int(value) < 1:
        raise SynthesisError(f"SKYVOICE_DECODE_STEP_THREADS={value!r} must be a whole number of threads, 1 or more")
    return int(value)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def ort_runner_factory(threads: int = 0) -> RunnerFactory:
    """ONNX Runtime sessions with `threads` intra-op threads (0: all cores; then the decode step gets
    `decode_step_threads()`, the rest all cores)."""

    def make(name: str, path: Path) -> GraphRunner:
        count = decode_step_threads() if threads == 0 and name == "gpt_decode_step" else threads
        return OrtRunner(path, intra_op_threads=count)

    return make


def default_runner_factory(bundle_dir: Path, threads: int = 0) -> RunnerFactory:
    """TensorRT where an engine exists and its key matches (trt_runner.select_runner logs why not), else ORT."""
    ort = ort_runner_factory(threads)

    def make(name: str, path: Path) -> GraphRunner:
        engines = bundle_dir / "engines"
        if not any(engines.glob(f"{name}.engine")):
            return ort(name, path)
        from runtime.synth.trt_runner import select_runner

        return select_runner(path, engines, graph_name=name).runner

    return make


@dataclass
class Utterance:
    """What one sentence produced: its semantic tokens and audio (for --tokens-out and tests)."""

    text: str
    phone_ids: list[int]
    tokens: list[int]


class NeuralSynthesizer:
    """One bundle loaded: the GPT decoder and SoVITS decoder graphs, and its voice packs (loaded on first use)."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        *,
        runner_factory: Optional[RunnerFactory] = None,
        frontend=None,
        threads: int = 0,
    ) -> None:
        from runtime.bundle.manifest import read_manifest
        from runtime.synth.sovits_decoder import SovitsDecoder

        self.bundle_dir = Path(bundle_dir)
        self.manifest = read_manifest(self.bundle_dir)
        raw = self.manifest.raw
        try:
            gpt_meta, sovits_meta = raw["gpt"], raw["sovits"]
            files = {name: self.bundle_dir / raw["graphs"][name]["file"] for name in RUNTIME_GRAPHS}
        except KeyError as exc:
            raise SynthesisError(f"{self.bundle_dir}/manifest.json lacks {exc}; rebuild the bundle with 'skyvoice build'") from None
        from runtime.synth.runner import check_precision_supported

        for name in RUNTIME_GRAPHS:
            check_precision_supported(name, str(raw["graphs"][name].get("precision", "fp32")), self.bundle_dir)
        factory = runner_factory or default_runner_factory(self.bundle_dir, threads)
        self.threads = threads
        n_layer, d_model, n_head = int(gpt_meta["n_layer"]), int(gpt_meta["d_model"]), int(gpt_meta.get("n_head", 16))
        capacity = int(gpt_meta.get("kv_capacity", 2048))
        runners = {name: factory(name, path) for name, path in files.items() if name != "gpt_decode_step"}
        step, step_backend = self._decode_step(files["gpt_decode_step"], factory, runner_factory is None, n_layer, d_model, n_head, capacity)
        self.backends = {name: runner.backend for name, runner in runners.items()} | {"gpt_decode_step": step_backend}
        self.gpt = GptDecoder(
            runners["gpt_prefill"],
            step,
            n_layer=n_layer,
            d_model=d_model,
            capacity=capacity,
            static_cache=step_backend.startswith("tensorrt"),
            eos=int(gpt_meta.get("eos", 1024)),
            n_head=n_head,
        )
        self.decoder = SovitsDecoder(runners["sovits_decoder"])
        self.sample_rate_hz = int(sovits_meta["sample_rate_hz"])
        self.samples_per_token = int(sovits_meta.get("samples_per_token", 1280))
        self.default_top_k = int(gpt_meta.get("top_k", 15))
        self._frontend = frontend
        self.bert = None
        if "bert_zh" in raw["graphs"]:
            from runtime.text.bert_zh import ChineseBertFeatures

            self.bert = ChineseBertFeatures(self.bundle_dir / Path(raw["graphs"]["bert_zh"]["file"]).parent)
        self._voices: dict = {}
        self._lock = threading.Lock()
        _LOGGER.info("neural voice loaded bundle=%s backends=%s", self.bundle_dir, self.backends)

    def _decode_step(self, path: Path, factory: RunnerFactory, default: bool, n_layer: int, d_model: int, n_head: int, capacity: int):
        """A device-resident TensorRT decode step (KV cache on the GPU) when an engine matches, else the native CPU
        step when it can run the graph (`runtime.synth.native_step`), else a runner."""
        if default and any((self.bundle_dir / "engines").glob("gpt_decode_step.engine")):
            from runtime.synth.trt_runner import select_decode_step

            return select_decode_step(path, self.bundle_dir / "engines", n_layer=n_layer, d_model=d_model, n_head=n_head, capacity=capacity)
        if default:
            from runtime.synth.native_step import native_step_runner

            native = native_step_runner(path, n_head=n_head, threads=decode_step_threads() if self.threads == 0 else self.threads)
            if native is not None:
                return native, native.backend
        runner = factory("gpt_decode_step", path)
        return runner, runner.backend

    # ---- voices -------------------------------------------------------------------------------------------------
    def voice_names(self) -> list[str]:
        return sorted(p.stem for p in (self.bundle_dir / "voices").glob("*.npz"))

    def voice(self, name: Optional[str]):
        from runtime.synth.voice_pack import VoicePack

        names = self.voice_names()
        if name is None:
            if not names:
                raise SynthesisError(f"bundle {self.bundle_dir} has no voices; add one with 'skyvoice voice add'")
            name = names[0]
        if name not in self._voices:
            path = self.bundle_dir / "voices" / f"{name}.npz"
            if not path.is_file():
                raise SynthesisError(f"voice '{name}' is not in bundle {self.bundle_dir} (installed: {', '.join(names) or 'none'})")
            self._voices[name] = VoicePack.load(path)
        return self._voices[name]

    @property
    def frontend(self):
        if self._frontend is None:
            from runtime.text.frontend import TextFrontend

            g2pw = self.manifest.raw.get("frontend", {}).get("g2pw_dir")
            self._frontend = TextFrontend(g2pw_dir=self.bundle_dir / g2pw if g2pw else None)
        return self._frontend

    # ---- synthesis ----------------------------------------------------------------------------------------------
    def synthesize(
        self,
        text: str,
        *,
        voice: Optional[str] = None,
        lang: str = "auto",
        options: Optional[SynthesisOptions] = None,
        cancel: Optional[threading.Event] = None,
        utterances: Optional[list] = None,
    ) -> Iterator[AudioChunk]:
        """Text → audio chunks, sentence by sentence (`utterances`, if given, collects tokens per sentence)."""
        sentences = self.frontend.split_sentences(text, lang=lang)
        items = []
        for sentence in sentences:
            phonemes = self.frontend.phonemize(sentence, lang)
            bert = self.bert.phone_features(phonemes) if self.bert is not None and any(phonemes.is_zh_mask) else None
            items.append((sentence, list(phonemes.ids), bert))
        yield from self.synthesize_sentences(items, voice=voice, options=options, cancel=cancel, utterances=utterances)

    def synthesize_phones(
        self,
        phone_ids: Sequence[int],
        *,
        voice: Optional[str] = None,
        options: Optional[SynthesisOptions] = None,
        cancel: Optional[threading.Event] = None,
        utterances: Optional[list] = None,
    ) -> Iterator[AudioChunk]:
        """Symbol ids (e.g. from `--phones`) → audio chunks, as one sentence."""
        yield from self.synthesize_sentences([("", list(phone_ids), None)], voice=voice, options=options, cancel=cancel, utterances=utterances)

    def synthesize_sentences(
        self,
        items: Sequence[tuple[str, list[int], Optional[np.ndarray]]],
        *,
        voice: Optional[str],
        options: Optional[SynthesisOptions],
        cancel: Optional[threading.Event],
        utterances: Optional[list],
    ) -> Iterator[AudioChunk]:
        """(text, target phone ids, target BERT or None) per sentence → audio chunks, a silence after each sentence.

        Two pipelined stages, each in its own thread (`run_ahead`): the GPT generates tokens sentence after sentence,
        and the SoVITS decoder turns them into audio (token windows when streaming, whole sentences otherwise). So the
        next sentence's GPT runs while this one is decoded, and both run while the caller plays what it has.
        """
        from runtime.synth.run_ahead import run_ahead

        options = options or SynthesisOptions()
        pack = self.voice(voice)
        # Separate streams for GPT sampling and decoder noise: streamed and whole decoding give the same tokens.
        gpt_seed, noise_seed = np.random.SeedSequence(None if options.seed < 0 else options.seed).spawn(2)
        gpt_rng, noise_rng = np.random.default_rng(gpt_seed), np.random.default_rng(noise_seed)
        sentences = [(text, ids, bert) for text, ids, bert in items if ids]
        if not sentences:
            return
        with self._lock:
            tokens = run_ahead(lambda stop: self._token_events(pack, sentences, options, gpt_rng, stop), name="gpt-tokens", cancel=cancel)
            audio = run_ahead(
                lambda stop: self._audio_chunks(tokens, pack, sentences, options, noise_rng, stop, utterances),
                name="sovits-audio", max_ahead=AUDIO_CHUNKS_AHEAD, cancel=cancel,
            )
            try:
                yield from audio
            finally:
                audio.close()  # joins the decoder thread, which closes (and joins) the GPT stage

    def _token_events(self, pack, sentences, options: SynthesisOptions, rng, stop) -> Iterator[tuple[int, Optional[list[int]]]]:
        """(sentence index, new tokens) as the GPT makes them, then (index, None) when that sentence is complete."""
        from runtime.synth.streaming import FIRST_PIECE_TOKENS

        first = FIRST_PIECE_TOKENS if options.stream else None  # the streaming decoder's first piece leaves at once
        for index, (_text, target_ids, target_bert) in enumerate(sentences):
            phones, bert, prompt = self._gpt_inputs(pack, target_ids, target_bert)
            for chunk in self.gpt.generate(phones, bert, prompt, options, rng=rng, cancel=stop, first_chunk_tokens=first):
                yield index, chunk
            if stop.is_set():
                return
            yield index, None

    def _audio_chunks(self, token_events, pack, sentences, options: SynthesisOptions, noise_rng, stop, utterances) -> Iterator[AudioChunk]:
        from runtime.synth.streaming import StreamingDecoder, sentence_noise

        ge = np.asarray(pack.ge, dtype=np.float32).reshape(1, -1, 1)
        silence = np.zeros(int(FRAGMENT_INTERVAL_S * self.sample_rate_hz), dtype=np.float32)
        rate = self.sample_rate_hz
        index, tokens, stream, started = -1, [], None, time.monotonic()
        for event_index, chunk in token_events:
            if stop.is_set():
                return
            if event_index != index:  # a new sentence starts
                index, tokens, started = event_index, [], time.monotonic()
                target = np.asarray(sentences[index][1], dtype=np.int64)
                stream = StreamingDecoder(self.decoder, target, ge, options, noise_rng, samples_per_token=self.samples_per_token) if options.stream else None
            if chunk is not None:
                tokens.extend(chunk)
                if stream is not None:
                    audio = stream.push(chunk)
                    if audio.size:
                        yield AudioChunk(audio, rate, is_last=False)
                continue
            # the sentence's tokens are complete
            if stream is not None:
                tail = stream.finish()
                if tail.size:
                    yield AudioChunk(tail, rate, is_last=False)
            elif tokens:
                noise = sentence_noise(noise_rng, self.decoder.noise_channels, options.max_tokens, options.speed)
                audio = self.decoder.decode_with_noise(np.asarray(tokens, dtype=np.int64), target, ge, noise, options.noise_scale, options.speed)
                yield AudioChunk(audio, rate, is_last=False)
            if stop.is_set():
                return
            _LOGGER.info("sentence synthesized tokens=%d seconds=%.3f", len(tokens), time.monotonic() - started)
            if utterances is not None:
                utterances.append(Utterance(sentences[index][0], list(sentences[index][1]), list(tokens)))
            yield AudioChunk(silence, rate, is_last=index == len(sentences) - 1)

    @staticmethod
    def _gpt_inputs(pack, target_ids, target_bert) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GPT input = prompt phones + target phones; BERT rows are the pack's prompt BERT and the target's (Chinese
        segments), zeros elsewhere."""
        phones = np.concatenate([np.asarray(pack.prompt_phones, dtype=np.int64), np.asarray(target_ids, dtype=np.int64)])
        bert = np.zeros((phones.size, BERT_DIM), dtype=np.float32)
        if getattr(pack, "prompt_bert", None) is not None:
            bert[: len(pack.prompt_phones)] = np.asarray(pack.prompt_bert, dtype=np.float32)
        if target_bert is not None:
            bert[len(pack.prompt_phones):] = target_bert
        return phones, bert, np.asarray(pack.prompt_tokens, dtype=np.int64)


def load_synthesizer(bundle_dir: str | os.PathLike, **kwargs) -> NeuralSynthesizer:
    """The daemon's and the health check's entry point."""
    return NeuralSynthesizer(bundle_dir, **kwargs)
