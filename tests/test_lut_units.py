"""Fast checks of the LUT stages and of its three ops: muon simulation, config validation,
compression, table, the bucketize/concat/lookup ops, vector cover, bad input."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger.bundle import build_bundle
from trigger.data.muon import FEATURES, simulate_muons
from trigger.errors import ConfigError, FirmwareModelError
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.bucketize import Bucketize
from trigger.ir.ops.concat import Concat
from trigger.ir.ops.lookup import Lookup
from trigger.frontends.lut.binning import _legalise, build_layout
from trigger.frontends.lut.build import firmware_model
from trigger.frontends.lut.config import load_config
from trigger.frontends.lut.table import generate_table
from trigger.vectors import cover

BASE = {
    "kind": "lut", "name": "t_lut", "seed": 2,
    "data": {"source": "muon", "n_train": 20000, "n_test": 5000},
    "features": [{"name": "dphi12", "bits": 4, "binning": "quantile"},
                 {"name": "dphi23", "bits": 3, "binning": "log"},
                 {"name": "eta", "bits": 2, "binning": "linear"},
                 {"name": "quality", "bits": 1, "binning": "linear"}],
    "address": {"bits": 10, "order": ["quality", "eta", "dphi23", "dphi12"]},
    "model": {"type": "gbt", "max_iter": 10},
    "output": {"format": "ufixed<9,8,RND_CONV,SAT>"},
}
WORD = FixedFormat.parse("ufixed<9,8,RND_CONV,SAT>")


def write_config(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trigger.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


def _layout(tmp_path, seed=1, n=20000):
    cfg = load_config(write_config(tmp_path / "cfg", BASE))
    data = simulate_muons(n, seed=seed)
    raw = np.stack([data[f.name] for f in cfg.features], axis=1)
    return cfg, build_layout(cfg, raw), raw, data


def _small_model(words=None) -> FirmwareModel:
    """Two features (signed 6-bit, unsigned 3-bit) -> 2 + 1 bin bits -> 8 words."""
    fmt = FixedFormat.parse
    inp = TensorType((fmt("int<6>"), fmt("uint<3>")), ("a", "b"))
    bins = TensorType((fmt("uint<2>"), fmt("uint<1>")), ("a", "b"))
    address = TensorType((fmt("uint<3>"),), ("address",))
    out = TensorType((WORD,), ("pt",))
    words = np.array([3, 1, 4, 1, 5, 9, 2, 6]) if words is None else words
    return FirmwareModel("small", inp, [Bucketize("compress", inp, bins, np.array([-5, 0, 7, 4]), ["linear", "log"]),
                                        Concat("address", bins, address, [1, 0]),
                                        Lookup("table", address, out, words)], kind="table")


# ------------------------------------------------------------------ data and compression
@pytest.mark.slow
def test_muon_simulation_is_seeded_fast_and_physical():
    t0 = time.perf_counter()
    a = simulate_muons(1_000_000, seed=5)
    seconds = time.perf_counter() - t0
    assert seconds < 60, f"1M muons took {seconds:.1f} s: slower than a million a minute"
    b, c = simulate_muons(1000, seed=5), simulate_muons(1000, seed=5)
    for key in b:
        assert np.array_equal(b[key], c[key]), key
    assert not np.array_equal(b["dphi12"], simulate_muons(1000, seed=6)["dphi12"])
    assert a["pt"].min() >= 2.0 and a["pt"].max() <= 1000.0
    assert 1.2 <= a["eta_true"].min() and a["eta_true"].max() <= 2.4
    assert set(np.unique(a["charge"])) == {-1, 1}
    for f in FEATURES:
        assert a[f.name].dtype == np.int64
        assert f.min_raw <= a[f.name].min() and a[f.name].max() <= f.max_raw
    # bending follows charge/pT and shrinks with pT and with eta
    soft, hard = a["pt"] < 5, a["pt"] > 50
    assert np.mean(np.abs(a["dphi12"][soft])) > 10 * np.mean(np.abs(a["dphi12"][hard]))
    assert np.corrcoef(a["charge"][soft], a["dphi12"][soft])[0, 1] > 0.8
    central, forward = soft & (a["eta_true"] < 1.5), soft & (a["eta_true"] > 2.1)
    assert np.mean(np.abs(a["dphi12"][central])) > 1.5 * np.mean(np.abs(a["dphi12"][forward]))
    # noisy: at fixed pT the bend still spreads by more than the detector resolution
    band = (a["pt"] > 9) & (a["pt"] < 11) & (a["charge"] > 0) & (a["eta"] == 10)
    assert np.std(a["dphi12"][band]) > 3


def test_legalised_edges_make_every_bin_reachable():
    edges = _legalise(np.array([5.0, 5.0, 5.0, 100.0, 100.0, 100.0, 100.0]), -4, 101)
    assert np.all(np.diff(edges) > 0)
    assert edges[0] > -4 and edges[-1] <= 101
    assert list(edges[-4:]) == [98, 99, 100, 101]


def test_compression_matches_brute_force_and_layout(tmp_path):
    cfg, layout, raw, _ = _layout(tmp_path)
    assert layout.bits == 10
    assert [f.lsb for f in layout.fields] == [6, 3, 1, 0]  # order lists LSB first
    for f in layout.fields:
        assert len(f.edges) == f.n_bins - 1 and np.all(np.diff(f.edges) > 0)
        assert f.min_raw < f.edges[0] and f.edges[-1] <= f.max_raw
    assert list(layout.fields[2].edges) == [8, 16, 24]  # linear over the 5-bit raw range
    assert 0 in layout.fields[1].edges  # signed log binning splits at zero
    # brute force: bin = number of edges <= value; then pack
    values = np.concatenate([raw, [[f.min_raw for f in layout.fields], [f.max_raw for f in layout.fields]]])
    expect = np.zeros(len(values), dtype=np.int64)
    for i, f in enumerate(layout.fields):
        b = np.array([sum(int(v >= e) for e in f.edges) for v in values[:, i]])
        expect |= b << f.lsb
    assert np.array_equal(layout.compress(values), expect)
    assert layout.fields[0].bin(np.array([-4096]))[0] == 0 and layout.fields[0].bin(np.array([4095]))[0] == 15
    addresses = np.arange(1 << layout.bits)
    assert np.array_equal(layout.compress(layout.representatives(addresses)), addresses)
    # the firmware model's ops compute the same address
    model = firmware_model("t_lut", layout, WORD, np.zeros(1 << layout.bits, dtype=np.int64), {})
    trace = emulate(model, values, trace=True).trace
    assert np.array_equal(trace[1][:, 0], expect)


def test_table_is_quantized_by_fixed_and_emulated(tmp_path):
    class Linear:
        def predict(self, x):
            return x[:, 0] * 3.0 + 1.0  # log pT

    _, layout, _, _ = _layout(tmp_path, n=5000)
    table = generate_table(layout, Linear(), "log_pt", WORD, chunk=100, progress=False)
    address = np.arange(1 << layout.bits)
    x = layout.regressor_inputs(layout.bins_of(address))
    assert np.array_equal(table.words, WORD.quantize(np.exp(x[:, 0] * 3.0 + 1.0)))
    assert table.words.max() <= 511 and table.saturated == int(np.sum(np.exp(x[:, 0] * 3 + 1) >= 255.75))
    again = generate_table(layout, Linear(), "log_pt", WORD, chunk=1 << 12, progress=False)
    assert again.model_sha256 == table.model_sha256 and np.array_equal(again.words, table.words)
    model = firmware_model("t_lut", layout, WORD, table.words, {})
    raw = layout.representatives(address[::7])
    assert np.array_equal(emulate(model, raw).outputs[:, 0], table.words[address[::7]])


# ------------------------------------------------------------------ the three ops
def test_bucketize_emulates_brute_force_and_inverts():
    rng = np.random.default_rng(3)
    fmt = FixedFormat.parse
    inp = TensorType((fmt("int<9>"), fmt("uint<7>"), fmt("uint<1>")), ("s", "u", "q"))
    out = TensorType((fmt("uint<3>"), fmt("uint<2>"), fmt("uint<1>")), ("s", "u", "q"))
    edges = [np.sort(rng.choice(np.arange(-255, 256), 7, replace=False)), np.array([1, 50, 127]), np.array([1])]
    op = Bucketize("b", inp, out, np.concatenate(edges), ["quantile", "linear", "linear"])
    op.validate()
    special = np.zeros((2 * len(edges[0]), 3), dtype=np.int64)
    special[:, 0] = np.concatenate([edges[0], edges[0] - 1])
    raw = np.concatenate([rng.integers(inp.min_raw, inp.max_raw + 1, (3000, 3)), special,
                          [inp.min_raw, inp.max_raw]])
    got = op.emulate(raw, {})
    brute = np.array([[sum(int(v >= e) for e in edges[i]) for i, v in enumerate(row)] for row in raw])
    assert np.array_equal(got, brute)
    assert got[-2].tolist() == [0, 0, 0] and got[-1].tolist() == [7, 3, 1]  # saturating at both ends
    # preimage: the lowest raw value of each bin, which compresses back to it
    bins = np.stack(np.meshgrid(np.arange(8), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    pre = op.preimage(bins)
    assert np.array_equal(op.emulate(pre, {}), bins)
    above = bins[:, 0] > 0  # one below a bin's lowest value is the bin below
    assert np.array_equal(op.emulate(pre[above] - [1, 0, 0], {})[:, 0], bins[above, 0] - 1)
    assert op.preimage(np.zeros((0, 3), np.int64)).shape == (0, 3)
    # boundary values: every edge and the value below it
    values = op.boundary_values()
    assert set(edges[0]) <= set(values[0]) and set(edges[0] - 1) <= set(values[0])
    # ranges follow the saturating bins
    from trigger.ir.ranges import Interval

    assert op.output_ranges([Interval(-256, 255), Interval(0, 0), Interval(1, 1)]) == \
        [Interval(0, 7), Interval(0, 0), Interval(1, 1)]


def test_concat_packs_and_splits():
    fmt = FixedFormat.parse
    inp = TensorType((fmt("uint<2>"), fmt("uint<3>"), fmt("uint<1>")))
    op = Concat("c", inp, TensorType((fmt("uint<6>"),)), [4, 0, 3])
    op.validate()
    fields = np.stack(np.meshgrid(np.arange(4), np.arange(8), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    words = op.emulate(fields, {})
    assert np.array_equal(words[:, 0], (fields[:, 0] << 4) | fields[:, 1] | (fields[:, 2] << 3))
    assert sorted(words[:, 0].tolist()) == list(range(64))
    assert np.array_equal(op.preimage(words), fields)


def test_lookup_reads_words():
    model = _small_model()
    model.validate()
    lookup = model.ops[2]
    address = np.arange(8).reshape(-1, 1)
    assert lookup.emulate(address, {})[:, 0].tolist() == [3, 1, 4, 1, 5, 9, 2, 6]
    from trigger.ir.ranges import Interval

    assert lookup.output_ranges([Interval(2, 4)]) == [Interval(1, 5)]
    assert lookup.preimage(address) is None
    assert (lookup.absorbs_previous, lookup.ends_in_register) == (True, True)


def test_ops_round_trip_through_json_and_npy(tmp_path):
    model = _small_model()
    again = FirmwareModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert [op.kind for op in again.ops] == ["bucketize", "concat", "lookup"]
    assert again.digest() == model.digest()
    assert again.ops[0].binning == ["linear", "log"] and again.ops[1].lsb == [1, 0]
    assert again.input.names == ("a", "b")
    # a large table goes to .npy beside the JSON and comes back the same
    big = _layout_free_big_model()
    files = big.save(tmp_path)
    assert any(p.suffix == ".npy" for p in files)
    loaded = FirmwareModel.load(tmp_path)
    assert np.array_equal(loaded.ops[2].words, big.ops[2].words) and loaded.digest() == big.digest()


def _layout_free_big_model() -> FirmwareModel:
    fmt = FixedFormat.parse
    inp = TensorType((fmt("uint<17>"),), ("x",))
    bins = TensorType((fmt("uint<17>"),), ("x",))
    address = TensorType((fmt("uint<17>"),))
    words = np.arange(1 << 17) % 512
    return FirmwareModel("big", inp, [Bucketize("b", inp, bins, np.arange(1, 1 << 17)),
                                      Concat("c", bins, address, [0]),
                                      Lookup("t", address, TensorType((WORD,)), words)], kind="table")


@pytest.mark.parametrize("change, message", [
    (lambda ops: setattr(ops[0], "edges", np.array([-5, 0, 0, 4])), "edges of element 0 (a) must increase strictly"),
    (lambda ops: setattr(ops[0], "edges", np.array([-32, 0, 7, 4])), "edges of element 0 (a) must lie in (-32, 31]"),
    (lambda ops: setattr(ops[0], "edges", np.array([-5, 0, 4])), "3 edges, expected 4"),
    (lambda ops: setattr(ops[1], "lsb", [1, 1]), "overlap at bit 1"),
    (lambda ops: setattr(ops[1], "lsb", [0, 3]), "does not fit the 3-bit output"),
    (lambda ops: setattr(ops[2], "words", np.arange(7)), "7 words for a 3-bit address"),
    (lambda ops: setattr(ops[2], "words", np.array([0, 1, 2, 3, 4, 5, 6, 512])), "words raw value 512 is outside"),
])
def test_bad_ops_are_one_line_errors(change, message):
    model = _small_model()
    change(model.ops)
    with pytest.raises(FirmwareModelError) as err:
        model.validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cover_reaches_every_address_once(tmp_path):
    _, layout, _, _ = _layout(tmp_path)
    words = np.arange(1 << layout.bits) % 512
    model = firmware_model("t_lut", layout, WORD, words, {})
    covered = cover(model)
    assert covered is not None and covered.values == 1 << layout.bits
    assert len(covered.inputs) == 1 << layout.bits
    result = emulate(model, covered.inputs, trace=True)
    assert sorted(result.trace[1][:, 0].tolist()) == list(range(1 << layout.bits))
    assert np.array_equal(result.outputs[:, 0], words[result.trace[1][:, 0]])
    assert np.array_equal(np.sort(layout.compress(covered.inputs)), np.arange(1 << layout.bits))


def test_rtl_latency_is_input_register_plus_rom_read(tmp_path):
    from trigger.backends.rtl import write_rtl

    rtl = write_rtl(_small_model(), tmp_path, top="small")
    assert rtl.latency_cycles == 2 and rtl.op_latency == {"compress": 0, "address": 0, "table": 1}
    assert [p.name for p in rtl.data_files] == ["small_table_rom.mem"]
    assert (tmp_path / "small_table_rom.mem").read_text().split() == ["003", "001", "004", "001", "005", "009",
                                                                      "002", "006"]


def test_table_cpp_refuses_other_models(tmp_path):
    from trigger.backends.hls.table_cpp import write_project

    model = _small_model()
    model.ops = model.ops[:2]
    with pytest.raises(FirmwareModelError, match="needs ops bucketize -> concat -> lookup, got bucketize -> concat"):
        write_project(model, tmp_path, top="small", part="xcvu13p-flga2577-2-e", clock_period_ns=4.0)


@pytest.mark.slow
def test_table_cpp_csim_equals_emulator(tmp_path):
    """The generated C++ (g++, hls4ml's ap_types) against the emulator on every input of a small table."""
    from trigger.backends.hls.table_cpp import csim, write_project
    from trigger.vectors import enumerate_values

    model = _small_model()
    hls = write_project(model, tmp_path / "hls", top="small", part="xcvu13p-flga2577-2-e", clock_period_ns=4.0)
    assert hls["backend"] == "table_cpp" and hls["sources"] == ["hls/small.cpp"]
    raw = enumerate_values(model.input)
    out, timings = csim(tmp_path, {"hls": hls}, model, raw, tmp_path / "work")
    assert out.shape == (len(raw), 1) and set(timings) == {"csim_build_s", "csim_s"}
    assert np.array_equal(out, emulate(model, raw).outputs)


# ------------------------------------------------------------------ bad input
def _mutate(cfg, path, value):
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


@pytest.mark.parametrize("path, value, message", [
    (("address", "bits"), 31, "address.bits: 31 bits is wider than the 30-bit maximum"),
    (("features", 0, "bits"), 0, "features[0] (dphi12).bits: a feature needs at least 1 bit"),
    (("output",), KeyError, "output: missing required field"),
    (("features", 1, "name"), KeyError, "features[1].name: missing required field"),
    (("model", "depth"), 3, "model.depth: unknown key"),
    (("colour",), "red", "colour: unknown key"),
    (("features", 2, "bits"), 6, "only 32 values"),
    (("address", "bits"), 11, "address.bits: is 11 but the feature bits add up to 10"),
    (("report",), {"low_pt_max": float("nan")}, "report.low_pt_max: must be finite"),
    (("budget",), {"latency_furlongs": 3}, "unknown budget key 'latency_furlongs'"),
])
def test_bad_config_is_one_line_error_and_leaves_nothing(tmp_path, path, value, message):
    folder = write_config(tmp_path / "cfg", _mutate(BASE, path, value))
    out = tmp_path / "out" / "bundle"
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        build_bundle(folder, out, progress=False)
    text = str(err.value)
    assert message in text and "\n" not in text and "trigger.yml" in text
    assert time.perf_counter() - t0 < 10  # refused before data, training or the table
    assert not out.exists() and not list(out.parent.glob("*"))  # nothing written, no staging folder


def test_wide_feature_sum_is_rejected(tmp_path):
    cfg = _mutate(BASE, ("features", 0, "bits"), 13)
    cfg = _mutate(cfg, ("features", 1, "bits"), 11)
    cfg = _mutate(cfg, ("features", 2, "bits"), 5)
    cfg = _mutate(cfg, ("features", 3, "bits"), 2)
    cfg = _mutate(cfg, ("address",), {"order": ["quality", "eta", "dphi23", "dphi12"]})
    with pytest.raises(ConfigError, match="address.bits: 31 bits is wider than the 30-bit maximum"):
        load_config(write_config(tmp_path, cfg))


def test_nan_features_in_a_data_file_are_rejected(tmp_path):
    data = simulate_muons(30000, seed=3)
    arrays = {f["name"]: data[f["name"]].astype(np.float64) for f in BASE["features"]}
    arrays["dphi23"][123] = np.nan
    cfg = _mutate(BASE, ("data",), {"source": "file", "path": "muons.npz", "n_train": 20000, "n_test": 5000})
    raw = {"dphi12": (13, True), "dphi23": (11, True), "eta": (5, False), "quality": (2, False)}
    for f in cfg["features"]:
        f["raw_bits"], f["signed"] = raw[f["name"]]
    folder = write_config(tmp_path / "cfg", cfg)
    np.savez(folder / "muons.npz", pt=data["pt"], **arrays)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"feature 'dphi23' has 1 NaN value") as err:
        build_bundle(folder, out, progress=False)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_options_override_part_and_clock_and_refuse_network_options(tmp_path):
    from trigger.frontends import BuildOptions, load_design

    folder = write_config(tmp_path / "cfg", _mutate(BASE, ("target",), {"part": "xc7z020clg400-1", "clock_mhz": 200}))
    design = load_design(folder, BuildOptions())
    assert (design.part, design.clock_period_ns) == ("xc7z020clg400-1", 5.0)
    assert [op.kind for op in design.model.ops] == ["bucketize", "concat", "lookup"]
    assert design.model.input.widths == [13, 11, 5, 2]  # each feature at its own width
    assert len(design.extra_vectors) == 2048 and design.model.kind == "table"
    assert set(design.reports) == {"physics.json", "lut.md", "plots/pt_resolution.png", "plots/pt_turn_on.png",
                                   "plots/pt_rate_proxy.png"}
    design = load_design(folder, BuildOptions(part="xcku15p-ffva1760-2-e", clock_period_ns=2.5, vectors=100))
    assert (design.part, design.clock_period_ns, design.vectors) == ("xcku15p-ffva1760-2-e", 2.5, 100)
    with pytest.raises(ConfigError, match="option precision does not apply to a look-up table"):
        load_design(folder, BuildOptions(precision="fixed<16,6>"))


@pytest.mark.slow
def test_gbt_regressor_table_is_deterministic(tmp_path):
    from trigger.frontends.lut.regressor import make_regressor, to_target

    cfg, layout, raw, data = _layout(tmp_path, seed=8)
    x = layout.regressor_inputs(layout.bins_of(layout.compress(raw)))
    tables = []
    for _ in range(2):
        model = make_regressor(cfg.model, cfg.seed).fit(x, to_target(data["pt"], "log_pt"))
        tables.append(generate_table(layout, model, "log_pt", cfg.output, progress=False))
        assert model.describe()["trees"] == 10
    assert np.array_equal(tables[0].words, tables[1].words)
    assert tables[0].model_sha256 == tables[1].model_sha256
    # the trees learned something: soft bends give lower pT words than hard ones
    words = tables[0].words[layout.compress(raw)]
    soft, hard = data["pt"] < 4, data["pt"] > 40
    assert np.median(words[soft]) < np.median(words[hard])
