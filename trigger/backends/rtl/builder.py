"""The RTL builder: ops describe their logic as typed statements, templates print Verilog.

Every signal is a signed integer of the exact width its value range needs
(``trigger.ir.ranges``). A signal also knows its pipeline stage (registers
between the module input and it), so the writer can balance and count latency.
The Verilog text of each statement kind lives in ``firmware_templates/rtl/module.v.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trigger.errors import FirmwareModelError
from trigger.fixed import FixedFormat
from trigger.ir.ranges import Interval, signed_width


@dataclass
class Sig:
    """A signed Verilog signal holding integers in [lo, hi] (or a constant), ``stage`` registers deep."""

    name: str
    width: int
    lo: int
    hi: int
    const: int | None = None
    stage: int = 0

    @property
    def interval(self) -> Interval:
        return Interval(self.lo, self.hi)


def fmt_sig_width(fmt: FixedFormat) -> int:
    """Width of the signed signal that holds a format's raw values (one more bit when unsigned)."""
    return fmt.width + (0 if fmt.signed else 1)


@dataclass
class RomImage:
    file: str
    words: np.ndarray
    width: int


@dataclass
class ModuleBuilder:
    """The statements of one generated module, in order (each defines one signal)."""

    name: str
    statements: list = field(default_factory=list)
    has_clock: bool = False
    roms: list[RomImage] = field(default_factory=list)
    _names: set = field(default_factory=set)

    def _new(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def emit(self, kind: str, out: Sig, **fields) -> Sig:
        self.statements.append(dict(kind=kind, out=out, **fields))
        return out

    @staticmethod
    def _stage(*sigs: Sig) -> int:
        return max((s.stage for s in sigs if s.const is None), default=0)

    # ------------------------------------------------------------ primitives
    def unpack(self, name: str, lsb: int, fmt: FixedFormat) -> Sig:
        out = Sig(self._new(name), fmt_sig_width(fmt), fmt.min_raw, fmt.max_raw)
        return self.emit("unpack", out, lsb=lsb, fmt_width=fmt.width, signed=fmt.signed)

    def const(self, name: str, value: int) -> Sig:
        value = int(value)
        out = Sig(self._new(name), signed_width(value, value), value, value, const=value)
        return self.emit("const", out, bits=value % (1 << out.width))

    def _capped(self, iv: Interval, cap: int | None) -> tuple[int, int, int]:
        width = iv.width
        if cap is not None and width > cap:
            return cap, -(1 << (cap - 1)), (1 << (cap - 1)) - 1
        return width, iv.lo, iv.hi

    def mul(self, name: str, a: Sig, k: int, cap: int | None = None) -> Sig:
        """a times the integer constant k (exact, or modulo 2**cap when capped)."""
        k = int(k)
        if a.const is not None:
            return self.const(name, a.const * k)
        width, lo, hi = self._capped(a.interval.scale(k), cap)
        out = Sig(self._new(name), width, lo, hi, stage=a.stage)
        return self.emit("mul", out, a=a, k=k, k_bits=k % (1 << width))

    def add(self, name: str, a: Sig, b: Sig, cap: int | None = None) -> Sig:
        if a.const is not None and b.const is not None:
            return self.const(name, a.const + b.const)
        width, lo, hi = self._capped(a.interval + b.interval, cap)
        return self.emit("add", Sig(self._new(name), width, lo, hi, stage=self._stage(a, b)), a=a, b=b)

    def reg(self, name: str, a: Sig) -> Sig:
        if a.const is not None:
            return a
        self.has_clock = True
        return self.emit("reg", Sig(self._new(name), a.width, a.lo, a.hi, stage=a.stage + 1), a=a)

    def delay(self, a: Sig, stages: int) -> Sig:
        for _ in range(stages):
            a = self.reg(f"{a.name}_d", a)
        return a

    def relu(self, name: str, a: Sig) -> Sig:
        iv = a.interval.relu()
        return self.emit("relu", Sig(self._new(name), a.width, iv.lo, iv.hi, stage=a.stage), a=a)

    def select_positive(self, name: str, test: Sig, if_positive: Sig, otherwise: Sig) -> Sig:
        """``test > 0 ? if_positive : otherwise``."""
        iv = if_positive.interval.hull(otherwise.interval)
        out = Sig(self._new(name), iv.width, iv.lo, iv.hi, stage=self._stage(test, if_positive, otherwise))
        return self.emit("select_positive", out, test=test, a=if_positive, b=otherwise)

    def wrap(self, name: str, a: Sig, fmt: FixedFormat) -> Sig:
        """The low fmt.width bits of a, read in fmt (arithmetic modulo 2**width)."""
        out = Sig(self._new(name), fmt_sig_width(fmt), fmt.min_raw, fmt.max_raw, stage=a.stage)
        return self.emit("wrap", out, a=a, fmt_width=fmt.width, signed=fmt.signed)

    def requant(self, name: str, a: Sig, src: FixedFormat, dst: FixedFormat) -> Sig:
        """dst.cast(a) for a held in src's LSBs: ap_fixed assignment (rounding, then overflow)."""
        if a.const is not None:
            return self.const(name, int(dst.cast(np.array([a.const]), src)[0]))
        lo, hi, can_overflow = dst.cast_interval(a.lo, a.hi, src)
        shift = src.fractional - dst.fractional  # right shift
        rlo, rhi = (int(v) for v in dst.rounded([a.lo, a.hi], src))  # after rounding, before overflow
        if shift > 0:  # the floor (the kept bits) may sit below the rounded value: hold both
            xw = max(a.width, shift + 1)
            rw = signed_width(a.lo >> shift, max(rhi, a.hi >> shift))
        else:
            xw = a.width
            rw = a.width - shift
        ohi, olo = dst.max_raw, dst.sat_min_raw
        out = Sig(self._new(name), fmt_sig_width(dst), lo, hi, stage=a.stage)
        spec = dict(shift=shift, xw=xw, fw=xw - shift if shift > 0 else 0, rw=rw, rounding=dst.rounding,
                    overflow=dst.overflow if can_overflow else "NONE", ow=dst.width, signed=dst.signed,
                    check_hi=can_overflow and rhi > ohi, check_lo=can_overflow and rlo < olo,
                    hi_bits=ohi % (1 << rw), lo_bits=olo % (1 << rw),
                    sat_hi=ohi % (1 << dst.width), sat_lo=olo % (1 << dst.width))
        return self.emit("requant", out, a=a, spec=spec)

    def count_at_least(self, name: str, a: Sig, thresholds, width: int) -> Sig:
        """How many of the increasing integer thresholds are <= a (a thermometer code's popcount)."""
        thresholds = [int(t) for t in thresholds]
        out = Sig(self._new(name), width + 1, 0, len(thresholds), stage=a.stage)
        keys = [{"bits": t % (1 << a.width)} for t in thresholds]
        return self.emit("count_at_least", out, a=a, keys=keys, count_width=width)

    def concat(self, name: str, fields: list[tuple[Sig, int, int]], width: int) -> Sig:
        """An unsigned word of ``width`` bits from (signal, lsb, bits) fields (each signal non-negative)."""
        parts = sorted(fields, key=lambda f: -f[1])
        for sig, _, bits in fields:
            if sig.lo < 0 or sig.hi >= 1 << bits:
                raise FirmwareModelError(f"{self.name}: field {sig.name} holds {sig.lo}..{sig.hi}, not {bits} bits")
        hi = sum(min(sig.hi, (1 << bits) - 1) << lsb for sig, lsb, bits in fields)
        out = Sig(self._new(name), width + 1, 0, hi, stage=self._stage(*[f[0] for f in fields]))
        return self.emit("concat", out, parts=[{"sig": s, "bits": b} for s, _, b in parts], word_width=width)

    def rom(self, name: str, address: Sig, address_bits: int, words: np.ndarray, word_fmt: FixedFormat) -> Sig:
        """A synchronous-read ROM (one register: maps onto block RAM) initialised from a .mem file."""
        self.has_clock = True
        words = np.asarray(words, dtype=np.int64)
        ident = self._new(name)
        file = f"{self.name}_{ident}.mem"
        self.roms.append(RomImage(file, word_fmt.to_bits(words), word_fmt.width))
        lo, hi = (int(words.min()), int(words.max())) if words.size else (0, 0)
        out = Sig(ident, fmt_sig_width(word_fmt), lo, hi, stage=address.stage + 1)
        return self.emit("rom", out, a=address, address_bits=address_bits, depth=len(words),
                         word_width=word_fmt.width, signed=word_fmt.signed, file=file)

    # ------------------------------------------------------------ arithmetic blocks
    def sum_tree(self, name: str, leaves: list[Sig], cap: int | None = None, every: int | None = None) -> Sig:
        """The sum of ``leaves`` as a balanced adder tree (a register every ``every`` levels, none after the root)."""
        return self.sum_trees(name, [leaves], cap, every)[0]

    def sum_trees(self, name: str, trees: list[list[Sig]], cap: int | None = None,
                  every: int | None = None) -> list[Sig]:
        """Several balanced adder trees side by side, registered at the same levels so their roots align."""
        trees = [list(t) if t else [self.const(f"{name}{j}_zero", 0)] for j, t in enumerate(trees)]
        depth = max((len(t) - 1).bit_length() for t in trees)
        for level in range(1, depth + 1):
            registered = every is not None and level % every == 0 and level < depth
            for j, nodes in enumerate(trees):
                nxt = [self.add(f"{name}{j}_{level}_{k // 2}", nodes[k], nodes[k + 1], cap) if k + 1 < len(nodes)
                       else nodes[k] for k in range(0, len(nodes), 2)]
                if registered:
                    nxt = [self.reg(f"{name}{j}_r{level}_{k}", node) for k, node in enumerate(nxt)]
                trees[j] = nxt
        return [t[0] for t in trees]

    def constant_matvec(self, name: str, xs: list[Sig], matrix, bias, cap: int | None = None,
                        every: int | None = None) -> list[Sig]:
        """``y_j = bias_j + sum_i xs[i] * matrix[i, j]`` for an integer constant matrix (n_in, n_out).

        Exact, or modulo 2**cap when capped. Every constant-matrix product of every op
        (dense, convolution, ...) goes through here, so how constants are multiplied
        (and where pipeline registers go) is decided in one place.
        """
        matrix = np.asarray(matrix, dtype=object)
        trees = []
        for j in range(matrix.shape[1]):
            leaves = [self.mul(f"{name}p{i}_{j}", xs[i], int(matrix[i, j]), cap)
                      for i in range(matrix.shape[0]) if int(matrix[i, j]) != 0]  # zero weights cost nothing
            b = int(bias[j])
            if b != 0 or not leaves:
                leaves.append(self.const(f"{name}b{j}", b))
            trees.append(leaves)
        return self.sum_trees(f"{name}s", trees, cap, every)
