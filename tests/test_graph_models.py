"""Graph firmware models: several inputs and outputs, skips and merges, end to end.

The Keras functional models of graph_cases.py (seeded random QKeras weights), side by side in one model,
are built and verified through the CLI: emulator == hls4ml C simulation == RTL (Verilator), and == the
QKeras model itself on every vector (its merges read quantized tensors, so its arithmetic is exact). A hand-built graph
of IR ops checks the graph emulator, storage, the bus map and the delay-balanced RTL on its own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.firmware_cases import F, T, random_dense, relu
from tests.helpers import assert_certified, build_and_verify
from trigger.errors import FirmwareModelError
from trigger.ir import FirmwareModel, emulate
from trigger.ir.model import CHAIN_FORMAT_VERSION, FORMAT_VERSION, join

GRAPH_VECTORS = 3000


def two_branch_graph() -> FirmwareModel:
    """Inputs a (3 signed) and b (2 unsigned, like detector energies); branch a is three ops deep
    (dense, relu, dense), branch b one (dense); outputs: both branch ends and the relu (a tap)."""
    rng = np.random.default_rng(3)
    fa, fb = F("fixed<10,4>"), F("ufixed<8,8>")
    d1 = random_dense(rng, "da", 3, 4, fa, F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<16,6>"))
    r1 = relu("ra", d1, F("ufixed<9,4,RND_CONV,SAT>"))
    d2 = random_dense(rng, "db", 2, 3, fb, F("fixed<6,1>"), F("fixed<6,2>"), F("fixed<16,8,RND,SAT>"))
    d3 = random_dense(rng, "dc", 4, 2, F("ufixed<9,4,RND_CONV,SAT>"), F("fixed<6,1>"), F("fixed<6,2>"),
                      F("fixed<16,6>"))
    return FirmwareModel("two_branch", join([T(fa, 3), T(fb, 2)], ["a", "b"]), [d1, r1, d2, d3],
                         ports=[("a", 3), ("b", 2)], reads={"da": ["a"], "db": ["b"], "dc": ["ra"]},
                         outputs=["dc", "db", "ra"])


def test_graph_emulation_follows_the_wiring():
    model = two_branch_graph()
    rng = np.random.default_rng(0)
    t = model.input
    raw = rng.integers(t.min_raw, t.max_raw + 1, (500, t.n), dtype=np.int64)
    result = emulate(model, raw, trace=True)
    a, b = raw[:, :3], raw[:, 3:]
    ops = {op.name: op for op in model.ops}
    da = ops["da"].emulate(a, {})
    ra = ops["ra"].emulate(da, {})
    expected = np.hstack([ops["dc"].emulate(ra, {}), ops["db"].emulate(b, {}), ra])
    assert np.array_equal(result.outputs, expected)
    assert [s for s in model.output_slices()] == [("dc", 0, 2), ("db", 2, 3), ("ra", 5, 4)]
    assert model.output.names[0] == "dc[0]" and model.input.names[3] == "b[0]"


def test_graph_is_stored_as_version_2_and_chains_as_version_1(tmp_path):
    model = two_branch_graph()
    model.save(tmp_path)
    stored = json.loads((tmp_path / "firmware_model.json").read_text())
    assert stored["format_version"] == FORMAT_VERSION == 2
    assert [p["name"] for p in stored["inputs"]] == ["a", "b"] and [o["name"] for o in stored["outputs"]] == \
        ["dc", "db", "ra"]
    assert {op["name"]: op["reads"] for op in stored["ops"]}["dc"] == ["ra"]
    back = FirmwareModel.load(tmp_path)
    assert back.to_dict() == model.to_dict() and back.digest() == model.digest()
    chain = FirmwareModel("c", model.ops[0].input, [model.ops[0], model.ops[1]])
    assert chain.to_dict()["format_version"] == CHAIN_FORMAT_VERSION == 1


@pytest.mark.parametrize("change, message", [
    (lambda m: m.reads.update(dc=["nowhere"]), "reads tensor 'nowhere', which no input or earlier op writes"),
    (lambda m: m.reads.update(da=["dc"]), "reads tensor 'dc', which no input or earlier op writes"),
    (lambda m: m.reads.update(dc=["ra", "db"]), "reads 2 tensors but takes one"),
    (lambda m: m.reads.update(dc=["b"]), "expects 4 inputs but b give 2"),
    (lambda m: m.outputs.remove("ra") or m.outputs.remove("dc"), "the output of op 'dc' is never used"),
    (lambda m: m.outputs.append("zz"), "output 'zz' is not a tensor of the model"),
    (lambda m: m.ports.__setitem__(1, ("a", 2)), "two input ports have one name"),
])
def test_bad_wiring_is_a_one_line_error(change, message):
    model = two_branch_graph()
    change(model)
    with pytest.raises(FirmwareModelError) as err:
        model.validate()
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["layer", "auto", 2])
def test_graph_rtl_is_delay_balanced_and_exact(pipeline, tmp_path):
    from tests.test_rtl import check_rtl

    design = check_rtl(two_branch_graph(), pipeline, "icarus", 2000, tmp_path)  # small: no compile
    assert design.latency_cycles >= 3  # the deep branch sets it; the short one waits in delay registers


# ------------------------------------------------------------------ Keras functional models, end to end
# Every case of graph_cases.py side by side in one functional model (its inputs and outputs in GRAPH_ORDER): one
# build, one C-simulation compile and one Verilator compile for all four (17.5 CPU-s measured, against 24.7 for
# four bundles). The two-collection tagger's inputs get a format per port (hls.input_precision as a mapping: muon
# energies as unsigned 10-bit integers, jets in fixed<12,5>); every other input the default fixed<16,6>.
GRAPH_ORDER = ["multi_collection_tagger", "residual_block", "autoencoder_score", "branch_quantizers"]
INPUT_FORMATS = "{input_precision: {muons: 'uint<10>', jets: 'fixed<12,5,RND,SAT>', default: 'fixed<16,6>'}}"
IN_PORTS = [("muons", 12), ("jets", 9), ("features", 8), ("ae_objects", 6), ("x", 5)]
OUT_PORTS = [("class_out", 3), ("energy_out", 1), ("head", 4), ("score", 1), ("sum", 4)]


def graph_cases_model():
    """The cases of GRAPH_ORDER as one Keras model. The autoencoder's input layer is renamed ae_objects (its name,
    objects, is the tagger's concatenation's too); nothing else changes."""
    import tensorflow as tf

    from tests.graph_cases import GRAPH_CASES

    models = [GRAPH_CASES[name]() for name in GRAPH_ORDER]
    models[GRAPH_ORDER.index("autoencoder_score")].get_layer("objects")._name = "ae_objects"
    return tf.keras.Model([t for m in models for t in m.inputs], [t for m in models for t in m.outputs],
                          name="graph_cases")


@pytest.fixture(scope="module")
def graph_bundle(tmp_path_factory):
    """graph_cases_model() saved as JSON + H5 with a trigger.yml (INPUT_FORMATS), built and verified once through
    the CLI."""
    from tests.graph_cases import save

    root = tmp_path_factory.mktemp("graphs")
    source = save(graph_cases_model(), root / "models")
    (source.parent / "trigger.yml").write_text(
        f"kind: network\nname: graph_cases\nmodel: {{file: {source.name}, weights: {source.stem}_weights.h5}}\n"
        f"hls: {INPUT_FORMATS}\n")
    return build_and_verify(source.parent, root / "bundle", "--vectors", str(GRAPH_VECTORS))


def _source_layers(bundle) -> list[str]:
    """The layers of the source model's JSON, in the order the file lists them."""
    source = json.loads((bundle.path.parent / "models" / "graph_cases.json").read_text())
    return [layer["name"] for layer in source.get("config", source)["layers"]]


@pytest.mark.slow
def test_graph_models_are_bit_exact_three_ways_and_equal_qkeras(graph_bundle):
    bundle = graph_bundle
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, GRAPH_VECTORS)
    source = bundle.verify["source_model"]
    assert source["exact"] is True and source["mismatches"] == 0 and source["equal"] == GRAPH_VECTORS
    stored = json.loads((bundle.path / "firmware_model.json").read_text())
    assert stored["format_version"] == 2
    # branch_quantizers: the file lists its layers interleaved (da, db, qa, qb), so each activation's type must
    # come from its own branch's layer, not from the layer listed before it
    layers = _source_layers(bundle)
    assert layers.index("da") < layers.index("db") < layers.index("qa") < layers.index("qb")


@pytest.mark.slow
def test_multi_input_bus_map(graph_bundle):
    """The collections packed one after another on in_data, in the model's input order (the file lists the jets'
    input layer before the muons'), the heads one after another on out_data, as the manifest says."""
    manifest = graph_bundle.manifest
    ports = manifest["ports"]
    layers = _source_layers(graph_bundle)
    assert layers.index("jets") < layers.index("muons")
    assert [(p["name"], p["count"]) for p in ports["in_data"]] == IN_PORTS
    assert [(p["name"], p["count"]) for p in ports["out_data"]] == OUT_PORTS
    for bus in ("in_data", "out_data"):
        assert all(b["lsb"] == a["msb"] + 1 for a, b in zip(ports[bus], ports[bus][1:])), bus
    assert ports["in_data"][-1]["msb"] + 1 == sum(e["width"] for e in manifest["inputs"])
    assert manifest["inputs"][12]["name"] == "jets[0]"
    assert {op["name"]: op["kind"] for op in manifest["ops"]}["objects"] == "concatenate"


@pytest.mark.slow
def test_residual_add_and_anomaly_score_use_merge_ops(graph_bundle):
    kinds = {op["name"]: op["kind"] for op in graph_bundle.manifest["ops"]}
    assert kinds["skip_add"] == "merge"  # residual_block's skip connection
    assert kinds["residual"] == "merge" and kinds["score"] == "dot"  # the autoencoder's anomaly score


@pytest.mark.slow
def test_each_input_port_gets_its_own_format(graph_bundle):
    """hls.input_precision as a mapping (INPUT_FORMATS): muon energies as unsigned 10-bit integers, jets in
    fixed<12,5> (3-way exact and equal to QKeras: test_graph_models_are_bit_exact_three_ways_and_equal_qkeras)."""
    bundle = graph_bundle
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, GRAPH_VECTORS)
    inputs = bundle.manifest["inputs"]
    assert {e["format"] for e in inputs[:12]} == {"ap_uint<10>"}
    assert {e["format"] for e in inputs[12:21]} == {"ap_fixed<12,5,AP_RND,AP_SAT>"}
    assert bundle.manifest["ports"]["in_data"][0]["msb"] == 12 * 10 - 1
    assert bundle.verify["source_model"]["mismatches"] == 0


def test_an_input_format_for_an_unknown_port_is_refused(tmp_path):
    from trigger.errors import ConfigError
    from trigger.frontends.network import input_formats

    from tests.graph_cases import multi_collection_tagger

    model = multi_collection_tagger()
    inputs = [layer.name for layer in model.layers if type(layer).__name__ == "InputLayer"]
    assert sorted(inputs) == ["jets", "muons"]
    with pytest.raises(ConfigError, match="'electrons' is not an input of the model"):
        input_formats(inputs, {"muons": "uint<10>", "electrons": "uint<10>"})
    with pytest.raises(ConfigError, match="gives no format for input 'jets'"):
        input_formats(inputs, {"muons": "uint<10>"})
    assert input_formats(inputs, {"muons": "uint<10>", "default": "fixed<8,3>"})["jets"].hls4ml == "fixed<8,3>"


@pytest.mark.slow
def test_a_quantizer_after_the_input_keeps_the_input_format(graph_bundle):
    """QActivation(quantized_bits) straight after residual_block's input quantizes the input; it does not replace
    the input format the user chose (the default fixed<16,6>)."""
    inputs = [e for e in graph_bundle.manifest["inputs"] if e["name"].startswith("features[")]
    assert len(inputs) == 8 and {e["format"] for e in inputs} == {"ap_fixed<16,6,AP_TRN,AP_WRAP>"}
