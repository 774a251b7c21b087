"""``dense``: a constant matrix product, as nnet_dense_latency.h computes it.

Each product ``x_i * w_ij`` is exact, then cast to ``accum_fmt``; the accumulator
starts from the bias cast to ``accum_fmt`` and adds the products in input order,
in ``accum_fmt``; the sum is cast to the output format.

With ``options["ii"]`` > 1 the constant product is digit-serial over that many
cycles (trigger/backends/rtl/serial.py): exact integers, the same result.

The RTL sums the (cast) products in a balanced adder tree. That equals the
sequential sum when the range analysis proves no partial sum leaves the
accumulator, or when the accumulator wraps (arithmetic modulo 2**W does not
depend on order). A saturating accumulator that can overflow is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import MAX_WIDTH, FixedFormat, OverflowCount
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class Dense(Op):
    weight: np.ndarray = None  # raw int64 (n_in, n_out) in weight_fmt
    bias: np.ndarray = None  # raw int64 (n_out,) in bias_fmt
    weight_fmt: FixedFormat = None
    bias_fmt: FixedFormat = None
    accum_fmt: FixedFormat = None

    kind = "dense"
    arrays = ("weight", "bias")

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[1])

    def validate(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.int64)
        self.bias = np.asarray(self.bias, dtype=np.int64).reshape(-1)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[1],):
            self.fail(f"weight must be (n_in, n_out) and bias (n_out,), got {self.weight.shape} and {self.bias.shape}")
        if self.weight.shape != (self.input.n, self.output.n):
            self.fail(f"weight shape {self.weight.shape} does not match {self.input.n} inputs and {self.output.n} outputs")
        self.check_constants()

    def check_constants(self) -> None:
        """Checks shared by every dense-like op: formats, raw constants, product width; plans the accumulator."""
        self.input.format, self.output.format  # noqa: B018 - one format per tensor (raises otherwise)
        self.check_raw("weight", self.weight, self.weight_fmt)
        self.check_raw("bias", self.bias, self.bias_fmt)
        if self.input.format.product_format(self.weight_fmt).width > MAX_WIDTH:
            self.fail(f"product width exceeds {MAX_WIDTH} bits")
        self.__dict__["_plan"] = self.plan()

    # ------------------------------------------------------------ range analysis
    def plan(self) -> dict:
        """The accumulator's range analysis over every input the input format can hold.

        Each product's exact interval is rounded to the accumulator's LSBs (rounding is
        monotonic, so the ends bound it) without overflow handling; the bias likewise.
        Every product interval holds 0, so the sum of the intervals bounds every partial
        sum in every order: when it fits the accumulator nothing can overflow, the order
        does not matter and the emulator may use one integer matrix product. Widening an
        accumulator (the hls4ml frontend) uses the same bounds.
        """
        in_fmt, acc = self.input.format, self.accum_fmt
        prod_fmt = in_fmt.product_format(self.weight_fmt)
        bias_count = OverflowCount()
        bias_acc = acc.cast(self.bias, self.bias_fmt, bias_count)
        ends = acc.rounded(np.stack([self.weight * in_fmt.min_raw, self.weight * in_fmt.max_raw]), prod_fmt)
        lo, hi = ends.min(axis=0), ends.max(axis=0)  # (n_in, n_out), in accumulator LSBs
        bias_exact = acc.rounded(self.bias, self.bias_fmt)
        sum_lo = [int(b) + sum(int(v) for v in lo[:, j]) for j, b in enumerate(bias_exact)]
        sum_hi = [int(b) + sum(int(v) for v in hi[:, j]) for j, b in enumerate(bias_exact)]
        product_can_overflow = bool(lo.size) and (int(lo.min()) < acc.min_raw or int(hi.max()) > acc.max_raw)
        return {"bias_acc": bias_acc, "bias_overflow": bias_count.overflows, "product_format": prod_fmt,
                "shift": acc.fractional - prod_fmt.fractional, "product_can_overflow": product_can_overflow,
                "sum_lo": sum_lo, "sum_hi": sum_hi,
                "sum_can_overflow": min(sum_lo) < acc.min_raw or max(sum_hi) > acc.max_raw}

    def worst_case_sum(self) -> np.ndarray:
        """Per output, the largest |partial sum| any inputs can give, in accumulator LSBs (from ``plan``)."""
        plan = self.plan()
        return np.array([max(-lo, hi) for lo, hi in zip(plan["sum_lo"], plan["sum_hi"])], dtype=object)

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        plan = self.plan()
        acc = self.accum_fmt
        out = []
        for j in range(self.n_out):
            if plan["product_can_overflow"] or plan["sum_can_overflow"]:
                iv = Interval.of(acc)
            else:
                iv = Interval(plan["sum_lo"][j], plan["sum_hi"][j])
            lo, hi, _ = self.output.formats[j].cast_interval(iv.lo, iv.hi, acc)
            out.append(Interval(lo, hi))
        return out

    # ------------------------------------------------------------ emulation
    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        plan = self.__dict__.get("_plan") or self.plan()  # validate() leaves it here
        acc_fmt, prod_fmt, shift = self.accum_fmt, plan["product_format"], plan["shift"]
        n, n_in, n_out = x.shape[0], self.n_in, self.n_out
        if "bias" not in counts:
            counts["bias"] = OverflowCount(n_out, plan["bias_overflow"])
        product, accum = counter(counts, "product"), counter(counts, "accum")
        if shift >= 0 and not plan["product_can_overflow"] and not plan["sum_can_overflow"]:
            # No product cast rounds or overflows and no partial sum leaves the accumulator:
            # the sequential sum equals the exact sum, in any order.
            acc = x @ (self.weight << shift) + plan["bias_acc"]
            product.add(n * n_in * n_out, 0)
            accum.add(n * n_in * n_out, 0)
        else:
            # hls4ml's order: acc = (accum_t)bias; for ii: acc[jj] += (accum_t)(x[ii] * w[ii][jj]).
            sum_fmt = acc_fmt.sum_format(acc_fmt)
            exact_products = shift >= 0 and prod_fmt.width + shift <= MAX_WIDTH
            acc = np.broadcast_to(plan["bias_acc"], (n, n_out)).copy()
            for i in range(n_in):
                p = x[:, i:i + 1] * self.weight[i]
                if exact_products:
                    p = _cast_no_rounding(acc_fmt, p << shift, p, prod_fmt, product)
                else:
                    p = acc_fmt.cast(p, prod_fmt, product)
                s = acc + p
                acc = _cast_no_rounding(acc_fmt, s, s, sum_fmt, accum)
        return self.output.format.cast(acc, acc_fmt, counter(counts, "output"))

    # ------------------------------------------------------------ RTL
    def max_ii(self) -> int:
        """Digit-serial down to one input bit per cycle, when the products are exact (one linear map)."""
        return self.input.format.width if self.plan()["shift"] >= 0 else 1

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        plan = self.plan()
        acc = self.accum_fmt
        can_overflow = plan["product_can_overflow"] or plan["sum_can_overflow"]
        if can_overflow and acc.overflow != "WRAP":
            need = max(-min(plan["sum_lo"]), max(plan["sum_hi"]) + 1, 1)
            int_bits = need.bit_length() + 1 - acc.fractional
            self.fail(f"accumulator {acc} can overflow (range {min(plan['sum_lo'])}..{max(plan['sum_hi'])} raw) "
                      f"and saturates, which the parallel adder tree cannot reproduce; widen accum_t to at least "
                      f"{int_bits} integer bits (e.g. fixed<{acc.fractional + int_bits},{int_bits}>) or make it WRAP")
        cap = acc.width if can_overflow else None
        prod_fmt, shift = plan["product_format"], plan["shift"]
        every = options.get("pipeline_every")
        bias = [int(b) for b in plan["bias_acc"]]
        ii = options.get("ii", 1)
        if shift >= 0 and ii > 1:  # shared over ii cycles: digit-serial, the same integers
            roots = m.serial_matvec("", xs, self.weight.astype(object) << shift, bias, cap, ii, every)
        elif shift >= 0:  # every product is exact in the accumulator's LSBs: one constant-matrix product
            roots = m.constant_matvec("", xs, self.weight.astype(object) << shift, bias, cap, every)
        else:  # each product is rounded to the accumulator on its own (not linear): sum the casts
            trees = []
            for j in range(self.n_out):
                leaves = [m.requant(f"p{i}_{j}", m.mul(f"m{i}_{j}", xs[i], int(self.weight[i, j])), prod_fmt, acc)
                          for i in range(self.n_in) if self.weight[i, j] != 0]
                if bias[j] != 0 or not leaves:
                    leaves.append(m.const(f"b{j}", bias[j]))
                trees.append(leaves)
            roots = m.sum_trees("s", trees, cap, every)
        outputs = []
        for j, root in enumerate(roots):
            if can_overflow:
                root = m.wrap(f"a{j}", root, acc)
            outputs.append(m.requant(f"y{j}", root, acc, self.output.formats[j]))
        if ii > 1 and options.get("hold", True):  # written once per event: the next op reads them for ii cycles
            return m.hold(outputs)
        return outputs

    def describe(self) -> str:
        prod = self.input.format.product_format(self.weight_fmt)
        return (f"dense {self.n_in}->{self.n_out}, weight {self.weight_fmt.cpp}, bias {self.bias_fmt.cpp}, "
                f"product {prod.cpp}, accum {self.accum_fmt.cpp}, output {self.output.format.cpp}")


def _cast_no_rounding(fmt: FixedFormat, shifted: np.ndarray, raw: np.ndarray, source: FixedFormat,
                      count: OverflowCount) -> np.ndarray:
    """fmt.cast(raw, source) where no rounding happens (``shifted`` is raw in fmt's LSBs).

    Values strictly inside fmt's range are kept as they are; only the others (and the
    most negative value, which SAT_SYM treats as an overflow) go through ``fmt.cast``,
    so the overflow semantics and counts stay those of trigger.fixed.
    """
    edge = (shifted <= fmt.min_raw) | (shifted > fmt.max_raw)
    n_edge = int(np.count_nonzero(edge))
    count.add(shifted.size - n_edge, 0)
    if n_edge == 0:
        return shifted
    out = shifted.copy()
    out[edge] = fmt.cast(raw[edge], source, count)
    return out
