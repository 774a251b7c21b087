"""ONNX and QONNX networks -> firmware model, through qonnx's clean-up and hls4ml's ONNX frontend.

The file is parsed as a protobuf (nothing in it runs), every node is checked
against the kinds hls4ml's ONNX frontend converts, then qonnx tidies the graph
the way hls4ml needs it (``cleanup_model``: shapes and constants; channels-last
for images; ``GemmToMatMul``). A final Softmax or Sigmoid is dropped, as for
Keras models: the firmware outputs logits, which is what a trigger thresholds.
hls4ml converts the result and infers every type; ``network.extract`` reads the
converted graph into ops, like a Keras model. Float ONNX gets the post-training
formats (``--precision``); QONNX's ``Quant``/``BipolarQuant`` nodes set their
own formats.

A QONNX integer annotation of the input (INT4, BIPOLAR, ...) sets the input
format. The source-model witness runs the cleaned graph (before the rewrites
made for hls4ml; same logit output) with onnxruntime for float ONNX, or with
qonnx's executor, which evaluates the QONNX quantizers as their definition says.
Quantized layers with float batch norms or non-power-of-two scales are rewritten
for hls4ml so that each quantizer decides as qonnx's float32 arithmetic does on
every reachable accumulator value (``onnx_requant``, checked exhaustively on the
converted firmware model); the comparison is exact when that check passes and
every other constant the firmware holds equals the graph's
(``constants_representable``).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.errors import ModelError
from trigger.fixed import FixedFormat
from trigger.frontends import BuildOptions, Design
from trigger.quiet import quiet_stdout

# What hls4ml 1.3's ONNX frontend converts (plus no-ops it skips); anything else is refused by name.
SUPPORTED_NODES = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax",
                   "BatchNormalization", "Conv", "MaxPool", "AveragePool", "Flatten", "Reshape", "Transpose",
                   "Quant", "IntQuant", "BipolarQuant", "Identity", "Dropout", "Max", "Min", "Sum", "Concat",
                   "Elu", "Selu", "Softsign", "ThresholdedRelu")  # trigger.ir.ops.elu, softsign, thresholded_relu
QUANTIZERS = ("Quant", "IntQuant", "BipolarQuant")
FINAL_DROPPED = ("Softmax", "Sigmoid")  # monotonic: a trigger cuts on the logits instead


@dataclass
class LoadedOnnx:
    """A checked, tidied ONNX/QONNX network, ready for hls4ml (the same fields the network design uses)."""

    name: str
    wrapper: object  # qonnx ModelWrapper after clean-up (and the final softmax/sigmoid removed)
    quantized: bool  # has QONNX quantizers (else float: post-training quantization)
    n_inputs: int
    n_outputs: int
    softmax_dropped: bool
    dropped: str = ""  # op type of the dropped final node
    source: object = None  # the same graph before the channels-last and Gemm rewrites: what the source witness runs
    input_format: FixedFormat | None = None  # from a QONNX integer annotation of the input (else the settings')
    representable: bool = True  # every constant hls4ml holds equals the graph's (set by ``convert``)
    sha256: str = ""
    files: list[Path] = field(default_factory=list)
    hls_wrapper: object = None  # the graph hls4ml converts, when exact requantization rewrote layers (else wrapper)
    requantized: list = field(default_factory=list)  # per rewritten layer: bits taken, reachable values, mismatches
    output_scale: float | None = None  # a rewritten output quantizer's scale: the firmware outputs its integer levels
    channels_last: frozenset = frozenset()  # positions of inputs the firmware takes channels last (the source: first)
    input_formats: dict = field(default_factory=dict)  # input name -> format, from QONNX integer annotations
    inputs: list = field(default_factory=list)  # the firmware's input names, in bus order (the graph's inputs)
    outputs: list = field(default_factory=list)  # the firmware's output names, in bus order (the graph's outputs)

    def source_model(self):
        """The graph evaluated by qonnx's executor (QONNX, exact) or onnxruntime (float ONNX)."""
        from trigger.source_model import SourceModel

        if self.quantized:
            # exact only when the firmware holds the graph's own constants: float batch-norm parameters or
            # non-power-of-two scales are rounded to fixed point, and then equality is counted, not required
            exact = self.representable
            text = f"qonnx execute_onnx of {self.name}" + (
                "" if exact else "; float constants (batch norm, scales) rounded to the firmware formats")
            rewritten = [s for s in self.requantized if not s["not_rewritten"]]
            if rewritten and exact:
                values = sum(s["reachable_values"] for s in rewritten)
                ties = sum(s["float_ties"] for s in rewritten)
                text += (f"; {len(rewritten)} layers requantized to qonnx's float32 decisions, checked on all "
                         f"{values} reachable accumulator values ({ties} within 2^-16 of a float32 rounding boundary)")
            last = self.wrapper.find_producer(self.wrapper.graph.output[0].name)
            if last is not None and last.op_type == "BipolarQuant":  # -1/+1; the firmware's ap_uint<1> is 0/1
                return SourceModel("qonnx", exact, lambda x: (execute_qonnx(self.source, self._layout(x)) + 1) / 2,
                                   text + "; bipolar output -1/+1 read as 0/1")
            if self.output_scale is not None:  # qonnx's outputs are levels x scale in float32: the quotient rounds to it
                scale = self.output_scale
                return SourceModel("qonnx", exact,
                                   lambda x: np.round(execute_qonnx(self.source, self._layout(x)) / scale),
                                   text + f"; output quantizer's integer levels (outputs / {scale:.9g})")
            return SourceModel("qonnx", exact, lambda x: execute_qonnx(self.source, self._layout(x)), text)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return SourceModel("qonnx", False, lambda x: execute_qonnx(self.source, self._layout(x)),
                               f"qonnx execute_onnx of {self.name} (onnxruntime not installed)")
        session = _ort_session(self.source)
        return SourceModel("onnxruntime", False, lambda x: _run_ort(session, self._layout(x)),
                           f"onnxruntime of {self.name}")

    def _layout(self, x: np.ndarray) -> list[np.ndarray]:
        """Rows of the firmware's input bus (each input flattened channels-last, one after another) as the
        source graph's inputs, each in its own layout."""
        parts, at = [], 0
        for k, (fw, src) in enumerate(zip(self.wrapper.graph.input, self.source.graph.input)):
            fw_shape = [len(x), *self.wrapper.get_tensor_shape(fw.name)[1:]]
            src_shape = [len(x), *self.source.get_tensor_shape(src.name)[1:]]
            n = int(np.prod(fw_shape[1:]))
            part = x[:, at:at + n].reshape(fw_shape)
            at += n
            # the firmware's input is the source's with the channel axis moved last
            if k in self.channels_last or (fw_shape != src_shape and len(fw_shape) > 2):
                part = np.moveaxis(part, -1, 1)
            parts.append(part.reshape(src_shape))
        return parts


# ------------------------------------------------------------------ loading
def load_onnx(path, *, keep_softmax: bool = False, name: str | None = None) -> LoadedOnnx:
    """Parse, check and tidy an ONNX/QONNX file; ``ModelError`` with one line on anything unusable.

    Nodes are checked after qonnx's clean-up has folded the constant subgraphs exporters write
    (PyTorch's ``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze -> Concat feeding a Reshape;
    Identity/Constant nodes; Unsqueeze/Squeeze around a BatchNormalization), so that the graph is
    checked as it computes; whatever is still unsupported after folding is refused by name. Before
    anything runs, every node's domain must be a standard or qonnx one (qonnx imports the module a
    custom domain names); the nodes themselves are only ever evaluated by onnxruntime and qonnx.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: ONNX model file not found")
    data = path.read_bytes()
    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: not a valid ONNX model, truncated or corrupt ({_one_line(err)})") from None
    graph = proto.graph
    if not graph.node:
        raise ModelError(f"{path}: not a valid ONNX model, truncated or corrupt (the graph has no nodes)")
    _check_domains(proto, path)
    files = [path, *_load_external_data(proto, path)]
    constants = {i.name for i in graph.initializer}
    in_names = [i.name for i in graph.input if i.name not in constants]
    out_names = [o.name for o in graph.output]
    if not in_names or not out_names:
        raise ModelError(f"{path}: the graph has {len(in_names)} inputs and {len(out_names)} outputs")
    source, wrapper, channels_last = _tidy(proto, path)
    wrapper, dropped = _drop_final(wrapper, path, keep_softmax)
    source, _ = _drop_final(source, path, keep_softmax)
    if len(in_names) > 1 or len(out_names) > 1:  # ports named as in the file (qonnx named them global_in, ...)
        for graph_copy in (wrapper, source):
            _restore_port_names(graph_copy, in_names, out_names)
        _outputs_in_node_order(wrapper, source)
    quantized = any(n.op_type in QUANTIZERS for n in wrapper.graph.node)
    digest = hashlib.sha256(data)
    for extra in files[1:]:
        digest.update(extra.read_bytes())
    inputs = [i.name for i in wrapper.graph.input]
    outputs = [o.name for o in wrapper.graph.output]
    size = lambda t: int(np.prod(wrapper.get_tensor_shape(t)[1:]))  # noqa: E731
    annotated = {n: _annotated_format(wrapper, n) for n in inputs}
    return LoadedOnnx(name=_safe_name(name or path.stem), wrapper=wrapper, source=source, quantized=quantized,
                      n_inputs=sum(size(n) for n in inputs), n_outputs=sum(size(n) for n in outputs),
                      softmax_dropped=bool(dropped), dropped=dropped,
                      input_format=annotated[inputs[0]],
                      input_formats={n: f for n, f in annotated.items() if f is not None},
                      inputs=inputs, outputs=outputs,
                      sha256=digest.hexdigest(), files=files, channels_last=channels_last)


def _outputs_in_node_order(wrapper, source) -> None:
    """hls4ml's ONNX frontend lists a graph's outputs in the order of the nodes that write them
    (``get_out_layer_name``), and so does the firmware's output bus: both graphs list them so too."""
    position = {o: k for k, node in enumerate(wrapper.graph.node) for o in node.output}
    order = sorted((o.name for o in wrapper.graph.output), key=lambda name: position.get(name, -1))
    for graph in (wrapper.graph, source.graph):
        by_name = {o.name: copy.deepcopy(o) for o in graph.output}
        if set(by_name) != set(order):
            raise ModelError(f"the cleaned graph's outputs {sorted(by_name)} are not the converted graph's {order}")
        del graph.output[:]
        graph.output.extend(by_name[name] for name in order)


def _restore_port_names(wrapper, in_names: list[str], out_names: list[str]) -> None:
    """Give a several-input or several-output graph its file's port names back (qonnx's clean-up calls them
    global_in, global_in_1, ...), made C++ identifiers: they name the ports on the bus and in the manifest
    and the keys of a per-input ``hls.input_precision``. A name that would clash stays qonnx's."""
    taken = {t for n in wrapper.graph.node for t in (*n.input, *n.output)} | {i.name for i in wrapper.graph.initializer}
    for ports, names in ((wrapper.graph.input, in_names), (wrapper.graph.output, out_names)):
        for port, original in zip(list(ports), names):
            new = _safe_name(original)
            if new != port.name and new not in taken:
                wrapper.rename_tensor(port.name, new)
                taken.add(new)


def _annotated_format(wrapper, tensor: str) -> FixedFormat | None:
    """The integer format a QONNX datatype annotation gives a tensor (BIPOLAR: ap_int<2> holds -1 and +1)."""
    dtype = wrapper.get_tensor_datatype(tensor)
    if dtype is None or not dtype.is_integer():
        return None
    if dtype.name == "BIPOLAR":
        return FixedFormat(2, 2, True)
    width = int(dtype.bitwidth())
    return FixedFormat(width, width, bool(dtype.signed()))


# Domains whose nodes onnxruntime or qonnx evaluate; qonnx would import a module named by any other domain.
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "onnx.brevitas", "qonnx.custom_op.general")


def _check_domains(proto, path: Path) -> None:
    for node in proto.graph.node:
        if node.domain not in KNOWN_DOMAINS:
            raise ModelError(f"{path}: node {_label(node)!r} of type {node.op_type} is in domain {node.domain!r}, "
                             f"which is not supported (supported: the standard ONNX operators and qonnx's)")


def _check_nodes(proto, path: Path) -> None:
    for node in proto.graph.node:
        if node.op_type not in SUPPORTED_NODES:
            raise ModelError(f"{path}: node {_label(node)!r} of type {node.op_type} is not supported "
                             f"(supported: {', '.join(SUPPORTED_NODES)})")
        reason = _attribute_problem(node)
        if reason:
            raise ModelError(f"{path}: node {_label(node)!r} of type {node.op_type}: {reason}")


def _attribute_problem(node) -> str | None:
    """Attributes hls4ml 1.3's ONNX activation parser reads otherwise than ONNX defines them: Elu's and
    ThresholdedRelu's alpha defaults to 1.0 in ONNX but to 0.01 in hls4ml (so it must be given), and
    nnet_activation.h's selu has Keras' constants only."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in ("Elu", "ThresholdedRelu") and "alpha" not in attrs:
        return "no alpha attribute: ONNX's default is 1.0, hls4ml 1.3 reads 0.01 (give alpha explicitly)"
    if node.op_type == "Selu":
        for key, keras in (("alpha", 1.6732632423543772), ("gamma", 1.0507009873554805)):
            if key in attrs and abs(float(attrs[key]) - keras) > 1e-6:
                return f"{key}={attrs[key]:g} is not supported (nnet_activation.h's selu has {keras:.7f})"
    return None


def _label(node) -> str:
    return node.name or (node.output[0] if node.output else "?")


def _load_external_data(proto, path: Path) -> list[Path]:
    """Read the tensors an exporter stored beside the model (``<model>.onnx.data``, as torch's dynamo
    exporter writes them): only plain files in the model's own folder; the files read."""
    from onnx import TensorProto
    from onnx.external_data_helper import load_external_data_for_model

    folder = path.resolve().parent
    locations = set()
    tensors = list(proto.graph.initializer) + [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or target.parent != folder:
            raise ModelError(f"{path}: tensor {tensor.name!r} is stored in {location!r}, outside the model's folder")
        if not target.is_file():
            raise ModelError(f"{path}: tensor {tensor.name!r} is stored in {location!r}, which is missing")
        locations.add(target)
    if not locations:
        return []
    try:
        load_external_data_for_model(proto, str(folder))
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: cannot read the tensors stored beside the model ({_one_line(err)})") from None
    return sorted(locations)


def _fixed_batch(proto):
    """A copy whose symbolic batch dimension (torch's ``dynamic_axes``) is 1, the firmware's one sample."""
    proto = copy.deepcopy(proto)
    changed = False
    constants = {i.name for i in proto.graph.initializer}
    for value in (*[i for i in proto.graph.input if i.name not in constants], *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:  # a dim_param, or unknown
            dims[0].Clear()
            dims[0].dim_value = 1
            changed = True
    if changed:  # intermediate shapes still name the symbol: inferred again from the fixed input
        del proto.graph.value_info[:]
    return proto


def _fold(wrapper):
    """qonnx's clean-up without its renaming: shapes inferred, constant subgraphs folded (torch's
    Shape -> Gather -> Unsqueeze -> Concat chains once the input shape is fixed), Quant nodes kept."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import GiveUniqueParameterTensors, RemoveStaticGraphInputs, RemoveUnusedTensors
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for node in wrapper.graph.node:  # as cleanup_model does: qonnx's quantizers in qonnx's domain
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    for step in (InferShapes(), GiveUniqueParameterTensors(),
                 FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]),
                 FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
        wrapper = wrapper.transform(step)
    if _unwrap_batch_norms(wrapper):
        wrapper = wrapper.transform(InferShapes())
    return wrapper


def _unwrap_batch_norms(wrapper) -> bool:
    """``Unsqueeze(axes) -> BatchNormalization -> Squeeze(same axes)`` on a rank-2 tensor, as torch has exported
    ``BatchNorm1d`` of (N, C) inputs, becomes the BatchNormalization alone (ONNX defines it on (N, C) too)."""
    changed = False
    for bn in list(wrapper.get_nodes_by_op_type("BatchNormalization")):
        before = wrapper.find_producer(bn.input[0])
        after = wrapper.find_consumers(bn.output[0]) or []
        if before is None or before.op_type != "Unsqueeze" or len(after) != 1 or after[0].op_type != "Squeeze":
            continue
        if len(wrapper.find_consumers(before.output[0]) or []) != 1 or len(bn.output) != 1:
            continue
        x_shape = wrapper.get_tensor_shape(before.input[0])
        axes_in, axes_out = _axes(wrapper, before), _axes(wrapper, after[0])
        if x_shape is None or len(x_shape) != 2 or axes_in is None or axes_out is None:
            continue
        if [a % 3 for a in axes_in] != [2] or [a % 3 for a in axes_out] != [2]:  # (N, C) <-> (N, C, 1)
            continue
        squeeze = after[0]
        bn.input[0] = before.input[0]
        bn.output[0] = squeeze.output[0]
        wrapper.graph.node.remove(before)
        wrapper.graph.node.remove(squeeze)
        changed = True
    return changed


def _axes(wrapper, node):
    """The axes of an Unsqueeze/Squeeze: its attribute (opset < 13) or its constant second input."""
    from onnx import helper

    for attr in node.attribute:
        if attr.name == "axes":
            return [int(a) for a in helper.get_attribute_value(attr)]
    if len(node.input) > 1 and node.input[1]:
        value = wrapper.get_initializer(node.input[1])
        return None if value is None else [int(a) for a in np.asarray(value).reshape(-1)]
    return None


def _tidy(proto, path: Path):
    """(cleaned graph, graph for hls4ml, whether the latter's input is channels last): constants folded and
    every node checked, then qonnx's clean-up, channels-last for images, Gemm -> MatMul + Add and scalings
    folded into weights: the graph hls4ml's frontend expects."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    try:
        with quiet_stdout():
            folded = _fold(ModelWrapper(_fixed_batch(proto)))
    except Exception as err:  # noqa: BLE001 - qonnx raises many kinds on a graph it cannot tidy
        _check_nodes(proto, path)  # an unsupported node is the likelier reason: name it
        raise ModelError(f"{path}: qonnx cannot clean up the graph ({_one_line(err)})") from None
    _check_nodes(folded.model, path)
    try:
        with quiet_stdout():
            wrapper = cleanup_model(folded)
            source = ModelWrapper(copy.deepcopy(wrapper.model))
            if any([_absorb_input_flatten(wrapper, k) for k in range(len(wrapper.graph.input))]):
                wrapper = cleanup_model(wrapper)
            channels_last = frozenset()
            if any(len(wrapper.get_tensor_shape(i.name)) > 2 for i in wrapper.graph.input):
                from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean

                wrapper = wrapper.transform(ConvertToChannelsLastAndClean())
                channels_last = frozenset(k for k in range(len(wrapper.graph.input)) if _absorb_input_transpose(wrapper, k))
                if channels_last:
                    wrapper = cleanup_model(wrapper)
            wrapper = cleanup_model(wrapper.transform(GemmToMatMul()))
            if _absorb_scalings(wrapper):
                wrapper = cleanup_model(wrapper)
    except Exception as err:  # noqa: BLE001 - qonnx raises many kinds on a graph it cannot tidy
        raise ModelError(f"{path}: qonnx cannot clean up the graph ({_one_line(err)})") from None
    return source, wrapper, channels_last


def _absorb_input_flatten(wrapper, k: int = 0) -> bool:
    """A graph that starts by flattening its input (torch's ``x.view(x.size(0), -1)``, folded to a Reshape to
    (batch, k), or Flatten(axis=1)) takes the flat input instead: the firmware's inputs are that C-order
    flattening already (``LoadedOnnx._layout`` reshapes them back for the source graph), and hls4ml gets
    no reshape of its input (and, for an image-shaped input, no channels-last conversion)."""
    inp = wrapper.graph.input[k]
    shape = wrapper.get_tensor_shape(inp.name)
    users = wrapper.find_consumers(inp.name) or []
    if shape is None or len(shape) <= 2 or len(users) != 1:
        return False
    node = users[0]
    out_shape = wrapper.get_tensor_shape(node.output[0])
    flat = [shape[0], int(np.prod(shape[1:]))]
    if node.op_type == "Reshape":
        ok = node.input[0] == inp.name and wrapper.get_initializer(node.input[1]) is not None
    elif node.op_type == "Flatten":
        ok = all(a.i == 1 for a in node.attribute if a.name == "axis")
    else:
        ok = False
    if not ok or out_shape is None or list(out_shape) != flat or node.output[0] in [o.name for o in wrapper.graph.output]:
        return False
    _input_takes_place_of(wrapper, k, node, flat, stale=(node.output[0],))
    return True


def _absorb_input_transpose(wrapper, k: int = 0) -> bool:
    """The Transpose qonnx's channels-last conversion leaves on a channels-first input (a torch image, or the
    (N, C, L) input of a BatchNorm1d) becomes the input's own layout: the firmware takes its inputs channels
    last (``LoadedOnnx._layout`` moves the channel axis back for the source graph); hls4ml has no such layer."""
    inp = wrapper.graph.input[k]
    shape = wrapper.get_tensor_shape(inp.name)
    users = wrapper.find_consumers(inp.name) or []
    if shape is None or len(shape) < 3 or len(users) != 1 or users[0].op_type != "Transpose":
        return False
    node = users[0]
    perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
    if perm != [[0, *range(2, len(shape)), 1]] or node.output[0] in [o.name for o in wrapper.graph.output]:
        return False
    last = [shape[0], *shape[2:], shape[1]]
    _input_takes_place_of(wrapper, k, node, last, stale=(inp.name, node.output[0]))
    return True


def _input_takes_place_of(wrapper, k: int, node, shape: list, stale: tuple[str, ...]) -> None:
    """Graph input k, now of ``shape``, takes the place of ``node`` (its only user, gone): ``node``'s users read
    the input itself; the shape information of the names in ``stale`` goes (shape inference redoes it)."""
    from onnx import TensorProto, helper

    inp = wrapper.graph.input[k]
    for user in wrapper.find_consumers(node.output[0]) or []:
        for i, name in enumerate(user.input):
            if name == node.output[0]:
                user.input[i] = inp.name
    dtype = wrapper.get_tensor_datatype(inp.name)
    wrapper.graph.node.remove(node)
    wrapper.graph.input.remove(inp)
    wrapper.graph.input.insert(k, helper.make_tensor_value_info(inp.name, TensorProto.FLOAT, shape))
    wrapper.set_tensor_datatype(inp.name, dtype)
    for value in [v for v in wrapper.graph.value_info if v.name in stale]:
        wrapper.graph.value_info.remove(value)


def _absorb_scalings(wrapper) -> bool:
    """Fold ``MatMul(x * c, W)`` and ``MatMul(x / c, W)`` (c a scalar power of two) into ``MatMul(x, c W)``.

    Input normalisations exported this way (Brevitas: ``(x + 1) / 2``) reach hls4ml as a
    zero-bias ApplyAlpha that its ScaleDownMatMul pass cannot move below the MatMul
    (hls4ml 1.3 copies a wrapped bias type and fails). Scaling the weights instead is exact for
    a power of two: a constant weight is multiplied, a ``Quant`` weight gets its input and its
    scale multiplied, so it still quantizes to the same integers.
    """
    changed = False
    for node in list(wrapper.graph.node):
        if node.op_type not in ("Mul", "Div"):
            continue
        consts = [wrapper.get_initializer(i) for i in node.input]
        if consts[0] is not None or consts[1] is None or np.asarray(consts[1]).size != 1:
            continue
        c = float(np.asarray(consts[1]).reshape(-1)[0])
        factor = c if node.op_type == "Mul" else (1.0 / c if c else 0.0)
        if factor == 0 or np.frexp(abs(factor))[0] != 0.5:  # not a power of two
            continue
        users = wrapper.find_consumers(node.output[0]) or []
        if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[0] != node.output[0]:
            continue
        matmul = users[0]
        weight = wrapper.get_initializer(matmul.input[1])
        producer = wrapper.find_producer(matmul.input[1])
        if weight is not None:
            _scale_input(wrapper, matmul, 1, factor)
        elif producer is not None and producer.op_type == "Quant" and all(
                wrapper.get_initializer(i) is not None for i in producer.input[:3]):
            zero = np.asarray(wrapper.get_initializer(producer.input[2]))
            if np.any(zero != 0):
                continue
            for i in (0, 1):  # the float weights and the scale
                _scale_input(wrapper, producer, i, factor)
        else:
            continue
        matmul.input[0] = node.input[0]
        wrapper.graph.node.remove(node)
        changed = True
    return changed


def _scale_input(wrapper, node, index: int, factor: float) -> None:
    """Give ``node`` a scaled copy of its constant input ``index`` (other nodes may share the original)."""
    value = np.asarray(wrapper.get_initializer(node.input[index]))
    name = f"{node.input[index]}_times_{factor:g}"
    wrapper.set_initializer(name, (value * factor).astype(value.dtype))
    node.input[index] = name


def _drop_final(wrapper, path: Path, keep_softmax: bool):
    """Remove a final Softmax/Sigmoid on each output (the graph then outputs its input), as the Keras loader
    drops a softmax: (graph, op type of the first node dropped, or "")."""
    from onnx import TensorProto, helper

    dropped = ""
    for k, out in enumerate(list(wrapper.graph.output)):
        last = wrapper.find_producer(out.name)
        if last is None or last.op_type not in FINAL_DROPPED or keep_softmax:  # --softmax: hls4ml's tables
            continue
        if len(wrapper.find_consumers(out.name) or []) or len(wrapper.find_consumers(last.input[0]) or []) != 1:
            continue  # the output (or its logits) feeds other nodes too: the softmax stays
        logits = last.input[0]
        shape = wrapper.get_tensor_shape(logits)
        wrapper.graph.node.remove(last)
        wrapper.graph.output.remove(out)
        for value in [v for v in wrapper.graph.value_info if v.name == logits]:
            wrapper.graph.value_info.remove(value)
        wrapper.graph.output.insert(k, helper.make_tensor_value_info(logits, TensorProto.FLOAT, shape))
        dropped = dropped or last.op_type
    if not dropped:
        return wrapper, ""
    from qonnx.util.cleanup import cleanup_model

    with quiet_stdout():
        return cleanup_model(wrapper), dropped


# ------------------------------------------------------------------ evaluating the source
def _with_batch(wrapper, n: int):
    """A copy of the graph whose batch dimension is ``n`` (exporters often fix it, e.g. at 1), or None when
    the graph's constants fix the batch (a Reshape to a constant shape that does not lead with it)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    proto = copy.deepcopy(wrapper.model)
    batch = ModelWrapper(proto).get_tensor_shape(proto.graph.input[0].name)[0]
    if n != batch and not _batch_generic(ModelWrapper(proto), batch):
        return None
    del proto.graph.value_info[:]
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = n
    from qonnx.core.datatype import DataType

    with quiet_stdout():
        model = ModelWrapper(proto).transform(InferShapes())
    # the firmware takes every value of its input format; qonnx would refuse values outside the annotation
    for value in model.graph.input:
        model.set_tensor_datatype(value.name, DataType["FLOAT32"])
    return model


def _batch_generic(wrapper, batch: int) -> bool:
    """Make the graph's batch free: a Reshape to a constant shape that leads with the batch (as folding
    torch's ``x.view(x.size(0), -1)`` leaves it) keeps its input's leading dimension instead (shape entry 0,
    ``allowzero`` 0), which is the same reshape at the exported batch. False (graph unchanged in meaning,
    maybe partly rewritten) when some node ties samples together: another constant shape, a Transpose or
    Flatten of the batch axis."""
    for node in wrapper.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Transpose" and "perm" in attrs and list(attrs["perm"].ints)[:1] != [0]:
            return False
        if node.op_type == "Flatten" and "axis" in attrs and attrs["axis"].i == 0:
            return False
        if node.op_type != "Reshape":
            continue
        shape = wrapper.get_initializer(node.input[1])
        in_shape = wrapper.get_tensor_shape(node.input[0])
        if shape is None or in_shape is None or in_shape[0] != batch:
            return False
        shape = np.asarray(shape).astype(np.int64).reshape(-1)
        allowzero = "allowzero" in attrs and attrs["allowzero"].i == 1
        if len(shape) == 0 or (allowzero and np.any(shape == 0)):
            return False
        if shape[0] == batch or (shape[0] == 0 and not allowzero):
            generic = shape.copy()
            generic[0] = 0
            name = f"{node.input[1]}_batch_free"
            wrapper.set_initializer(name, generic)
            node.input[1] = name
            for attr in [a for a in node.attribute if a.name == "allowzero"]:
                node.attribute.remove(attr)
        elif shape[0] != -1 or np.any(shape[1:] <= 0) or np.prod(shape[1:]) != np.prod(in_shape[1:]):
            return False  # a leading -1 is the batch only when the other entries hold one sample exactly
    return True


def execute_qonnx(wrapper, x) -> np.ndarray:
    """Outputs of the graph by qonnx's executor (its own Quant/BipolarQuant, onnxruntime for standard nodes):
    ``x`` is one array per graph input (or one array), the outputs are flattened and put side by side."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    model = _with_batch(wrapper, len(xs[0]))
    if model is not None:
        return _execute(model, xs)
    one = _with_batch(wrapper, 1)  # the graph's constants hold one batch size: one sample at a time
    if one is None:
        batch = wrapper.get_tensor_shape(wrapper.graph.input[0].name)[0]
        raise ModelError(f"the graph's constant shapes fix its batch at {batch}: qonnx cannot run it per sample")
    return np.vstack([_execute(one, [part[i:i + 1] for part in xs]) for i in range(len(xs[0]))])


def _execute(model, xs: list[np.ndarray]) -> np.ndarray:
    from qonnx.core.onnx_exec import execute_onnx

    feed = {value.name: part.reshape(model.get_tensor_shape(value.name)).astype(np.float32)
            for value, part in zip(model.graph.input, xs)}
    with quiet_stdout():
        result = execute_onnx(model, feed)
    return _side_by_side([result[o.name] for o in model.graph.output], len(xs[0]))


def _side_by_side(outs, n: int) -> np.ndarray:
    """Several outputs as one output bus: each flattened per sample, one after another."""
    return np.concatenate([np.asarray(o, dtype=np.float64).reshape(n, -1) for o in outs], axis=1)


def _ort_session(wrapper):
    """An onnxruntime session of the graph; a graph exported for batch 1 (its reshapes may fix the batch) keeps it."""
    import onnxruntime as ort

    proto = copy.deepcopy(wrapper.model)
    if proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value != 1:
        del proto.graph.value_info[:]
        for value in (*proto.graph.input, *proto.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_ort(session, x) -> np.ndarray:
    """The session on one array per input (or one array); outputs flattened and put side by side."""
    xs = [np.asarray(p, dtype=np.float32) for p in (x if isinstance(x, (list, tuple)) else [x])]
    names = [i.name for i in session.get_inputs()]
    n = len(xs[0])
    if session.get_inputs()[0].shape[0] == 1:
        return np.vstack([_side_by_side(session.run(None, {k: p[i:i + 1] for k, p in zip(names, xs)}), 1)
                          for i in range(n)])
    return _side_by_side(session.run(None, dict(zip(names, xs))), n)


# ------------------------------------------------------------------ conversion
def convert(loaded: LoadedOnnx, config: dict | None = None, *, output_dir=None):
    """hls4ml conversion of a loaded ONNX network: ``(hls_model, FirmwareModel)``, like ``network.convert``.

    Float graphs get the post-training formats by hls4ml layer name, so they are converted
    once to learn the names (MatMul + Add become one Dense), then again with the formats;
    accumulators that could overflow are widened as for Keras models. Quantized graphs are
    first requantized exactly (``_exact_requantization``); should hls4ml refuse the rewritten
    graph, the file's own graph is converted and the layers are reported as not rewritten.
    """
    from trigger.frontends.network import settings, unwritten_project_dir

    opts = settings(config)
    out_dir = Path(output_dir or opts.get("output_dir") or unwritten_project_dir(loaded.name))
    chains, precisions = _exact_requantization(loaded, opts) if loaded.quantized else ([], {})
    try:
        hls_model, fw = _convert_graph(loaded, opts, out_dir, precisions)
    except ModelError as err:
        if not precisions:
            raise
        # hls4ml cannot take the rewritten graph: the file's own graph, whose constants hls4ml rounds
        for chain in chains:
            chain.result["not_rewritten"] = chain.result.get("not_rewritten") or \
                f"hls4ml cannot convert the rewritten graph ({_one_line(err)})"
        loaded.hls_wrapper = None
        loaded.output_scale = None
        hls_model, fw = _convert_graph(loaded, opts, out_dir, {})
    loaded.representable = constants_representable(hls_model)
    if chains:
        from trigger.frontends import onnx_requant

        loaded.requantized = onnx_requant.check(fw, loaded.hls_wrapper or loaded.wrapper, chains)
        fw.meta["exact_requantization"] = loaded.requantized
        # layers left to hls4ml (not rewritten) are exact only if their constants are (constants_representable)
        loaded.representable = loaded.representable and all(s["exact"] for s in loaded.requantized
                                                             if not s["not_rewritten"])
    # hls4ml would dump the graph object into hls4ml_config.yml (a python/object tag no safe loader reads);
    # the bundle records the model's sha256 instead, as for Keras models
    hls_model.config.config["OnnxModel"] = None
    return hls_model, fw


def _convert_graph(loaded: LoadedOnnx, opts: dict, out_dir: Path, precisions: dict):
    """(hls_model, FirmwareModel) of the graph for hls4ml, with the given layer precisions."""
    from trigger.frontends.network import accumulators_to_widen, extract

    hcfg = _hls_config(loaded, opts)
    for node, prec in precisions.items():  # the fitted constants, held exactly
        entry = hcfg["LayerName"].setdefault(node, {}).setdefault("Precision", {})
        entry.update({key: fmt.hls4ml for key, fmt in prec.items()})
    hls_model = _convert_once(loaded, hcfg, opts, out_dir)
    if not loaded.quantized:
        _post_training_formats(hls_model, hcfg, opts)
        hls_model = _convert_once(loaded, hcfg, opts, out_dir)
    widened: dict[str, str] = {}
    for _attempt in range(3):
        fw = extract(hls_model, loaded.name)
        wider = accumulators_to_widen(fw)
        if not wider:
            break
        for lname, fmt in wider.items():
            for key in _config_names(lname):
                hcfg["LayerName"].setdefault(key, {}).setdefault("Precision", {})["accum"] = fmt.hls4ml
            widened[lname] = fmt.hls4ml
        hls_model = _convert_once(loaded, hcfg, opts, out_dir)
    else:
        raise ModelError(f"{loaded.name}: accumulators still overflow after widening {sorted(widened)}")
    fw.meta["widened_accumulators"] = widened
    return hls_model, fw


def constants_representable(hls_model) -> bool:
    """Whether every weight, bias, scale and threshold the firmware holds equals the model's own value."""
    from trigger.frontends.layers import weight_raw

    for layer in hls_model.get_layers():
        for var in layer.weights.values():
            try:
                fmt = FixedFormat.parse(str(var.type.precision))
            except ValueError:
                return False
            held = fmt.to_float(weight_raw(var, fmt)).reshape(-1)
            if not np.array_equal(held, np.asarray(var.data, dtype=np.float64).reshape(-1)):
                return False
    return True


def _exact_requantization(loaded: LoadedOnnx, opts: dict):
    """Quantized layers rewritten for hls4ml so that their decisions are qonnx's on every reachable
    accumulator value (``onnx_requant``): (chains, hls4ml precisions of the fitted batch norms)."""
    from trigger.frontends import onnx_requant

    graph = copy.deepcopy(loaded.wrapper)
    fmt = onnx_input_formats(loaded, opts)[loaded.inputs[0]]
    chains = onnx_requant.find_chains(graph, fmt)
    for chain in chains:
        onnx_requant.fit_chain(graph, chain)
    rewritten = onnx_requant.rewritable(graph, chains)
    loaded.output_scale = onnx_requant.output_scale(graph, rewritten)
    precisions = onnx_requant.rewrite(graph, rewritten) if rewritten else {}
    if rewritten:  # no clean-up: it would rename the new batch norms the precisions are keyed by
        from qonnx.transformation.general import RemoveUnusedTensors
        from qonnx.transformation.infer_shapes import InferShapes

        with quiet_stdout():
            graph = graph.transform(RemoveUnusedTensors()).transform(InferShapes())
    loaded.hls_wrapper = graph
    return chains, precisions


def _hls_config(loaded: LoadedOnnx, opts: dict) -> dict:
    import hls4ml

    with quiet_stdout():
        hcfg = hls4ml.utils.config_from_onnx_model(loaded.hls_wrapper or loaded.wrapper, granularity="name",
                                                   backend=opts["backend"],
                                                   default_precision=opts["ptq"]["result"])
    hcfg["Model"]["Strategy"] = "Latency"
    hcfg["Model"]["ReuseFactor"] = int(opts["reuse_factor"])
    names = hcfg.setdefault("LayerName", {})
    for name, fmt in onnx_input_formats(loaded, opts).items():
        names.setdefault(name, {}).setdefault("Precision", {})
        names[name]["Precision"]["result"] = fmt.hls4ml
    return hcfg


def onnx_input_formats(loaded: LoadedOnnx, opts: dict) -> dict[str, FixedFormat]:
    """Each graph input's format: its QONNX integer annotation, else ``hls.input_precision`` (one format, or
    a mapping of input name to format with an optional ``default``)."""
    from trigger.frontends.network import input_formats

    given = input_formats(loaded.inputs, opts["input_precision"])
    return {n: loaded.input_formats.get(n) or given[n] for n in loaded.inputs}


def _post_training_formats(hls_model, hcfg: dict, opts: dict) -> None:
    """The --precision formats on every float layer, by the names hls4ml gave them.

    Weights and biases get the weight/bias formats; a dense layer's output keeps hls4ml's exact
    accumulator type (hls4ml fuses the bias Add into the layer only when its output type is
    inferred), and every other layer's output gets the result format.
    """
    ptq = {k: FixedFormat.parse(v).hls4ml for k, v in opts["ptq"].items()}
    names = hcfg["LayerName"]
    from trigger.frontends.network import is_input

    for layer in hls_model.get_layers():
        if is_input(layer):  # keeps its input format
            continue
        for key in _config_names(layer.name):
            prec = names.setdefault(key, {}).setdefault("Precision", {})
            if not isinstance(prec, dict):
                prec = names[key]["Precision"] = {}
            if "weight" in layer.weights:  # output type stays inferred: only then hls4ml fuses the bias Add
                prec.update(weight=ptq["weight"], bias=ptq["bias"], accum="auto")
            elif "scale" in layer.weights:
                prec.update(scale=ptq["weight"], bias=ptq["bias"], result=ptq["result"])
            else:
                prec["result"] = ptq["result"]


def _config_names(name: str) -> list[str]:
    """Config keys of an hls4ml layer: hls4ml makes ``Dense_<MatMul>`` from a MatMul node's own config."""
    return [name, name[len("Dense_"):]] if name.startswith("Dense_") else [name]


def _convert_once(loaded: LoadedOnnx, hcfg: dict, opts: dict, out_dir: Path):
    import hls4ml

    try:
        with quiet_stdout():
            return hls4ml.converters.convert_from_onnx_model(
                loaded.hls_wrapper or loaded.wrapper, hls_config=copy.deepcopy(hcfg), output_dir=str(out_dir),
                project_name=opts["project_name"], backend=opts["backend"],
                io_type="io_parallel" if opts["io_type"] == "auto" else opts["io_type"],  # streaming: Keras only
                part=opts["part"], clock_period=float(opts["clock_period_ns"]))
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - hls4ml raises bare Exceptions for graphs it cannot convert
        raise ModelError(f"{loaded.name}: hls4ml cannot convert the ONNX graph "
                         f"({type(err).__name__}: {_one_line(err)})") from None


# ------------------------------------------------------------------ designs
def design_from_file(path: Path, options: BuildOptions) -> Design:
    """An ONNX/QONNX file given on the command line (float ONNX takes ``--precision``)."""
    return onnx_design(path, {}, options, options.keep_softmax)


def onnx_design(path: Path, config: dict, options: BuildOptions, keep_softmax: bool = False, budget=None) -> Design:
    """The design of an ONNX file, alone or named by a model folder's trigger.yml (``model.file``)."""
    from trigger.frontends.network import _design

    loaded = load_onnx(path, keep_softmax=keep_softmax, name=config.get("name"))
    design = _design(loaded, config, options, None, budget, converter=convert)
    if loaded.requantized:  # per layer: bits the exact constants took, reachable values, disagreements
        design.manifest["exact_requantization"] = loaded.requantized
    if loaded.output_scale is not None:
        meaning = f"integer levels of the output quantizer (the model's output is level x {loaded.output_scale:.9g})"
        design.manifest["output_meaning"] = meaning
        design.notes.append(f"QONNX output quantizer requantized exactly: the firmware outputs its {meaning}.")
    if loaded.dropped and loaded.dropped != "Softmax":
        design.notes = [n.replace("final softmax", f"final {loaded.dropped.lower()}") for n in design.notes]
        design.manifest["output_meaning"] = f"logits (final {loaded.dropped.lower()} dropped)"
    return design


def _safe_name(name: str) -> str:
    import re

    name = re.sub(r"\W", "_", name)
    return name if name and not name[0].isdigit() else f"m_{name}"


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
