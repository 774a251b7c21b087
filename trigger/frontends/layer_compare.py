"""Where the firmware and the model part ways: the source model vs the firmware model, layer by layer.

The fourth witness (``trigger.source_model``) compares outputs; when they differ,
the question is which layer made them differ. Here every layer of the model the
user brought is evaluated by its own framework (Keras: a ``tf.keras.Model`` whose
outputs are every layer's output; ONNX: qonnx's executor with the full execution
context) on the same input values as the firmware, and compared with the
firmware model's tensor of that layer: the op of the same name (hls4ml keeps the
Keras layer names; a ``Dense(activation=relu)`` is two ops, ``<name>`` and
``<name>_relu``, and the layer's output is the last of them). A layer hls4ml
folded into its neighbour (a batch norm into the dense before it) takes over
that op; layers that only move values (Flatten, Reshape, Dropout) are listed,
not compared. For ONNX the rows are the firmware's ops, each matched with the
node it is named after (``Dense_MatMul_0``: ``MatMul_0`` and its bias ``Add``;
a ``Quant`` right after a layer belongs to it; ``onnx_tensors``).

Per layer: the equal count (which must be every value where the source model is
exact, i.e. quantized with the firmware's own constants), else the largest and
median deviation in LSBs of the layer's firmware format, the largest deviation
relative to the layer's range, and the emulator's overflow count of the layer's
ops. The first layer that deviates (exact: any unequal value; otherwise a relative
deviation above ``tolerance``) is named, with the vector where it deviates most.

``trigger build`` writes the comparison on the stored vectors (the first ``BUILD_VECTORS``) to
``reports/layers.json``; ``trigger verify`` puts it into verify.json (``layers``)
after checking it belongs to the bundle's vectors and firmware model; the report
shows it (table and plot); ``trigger.Design.compare`` runs it on any inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

LAYERS_FILE = "layers.json"  # under reports/
TOLERANCE = 0.01  # inexact source: a layer deviates when max |diff| > 1 % of the layer's largest |value|
# Keras layers whose output is their input's values (reshaped or untouched at inference)
PASS_THROUGH = ("InputLayer", "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
                "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Permute")
EXAMPLE_ELEMENTS = 64  # values of the example vector's layer shown (the largest deviation always among them)
BLOCK = 4096  # vectors per step of the comparison
MEDIAN_VALUES = 1 << 21  # the median deviation of a layer is taken over its first 2M values
BUILD_VECTORS = 20_000  # at build time: the first stored vectors compared (all of them when fewer)
# A source that runs one sample at a time (an ONNX graph whose constants fix the batch: qonnx executes it node by
# node, one onnxruntime session per node and sample, ~14 ms a sample) compares its layers on this many vectors.
PER_SAMPLE_VECTORS = 200


@dataclass
class LayerSource:
    """A source model's layers, ready to evaluate on real inputs (n, k) -> {layer: (n, m) float64}."""

    framework: str
    exact: bool
    layers: list[tuple[str, str]]  # (name, class) of the layers evaluated, in order
    predict: Callable[[np.ndarray], dict]
    passed: dict = field(default_factory=dict)  # layer -> the layer whose values it passes on (Flatten, ...)
    max_vectors: int | None = None  # the first this many vectors are compared (None: all)


# ------------------------------------------------------------------ the source model's layers
def layer_source(loaded, exact: bool, fw=None) -> LayerSource | None:
    """The layers of a loaded source model (trigger.frontends.keras.LoadedModel or onnx.LoadedOnnx); ONNX needs
    the firmware model ``fw`` (its ops name the nodes they come from); a model that evaluates its own layers
    (trigger.frontends.hgq2.Hgq2Model) says so with ``layer_source``."""
    if hasattr(loaded, "layer_source"):
        return loaded.layer_source(exact)
    if hasattr(loaded, "keras"):
        return _keras_layers(loaded, exact)
    if hasattr(loaded, "wrapper") and fw is not None:
        return _onnx_layers(loaded, exact, fw)
    return None


def _keras_layers(loaded, exact: bool) -> LayerSource:
    import tensorflow as tf

    from trigger.frontends.keras import keras_predict

    model = loaded.keras
    layers, passed = [], {}
    for layer in model.layers:
        cls = type(layer).__name__
        if cls in PASS_THROUGH:
            if cls != "InputLayer":
                source = getattr(layer.input, "_keras_history", [None])[0]
                passed[layer.name] = getattr(source, "name", None)
            continue
        layers.append((layer.name, cls))
    outputs = [model.get_layer(name).output for name, _ in layers]
    probe = tf.keras.Model(model.inputs, outputs)
    shapes = loaded.input_shapes or [tuple(int(d) for d in model.input_shape[1:])]
    sizes = [int(np.prod(o.shape[1:])) for o in outputs]

    def predict(x: np.ndarray) -> dict:
        values = keras_predict(probe, shapes, x)
        out, at = {}, 0
        for (name, _), n in zip(layers, sizes):
            out[name] = values[:, at:at + n]
            at += n
        return out

    return LayerSource("qkeras" if loaded.quantized else "keras", exact, layers, predict, passed)


FOLLOWED = ("Add", "Sub", "Quant", "IntQuant")  # a bias or a quantizer hls4ml puts inside the layer before it


def onnx_tensors(graph, op_names: list[str]) -> dict[str, tuple[str, str | None]]:
    """Per firmware op: (the ONNX tensor holding its values, a transform or None). hls4ml names an op after its
    node (``Relu_0``; ``Dense_MatMul_0`` for MatMul + bias Add; ``bn_Add_0`` for a scaling): the node whose name
    ends the op's name, followed through a bias Add or a Quant that hls4ml folds into it; a BipolarQuant's
    -1/+1 is read as the firmware's 0/1."""
    nodes = {n.name: n for n in graph.node if n.name}
    constants = {i.name for i in graph.initializer}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    base = {}
    for op in op_names:
        found = [n for n in nodes if op == n or op.endswith("_" + n)]
        if found:
            base[op] = max(found, key=len)
    claimed = set(base.values())
    out = {}
    for op, name in base.items():
        tensor, transform = nodes[name].output[0], None
        while len(consumers.get(tensor, [])) == 1:
            nxt = consumers[tensor][0]
            if nxt.name in claimed:
                break
            if nxt.op_type == "BipolarQuant":
                tensor, transform = nxt.output[0], "bipolar"
                break
            if nxt.op_type not in FOLLOWED or (nxt.op_type in ("Add", "Sub") and
                                               not any(i in constants for i in nxt.input)):
                break
            tensor = nxt.output[0]
        out[op] = (tensor, transform)
    return out


def _onnx_layers(loaded, exact: bool, fw) -> LayerSource:
    """The graph hls4ml converted (channels last, like the firmware), each op's tensor from qonnx's executor."""
    from trigger.frontends.onnx import _with_batch
    from trigger.quiet import quiet_stdout

    wrapper = loaded.hls_wrapper or loaded.wrapper
    tensors = onnx_tensors(wrapper.graph, [op.name for op in fw.ops])
    layers = [(op.name, op.kind) for op in fw.ops if op.name in tensors]

    def predict(x: np.ndarray) -> dict:
        from qonnx.core.onnx_exec import execute_onnx

        model = _with_batch(wrapper, len(x)) if batched else None
        rows = [(model, x)] if model is not None else [(one, row[None]) for row in x]
        parts: dict[str, list] = {}
        for graph, batch in rows:
            feed, at = {}, 0  # the input bus split into the graph's inputs, one after another
            for value_info in graph.graph.input:
                shape = graph.get_tensor_shape(value_info.name)
                n = int(np.prod(shape[1:]))
                feed[value_info.name] = batch[:, at:at + n].reshape(shape).astype(np.float32)
                at += n
            with quiet_stdout():
                context = execute_onnx(graph, feed, return_full_exec_context=True)
            for layer, (tensor, transform) in tensors.items():
                value = np.asarray(context.get(tensor), np.float64)
                if value.ndim == 0 or value.size % len(batch):
                    continue
                value = value.reshape(len(batch), -1)
                parts.setdefault(layer, []).append((value + 1) / 2 if transform == "bipolar" else value)
        return {k: np.vstack(v) for k, v in parts.items()}

    one = _with_batch(wrapper, 1)
    batched = _with_batch(wrapper, 2) is not None
    return LayerSource("qonnx", exact, layers, predict, max_vectors=None if batched else PER_SAMPLE_VECTORS)


# ------------------------------------------------------------------ which op is which layer
def layer_map(fw, source: LayerSource) -> list[dict]:
    """Per source layer: the firmware op holding its output (``op``), or why there is none (``note``)."""
    names = [n for n, _ in source.layers]
    owner: dict[str, str] = {}
    for op in fw.ops:
        candidates = [n for n in names if op.name == n or op.name.startswith(n + "_")]
        if candidates:
            owner[op.name] = max(candidates, key=len)
    last: dict[str, str] = {}
    for op in fw.ops:  # op order: the layer's last op holds its output
        if op.name in owner:
            last[owner[op.name]] = op.name
    rows, previous = [], None
    for name, cls in source.layers:
        row = {"layer": name, "class": cls, "op": last.get(name)}
        if row["op"] is None and previous is not None and previous["op"] is not None and \
                source.framework in ("keras", "qkeras"):
            # hls4ml folded this layer into the one before (a batch norm into its dense, a quantizer into its
            # layer's result type): that op's output is this layer's
            row["op"], previous["op"] = previous["op"], None
            previous["note"] = f"folded into {name}'s op by hls4ml: compared there"
        if row["op"] is None and "note" not in row:
            row["note"] = "no op of this name in the firmware model"
        rows.append(row)
        previous = row
    for name, origin in source.passed.items():
        rows.append({"layer": name, "class": "pass-through", "op": None,
                     "note": f"passes on the values of {origin}: not compared"})
    return rows


# ------------------------------------------------------------------ the comparison
def compare_layers(fw, source: LayerSource, raw_inputs: np.ndarray, tolerance: float = TOLERANCE) -> dict:
    """The source model's layers vs the firmware model's tensors on raw firmware inputs (n, fw.input.n).

    The source model gets the real values of the raw inputs (exactly what the firmware computes on). Vectors
    go through in blocks of ``BLOCK``: memory stays bounded for wide layers and many vectors; the median
    deviation is taken over the first ``MEDIAN_VALUES`` values of a layer."""
    from trigger.ir.model import emulate

    offered = len(raw_inputs)
    raw_inputs = np.asarray(raw_inputs, dtype=np.int64)[:source.max_vectors]
    index = {op.name: k for k, op in enumerate(fw.ops)}
    rows = [dict(r) for r in layer_map(fw, source)]
    stats: dict[str, dict] = {}
    for start in range(0, len(raw_inputs), BLOCK):
        block = raw_inputs[start:start + BLOCK]
        real = fw.input.to_float(block)
        result = emulate(fw, block, trace=True)
        values = source.predict(real)
        for row in rows:
            name, op_name = row["layer"], row.get("op")
            if op_name is None:
                continue
            if name not in values:
                row["op"], row["note"] = None, "not evaluated by the source framework"
                continue
            op = fw.ops[index[op_name]]
            src = np.asarray(values[name], dtype=np.float64)
            fw_raw = np.asarray(result.trace[index[op_name]])
            if src.shape != fw_raw.shape:
                row["op"] = None
                row["note"] = f"{src.shape[1]} values in the source layer, {fw_raw.shape[1]} in op {op_name}: not compared"
                continue
            firm = op.output.to_float(fw_raw)
            lsb = np.array([f.lsb for f in op.output.formats])
            diff = np.abs(src - firm)
            dev = diff / lsb
            ops_of_layer = [o.name for o in fw.ops if o.name == name or o.name.startswith(name + "_")] or [op_name]
            st = stats.setdefault(name, {"values": 0, "equal": 0, "max_dev": -1.0, "max_diff": 0.0, "max_src": 0.0,
                                         "overflows": 0, "median": [], "kept": 0, "example": None})
            st["values"] += int(diff.size)
            st["equal"] += int(np.count_nonzero(diff == 0))
            st["max_diff"] = max(st["max_diff"], float(diff.max()) if diff.size else 0.0)
            st["max_src"] = max(st["max_src"], float(np.abs(src).max()) if src.size else 0.0)
            st["overflows"] += sum(c.overflows for o in ops_of_layer for c in (result.overflows.get(o) or {}).values())
            if st["kept"] < MEDIAN_VALUES:
                st["median"].append(dev.ravel()[:MEDIAN_VALUES - st["kept"]].astype(np.float32))
                st["kept"] += st["median"][-1].size
            if dev.size and float(dev.max()) > st["max_dev"]:
                vector, element = (int(v) for v in np.unravel_index(int(np.argmax(dev)), dev.shape))
                st["max_dev"] = float(dev.max())
                lo = max(0, min(element - EXAMPLE_ELEMENTS // 2, dev.shape[1] - EXAMPLE_ELEMENTS))
                st["example"] = {"layer": name, "op": op_name, "vector": start + vector, "element": element,
                                 "input": real[vector].tolist(), "source_value": float(src[vector, element]),
                                 "firmware_value": float(firm[vector, element]),
                                 "deviation_lsb": float(dev[vector, element]),
                                 "elements_shown": [lo, min(lo + EXAMPLE_ELEMENTS, dev.shape[1])],
                                 "source": src[vector, lo:lo + EXAMPLE_ELEMENTS].tolist(),
                                 "firmware": firm[vector, lo:lo + EXAMPLE_ELEMENTS].tolist()}
    first = None
    for row in rows:
        st = stats.get(row["layer"])
        if row.get("op") is None or st is None:
            row["op"] = None
            row.setdefault("note", "not compared")
            continue
        op = fw.ops[index[row["op"]]]
        rel = st["max_diff"] / st["max_src"] if st["max_src"] > 0 else float(st["max_diff"] > 0)
        deviates = st["equal"] < st["values"] if source.exact else rel > tolerance
        median = np.concatenate(st["median"]) if st["median"] else np.zeros(0)
        row.update({"format": op.output.describe(), "values": st["values"], "equal": st["equal"],
                    "max_deviation_lsb": max(st["max_dev"], 0.0),
                    "median_deviation_lsb": float(np.median(median)) if median.size else 0.0,
                    "max_relative_deviation": float(rel), "overflows": int(st["overflows"]),
                    "deviates": bool(deviates)})
        if deviates and first is None:
            first = st["example"]
    compared = [r for r in rows if r.get("op")]
    return {"framework": source.framework, "exact": bool(source.exact), "vectors": int(len(raw_inputs)),
            "vectors_offered": int(offered),
            "tolerance": None if source.exact else tolerance, "layers": rows,
            "compared": len(compared), "deviating": [r["layer"] for r in compared if r["deviates"]],
            "first_deviation": first, "all_equal": bool(compared) and all(r["equal"] == r["values"] for r in compared)}


def describe(section: dict) -> str:
    """One line for a terminal."""
    if not section or section.get("error"):
        return f"layer comparison unavailable ({(section or {}).get('error', 'no source model')})"
    head = f"layers ({section['framework']}) on {section['vectors']} vectors: {section['compared']} compared"
    if section.get("vectors_offered", section["vectors"]) > section["vectors"]:
        head = (f"layers ({section['framework']}, one sample at a time) on the first {section['vectors']} of "
                f"{section['vectors_offered']} vectors: {section['compared']} compared")
    first = section.get("first_deviation")
    if section["exact"]:
        text = head + (", every value equal" if section["all_equal"] else "")
    else:
        text = head + f" (tolerance {100 * section['tolerance']:.3g} % of each layer's range)"
    if first:
        text += (f"; first deviating layer {first['layer']} (op {first['op']}): vector {first['vector']} element "
                 f"{first['element']}, source {first['source_value']:.6g} vs firmware {first['firmware_value']:.6g}")
    elif not section["exact"]:
        text += "; no layer deviates beyond the tolerance"
    return text


# ------------------------------------------------------------------ build and verify
def attach_layers(design, loaded, exact: bool) -> None:
    """At build time: the comparison on the vectors the bundle will store, as ``reports/layers.json``.

    Never fails the build: a model whose layers cannot be evaluated records why."""
    from trigger.source_model import inputs_digest
    from trigger.vectors import DEFAULT_SEED, test_vectors

    model = design.model
    raw = test_vectors(model, design.vectors, DEFAULT_SEED, design.extra_vectors)
    try:
        source = layer_source(loaded, exact, model)
        section = compare_layers(model, source, raw[:BUILD_VECTORS]) if source is not None else \
            {"error": "no layer access"}
        section["stored_vectors"] = int(len(raw))
    except Exception as err:  # noqa: BLE001 - a diagnostic: the build goes on without it
        section = {"error": f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"}
    section["inputs_sha256"] = inputs_digest(raw)
    section["model_sha256"] = model.digest()
    design.reports[LAYERS_FILE] = (json.dumps(section, indent=2, sort_keys=True) + "\n").encode()


def stored_section(bundle, model, stored_inputs: np.ndarray) -> dict | None:
    """``reports/layers.json`` of a bundle, checked to belong to its stored vectors and firmware model (None: absent)."""
    from pathlib import Path

    from trigger.source_model import inputs_digest

    path = Path(bundle) / "reports" / LAYERS_FILE
    if not path.exists():
        return None
    section = json.loads(path.read_text())
    if section.get("inputs_sha256") != inputs_digest(stored_inputs) or section.get("model_sha256") != model.digest():
        return {"error": "reports/layers.json belongs to other vectors or another firmware model"}
    return section


def plot_png(section: dict) -> bytes | None:
    """Deviation per layer (largest and median, in LSBs of the layer's format; equal share for exact models)."""
    rows = [r for r in section.get("layers", []) if r.get("op")]
    if not rows:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["layer"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    floor = 1e-3  # zero deviations drawn at the floor of the log axis
    axes[0].bar(x - 0.2, [max(r["max_deviation_lsb"], floor) for r in rows], 0.4, label="largest", color="#ee6677")
    axes[0].bar(x + 0.2, [max(r["median_deviation_lsb"], floor) for r in rows], 0.4, label="median", color="#4477aa")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("|source - firmware| (LSB of the layer)")
    axes[0].set_title(f"Source model ({section['framework']}) vs firmware per layer")
    axes[0].legend(fontsize=7)
    first = (section.get("first_deviation") or {}).get("layer")
    colors = ["#c62828" if r["layer"] == first else ("#ccbb44" if r["deviates"] else "#228833") for r in rows]
    axes[1].bar(x, [100.0 * r["equal"] / max(r["values"], 1) for r in rows], color=colors)
    axes[1].set_ylim(0, 105)
    axes[1].set_ylabel("% of values equal")
    axes[1].set_title("Equal values (red: first deviating layer)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def table_rows(section: dict) -> list[list[str]]:
    """The per-layer table for reports: layer, op, format, equal, largest / median LSB, relative, overflows."""
    out = []
    for r in section.get("layers", []):
        if not r.get("op"):
            out.append([r["layer"], "-", r.get("note", ""), "", "", "", "", ""])
            continue
        mark = " (first deviation)" if (section.get("first_deviation") or {}).get("layer") == r["layer"] else ""
        out.append([r["layer"] + mark, r["op"], r["format"], f"{r['equal']} / {r['values']}",
                    f"{r['max_deviation_lsb']:.4g}", f"{r['median_deviation_lsb']:.4g}",
                    f"{100 * r['max_relative_deviation']:.3g} %", str(r["overflows"])])
    return out


TABLE_HEADER = ["layer", "op", "format", "equal values", "largest dev. (LSB)", "median dev. (LSB)",
                "largest dev. / layer range", "overflows"]
