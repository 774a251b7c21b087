"""HGQ2 models read as data: per-element formats from the stored quantizers, exact against HGQ2 itself.

tests/data/hgq2/ holds five small HGQ2 models that Keras 3.15 + HGQ2 0.2 trained and saved
(scripts/make_hgq2_models.py in .venv-hgq2, scripts/setup_hgq2.sh), with HGQ2's own quantized weights and
predictions on 200 held-out events. Nothing here imports HGQ2 or Keras 3: the archives are read with json
and h5py, converted through hls4ml's bit-exact flow from a Keras 2 proxy, and the firmware must give
HGQ2's numbers, integer for integer.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TESTS, OnFirstUse, assert_certified, build_and_verify
from trigger.errors import ModelError

DATA = TESTS / "data" / "hgq2"
META = json.loads((DATA / "hgq2_expected.json").read_text())
MODELS = sorted(META["models"])
VECTORS = 2000


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "hgq2_expected.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def converted():
    """Each model read and converted once (hls4ml's conversion, no project written)."""
    from trigger.frontends import hgq2, network

    out = {}
    for name in MODELS:
        model = hgq2.read_model(DATA / META["models"][name]["file"])
        out[name] = (model, *hgq2.convert(model, network.settings({}), network.unwritten_project_dir(name)))
    return out


def test_committed_files_say_who_wrote_them():
    assert META["writer"]["hgq2"] == "0.2.0" and META["writer"]["keras"].startswith("3.")
    assert MODELS == ["hgq2_conv2d", "hgq2_einsum", "hgq2_jet_tagger", "hgq2_merge", "hgq2_pool"]
    readme = (DATA / "README.md").read_text()
    assert "make_hgq2_models.py" in readme and "0.2.0" in readme


@pytest.mark.parametrize("name", MODELS)
def test_quantized_weights_are_hgq2s(converted, expected, name):
    """Kernels and biases through the stored quantizers (per weight bits, HGQ2's float32 formulas), equal to
    HGQ2's own ``qkernel``/``qbias``, batch norm folded in first where the layer is QBatchNormDense."""
    model = converted[name][0]
    weighted = [layer for layer in model.layers if layer.kernel is not None]
    assert weighted
    for layer in weighted:
        assert np.array_equal(layer.kernel, expected[f"{name}/{layer.name}/qkernel"]), layer.name
        assert np.array_equal(layer.bias, expected[f"{name}/{layer.name}/qbias"]), layer.name
    if name == "hgq2_merge":
        assert [layer.cls for layer in model.layers] == ["QBatchNormDense", "QDense", "QAdd", "QDense"]
    if name == "hgq2_einsum":  # the same dense on each of 16 items: the firmware's item_dense
        assert model.layers[0].cls == "QEinsumDense" and model.layers[0].shape == (16, 8)


@pytest.mark.parametrize("name", MODELS)
def test_hgq2_arithmetic_replayed_from_the_archive(converted, expected, name):
    model = converted[name][0]
    x, y = expected[f"{name}/inputs"], expected[f"{name}/outputs"]
    got = model.predict_flat(x.reshape(len(x), -1))
    assert np.array_equal(got, y.reshape(len(y), -1).astype(np.float64))


@pytest.mark.parametrize("name", MODELS)
def test_firmware_equals_hgq2_on_its_stored_inputs(converted, expected, name):
    """The source witness on HGQ2's own numbers: the firmware (events quantized to the input port) gives
    HGQ2's predictions as equal raw integers on every stored event."""
    from trigger.ir.model import emulate

    _, _, fw = converted[name]
    x, y = expected[f"{name}/inputs"], expected[f"{name}/outputs"]
    y = y.reshape(len(y), -1).astype(np.float64)
    want = fw.output.quantize(y)
    assert np.array_equal(fw.output.to_float(want), y)  # HGQ2's outputs are on the firmware's output grid
    got = emulate(fw, fw.input.quantize(x.reshape(len(x), -1))).outputs
    assert got.shape == want.shape == (META["models"][name]["probe_events"], fw.output.n)
    assert int(np.sum(np.any(got != want, axis=1))) == 0


@pytest.mark.parametrize("name", MODELS)
def test_per_element_formats_reach_the_firmware(converted, name):
    """Every input quantizer is an element_quantize op whose formats are the stored ones, element by element."""
    model, _, fw = converted[name]
    ops = {op.name: op for op in fw.ops}
    for layer in model.layers:
        for j, (q, source) in enumerate(zip(layer.iq, layer.sources)):
            op = ops[f"{layer.name}_iq{'' if len(layer.iq) == 1 else j}"]
            shape = model.inputs[0][1] if source == model.inputs[0][0] else \
                next(l.shape for l in model.layers if l.name == source)
            want = [None if f is None else f.cpp for f in q.formats(tuple(shape))]
            assert op.kind == "element_quantize" and op.element_formats == want
    widths = {f for op in fw.ops if op.kind == "element_quantize" for f in op.element_formats}
    assert len(widths) > 3  # heterogeneous: many formats, not one per layer


def test_python_api_predicts_hgq2s_numbers_and_compares_every_quantizer(expected):
    """trigger.convert on an HGQ2 archive: predict gives HGQ2's outputs; compare finds every quantizer's
    output (a firmware op each) equal to HGQ2's, value for value."""
    import trigger

    design = trigger.convert(DATA / "hgq2_merge.keras", vectors=300)
    x, y = expected["hgq2_merge/inputs"], expected["hgq2_merge/outputs"]
    assert np.array_equal(design.predict(x), y.astype(np.float64))
    comparison = design.compare(x)
    assert comparison["framework"] == "hgq2" and comparison["exact"] is True and comparison["all_equal"] is True
    quantizers = [row for row in comparison["layers"] if row["class"] == "Quantizer"]
    assert [row["layer"] for row in quantizers] == ["bn_dense_iq", "dense_iq", "add_iq0", "add_iq1", "output_iq"]
    assert all(row["equal"] == row["values"] > 0 for row in quantizers)


def test_plain_keras_archive_still_goes_to_the_network_frontend():
    from trigger.frontends import FILE_FRONTENDS
    from trigger.frontends.hgq2 import is_hgq2_archive

    assert FILE_FRONTENDS[".keras"] == "trigger.frontends.hgq2:design_from_keras_file"
    assert not is_hgq2_archive(TESTS / "data" / "keras3" / "qkeras_v3.keras")
    assert all(is_hgq2_archive(DATA / META["models"][n]["file"]) for n in MODELS)


def test_builtin_example_is_an_hgq2_design():
    """models/jet_tagger_hgq2: three resource targets written by HGQ2, the medium one built by default with the
    example's settings; the source witness exact."""
    from trigger.frontends import BuildOptions, load_design

    folder = TESTS.parent / "models" / "jet_tagger_hgq2"
    example = json.loads((folder / "example.json").read_text())
    assert list(example["targets"]) == ["small", "medium", "large"]
    ebops = [t["ebops"] for t in example["targets"].values()]
    assert ebops == sorted(ebops) and all((folder / t["file"]).exists() for t in example["targets"].values())
    design = load_design(folder, BuildOptions(vectors=500))
    assert design.model.name == "jet_tagger_hgq2" and design.clock_period_ns == 5.0
    assert design.manifest["source_model"]["framework"] == "hgq2" and design.manifest["source_model"]["exact"]
    assert sum(op.kind == "element_quantize" for op in design.model.ops) == 4


# ------------------------------------------------------------------ refusals: one line naming layer and field
def _edited(target: Path, edit, source: str = "hgq2_jet_tagger") -> Path:
    """A copy of an archive whose config.json was changed by ``edit({layer name: layer entry})``."""
    with zipfile.ZipFile(DATA / META["models"][source]["file"]) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    edit({layer["config"]["name"]: layer for layer in config["config"]["layers"]})
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for n, data in members.items():
            archive.writestr(n, data)
    return target


def _set(layer: str, path: tuple, value):
    def edit(layers):
        node = layers[layer]["config"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


REFUSALS = [
    (_set("fc2", ("iq_conf", "config", "q_type"), "float"), "'fc2' (QDense): iq_conf: q_type 'float'"),
    (_set("fc1", ("kq_conf", "config", "scaler"), 2.0), "'fc1' (QDense): kq_conf: scaler=2.0"),
    (_set("fc1", ("iq_conf", "config", "affine"), [1.0, 0.5]), "'fc1' (QDense): iq_conf: affine=[1.0, 0.5]"),
    (_set("fc3", ("iq_conf", "config", "overflow_mode"), "WRAP_SM"),
     "'fc3' (QDense): iq_conf: overflow_mode 'WRAP_SM'"),
    (_set("fc3", ("bq_conf", "config", "shiny"), 1), "'fc3' (QDense): bq_conf: quantizer option shiny=1"),
    (_set("output", ("activation",), "tanh"), "'output' (QDense): activation \"tanh\""),
    (_set("fc1", ("kernel_size",), 3), "'fc1' (QDense): option kernel_size=3"),
    (_set("fc2", ("iq_conf", "config", "round_mode"), "RND_SOMETIMES"), "'fc2' (QDense): iq_conf: round_mode"),
    (_set("fc2", ("dtype",), "mixed_float16"), "'fc2' (QDense): dtype policy \"mixed_float16\""),
    (_set("fc1", ("quantization_config",), {"mode": "int8"}), "'fc1' (QDense): quantization_config="),
]


@pytest.mark.parametrize("edit, message", REFUSALS, ids=[m.split(":")[0] + m.split(":")[-1][:20] for _, m in REFUSALS])
def test_what_is_not_understood_is_refused_by_layer_and_field(tmp_path, edit, message):
    from trigger.frontends.hgq2 import read_model

    with pytest.raises(ModelError) as err:
        read_model(_edited(tmp_path / "edited.keras", edit))
    text = str(err.value)
    assert message in text and "\n" not in text, text


@pytest.mark.parametrize("equation", ["abc,cd->acd", "abc,dc->abd", "ab,bc->ac", "abc,cde->abde"])
def test_einsum_that_is_not_a_dense_on_the_last_axis_is_refused(tmp_path, equation):
    from trigger.frontends.hgq2 import read_model

    edit = _set("phi", ("equation",), equation)
    with pytest.raises(ModelError, match=rf"layer 'phi' \(QEinsumDense\): equation '{equation}'"):
        read_model(_edited(tmp_path / "edited.keras", edit, "hgq2_einsum"))


def test_max_pooling_with_padding_is_refused(tmp_path):
    from trigger.frontends.hgq2 import read_model

    with pytest.raises(ModelError, match=r"layer 'pool' \(QMaxPooling2D\): padding 'same' is not supported"):
        read_model(_edited(tmp_path / "edited.keras", _set("pool", ("padding",), "same"), "hgq2_pool"))


def test_unsupported_layer_class_is_named(tmp_path):
    from trigger.frontends.hgq2 import read_model

    def edit(layers):
        layers["fc2"]["class_name"] = "QUnaryFunctionLUT"
    with pytest.raises(ModelError,
                       match=r"layer .fc2. \(QUnaryFunctionLUT\): layer class QUnaryFunctionLUT is not supported"):
        read_model(_edited(tmp_path / "edited.keras", edit))


def test_formats_are_the_models_not_settings():
    import trigger
    from trigger.errors import ConfigError

    for settings in ({"input_precision": "fixed<8,3>"}, {"precision": "fixed<8,3>"},
                     {"hls_precision": {"fc1": "fixed<8,3>"}}):
        with pytest.raises(ConfigError, match="does not apply to an HGQ2 model"):
            trigger.convert(DATA / "hgq2_jet_tagger.keras", vectors=100, **settings)


def test_cli_refuses_in_one_line(tmp_path, capsys):
    from trigger.cli import main

    bad = _edited(tmp_path / "bad.keras", _set("fc2", ("iq_conf", "config", "q_type"), "float"))
    assert main(["build", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 'fc2' (QDense): iq_conf: q_type 'float'" in err[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the whole flow
@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Each model built and verified once, when a test first asks for it."""
    return OnFirstUse(lambda name: build_and_verify(DATA / META["models"][name]["file"],
                                                    tmp_path_factory.mktemp("hgq2") / name, "--vectors", str(VECTORS)))


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_hgq2_model_verifies_three_ways_and_equals_hgq2(bundles, name):
    """emulator == C simulation == RTL, and HGQ2's arithmetic == firmware, on every stored vector."""
    bundle = bundles[name]
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    source = bundle.verify["source_model"]
    assert source["framework"] == "hgq2" and source["exact"] is True
    assert source["vectors"] == source["equal"] == VECTORS and source["mismatches"] == 0
    assert bundle.verify["mismatches"]["source_vs_firmware"] == 0
