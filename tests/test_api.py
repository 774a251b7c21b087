"""The Python API (trigger.api): convert / predict / predict_raw / trace / compare / build, trigger.verify and
trigger.report; physics on the user's data (--data, trigger.physics); the layer-by-layer comparison
(trigger.frontends.layer_compare); the quickstart notebook."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REFERENCE_MODELS, REPO

SEED = 20261207


def _float_model(name: str, units=(32, 16), outputs: int = 3, seed: int = 4):
    """A small float Keras model (Dense + relu layers named fc1, fc2, ..., then 'out'), untrained."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    layers = [tf.keras.layers.Input((16,), name="x")]
    layers += [tf.keras.layers.Dense(n, activation="relu", name=f"fc{i + 1}") for i, n in enumerate(units)]
    layers.append(tf.keras.layers.Dense(outputs, name="out"))
    return tf.keras.Sequential(layers, name=name)


def _events(n: int = 4000) -> np.ndarray:
    return np.random.default_rng(SEED).normal(size=(n, 16))


@pytest.fixture(scope="module")
def tagger(reference_models):
    """The reference QKeras jet tagger converted through the API once."""
    import trigger

    return trigger.convert(reference_models / "qkeras_3layer.json", vectors=300)


# ------------------------------------------------------------------ the package
def test_import_trigger_is_light_and_names_the_api():
    code = ("import sys, trigger; print('tensorflow' in sys.modules, 'hls4ml' in sys.modules, "
            "callable(trigger.verify), callable(trigger.report), callable(trigger.convert), trigger.Design.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True", "True", "True", "Design"]


def test_verify_and_report_stay_modules_and_api_functions():
    import trigger
    from trigger.report import build_report
    from trigger.verify import verify_bundle

    assert trigger.verify.verify_bundle is verify_bundle and trigger.report.build_report is build_report
    assert callable(trigger.verify) and callable(trigger.report)


def test_convert_refuses_unknown_settings_with_one_line():
    import trigger
    from trigger.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting 'precison'"):
        trigger.convert("whatever.json", precison="fixed<8,3>")


# ------------------------------------------------------------------ predict, trace, compare
@pytest.mark.slow
def test_predict_raw_equals_the_stored_vectors_of_the_bundle(tagger, reference_bundle):
    raw_in = np.load(reference_bundle.path / "vectors" / "inputs.npy")
    raw_out = np.load(reference_bundle.path / "vectors" / "outputs.npy")
    got = tagger.predict_raw(raw_in)
    assert got.dtype.kind == "i" and got.shape == raw_out.shape
    assert int(np.count_nonzero(np.any(got != raw_out, axis=1))) == 0  # every stored vector


@pytest.mark.slow
def test_predict_quantizes_like_the_firmware_inputs_and_returns_floats(tagger):
    x = _events(2000)
    model = tagger.model
    scores = tagger.predict(x)
    expected = model.output.to_float(tagger.predict_raw(model.input.quantize(x)))
    assert scores.dtype == np.float64 and np.array_equal(scores, expected)
    assert np.array_equal(tagger.predict(x[0]), scores[:1])  # one event
    assert np.array_equal(tagger.predict([x]), scores)  # a list, one array per input port
    trace = tagger.trace(x[:50])
    assert list(trace) == ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"]
    assert np.array_equal(trace["output"], scores[:50])
    assert "qkeras_3layer" in tagger._repr_html_() and "relu1" in tagger._repr_html_()


@pytest.mark.slow
def test_every_layer_of_the_reference_tagger_equals_qkeras(tagger):
    result = tagger.compare(_events(5000))
    assert result["exact"] and result["framework"] == "qkeras"
    compared = [r for r in result["layers"] if r.get("op")]
    assert [r["layer"] for r in compared] == ["fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output"]
    for row in compared:
        assert row["equal"] == row["values"] == 5000 * tagger.model.ops[[o.name for o in tagger.model.ops]
                                                                         .index(row["op"])].output.n, row
    assert result["first_deviation"] is None and result["all_equal"]
    assert result["inputs"]["events"] == 5000
    assert "every value equal" in str(result)


@pytest.mark.slow
def test_reference_bundle_verify_json_has_the_layer_section(reference_bundle):
    layers = reference_bundle.verify["layers"]
    assert layers["all_equal"] and layers["vectors"] == reference_bundle.verify["stored_vectors"]
    assert {r["layer"]: r["equal"] == r["values"] for r in layers["layers"] if r.get("op")} == {
        n: True for n in ("fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "output")}


@pytest.mark.slow
def test_too_narrow_layer_is_the_first_deviating_one(tmp_path):
    """A float model with fc2's result in fixed<6,2> (range [-2, 2), wrapping): fc1 agrees with Keras within the
    post-training rounding, fc2 is where the firmware and the model part ways."""
    import trigger

    model = _float_model("narrow")
    design = trigger.convert(model, hls_precision={"fc2": {"result": "fixed<6,2>"}}, vectors=300)
    result = design.compare(_events())
    rows = {r["layer"]: r for r in result["layers"]}
    assert not result["exact"]
    assert result["first_deviation"]["layer"] == "fc2" and result["first_deviation"]["op"] == "fc2_relu"
    assert not rows["fc1"]["deviates"] and rows["fc1"]["max_relative_deviation"] < 0.01
    assert rows["fc2"]["deviates"] and rows["fc2"]["overflows"] > 0
    example = result["first_deviation"]
    assert abs(example["source_value"] - example["firmware_value"]) > 0.5 and len(example["input"]) == 16
    # the same without the narrow format: no layer deviates
    assert trigger.convert(model, vectors=300).compare(_events())["first_deviation"] is None
    # and through a model folder's trigger.yml (hls.precision), at build time: reports/layers.json
    folder = tmp_path / "narrow"
    folder.mkdir()
    from trigger.api import save_keras

    json_path = save_keras(model, folder)
    (folder / "trigger.yml").write_text(f"kind: network\nmodel: {{file: {json_path.name}}}\n"
                                        "hls: {precision: {fc2: {result: 'fixed<6,2>'}}}\nverify: {vectors: 300}\n")
    built = trigger.convert(folder)
    assert built.compare(_events())["first_deviation"]["layer"] == "fc2"
    # the stored vectors reach the input format's limits (+-32), where fc1's post-training format saturates too
    section = json.loads(built.frontend_design.reports["layers.json"])
    assert {r["layer"]: r["deviates"] for r in section["layers"]}["fc2"] and section["first_deviation"]


# ------------------------------------------------------------------ physics on the user's data
@pytest.mark.slow
def test_data_classifier_through_the_cli(reference_models, tmp_path):
    """build --data stores the source model's outputs; report --data shows both side by side."""
    from trigger.cli import main
    from trigger.data.jets import generate

    x, y = generate(3000, seed=5)
    x[:7, 0] = 1e3  # outside the input format: counted, not hidden
    data = tmp_path / "jets.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "tagger"
    assert main(["build", str(reference_models / "qkeras_3layer.json"), "-o", str(out), "--vectors", "300",
                 "--data", str(data)]) == 0
    assert json.loads((out / "manifest.json").read_text())["data"]["events"] == 3000
    assert main(["verify", str(out)]) == 0
    assert main(["report", str(out), "--no-synth", "--data", str(data)]) == 0
    report = json.loads((out / "reports" / "report.json").read_text())
    physics = report["physics"]
    assert physics["task"] == "classifier" and physics["events"] == 3000 and physics["source_available"]
    assert physics["inputs"]["events_with_input_outside"] == 7 and physics["inputs"]["per_feature"] == {"input[0]": 7}
    fw, src = physics["per_witness"]["firmware"], physics["per_witness"]["source"]
    assert set(fw["classes"]) == {"0", "1", "2", "3", "4"}
    for c in fw["classes"]:
        assert 0 <= fw["classes"][c]["auc"] <= 1 and set(fw["classes"][c]["efficiency_at"]) == {"0.001", "0.01", "0.1"}
    assert abs(fw["accuracy"] - src["accuracy"]) < 0.02 and physics["class_agreement"] > 0.95
    assert (out / "reports" / "plots" / "physics_classifier.png").stat().st_size > 10_000
    assert (out / "reports" / "plots" / "physics_inputs.png").exists()
    assert (out / "reports" / "plots" / "layers.png").exists()
    md = (out / "reports" / "report.md").read_text()
    assert "## Physics on your data" in md and "class agreement, firmware vs source" in md
    assert "Layer by layer" in md and "every value equal" in md
    assert "Physics on your data" in (out / "reports" / "report.html").read_text()
    # other events than the build's: the source column says why it is missing
    x2, y2 = generate(500, seed=6)
    np.savez(tmp_path / "other.npz", x=x2, y=y2)
    assert main(["report", str(out), "--no-synth", "--data", str(tmp_path / "other.npz")]) == 0
    other = json.loads((out / "reports" / "report.json").read_text())["physics"]
    assert not other["source_available"] and "other events" in other["source_note"]


@pytest.mark.slow
def test_data_regressor_and_anomaly_score(tmp_path):
    import trigger
    from trigger.physics import report_section

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(3000, 16))
    w = rng.normal(size=16) / 4
    true = x @ w + 5.0
    model = _float_model("reg", units=(), outputs=1)
    model.layers[-1].set_weights([w.reshape(16, 1).astype(np.float32), np.array([5.0], np.float32)])
    design = trigger.convert(model, vectors=200)
    data = tmp_path / "reg.h5"
    import h5py

    with h5py.File(data, "w") as h5:
        h5["x"], h5["y"] = x, true + rng.normal(0, 0.1, len(x))
    bundle = design.build(tmp_path / "reg", data=data, progress=False)
    section, pngs = report_section(bundle, data, threshold=5.0)
    assert section["task"] == "regressor" and section["threshold"] == 5.0
    fw, src = section["per_witness"]["firmware"], section["per_witness"]["source"]
    assert abs(fw["bias"]) < 0.02 and 0.08 < fw["resolution"] < 0.12
    assert abs(fw["resolution"] - src["resolution"]) < 0.005
    turn_on = fw["turn_on"]["efficiency"]
    assert turn_on[0] < 0.05 and turn_on[-1] > 0.95
    assert set(pngs) == {"physics_regressor"}
    # the same events read as an anomaly score (overridden), and a CSV with named columns
    csv = tmp_path / "events.csv"
    labels = (x[:, 0] > 1.5).astype(int)
    csv.write_text("," .join([f"f{i}" for i in range(16)] + ["label"]) + "\n"
                   + "\n".join(",".join(f"{v:.6f}" for v in row) + f",{lab}" for row, lab in zip(x, labels)) + "\n")
    section, pngs = report_section(bundle, csv, threshold=6.0)
    assert section["task"] == "anomaly" and section["background"] == "y == 0"  # integer y: labels
    fw = section["per_witness"]["firmware"]
    assert set(fw["threshold_at_rate"]) == {"40 kHz", "400 kHz", "4000 kHz"}
    assert 0 < fw["rate_khz_at_threshold"] < 40_000 and 0 <= fw["auc"] <= 1
    assert not section["source_available"]  # the build stored outputs for the .h5's events, not these
    assert "physics_anomaly" in pngs
    unlabeled, _ = report_section(bundle, data, task="anomaly")
    assert unlabeled["background"] == "all events" and unlabeled["source_available"]  # real y: no labels


def test_physics_reads_files_and_refuses_bad_ones(tmp_path):
    from trigger.errors import ConfigError
    from trigger.physics import choose_task, load_data, roc

    np.savez(tmp_path / "a.npz", x=np.zeros((4, 3)), y=np.eye(3)[[0, 1, 2, 0]])
    x, y, label = load_data(tmp_path / "a.npz")
    assert x.shape == (4, 3) and list(y) == [0, 1, 2, 0] and label == "a.npz"  # one-hot y read as labels
    np.savez(tmp_path / "b.npz", features=np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="no array 'x'"):
        load_data(tmp_path / "b.npz")
    with pytest.raises(ConfigError, match="file not found"):
        load_data(tmp_path / "missing.npz")
    fpr, tpr = roc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert fpr[0] == 0 and tpr[-1] == 1 and np.trapz(tpr, fpr) == 1.0

    class One:
        ops = []

        class output:
            n = 1
    assert choose_task(One, None) == "anomaly" and choose_task(One, np.array([0.5, 1.2])) == "regressor"
    with pytest.raises(ConfigError, match="--task"):
        choose_task(One, None, "ranking")


# ------------------------------------------------------------------ the notebook
@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    if not REFERENCE_MODELS.is_dir():
        pytest.skip(f"reference models not found at {REFERENCE_MODELS}")
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    monkeypatch.setenv("TRIGGER_NOTEBOOK_OUT", str(tmp_path / "quickstart"))
    notebook = nbformat.read(REPO / "docs" / "notebooks" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = "\n".join(o.get("text", "") + json.dumps(o.get("data", {}))
                        for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "bit exact: True" in outputs and "every value equal" in outputs
    assert (tmp_path / "quickstart" / "reports" / "report.html").exists()


@pytest.mark.slow
def test_qonnx_layers_equal_qonnx_execution_layer_by_layer(reference_models):
    """ONNX: each op's tensor found by its node's name (Dense_MatMul_0 = MatMul_0 + bias; a Quant after a layer
    folded into it; BipolarQuant's -1/+1 read as 0/1); the QONNX MLP equals qonnx's execution at every layer."""
    import trigger

    design = trigger.convert(reference_models / "unsw_nb15-mlp-w2a2.onnx", vectors=100)
    x = (np.random.default_rng(SEED).random((300, design.model.input.n)) > 0.5).astype(float)
    result = design.compare(x)
    assert result["framework"] == "qonnx" and result["exact"]
    assert result["compared"] == len(design.model.ops) == 12 and result["all_equal"]


@pytest.mark.slow
def test_several_input_ports_and_outputs():
    """A functional model with two inputs and two outputs: predict takes a list per port or the ports side by
    side and returns a list per output; compare follows the graph (a merge included)."""
    import tensorflow as tf

    import trigger

    tf.keras.utils.set_random_seed(1)
    a, b = tf.keras.Input((4,), name="a"), tf.keras.Input((3,), name="b")
    ha = tf.keras.layers.Dense(8, activation="relu", name="da")(a)
    hb = tf.keras.layers.Dense(8, activation="relu", name="db")(b)
    merged = tf.keras.layers.Add(name="sum")([ha, hb])
    model = tf.keras.Model([a, b], [tf.keras.layers.Dense(2, name="o1")(merged), tf.keras.layers.Dense(1, name="o2")(hb)])
    design = trigger.convert(model, vectors=100)
    assert design.input_ports == [("a", 4), ("b", 3)] and design.output_names == ["o1", "o2"]
    rng = np.random.default_rng(SEED)
    xa, xb = rng.normal(size=(500, 4)), rng.normal(size=(500, 3))
    listed, side_by_side = design.predict([xa, xb]), design.predict(np.hstack([xa, xb]))
    assert [v.shape for v in listed] == [(500, 2), (500, 1)]
    assert all(np.array_equal(u, v) for u, v in zip(listed, side_by_side))
    result = design.compare([xa, xb])
    assert [r["op"] for r in result["layers"]] == ["da_relu", "db_relu", "sum", "o1", "o2"]
    assert result["first_deviation"] is None
    from trigger.errors import ConfigError

    with pytest.raises(ConfigError, match="input port b takes 3 values per event, got 4"):
        design.predict([xa, xa])
