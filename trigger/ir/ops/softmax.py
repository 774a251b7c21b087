"""``softmax``: hls4ml's softmax implementations (nnet_activation.h), ``stable``, ``latency`` and ``argmax``.

``stable`` (hls4ml's default)::

    x_max = reduce<data_T, Op_max>(data)                       // the largest input
    d[i] = (inp_norm_t)(x_max - data[i])                       // ap_ufixed<W-1,I-1>: wraps when too large
    exp_res[i] = (accum_t)exp_table[top N bits of d[i]]        // table of exp(-d), N = log2(exp_table_size)
    exp_sum = (inv_inp_t)reduce<accum_t, Op_add>(exp_res)      // a balanced tree, cast to accum_t per add
    inv = invert_table[top M bits of exp_sum]                  // table of 1/x, M = log2(inv_table_size)
    res[i] = exp_res[i] * inv                                  // exact product, cast to res_T

``latency`` is the same without the max: the exp table is addressed by the top N
bits of the input itself. ``argmax`` writes 1 at the first largest input and 0
elsewhere (res_T values). The tables (``exp_table`` in ``exp_table_fmt``,
``inv_table`` in ``inv_table_fmt``) are filled by hls4ml's own C++ at conversion
(``trigger.frontends.hls4ml_tables``). In the RTL each table is a ROM (one exp ROM
per element, one inverse ROM) and the one variable product per element is a
multiplier; the reduce trees are built in hls4ml's order, casting at every node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval

IMPLEMENTATIONS = ("stable", "latency", "argmax")


def reduce_split(n: int) -> int:
    """nnet_common.h's reduce: the left part holds pow2(floorlog2(n - 1)) elements."""
    return 1 << ((n - 1).bit_length() - 1) if n > 1 else 0


@register
@dataclass
class Softmax(Op):
    implementation: str = "stable"
    exp_table: np.ndarray = None  # raw (exp_table_size,) in exp_table_fmt ([0] for argmax)
    inv_table: np.ndarray = None  # raw (inv_table_size,) in inv_table_fmt ([0] for argmax)
    exp_table_fmt: FixedFormat = None
    inv_table_fmt: FixedFormat = None
    accum_fmt: FixedFormat = None
    inv_inp_fmt: FixedFormat = None
    inp_norm_fmt: FixedFormat = None  # stable only (the latency and argmax implementations ignore it)

    kind = "softmax"
    arrays = ("exp_table", "inv_table")

    @property
    def n(self) -> int:
        return self.input.n

    def _bits(self, table) -> int:
        return int(np.asarray(table).size).bit_length() - 1

    def validate(self) -> None:
        self.exp_table = np.asarray(self.exp_table, dtype=np.int64).reshape(-1)
        self.inv_table = np.asarray(self.inv_table, dtype=np.int64).reshape(-1)
        if self.implementation not in IMPLEMENTATIONS:
            self.fail(f"implementation {self.implementation!r} is not supported (supported: "
                      f"{', '.join(IMPLEMENTATIONS)})")
        if self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs but {self.output.n} outputs")
        self.input.format, self.output.format  # noqa: B018 - one format per tensor (raises otherwise)
        if self.implementation == "argmax":
            return
        for what, table, fmt in (("exp", self.exp_table, self.exp_table_fmt), ("inverse", self.inv_table,
                                                                               self.inv_table_fmt)):
            size = table.size
            if size < 2 or size & (size - 1):
                self.fail(f"{what} table size {size} is not a power of two (>= 2)")
            self.check_raw(f"{what} table", table, fmt)
        if np.any(self.exp_table < 0):
            self.fail("the exp table holds negative values")
        addressed = self.inp_norm_fmt if self.implementation == "stable" else self.input.format
        if self._bits(self.exp_table) > addressed.width:
            self.fail(f"exp table of {self.exp_table.size} entries is addressed by the top bits of {addressed.cpp}, "
                      "which has fewer bits")
        if self._bits(self.inv_table) > self.inv_inp_fmt.width:
            self.fail(f"inverse table of {self.inv_table.size} entries is addressed by the top bits of "
                      f"{self.inv_inp_fmt.cpp}, which has fewer bits")

    # ------------------------------------------------------------ pieces
    @staticmethod
    def top_bits(raw: np.ndarray, fmt: FixedFormat, bits: int) -> np.ndarray:
        """The top ``bits`` bits of raw values of ``fmt``, as an unsigned index (softmax_idx_from_real_val)."""
        return (fmt.to_bits(raw) >> (fmt.width - bits)) & ((1 << bits) - 1)

    def _exp_index(self, x: np.ndarray) -> np.ndarray:
        src = self.input.format
        if self.implementation == "stable":
            x_max = x.max(axis=1, keepdims=True)
            diff_fmt = src.sum_format(src)
            d = self.inp_norm_fmt.cast(x_max - x, diff_fmt)
            return self.top_bits(d, self.inp_norm_fmt, self._bits(self.exp_table))
        return self.top_bits(x, src, self._bits(self.exp_table))

    def _reduce_add(self, values: list, add):
        """nnet_common.h's reduce over a list with ``add`` (keeps hls4ml's tree shape)."""
        if len(values) == 1:
            return values[0]
        if len(values) == 2:
            return add(values[0], values[1])
        left = reduce_split(len(values))
        return add(self._reduce_add(values[:left], add), self._reduce_add(values[left:], add))

    def _product_fmt(self) -> FixedFormat:
        return self.accum_fmt.product_format(self.inv_table_fmt)

    # ------------------------------------------------------------ semantics
    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        out = self.output.format
        if self.implementation == "argmax":
            one = self._one_raw()
            return [Interval(min(0, one), max(0, one))] * self.n
        exp = self.accum_fmt.cast(self.exp_table, self.exp_table_fmt)
        corners = [int(a) * int(b) for a in (exp.min(), exp.max()) for b in (self.inv_table.min(), self.inv_table.max())]
        lo, hi, _ = out.cast_interval(min(corners), max(corners), self._product_fmt())
        return [Interval(lo, hi)] * self.n

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        out = self.output.format
        count = counter(counts, "output")
        if self.implementation == "argmax":
            one = self._one_raw()
            zero = np.int64(0)
            hit = np.arange(self.n)[None, :] == np.argmax(x, axis=1)[:, None]  # the first largest wins
            count.add(x.size, 0)
            return np.where(hit, one, zero).astype(np.int64)
        acc, sum_fmt = self.accum_fmt, self.accum_fmt.sum_format(self.accum_fmt)
        exp_res = acc.cast(self.exp_table[self._exp_index(x)], self.exp_table_fmt, counter(counts, "exp"))
        accum = counter(counts, "sum")
        total = self._reduce_add([exp_res[:, i] for i in range(self.n)],
                                 lambda a, b: acc.cast(a + b, sum_fmt, accum))
        exp_sum = self.inv_inp_fmt.cast(total, acc, counter(counts, "inv_input"))
        inv = self.inv_table[self.top_bits(exp_sum, self.inv_inp_fmt, self._bits(self.inv_table))]
        return out.cast(exp_res * inv[:, None], self._product_fmt(), count)

    def _one_raw(self) -> int:
        """(res_T)1 as a raw integer of the output format."""
        out = self.output.format
        one = FixedFormat(2, 2, True)  # the integer 1 (exactly representable)
        return int(out.cast(np.array([1]), one)[0])

    # ------------------------------------------------------------ RTL
    def emit_rtl(self, m, xs: list, options: dict) -> list:
        if self.implementation == "argmax":
            index = m.argmax("arg", xs)
            one = self._one_raw()
            return [m.select_equal(f"y{i}", index, i, one, 0) for i in range(self.n)]
        src, acc = self.input.format, self.accum_fmt
        n_exp, n_inv = self._bits(self.exp_table), self._bits(self.inv_table)
        exp_words = acc.cast(self.exp_table, self.exp_table_fmt)  # each exp ROM holds (accum_t)exp_table
        if self.implementation == "stable":
            x_max = self._reduce_add(list(xs), lambda a, b: m.select_ge("mx", a, b, a, b))
            diff_fmt = src.sum_format(src)
            addressed = [m.requant(f"d{i}", m.add(f"s{i}", x_max, m.mul(f"n{i}", x, -1)), diff_fmt, self.inp_norm_fmt)
                         for i, x in enumerate(xs)]
            addr_fmt = self.inp_norm_fmt
        else:
            addressed, addr_fmt = list(xs), src
        # registers before each ROM address (after the max tree and the subtraction, after the sum tree)
        # keep the comparator and adder chains out of the ROM read's clock cycle
        addresses = [m.reg(f"ea{i}_q", self._top_bits_rtl(m, f"ea{i}", v, addr_fmt, n_exp))
                     for i, v in enumerate(addressed)]
        exp_res = [m.rom(f"e{i}", a, n_exp, exp_words, acc) for i, a in enumerate(addresses)]
        sum_fmt = acc.sum_format(acc)
        total = self._reduce_add(exp_res, lambda a, b: m.requant("sum", m.add("sum_x", a, b), sum_fmt, acc))
        exp_sum = m.requant("inv_in", total, acc, self.inv_inp_fmt)
        inv = m.rom("inv", m.reg("ia_q", self._top_bits_rtl(m, "ia", exp_sum, self.inv_inp_fmt, n_inv)), n_inv,
                    self.inv_table, self.inv_table_fmt)
        prod_fmt = self._product_fmt()
        out = []
        for i, e in enumerate(exp_res):
            e = m.delay(e, inv.stage - e.stage)
            out.append(m.requant(f"y{i}", m.mul_signals(f"p{i}", e, inv), prod_fmt, self.output.formats[i]))
        return out

    @staticmethod
    def _top_bits_rtl(m, name: str, v, fmt: FixedFormat, bits: int):
        """The top ``bits`` bits of v (raw in fmt) as an unsigned address: a truncating shift, then the bits."""
        top = FixedFormat(bits, fmt.integer, fmt.signed)  # same MSB weight, ``bits`` bits: TRN keeps the top bits
        shifted = m.requant(f"{name}_t", v, fmt, top)
        return m.wrap(name, shifted, FixedFormat(bits, bits, False))

    def describe(self) -> str:
        if self.implementation == "argmax":
            return f"softmax {self.n} (argmax: one-hot), output {self.output.format.cpp}"
        return (f"softmax {self.n} ({self.implementation}), exp table {self.exp_table.size} x {self.exp_table_fmt.cpp}, "
                f"inverse table {self.inv_table.size} x {self.inv_table_fmt.cpp}, accum {self.accum_fmt.cpp}, "
                f"output {self.output.format.cpp}")

