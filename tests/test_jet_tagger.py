"""The built-in jet tagger example: train (seeded), build and verify."""

import json

import pytest

from helpers import JET_TAGGER, assert_certified
from trigger.cli import main

# The example's trigger.yml stores 100,000 vectors; the test keeps a sample of them (the full
# count runs in `make demo`). The training is the example's own (200,000 jets, 12 epochs).
VECTORS = 20_000


@pytest.mark.slow  # trains the example network, then a Verilator build of a 16-64-32-32-5 network
def test_jet_tagger_example_end_to_end(tmp_path):
    out = tmp_path / "jet_tagger"
    assert main(["build", str(JET_TAGGER), "-o", str(out), "--vectors", str(VECTORS)]) == 0
    training = json.loads((out / "reports" / "training.json").read_text())
    assert training["quantized_accuracy"] > 0.6 and training["float_accuracy"] > 0.6
    assert abs(training["float_accuracy"] - training["quantized_accuracy"]) < 0.05
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 16 and len(manifest["outputs"]) == 5
    assert manifest["rtl"]["pipeline"] == 3 and manifest["target"]["clock_mhz"] == 200.0
    assert manifest["budget"]["latency_ns"] == 100
    assert main(["verify", str(out)]) == 0
    result = json.loads((out / "reports" / "verify.json").read_text())
    assert_certified(result, VECTORS)
    assert result["latency_cycles"] == manifest["latency_cycles"]
