"""The built-in example: toy jet data, seeded QKeras training, conversion to a bit-exact firmware model."""

from pathlib import Path

import numpy as np
import yaml

from trigger.data import jets

CONFIG = Path(__file__).resolve().parents[1] / "models" / "jet_tagger" / "trigger.yml"


def test_jets_are_seeded_standardised_and_separable():
    x, y = jets.generate(20000, seed=5)
    x2, y2 = jets.generate(20000, seed=5)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (20000, jets.N_FEATURES) and set(np.unique(y)) == set(range(jets.N_CLASSES))
    assert np.all(np.abs(x.mean(axis=0)) < 0.1) and np.all(np.abs(x.std(axis=0) - 1) < 0.15)
    mass = x[:, jets.FEATURES.index("mass_mmdt")]
    means = [mass[y == k].mean() for k in range(jets.N_CLASSES)]
    assert means[jets.CLASSES.index("t")] > means[jets.CLASSES.index("Z")] > means[jets.CLASSES.index("W")] > means[0]


def test_jet_tagger_trains_deterministically_and_converts_bit_exact(tmp_path):
    from trigger.firmware.emulator import emulate, first_mismatch
    from trigger.hls import convert, csim
    from trigger.models import load_model
    from trigger.train import train

    cfg = yaml.safe_load(CONFIG.read_text())
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
    assert [l.n_out for l in fw.layers if hasattr(l, "weight")] == [64, 32, 32, 5]
    x, _ = jets.generate(5000, seed=99)
    raw = fw.input_fmt.quantize(np.clip(x, fw.input_fmt.min_value, fw.input_fmt.max_value))
    c, e = csim(hls_model, raw), emulate(fw, raw).outputs
    assert first_mismatch(e, c) is None
