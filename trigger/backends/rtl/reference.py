"""The reference Verilog of an op: the plainest combinational module of its integer semantics.

Why: ``trigger prove`` proves a bundle's optimised module (shift-add trees, sharing, pipelining) equal to
this module, which a reviewer can read side by side with the op's ``emulate``: products are ``*`` by
constants, sums are written in the accumulator's declared width, and every cast is the steps of
``trigger.fixed`` (round, then overflow) spelt out wire by wire. No sharing, no registers, no clock; the
ports are the op module's ``in_data`` and ``out_data``.

One printer per op kind (``PRINTERS``); a kind without one, or an op a printer does not cover (a product
rounded on its own, a saturating accumulator), gets no module: ``print_reference`` raises ``Unsupported``.
"""

from __future__ import annotations

import re

import numpy as np

MAX_RIGHT_SHIFT = 62  # trigger.fixed rounds past 62 dropped bits differently (sign only): not printed


class Unsupported(Exception):
    """The op has no reference Verilog (the reason is the message)."""


class Printer:
    """Collects the wire declarations and assignments of one module body."""

    def __init__(self):
        self.lines: list[str] = []
        self.count = 0

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def wire(self, name: str, width: int, signed: bool, expr: str, note: str = "") -> str:
        sign = "signed " if signed else ""
        tail = f"  // {note}" if note else ""
        self.lines.append(f"  wire {sign}[{width - 1}:0] {name} = {expr};{tail}")
        return name

    def comment(self, text: str) -> None:
        self.lines.append(f"  // {text}")


def lit(value: int, width: int | None = None) -> str:
    """A signed Verilog literal of ``value`` (sized to hold it, or ``width`` bits)."""
    value = int(value)
    size = width or max(abs(value).bit_length() + 1, 2)
    return f"-{size}'sd{-value}" if value < 0 else f"{size}'sd{value}"


def signed_width(fmt) -> int:
    """Bits of a signed wire holding every raw value of ``fmt`` (one more for an unsigned format)."""
    return fmt.width + (0 if fmt.signed else 1)


def as_signed(name: str, fmt) -> str:
    """A raw value of ``fmt`` in wire ``name`` (its bits) as a signed Verilog expression."""
    return f"$signed({name})" if fmt.signed else f"$signed({{1'b0, {name}}})"


# whether a rounding mode adds one to the floor (trigger.fixed._round_shift): from the dropped bits (above or at
# half of the LSB), the sign, and the floor's lowest bit
ROUND_UP = {
    "TRN": lambda above, tie, negative, inexact, odd: "1'b0",
    "TRN_ZERO": lambda above, tie, negative, inexact, odd: f"{negative} & {inexact}",
    "RND": lambda above, tie, negative, inexact, odd: f"{above} | {tie}",
    "RND_ZERO": lambda above, tie, negative, inexact, odd: f"{above} | ({tie} & {negative})",
    "RND_MIN_INF": lambda above, tie, negative, inexact, odd: above,
    "RND_INF": lambda above, tie, negative, inexact, odd: f"{above} | ({tie} & ~{negative})",
    "RND_CONV": lambda above, tie, negative, inexact, odd: f"{above} | ({tie} & {odd})",
}


def cast(p: Printer, value: str, width: int, source, out, stem: str) -> str:
    """``out.cast(value, source)`` as trigger.fixed computes it: round ``right`` dropped bits as the mode
    says, then handle overflow against the range; ``value`` is a signed wire of ``width`` bits holding a raw
    value of ``source``. Returns the wire (``out.width`` bits) holding the result's raw bits."""
    shift = out.fractional - source.fractional
    right, left = max(-shift, 0), min(max(shift, 0), 63)
    if right > MAX_RIGHT_SHIFT:
        raise Unsupported(f"a cast dropping {right} bits (more than {MAX_RIGHT_SHIFT})")
    hi = int(out.max_raw)
    lo = -hi if (out.overflow == "SAT_SYM" and out.signed) else int(out.min_raw)
    hi_s, lo_s = hi >> left, -((-lo) >> left)
    m = max(width, out.width, right + 1, hi_s.bit_length() + 1, (-lo_s).bit_length() + 1) + 2
    p.comment(f"{stem} = ({out.cpp}) {value}, from {source.cpp}")
    a = p.wire(f"{stem}_a", m, True, value)
    if right == 0:
        r = a
    else:
        floor = p.wire(f"{stem}_floor", m, True, f"{a} >>> {right}")
        rem = p.wire(f"{stem}_rem", right, False, f"{a}[{right - 1}:0]")
        half = f"{right}'d{1 << (right - 1)}"
        up = ROUND_UP[out.rounding](above=f"({rem} > {half})", tie=f"({rem} == {half})", negative=f"{a}[{m - 1}]",
                                    inexact=f"({rem} != {right}'d0)", odd=f"{floor}[0]")
        bit = p.wire(f"{stem}_up", 1, False, up, f"rounding {out.rounding}")
        r = p.wire(f"{stem}_r", m, True, f"{floor} + $signed({{{m - 1}'d0, {bit}}})")
    keep = max(out.width - left, 0)
    if keep == 0:
        wrapped = f"{out.width}'d0"
    elif left == 0:
        wrapped = f"{r}[{out.width - 1}:0]"
    else:
        wrapped = f"{{{r}[{keep - 1}:0], {left}'d0}}"
    wrap = p.wire(f"{stem}_wrap", out.width, False, wrapped)
    y = f"{stem}_y"
    if out.overflow == "WRAP":
        return p.wire(y, out.width, False, wrap, "overflow WRAP")
    over = p.wire(f"{stem}_over", 1, False, f"({r} > {lit(hi_s, m)}) || ({r} < {lit(lo_s, m)})")
    if out.overflow == "SAT_ZERO":
        return p.wire(y, out.width, False, f"{over} ? {out.width}'d0 : {wrap}", "overflow SAT_ZERO")
    bits = lambda v: f"{out.width}'d{v & ((1 << out.width) - 1)}"  # noqa: E731 - a raw value's bit pattern
    return p.wire(y, out.width, False, f"{over} ? (({r} > {lit(0, m)}) ? {bits(hi)} : {bits(lo)}) : {wrap}",
                  f"overflow {out.overflow}")


def inputs(p: Printer, op) -> list[str]:
    """One wire per input element (its raw bits, signed as its format)."""
    names = []
    for i, (lsb, fmt) in enumerate(zip(op.input.offsets, op.input.formats)):
        names.append(p.wire(f"x{i}", fmt.width, fmt.signed, f"in_data[{lsb + fmt.width - 1}:{lsb}]"))
    return names


# ---------------------------------------------------------------------------------------------- per op kind
def _linear(p: Printer, op, kernel, positions) -> list[str]:
    """acc = bias + sum_i x_i * (w_ij << shift), in the accumulator's declared width (exact: the range
    analysis proves it fits; or WRAP: modulo its width, as hls4ml's accum_t wraps), then the output cast."""
    plan = kernel.plan()
    if plan["shift"] < 0:
        raise Unsupported("each product is rounded to the accumulator on its own (a negative product shift)")
    acc = kernel.accum_fmt
    if (plan["product_can_overflow"] or plan["sum_can_overflow"]) and acc.overflow != "WRAP":
        raise Unsupported(f"a partial sum can overflow the {acc.overflow} accumulator (order-dependent)")
    xs = inputs(p, op)
    w = kernel.weight.astype(object) << plan["shift"]
    outs = []
    for q, idx in enumerate(positions):
        for j in range(kernel.n_out):
            k = q * kernel.n_out + j
            terms = [lit(int(plan["bias_acc"][j]), acc.width)]
            for c, i in enumerate(idx):
                if i >= 0 and w[c, j]:
                    terms.append(f"{as_signed(xs[int(i)], op.input.formats[int(i)])} * {lit(int(w[c, j]))}")
            s = p.wire(f"acc{k}", acc.width, acc.signed, " + ".join(terms), f"{acc.cpp}")
            outs.append(cast(p, as_signed(s, acc), signed_width(acc), acc, op.output.formats[k], f"y{k}c"))
    return outs


def _dense(p, op):
    return _linear(p, op, op, [list(range(op.n_in))])


def _conv(p, op):
    if getattr(op, "stream", False):
        raise Unsupported("a streamed convolution (its module reads one pixel at a time)")
    return _linear(p, op, op.kernel_op(), [list(map(int, row)) for row in op.geometry.im2col()])


def _elementwise(pre):
    def printer(p, op):
        xs = inputs(p, op)
        outs = []
        for i, x in enumerate(xs):
            src, out = op.input.formats[i], op.output.formats[i]
            value = pre(p, as_signed(x, src), signed_width(src), i)
            outs.append(cast(p, value, signed_width(src), src, out, f"y{i}c"))
        return outs
    return printer


def _relu_pre(p, x, width, i):
    return p.wire(f"pos{i}", width, True, f"({x} > {lit(0, width)}) ? {x} : {lit(0, width)}", "max(x, 0)")


def _leaky_relu(p, op):
    src, out = op.input.format, op.output.format
    prod = src.product_format(op.alpha_fmt)
    width = max(signed_width(prod), signed_width(src))
    outs = []
    for i, x in enumerate(inputs(p, op)):
        xv = as_signed(x, src)
        kept = cast(p, xv, signed_width(src), src, out, f"k{i}c")
        scaled = p.wire(f"p{i}", width, True, f"{xv} * {lit(op.alpha)}", f"x * alpha, {prod.cpp}")
        neg = cast(p, scaled, width, prod, out, f"n{i}c")
        outs.append(p.wire(f"y{i}", out.width, False, f"({xv} > {lit(0)}) ? {kept} : {neg}"))
    return outs


def _max_pool(p, op):
    src, acc = op.input.format, op.accum_fmt
    width = signed_width(src)
    xs = [as_signed(x, src) for x in inputs(p, op)]
    outs = []
    for k, cells in enumerate(op.windows()):
        values = [xs[int(i)] if i >= 0 else lit(op.pad_raw, width) for i in cells]
        best = p.wire(f"m{k}_0", width, True, values[0])
        for n, v in enumerate(values[1:], 1):
            best = p.wire(f"m{k}_{n}", width, True, f"({v} > {best}) ? {v} : {best}")
        a = cast(p, best, width, src, acc, f"a{k}c")
        outs.append(cast(p, as_signed(a, acc), signed_width(acc), acc, op.output.formats[k], f"y{k}c"))
    return outs


def _argmax(p, op):
    src, out = op.input.format, op.output.formats[0]
    width = signed_width(src)
    xs = [as_signed(x, src) for x in inputs(p, op)]
    best, index = p.wire("best0", width, True, xs[0]), p.wire("index0", out.width, False, f"{out.width}'d0")
    for i in range(1, len(xs)):  # the first largest wins a tie (numpy's argmax)
        more = p.wire(f"more{i}", 1, False, f"{xs[i]} > {best}")
        best = p.wire(f"best{i}", width, True, f"{more} ? {xs[i]} : {best}")
        index = p.wire(f"index{i}", out.width, False, f"{more} ? {out.width}'d{i} : {index}")
    return [index]


def _merge(p, op):
    """nnet_merge.h: the two operands aligned to the finer LSB (multiply: as they are), the operation in its
    exact ap_fixed type, then the cast to the output."""
    from trigger.ir.ops.merge import _widths, exact_format

    xs = inputs(p, op)
    outs = []
    for i in range(op.output.n):
        ia, ib = op.sources(i)
        fa, fb = op.operands(i)
        sa, sb = (0, 0) if op.operation == "multiply" else _widths(fa, fb)
        exact = exact_format(op.operation, fa, fb)
        width = signed_width(exact) + 1
        a = p.wire(f"a{i}", width, True, f"{as_signed(xs[ia], fa)} <<< {sa}")
        b = p.wire(f"b{i}", width, True, f"{as_signed(xs[ib], fb)} <<< {sb}")
        expr = {"add": f"{a} + {b}", "average": f"{a} + {b}", "subtract": f"{a} - {b}", "multiply": f"{a} * {b}",
                "maximum": f"({a} > {b}) ? {a} : {b}", "minimum": f"({a} < {b}) ? {a} : {b}"}[op.operation]
        s = p.wire(f"s{i}", width, True, expr, f"{op.operation}, {exact.cpp}")
        outs.append(cast(p, s, width, exact, op.output.formats[i], f"y{i}c"))
    return outs


def _concatenate(p, op):
    """Output i is input index[i], cast to its output format."""
    xs = inputs(p, op)
    return [cast(p, as_signed(xs[int(j)], op.input.formats[int(j)]), signed_width(op.input.formats[int(j)]),
                 op.input.formats[int(j)], op.output.formats[i], f"y{i}c") for i, j in enumerate(op.index)]


PRINTERS = {"dense": _dense, "conv1d": _conv, "conv2d": _conv,
            "relu": _elementwise(_relu_pre), "linear": _elementwise(lambda p, x, width, i: x),
            "leaky_relu": _leaky_relu, "max_pool": _max_pool, "argmax": _argmax, "merge": _merge,
            "concatenate": _concatenate}


def module_name(op) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", op.name)
    return f"reference_{ident}"


def print_reference(op) -> str:
    """The reference module of ``op`` (Verilog text, deterministic); raises Unsupported."""
    if op.kind not in PRINTERS:
        raise Unsupported(f"no reference Verilog for op kind {op.kind!r}")
    p = Printer()
    outs = PRINTERS[op.kind](p, op)
    if len(outs) != op.output.n:
        raise Unsupported(f"the printer wrote {len(outs)} outputs of {op.output.n}")
    body = "\n".join(p.lines)
    pack = ", ".join(reversed(outs))  # element 0 in the least significant bits
    return (f"// reference Verilog of op '{op.name}' ({op.kind}), printed by trigger/backends/rtl/reference.py\n"
            f"// from the op's fields as emulate() computes it: no sharing, no registers.\n"
            f"module {module_name(op)} (\n"
            f"  input  wire [{op.input.bus_width - 1}:0] in_data,\n"
            f"  output wire [{op.output.bus_width - 1}:0] out_data\n);\n"
            f"{body}\n  assign out_data = {{{pack}}};\nendmodule\n")
