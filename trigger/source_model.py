"""The source model as the fourth witness: the model the user brought, evaluated by its own framework.

Emulator == C simulation == RTL shows the firmware computes what the firmware
model says; this shows the firmware model computes what the user's model does.
The frontend, which has the model loaded, evaluates it (QKeras/Keras
``predict``, qonnx's executor, onnxruntime) on the real values of the bundle's
stored input vectors and ships the outputs as ``reports/source_outputs.npy``;
``trigger verify`` compares them with the firmware's outputs on the same vectors.

Quantized models (QKeras, QONNX) compute on representable values, so the
comparison is exact equality, counted like any other comparison. Float models
were quantized after training, so it reports the largest deviation in output
LSBs and how often the argmax (the class a trigger picks) agrees.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np

from trigger.errors import BundleError
from trigger.ir.model import FirmwareModel
from trigger.vectors import DEFAULT_SEED, test_vectors

OUTPUTS_FILE = "source_outputs.npy"  # under reports/
CHUNK = 8192  # vectors per framework call (bounded memory for 10^5+ vectors)
CONVERT_CHUNK = 8192  # events per quantize / to_float step: in cache, 3-4x faster than whole columns of 10^6 events


@dataclass
class SourceModel:
    """A source model ready to evaluate: real inputs (n, k) -> real outputs (n, m), float64."""

    framework: str  # "qkeras", "keras", "qonnx", "onnxruntime"
    exact: bool  # quantized arithmetic: the firmware must equal it bit for bit
    predict: Callable[[np.ndarray], np.ndarray]
    description: str = ""


def inputs_digest(raw: np.ndarray) -> str:
    """sha256 of the raw input integers (int64, C order): ties the outputs to the vectors they came from."""
    return hashlib.sha256(np.ascontiguousarray(raw, dtype=np.int64).tobytes()).hexdigest()


def evaluate(source: SourceModel, model: FirmwareModel, raw_inputs: np.ndarray) -> np.ndarray:
    """The source model's outputs on the real values of raw firmware inputs, in chunks."""
    real = model.input.to_float(raw_inputs)
    outs = []
    for start in range(0, len(real), CHUNK):
        out = np.asarray(source.predict(real[start:start + CHUNK]), dtype=np.float64)
        outs.append(out.reshape(len(real[start:start + CHUNK]), -1))
    result = np.vstack(outs) if outs else np.zeros((0, model.output.n))
    if result.shape[1] != model.output.n:
        raise BundleError(f"{model.name}: the source model gives {result.shape[1]} outputs, "
                          f"the firmware {model.output.n}")
    return result


def attach(design, source: SourceModel) -> None:
    """Evaluate the source model on the vectors the bundle will store and add them to ``design``.

    The bundle's stored vectors are ``test_vectors(model, design.vectors, seed, extra)`` with the
    bundle seed; the digest recorded here lets verify refuse outputs of other vectors.
    """
    model = design.model
    raw = test_vectors(model, design.vectors, DEFAULT_SEED, design.extra_vectors)
    outputs = evaluate(source, model, raw)
    buf = io.BytesIO()
    np.save(buf, outputs, allow_pickle=False)
    design.reports[OUTPUTS_FILE] = buf.getvalue()
    design.manifest["source_model"] = {"framework": source.framework, "exact": bool(source.exact),
                                       "description": source.description, "outputs": f"reports/{OUTPUTS_FILE}",
                                       "vectors": int(len(raw)), "inputs_sha256": inputs_digest(raw)}


def compare(section: dict, source_out: np.ndarray, raw_inputs: np.ndarray, firmware_raw: np.ndarray,
            model: FirmwareModel) -> dict:
    """The source model vs the firmware on the same vectors (firmware outputs as raw integers)."""
    if inputs_digest(raw_inputs) != section.get("inputs_sha256"):
        raise BundleError("reports/source_outputs.npy was computed on other vectors than vectors/inputs.npy")
    firmware = model.output.to_float(firmware_raw)
    if source_out.shape != firmware.shape:
        raise BundleError(f"source outputs have shape {source_out.shape}, the firmware's {firmware.shape}")
    lsb = np.array([f.lsb for f in model.output.formats])
    deviation = np.abs(source_out - firmware) / lsb  # in output LSBs
    result = {"framework": section["framework"], "exact": bool(section["exact"]),
              "description": section.get("description", ""), "vectors": int(len(firmware)),
              "max_deviation_lsb": float(deviation.max()) if deviation.size else 0.0,
              "median_deviation_lsb": float(np.median(deviation.max(axis=1))) if deviation.size else 0.0}
    # the class a trigger picks: the argmax of the (first) output tensor with several elements
    scored = [(name, first, n) for name, first, n in model.output_slices() if n > 1][:1]
    for name, first, n in scored:
        agree = np.argmax(source_out[:, first:first + n], axis=1) == np.argmax(firmware[:, first:first + n], axis=1)
        result["argmax_agreement"] = float(agree.mean()) if agree.size else 1.0
        result["argmax_disagreements"] = int((~agree).sum())
        if len(model.output_names) > 1:
            result["argmax_of"] = name
    rows = np.flatnonzero(np.any(source_out != firmware, axis=1))
    result["equal"] = int(len(firmware) - rows.size)
    result["mismatches"] = int(rows.size)
    if rows.size:
        i = int(rows[0])
        result["first_mismatch"] = {"vector": i, "input": model.input.to_float(raw_inputs[i:i + 1])[0].tolist(),
                                    "source": source_out[i].tolist(), "firmware": firmware[i].tolist()}
    return result


def describe(result: dict) -> str:
    """One line for a terminal."""
    head = f"source model ({result['framework']}) vs firmware on {result['vectors']} vectors: "
    if result["exact"]:
        text = head + f"{result['equal']} equal, {result['mismatches']} mismatches"
    else:
        text = head + (f"{result['equal']} equal (not required: float or rounded constants), largest deviation "
                       f"{result['max_deviation_lsb']:.3g} LSB, median {result['median_deviation_lsb']:.3g} LSB")
    if "argmax_agreement" in result:
        of = f" of {result['argmax_of']}" if result.get("argmax_of") else ""
        text += f", argmax{of} agrees on {100 * result['argmax_agreement']:.3f} %"
    return text


def quantize(t, x: np.ndarray) -> np.ndarray:
    """Raw integers of real rows for a tensor type (``TensorType.quantize``, in cache-sized blocks)."""
    if len(x) <= CONVERT_CHUNK:
        return t.quantize(x)
    one = t.formats[0] if t.is_uniform else None
    return np.vstack([one.quantize(x[i:i + CONVERT_CHUNK]) if one is not None else t.quantize(x[i:i + CONVERT_CHUNK])
                      for i in range(0, len(x), CONVERT_CHUNK)])


def to_float(t, raw: np.ndarray) -> np.ndarray:
    """Real values of raw rows for a tensor type (``TensorType.to_float``, in cache-sized blocks)."""
    if len(raw) <= CONVERT_CHUNK:
        return t.to_float(raw)
    one = t.formats[0] if t.is_uniform else None
    return np.vstack([one.to_float(raw[i:i + CONVERT_CHUNK]) if one is not None else t.to_float(raw[i:i + CONVERT_CHUNK])
                      for i in range(0, len(raw), CONVERT_CHUNK)])
