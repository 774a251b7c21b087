"""ONNX graphs with merges, written with onnx.helper (seeded float weights): what a PyTorch or Keras
export of a two-input network with a residual sum and a concatenation looks like after clean-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _init(name, array):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def two_input_merges(path: Path, seed: int = 5) -> Path:
    """x1 (4) and x2 (3), a Gemm + Relu each; their sum (Add), difference (Sub), maximum (Max) and
    concatenation (Concat) feed three heads: Gemm -> out_sum (3), Gemm -> out_cat (2), and the
    element-wise Min of the Max and the Sub branches times a (Mul) -> Gemm -> out_min (1)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w = lambda *shape: rng.normal(0, 0.5, shape)  # noqa: E731
    inits = [_init("w1", w(4, 5)), _init("b1", w(5)), _init("w2", w(3, 5)), _init("b2", w(5)),
             _init("w3", w(5, 3)), _init("b3", w(3)), _init("w4", w(10, 2)), _init("b4", w(2)),
             _init("w5", w(5, 1)), _init("b5", w(1))]
    nodes = [
        helper.make_node("Gemm", ["x1", "w1", "b1"], ["g1"], name="fc_a"),
        helper.make_node("Relu", ["g1"], ["a"], name="relu_a"),
        helper.make_node("Gemm", ["x2", "w2", "b2"], ["g2"], name="fc_b"),
        helper.make_node("Relu", ["g2"], ["b"], name="relu_b"),
        helper.make_node("Add", ["a", "b"], ["s"], name="sum_ab"),
        helper.make_node("Sub", ["a", "b"], ["d"], name="diff_ab"),
        helper.make_node("Max", ["a", "b"], ["mx"], name="max_ab"),
        helper.make_node("Min", ["mx", "d"], ["mn"], name="min_md"),
        helper.make_node("Mul", ["mn", "a"], ["pr"], name="mul_mn_a"),
        helper.make_node("Concat", ["a", "b"], ["c"], name="cat_ab", axis=1),
        helper.make_node("Gemm", ["s", "w3", "b3"], ["out_sum"], name="head_sum"),
        helper.make_node("Gemm", ["c", "w4", "b4"], ["out_cat"], name="head_cat"),
        helper.make_node("Gemm", ["pr", "w5", "b5"], ["out_min"], name="head_min"),
    ]
    graph = helper.make_graph(
        nodes, "two_input_merges",
        [helper.make_tensor_value_info("x1", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("out_sum", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("out_cat", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("out_min", TensorProto.FLOAT, ["N", 1])],
        inits)
    model = helper.make_model(graph, producer_name="trigger-tests", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


if __name__ == "__main__":
    import sys

    print(two_input_merges(Path(sys.argv[1])))
