"""Per-layer precision of float Keras models: trigger.yml ``hls.precision``, ``--hls-config`` (hls4ml's own
config_from_keras_model(granularity='name') output), unsigned inputs and a batch norm right after the input.

Each built model is verified 3-way (emulator == HLS C simulation == RTL) and its firmware model's formats are
compared with what was asked, layer by layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.helpers import CLEAN, assert_certified, build_and_verify, checked_counts
from tests.keras_cases import save_model

VECTORS = 2000

# Different result/accum/weight/bias per layer: a rounding + saturating result, a narrow (6-bit) weight, explicit
# accumulators that cannot overflow, an unsigned activation result, and the model-wide default for what is unset.
PER_LAYER = {
    "default": "fixed<18,7>",
    "fc1": {"weight": "fixed<6,1>", "bias": "fixed<8,3>", "accum": "fixed<24,10>", "result": "fixed<14,5,RND,SAT>"},
    "fc1_relu": {"result": "ufixed<10,4,RND,SAT>"},
    "fc2": {"weight": "fixed<8,2>", "bias": "fixed<10,4>", "accum": "auto", "result": "fixed<16,6,RND_CONV,SAT>"},
    "act2": {"result": "ufixed<12,5>"},
    "out": {"weight": "fixed<10,3>", "bias": "fixed<12,5>", "accum": "fixed<30,12>", "result": "fixed<18,8,RND,SAT>"},
}


def float_model(seed: int = 3, batchnorm_first: bool = False, n_in: int = 8):
    """A float Keras MLP: fc1 (Dense + relu), fc2, act2 (relu), out; optionally a BatchNormalization first."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    layers = [tf.keras.Input(shape=(n_in,), name="inp")]
    if batchnorm_first:
        layers.append(tf.keras.layers.BatchNormalization(name="bn0"))
    layers += [tf.keras.layers.Dense(12, activation="relu", name="fc1"), tf.keras.layers.Dense(8, name="fc2"),
               tf.keras.layers.Activation("relu", name="act2"), tf.keras.layers.Dense(3, name="out")]
    model = tf.keras.Sequential(layers, name="float_mlp")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) if "variance" in w.name or "gamma" in w.name
                               else rng.normal(0, 0.6, w.shape) for w in layer.weights])
    return model


def model_folder(tmp_path, model, hls: dict, name: str = "float_mlp"):
    """A model folder: the Keras JSON + weights and a trigger.yml with this ``hls`` section."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = save_model(model, tmp_path, name)
    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({
        "kind": "network", "name": name, "model": {"file": path.name, "weights": f"{name}_weights.h5"},
        "hls": hls, "verify": {"vectors": VECTORS}}))
    return tmp_path


def op_formats(bundle_path) -> dict:
    """{op name: {kind, input, output, weight, bias, accum}} from the bundle's firmware_model.json."""
    from trigger.fixed import FixedFormat
    from trigger.ir.model import FirmwareModel

    fw = FirmwareModel.from_dict(json.loads((bundle_path / "firmware_model.json").read_text()))
    out = {"input": fw.input.format}
    for op in fw.ops:
        entry = {"kind": op.kind, "output": op.output.format}
        for key in ("weight_fmt", "bias_fmt", "accum_fmt"):
            if getattr(op, key, None) is not None:
                entry[key.removesuffix("_fmt")] = getattr(op, key)
        out[op.name] = entry
    assert all(isinstance(v, FixedFormat) for e in out.values() if isinstance(e, dict)
               for k, v in e.items() if k != "kind")
    return out


def fmt(text: str):
    from trigger.fixed import FixedFormat

    return FixedFormat.parse(text)


def assert_formats(formats: dict, asked: dict, manifest: dict | None = None) -> None:
    """Every format asked for a layer is the one its op carries (a relu's result is its op's output), in
    firmware_model.json and in the manifest's ``formats`` lines."""
    lines = {line.split(":")[0]: line for line in (manifest or {}).get("formats", [])}
    for layer, keys in asked.items():
        if layer == "default":
            continue
        assert layer in formats, (layer, sorted(formats))
        for key, value in keys.items():
            if value == "auto":
                continue
            what = "output" if key == "result" else key
            got = formats[layer][what]
            assert got == fmt(value), (layer, key, got, value)
            if manifest is not None:
                cpp = fmt(value).cpp
                assert f"{what} {cpp}" in lines[layer] or what == "output" and f" x {cpp}" in lines[layer], \
                    (layer, key, lines[layer])


# ------------------------------------------------------------------ trigger.yml hls.precision
# The per-layer formats are given on the model with a batch norm right after the input (bn0, its own formats too):
# one build and one 3-way verification show both.
BN_FIRST = {"bn0": {"scale": "fixed<12,3>", "bias": "fixed<12,4>", "result": "fixed<12,4,RND,SAT>"}}


@pytest.mark.slow
def test_per_layer_precision_from_trigger_yml_and_batch_normalization_right_after_the_input(tmp_path):
    folder = model_folder(tmp_path / "m", float_model(seed=9, batchnorm_first=True),
                          {"input_precision": "fixed<12,4>", "precision": {**PER_LAYER, **BN_FIRST}})
    bundle = build_and_verify(folder, tmp_path / "b")
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, VECTORS)
    formats = op_formats(bundle.path)
    assert_formats(formats, PER_LAYER, bundle.manifest)
    assert formats["input"] == fmt("fixed<12,4>")
    assert formats["fc2"]["accum"] != fmt("fixed<18,7>")  # 'auto': hls4ml's exact accumulator
    manifest = bundle.manifest
    assert manifest["widened_accumulators"] == {}
    assert manifest["layer_precision"]["given"]["fc1"]["result"] == "fixed<14,5,RND,SAT>"
    assert any(note.startswith("Per-layer precision as given") and "fc1_relu" in note for note in manifest["notes"])
    assert any(line.startswith("fc1: dense") and "ap_fixed<6,1,AP_TRN,AP_WRAP>" in line
               for line in manifest["formats"])
    # the batch norm right after the input: the first op, a per-feature scale with its given result format
    assert list(formats)[1] == "bn0" and formats["bn0"]["kind"] == "scale"
    assert formats["bn0"]["output"] == fmt("fixed<12,4,RND,SAT>")


@pytest.mark.slow
def test_given_accumulator_that_can_overflow_is_refused(tmp_path, capsys):
    from trigger.cli import main

    spec = dict(PER_LAYER, out={**PER_LAYER["out"], "accum": "fixed<16,6>"})
    folder = model_folder(tmp_path / "m", float_model(), {"input_precision": "fixed<12,4>", "precision": spec})
    assert main(["build", str(folder), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "layer out" in err and "fixed<16,6>" in err and "can overflow" in err and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_bad_per_layer_settings_are_one_line_errors(tmp_path, capsys):
    from trigger.cli import main

    cases = [({"precision": {"nope": {"result": "fixed<8,3>"}}}, "no layer 'nope'"),
             ({"precision": {"fc1": {"table_size": "fixed<8,3>"}}}, "hls.precision.fc1.table_size"),
             ({"precision": {"fc1": {"result": "fixed<8>"}}}, "hls.precision.fc1.result"),
             ({"precision": {"default": "auto"}}, "hls.precision.default"),
             ({"precision": {"default": "fixed<8,3>"}, "ptq": {"weight": "fixed<8,3>"}}, "give one of them")]
    model = float_model()
    for i, (hls, expected) in enumerate(cases):
        spec = hls
        folder = model_folder(tmp_path / f"m{i}", model, hls)
        assert main(["build", str(folder), "-o", str(tmp_path / f"b{i}")]) == 2, spec
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, (spec, err)


# ------------------------------------------------------------------ --hls-config
def hls4ml_config(model, default="fixed<16,6>") -> dict:
    import hls4ml

    return hls4ml.utils.config_from_keras_model(model, granularity="name", default_precision=default)


def assert_unsigned_10_bit_input(bundle, input_precision: str, n_inputs: int, name: str) -> None:
    """The unsigned 10-bit input through hls4ml (its input typedef), the firmware model, the bus and the vectors."""
    formats = op_formats(bundle.path)
    assert formats["input"] == fmt(input_precision)
    assert not formats["input"].signed and formats["input"].width == 10 and formats["input"].integer == 10
    inputs = bundle.manifest["inputs"]  # the bus: n x 10 unsigned bits, element 0 in the least significant bits
    assert [(e["format"], e["signed"], e["width"], e["lsb"]) for e in inputs] == \
        [(fmt(input_precision).cpp, False, 10, 10 * i) for i in range(n_inputs)]
    assert f"typedef {fmt(input_precision).cpp.replace(',AP_TRN,AP_WRAP', '')} input_t;" in \
        (bundle.path / "hls" / "firmware" / "defines.h").read_text()  # hls4ml's input type
    assert f"input  wire [{10 * n_inputs - 1}:0] in_data" in (bundle.path / "rtl" / f"{name}.v").read_text()
    raw = np.load(bundle.path / "vectors" / "inputs.npy")
    assert raw.min() >= 0 and raw.max() <= 1023 and raw.max() > 511  # the whole unsigned range is exercised


@pytest.mark.slow
def test_hls_config_file_from_hls4ml(tmp_path):
    """One hls4ml config file (config_from_keras_model, granularity='name') with per-layer precisions, an unsigned
    10-bit input (the input layer's Precision) and ReuseFactor 2 everywhere, as hls4ml users set it: trigger's II 2,
    each dense layer shared over 2 cycles (layers without arithmetic to share, relu, ignore it, as in hls4ml). One
    build and one 3-way verification show all three."""
    model = float_model(seed=5)
    path = save_model(model, tmp_path, "float_mlp")
    cfg = hls4ml_config(model, default="fixed<18,7>")
    cfg["Model"]["ReuseFactor"] = 2
    for entry in cfg["LayerName"].values():
        if "ReuseFactor" in entry:
            entry["ReuseFactor"] = 2
    names = cfg["LayerName"]
    names["inp"]["Precision"]["result"] = "uint<10>"  # 10-bit energies: fc1 accumulates up to 2^13
    names["fc1"]["Precision"].update(weight="ap_fixed<6,1>", bias="fixed<8,3>", accum="fixed<28,14>",
                                     result="ap_fixed<14,5,AP_RND,AP_SAT>")
    names["fc1_relu"]["Precision"]["result"] = "ufixed<10,4,RND,SAT>"
    names["fc1"]["Trace"] = True  # changes nothing in the firmware
    names["fc2"]["Precision"] = "fixed<20,8>"  # a string: every precision of the layer (as in hls4ml)
    names["out"]["Precision"].update(weight="fixed<10,3>", result="fixed<18,8,RND,SAT>")
    config_file = tmp_path / "hls4ml_config.yml"
    config_file.write_text(yaml.safe_dump(cfg))
    bundle = build_and_verify(path, tmp_path / "b", "--hls-config", str(config_file), "--vectors", str(VECTORS))
    assert bundle.build_status == 0 and bundle.verify_status == 0
    result = bundle.verify  # assert_certified's checks, at II 2 (with its two checks of the input spacing)
    counts = checked_counts(result)
    assert counts.pop("source_vs_firmware", 0) == 0, result.get("source_model")
    assert counts == {**CLEAN, "inputs_refused_at_ii_spacing": 0, "too_early_input_not_refused": 0}, \
        result["first_mismatch"]
    assert result["pass"] is True and result["vectors"] == VECTORS and result["spurious_outputs"] == 0
    assert result["latency_cycles"] == result["latency_cycles_expected"] > 0
    assert result["ii"] == 2 and bundle.manifest["ii"] == 2
    formats = op_formats(bundle.path)
    assert_formats(formats, {"fc1": {"weight": "fixed<6,1>", "bias": "fixed<8,3>", "accum": "fixed<28,14>",
                                     "result": "fixed<14,5,RND,SAT>"},
                             "fc1_relu": {"result": "ufixed<10,4,RND,SAT>"},
                             "fc2": {k: "fixed<20,8>" for k in ("weight", "bias", "accum", "result")},
                             "out": {"weight": "fixed<10,3>", "result": "fixed<18,8,RND,SAT>"}}, bundle.manifest)
    assert formats["out"]["bias"] == fmt("fixed<18,7>")  # unset: the file's Model.Precision default
    assert formats["act2"]["output"] == fmt("fixed<18,7>")
    manifest = bundle.manifest
    assert manifest["layer_precision"]["hls_config_file"] == "hls4ml_config.yml"
    assert manifest["layer_precision"]["given"]["fc2"]["accum"] == "fixed<20,8>"
    assert_unsigned_10_bit_input(bundle, "uint<10>", 8, "float_mlp")


def test_hls_config_bad_keys_exit_2_naming_the_key(tmp_path, capsys):
    from trigger.cli import main

    model = float_model(seed=5)
    path = save_model(model, tmp_path, "float_mlp")
    base = hls4ml_config(model)

    def edited(change):
        cfg = json.loads(json.dumps(base))
        change(cfg)
        return cfg

    cases = [
        (lambda c: c["LayerName"]["fc1"].update(ConvImplementation="Encoded"), "LayerName.fc1.ConvImplementation"),
        (lambda c: c["LayerName"].update(nope={"Precision": {"result": "fixed<8,3>"}}), "no layer 'nope'"),
        (lambda c: c["LayerName"]["fc1"]["Precision"].update(table="fixed<8,3>"), "LayerName.fc1.Precision.table"),
        (lambda c: c["LayerName"]["fc1_relu"].update(TableSize=512), "LayerName.fc1_relu.TableSize"),
        (lambda c: c["Model"].update(Strategy="Resource"), "Model.Strategy"),
        (lambda c: c["Model"]["Precision"].update(maximum="fixed<32,16>"), "Model.Precision.maximum"),
        (lambda c: c.update(OutputDir="x"), "OutputDir"),
        (lambda c: c["LayerName"]["fc1"].update(ReuseFactor=3), "LayerName.fc1.ReuseFactor"),
        (lambda c: c["LayerName"]["out"]["Precision"].update(result="fixed<8,3,XYZ>"),
         "LayerName.out.Precision.result"),
    ]
    for i, (change, expected) in enumerate(cases):
        config_file = tmp_path / f"c{i}.json"  # JSON is read like YAML
        config_file.write_text(json.dumps(edited(change)))
        for command in ("build", "ci") if i == 0 else ("build",):
            status = main([command, str(path), "-o", str(tmp_path / f"b{i}"), "--hls-config", str(config_file)])
            err = capsys.readouterr().err.strip()
            assert status == 2 and expected in err and "\n" not in err, (expected, err)
            assert not (tmp_path / f"b{i}").exists()


def test_hls_config_reuse_factor_against_ii(tmp_path, capsys):
    from trigger.cli import main

    model = float_model(seed=5)
    path = save_model(model, tmp_path, "float_mlp")
    cfg = hls4ml_config(model)
    cfg["Model"]["ReuseFactor"] = 2
    (tmp_path / "c.yml").write_text(yaml.safe_dump(cfg))
    assert main(["build", str(path), "-o", str(tmp_path / "b"), "--hls-config", str(tmp_path / "c.yml"),
                 "--ii", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Model.ReuseFactor 2" in err and "\n" not in err


def test_hls_config_refused_where_it_would_be_ignored(tmp_path, capsys):
    from trigger.cli import main
    from trigger.resources import models_dir

    config_file = tmp_path / "c.yml"
    config_file.write_text("Model: {Precision: {default: 'fixed<16,6>'}}\n")
    assert main(["build", str(models_dir() / "muon_pt_lut"), "-o", str(tmp_path / "b"),
                 "--hls-config", str(config_file)]) == 2
    assert "--hls-config applies to Keras networks only" in capsys.readouterr().err


# ------------------------------------------------------------------ unsigned inputs, batch norm first
@pytest.mark.slow
@pytest.mark.parametrize("input_precision", ["ap_uint<10>", "ap_ufixed<10,10>"])
def test_unsigned_10_bit_input(tmp_path, input_precision):
    """10-bit calorimeter energies: an unsigned input format (hls.input_precision) through hls4ml, the firmware
    model, vectors and RTL (the input layer's Precision in an --hls-config file: test_hls_config_file_from_hls4ml)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential([tf.keras.Input(shape=(6,), name="energies"),
                                 tf.keras.layers.Dense(5, activation="relu", name="fc1"),
                                 tf.keras.layers.Dense(2, name="out")], name="calo_sums")
    rng = np.random.default_rng(7)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.05, w.shape) for w in layer.weights])
    precision = {"fc1": {"weight": "fixed<8,0>", "result": "fixed<16,8,RND,SAT>"},
                 "fc1_relu": {"result": "ufixed<12,6,RND,SAT>"}}
    folder = model_folder(tmp_path / "m", model, {"input_precision": input_precision, "precision": precision},
                          name="calo_sums")
    bundle = build_and_verify(folder, tmp_path / "b")
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify)
    assert op_formats(bundle.path)["fc1_relu"]["output"] == fmt("ufixed<12,6,RND,SAT>")
    assert_unsigned_10_bit_input(bundle, input_precision, 6, "calo_sums")


def test_batch_normalization_first_on_another_axis_is_refused(tmp_path):
    import tensorflow as tf

    from trigger.errors import ModelError
    from trigger.frontends.keras import load_model
    from trigger.frontends.network import convert

    model = tf.keras.Sequential([tf.keras.Input(shape=(4, 3)), tf.keras.layers.BatchNormalization(axis=1, name="bn0"),
                                 tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)])
    path = save_model(model, tmp_path, "bn_axis")
    with pytest.raises(ModelError, match="bn0"):
        convert(load_model({"json": str(path), "weights": str(tmp_path / "bn_axis_weights.h5")}),
                {"hls": {"input_precision": "fixed<12,4>"}})


def test_per_layer_precision_refused_for_onnx(tmp_path, capsys, reference_models):
    """hls.precision / --hls-config would be ignored by the ONNX frontend: refused with one line instead."""
    from trigger.cli import main

    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({
        "kind": "network", "name": "onnx_model", "model": {"file": str(reference_models / "two_layer_keras.onnx")},
        "hls": {"precision": {"fc1": {"result": "fixed<8,3>"}}}}))
    assert main(["build", str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    assert "applies to Keras models only" in capsys.readouterr().err
    config_file = tmp_path / "c.yml"
    config_file.write_text("Model: {ReuseFactor: 1}\n")
    assert main(["build", str(reference_models / "two_layer_keras.onnx"), "-o", str(tmp_path / "b"),
                 "--hls-config", str(config_file)]) == 2
    assert "--hls-config applies to Keras networks only" in capsys.readouterr().err
