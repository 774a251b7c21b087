"""The built-in jet tagger example: train (seeded), build and verify on 100,000 vectors."""

import json
from pathlib import Path

from trigger.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "models" / "jet_tagger"


def test_jet_tagger_example_end_to_end(tmp_path):
    out = tmp_path / "jet_tagger"
    assert main(["build", str(EXAMPLE), "-o", str(out)]) == 0
    training = json.loads((out / "reports" / "training.json").read_text())
    assert training["quantized_accuracy"] > 0.6 and training["float_accuracy"] > 0.6
    assert abs(training["float_accuracy"] - training["quantized_accuracy"]) < 0.05
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["count"] == 16 and manifest["outputs"]["count"] == 5
    assert main(["verify", str(out)]) == 0
    result = json.loads((out / "reports" / "verify.json").read_text())
    assert result["vectors"] == 100_000
    assert set(result["mismatches"].values()) == {0}
    assert result["latency_cycles"] == manifest["latency_cycles"] and result["ii"] == 1
