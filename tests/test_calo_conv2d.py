"""The built-in Conv2D example: toy calorimeter images, a QKeras Conv2D trained in the flow, built and verified."""

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.helpers import REPO, assert_certified
from trigger.data import calo

CALO = REPO / "models" / "calo_conv2d"
VECTORS = 5000
# The example trains on 40,000 images for 8 epochs and measures its accuracies on 20,000; the test trains the
# same network on 10,000 images for 4 epochs and measures on 5,000 (accuracies ~0.95, firmware within 0.004
# of QKeras: the assertions hold with margin; the example as shipped runs in `make demo`).
N_TRAIN, N_TEST, EPOCHS = 10_000, 5_000, 4


def test_calo_images_are_seeded_and_physical():
    x, y = calo.generate(4000, seed=5)
    x2, y2 = calo.generate(4000, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (4000, calo.GRID, calo.GRID, 1) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [2000, 2000]
    # electromagnetic showers are compact: the hottest 2x2 towers hold more of the energy than a hadron's
    total = x.sum(axis=(1, 2, 3))
    windows = np.lib.stride_tricks.sliding_window_view(x[..., 0], (2, 2), axis=(1, 2)).sum(axis=(-1, -2))
    core = windows.reshape(len(x), -1).max(axis=1) / total
    assert np.median(core[y == 0]) > np.median(core[y == 1]) + 0.15
    assert not np.array_equal(x, calo.generate(4000, seed=6)[0])


@pytest.mark.library  # the example's verification checks its emulator library too
@pytest.mark.slow  # trains the example network, hls4ml C simulation and a Verilator build
def test_calo_conv2d_example_end_to_end(tmp_path):
    from trigger.cli import main

    example = tmp_path / "example"
    shutil.copytree(CALO, example)
    config = yaml.safe_load((example / "trigger.yml").read_text())
    config["dataset"].update(n_train=N_TRAIN, n_test=N_TEST)
    config["train"]["epochs"] = EPOCHS
    (example / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "calo_conv2d"
    assert main(["build", str(example), "-o", str(out), "--vectors", str(VECTORS)]) == 0
    training = json.loads((out / "reports" / "training.json").read_text())
    assert training["quantized_accuracy"] > 0.85 and training["float_accuracy"] > 0.85
    assert abs(training["firmware_accuracy"] - training["quantized_accuracy"]) < 0.02
    model = json.loads((out / "firmware_model.json").read_text())
    assert [op["op"] for op in model["ops"]] == ["conv2d", "relu", "max_pool", "dense", "relu", "dense"]
    assert main(["verify", str(out)]) == 0
    assert_certified(json.loads((out / "reports" / "verify.json").read_text()), VECTORS)
