"""The built-in anomaly-detection example (models/anomaly_detector): the toy Level-1 event generator, the
autoencoder whose output is its score, the physics of a threshold at a target rate, and the example built
and verified end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from trigger.data import l1_events

EXAMPLE = Path(__file__).resolve().parents[1] / "models" / "anomaly_detector"
# The example trains on 200,000 zero-bias events for 10 epochs and sets its threshold on 10^6; the tests train
# on 8,000 for one epoch (what they assert does not depend on how well the autoencoder reconstructs) and the
# build sets the threshold on 40,000 events (1 expected above it at 1 kHz).
TRAIN_EVENTS, TEST_EVENTS, EPOCHS = 8000, 2000, 1
ZERO_BIAS_EVENTS = 40_000


def test_l1_events_are_seeded_integers_in_hardware_units():
    a = l1_events.events(20000, seed=3)
    assert a.shape == (20000, l1_events.N_OBJECTS, 3) and a.dtype == np.int16
    assert np.array_equal(a, l1_events.events(20000, seed=3))
    assert not np.array_equal(a, l1_events.events(20000, seed=4))
    assert not np.array_equal(a, l1_events.events(20000, seed=3, process="high_met"))
    pt, eta, phi = a[..., 0], a[..., 1], a[..., 2]
    assert pt.min() >= 0 and pt.max() < 1 << l1_events.PT_BITS
    assert np.abs(eta).max() <= l1_events.ETA_MAX_RAW
    assert phi.min() >= -l1_events.PHI_UNITS // 2 and phi.max() < l1_events.PHI_UNITS // 2
    empty = pt == 0
    assert not eta[empty].any() and not phi[empty].any()  # empty slots are zero
    assert not a[:, -1, 1].any()  # missing ET has no eta
    slot = 0
    for _, k in l1_events.OBJECTS:  # each object type pT-ordered, hardest first, empty slots last
        assert np.all(np.diff(pt[:, slot:slot + k].astype(int), axis=1) <= 0)
        slot += k
    # delivered pT thresholds (0.5 GeV units): jets from 20 GeV, e/gamma from 5, muons from 3
    for (kind, _), lo in zip(l1_events.OBJECTS[:3], (0, 4, 8)):
        block = pt[:, lo:lo + 4]
        assert block[block > 0].min() * l1_events.PT_LSB >= l1_events.THRESHOLD_GEV[kind]
    x, y = l1_events.generate(1000, seed=3)
    assert x.shape == (1000, l1_events.N_FEATURES) and x.dtype == np.float32 and not y.any()
    assert np.array_equal(x, l1_events.events(1000, seed=3).reshape(1000, -1) * 2.0 ** -l1_events.SCALE_BITS)  # exactly fixed<12,6>
    assert np.array_equal(np.round(x * 64), x * 64) and np.abs(x).max() < 32


def test_signals_differ_from_zero_bias_as_described():
    zb = l1_events.events(20000, seed=5)
    phys = {p: l1_events.events(20000, seed=5, process=p) for p in l1_events.SIGNALS}
    assert np.median(l1_events.ht(zb)) < 30  # mostly soft: most zero-bias events have no jet above 20 GeV
    assert np.median(l1_events.ht(phys["dijet_resonance"])) > 200
    leptons = phys["leptoquark"][:, 4:12, 0].max(axis=1) * l1_events.PT_LSB
    assert np.mean(leptons > 50) > 0.5 and np.mean(zb[:, 4:12, 0].max(axis=1) * 0.5 > 50) < 1e-3
    assert np.mean((phys["soft_multijet"][:, :4, 0] > 0).sum(axis=1) == 4) > 0.3
    assert np.median(phys["high_met"][:, -1, 0]) * 0.5 > 3 * np.median(zb[:, -1, 0]) * 0.5
    with pytest.raises(Exception, match="unknown process"):
        l1_events.events(10, process="susy")


def test_threshold_gives_the_target_rate():
    from trigger.anomaly import anomaly_numbers, threshold_for_rate

    rng = np.random.default_rng(1)
    background = rng.exponential(1.0, 1_000_000)
    threshold, passed, rate = threshold_for_rate(background, 1000.0, 40e6)
    assert passed == 25 and rate == pytest.approx(1000.0) and np.count_nonzero(background > threshold) == 25
    _, passed, rate = threshold_for_rate(background, 10e3, 40e6)
    assert passed == 250 and rate == pytest.approx(10e3)
    coarse = np.floor(background * 8) / 8  # ties at the threshold: a comparator cannot split them, the rate drops
    threshold, passed, rate = threshold_for_rate(coarse, 1000.0, 40e6)
    assert passed <= 25 and rate <= 1000.0 and np.count_nonzero(coarse >= threshold) > 25
    signal = rng.exponential(3.0, 20000)
    numbers = anomaly_numbers({"float": background, "firmware": coarse, "qkeras": coarse.copy()},
                              {"toy": {"float": signal, "firmware": np.floor(signal * 8) / 8,
                                       "qkeras": np.floor(signal * 8) / 8 + (np.arange(20000) == 7)}},
                              firmware_lsb=1 / 8)
    assert numbers["thresholds"]["float"]["zero_bias_passed"] == 25
    eff = numbers["efficiency"]["float"]["toy"]["efficiency"]
    assert eff == pytest.approx(np.mean(signal > numbers["thresholds"]["float"]["threshold"]), abs=1e-6)
    at_1khz = int(np.argmin(np.abs(np.asarray(numbers["rate_grid_hz"]) - 1000.0)))
    assert numbers["efficiency_vs_rate"]["float"]["toy"][at_1khz] == eff  # the curve sets thresholds the same way
    assert numbers["thresholds"]["firmware"]["threshold_raw"] * (1 / 8) == numbers["thresholds"]["firmware"]["threshold"]
    assert numbers["firmware_vs_qkeras"]["zero_bias"]["equal"] == 1_000_000
    assert numbers["firmware_vs_qkeras"]["toy"]["equal"] == 19999 and not numbers["firmware_equals_qkeras"]


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_autoencoder_refuses_a_difference_float32_cannot_square_and_sum_exactly():
    from trigger.errors import ConfigError
    from trigger.train import build_autoencoder

    with pytest.raises(ConfigError, match="quantization.difference of 10 bits"):
        build_autoencoder(39, [4], 2, {"difference": [10, 4]})
    with pytest.raises(ConfigError, match=r"quantization.latent must be \[bits, integer\]"):
        build_autoencoder(39, [4], 2, {"latent": 10})


@pytest.mark.slow  # a short training (a few seconds)
def test_autoencoder_outputs_its_reconstruction_error(tmp_path):
    from trigger.train import anomaly_score, train

    cfg = yaml.safe_load((EXAMPLE / "trigger.yml").read_text())
    cfg["dataset"].update(n_train=TRAIN_EVENTS, n_test=TEST_EVENTS)
    cfg["train"]["epochs"] = EPOCHS
    trained = train(cfg, tmp_path)
    assert trained.kind == "autoencoder" and trained.json_path.exists() and trained.weights_path.exists()
    arch = json.loads(trained.json_path.read_text())
    classes = [layer["class_name"] for layer in arch["config"]["layers"]]
    assert classes[-3:] == ["Subtract", "QActivation", "Dot"] and arch["class_name"] == "Functional"
    model = trained.quantized_model
    x = l1_events.features(l1_events.events(3000, seed=99, process="dijet_resonance"))
    score = model.predict(x, verbose=0)[:, 0].astype(np.float64)
    # the deployed score is the training model's squared error, with the difference quantized as declared
    import tensorflow as tf

    reco = tf.keras.Model(model.input, model.get_layer("reconstruction_q").output).predict(x, verbose=0)
    d = np.clip(np.round((x.astype(np.float64) - reco) * 32), -256, 255) / 32  # quantized_bits(9, 3)
    assert np.array_equal(score, np.sum(d * d, axis=1))
    assert np.all(score * 1024 == np.round(score * 1024))  # on the 2^-10 grid the firmware's Dot holds exactly
    assert anomaly_score(trained.float_model, x).shape == (3000,)
    assert 0 < trained.float_loss < 1 and 0 < trained.quantized_loss < 1


@pytest.mark.library  # the example's verification checks its emulator library too
@pytest.mark.slow  # training, hls4ml, C and RTL simulation
def test_example_builds_and_verifies_bit_exact(tmp_path):
    if not Path("/tmp/graph_ready").exists():
        pytest.skip("the graph firmware model has not landed")
    from tests.helpers import assert_certified, build_and_verify

    cfg = yaml.safe_load((EXAMPLE / "trigger.yml").read_text())
    cfg["dataset"].update(n_train=TRAIN_EVENTS, n_test=TEST_EVENTS, zero_bias_events=ZERO_BIAS_EVENTS,
                          signal_events=1000)
    cfg["train"]["epochs"] = EPOCHS
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "trigger.yml").write_text(yaml.safe_dump(cfg))
    bundle = build_and_verify(model_dir, tmp_path / "bundle", "--vectors", "2000")
    assert bundle.build_status == 0 and bundle.verify_status == 0
    assert_certified(bundle.verify, vectors=2000)
    assert bundle.manifest["source_model"]["exact"]  # Keras' float32 computes the score exactly: it must equal
    bundle = bundle.path
    numbers = json.loads((bundle / "reports" / "anomaly.json").read_text())
    assert numbers["firmware_equals_qkeras"]
    assert numbers["zero_bias_events"] == ZERO_BIAS_EVENTS
    assert numbers["thresholds"]["firmware"]["zero_bias_passed"] <= 1  # 2.5e-5 of 4 x 10^4 events
    assert (bundle / "reports" / "plots" / "anomaly_scores.png").exists()
