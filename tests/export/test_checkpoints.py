"""Loading the official file formats, and the one clear error each bad file gets."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from export.build import BuildConfig, load_models  # noqa: E402
from export.checkpoints import HParams, load_gpt_checkpoint, load_sovits_checkpoint  # noqa: E402
from export.errors import CheckpointError  # noqa: E402
from export.testing import write_gpt_checkpoint, write_sovits_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {"gpt": write_gpt_checkpoint(root / "g.ckpt"), "sovits": write_sovits_checkpoint(root / "s.pth"), "root": root}


def test_sovits_config_is_pickled_as_official_utils_hparams(files):
    data = files["sovits"].read_bytes()
    assert data[:2] == b"PK"
    import zipfile, io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        pickle_bytes = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"utils\nHParams" in pickle_bytes or b"utils" in pickle_bytes and b"HParams" in pickle_bytes


def test_gpt_checkpoint_loads_with_prefix_stripped_and_fp16_widened(files):
    ckpt = load_gpt_checkpoint(files["gpt"])
    assert "ar_predict_layer.weight" in ckpt.state_dict
    assert all(not k.startswith("model.") for k in ckpt.state_dict)
    assert ckpt.state_dict["ar_predict_layer.weight"].dtype == torch.float32
    assert ckpt.config["model"]["EOS"] == 1024 and ckpt.info.startswith("GPT-e")


def test_sovits_checkpoint_loads_without_official_code(files):
    ckpt = load_sovits_checkpoint(files["sovits"])
    assert ckpt.version == "v2"
    assert ckpt.hparams["data"]["sampling_rate"] == 32000
    assert not any("enc_q" in k for k in ckpt.state_dict)


@pytest.mark.parametrize("header,accepted", [(b"01", True), (b"05", False), (b"06", False), (b"03", False)])
def test_version_marker_header_bytes(files, header, accepted):
    path = write_sovits_checkpoint(files["root"] / f"h{header.decode()}.pth", header=header)
    if accepted:
        assert load_sovits_checkpoint(path).version == "v2"
    else:
        with pytest.raises(CheckpointError, match="exports v2 only"):
            load_sovits_checkpoint(path)


def test_truncated_file_is_named(files):
    bad = files["root"] / "cut.pth"
    bad.write_bytes(files["sovits"].read_bytes()[:4096])
    with pytest.raises(CheckpointError, match=r"cut\.pth is truncated"):
        load_sovits_checkpoint(bad)


def test_swapped_files_are_named(files):
    with pytest.raises(CheckpointError, match="GPT .ckpt passed as --sovits"):
        load_sovits_checkpoint(files["gpt"])
    with pytest.raises(CheckpointError, match="SoVITS .pth"):
        load_gpt_checkpoint(files["sovits"])


def test_missing_file_and_directory(files):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_gpt_checkpoint(files["root"] / "nope.ckpt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_gpt_checkpoint(files["root"])


def _rewrite(path, mutate):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    mutate(obj)
    torch.save(obj, path)


def test_missing_key_names_the_first_one(files, tmp_path):
    path = write_gpt_checkpoint(tmp_path / "g.ckpt")
    _rewrite(path, lambda o: o["weight"].pop("model.h.layers.1.linear2.bias"))
    config = BuildConfig(gpt_path=path, sovits_path=files["sovits"], out_dir=tmp_path / "b")
    with pytest.raises(CheckpointError, match=r"g\.ckpt: GPT key 'h\.layers\.1\.linear2\.bias' .* is missing"):
        load_models(config)


def test_wrong_shape_names_key_and_shapes(files, tmp_path):
    path = write_gpt_checkpoint(tmp_path / "g.ckpt")

    def widen(o):
        o["weight"]["model.bert_proj.bias"] = torch.zeros(65, dtype=torch.float16)

    _rewrite(path, widen)
    config = BuildConfig(gpt_path=path, sovits_path=files["sovits"], out_dir=tmp_path / "b")
    with pytest.raises(CheckpointError, match=r"'bert_proj\.bias' has shape \[65\], the config implies \[64\]"):
        load_models(config)


def test_hparams_stand_in_gives_item_and_attribute_access():
    hp = HParams()
    hp.__dict__.update({"model": HParams(), "x": 1})
    hp.model.__dict__["gin_channels"] = 512
    assert hp["x"] == 1 and hp.to_dict() == {"model": {"gin_channels": 512}, "x": 1}
