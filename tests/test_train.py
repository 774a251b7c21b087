"""The built-in example: toy jet data, seeded QKeras training, conversion to a bit-exact firmware model."""

import numpy as np
import pytest
import yaml

from tests.helpers import JET_TAGGER_CONFIG, assert_same
from trigger.data import jets


def test_jets_are_seeded_standardised_and_separable():
    x, y = jets.generate(20000, seed=5)
    x2, y2 = jets.generate(20000, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (20000, jets.N_FEATURES) and set(np.unique(y)) == set(range(jets.N_CLASSES))
    assert np.all(np.abs(x.mean(axis=0)) < 0.1) and np.all(np.abs(x.std(axis=0) - 1) < 0.15)
    mass = x[:, jets.FEATURES.index("mass_mmdt")]
    means = [mass[y == k].mean() for k in range(jets.N_CLASSES)]
    assert means[jets.CLASSES.index("t")] > means[jets.CLASSES.index("Z")] > means[jets.CLASSES.index("W")] > means[0]


@pytest.mark.slow  # two trainings and a C simulation
def test_jet_tagger_trains_deterministically_and_converts_bit_exact(tmp_path):
    from trigger.backends.hls.hls4ml_project import csim_project
    from trigger.frontends.network import convert
    from trigger.ir import emulate
    from trigger.frontends.keras import load_model
    from trigger.quiet import quiet_stdout
    from trigger.train import train

    cfg = yaml.safe_load(JET_TAGGER_CONFIG.read_text())
    cfg["dataset"].update(n_train=20000, n_test=5000)
    cfg["train"]["epochs"] = 2
    first = train(cfg, tmp_path / "a")
    second = train(cfg, tmp_path / "b")
    assert first.json_path.read_text() == second.json_path.read_text()
    a, b = load_model(first.json_path), load_model(second.json_path)
    assert all(np.array_equal(u, v) for u, v in zip(a.keras.get_weights(), b.keras.get_weights()))
    assert 0.5 < first.quantized_accuracy <= 1 and 0.5 < first.float_accuracy <= 1  # 5 classes: chance is 0.2
    assert a.softmax_dropped and [c for _, c in a.layers].count("QDense") == 4

    hls_model, fw = convert(a, cfg, output_dir=tmp_path / "hls")
    assert [op.n_out for op in fw.ops if op.kind == "dense"] == [64, 32, 32, 5]
    x, _ = jets.generate(5000, seed=99)
    fmt = fw.input.format
    raw = fmt.quantize(np.clip(x, fmt.min_value, fmt.max_value))
    with quiet_stdout():
        hls_model.write()
    c, _ = csim_project(tmp_path / "hls", fw, raw)
    assert_same(fw, raw, c, emulate(fw, raw).outputs, ("csim", "emulator"))
