"""Fast checks of the LUT stages: muon simulation, config validation, compression, table, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger.data.muon import FEATURES, simulate_muons
from trigger.fixed import FixedFormat
from trigger.lut.binning import _legalise, build_layout
from trigger.lut.config import load_config
from trigger.lut.table import emulate, generate_table

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


def write_config(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trigger.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


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
    cfg = load_config(write_config(tmp_path, BASE))
    data = simulate_muons(20000, seed=1)
    raw = np.stack([data[f.name] for f in cfg.features], axis=1)
    layout = build_layout(cfg, raw)
    assert layout.bits == 10
    assert [f.lsb for f in layout.fields] == [6, 3, 1, 0]  # order lists LSB first
    for f in layout.fields:
        assert len(f.edges) == f.n_bins - 1 and np.all(np.diff(f.edges) > 0)
        assert f.min_raw < f.edges[0] and f.edges[-1] <= f.max_raw
    eta = layout.fields[2]
    assert list(eta.edges) == [8, 16, 24]  # linear over the 5-bit raw range
    d23 = layout.fields[1]
    assert 0 in d23.edges  # signed log binning splits at zero
    # brute force: bin = number of edges <= value; then pack
    values = np.concatenate([raw, [[f.min_raw for f in layout.fields], [f.max_raw for f in layout.fields]]])
    expect = np.zeros(len(values), dtype=np.int64)
    for i, f in enumerate(layout.fields):
        b = np.array([sum(int(v >= e) for e in f.edges) for v in values[:, i]])
        expect |= b << f.lsb
    assert np.array_equal(layout.compress(values), expect)
    # saturation at both ends
    assert layout.fields[0].bin(np.array([-4096]))[0] == 0 and layout.fields[0].bin(np.array([4095]))[0] == 15
    # every address has a raw representative that compresses back to it
    addresses = np.arange(1 << layout.bits)
    assert np.array_equal(layout.compress(layout.representatives(addresses)), addresses)


def test_table_is_quantized_by_fixed_and_emulated(tmp_path):
    class Linear:
        def predict(self, x):
            return x[:, 0] * 3.0 + 1.0  # log pT

    cfg = load_config(write_config(tmp_path, BASE))
    data = simulate_muons(5000, seed=1)
    layout = build_layout(cfg, np.stack([data[f.name] for f in cfg.features], axis=1))
    fmt = FixedFormat.parse("ufixed<9,8,RND_CONV,SAT>")
    table = generate_table(layout, Linear(), "log_pt", fmt, chunk=100, progress=False)
    address = np.arange(1 << layout.bits)
    x = layout.regressor_inputs(layout.bins_of(address))
    assert np.array_equal(table.words, fmt.quantize(np.exp(x[:, 0] * 3.0 + 1.0)))
    assert table.words.max() <= 511 and table.saturated == int(np.sum(np.exp(x[:, 0] * 3 + 1) >= 255.75))
    again = generate_table(layout, Linear(), "log_pt", fmt, chunk=1 << 12, progress=False)
    assert again.model_sha256 == table.model_sha256 and np.array_equal(again.words, table.words)
    raw = layout.representatives(address[::7])
    assert np.array_equal(emulate(layout, table.words, raw), table.words[address[::7]])


def _mutate(cfg, path, value):
    import copy

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
])
def test_bad_config_is_one_line_error_and_leaves_nothing(tmp_path, path, value, message):
    from trigger.lut import build_bundle

    folder = write_config(tmp_path / "cfg", _mutate(BASE, path, value))
    out = tmp_path / "out" / "bundle"
    with pytest.raises(ValueError) as err:
        build_bundle(folder, out, progress=False)
    text = str(err.value)
    assert message in text and "\n" not in text and "trigger.yml" in text
    assert not out.exists() and not (tmp_path / "out").exists()


def test_wide_feature_sum_is_rejected(tmp_path):
    cfg = _mutate(BASE, ("features", 0, "bits"), 13)
    cfg = _mutate(cfg, ("features", 1, "bits"), 11)
    cfg = _mutate(cfg, ("features", 2, "bits"), 5)
    cfg = _mutate(cfg, ("features", 3, "bits"), 2)
    cfg = _mutate(cfg, ("address",), {"order": ["quality", "eta", "dphi23", "dphi12"]})
    with pytest.raises(ValueError, match="address.bits: 31 bits is wider than the 30-bit maximum"):
        load_config(write_config(tmp_path, cfg))


def test_nan_features_in_a_data_file_are_rejected(tmp_path):
    from trigger.lut import build_bundle

    data = simulate_muons(30000, seed=3)
    arrays = {f["name"]: data[f["name"]].astype(np.float64) for f in BASE["features"]}
    arrays["dphi23"][123] = np.nan
    np.savez(tmp_path / "muons.npz", pt=data["pt"], **arrays)
    cfg = _mutate(BASE, ("data",), {"source": "file", "path": "muons.npz", "n_train": 20000, "n_test": 5000})
    raw = {"dphi12": (13, True), "dphi23": (11, True), "eta": (5, False), "quality": (2, False)}
    for f in cfg["features"]:
        f["raw_bits"], f["signed"] = raw[f["name"]]
    folder = write_config(tmp_path / "cfg", cfg)
    (folder / "muons.npz").write_bytes((tmp_path / "muons.npz").read_bytes())
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"feature 'dphi23' has 1 NaN value") as err:
        build_bundle(folder, out, progress=False)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_gbt_regressor_table_is_deterministic(tmp_path):
    from trigger.lut.regressor import make_regressor, to_target

    cfg = load_config(write_config(tmp_path, BASE))
    data = simulate_muons(20000, seed=8)
    raw = np.stack([data[f.name] for f in cfg.features], axis=1)
    layout = build_layout(cfg, raw)
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
