"""Writes tests/data/keras3/: .keras archives saved by Keras 3 with QKeras for Keras 3 (qkeras-v3), whose
quantizer configs carry the arguments QKeras releases newer than 0.9 added, and that QKeras' own outputs
on probe inputs, so the tests check trigger's reader (QKeras 0.9, Keras 2) against the newer QKeras.

Needs .venv-keras3 (scripts/setup_keras3.sh); run: .venv-keras3/bin/python scripts/make_keras3_archive.py

- qkeras_v3.keras: what Keras 3.15 + qkeras-v3 1.2.1 write for a functional QKeras network, unchanged:
  every quantized_bits config has ``post_training_scale`` (null where unset); the first layer's kernel
  quantizer is ``alpha="auto_po2"`` with ``post_training_scale`` set to the scale that auto_po2 computes
  from the kernel, as ``qkeras.utils`` does when it freezes the scales of a trained model.
- qkeras_v3_all_arguments.keras: the same archive with the other newer arguments written into
  config.json (neither release's ``get_config`` writes them, so only a hand-made config has them):
  ``elements_per_scale`` / ``min_po2_exponent`` / ``max_po2_exponent`` at null in every quantized_bits
  and ``enable_fast_inference: true`` in every quantized_relu (google/qkeras master), values that do
  not change the arithmetic.
- qkeras_v3_expected.json: probe inputs on the ap_fixed<6,3> grid and the newer QKeras' predictions
  on them (exact in float32: every product and sum is representable, so the summation order of the
  backend does not matter).
"""

import io
import json
import os
import zipfile
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"  # qkeras-v3's quantizers and layers run on any Keras 3 backend

import keras  # noqa: E402
import numpy as np  # noqa: E402
import qkeras  # noqa: E402
from qkeras import QActivation, QDense, quantized_bits, quantized_relu  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "keras3"
N_IN = 8


def network(post_training_scale=None):
    inputs = keras.Input(shape=(N_IN,), name="features")
    kernel = quantized_bits(6, 0, alpha="auto_po2", post_training_scale=post_training_scale)
    x = QDense(12, kernel_quantizer=kernel, bias_quantizer=quantized_bits(6, 2, alpha=1), name="d1")(inputs)
    x = QActivation(quantized_relu(6, 2), name="r1")(x)
    x = QDense(8, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="d2")(x)
    x = QActivation(quantized_relu(6, 2), name="r2")(x)
    x = QDense(4, kernel_quantizer=quantized_bits(6, 1, alpha=1), bias_quantizer=quantized_bits(6, 1, alpha=1),
               name="out")(x)
    return keras.Model(inputs, x, name="qkeras_v3")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261207)
    trained = network()
    weights = [rng.normal(0, 0.6, w.shape).astype(np.float32) for w in trained.get_weights()]
    weights[0] *= np.float32(0.5)  # the auto_po2 kernel: scales of 1/4 .. 1 (see below)
    trained.set_weights(weights)
    # qkeras.utils' post-training flow: the scale auto_po2 computes from the kernel, frozen
    probe_quantizer = quantized_bits(6, 0, alpha="auto_po2")
    probe_quantizer(weights[0])
    scale = np.asarray(probe_quantizer.scale, dtype=np.float32)
    # Several different scales, none above 1: hls4ml 1.3's ApplyAlpha holds 1 where QKeras' auto_po2 scale
    # is 2 (a limitation of the converter, not of the archive reader), so larger scales would not verify.
    assert len(np.unique(scale)) > 1 and scale.max() <= 1, scale
    model = network(post_training_scale=scale)
    model.set_weights(weights)
    path = OUT / "qkeras_v3.keras"
    model.save(path)

    probe = np.round(rng.uniform(-4, 4 - 1 / 8, (256, N_IN)) * 8) / 8
    expected = np.asarray(model.predict(probe.astype(np.float32), verbose=0), dtype=np.float64)
    reloaded = keras.saving.load_model(path, custom_objects=_custom_objects())
    assert np.array_equal(np.asarray(reloaded.predict(probe.astype(np.float32), verbose=0)), expected)
    (OUT / "qkeras_v3_expected.json").write_text(json.dumps({
        "writer": f"keras {keras.__version__} ({keras.backend.backend()}), qkeras-v3 {qkeras.__version__}",
        "post_training_scale": scale.tolist(),
        "inputs": probe.tolist(), "outputs": expected.tolist()}) + "\n")

    _with_all_arguments(path, OUT / "qkeras_v3_all_arguments.keras")
    print(f"wrote {OUT}: keras {keras.__version__}, qkeras-v3 {qkeras.__version__}, scale {scale.ravel().tolist()}")


def _custom_objects():
    return {"QDense": QDense, "QActivation": QActivation, "quantized_bits": quantized_bits,
            "quantized_relu": quantized_relu}


def _with_all_arguments(source: Path, target: Path) -> None:
    """The archive with the newer arguments no get_config writes added at values that change nothing."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
        infos = {info.filename: info for info in archive.infolist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        for value in layer["config"].values():
            if not isinstance(value, dict):
                continue
            if value.get("class_name") == "quantized_bits":
                value["config"].update(elements_per_scale=None, min_po2_exponent=None, max_po2_exponent=None)
            elif value.get("class_name") == "quantized_relu":
                value["config"]["enable_fast_inference"] = True
    members["config.json"] = json.dumps(config).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(infos[name], data)
    target.write_bytes(buffer.getvalue())


if __name__ == "__main__":
    main()
