"""`skyvoice build --precision int8` on tiny official-format checkpoints: smaller graphs, fidelity recorded, still speaks."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from export.build import BuildConfig, Progress, build_bundle  # noqa: E402
from export.errors import ExportError  # noqa: E402


@pytest.fixture(scope="module")
def int8_bundle(tiny_checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "bundle"
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out,
                         precision="int8", kv_capacity=512)
    return build_bundle(config, Progress(enabled=False))


def test_int8_bundle_records_precision_and_fidelity(int8_bundle, tiny_bundle):
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    fp32 = json.loads((tiny_bundle / "manifest.json").read_text())
    for graph in ("gpt_prefill", "gpt_decode_step", "sovits_decoder"):
        entry = manifest["graphs"][graph]
        assert entry["precision"] in ("int8", "int8_dynamic"), graph
        assert "fidelity" in entry and entry["fidelity"]["precision"] == entry["precision"]
    assert manifest["graphs"]["ref_encoder"]["precision"] == "fp32"
    report = json.loads((int8_bundle / "fidelity.json").read_text())
    assert "not a quality claim" in report["note"]
    shrunk = manifest["files"]["graphs/sovits_decoder.onnx"]["size"] / fp32["files"]["graphs/sovits_decoder.onnx"]["size"]
    assert shrunk < 0.5


def test_int8_bundle_speaks_close_to_fp32(int8_bundle, tiny_bundle):
    import shutil

    from runtime.synth.synthesizer import SynthesisOptions
    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    shutil.copytree(tiny_bundle / "voices", int8_bundle / "voices", dirs_exist_ok=True)
    ids = parse_phones("n i3 h ao3 .")
    options = SynthesisOptions(seed=2, max_tokens=30, noise_scale=0.0, stream=False)
    audio = {}
    for name, bundle in (("fp32", tiny_bundle), ("int8", int8_bundle)):
        audio[name] = np.concatenate([c.samples for c in load_synthesizer(bundle).synthesize_phones(ids, voice="test", options=options)])
    assert audio["int8"].size > 0 and np.abs(audio["int8"]).max() > 0.01


def test_cpu_target_int8_bundle_picks_cpu_forms_and_speaks(tiny_checkpoints, tiny_bundle, tmp_path):
    """`--target cpu`: the GPT graphs share one INT8 form, the decoder is one of the three static INT8 forms (the
    faster of those inside the gate, measured here), and the bundle speaks."""
    import shutil

    from runtime.synth.synthesizer import SynthesisOptions
    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    out = tmp_path / "bundle"
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out,
                         precision="int8", kv_capacity=512, target="cpu")
    build_bundle(config, Progress(enabled=False))
    graphs = json.loads((out / "manifest.json").read_text())["graphs"]
    assert graphs["sovits_decoder"]["precision"] in ("int8", "int8_cpu", "int8_cpu_residual")
    assert graphs["gpt_decode_step"]["precision"] in ("int8", "int8_dynamic", "int8_block", "int8_column")
    if graphs["gpt_decode_step"]["precision"] != "int8":  # a CPU form: the prefill shares it (one weights file)
        assert graphs["gpt_prefill"]["precision"] == graphs["gpt_decode_step"]["precision"]
    shutil.copytree(tiny_bundle / "voices", out / "voices", dirs_exist_ok=True)
    options = SynthesisOptions(seed=2, max_tokens=30, noise_scale=0.0, stream=False)
    chunks = load_synthesizer(out).synthesize_phones(parse_phones("n i3 h ao3 ."), voice="test", options=options)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.size > 0 and np.isfinite(audio).all()


def test_forced_int8_ships_the_int8_form_nearest_to_fp32():
    """`--precision int8` with every INT8 form outside the gate: the least-error form ships, not a fixed one."""
    from export.fidelity import FidelityResult
    from export.precision import _closest

    results = [
        FidelityResult("gpt_decode_step", "int8", "gpt", {"token_agreement": 0.90, "logit_rel_rms": 0.048}, False),
        FidelityResult("gpt_decode_step", "int8_dynamic", "gpt", {"token_agreement": 0.967, "logit_rel_rms": 0.019}, False),
        FidelityResult("sovits_decoder", "int8", "decoder", {"snr_db_min": 18.0, "log_mel_db": 1.5}, False),
        FidelityResult("sovits_decoder", "int8_cpu", "decoder", {"snr_db_min": 21.0, "log_mel_db": 1.1}, False),
    ]
    assert _closest("gpt_decode_step", "int8", results) == "int8_dynamic"
    assert _closest("sovits_decoder", "int8", results) == "int8_cpu"
    assert _closest("gpt_prefill", "int8", results) == "int8"  # nothing measured: the family's plain form


@pytest.mark.parametrize(("form", "decoder_form"), [("int8_dynamic", "int8_cpu_residual"), ("int8_column", "int8_cpu")])
def test_named_cpu_forms_are_the_ones_the_bundle_ships(tiny_checkpoints, tiny_bundle, tmp_path, form, decoder_form):
    """`--gpt-cpu-form FORM` and `--decoder-cpu-form FORM` (a box whose CPU differs from the build machine's): both GPT
    graphs take the GPT form and the decoder its form, each the only one the gate measures, shipped with --precision
    int8 whatever the build machine's timing says, and the bundle speaks. `int8_column` stores the weights once: the
    decode step's views of them are listed beside it."""
    import shutil

    from runtime.bundle.build_choices import DECODER_CPU_FORMS, GPT_CPU_FORMS
    from runtime.synth.synthesizer import SynthesisOptions
    from runtime.synth.voice_engine import load_synthesizer
    from runtime.text.symbols import parse_phones

    out = tmp_path / "bundle"
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=out,
                         precision="int8", kv_capacity=512, target="cpu", gpt_cpu_form=form, decoder_cpu_form=decoder_form)
    build_bundle(config, Progress(enabled=False))
    manifest = json.loads((out / "manifest.json").read_text())
    graphs = manifest["graphs"]
    assert graphs["gpt_decode_step"]["precision"] == graphs["gpt_prefill"]["precision"] == form
    assert graphs["sovits_decoder"]["precision"] == decoder_form
    fidelity = json.loads((out / "fidelity.json").read_text())["graphs"]
    measured = fidelity["gpt_decode_step"]["precisions"]
    assert form in measured and not any(other in measured for other in GPT_CPU_FORMS if other != form)
    assert set(fidelity["sovits_decoder"]["precisions"]) - {"fp32"} == {decoder_form}
    assert ("graphs/gpt_decode_step.weight_views.json" in manifest["files"]) == (form == "int8_column")
    shutil.copytree(tiny_bundle / "voices", out / "voices", dirs_exist_ok=True)
    options = SynthesisOptions(seed=2, max_tokens=30, noise_scale=0.0, stream=False)
    chunks = load_synthesizer(out).synthesize_phones(parse_phones("n i3 h ao3 ."), voice="test", options=options)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.size > 0 and np.isfinite(audio).all()


@pytest.mark.parametrize(("target", "precision"), [("jetson", "int8"), ("cpu", "fp16"), ("cpu", "fp32")])
@pytest.mark.parametrize(("field", "flag", "form"), [("gpt_cpu_form", "--gpt-cpu-form", "int8_block"),
                                                     ("decoder_cpu_form", "--decoder-cpu-form", "int8_cpu_residual")])
def test_named_cpu_form_needs_a_cpu_int8_build(tiny_checkpoints, tmp_path, target, precision, field, flag, form):
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=tmp_path / "b",
                         precision=precision, target=target, **{field: form})
    with pytest.raises(ExportError, match=f"{flag} {form} needs --target cpu"):
        build_bundle(config, Progress(enabled=False))
    assert not (tmp_path / "b").exists()


def test_an_unknown_decoder_cpu_form_is_refused(tiny_checkpoints, tmp_path):
    config = BuildConfig(gpt_path=tiny_checkpoints["gpt"], sovits_path=tiny_checkpoints["sovits"], out_dir=tmp_path / "b",
                         precision="int8", target="cpu", decoder_cpu_form="int4")
    with pytest.raises(ExportError, match="--decoder-cpu-form 'int4' is not one of auto, int8_cpu, int8_cpu_residual"):
        build_bundle(config, Progress(enabled=False))


def _result(graph, precision, passed, failures=(), **metrics):
    from export.fidelity import FidelityResult

    return FidelityResult(graph, precision, "gpt", metrics, passed, tuple(failures))


def test_failed_checks_are_the_failure_names_without_their_values():
    from export.fidelity import failed_checks

    result = _result("g", "int8", False, ("token agreement 0.951 < 0.98", "logit rel RMS 0.0612 > 0.05", "SNR -3.0 dB < 25.0 dB"))
    assert failed_checks(result) == {"token agreement", "logit rel RMS", "SNR"}


def test_cpu_race_is_between_passing_forms_or_between_forms_the_gate_judged_alike():
    """Forms that passed race FP32; when none passed and INT8 was forced, only the forms that failed the same checks
    as the nearest one race (never FP32, never a form that failed more)."""
    from export.precision import _racers

    variants = {m: f"{m}.onnx" for m in ("fp32", "int8", "int8_dynamic", "int8_block")}
    agreement = "token agreement 0.95 < 0.98"
    passing = [_result("gpt_decode_step", "fp32", True), _result("gpt_decode_step", "int8", False, (agreement,)),
               _result("gpt_decode_step", "int8_dynamic", True), _result("gpt_decode_step", "int8_block", True)]
    assert _racers("gpt_decode_step", "int8_block", passing, variants) == ["fp32", "int8_dynamic", "int8_block"]
    failing = [_result("gpt_decode_step", "fp32", True),
               _result("gpt_decode_step", "int8", False, (agreement, "logit rel RMS 0.06 > 0.05")),
               _result("gpt_decode_step", "int8_dynamic", False, ("token agreement 0.934 < 0.98",)),
               _result("gpt_decode_step", "int8_block", False, ("token agreement 0.951 < 0.98",))]
    assert _racers("gpt_decode_step", "int8_block", failing, variants) == ["int8_dynamic", "int8_block"]
    assert _racers("gpt_decode_step", "int8", failing, variants) == ["int8"]  # nothing else failed just as it did


def test_gpt_form_race_times_a_sentence_not_a_step(monkeypatch):
    """The GPT's form is picked by prefill + SENTENCE_TOKENS steps, the step timed on the runtime's decode-step threads:
    a form with the faster step but a much slower prefill loses."""
    from export import precision
    from runtime.synth.voice_engine import decode_step_threads

    times = {"prefill.block": 440.0, "step.block": 10.0, "prefill.dynamic": 100.0, "step.dynamic": 13.0,
             "prefill.fp32": 330.0, "step.fp32": 27.0}
    threads_seen = {}

    def fake_time(path, feeds, repeats=5, threads=0):
        threads_seen[path] = threads
        return times[path]

    monkeypatch.setattr(precision, "time_graph_ms", fake_time)
    variants = {"gpt_prefill": {"fp32": "prefill.fp32", "int8_block": "prefill.block", "int8_dynamic": "prefill.dynamic"},
                "gpt_decode_step": {"fp32": "step.fp32", "int8_block": "step.block", "int8_dynamic": "step.dynamic"}}
    feeds = {"gpt_prefill": [{}], "gpt_decode_step": [{}]}
    best, timings = precision._fastest_gpt_form(["fp32", "int8_block", "int8_dynamic"], variants, feeds,
                                                passed_prefill={"fp32", "int8_block", "int8_dynamic"}, forced=False)
    n = precision.SENTENCE_TOKENS
    assert timings == {"fp32": 330 + n * 27.0, "int8_block": 440 + n * 10.0, "int8_dynamic": 100 + n * 13.0}
    assert best == "int8_dynamic"
    assert threads_seen["step.block"] == decode_step_threads() and threads_seen["prefill.block"] == 0
    # a prefill form that neither passed nor was forced is timed as the FP32 prefill it would ship with
    _, timings = precision._fastest_gpt_form(["int8_dynamic"], variants, feeds, passed_prefill={"fp32"}, forced=False)
    assert timings == {"int8_dynamic": 330 + n * 13.0}


def test_the_prefill_shares_the_steps_form_or_follows_a_step_the_race_put_in_fp32():
    from export.precision import prefill_form

    variants = {m: f"{m}.onnx" for m in ("fp32", "int8", "int8_dynamic", "int8_block")}
    # the step's CPU form, where the prefill may take it: one quantized copy of the GPT for both graphs
    assert prefill_form("int8_dynamic", "int8", variants, may_share=True, step_raced=True) == "int8_dynamic"
    assert prefill_form("int8_dynamic", "int8", variants, may_share=False, step_raced=True) == "int8"
    # the race timed an FP32 step with an FP32 prefill: ship that pair (not FP32 + a passing INT8 prefill)
    assert prefill_form("fp32", "int8_dynamic", variants, may_share=True, step_raced=True) == "fp32"
    # no race (a Jetson bundle, or nothing else was eligible): the prefill keeps its own gate's choice
    assert prefill_form("fp32", "int8", variants, may_share=True, step_raced=False) == "int8"
    assert prefill_form("int8", "int8", variants, may_share=True, step_raced=False) == "int8"
