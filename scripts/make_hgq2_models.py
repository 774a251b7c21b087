"""Writes tests/data/hgq2/: small HGQ2 models trained on trigger's toy generators, saved by Keras 3 as
``.keras`` archives, with HGQ2's own outputs on fixed inputs, so the tests check trigger's HGQ2 reader
(which never imports HGQ2 or Keras 3) against HGQ2 itself.

Needs .venv-hgq2 (scripts/setup_hgq2.sh); run: .venv-hgq2/bin/python scripts/make_hgq2_models.py

- hgq2_jet_tagger.keras: 16 -> QDense 64 -> 32 -> 32 (relu) -> QDense 5 (logits) on trigger.data.jets; HGQ2's
  default quantizers: per-element input quantizers on every layer (KIF, RND, WRAP, ranges traced with
  ``trace_minmax``), per-weight kernel and per-element bias quantizers (KBI, RND, SAT_SYM), EBOPs regularised.
- hgq2_conv2d.keras: 8x8x1 calorimeter images (trigger.data.calo) -> QConv2D 3x3x4 (relu) -> Flatten -> QDense 2.
- hgq2_merge.keras: functional: features -> QBatchNormDense 16 (relu) and QDense 16 (relu) -> QAdd -> QDense 5,
  on trigger.data.jets (the batch norm fused into the kernel as HGQ2 does).
- hgq2_einsum.keras: a set of 16 jet constituents (trigger.data.constituents) -> QEinsumDense 'abc,cd->abd' 8 (relu,
  the same dense on every constituent) -> Flatten -> QDense 3.
- hgq2_pool.keras: the calorimeter images -> QConv2D 3x3x4 ('same', relu) -> QMaxPooling2D 2x2 -> Flatten -> QDense 2.
- hgq2_expected.npz: per model ``<model>/inputs`` (held-out events, float32), ``<model>/outputs`` (HGQ2's
  predictions on them, float32) and HGQ2's quantized kernels and biases (``<model>/<layer>/qkernel``, ``qbias``).
- hgq2_expected.json: the versions that wrote them, and per model the EBOPs HGQ2 reports (per layer and total) and
  the HGQ2 model's accuracy on the held-out events.

With ``--example`` it writes the built-in example instead, models/jet_tagger_hgq2/: the jet tagger of
models/jet_tagger (16 -> 64 -> 32 -> 32 -> 5, the same toy jets: 200,000 for training with seed 1, 50,000 for
testing with seed 1001) trained with HGQ2 at three resource targets (EBOPs penalties beta), one archive each,
and ``example.json``: per target the EBOPs HGQ2 reports after ``trace_minmax`` and the test accuracy, plus the
test accuracy of the same network trained in float (plain Keras, no quantizers).

The data come from trigger.data (numpy only; imported from the checkout, nothing else of trigger is used).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"

import importlib.metadata as metadata  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from trigger.data import calo, constituents, jets  # noqa: E402  (numpy only)

from hgq.config import LayerConfigScope  # noqa: E402
from hgq.layers import QAdd, QBatchNormDense, QConv2D, QDense, QEinsumDense, QMaxPooling2D  # noqa: E402
from hgq.utils import trace_minmax  # noqa: E402

OUT = Path(os.environ.get("HGQ2_TEST_DATA", ROOT / "tests" / "data" / "hgq2"))  # elsewhere to compare first
N_PROBE = 200


def jet_tagger():
    x = inputs = keras.Input((16,), name="features")
    for k, units in enumerate((64, 32, 32)):
        x = QDense(units, activation="relu", name=f"fc{k + 1}")(x)
    return keras.Model(inputs, QDense(5, name="output")(x), name="hgq2_jet_tagger")


def conv2d():
    inputs = keras.Input((8, 8, 1), name="image")
    x = QConv2D(4, (3, 3), activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, QDense(2, name="output")(x), name="hgq2_conv2d")


def merge():
    inputs = keras.Input((16,), name="features")
    a = QBatchNormDense(16, activation="relu", name="bn_dense")(inputs)
    b = QDense(16, activation="relu", name="dense")(inputs)
    x = QAdd(name="add")([a, b])
    return keras.Model(inputs, QDense(5, name="output")(x), name="hgq2_merge")


def pool():
    inputs = keras.Input((8, 8, 1), name="image")
    x = QConv2D(4, (3, 3), padding="same", activation="relu", name="conv")(inputs)
    x = QMaxPooling2D((2, 2), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, QDense(2, name="output")(x), name="hgq2_pool")


def einsum():
    inputs = keras.Input((16, 3), name="constituents")
    x = QEinsumDense("abc,cd->abd", output_shape=(16, 8), bias_axes="d", activation="relu", name="phi")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, QDense(3, name="output")(x), name="hgq2_einsum")


def train(model, x, y, epochs):
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=512, epochs=epochs, verbose=0)
    trace_minmax(model, x, batch_size=4096)  # the WRAP input quantizers' integer bits cover the training data
    return model


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(20261207)
    x_jets, y_jets = jets.generate(60_000, seed=11)
    x_calo, y_calo = calo.generate(20_000, seed=12)
    x_calo = x_calo.astype(np.float32)
    x_sets, y_sets = constituents.generate(30_000, seed=13)
    expected = {"writer": {"keras": keras.__version__, "backend": keras.backend.backend(),
                           "hgq2": metadata.version("hgq2"), "quantizers": metadata.version("quantizers"),
                           "jax": metadata.version("jax")}, "models": {}}
    arrays = {}
    specs = [(jet_tagger, x_jets, y_jets, 8, 1e-6), (conv2d, x_calo, y_calo, 6, 1e-6), (merge, x_jets, y_jets, 6, 1e-6),
             (einsum, x_sets, y_sets, 6, 1e-6), (pool, x_calo, y_calo, 6, 1e-6)]
    for build, x, y, epochs, beta in specs:
        n_train = int(len(x) * 0.8)
        with LayerConfigScope(enable_ebops=True, beta0=beta):
            model = build()
        train(model, x[:n_train], y[:n_train], epochs)
        path = OUT / f"{model.name}.keras"
        trained, model = model, keras.Model.from_config(model.get_config())  # uncompiled: no optimizer state saved
        model.set_weights(trained.get_weights())
        model.save(path)
        probe = x[n_train:n_train + N_PROBE]
        outputs = np.asarray(model.predict(probe, verbose=0))
        reloaded = keras.saving.load_model(path)
        assert np.array_equal(np.asarray(reloaded.predict(probe, verbose=0)), outputs)
        test_x, test_y = x[n_train:], y[n_train:]
        accuracy = float(np.mean(np.argmax(model.predict(test_x, verbose=0, batch_size=4096), axis=1) == test_y))
        arrays[f"{model.name}/inputs"] = probe.astype(np.float32)
        arrays[f"{model.name}/outputs"] = outputs.astype(np.float32)
        for layer in model.layers:
            if hasattr(layer, "qkernel"):
                arrays[f"{model.name}/{layer.name}/qkernel"] = np.asarray(layer.qkernel, dtype=np.float32)
                if layer.bias is not None:
                    arrays[f"{model.name}/{layer.name}/qbias"] = np.asarray(layer.qbias, dtype=np.float32)
        ebops = {layer.name: int(np.asarray(layer.ebops))
                 for layer in model.layers if getattr(layer, "enable_ebops", 0)}
        expected["models"][model.name] = {"file": path.name, "probe_events": N_PROBE, "ebops": ebops,
                                          "ebops_total": int(sum(ebops.values())), "hgq2_accuracy": accuracy,
                                          "test_events": int(len(test_x))}
        print(f"{model.name}: accuracy {accuracy:.4f}, EBOPs {sum(ebops.values())}, {path.stat().st_size} bytes")
    np.savez_compressed(OUT / "hgq2_expected.npz", **arrays)
    (OUT / "hgq2_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


EXAMPLE = ROOT / "models" / "jet_tagger_hgq2"
EXAMPLE_BETAS = {"small": 3e-5, "medium": 1e-5, "large": 3e-6}  # resource targets: EBOPs penalty per target


def example() -> None:
    """The built-in example's archives: the QKeras jet tagger's network and data, HGQ2 at three betas."""
    EXAMPLE.mkdir(parents=True, exist_ok=True)
    x, y = jets.generate(200_000, seed=1)
    xt, yt = jets.generate(50_000, seed=1001)
    out = {"writer": {"keras": keras.__version__, "backend": keras.backend.backend(),
                      "hgq2": metadata.version("hgq2"), "quantizers": metadata.version("quantizers")},
           "data": {"generator": "jets", "n_train": 200_000, "seed": 1, "n_test": 50_000, "test_seed": 1001},
           "epochs": 12, "batch_size": 1024, "targets": {}}
    keras.utils.set_random_seed(7)
    inputs = keras.Input((16,), name="features")
    h = inputs
    for k, units in enumerate((64, 32, 32)):
        h = keras.layers.Dense(units, activation="relu", name=f"fc{k + 1}")(h)
    floating = keras.Model(inputs, keras.layers.Dense(5, name="output")(h))
    floating.compile(optimizer=keras.optimizers.Adam(3e-3),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    floating.fit(x, y, batch_size=1024, epochs=12, verbose=0)
    out["float_accuracy"] = float(np.mean(np.argmax(floating.predict(xt, verbose=0, batch_size=8192), 1) == yt))
    print(f"float: accuracy {out['float_accuracy']:.4f}")
    for target, beta in EXAMPLE_BETAS.items():
        keras.utils.set_random_seed(7)
        with LayerConfigScope(enable_ebops=True, beta0=beta):
            model = jet_tagger()
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=1024, epochs=12, verbose=0)
        ebops = int(trace_minmax(model, x, batch_size=8192))
        trained, model = model, keras.Model.from_config(model.get_config())
        model.set_weights(trained.get_weights())
        path = EXAMPLE / f"jet_tagger_hgq2_{target}.keras"
        model.save(path)
        accuracy = float(np.mean(np.argmax(model.predict(xt, verbose=0, batch_size=8192), 1) == yt))
        out["targets"][target] = {"file": path.name, "beta": beta, "ebops": ebops, "hgq2_accuracy": accuracy}
        print(f"{target}: beta {beta}, EBOPs {ebops}, accuracy {accuracy:.4f}, {path.stat().st_size} bytes")
    (EXAMPLE / "example.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", action="store_true",
                        help="write models/jet_tagger_hgq2/ instead of the tests' data")
    if parser.parse_args().example:
        example()
    else:
        main()
