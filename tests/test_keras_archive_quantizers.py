"""Quantizer configs written by QKeras releases newer than 0.9, read as data.

tests/data/keras3/ holds archives that Keras 3.15 + qkeras-v3 1.2.1 saved (scripts/make_keras3_archive.py,
run in .venv-keras3 from scripts/setup_keras3.sh): every quantized_bits has ``post_training_scale``
(null, or on the first kernel the frozen auto_po2 scale), and the ``_all_arguments`` copy also has the
newer arguments no ``get_config`` writes (elements_per_scale, min/max_po2_exponent, enable_fast_inference)
at values that do not change the arithmetic. The reader (QKeras 0.9) drops those and refuses, in one line
naming the layer, the quantizer and the argument, those that change it.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TESTS, assert_certified, build_and_verify
from trigger.errors import ModelError

DATA = TESTS / "data" / "keras3"
ARCHIVE = DATA / "qkeras_v3.keras"
ALL_ARGUMENTS = DATA / "qkeras_v3_all_arguments.keras"
EXPECTED = DATA / "qkeras_v3_expected.json"
VECTORS = 2000
# The first layer's kernel is alpha="auto_po2": hls4ml scales the dense output by its power-of-two
# alpha into the default result type (ap_fixed<16,6>, 10 fractional bits). Inputs with 3 fractional
# bits keep every scaled product inside that type, so QKeras and the firmware agree bit for bit.
INPUT_PRECISION = "fixed<6,3>"


def _edited(target: Path, edit, source: Path = ARCHIVE) -> Path:
    """A copy of an archive whose config.json was changed by ``edit({layer name: layer config})``."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit({layer["config"]["name"]: layer["config"] for layer in config["config"]["layers"]})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def _quantizers(config: dict):
    for layer in config["config"]["layers"]:
        for key, value in layer["config"].items():
            if isinstance(value, dict) and value.get("class_name") in ("quantized_bits", "quantized_relu"):
                yield layer["config"]["name"], key, value


# ------------------------------------------------------------------ the table
@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_table_lists_exactly_the_arguments_of_the_installed_qkeras():
    from qkeras import quantizers

    from trigger.frontends.keras import NEWER_ARGUMENTS, QKERAS09_ARGUMENTS

    for cls, known in QKERAS09_ARGUMENTS.items():
        params = list(inspect.signature(getattr(quantizers, cls).__init__).parameters)[1:]
        assert tuple(params) == known, cls
        assert not set(NEWER_ARGUMENTS[cls]) & set(known), cls


def test_committed_archives_are_as_keras3_and_newer_qkeras_wrote_them():
    with zipfile.ZipFile(ARCHIVE) as archive:
        assert set(archive.namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
        meta = json.loads(archive.read("metadata.json"))
        config = json.loads(archive.read("config.json"))
    assert meta["keras_version"].startswith("3.")
    bits = [(name, key, q) for name, key, q in _quantizers(config) if q["class_name"] == "quantized_bits"]
    assert len(bits) == 6 and all("post_training_scale" in q["config"] for _, _, q in bits)
    assert all(q["registered_name"] == "qkeras>quantized_bits" for _, _, q in bits)
    scales = {(name, key): q["config"]["post_training_scale"] for name, key, q in bits}
    assert scales.pop(("d1", "kernel_quantizer")) == json.loads(EXPECTED.read_text())["post_training_scale"]
    assert set(scales.values()) == {None}
    with zipfile.ZipFile(ALL_ARGUMENTS) as archive:
        config = json.loads(archive.read("config.json"))
    for _, _, q in _quantizers(config):
        extra = {"elements_per_scale", "min_po2_exponent", "max_po2_exponent"} \
            if q["class_name"] == "quantized_bits" else {"enable_fast_inference"}
        assert extra <= set(q["config"]), q


# ------------------------------------------------------------------ read as data: the same arithmetic
@pytest.mark.parametrize("archive", [ARCHIVE, ALL_ARGUMENTS], ids=["qkeras_v3", "all_arguments"])
def test_newer_archive_predicts_what_the_newer_qkeras_predicted(archive):
    """QKeras 0.9, given the archive read as data, equals qkeras-v3's own predictions bit for bit."""
    from trigger.frontends.keras import load_model

    expected = json.loads(EXPECTED.read_text())
    loaded = load_model(archive)
    assert loaded.quantized and [c for _, c in loaded.layers] == ["QDense", "QActivation"] * 2 + ["QDense"]
    got = loaded.keras.predict(np.asarray(expected["inputs"], dtype=np.float32), verbose=0)
    assert np.array_equal(np.asarray(got, dtype=np.float64), np.asarray(expected["outputs"]))
    kernel = loaded.keras.get_layer("d1").kernel_quantizer_internal
    assert kernel.alpha == "auto_po2" and not hasattr(kernel, "post_training_scale")


def test_archive_without_the_scale_is_the_same_model(tmp_path):
    """Dropping post_training_scale is right because QKeras 0.9's auto_po2 gives the same weights."""
    from trigger.frontends.keras import load_model

    plain = _edited(tmp_path / "plain.keras",
                    lambda layers: layers["d1"]["kernel_quantizer"]["config"].update(post_training_scale=None))
    a, b = load_model(ARCHIVE).keras, load_model(plain).keras
    x = np.asarray(json.loads(EXPECTED.read_text())["inputs"], dtype=np.float32)
    assert np.array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


# ------------------------------------------------------------------ arguments that change the arithmetic
def _scale_doubled(layers):
    q = layers["d1"]["kernel_quantizer"]["config"]
    q["post_training_scale"] = (2 * np.asarray(q["post_training_scale"])).tolist()


CHANGING = {
    "scale_doubled": (_scale_doubled, "d1", "kernel_quantizer", "post_training_scale",
                      "quantized weights differ"),
    "scale_with_alpha_1": (lambda layers: layers["d2"]["bias_quantizer"]["config"].update(post_training_scale=[1.0]),
                           "d2", "bias_quantizer", "post_training_scale", "alpha 'auto' or 'auto_po2'"),
    "min_po2_exponent": (lambda layers: layers["d1"]["kernel_quantizer"]["config"].update(min_po2_exponent=-2),
                         "d1", "kernel_quantizer", "min_po2_exponent", "auto_po2"),
    "elements_per_scale": (lambda layers: layers["d1"]["kernel_quantizer"]["config"].update(elements_per_scale=4),
                           "d1", "kernel_quantizer", "elements_per_scale", "auto_po2"),
    "fast_inference_negative_integer": (
        lambda layers: layers["r2"]["activation"]["config"].update(enable_fast_inference=True, integer=-1),
        "r2", "activation", "enable_fast_inference", "integer=-1"),
    "unknown": (lambda layers: layers["out"]["kernel_quantizer"]["config"].update(rounding_mode="floor"),
                "out", "kernel_quantizer", "rounding_mode", "unknown"),
}


@pytest.mark.parametrize("case", sorted(CHANGING))
def test_argument_that_changes_the_arithmetic_is_named(case, tmp_path):
    from trigger.frontends.keras import load_model

    edit, layer, key, argument, why = CHANGING[case]
    path = _edited(tmp_path / f"{case}.keras", edit)
    with pytest.raises(ModelError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: layer {layer!r} of type ")
    assert f": {key}: " in message and f" argument {argument}=" in message and why in message, message


def test_cli_refuses_a_changing_argument_in_one_line(tmp_path, capsys):
    from trigger.cli import main

    path = _edited(tmp_path / "doubled.keras", _scale_doubled)
    out = tmp_path / "out"
    assert main(["build", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"trigger build: error: {path}: layer 'd1' of type QDense: kernel_quantizer: "
                               "quantized_bits argument post_training_scale="), lines[0]
    assert "changes the arithmetic" in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------ the table on its own, and Keras 2 files
@pytest.mark.parametrize("quantizer, expected", [
    ("quantized_bits(6, 2, alpha=1, post_training_scale=None)", "quantized_bits(6, 2, alpha=1)"),
    ("quantized_relu(6, 2, enable_fast_inference=True)", "quantized_relu(6, 2)"),
    ("quantized_relu(6,2)", "quantized_relu(6,2)"),
    ({"class_name": "quantized_relu", "config": {"bits": 4, "integer": 0, "enable_fast_inference": False}},
     {"class_name": "quantized_relu", "config": {"bits": 4, "integer": 0}}),
])
def test_neutral_newer_arguments_are_dropped(quantizer, expected):
    from trigger.frontends.keras import qkeras09_quantizer

    assert qkeras09_quantizer(quantizer, "layer 'x'") == expected


@pytest.mark.parametrize("quantizer, argument", [
    ("quantized_bits(6, 2, alpha=1, post_training_scale=2)", "post_training_scale"),
    ("quantized_relu(6, 2, 0, 0.25, enable_fast_inference=True)", "enable_fast_inference"),
    ({"class_name": "quantized_bits", "config": {"bits": 6, "alpha": "auto_po2", "post_training_scale": [0.5]}},
     "post_training_scale"),  # no weight: an activation, whose scale QKeras 0.9 computes per batch
    ({"class_name": "quantized_relu", "config": {"bits": 6, "shift": 1}}, "shift"),
])
def test_changing_or_unknown_arguments_are_refused(quantizer, argument):
    from trigger.frontends.keras import qkeras09_quantizer

    with pytest.raises(ModelError, match=rf"^layer 'x': quantized_\w+ argument {argument}="):
        qkeras09_quantizer(quantizer, "layer 'x'")


def test_keras2_json_with_newer_arguments(reference_models, tmp_path):
    """A Keras 2 architecture written by a newer QKeras (google/qkeras master on tf.keras) loads the same."""
    from trigger.frontends.keras import load_model

    source = reference_models / "qkeras_3layer.json"
    config = json.loads(source.read_text())
    for layer in config["config"]["layers"]:
        for value in layer["config"].values():
            if isinstance(value, dict) and value.get("class_name") == "quantized_bits":
                value["config"]["post_training_scale"] = None
            elif isinstance(value, dict) and value.get("class_name") == "quantized_relu":
                value["config"]["enable_fast_inference"] = True
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(config))
    weights = str(reference_models / "qkeras_3layer_weights.h5")
    original, loaded = load_model(source), load_model({"json": str(newer), "weights": weights})
    x = np.random.default_rng(3).normal(0, 2, (200, 16)).astype(np.float32)
    assert np.array_equal(original.keras.predict(x, verbose=0), loaded.keras.predict(x, verbose=0))
    name = next(l["config"]["name"] for l in config["config"]["layers"] if l["class_name"] == "QDense")
    layer = next(l for l in config["config"]["layers"] if l["config"]["name"] == name)
    layer["config"]["kernel_quantizer"]["config"]["post_training_scale"] = [1.0]
    newer.write_text(json.dumps(config))
    with pytest.raises(ModelError, match=rf"layer {name!r} of type QDense: kernel_quantizer: quantized_bits "
                                         r"argument post_training_scale=\[1.0\] changes the arithmetic"):
        load_model({"json": str(newer), "weights": weights})


# ------------------------------------------------------------------ the whole flow
def _folder(tmp_path: Path, archive: Path) -> Path:
    """A model folder for ``archive``, named NAME whichever archive it is (see newer_bundles)."""
    import yaml

    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({
        "kind": "network", "name": NAME, "model": {"file": str(archive)},
        "hls": {"input_precision": INPUT_PRECISION}}))
    return tmp_path


NAME = "qkeras_v3"


@pytest.fixture(scope="module")
def newer_bundles(tmp_path_factory):
    """Both archives built and verified under one model name: the neutral arguments change nothing, so the second
    bundle's RTL and HLS firmware are the first's byte for byte (test_neutral_arguments_give_the_same_firmware) and
    its verification runs on the C simulation and Verilator model compiled for the first (cached by content)."""
    return {archive.stem: build_and_verify(_folder(tmp_path_factory.mktemp(archive.stem), archive),
                                           tmp_path_factory.mktemp("bundle") / archive.stem, "--vectors", str(VECTORS))
            for archive in (ARCHIVE, ALL_ARGUMENTS)}


@pytest.mark.slow
@pytest.mark.parametrize("name", [ARCHIVE.stem, ALL_ARGUMENTS.stem])
def test_newer_archive_builds_and_verifies_bit_exact(newer_bundles, name):
    bundle = newer_bundles[name]
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["framework"] == "qkeras" and source["exact"] is True
    assert source["vectors"] == source["equal"] == VECTORS and source["mismatches"] == 0
    assert source["max_deviation_lsb"] == 0 and bundle.verify["mismatches"]["source_vs_firmware"] == 0


@pytest.mark.slow
def test_neutral_arguments_give_the_same_firmware(newer_bundles):
    ops = [json.loads((b.path / "firmware_model.json").read_text())["ops"] for b in newer_bundles.values()]
    assert ops[0] == ops[1]
    assert [op["name"] for op in ops[0]] == ["d1", "d1_alpha", "r1", "d2", "r2", "out"]
    generated = [{rel: digest for rel, digest in b.manifest["files"].items()
                  if rel.startswith(("rtl/", "hls/firmware/"))} for b in newer_bundles.values()]
    assert generated[0] == generated[1] and any(rel.startswith("rtl/") for rel in generated[0])
