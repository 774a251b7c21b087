"""The layer-by-layer comparison (trigger.frontends.layer_compare) on a source that runs one sample at a time."""

import numpy as np

from tests.firmware_cases import case_inputs, mlp
from trigger.frontends.layer_compare import LayerSource, compare_layers, describe
from trigger.ir.model import emulate


def test_a_per_sample_source_compares_its_first_vectors_and_says_so():
    """A source limited to its first ``max_vectors`` (qonnx on a graph whose constants fix the batch) is asked for
    those vectors only, and the section and its line say how many of how many were compared."""
    fw = mlp((6, 5, 3), seed=3)
    index = {op.name: k for k, op in enumerate(fw.ops)}
    asked = []

    def predict(real):  # the firmware's own values, as an exact source would give them
        asked.append(len(real))
        trace = emulate(fw, fw.input.quantize(real), trace=True).trace
        return {op.name: op.output.to_float(np.asarray(trace[index[op.name]])) for op in fw.ops}

    source = LayerSource("qonnx", True, [(op.name, op.kind) for op in fw.ops], predict, max_vectors=7)
    inputs = case_inputs(fw, 40)
    section = compare_layers(fw, source, inputs)
    n = len(inputs)
    assert asked == [7] and section["vectors"] == 7 and section["vectors_offered"] == n
    assert section["all_equal"] and section["compared"] == len(fw.ops)
    assert describe(section).startswith(f"layers (qonnx, one sample at a time) on the first 7 of {n} vectors")
    full = compare_layers(fw, LayerSource("qonnx", True, source.layers, predict), inputs)
    assert asked[-1] == n and describe(full).startswith(f"layers (qonnx) on {n} vectors")
