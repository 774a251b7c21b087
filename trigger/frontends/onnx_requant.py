"""Exact requantization of QONNX layers: qonnx's own float32 decisions, as fixed-point constants.

A Brevitas layer computes ``Quant(Relu(BN(x @ W + b)))`` in float32, where ``x`` and
``W`` are quantized: ``x @ W`` is an integer accumulator ``k`` times a scale. hls4ml
would round the float batch-norm parameters and non-power-of-two scales to its
default ``fixed<16,6>``, and the firmware then differs from qonnx's execution by an
LSB here and there. What must be exact is the quantizer's decision for each
accumulator value the inputs can reach, and there are finitely many of them.

So for every such chain this module
1. bounds ``k`` per output channel by interval analysis (the firmware input format
   through constant shifts, or the integer range of the producing quantizer, times
   the integer weights);
2. runs the chain's own nodes (bias Add, BatchNormalization, Relu, Quant or
   BipolarQuant) through qonnx's executor on the float32 accumulator value of every
   reachable ``k`` (``float32(k * scale)``): qonnx's decision, by its own code;
3. finds per channel the dyadic constants ``S, B`` (fewest fractional bits) with
   ``round(relu(S k + B))`` (or ``S k + B >= 0``) equal to that decision on every
   reachable ``k``: a small 2-variable feasibility problem solved in exact integers;
4. rewrites the graph given to hls4ml: integer weights (scale 1), one
   BatchNormalization holding ``S, B`` (epsilon 0, so hls4ml keeps them as they are),
   the activation quantizer at scale 1 (the next layer's constants absorb it).

The source graph (the fourth witness) is left as it is. ``check`` then emulates the
converted firmware model on every reachable ``k`` and counts disagreements.
The float32 accumulator itself depends on onnxruntime's summation order and on
float32 products ``a_i * scale``, so ``k`` values whose decision changes within
``TIE_RELATIVE`` of the ideal value are reported as float ties: there the source
model's decision depends on the input combination, not only on ``k``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from trigger.fixed import MAX_WIDTH, FixedFormat
from trigger.quiet import quiet_stdout

AFFINE_NODES = ("Add", "Sub", "Mul", "Div", "BatchNormalization")
MAX_FRACTIONAL = 40  # bits tried for the constants before a chain is declared not exactly representable
TIE_RELATIVE = 2.0 ** -16  # relative accumulator perturbation used to flag float ties (~128 float32 ulps)
MAX_VALUES = 1 << 24  # (accumulator values x channels) per layer evaluated exhaustively, at most
SLOPE_LIMIT = 2.0 ** 30  # search range of the fitted scale (per accumulator step)


@dataclass
class Chain:
    """One quantized layer: ``quant(relu?(affine(x @ Wq)))`` with an integer-valued ``x``."""

    matmul: object
    weight_quant: object
    affine: list
    relu: object | None
    quant: object  # Quant or BipolarQuant
    w_int: np.ndarray  # (n_in, n_out) integers
    w_scale: np.ndarray  # (n_out,) float64 weight scale
    x_grid: float  # real value of one input integer step (the quantizer's scale, or the input format's LSB)
    x_range: tuple[int, int]  # integer range of the input
    input_quant: object | None  # the quantizer producing x (rescaled to 1 when its chain is rewritten)
    k_lo: np.ndarray = None
    k_hi: np.ndarray = None
    column_sign: np.ndarray = None  # a threshold layer's weights are negated where qonnx's decision falls with k
    result: dict = field(default_factory=dict)

    @property
    def bipolar(self) -> bool:
        return self.quant.op_type == "BipolarQuant"


# ------------------------------------------------------------------ finding chains
def _const(wrapper, name):
    value = wrapper.get_initializer(name)
    return None if value is None else np.asarray(value)


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _quant_levels(wrapper, quant) -> tuple[int, int] | None:
    """Integer range of a Quant node with constant, scalar scale/zero point/bit width and zero point 0."""
    from qonnx.custom_op.general.quant import max_int, min_int

    if quant.op_type != "Quant":
        return None
    consts = [_const(wrapper, i) for i in quant.input[1:4]]
    if any(c is None for c in consts) or np.any(consts[1] != 0) or consts[2].size != 1:
        return None
    bits = int(consts[2].reshape(-1)[0])
    signed, narrow = bool(_attr(quant, "signed", 1)), bool(_attr(quant, "narrow", 0))
    if bits < 2 or _rounding(quant) not in ("ROUND", "HALF_EVEN"):  # hls4ml's RND_CONV (ties to even)
        return None
    return int(min_int(signed, narrow, bits)), int(max_int(signed, narrow, bits))


def _rounding(quant) -> str:
    mode = _attr(quant, "rounding_mode", "ROUND")
    return (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()


def _single_consumer(wrapper, tensor):
    users = wrapper.find_consumers(tensor) or []
    return users[0] if len(users) == 1 else None


def _input_side(wrapper, tensor, input_format: FixedFormat):
    """(grid, integer range, producing quantizer) of a MatMul input, or None when it is not integer-valued."""
    producer = wrapper.find_producer(tensor)
    if producer is not None and producer.op_type == "Quant" and _const(wrapper, producer.input[0]) is None:
        levels = _quant_levels(wrapper, producer)
        scale = _const(wrapper, producer.input[1])
        if levels is None or scale.size != 1:
            return None
        scale = float(scale.reshape(-1)[0])
        if producer.input[0] == wrapper.graph.input[0].name and scale > 0 and np.frexp(scale)[0] == 0.5:
            # the input quantizer (Brevitas' QuantIdentity) at a power-of-two scale: hls4ml's quantizer holds
            # its values exactly, so it stays as it is and the layer reads them on its grid
            return scale, levels, None
        return scale, levels, producer
    # the graph input through constant shifts that are whole input steps
    shift = 0.0
    while producer is not None:
        if producer.op_type not in ("Add", "Sub"):
            return None
        c = _const(wrapper, producer.input[1])
        if c is None or c.size != 1:
            return None
        shift += float(c.reshape(-1)[0]) * (1 if producer.op_type == "Add" else -1)
        tensor = producer.input[0]
        producer = wrapper.find_producer(tensor)
    if tensor != wrapper.graph.input[0].name:
        return None
    lsb = input_format.lsb
    if shift / lsb != round(shift / lsb):
        return None
    step = int(round(shift / lsb))
    return lsb, (input_format.min_raw + step, input_format.max_raw + step), None


def find_chains(wrapper, input_format: FixedFormat) -> list[Chain]:
    """Every quantized layer whose decision can be made exact, in graph order."""
    from qonnx.custom_op.general.quant import quant as qonnx_quant

    chains = []
    for mm in list(wrapper.graph.node):
        if mm.op_type != "MatMul":
            continue
        wq = wrapper.find_producer(mm.input[1])
        if wq is None or wq.op_type != "Quant" or _quant_levels(wrapper, wq) is None:
            continue
        w, ws = _const(wrapper, wq.input[0]), _const(wrapper, wq.input[1])
        if w is None or w.ndim != 2 or ws.size not in (1, w.shape[1]) or not np.all(ws > 0):
            continue
        deq = qonnx_quant(w, ws, _const(wrapper, wq.input[2]), _const(wrapper, wq.input[3]), _attr(wq, "signed", 1),
                          _attr(wq, "narrow", 0), _rounding(wq))
        w_int = np.round(np.asarray(deq, dtype=np.float64) / np.asarray(ws, dtype=np.float64).reshape(1, -1))
        side = _input_side(wrapper, mm.input[0], input_format)
        if side is None:
            continue
        grid, x_range, x_quant = side
        node, affine, relu = _single_consumer(wrapper, mm.output[0]), [], None
        while node is not None and node.op_type in AFFINE_NODES:
            consts = [_const(wrapper, i) for i in node.input[1:]]
            if any(c is None for c in consts) or (node.op_type != "BatchNormalization" and node.input[0] not in
                                                   (mm.output[0], *[a.output[0] for a in affine])):
                break
            affine.append(node)
            node = _single_consumer(wrapper, node.output[0])
        if node is not None and node.op_type == "Relu":
            relu, node = node, _single_consumer(wrapper, node.output[0])
        if node is None or node.op_type not in ("Quant", "BipolarQuant"):
            continue
        if node.op_type == "Quant" and (_quant_levels(wrapper, node) is None or
                                        _const(wrapper, node.input[1]) is None or
                                        _const(wrapper, node.input[1]).size != 1):
            continue
        w_scale = np.broadcast_to(np.asarray(ws, np.float64).reshape(-1), (w.shape[1],)).copy()
        chain = Chain(mm, wq, affine, relu, node, w_int, w_scale, grid, x_range, x_quant)
        _ranges(chain)
        if (int(chain.k_hi.max()) - int(chain.k_lo.min()) + 1) * w.shape[1] <= MAX_VALUES:  # else too many to evaluate
            chains.append(chain)
    return _closed(wrapper, chains)


def _closed(wrapper, chains: list[Chain]) -> list[Chain]:
    """Keep the chains whose rescaled quantizers feed only kept chains (a quantizer at scale 1 must be
    absorbed by every consumer) and whose input quantizer belongs to a kept chain."""
    kept = list(chains)
    while True:
        by_quant = {c.quant.output[0]: c for c in kept}
        inputs = {c.matmul.input[0] for c in kept}
        keep = []
        for c in kept:
            if c.input_quant is not None and c.input_quant.output[0] not in by_quant:
                continue
            if not c.bipolar and not is_output(wrapper, c):  # an output quantizer's levels are the outputs
                users = wrapper.find_consumers(c.quant.output[0]) or []
                if not users or any(u.op_type != "MatMul" or u.input[0] != c.quant.output[0] for u in users) \
                        or c.quant.output[0] not in inputs \
                        or len([k for k in kept if k.matmul.input[0] == c.quant.output[0]]) != len(users):
                    continue
            keep.append(c)
        if len(keep) == len(kept):
            return keep
        kept = keep


def is_output(wrapper, chain: Chain) -> bool:
    """Whether the chain's quantizer writes the graph's output (and nothing else reads it)."""
    out = chain.quant.output[0]
    return out == wrapper.graph.output[0].name and not (wrapper.find_consumers(out) or [])


def output_scale(wrapper, chains: list[Chain]) -> float | None:
    """The scale of a rewritten output quantizer (read before ``rewrite``): the firmware then outputs its integer
    levels, which are qonnx's outputs divided by that scale."""
    for chain in chains:
        if not chain.bipolar and not chain.result.get("not_rewritten") and is_output(wrapper, chain):
            return float(_const(wrapper, chain.quant.input[1]).reshape(-1)[0])
    return None


# ------------------------------------------------------------------ qonnx's decisions
def _ranges(chain: Chain) -> None:
    lo, hi = chain.x_range
    ends = np.stack([chain.w_int * lo, chain.w_int * hi])
    chain.k_lo = ends.min(axis=0).sum(axis=0).astype(np.int64)
    chain.k_hi = ends.max(axis=0).sum(axis=0).astype(np.int64)


def _tail_model(wrapper, chain: Chain, n: int):
    """The chain's nodes after the MatMul as a model of their own: (MatMul output) -> quantizer output."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    nodes = [*chain.affine, *([chain.relu] if chain.relu else []), chain.quant]
    inits = []
    for node in nodes:
        for name in node.input:
            if wrapper.get_initializer(name) is not None and name not in [i.name for i in inits]:
                inits.append(copy.deepcopy(next(i for i in wrapper.graph.initializer if i.name == name)))
    n_out = chain.w_int.shape[1]
    graph = helper.make_graph([copy.deepcopy(x) for x in nodes], "tail",
                              [helper.make_tensor_value_info(chain.matmul.output[0], TensorProto.FLOAT, [n, n_out])],
                              [helper.make_tensor_value_info(chain.quant.output[0], TensorProto.FLOAT, [n, n_out])],
                              inits)
    model = helper.make_model(graph, opset_imports=list(wrapper.model.opset_import))
    model.ir_version = wrapper.model.ir_version
    with quiet_stdout():
        return ModelWrapper(model).transform(InferShapes())


def decisions(wrapper, chain: Chain) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k values, qonnx's integer decision per (k, channel), float-tie flags per (k, channel))."""
    from qonnx.core.onnx_exec import execute_onnx

    ks = np.arange(int(chain.k_lo.min()), int(chain.k_hi.max()) + 1, dtype=np.int64)
    step = chain.x_grid * chain.w_scale  # real value of one accumulator step per channel (source graph)
    ideal = ks[:, None].astype(np.float64) * step[None, :]
    model = _tail_model(wrapper, chain, len(ks))
    name = chain.matmul.output[0]

    def run(z):
        with quiet_stdout():
            out = execute_onnx(model, {name: z.astype(np.float32)})[chain.quant.output[0]]
        out = np.asarray(out, dtype=np.float64)
        if chain.bipolar:
            return (out > 0).astype(np.int64)
        scale = float(_const(wrapper, chain.quant.input[1]).reshape(-1)[0])
        return np.round(out / scale).astype(np.int64)  # out is float32(q * scale): the quotient is q to 1e-7

    target = run(ideal)
    wiggle = np.abs(ideal) * TIE_RELATIVE + np.abs(step)[None, :] * TIE_RELATIVE
    ties = (run(ideal - wiggle) != target) | (run(ideal + wiggle) != target)
    return ks, target, ties


# ------------------------------------------------------------------ constants
def _constraints(ks: np.ndarray, levels: np.ndarray, bipolar: bool, relu: bool, qmin: int, qmax: int):
    """Half-plane constraints ``S k + B > L`` / ``< U`` (in half units: 2 (S k + B) vs integers) for a monotone
    decision; None when the decision is not monotone in k (no affine map reproduces it)."""
    d = np.diff(levels)
    if np.any(d > 0) and np.any(d < 0):
        return None
    lower, upper = [], []  # (k, bound) in units of 1/2
    for a in np.unique(levels):
        sel = ks[levels == a]
        for k in (int(sel.min()), int(sel.max())):
            if bipolar:
                (lower if a == 1 else upper).append((k, 0))  # y >= 0 -> 1; strict on both sides
                continue
            if not (a == qmin or (relu and a == 0)):
                lower.append((k, 2 * int(a) - 1))
            if a != qmax:
                upper.append((k, 2 * int(a) + 1))
    return lower, upper


def _slope_interval(lower, upper) -> tuple[float, float] | None:
    """The open interval of slopes S for which some B meets every constraint (float search, refined exactly
    by ``_fit``); the feasible width in B is a concave function of S."""
    lk = np.array([k for k, _ in lower], dtype=np.float64)
    lb = np.array([b for _, b in lower], dtype=np.float64) / 2
    uk = np.array([k for k, _ in upper], dtype=np.float64)
    ub = np.array([b for _, b in upper], dtype=np.float64) / 2

    def width(s):
        lo = (lb - s * lk).max() if lk.size else -1e300
        hi = (ub - s * uk).min() if uk.size else 1e300
        return hi - lo

    a, b = -SLOPE_LIMIT, SLOPE_LIMIT
    for _ in range(200):
        m1, m2 = a + (b - a) / 3, b - (b - a) / 3
        if width(m1) < width(m2):
            a = m1
        else:
            b = m2
    best = (a + b) / 2
    if width(best) <= 0:
        return None
    ends = []
    for far in (-SLOPE_LIMIT, SLOPE_LIMIT):  # bisect towards each side for the last feasible slope
        inside, outside = best, far
        if width(far) > 0:
            ends.append(far)
            continue
        for _ in range(200):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if width(mid) > 0 else (inside, mid)
        ends.append(inside)
    return ends[0], ends[1]


def _fit(lower, upper, fixed_slope: int | None = None):
    """Integers (S', B', f) with ``S = S'/2^f, B = B'/2^f`` meeting every constraint: fewest f, then the
    smallest constants; or None."""
    if fixed_slope is None:
        span = _slope_interval(lower, upper)
        if span is None:
            return None
    for f in range(0, MAX_FRACTIONAL + 1):
        unit = 1 << f
        if fixed_slope is not None:
            candidates = [fixed_slope * unit]
        else:
            lo, hi = int(np.floor(span[0] * unit)), int(np.ceil(span[1] * unit))
            near_ends = {e + d for e in (lo, hi, min(max(0, lo), hi)) for d in range(-2, 3) if lo < e + d < hi}
            candidates = near_ends | set(np.linspace(lo, hi, 17).round().astype(np.int64).tolist())
            candidates = sorted(candidates, key=abs)
        found = []
        for s in candidates:
            # 2 (s k + B') > L 2^f  and  2 (s k + B') < U 2^f ; B' integer
            lo_b = max((L * unit - 2 * s * k for k, L in lower), default=None)  # 2 B' > lo_b
            hi_b = min((U * unit - 2 * s * k for k, U in upper), default=None)  # 2 B' < hi_b
            if lo_b is None and hi_b is None:
                b = 0
            elif lo_b is None:
                b = min(0, (hi_b - 1) // 2)
            elif hi_b is None:
                b = max(0, lo_b // 2 + 1)
            else:
                b = min(max(0, lo_b // 2 + 1), (hi_b - 1) // 2)
            if (lo_b is None or 2 * b > lo_b) and (hi_b is None or 2 * b < hi_b):
                found.append((max(abs(s), abs(b)), s, b))
        if found:
            _, s, b = min(found)
            return s, b, f
    return None


def fit_chain(wrapper, chain: Chain) -> dict:
    """qonnx's decisions and the per-channel constants reproducing them (``chain.result``)."""
    ks, target, ties = decisions(wrapper, chain)
    levels = None if chain.bipolar else _quant_levels(wrapper, chain.quant)
    qmin, qmax = levels if levels else (0, 1)
    consts, failed = [], []
    for j in range(target.shape[1]):
        sel = (ks >= chain.k_lo[j]) & (ks <= chain.k_hi[j])
        cons = _constraints(ks[sel], target[sel, j], chain.bipolar, chain.relu is not None, qmin, qmax)
        fit = None
        if cons is not None:
            if chain.bipolar:
                up = target[sel, j][-1] >= target[sel, j][0]
                fit = _fit(*cons, fixed_slope=1 if up else -1)
            else:
                fit = _fit(*cons)
        if fit is None:
            failed.append(j)
            consts.append((0, 0, 0))
        else:
            consts.append(fit)
    f = max(c[2] for c in consts)
    scale = np.array([c[0] << (f - c[2]) for c in consts], dtype=object)
    bias = np.array([c[1] << (f - c[2]) for c in consts], dtype=object)
    reachable = int(sum(int(h) - int(l) + 1 for l, h in zip(chain.k_lo, chain.k_hi)))
    chain.result = {"layer": chain.matmul.name, "quantizer": chain.quant.name, "reachable_values": reachable,
                    "fractional_bits": int(f), "scale_raw": scale, "bias_raw": bias,
                    "channels_not_representable": failed,
                    "float_ties": int(sum(ties[(ks >= chain.k_lo[j]) & (ks <= chain.k_hi[j]), j].sum()
                                          for j in range(target.shape[1]))),
                    "ks": ks, "target": target, "mismatches": None}
    chain.result["not_rewritten"] = _fit_error(chain) if not failed else \
        f"no affine map reproduces qonnx's decisions of channel(s) {failed[:5]} (non-monotone or float ties)"
    return chain.result


def _fit_error(chain: Chain) -> str | None:
    """Why the fitted constants cannot go into the graph hls4ml converts (None: they can)."""
    res = chain.result
    f, shift = res["fractional_bits"], _grid_shift(chain)
    # the graph holds float32 initializers: at most 24 significant bits per constant
    if any(_significant_bits(int(v)) > 24 for v in (*res["scale_raw"], *res["bias_raw"])):
        return "a fitted constant needs more than float32's 24 significant bits"
    try:
        scale_fmt = constant_format(*_scale_constants(res["scale_raw"], f - shift))
        bias_fmt = constant_format(res["bias_raw"], f)
        acc = _range_format(int(chain.k_lo.min()), int(chain.k_hi.max()), _fw_grid(chain) / 2)
    except ValueError:
        return f"a fitted constant needs more than {MAX_WIDTH} bits"
    total = acc.width + scale_fmt.width + 1 + max(0, bias_fmt.fractional - acc.fractional - scale_fmt.fractional)
    if total > MAX_WIDTH:
        return f"the batch norm's exact output would need {total} bits (> {MAX_WIDTH})"
    return None


def _significant_bits(v: int) -> int:
    v = abs(v)
    return (v >> ((v & -v).bit_length() - 1)).bit_length() if v else 0


def _fw_grid(chain: Chain) -> float:
    """Real value of one accumulator step in the firmware (the input's grid; 1 after a rescaled quantizer)."""
    return chain.x_grid if chain.input_quant is None else 1.0


def _scale_constants(raw, frac: int):
    """(raw integers, fractional bits >= 0) of the batch-norm scale ``S / grid`` from ``S``'s raw integers at
    ``frac`` = f - log2(1 / grid) fractional bits (negative when the grid is finer than ``S``'s constants)."""
    if frac >= 0:
        return raw, frac
    return np.array([int(v) << -frac for v in raw], dtype=object), 0


def _grid_shift(chain: Chain) -> int:
    return -int(np.log2(_fw_grid(chain)))


def rewritable(wrapper, chains: list[Chain]) -> list[Chain]:
    """The fitted chains that can be rewritten together (see ``_closed``)."""
    kept = _closed(wrapper, [c for c in chains if not c.result.get("not_rewritten")])
    for c in chains:
        if c not in kept and not c.result.get("not_rewritten"):
            c.result["not_rewritten"] = "a neighbouring layer could not be rewritten"
    return kept


def _range_format(k_lo: int, k_hi: int, lsb: float) -> FixedFormat:
    """The signed ap_fixed holding ``k * 2 lsb`` for k in [k_lo, k_hi] exactly (one spare fractional bit)."""
    f = -int(np.log2(lsb))
    return constant_format([2 * k_lo, 2 * k_hi], f)


def constant_format(raw, f: int) -> FixedFormat:
    """The narrowest signed ap_fixed holding raw integers with ``f`` fractional bits, exactly."""
    lo, hi = min(int(v) for v in raw), max(int(v) for v in raw)
    width = max(2, max(int(-lo - 1).bit_length() if lo < 0 else 0, int(hi).bit_length()) + 1)
    width = max(width, f + 1)  # at least the sign bit before the point (hls4ml's precision strings)
    if width > MAX_WIDTH:
        raise ValueError("constant too wide")
    return FixedFormat(width, width - f, True, "TRN", "WRAP")


# ------------------------------------------------------------------ rewriting the graph for hls4ml
def rewrite(wrapper, chains: list[Chain]) -> dict:
    """Rewrite ``wrapper`` in place (integer weights, fitted batch norms, quantizers at scale 1);
    returns the hls4ml precisions the new batch norms need, by node name."""
    from onnx import helper

    precisions = {}
    for chain in chains:
        res = chain.result
        f, scale_raw, bias_raw = res["fractional_bits"], res["scale_raw"], res["bias_raw"]
        # the firmware accumulator is k * grid: fold 1/grid (a power of two) into the scale's point
        scale_raw, scale_f = _scale_constants(scale_raw, f - _grid_shift(chain))
        if chain.bipolar:  # a threshold: the sign of S = +-1 goes into the weights (hls4ml's thresholds rise)
            chain.column_sign = np.array([1 if int(v) > 0 else -1 for v in scale_raw])
            chain.w_int = chain.w_int * chain.column_sign[None, :]
            scale_raw = np.abs(scale_raw)
        gamma = np.array([int(v) for v in scale_raw], dtype=np.float64) / 2.0 ** scale_f
        beta = np.array([int(b) for b in bias_raw], dtype=np.float64) / 2.0 ** f
        tag = chain.matmul.name
        wq = chain.weight_quant
        wrapper.set_initializer(f"{tag}_w_int", chain.w_int.astype(np.float32))
        wrapper.set_initializer(f"{tag}_unit", np.array(1.0, dtype=np.float32))
        wq.input[0], wq.input[1] = f"{tag}_w_int", f"{tag}_unit"
        for node in chain.affine:
            wrapper.graph.node.remove(node)
        bn_name = f"{tag}_requant"
        out = chain.affine[-1].output[0] if chain.affine else f"{tag}_requant_out"
        consumer = chain.relu or chain.quant
        if not chain.affine:
            consumer.input[0] = out
        names = [f"{bn_name}_{p}" for p in ("gamma", "beta", "mean", "var")]
        n = len(gamma)
        for name, value in zip(names, (gamma, beta, np.zeros(n), np.ones(n))):
            wrapper.set_initializer(name, value.astype(np.float32))
        node = helper.make_node("BatchNormalization", [chain.matmul.output[0], *names], [out], name=bn_name,
                                epsilon=0.0)
        wrapper.graph.node.insert(list(wrapper.graph.node).index(chain.matmul) + 1, node)
        # an explicit accumulator type keeps hls4ml from folding the batch norm into the weights
        acc = _range_format(int(chain.k_lo.min()), int(chain.k_hi.max()), _fw_grid(chain) / 2)
        precisions[chain.matmul.name] = {"result": acc}
        if not chain.bipolar:
            wrapper.set_initializer(f"{chain.quant.name}_unit", np.array(1.0, dtype=np.float32))
            chain.quant.input[1] = f"{chain.quant.name}_unit"
        precisions[bn_name] = {"scale": constant_format(scale_raw, scale_f), "bias": constant_format(bias_raw, f)}
        res["scale_format"], res["bias_format"] = precisions[bn_name]["scale"].cpp, precisions[bn_name]["bias"].cpp
    return precisions


# ------------------------------------------------------------------ the exhaustive check
def check(fw, wrapper, chains: list[Chain]) -> list[dict]:
    """Emulate the converted firmware model from each chain's accumulator on every reachable value and
    count disagreements with qonnx's decisions; one summary per chain (``chain.result`` completed)."""
    from trigger.ir.ops.dense import Dense
    from trigger.ir.ranges import of_tensor

    matmuls = [n.name for n in wrapper.graph.node if n.op_type == "MatMul"]
    dense_at = [i for i, op in enumerate(fw.ops) if isinstance(op, Dense)]
    ranges = [of_tensor(fw.input.formats), *fw.ranges()]  # ranges[i]: bounds of op i's inputs
    summaries = []
    for chain in chains:
        res = chain.result
        if not res.get("not_rewritten") and len(dense_at) == len(matmuls):
            index = matmuls.index(chain.matmul.name)
            start = dense_at[index]
            stop = dense_at[index + 1] if index + 1 < len(dense_at) else len(fw.ops)
            if _covers(chain, fw.ops[start], ranges[start]):
                res["mismatches"] = _mismatches(fw.ops[start], fw.ops[start + 1:stop], chain)
            else:
                res["unchecked"] = "the firmware model's interval analysis reaches accumulator values the fit did not"
        summaries.append(summary(res))
    return summaries


def _covers(chain: Chain, dense, inputs) -> bool:
    """Whether the accumulator range the firmware model's own interval analysis gives (from the bounds of the
    dense layer's inputs) lies within the range the constants were fitted on."""
    lsb = dense.input.format.lsb / _fw_grid(chain)  # input raw step in accumulator steps
    lo = np.array([iv.lo for iv in inputs], dtype=np.float64) * lsb
    hi = np.array([iv.hi for iv in inputs], dtype=np.float64) * lsb
    w = chain.w_int
    k_lo = np.minimum(w * lo[:, None], w * hi[:, None]).sum(axis=0)
    k_hi = np.maximum(w * lo[:, None], w * hi[:, None]).sum(axis=0)
    sign = chain.column_sign if chain.column_sign is not None else np.ones(w.shape[1])
    fit_lo = np.where(sign > 0, chain.k_lo, -chain.k_hi)
    fit_hi = np.where(sign > 0, chain.k_hi, -chain.k_lo)
    return bool(np.all(k_lo >= fit_lo) and np.all(k_hi <= fit_hi))


def _mismatches(dense, tail, chain: Chain) -> int | None:
    """Disagreements of the firmware ops after ``dense`` with qonnx on every reachable (k, channel)."""
    grid = _fw_grid(chain)
    if not np.array_equal(dense.weight_fmt.to_float(dense.weight), chain.w_int):
        return None  # hls4ml did not keep the integer weights: no claim
    ks, target = chain.result["ks"], chain.result["target"]
    acc_fmt = dense.output.format
    bias = dense.bias_fmt.to_float(dense.bias).reshape(1, -1)
    sign = chain.column_sign if chain.column_sign is not None else np.ones(chain.w_int.shape[1])
    real = ks[:, None].astype(np.float64) * grid * sign[None, :] + bias
    raw = real / acc_fmt.lsb
    if not np.array_equal(raw, np.round(raw)):
        return None
    y = np.round(raw).astype(np.int64)
    for op in tail:
        y = op.emulate(y, {})
    got = tail[-1].output.format.to_float(y) if tail else None
    if got is None:
        return None
    if not chain.bipolar:
        got = np.round(got).astype(np.int64)
    inside = (ks[:, None] >= chain.k_lo[None, :]) & (ks[:, None] <= chain.k_hi[None, :])
    return int(np.count_nonzero((got != target) & inside))


def summary(res: dict) -> dict:
    """The JSON-able part of a chain's result."""
    keep = ("layer", "quantizer", "reachable_values", "fractional_bits", "scale_format", "bias_format",
            "channels_not_representable", "float_ties", "mismatches", "not_rewritten", "unchecked")
    out = {k: res.get(k) for k in keep}
    out["exact"] = bool(res.get("mismatches") == 0 and not res.get("not_rewritten"))
    return out
