"""Verilog for a FirmwareModel: fully parallel, pipelined, constant weights.

Python does the arithmetic planning (exact value ranges of every signal, hence
exact widths, where rounding and overflow can happen, where registers go); the
Verilog text lives in the Jinja2 templates under ``firmware_templates/rtl/``.

Bit-exactness: a Dense layer's accumulator is computed as the exact sum of the
products (each cast to accum_t as hls4ml does) in an adder tree. That equals
hls4ml's sequential sum when a range analysis over all inputs proves no partial
sum can overflow, or when accum_t wraps (wrapping is arithmetic modulo 2**W, so
the order does not matter). A saturating accumulator that can overflow is
refused with an error asking for a wider accumulator.

Pipelining: the top registers its input; ``pipeline="layer"`` registers the
output of every layer (an activation is merged into the layer before it);
``pipeline=N`` also registers every N adder-tree levels inside Dense layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from trigger.firmware.emulator import dense_plan, validate
from trigger.firmware.model import Activation, Dense, FirmwareModel, Scale
from trigger.fixed import FixedFormat, OverflowCount

TEMPLATES = Path(__file__).resolve().parent.parent / "firmware_templates" / "rtl"
ROUNDING = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")


@dataclass
class RtlDesign:
    sources: list[Path]
    top: str
    latency_cycles: int
    w_in: int
    w_out: int
    n_in: int
    n_out: int
    input_fmt: FixedFormat
    output_fmt: FixedFormat
    layer_latency: dict[str, int] = field(default_factory=dict)


def signed_width(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in [lo, hi]."""
    w = 1
    while lo < -(1 << (w - 1)) or hi > (1 << (w - 1)) - 1:
        w += 1
    return w


@dataclass
class Sig:
    """A signed Verilog signal holding integers in [lo, hi] (or a constant)."""

    name: str
    width: int
    lo: int
    hi: int
    const: int | None = None


class _Module:
    """Statements of one layer module, built in order (each defines one signal)."""

    def __init__(self, name: str):
        self.name, self.statements, self.outputs = name, [], []
        self.has_clock = False

    def emit(self, kind: str, out: Sig, **fields) -> Sig:
        self.statements.append(dict(kind=kind, out=out, **fields))
        return out

    # ------------------------------------------------------------ primitives
    def unpack(self, name: str, lsb: int, fmt: FixedFormat) -> Sig:
        out = Sig(name, fmt.width + (0 if fmt.signed else 1), fmt.min_raw, fmt.max_raw)
        return self.emit("unpack", out, lsb=lsb, fmt_width=fmt.width, signed=fmt.signed)

    def const(self, name: str, value: int) -> Sig:
        out = Sig(name, signed_width(value, value), value, value, const=value)
        return self.emit("const", out, bits=value % (1 << out.width))

    def mul(self, name: str, a: Sig, k: int, cap: int | None) -> Sig:
        ends = (a.lo * k, a.hi * k)
        lo, hi = min(ends), max(ends)
        width = signed_width(lo, hi)
        if cap is not None and width > cap:
            width, lo, hi = cap, -(1 << (cap - 1)), (1 << (cap - 1)) - 1
        out = Sig(name, width, lo, hi)
        return self.emit("mul", out, a=a, k=k, k_bits=k % (1 << width))

    def add(self, name: str, a: Sig, b: Sig, cap: int | None) -> Sig:
        lo, hi = a.lo + b.lo, a.hi + b.hi
        if a.const is not None and b.const is not None:
            return self.const(name, a.const + b.const)
        width = signed_width(lo, hi)
        if cap is not None and width > cap:
            width, lo, hi = cap, -(1 << (cap - 1)), (1 << (cap - 1)) - 1
        return self.emit("add", Sig(name, width, lo, hi), a=a, b=b)

    def reg(self, name: str, a: Sig) -> Sig:
        if a.const is not None:
            return a
        self.has_clock = True
        return self.emit("reg", Sig(name, a.width, a.lo, a.hi), a=a)

    def relu(self, name: str, a: Sig) -> Sig:
        return self.emit("relu", Sig(name, a.width, max(a.lo, 0), max(a.hi, 0)), a=a)

    def wrap(self, name: str, a: Sig, fmt: FixedFormat) -> Sig:
        """The low fmt.width bits of a, read in fmt (arithmetic modulo 2**width)."""
        out = Sig(name, fmt.width + (0 if fmt.signed else 1), fmt.min_raw, fmt.max_raw)
        return self.emit("wrap", out, a=a, fmt_width=fmt.width, signed=fmt.signed)

    def requant(self, name: str, a: Sig, src: FixedFormat, dst: FixedFormat, where: str) -> Sig:
        """dst.cast(a) from src's LSBs: ap_fixed assignment (rounding, then overflow)."""
        if dst.rounding not in ROUNDING or dst.overflow not in OVERFLOW:
            raise ValueError(f"{where}: RTL does not support {dst} (rounding {', '.join(ROUNDING)}; "
                             f"overflow {', '.join(OVERFLOW)})")
        if a.const is not None:
            return self.const(name, int(dst.cast(np.array([a.const]), src)[0]))
        shift = src.fractional - dst.fractional  # right shift
        count = OverflowCount()
        ends = dst.cast(np.array([a.lo, a.hi], dtype=np.int64), src, count)
        can_overflow = count.overflows > 0
        if shift > 0:
            xw = max(a.width, shift + 1)
            rlo, rhi = a.lo >> shift, (a.hi >> shift) + (0 if dst.rounding == "TRN" else 1)
        else:
            xw = a.width
            rlo, rhi = a.lo << -shift, a.hi << -shift
        rw = a.width - shift if shift < 0 else signed_width(rlo, rhi)
        ohi = dst.max_raw
        olo = -dst.max_raw if (dst.overflow == "SAT_SYM" and dst.signed) else dst.min_raw
        if can_overflow:
            lo, hi = (olo, ohi) if dst.overflow in ("SAT", "SAT_SYM") else (dst.min_raw, dst.max_raw)
        else:
            lo, hi = int(ends[0]), int(ends[1])
        out = Sig(name, dst.width + (0 if dst.signed else 1), lo, hi)
        spec = dict(shift=shift, xw=xw, fw=xw - shift if shift > 0 else 0, rw=rw, rounding=dst.rounding,
                    overflow=dst.overflow if can_overflow else "NONE", ow=dst.width, signed=dst.signed,
                    check_hi=can_overflow and rhi > ohi, check_lo=can_overflow and rlo < olo,
                    hi_bits=ohi % (1 << rw), lo_bits=olo % (1 << rw),
                    sat_hi=ohi % (1 << dst.width), sat_lo=olo % (1 << dst.width))
        return self.emit("requant", out, a=a, spec=spec)


def _ident(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if re.match(r"[A-Za-z]", ident) else f"l_{ident}"


def _sat_refusal(layer: Dense, plan: dict) -> str:
    need = max(-min(plan["sum_lo"]), max(plan["sum_hi"]) + 1, 1)
    int_bits = need.bit_length() + 1 - layer.accum_fmt.fractional
    return (f"layer {layer.name!r}: accumulator {layer.accum_fmt} can overflow "
            f"(range {min(plan['sum_lo'])}..{max(plan['sum_hi'])} raw) and saturates, which the "
            f"parallel adder tree cannot reproduce; widen accum_t to at least {int_bits} integer bits "
            f"(e.g. fixed<{layer.accum_fmt.fractional + int_bits},{int_bits}>) or make it WRAP")


def _dense_module(mod: _Module, layer: Dense, every: int | None, register_output: bool) -> int:
    plan = dense_plan(layer)
    acc = layer.accum_fmt
    can_overflow = plan["product_can_overflow"] or plan["sum_can_overflow"]
    if can_overflow and acc.overflow != "WRAP":
        raise ValueError(_sat_refusal(layer, plan))
    cap = acc.width if can_overflow else None
    prod_fmt, shift = plan["product_format"], plan["shift"]
    xs = [mod.unpack(f"x{i}", i * layer.input_fmt.width, layer.input_fmt) for i in range(layer.n_in)]
    w = np.asarray(layer.weight, dtype=np.int64)
    trees = []
    for j in range(layer.n_out):
        leaves = []
        for i in range(layer.n_in):
            k = int(w[i, j])
            if k == 0:
                continue  # zero weights cost nothing
            if shift >= 0:
                leaves.append(mod.mul(f"p{i}_{j}", xs[i], k << shift, cap))
            else:
                p = mod.mul(f"m{i}_{j}", xs[i], k, None)
                leaves.append(mod.requant(f"p{i}_{j}", p, prod_fmt, acc, f"layer {layer.name!r}"))
        b = int(plan["bias_acc"][j])
        if b != 0 or not leaves:
            leaves.append(mod.const(f"b{j}", b))
        trees.append(leaves)
    depth = max((len(t) - 1).bit_length() for t in trees)
    regs = 0
    for level in range(1, depth + 1):
        registered = every is not None and level % every == 0 and level < depth
        for j, nodes in enumerate(trees):
            nxt = []
            for k in range(0, len(nodes), 2):
                if k + 1 < len(nodes):
                    nxt.append(mod.add(f"s{j}_{level}_{k // 2}", nodes[k], nodes[k + 1], cap))
                else:
                    nxt.append(nodes[k])
            if registered:
                nxt = [mod.reg(f"r{j}_{level}_{k}", n) for k, n in enumerate(nxt)]
            trees[j] = nxt
        regs += registered
    for j, (root,) in enumerate(trees):
        if can_overflow:
            root = mod.wrap(f"a{j}", root, acc)
        y = mod.requant(f"y{j}", root, acc, layer.output_fmt, f"layer {layer.name!r}")
        mod.outputs.append(mod.reg(f"q{j}", y) if register_output else y)
    if register_output:
        mod.has_clock = True
    return regs + register_output


def _scale_module(mod: _Module, layer: Scale, register_output: bool) -> int:
    prod_fmt = layer.input_fmt.product_format(layer.scale_fmt)
    sum_fmt = prod_fmt.sum_format(layer.bias_fmt)
    for i in range(layer.n_in):
        x = mod.unpack(f"x{i}", i * layer.input_fmt.width, layer.input_fmt)
        leaves = []
        s, b = int(layer.scale[i]), int(layer.bias[i])
        if s != 0:
            leaves.append(mod.mul(f"p{i}", x, s << (sum_fmt.fractional - prod_fmt.fractional), None))
        if b != 0 or not leaves:
            leaves.append(mod.const(f"b{i}", b << (sum_fmt.fractional - layer.bias_fmt.fractional)))
        v = leaves[0] if len(leaves) == 1 else mod.add(f"s{i}", leaves[0], leaves[1], None)
        y = mod.requant(f"y{i}", v, sum_fmt, layer.output_fmt, f"layer {layer.name!r}")
        mod.outputs.append(mod.reg(f"q{i}", y) if register_output else y)
    if register_output:
        mod.has_clock = True
    return int(register_output)


def _activation_module(mod: _Module, layer: Activation, register_output: bool) -> int:
    for i in range(layer.n):
        x = mod.unpack(f"x{i}", i * layer.input_fmt.width, layer.input_fmt)
        if layer.function == "relu":
            x = mod.relu(f"r{i}", x)
        y = mod.requant(f"y{i}", x, layer.input_fmt, layer.output_fmt, f"layer {layer.name!r}")
        mod.outputs.append(mod.reg(f"q{i}", y) if register_output else y)
    if register_output:
        mod.has_clock = True
    return int(register_output)


def _environment() -> jinja2.Environment:
    # Verilog uses {{ }} for replication: variables are written {= ... =} in these templates.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              variable_start_string="{=", variable_end_string="=}",
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def write_rtl(model: FirmwareModel, out_dir: Path, top: str = "trigger_top", pipeline="layer") -> RtlDesign:
    """Writes the Verilog of ``model`` behind the standard RTL top into ``out_dir``."""
    validate(model)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", top):
        raise ValueError(f"top module name {top!r} is not a Verilog identifier")
    if pipeline == "layer":
        every = None
    elif isinstance(pipeline, (int, np.integer)) and not isinstance(pipeline, bool) and pipeline >= 1:
        every = int(pipeline)
    else:
        raise ValueError(f"pipeline must be 'layer' or a positive number of adder levels, got {pipeline!r}")
    modules, latencies, seen = [], {}, set()
    for k, layer in enumerate(model.layers):
        name = f"{top}_{_ident(layer.name)}"
        if name in seen:
            name = f"{name}_{k}"
        seen.add(name)
        nxt = model.layers[k + 1] if k + 1 < len(model.layers) else None
        register_output = not isinstance(nxt, Activation)
        mod = _Module(name)
        if isinstance(layer, Dense):
            lat = _dense_module(mod, layer, every, register_output)
        elif isinstance(layer, Scale):
            lat = _scale_module(mod, layer, register_output)
        else:
            lat = _activation_module(mod, layer, register_output)
        mod.n_in, mod.w_in = layer.n_in, layer.input_fmt.width
        mod.n_out, mod.w_out = layer.n_out, layer.output_fmt.width
        mod.layer = layer.name
        modules.append(mod)
        latencies[layer.name] = lat
    latency = 1 + sum(latencies.values())  # the input register, then the layers

    env = _environment()
    out_dir = Path(out_dir)
    texts = {}
    for mod in modules:
        texts[f"{mod.name}.v"] = env.get_template("layer.v.j2").render(mod=mod, top=top)
    texts[f"{top}.v"] = env.get_template("top.v.j2").render(
        top=top, model=model.name, modules=modules, latency=latency, n_in=model.n_inputs,
        w_in=model.input_fmt.width, n_out=model.n_outputs, w_out=model.output_fmt.width,
        input_fmt=str(model.input_fmt), output_fmt=str(model.output_fmt), pipeline=pipeline)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    for fname, text in texts.items():
        path = out_dir / fname
        path.write_text(text)
        sources.append(path)
    return RtlDesign(sources, top, latency, model.input_fmt.width, model.output_fmt.width, model.n_inputs,
                     model.n_outputs, model.input_fmt, model.output_fmt, latencies)
