"""``layer_norm``: hls4ml's LayerNormalization over the last axis of a (seq_len, dim) tensor (nnet_layernorm.h).

nnet_layernorm.h's ``layernorm_1d``, per row of ``dim`` values, every step in ``accum_t`` (A)::

    sum  += (A) x[i];                       // each x cast to A, each partial sum assigned to A
    mean  = sum * k_inv;                    // k_inv = (A)(1.0 / dim); the exact product assigned to A
    d[i]  = (A) x[i] - mean;                // assigned to A
    sum2 += d[i] * d[i];                    // the square assigned to A, then the sum assigned to A
    var   = sum2 * k_inv;                   // assigned to A
    index = (int)(var * table_size * 2**table_range_power2), clamped to [0, table_size - 1]
    res[i] = d[i] * table[index] * scale[i] + bias[i];   // exact in ap_fixed, then the cast to res_T

``table`` (1/sqrt on ``10**-eps + i * 2**-range / T``, in table_t) is filled by hls4ml's own
C++ (``init_invert_sqr_table``). The conversion to int truncates toward zero. The RTL follows
the same steps: requantizations after each sum and product, a ROM for the table addressed by
``var`` read as ``var * T * 2**range`` cast to a saturating integer, then per element a
product with the table word, a constant scale and a constant bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval


@register
@dataclass
class LayerNorm(Op):
    seq_len: int = 1
    scale: np.ndarray = None  # raw int64 (dim,) in scale_fmt
    bias: np.ndarray = None  # raw int64 (dim,) in bias_fmt
    table: np.ndarray = None  # raw int64 (table_size,) in table_fmt
    scale_fmt: FixedFormat = None
    bias_fmt: FixedFormat = None
    accum_fmt: FixedFormat = None
    table_fmt: FixedFormat = None
    k_inv: int = 0  # raw, (accum_t)(1.0 / dim)
    table_range_power2: int = 0

    kind = "layer_norm"
    arrays = ("scale", "bias", "table")

    @property
    def dim(self) -> int:
        return self.input.n // self.seq_len

    @property
    def table_size(self) -> int:
        return int(np.asarray(self.table).size)

    def validate(self) -> None:
        self.scale, self.bias, self.table = (np.asarray(a, dtype=np.int64).reshape(-1)
                                             for a in (self.scale, self.bias, self.table))
        if self.seq_len < 1 or self.input.n % self.seq_len or self.output.n != self.input.n:
            self.fail(f"{self.input.n} inputs, {self.output.n} outputs are not {self.seq_len} rows")
        if self.scale.size != self.dim or self.bias.size != self.dim:
            self.fail(f"{self.scale.size} scales and {self.bias.size} biases for rows of {self.dim}")
        size = self.table_size
        if size < 2 or size & (size - 1):
            self.fail(f"table size {size} is not a power of two")
        for what, raw, fmt in (("scale", self.scale, self.scale_fmt), ("bias", self.bias, self.bias_fmt),
                               ("table", self.table, self.table_fmt), ("k_inv", np.array([self.k_inv]),
                                                                       self.accum_fmt)):
            self.check_raw(what, raw, fmt)
        a = self.accum_fmt
        if a.integer + size.bit_length() + self.table_range_power2 > 31:
            self.fail(f"accumulator {a.cpp} times the table size {size} overflows the C++ int index")
        if self._result_format().width > 62:
            self.fail(f"the result d * table * scale needs {self._result_format().width} bits (more than 62)")

    # ------------------------------------------------------------ formats of the steps
    def _square_format(self) -> FixedFormat:
        return self.accum_fmt.product_format(self.accum_fmt)

    def _product_format(self) -> FixedFormat:
        return self.accum_fmt.product_format(self.table_fmt).product_format(self.scale_fmt)

    def _result_format(self) -> FixedFormat:
        return self._product_format().sum_format(self.bias_fmt)

    def _index(self, var: np.ndarray) -> np.ndarray:
        """(int)(var * T * 2**range): toward zero, clamped to the table."""
        num = np.asarray(var, dtype=np.int64) * (self.table_size << self.table_range_power2)
        frac = self.accum_fmt.fractional
        q = np.abs(num) >> frac if frac >= 0 else np.abs(num) << -frac
        return np.clip(np.sign(num) * q, 0, self.table_size - 1)

    # ------------------------------------------------------------ semantics
    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        """Bounds from the formats: any d in accum_t, any table word, each element's scale and bias."""
        a, dst, res = self.accum_fmt, self.output.format, self._result_format()
        dt = Interval(a.sat_min_raw if a.overflow != "WRAP" else a.min_raw, a.max_raw)
        dt = dt.hull(Interval(a.min_raw, a.max_raw))
        corners = [d * w for d in (dt.lo, dt.hi) for w in (int(self.table.min()), int(self.table.max()))]
        shift_p = res.fractional - self._product_format().fractional
        shift_b = res.fractional - self.bias_fmt.fractional
        out = []
        for j in range(self.seq_len):
            for s, b in zip(self.scale.tolist(), self.bias.tolist()):
                values = [(c * s << shift_p) + (b << shift_b) for c in corners]
                lo, hi, _ = dst.cast_interval(min(values), max(values), res)
                out.append(Interval(lo, hi))
        return out

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        a, src, dst = self.accum_fmt, self.input.format, self.output.format
        count = counter(counts, "output")
        prod, res = self._product_format(), self._result_format()
        shift_p, shift_b = res.fractional - prod.fractional, res.fractional - self.bias_fmt.fractional
        out = np.empty_like(x)
        for j in range(self.seq_len):
            xs = [a.cast(x[:, j * self.dim + i], src) for i in range(self.dim)]
            total = np.zeros(len(x), dtype=np.int64)
            for xa in xs:
                total = a.cast(total + xa, a)
            mean = a.cast(total * self.k_inv, self._square_format())
            d = [a.cast(xa - mean, a) for xa in xs]
            total2 = np.zeros(len(x), dtype=np.int64)
            for di in d:
                total2 = a.cast(total2 + a.cast(di * di, self._square_format()), a)
            var = a.cast(total2 * self.k_inv, self._square_format())
            deno = self.table[self._index(var)]
            for i, di in enumerate(d):
                value = ((di * deno * self.scale[i]) << shift_p) + (self.bias[i] << shift_b)
                out[:, j * self.dim + i] = dst.cast(value, res, count)
        return out

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        a, src, dst = self.accum_fmt, self.input.format, self.output.format
        sq, prod, res = self._square_format(), self._product_format(), self._result_format()
        size, r = self.table_size, self.table_range_power2
        t = size.bit_length() - 1
        scaled = FixedFormat(a.width, a.integer + t + r, a.signed)  # var read as var * T * 2**range
        index_fmt = FixedFormat(t + 1, t + 1, True, "TRN_ZERO", "SAT")
        out = []
        for j in range(self.seq_len):
            tag = f"r{j}_"
            xa = [m.requant(f"{tag}x{i}", xs[j * self.dim + i], src, a) for i in range(self.dim)]
            total = xa[0]
            for i in range(1, self.dim):
                total = m.requant(f"{tag}s{i}", m.add(f"{tag}sa{i}", total, xa[i]), a, a)
            mean = m.requant(f"{tag}mean", m.mul(f"{tag}mk", total, self.k_inv), sq, a)
            d = [m.requant(f"{tag}d{i}", m.shift_add(f"{tag}da{i}", xa[i], 0, mean, 0, True), a, a)
                 for i in range(self.dim)]
            squares = [m.requant(f"{tag}q{i}", m.mul_signals(f"{tag}qa{i}", di, di), sq, a) for i, di in enumerate(d)]
            total2 = squares[0]
            for i in range(1, self.dim):
                total2 = m.requant(f"{tag}v{i}", m.add(f"{tag}va{i}", total2, squares[i]), a, a)
            var = m.requant(f"{tag}var", m.mul(f"{tag}vk", total2, self.k_inv), sq, a)
            index = m.relu(f"{tag}ir", m.requant(f"{tag}i", var, scaled, index_fmt))
            deno = m.rom(f"{tag}t", index, t, self.table, self.table_fmt)
            for i, di in enumerate(d):
                p = m.mul(f"{tag}ps{i}", m.mul_signals(f"{tag}pt{i}", di, deno), int(self.scale[i]))
                bias = m.const(f"{tag}b{i}", int(self.bias[i]))
                total_i = m.shift_add(f"{tag}y{i}", p, res.fractional - prod.fractional, bias,
                                      res.fractional - self.bias_fmt.fractional)
                out.append(m.requant(f"{tag}o{i}", total_i, res, dst))
        return out

    def describe(self) -> str:
        return (f"layer_norm {self.seq_len} x {self.dim}, accum {self.accum_fmt.cpp}, table {self.table_size} x "
                f"{self.table_fmt.cpp}, scale {self.scale_fmt.cpp}, bias {self.bias_fmt.cpp}, "
                f"output {self.output.format.cpp}")
