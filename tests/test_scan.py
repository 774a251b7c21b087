"""`trigger scan`: a small grid through a real Dask cluster (scheduler + two workers), and bad grids."""

import json

import pytest
import yaml

from trigger.cli import main

# A tiny QKeras network keeps the Yosys runs short: the scan's cost is its synthesis.
TINY_INPUT = "fixed<8,3>"


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    """A 6 -> 4 -> 3 QKeras network (4-bit weights, random) in a model folder with a trigger.yml."""
    import numpy as np
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(5)
    q = quantized_bits(4, 0, alpha=1)
    model = tf.keras.Sequential([tf.keras.Input(shape=(6,)),
                                 QDense(4, kernel_quantizer=q, bias_quantizer=q, name="d1"),
                                 QActivation(quantized_relu(4), name="r1"),
                                 QDense(3, kernel_quantizer=q, bias_quantizer=q, name="out")])
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.weights])
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.json").write_text(model.to_json())
    model.save_weights(folder / "tiny_weights.h5")
    config = {"kind": "network", "name": "tiny", "model": {"file": "tiny.json", "weights": "tiny_weights.h5"},
              "hls": {"input_precision": TINY_INPUT}, "budget": {"latency_ns": 100, "LUT": "5%"}}
    (folder / "trigger.yml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.slow  # hls4ml conversion and Yosys runs on the workers
def test_scan_on_a_dask_cluster(tiny_network, dask_scheduler_address, tmp_path, capsys):
    """Three pipeline settings of one design (one hls4ml conversion), the two valid ones synthesised by
    tasks on the two workers; the invalid one fails with its reason and the others complete. The same
    scan on a LocalCluster of one worker writes the same bytes, bundles included."""
    out = tmp_path / "scan"
    status = main(["scan", str(tiny_network), "--set", "pipeline=layer,1,0", "--scheduler", dask_scheduler_address,
                   "--budget", "latency_ns=100,lut_pct=5", "-o", str(out)])
    assert status == 1  # a point failed
    err = capsys.readouterr().err
    scan = json.loads((out / "scan.json").read_text())
    points = {p["id"]: p for p in scan["points"]}
    assert [p["settings"] for p in scan["points"]] == [{"pipeline": "layer"}, {"pipeline": 1}, {"pipeline": 0}]
    assert points["p02"]["status"] == "failed" and "pipeline must be" in points["p02"]["error"]
    assert "point p02 failed: build: ConfigError" in err and scan["failed"] == 1
    for p in (points["p00"], points["p01"]):
        assert p["status"] == "ok", p.get("error")
        assert p["resources"]["LUT"] > 0 and p["physics"]["metric"] == "argmax_agreement"
        assert 0.5 < p["physics"]["value"] <= 1.0
        assert (out / p["bundle"] / "manifest.json").exists()
    # registers every adder level: more cycles and a shallower logic depth than registers per layer only
    assert points["p01"]["latency"]["cycles"] > points["p00"]["latency"]["cycles"]
    assert points["p01"]["resources"]["logic_levels"] < points["p00"]["resources"]["logic_levels"]
    assert scan["budget"] == {"latency_ns": 100, "LUT": {"percent": 5.0}}
    assert scan["recommended"]["id"] in ("p00", "p01") and set(scan["pareto"]) <= {"p00", "p01"}
    md = (out / "scan.md").read_text()
    assert "failed: build: ConfigError" in md and f"**Recommended: {scan['recommended']['id']}**" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (out / "scan.html").read_text()
    timing = json.loads((out / "timing.json").read_text())
    assert timing["workers"] == 2 and timing["per_point"]["p00"]["synth_s"] > 0

    # The one-worker scan writes where the first one did (moved aside): its bundles then sit at the same
    # paths, so their Yosys runs are found in the synthesis cache (keyed by script and sources) and the
    # comparison is of everything the scan itself writes.
    two_workers = out.rename(tmp_path / "scan_two_workers")
    assert main(["scan", str(tiny_network), "--set", "pipeline=layer,1,0", "--workers", "1",
                 "--budget", "latency_ns=100,lut_pct=5", "-o", str(out)]) == 1
    alone = out
    assert json.loads((alone / "timing.json").read_text())["workers"] == 1
    one, two = json.loads((alone / "scan.json").read_text()), scan
    assert one == two, [(a["id"], {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)})
                        for a, b in zip(one["points"], two["points"]) if a != b] or "outside the points"
    for name in ("scan.json", "scan.md", "scan.html", "pareto.png"):
        assert (alone / name).read_bytes() == (two_workers / name).read_bytes(), name
    for p in (points["p00"], points["p01"]):  # and the bundles themselves
        for rel in json.loads((two_workers / p["bundle"] / "manifest.json").read_text())["files"]:
            assert (alone / p["bundle"] / rel).read_bytes() == (two_workers / p["bundle"] / rel).read_bytes(), rel


@pytest.mark.parametrize("args, culprit", [
    (["--set", "quantization.weight_bits=4,6"], "'quantization.weight_bits' is not a setting"),
    (["--set", "hls.no_such_key=1"], "'hls.no_such_key' is not a setting"),
    (["--set", "pipeline"], "expected KEY=V1,V2"),
    (["--set", "pipeline=1", "--budget", "latency_ms=3"], "unknown budget key 'latency_ms'"),
])
def test_bad_grid_is_one_line(tiny_network, tmp_path, capsys, args, culprit):
    status = main(["scan", str(tiny_network), *args, "-o", str(tmp_path / "scan")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and culprit in err and len(err.splitlines()) == 1
    assert not (tmp_path / "scan").exists()  # refused before any work


def test_grid_values_keep_precisions_whole():
    from trigger.scan import parse_set

    assert parse_set(["precision=fixed<8,3>, fixed<16,6>", "rtl.pipeline=layer,2"]) == {
        "precision": ["fixed<8,3>", "fixed<16,6>"], "rtl.pipeline": ["layer", 2]}


def test_scan_help_explains_the_grid(capsys):
    assert main(["scan", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--scheduler", "--workers", "--budget", "rtl.pipeline", "quantization.weight_bits", "Pareto"):
        assert text in out


@pytest.mark.slow  # hls4ml conversion, C simulation, Icarus and Yosys for each II
def test_ii_curve_is_a_preset_of_the_scan(tiny_network, dask_scheduler_address, tmp_path, capsys):
    """`trigger ii-curve` runs the scan engine over the grid ii with every point verified 3-way: the curve's
    points carry the scan's figures, bundles sit at DIR/ii<N>, an II the model cannot use is skipped, and
    `trigger report` on a point shows the curve. It runs on the session's Dask cluster, whose workers have
    imported TensorFlow and hls4ml already (a LocalCluster of its own would import them again)."""
    out = tmp_path / "curve"
    assert main(["ii-curve", str(tiny_network), "--ii-values", "1,2,1000", "--vectors", "300",
                 "--scheduler", dask_scheduler_address, "--sim", "icarus",
                 "-o", str(out)]) == 0  # Icarus: no Verilator models to compile per II
    assert json.loads((out / "timing.json").read_text())["workers"] == 2
    curve = json.loads((out / "ii_curve.json").read_text())
    scan = json.loads((out / "scan.json").read_text())
    assert [p["ii"] for p in curve["points"]] == [1, 2] and [s["ii"] for s in curve["skipped"]] == [1000]
    assert "larger than" in curve["skipped"][0]["reason"]
    assert scan["simulator"] == "icarus" and scan["not_bit_exact"] == []  # --sim reaches every point
    by_id = {p["id"]: p for p in scan["points"]}
    for point in curve["points"]:
        record = by_id[f"ii{point['ii']}"]
        assert point["bundle"] == f"ii{point['ii']}" and (out / point["bundle"] / "manifest.json").exists()
        assert point["bit_exact"] and point["ii_measured"] == point["ii"] and point["vectors"] >= 300
        assert all(v == 0 for v in point["mismatches"].values()) and point["mismatches"]
        for figure in ("LUT", "FF", "DSP", "BRAM", "CARRY"):  # one synthesis function for the scan and the curve
            assert point[figure] == record["resources"][figure], figure
        assert point["critical_path_ns"] == record["resources"]["critical_path_ns"]
    assert curve["points"][1]["LUT_vs_first"] is not None
    assert "| 2 |" in (out / "ii_curve.md").read_text() and (out / "ii_curve.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    (tmp_path / "budget.yml").write_text("budget: {latency_ns: 1000}\n")  # the model's LUT % needs synthesis
    assert main(["report", str(out / "ii2"), "--no-synth", "--budget", str(tmp_path / "budget.yml")]) == 0
    assert json.loads((out / "ii2" / "reports" / "report.json").read_text())["ii_curve"]["points"][1]["ii"] == 2
