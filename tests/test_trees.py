"""Tree ensembles: readers against the libraries, exact threshold quantization, the op's emulator
against the libraries' own leaf assignment, bad input, and one small ensemble built and verified
3-way (emulator == C simulation == RTL) on every input vector (exhaustive: 12 input bits)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from tests.helpers import CLEAN, REPO, assert_certified, build_and_verify

from trigger.errors import ConfigError, FirmwareModelError, ModelError
from trigger.fixed import FixedFormat
from trigger.frontends.trees import firmware_model, from_sklearn, read_file, save_ensemble
from trigger.frontends.trees.ensemble import threshold_raw
from trigger.ir.model import emulate
from trigger.ir.tensor import TensorType

DATA = REPO / "tests" / "data" / "trees"
SMALL = TensorType((FixedFormat.parse("fixed<4,2>"), FixedFormat.parse("int<4>"), FixedFormat.parse("uint<4>")))


def _grid(t: TensorType, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(t.min_raw, t.max_raw + 1, (n, t.n), dtype=np.int64)


def _small_data(n=3000, seed=1):
    raw = _grid(SMALL, n, seed)
    x = SMALL.to_float(raw)
    score = x[:, 0] * 2 - np.abs(x[:, 1]) * 0.4 + 0.3 * x[:, 2]
    return raw, x, score


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    """A 3-class random forest on 12 input bits (fixed, int, uint inputs), saved as ensemble JSON,
    built and verified once: every one of the 4096 input vectors (argmax decision, per-class scores)."""
    from sklearn.ensemble import RandomForestClassifier

    _, x, score = _small_data()
    labels = np.digitize(score, np.quantile(score, [0.33, 0.66]))
    model = RandomForestClassifier(n_estimators=6, max_depth=4, random_state=0).fit(x, labels)
    folder = tmp_path_factory.mktemp("trees") / "small_rf"
    folder.mkdir()
    save_ensemble(model, folder / "ensemble.json")
    config = {"kind": "bdt", "name": "small_rf", "model": {"file": "ensemble.json"},
              "inputs": [{"name": n, "format": f.hls4ml} for n, f in zip(("a", "b", "c"), SMALL.formats)],
              "leaf": {"fractional_bits": 7}, "verify": {"vectors": 1000}}
    (folder / "trigger.yml").write_text(yaml.safe_dump(config))
    return build_and_verify(folder, folder.parent / "bundle")


@pytest.mark.slow
def test_small_ensemble_verified_exhaustively(small_bundle):
    assert small_bundle.build_status == 0 and small_bundle.verify_status == 0
    v = small_bundle.verify
    assert_certified(v)
    assert v["exhaustive"] is True and v["cover"] == {"tensor": "input", "values": 4096}
    assert v["vectors"] == 1000 + 4096
    manifest = small_bundle.manifest
    assert manifest["hls"]["backend"] == "trees_cpp"
    assert manifest["trees"]["decision"] == "argmax" and manifest["trees"]["n_trees"] == 6
    assert [o["width"] for o in manifest["outputs"]][-1] == 2  # the class: ap_uint<2>


@pytest.mark.slow
def test_small_ensemble_decides_as_the_library(small_bundle):
    """On every input, the firmware's class is the library's wherever the float scores of the two best
    classes differ by more than the leaf rounding can move them (6 trees x half an LSB, per class)."""
    from trigger.ir.model import FirmwareModel
    from trigger.vectors import enumerate_values

    model = FirmwareModel.load(small_bundle.path)
    raw = enumerate_values(model.input)
    ens = read_file(small_bundle.path.parent / "small_rf" / "ensemble.json")
    scores = ens.predict_raw(model.input.to_float(raw))
    top2 = np.sort(scores, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * 6 * 2.0 ** -8
    fw_class = emulate(model, raw).outputs[:, -1]
    assert clear.mean() > 0.5
    assert np.array_equal(fw_class[clear], np.argmax(scores, axis=1)[clear])


# ------------------------------------------------------------------ exact thresholds
@pytest.mark.parametrize("comparison", ["<=", "<"])
@pytest.mark.parametrize("fmt", ["fixed<6,3>", "ufixed<5,2>", "int<5>", "uint<3>"])
def test_threshold_quantization_decides_like_the_float_comparison(fmt, comparison):
    f = FixedFormat.parse(fmt)
    raw = np.arange(f.min_raw, f.max_raw + 1)
    x = f.to_float(raw)
    rng = np.random.default_rng(3)
    thresholds = np.concatenate([rng.uniform(f.min_value - 1, f.max_value + 1, 200), x, x + f.lsb / 2,
                                 [f.min_value - 5, f.max_value + 5]])
    for t in thresholds:
        r = threshold_raw(float(t), f, comparison)
        want = x <= t if comparison == "<=" else x < t
        assert np.array_equal(raw <= r, want), (fmt, comparison, t, r)
        assert f.min_raw - 1 <= r <= f.max_raw


# ------------------------------------------------------------------ readers against the libraries
def _sklearn_models():
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)

    _, x, score = _small_data(1500, 2)
    binary = (score > np.median(score)).astype(int)
    three = np.digitize(score, np.quantile(score, [0.33, 0.66]))
    return [(GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0), x, score),
            (GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0), x, binary),
            (GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0), x, three),
            (HistGradientBoostingRegressor(max_iter=8, max_depth=3, random_state=0), x, score),
            (HistGradientBoostingClassifier(max_iter=6, max_depth=3, random_state=0), x, binary),
            (HistGradientBoostingClassifier(max_iter=4, max_depth=3, random_state=0), x, three),
            (RandomForestRegressor(n_estimators=4, max_depth=4, random_state=0), x, score),
            (RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0), x, binary),
            (RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0), x, three)]


def _library_scores(model, x):
    name = type(model).__name__
    if name.startswith("RandomForestClassifier"):
        p = model.predict_proba(x)
        return p[:, 1:] if p.shape[1] == 2 else p
    if name.endswith("Classifier"):
        return model.decision_function(x).reshape(len(x), -1)
    return model.predict(x).reshape(-1, 1)


def test_sklearn_readers_compute_what_the_library_computes():
    for model, x, y in _sklearn_models():
        model.fit(x, y)
        ens = from_sklearn(model)
        name = type(model).__name__
        np.testing.assert_allclose(ens.predict_raw(x), _library_scores(model, x), rtol=0, atol=1e-9, err_msg=name)
        if name.endswith("Classifier"):  # the decision rule, on the float scores
            s = ens.predict_raw(x)
            if ens.decision == "threshold":
                pred = (s[:, 0] >= ens.decision_threshold) if ens.decision_inclusive else (s[:, 0] > ens.decision_threshold)
            else:
                pred = np.argmax(s, axis=1)
            assert np.array_equal(model.classes_[pred.astype(int)], model.predict(x)), name


def test_emulator_reaches_the_library_leaves():
    """On inputs of the input formats, every tree's leaf equals scikit-learn's apply(): the comparisons are exact."""
    from sklearn.ensemble import GradientBoostingRegressor

    raw, x, score = _small_data(2000, 4)
    model = GradientBoostingRegressor(n_estimators=12, max_depth=4, random_state=0).fit(x, score)
    fw = firmware_model(from_sklearn(model), "gbr", SMALL, leaf_fractional=10)
    op = fw.ops[0]
    probe = _grid(SMALL, 3000, 5)
    leaves = op.leaves_of(probe) - op.roots[None, :]
    assert np.array_equal(leaves, model.apply(SMALL.to_float(probe)).reshape(len(probe), -1).astype(np.int64))


def test_xgboost_json_reader_matches_xgboost_margins():
    ens = read_file(DATA / "xgb_jets_5class.json")
    probe = np.load(DATA / "xgb_jets_5class_probe.npy", allow_pickle=False)
    margins = np.load(DATA / "xgb_jets_5class_margins.npy", allow_pickle=False)
    assert ens.comparison == "<" and ens.decision == "argmax" and ens.n_classes == 5 and len(ens.trees) == 40
    np.testing.assert_allclose(ens.predict_raw(probe), margins, rtol=0, atol=1e-5)  # xgboost sums in float32


def test_xgboost_ensemble_firmware_model_is_exact_on_its_grid():
    """Fine leaves: the firmware's per-class sums are the float margins rounded, and the classes agree."""
    ens = read_file(DATA / "xgb_jets_5class.json")
    inputs = TensorType.uniform(FixedFormat.parse("fixed<8,4>"), 6)
    model = firmware_model(ens, "xgb", inputs, leaf_fractional=16)
    probe = np.load(DATA / "xgb_jets_5class_probe.npy", allow_pickle=False)
    raw = inputs.quantize(probe)
    assert np.array_equal(inputs.to_float(raw), probe.astype(np.float32).astype(np.float64))  # on the grid
    out = emulate(model, raw).outputs
    scores = out[:, :5] / 2.0 ** 16
    assert np.max(np.abs(scores - ens.predict_raw(probe))) <= 40 * 2.0 ** -17 + 1e-5
    assert np.mean(out[:, 5] == np.argmax(ens.predict_raw(probe), axis=1)) > 0.99


def test_range_analysis_sizes_an_accumulator_that_cannot_overflow():
    from sklearn.ensemble import GradientBoostingRegressor

    _, x, score = _small_data(800, 6)
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(x, score * 50)
    fw = firmware_model(from_sklearn(model), "gbr", SMALL, leaf_fractional=4)
    op = fw.ops[0]
    lo, hi = op.sum_bounds()
    assert op.accum_fmt.min_raw <= lo[0] and hi[0] <= op.accum_fmt.max_raw
    assert not (op.accum_fmt.min_raw <= 2 * lo[0] and 2 * hi[0] <= op.accum_fmt.max_raw)  # the narrowest
    sums = op.sums(_grid(SMALL, 4000, 7))
    assert lo[0] <= sums.min() and sums.max() <= hi[0]
    narrow = FixedFormat(op.accum_fmt.width - 1, op.accum_fmt.integer - 1)
    op.accum_fmt = narrow
    with pytest.raises(FirmwareModelError, match="can overflow"):
        op.validate()


# ------------------------------------------------------------------ ONNX TreeEnsemble*
def _write_onnx(ens, path, labels=None):
    """An ai.onnx.ml TreeEnsembleRegressor (or, with labels, TreeEnsembleClassifier) node computing ``ens``."""
    import onnx
    from onnx import TensorProto, helper

    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
                         "nodes_truenodeids", "nodes_falsenodeids")}
    pre = "class" if labels else "target"
    w = {f"{pre}_{k}": [] for k in ("treeids", "nodeids", "ids", "weights")}
    for t, tree in enumerate(ens.trees):
        for n, f in enumerate(tree.feature):
            leaf = f < 0
            for key, v in (("treeids", t), ("nodeids", n), ("featureids", 0 if leaf else int(f)),
                           ("modes", "LEAF" if leaf else "BRANCH_LEQ"),
                           ("values", 0.0 if leaf else float(tree.threshold[n])),
                           ("truenodeids", 0 if leaf else int(tree.left[n])),
                           ("falsenodeids", 0 if leaf else int(tree.right[n]))):
                a[f"nodes_{key}"].append(v)
            for c, v in enumerate(tree.value[n] if leaf else []):
                for key, x in (("treeids", t), ("nodeids", n), ("ids", c), ("weights", float(v))):
                    w[f"{pre}_{key}"].append(x)
    bias = [float(b) for b in ens.bias]
    if labels:
        node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                                classlabels_int64s=labels, post_transform="NONE", base_values=bias, **a, **w)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, len(labels)])]
    else:
        node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=1,
                                base_values=bias, **a, **w)
        outs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])]
    graph = helper.make_graph([node], "trees", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                                [None, ens.n_features])], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def test_onnx_tree_ensembles_read_as_onnxruntime_computes(tmp_path):
    import onnxruntime
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier

    _, x, score = _small_data(1200, 10)
    reg = from_sklearn(GradientBoostingRegressor(n_estimators=5, max_depth=3, random_state=0).fit(x, score))
    cls = from_sklearn(RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(
        x, np.digitize(score, np.quantile(score, [0.33, 0.66]))))
    for ens, labels in ((reg, None), (cls, [0, 1, 2])):
        path = _write_onnx(ens, tmp_path / f"m{len(labels or [])}.onnx", labels)
        back = read_file(path)
        assert back.source.startswith("onnx TreeEnsemble") and back.comparison == "<="
        out = onnxruntime.InferenceSession(str(path)).run(None, {"X": x.astype(np.float32)})
        np.testing.assert_allclose(back.predict_raw(x), out[-1], rtol=0, atol=1e-5)  # onnxruntime sums in float32
        if labels:
            assert back.decision == "argmax"
            assert np.array_equal(out[0], np.argmax(back.predict_raw(x), axis=1))
        model = firmware_model(back, "onnx_trees", SMALL, leaf_fractional=12)
        assert np.array_equal(model.ops[0].leaves_of(_grid(SMALL, 500)), firmware_model(
            ens, "sk", SMALL, leaf_fractional=12).ops[0].leaves_of(_grid(SMALL, 500)))


def test_onnx_feature_out_of_range_is_a_one_line_error(tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor

    _, x, score = _small_data(300, 11)
    ens = from_sklearn(GradientBoostingRegressor(n_estimators=2, max_depth=2, random_state=0).fit(x, score))
    ens.trees[1].feature[0] = 5  # beyond the graph's 3 declared features
    with pytest.raises(ModelError, match=r"tree 1 node 0: feature index 5 out of range") as err:
        read_file(_write_onnx(ens, tmp_path / "bad.onnx"))
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ bad input: one line each
def _ensemble_json(tmp_path, mutate) -> object:
    from sklearn.ensemble import GradientBoostingRegressor

    _, x, score = _small_data(500, 8)
    path = tmp_path / "ensemble.json"
    save_ensemble(GradientBoostingRegressor(n_estimators=3, max_depth=2, random_state=0).fit(x, score), path)
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    return path


def test_nan_threshold_is_a_one_line_error(tmp_path, capsys):
    from trigger.cli import main

    def nan(data):
        data["trees"][1]["threshold"][0] = None  # JSON has no NaN: a missing number reads as NaN
    path = _ensemble_json(tmp_path, nan)
    with pytest.raises(ModelError) as err:
        read_file(path)
    assert "tree 1 node 0" in str(err.value) and "threshold" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({"kind": "bdt", "name": "bad", "inputs": "int<4>",
                                                          "model": {"file": "ensemble.json"}}))
    assert main(["build", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ensemble.json: tree 1 node 0: threshold is nan" in err
    assert not (tmp_path / "out").exists()


def test_feature_index_out_of_range_is_a_one_line_error(tmp_path):
    def far(data):
        data["trees"][2]["feature"][0] = 7
    with pytest.raises(ModelError) as err:
        read_file(_ensemble_json(tmp_path, far))
    assert "tree 2 node 0" in str(err.value) and "feature index 7 out of range" in str(err.value)
    assert "\n" not in str(err.value)


def test_xgboost_nan_split_is_a_one_line_error(tmp_path):
    data = json.loads((DATA / "xgb_jets_5class.json").read_text())
    data["learner"]["gradient_booster"]["model"]["trees"][3]["split_conditions"][0] = math.nan
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # Python writes NaN, as a careless exporter might
    with pytest.raises(ModelError, match=r"tree 3 node 0: threshold is nan"):
        read_file(path)


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickle_is_refused_without_loading(tmp_path, capsys, suffix):
    from trigger.cli import main

    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a command
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pickle files are never loaded" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(ModelError, match="never loaded"):
        read_file(path)


def test_config_errors_name_the_field(tmp_path):
    from trigger.frontends import load_design

    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({"kind": "bdt", "name": "x", "model": {"file": "e.json"},
                                                          "leaf": {"bits": 3}}))
    with pytest.raises(ConfigError, match="leaf.bits: unknown key"):
        load_design(tmp_path)
    (tmp_path / "trigger.yml").write_text(yaml.safe_dump({"kind": "bdt", "name": "x", "train": {"data": "jets"}}))
    with pytest.raises(ConfigError, match="train.data"):
        load_design(tmp_path)


def test_op_refuses_bad_structure():
    from sklearn.ensemble import GradientBoostingRegressor

    _, x, score = _small_data(500, 9)
    fw = firmware_model(from_sklearn(GradientBoostingRegressor(n_estimators=2, max_depth=2).fit(x, score)),
                        "g", SMALL)
    op = fw.ops[0]
    op.feature = op.feature.copy()
    op.feature[0] = 3
    with pytest.raises(FirmwareModelError, match="tests input element 3"):
        op.validate()
    op.feature[0] = 0
    op.threshold = op.threshold.copy()
    op.threshold[0] = 99
    with pytest.raises(FirmwareModelError, match="threshold 99 outside"):
        op.validate()


# ------------------------------------------------------------------ the built-in example
@pytest.mark.slow
def test_muon_pt_bdt_example(tmp_path):
    """models/muon_pt_bdt: trained, built, verified 3-way on its 10,000 vectors, physics report written."""
    b = build_and_verify(REPO / "models" / "muon_pt_bdt", tmp_path / "muon_pt_bdt")
    assert b.build_status == 0 and b.verify_status == 0
    assert_certified(b.verify, 10_000)
    assert b.verify["mismatches"] == CLEAN
    physics = json.loads((b.path / "reports" / "physics.json").read_text())
    assert physics["resolution"]["firmware"]["overall_sigma_68"] < 0.3
    assert set(physics["turn_on"]["firmware"]) == {"10", "20", "30"}
    assert (b.path / "reports" / "plots" / "pt_turn_on.png").exists()
    assert b.manifest["trees"]["n_trees"] == 100 and b.manifest["trees"]["max_depth"] <= 5
