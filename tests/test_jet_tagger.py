"""The built-in jet tagger example: train (seeded), build and verify."""

import json
import shutil

import pytest
import yaml

from tests.helpers import JET_TAGGER, assert_certified
from trigger.cli import main

# The example's trigger.yml stores 100,000 vectors and trains on 200,000 jets for 12 epochs; the test
# keeps a sample of the vectors and trains the same network on 80,000 jets for 6 epochs (the example as
# shipped runs in `make demo`, scripts/bench_demo.py).
VECTORS = 10_000
N_TRAIN, EPOCHS = 80_000, 6


@pytest.mark.library  # the example's verification checks its emulator library too (~5 CPU-s of g++)
@pytest.mark.slow  # trains the example network, then a Verilator build of a 16-64-32-32-5 network
def test_jet_tagger_example_end_to_end(tmp_path):
    example = tmp_path / "example"
    shutil.copytree(JET_TAGGER, example)
    config = yaml.safe_load((example / "trigger.yml").read_text())
    config["dataset"]["n_train"], config["train"]["epochs"] = N_TRAIN, EPOCHS
    (example / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "jet_tagger"
    assert main(["build", str(example), "-o", str(out), "--vectors", str(VECTORS)]) == 0
    training = json.loads((out / "reports" / "training.json").read_text())
    assert training["quantized_accuracy"] > 0.6 and training["float_accuracy"] > 0.6
    assert abs(training["float_accuracy"] - training["quantized_accuracy"]) < 0.05
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 16 and len(manifest["outputs"]) == 5
    assert manifest["rtl"]["pipeline"] == "auto" and manifest["target"]["clock_mhz"] == 200.0
    assert manifest["budget"]["latency_ns"] == 100
    assert main(["verify", str(out)]) == 0
    result = json.loads((out / "reports" / "verify.json").read_text())
    assert_certified(result, VECTORS)
    assert result["latency_cycles"] == manifest["latency_cycles"]
