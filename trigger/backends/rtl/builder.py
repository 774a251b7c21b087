"""The RTL builder: ops describe their logic as typed statements, templates print Verilog.

Every signal is a signed integer of the exact width its value range needs
(``trigger.ir.ranges``). A signal also knows its pipeline stage (registers
between the module input and it), so the writer can balance and count latency,
and an estimate of its delay since the last register, so that ``pipeline: auto``
can place registers where a stage would miss the clock.
Operands of different stages are aligned with (shared) delay registers.
The Verilog text of each statement kind lives in ``firmware_templates/rtl/module.v.j2``.

Delays are estimated with the cell delays that ``trigger.synth`` gives Yosys' ``sta``
(``firmware_templates/yosys/timing_xcup.v``): a LUT with its route, and a carry chain that
is entered once, crossed at 0.02 ns per four bits and left once. An adder's result
bits do not all arrive together, so a signal keeps two arrival estimates, at its lowest
and at its top bit (in an adder tree the carry chains overlap, they do not add up).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from trigger.backends.rtl.cmvm import plan_cmvm
from trigger.errors import ConfigError, FirmwareModelError
from trigger.fixed import FixedFormat
from trigger.ir.ranges import Interval, signed_width
from trigger.parts import CARRY_BITS, delay_ns

# Cell delays in ns: trigger.parts.CELL_DELAYS_PS, the figures of firmware_templates/yosys/timing_xcup.v
LUT_NS = delay_ns("lut")  # a LUT with the route to it
CARRY_IN_NS = delay_ns("carry_in")  # from a LUT into the carry chain
CARRY4_NS = delay_ns("carry4")  # across one CARRY4 (CARRY_BITS bits)
CARRY_OUT_NS = delay_ns("carry_out")  # from the chain to a sum bit
MUXF_NS = delay_ns("muxf")  # a MUXF7/8 after its LUTs
DSP_NS = delay_ns("dsp")  # a DSP48 multiplier used without its registers
CLOCK_TO_Q_NS = delay_ns("clock_to_q")  # a flip-flop's clock-to-output: every stage starts with it
# synth_xilinx maps a chain of 3 or more registers (shregmap -minlen 3) onto a shift register LUT (SRL16E),
# whose clock-to-output is slower: the signal at the end of such a delay chain starts late
SRL_MIN_CHAIN = 3
SRL_NS = delay_ns("srl_clock_to_q")


def parse_multiplier(value) -> tuple[str, int | None]:
    """rtl ``multiplier``: 'shift_add' (default), 'dsp', or N: constants of more than N bits use ``*``
    (a DSP), narrower ones shift-and-add. Returns (mode, bits above which ``*`` is used)."""
    if value in (None, "shift_add"):
        return "shift_add", None
    if value == "dsp":
        return "dsp", 0
    text = str(value)
    if text.isdigit() and int(text) >= 1 and not isinstance(value, bool):
        return "shift_add", int(text)
    raise ConfigError(f"rtl multiplier must be 'shift_add', 'dsp' or a number of bits, got {value!r}")


def carry_ns(width: int, entry: int = 0) -> float:
    """A carry chain over ``width`` bits, entered at bit ``entry``, to its top sum bit."""
    cells = (width - 1) // CARRY_BITS - min(entry, width - 1) // CARRY_BITS
    return CARRY_IN_NS + max(cells - 1, 0) * CARRY4_NS + CARRY_OUT_NS


def adder_ns(width: int) -> float:
    """An adder or comparator of ``width`` bits: the LUT in front of its carry chain, and the chain."""
    return LUT_NS + carry_ns(width)


def thermo_ns(n: int) -> float:
    """The length of a monotone n-bit thermometer code in binary: per bit an OR of up to n + 1 inputs,
    LUT6s in ceil(log6(n + 1)) levels."""
    levels, reach = 1, 6
    while reach < n + 1:
        levels, reach = levels + 1, reach * 6
    return levels * LUT_NS


def shared_front_levels(n: int) -> int:
    """LUT levels in front of the carry chains of ``n`` comparators of one signal whose thermometer code feeds an
    encoder in the same stage: ABC then computes one comparator's carry inputs from another's, chains that grow
    with n (measured with Yosys sta: 1 level up to 15 comparators, 2 at 31, 3 at 63, 3-4 at 127; 13- and 16-bit
    inputs; tests/test_timing.py). One level when they stand alone (their code registered)."""
    return max(1, (n + 1).bit_length() - 4)


def lut_function_ns(bits: int) -> float:
    """Any function of ``bits`` <= 8 input bits: a LUT6, then MUXF7/MUXF8 for the 7th and 8th bit (what ABC makes of
    a comparator bank and its encoder on a narrow signal: a table, not carry chains)."""
    return LUT_NS + max(bits - 6, 0) * MUXF_NS


def _or_tree(name: str, terms: list[str], wires: list) -> str:
    """The OR of ``terms`` (each of at most two signals) as a balanced tree of kept wires, three terms and then six
    wires per LUT6, appended to ``wires`` as (name, expression): kept, so that ABC's fast mapping cannot turn the
    tree into a chain of wide multiplexers (it did: 8.4 ns instead of two LUT levels). Returns the root."""
    if not terms:
        return "1'b0"
    level, group, k = terms, 3, 0
    while len(level) > group:
        nxt = []
        for i in range(0, len(level), group):
            wire = f"{name}_{k}"
            k += 1
            wires.append((wire, " | ".join(level[i:i + group])))
            nxt.append(wire)
        level, group = nxt, 6
    return " | ".join(level)


def mux_ns(cases: int) -> float:
    """A ``cases``-way multiplexer: one LUT up to 4 cases, MUXF7/8 up to 16, another LUT level beyond."""
    return LUT_NS + (cases > 4) * MUXF_NS + (cases > 8) * MUXF_NS + (cases > 16) * LUT_NS


@dataclass
class _Compare:
    """Verilog conditions on a signed signal known to lie in [lo, hi]: a constant where the range
    decides them (so that no literal falls outside the signal's width), sign and reduction logic
    for 0 and -1 (LUTs, where a comparison would take a carry chain), a comparison otherwise."""

    name: str
    width: int
    lo: int
    hi: int

    def _lit(self, op: str, k: int) -> str:
        return f"({self.name} {op} {self.width}'sh{k % (1 << self.width):x})"

    def _sign(self) -> str:
        return f"{self.name}[{self.width - 1}]"

    def gt(self, k: int) -> str:
        if k >= self.hi:
            return "1'b0"
        if k < self.lo:
            return "1'b1"
        if k == -1:
            return f"~{self._sign()}"
        if k == 0:
            return f"(~{self._sign()} & |{self.name})"
        return self._lit(">", k)

    def lt(self, k: int) -> str:
        if k <= self.lo:
            return "1'b0"
        if k > self.hi:
            return "1'b1"
        if k == 0:
            return self._sign()
        if k == -1:
            return f"({self._sign()} & ~&{self.name})"
        return self._lit("<", k)

    def eq(self, k: int) -> str:
        return self._lit("==", k) if self.lo <= k <= self.hi else "1'b0"


@dataclass
class Sig:
    """A signed Verilog signal holding integers in [lo, hi] (or a constant), ``stage`` registers deep."""

    name: str
    width: int
    lo: int
    hi: int
    const: int | None = None
    stage: int = 0
    delay: float = 0.0  # estimated ns since the last register (after its clock-to-output), at the top bit
    lsb_delay: float = 0.0  # the same at the lowest bit
    adds: int = 0  # adders since the last register (for pipeline=N)
    fresh: bool = False  # a register's output: another register in front of it would not make it earlier

    @property
    def interval(self) -> Interval:
        return Interval(self.lo, self.hi)


def _live_bits(sig: "Sig") -> int:
    """The bits of a signal that can change (a non-negative signal's sign bit is a constant 0)."""
    return sig.width - (sig.lo >= 0)


def fmt_sig_width(fmt: FixedFormat) -> int:
    """Width of the signed signal that holds a format's raw values (one more bit when unsigned)."""
    return fmt.width + (0 if fmt.signed else 1)


class _Forms:
    """Signals of one constant-matrix product as linear forms of its inputs (integer coefficients, a constant),
    keyed by signal name. The range of a form over the inputs' ranges is exact; adding the ranges of its two
    operands is not when both hold the same input (a shared subexpression plus another digit of one of its
    inputs, two shared subexpressions of one input). The builder sizes adders by it: narrower adders (0.5-0.6%
    fewer adder bits on the da4ml benchmark network and the reference jet tagger), the same values."""

    def __init__(self, xs: list[Sig]):
        self.lo = np.array([x.lo for x in xs], dtype=object)
        self.hi = np.array([x.hi for x in xs], dtype=object)
        self.forms = {}
        for i, x in enumerate(xs):
            if x.const is None:
                unit = np.zeros(len(xs), dtype=object)
                unit[i] = 1
                self.forms[x.name] = (unit, 0)
        self._pending = None

    def _of(self, sig: Sig):
        if sig.const is not None:
            return np.zeros(len(self.lo), dtype=object), sig.const
        return self.forms.get(sig.name)

    def combine(self, a: Sig, sa: int, b: Sig, sb: int, sign: int) -> Interval | None:
        """The exact range of (a << sa) + sign * (b << sb), remembered for the next ``name``; None: unknown."""
        fa, fb = self._of(a), self._of(b)
        self._pending = None
        if fa is None or fb is None:
            return None
        coef = fa[0] * (1 << sa) + fb[0] * (sign << sb)
        const = fa[1] * (1 << sa) + fb[1] * (sign << sb)
        self._pending = (coef, const)
        lo = const + sum(c * (lo if c > 0 else hi) for c, lo, hi in zip(coef, self.lo, self.hi) if c)
        hi = const + sum(c * (hi if c > 0 else lo) for c, lo, hi in zip(coef, self.lo, self.hi) if c)
        return Interval(int(lo), int(hi))

    def name(self, sig: Sig):
        """``sig`` is the result of the last ``combine`` (a signal that has a form already keeps it: the adder
        returned an operand, a term that a capped width shifted out entirely)."""
        if self._pending is not None and sig.const is None and sig.name not in self.forms:
            self.forms[sig.name] = self._pending
        self._pending = None


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
    max_delay: float | None = None  # pipeline: auto: register where a stage's delay (ns) would exceed this
    dsp_above_bits: int | None = None  # constants wider than this use ``*`` (None: every constant shift-add)
    in_delay: float = 0.0  # delay (ns) already on the module's inputs (no register in front)
    stage_delay: dict = field(default_factory=dict)  # stage -> its longest estimated path (ns, clock-to-output included)
    _every: int | None = None  # pipeline N inside the adder block being built: a register every N adders
    _names: set = field(default_factory=set)
    _delayed: dict = field(default_factory=dict)
    _relu_of: dict = field(default_factory=dict)  # relu output name -> its input (requant folds the relu in)
    _mux_outputs: set = field(default_factory=set)  # casts whose every bit comes out of their saturation multiplexer

    @property
    def uses_adder_module(self) -> bool:
        """Whether the module instantiates the design's adder (``write_adder_module``): every shift_add of
        two signals does; one with a constant operand is written inline, where Yosys folds the constant."""
        return any(st["kind"] == "shift_add" and st["a"]["sig"].const is None and st["b"]["sig"].const is None
                   for st in self.statements)

    def _new(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def emit(self, kind: str, out: Sig, **fields) -> Sig:
        self.statements.append(dict(kind=kind, out=out, **fields))
        if out.const is None:
            self.stage_delay[out.stage] = max(self.stage_delay.get(out.stage, 0.0), round(CLOCK_TO_Q_NS + out.delay, 3))
        return out

    # ------------------------------------------------------------ timing
    def _ready(self, sigs: list[Sig], extra: float, adder: bool = False, shifts=None, width: int = 0) -> list[Sig]:
        """The operands of a statement adding ``extra`` ns (an adder of ``width`` bits when ``shifts`` are
        given), on one stage: registered first when the result would miss the stage budget (pipeline auto),
        or after ``every`` adders (pipeline N)."""
        live = [s for s in sigs if s.const is None]
        if not live:
            return sigs
        stage = max(s.stage for s in live)
        sigs = [s if s.const is not None else self.delay(s, stage - s.stage) for s in sigs]
        live = [s for s in sigs if s.const is None]
        if shifts is not None:
            predicted = self._adder_timing(list(zip(sigs, shifts)), width)[1]
        else:
            predicted = max(s.delay for s in live) + extra
        over_budget = (self.max_delay is not None and CLOCK_TO_Q_NS + predicted > self.max_delay
                       and any(s.delay and not s.fresh for s in live))
        over_adds = adder and self._every is not None and max(s.adds for s in live) >= self._every
        if over_budget or over_adds:
            sigs = [s if s.const is not None else self.delay(s, 1) for s in sigs]
        return sigs

    @staticmethod
    def _adder_timing(terms: list[tuple[Sig, int]], width: int) -> tuple[float, float]:
        """(lowest-bit, top-bit) delays of an adder of ``width`` bits over shifted operands: each operand bit
        goes through a LUT into the carry chain, which ripples from where the bit enters up to the top."""
        lsb = msb = 0.0
        for sig, shift in terms:
            if sig.const is not None:
                continue
            top = sig.width + shift - 1
            # its lowest bit ripples the longest; its top bit, the last to arrive, enters near the top
            msb = max(msb, sig.lsb_delay + LUT_NS + carry_ns(width, shift), sig.delay + LUT_NS + carry_ns(width, top))
            lsb = max(lsb, sig.lsb_delay + LUT_NS + CARRY_IN_NS + CARRY_OUT_NS)
        return round(lsb, 3), round(msb, 3)

    def _after(self, sigs: list[Sig], width: int, adder: bool, shifts=None) -> dict:
        """Stage and delay estimates of a result of ``width`` bits computed from ``sigs``."""
        live = [s for s in sigs if s.const is None]
        if not live:
            return {}
        lsb, msb = max(s.lsb_delay for s in live), max(s.delay for s in live)
        if adder:
            lsb, msb = self._adder_timing(list(zip(sigs, shifts or [0] * len(sigs))), width)
            return dict(stage=live[0].stage, lsb_delay=lsb, delay=msb, adds=max(s.adds for s in live) + 1)
        return dict(stage=live[0].stage, lsb_delay=lsb, delay=msb, adds=max(s.adds for s in live))

    # ------------------------------------------------------------ primitives
    def unpack(self, name: str, lsb: int, fmt: FixedFormat) -> Sig:
        out = Sig(self._new(name), fmt_sig_width(fmt), fmt.min_raw, fmt.max_raw, delay=self.in_delay,
                  lsb_delay=self.in_delay)
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

    def uses_dsp(self, k: int) -> bool:
        """Whether the constant k is multiplied with ``*`` (a DSP) rather than shift-and-add."""
        return self.dsp_above_bits is not None and signed_width(k, k) > self.dsp_above_bits

    def mul(self, name: str, a: Sig, k: int, cap: int | None = None) -> Sig:
        """a times the integer constant k (exact, or modulo 2**cap when capped): shift-and-add on its
        signed digits, or ``*`` when the constant is wider than the multiplier option allows."""
        k = int(k)
        if a.const is not None:
            return self.const(name, a.const * k)
        if not self.uses_dsp(k):
            return self.constant_matvec(name, [a], [[k]], [0], cap)[0]
        width, lo, hi = self._capped(a.interval.scale(k), cap)
        [a] = self._ready([a], DSP_NS)
        out = Sig(self._new(name), width, lo, hi, **self._after([a], width, False))
        out.delay = out.lsb_delay = a.delay + DSP_NS
        return self.emit("mul", out, a=a, k=k, k_bits=k % (1 << width))

    def add(self, name: str, a: Sig, b: Sig, cap: int | None = None) -> Sig:
        return self.shift_add(name, a, 0, b, 0, False, cap)

    def shift_add(self, name: str, a: Sig, sa: int, b: Sig, sb: int, subtract: bool = False,
                  cap: int | None = None, exact: Interval | None = None) -> Sig:
        """``(a << sa) + (b << sb)``, or minus ``(b << sb)``: shifts are wiring, the adder is exact.
        ``exact``: the result's range when known better than from a's and b's (``_Forms``); not used when capped
        (capped operands hold their values modulo 2**cap, their ranges are not the values' ranges)."""
        sign = -1 if subtract else 1
        if a.const is not None and b.const is not None:
            return self.const(name, (a.const << sa) + sign * (b.const << sb))
        iv = a.interval.scale(1 << sa) + b.interval.scale(sign << sb)
        if exact is not None and cap is None:
            iv = Interval(max(iv.lo, exact.lo), min(iv.hi, exact.hi))
        width, lo, hi = self._capped(iv, cap)
        a, b = self._ready([a, b], 0, adder=True, shifts=[sa, sb], width=width)
        out = Sig(self._new(name), width, lo, hi, **self._after([a, b], width, True, [sa, sb]))
        # a term shifted out of the result entirely is 0 modulo 2**width
        terms = [dict(sig=s, shift=k, bits=width - k) for s, k in ((a, sa), (b, sb))]
        if terms[1]["bits"] <= 0:
            return self.shift(name, a, sa, False, cap) if terms[0]["bits"] > 0 else self.const(name, 0)
        if terms[0]["bits"] <= 0:
            return self.shift(name, b, sb, subtract, cap)
        # A result of one sign has a constant top bit: the adder computes the other width - 1 bits
        # (exact modulo 2**(width - 1), which holds the value), so no LUT or carry is spent on a bit
        # that cannot change (on non-negative data, such as after a relu, every adder has one).
        top = "1'b0" if lo >= 0 else "1'b1" if hi < 0 else None
        if top is not None and min(t["bits"] for t in terms) > 1:
            for t in terms:
                t["bits"] -= 1
        else:
            top = None
        return self.emit("shift_add", out, a=terms[0], b=terms[1], subtract=subtract, top=top)

    def shift(self, name: str, a: Sig, k: int, negate: bool = False, cap: int | None = None) -> Sig:
        """``a << k`` (wiring), or ``-(a << k)`` (an adder)."""
        if a.const is not None:
            return self.const(name, (-1 if negate else 1) * (a.const << k))
        if k == 0 and not negate:
            return a
        width, lo, hi = self._capped(a.interval.scale((-1 if negate else 1) << k), cap)
        if negate:
            [a] = self._ready([a], 0, adder=True, shifts=[k], width=width)
        out = Sig(self._new(name), width, lo, hi, **self._after([a], width, negate, [k]))
        return self.emit("shift", out, a=dict(sig=a, shift=k, bits=width - k), negate=negate)

    def reg(self, name: str, a: Sig) -> Sig:
        if a.const is not None:
            return a
        self.has_clock = True
        return self.emit("reg", Sig(self._new(name), a.width, a.lo, a.hi, stage=a.stage + 1, fresh=True), a=a)

    def delay(self, a: Sig, stages: int) -> Sig:
        """a, ``stages`` registers later (delay registers are shared by every user of a)."""
        chain = self.__dict__.setdefault("_chain", {})
        for _ in range(stages):
            key = a.name
            if key not in self._delayed:
                out = self.reg(f"{a.name}_d", a)
                chain[out.name] = chain.get(key, 0) + 1
                if chain[out.name] >= SRL_MIN_CHAIN:  # an SRL16E's output (see SRL_NS)
                    out.delay = out.lsb_delay = SRL_NS - CLOCK_TO_Q_NS
                self._delayed[key] = out
            a = self._delayed[key]
        return a

    def relu(self, name: str, a: Sig) -> Sig:
        iv = a.interval.relu()
        # every bit waits for the sign: a LUT, or none after a saturating cast's multiplexer (merged, see requant)
        extra = 0.0 if a.name in self._mux_outputs else LUT_NS
        [a] = self._ready([a], extra)
        out = Sig(self._new(name), a.width, iv.lo, iv.hi, **self._after([a], a.width, False))
        out.delay = out.lsb_delay = a.delay + (0.0 if a.name in self._mux_outputs else LUT_NS)
        self._relu_of[out.name] = a
        return self.emit("relu", out, a=a)

    def select_positive(self, name: str, test: Sig, if_positive: Sig, otherwise: Sig) -> Sig:
        """``test > 0 ? if_positive : otherwise``."""
        iv = if_positive.interval.hull(otherwise.interval)
        # a 0/1 test (a comparator's registered bit) is one LUT input: no comparison of its own
        extra = LUT_NS if 0 <= test.lo and test.hi <= 1 else adder_ns(test.width) + LUT_NS
        test, if_positive, otherwise = self._ready([test, if_positive, otherwise], extra)
        out = Sig(self._new(name), iv.width, iv.lo, iv.hi, **self._after([test, if_positive, otherwise], iv.width, False))
        out.delay = out.lsb_delay = max(out.delay + LUT_NS, test.delay + extra)
        return self.emit("select_positive", out, test=test, a=if_positive, b=otherwise)

    def wrap(self, name: str, a: Sig, fmt: FixedFormat) -> Sig:
        """The low fmt.width bits of a, read in fmt (arithmetic modulo 2**width)."""
        out = Sig(self._new(name), fmt_sig_width(fmt), fmt.min_raw, fmt.max_raw, **self._after([a], 0, False))
        return self.emit("wrap", out, a=a, fmt_width=fmt.width, signed=fmt.signed)

    def requant(self, name: str, a: Sig, src: FixedFormat, dst: FixedFormat) -> Sig:
        """dst.cast(a) for a held in src's LSBs: ap_fixed assignment (rounding, then overflow)."""
        if a.const is not None:
            return self.const(name, int(dst.cast(np.array([a.const]), src)[0]))
        lo, hi, can_overflow = dst.cast_interval(a.lo, a.hi, src)
        shift = src.fractional - dst.fractional  # right shift
        rlo, rhi = (int(v) for v in dst.rounded([a.lo, a.hi], src))  # after rounding, before overflow
        # the cast of a relu (same stage) reads the relu's input x: x < 0 ? 0 : cast(x) equals
        # cast(relu(x)) (0 casts to 0), and zeroing the ow output bits is cheaper than x's bits
        x = self._relu_of.get(a.name)
        relu = x is not None and x.stage == a.stage
        bits = x if relu else a  # the signal whose bits the statement reads
        if shift > 0:  # the floor (the kept bits) may sit below the rounded value: hold both
            xw = max(bits.width, shift + 1)
            rw = signed_width(bits.lo >> shift, max(rhi, bits.hi >> shift))
        else:
            xw = bits.width
            rw = bits.width - shift
        ohi, olo = dst.max_raw, dst.sat_min_raw
        rounds = shift > 0 and dst.rounding != "TRN"
        saturates = can_overflow and dst.overflow not in ("WRAP", "NONE")
        check_hi, check_lo = can_overflow and rhi > ohi, can_overflow and rlo < olo
        fw = xw - shift if shift > 0 else 0
        ident = self._new(name)
        if rounds:
            # Only the kept bits get the rounding incrementer: fl = h * 2**ow + L with L the low ow
            # bits of the floor (unsigned), and L + up = c * 2**ow + l (c the carry out, l the new low
            # bits), so r = fl + up = (h + c) * 2**ow + l. Writing the limits as H * 2**ow + Lh, r is
            # above ohi exactly when h + c > H or (h + c == H and l > Lh), and h + c is never built:
            # comparisons of h with constants are LUTs beside the short carry chain, not a second
            # chain over all rw bits.
            ow = dst.width
            hw = max(fw - ow, 1)
            h = _Compare(f"{ident}_h", hw, (bits.lo >> shift) >> ow, (bits.hi >> shift) >> ow)
            c, l, mask = f"{ident}_c", f"{ident}_r", (1 << ow) - 1

            def above(k):  # r > k
                big, low = k >> ow, k & mask
                t_gt = f"({h.gt(big)} | ({h.eq(big)} & {c}))"
                t_eq = f"(({h.eq(big)} & ~{c}) | ({h.eq(big - 1)} & {c}))"
                return t_gt if low == mask else f"({t_gt} | ({t_eq} & ({l} > {ow}'h{low:x})))"

            def below(k):  # r < k
                big, low = k >> ow, k & mask
                t_lt = f"({h.lt(big - 1)} | ({h.eq(big - 1)} & ~{c}))"
                t_eq = f"(({h.eq(big)} & ~{c}) | ({h.eq(big - 1)} & {c}))"
                return t_lt if low == 0 else f"({t_lt} | ({t_eq} & ({l} < {ow}'h{low:x})))"

            ohi_expr = above(ohi) if check_hi else "1'b0"
            olo_expr = below(olo) if check_lo else "1'b0"
            # the round-up bit from the dropped bits (one LUT up to 6 inputs, then LUTs and MUXF7/8), the
            # incrementer; the flags compare h beside it, then l after it (a carry chain) when a limit's low
            # bits need it, and combine the terms in a LUT (measured on the Conv2D tagger: Yosys sta 3.19 ns
            # from a sum to the register after its cast, 3.69 estimated)
            # (RND's is the half bit itself: a wire)
            up = 0.0 if dst.rounding == "RND" else LUT_NS if shift + 1 <= 6 else 2 * LUT_NS + 2 * MUXF_NS
            inc = up + adder_ns(ow + 1)
            low = (check_hi and (ohi & mask) != mask) or (check_lo and (olo & mask) != 0)
            flags = inc + (LUT_NS + CARRY_IN_NS if low else 0.0) + LUT_NS
            r_width = ow
        else:
            inc, flags = 0.0, adder_ns(rw) + LUT_NS  # comparisons of r with the limits (carry chains), combined
            ohi_expr = f"{ident}_r > {rw}'sh{ohi % (1 << rw):x}" if check_hi else "1'b0"
            olo_expr = f"{ident}_r < {rw}'sh{olo % (1 << rw):x}" if check_lo else "1'b0"
            r_width = rw
        # rounding: an incrementer (a carry chain); saturation: the flags, then a mux
        extra = max(inc, flags if saturates else 0.0) + (LUT_NS if saturates or relu else 0.0)
        if relu and not rounds and not saturates and bits.name in self._mux_outputs and bits.stage == a.stage:
            # a relu (and a cast that only drops it to its format) of a saturating cast's output: each output bit
            # is then a function of the two overflow flags, its own bit and the sign bit before the mux, four
            # inputs, so LUT mapping makes mux and relu one LUT (depth-optimal cuts): no level of its own
            extra = 0.0
        if (rounds and self.max_delay is not None and CLOCK_TO_Q_NS + extra > self.max_delay
                and not (dst.rounding == "RND" and shift == 1)):
            # deeper than a clock period in one piece: the rounding bit first (floor * 2 + up), then a cast of
            # that with round-half-up on its last bit, which adds up to the floor: the same rounded value, then
            # the same overflow handling; pipeline auto may put a register between the two
            self._names.discard(ident)
            word = self.round_prep(f"{name}_rb", a, shift, dst.rounding)
            half_up = FixedFormat(word.width, word.width - dst.fractional - 1, True)
            return self.requant(name, word, half_up, dst.with_modes(rounding="RND"))
        [a] = self._ready([bits], extra)
        out = Sig(ident, fmt_sig_width(dst), lo, hi, **self._after([a], 0, False))
        out.delay = out.lsb_delay = round(out.delay + extra, 3)
        spec = dict(shift=shift, xw=xw, fw=fw, rw=rw, r_width=r_width, hw=max(fw - dst.width, 1),
                    rounding=dst.rounding, relu=relu,
                    overflow=dst.overflow if can_overflow else "NONE", ow=dst.width, signed=dst.signed,
                    ohi_expr=ohi_expr, olo_expr=olo_expr,
                    sat_hi=ohi % (1 << dst.width), sat_lo=olo % (1 << dst.width))
        if saturates:
            self._mux_outputs.add(out.name)
        return self.emit("requant", out, a=a, spec=spec)

    def round_prep(self, name: str, a: Sig, shift: int, rounding: str) -> Sig:
        """``(a >> shift) * 2 + up``: the kept bits of a and the bit that rounds them up (``rounding``, an ap_fixed
        mode), the first half of a cast that does not fit one stage (``requant``)."""
        up = LUT_NS if shift + 1 <= 6 else 2 * LUT_NS + 2 * MUXF_NS
        if rounding == "RND":
            up = 0.0
        [a] = self._ready([a], up)
        xw = max(a.width, shift + 1)
        lo, hi = (a.lo >> shift) * 2, (a.hi >> shift) * 2 + 1
        out = Sig(self._new(name), xw - shift + 1, lo, hi, **self._after([a], 0, False))
        out.delay = out.lsb_delay = round(out.delay + up, 3)
        return self.emit("round_prep", out, a=a, spec=dict(shift=shift, xw=xw, rounding=rounding))

    def count_at_least(self, name: str, a: Sig, thresholds, width: int) -> Sig:
        """How many of the integer thresholds are <= a: a thermometer code (one comparator per threshold),
        then its length in binary (``thermo_count``). The order of the thresholds does not change the count,
        so they are sorted: the code is then monotone, and bit b of its length is an OR of (t[i] & ~t[j])
        pairs, a shallow LUT tree, where a popcount would be an adder tree. Two statements, so that pipeline
        auto can put a register between the comparators and the encoder when both do not fit one stage."""
        thresholds = sorted(int(t) for t in thresholds)
        if not thresholds:
            return self.const(name, 0)
        code = self.thermometer(f"{name}_t" if len(thresholds) > 1 else name, a, thresholds)
        if len(thresholds) <= 1:
            return code
        n, compared = len(thresholds), self.statements[-1]["a"]  # the signal the comparators read
        [code] = self._ready([code], thermo_ns(n) + (shared_front_levels(n) - 1) * LUT_NS)
        out = Sig(self._new(name), width + 1, 0, n, **self._after([code], 0, False))
        if code.stage == compared.stage:  # comparators and encoder in one stage: ABC maps them together
            bits = _live_bits(compared)
            extra = (lut_function_ns(bits) if bits <= 8
                     else adder_ns(compared.width) + (shared_front_levels(n) - 1) * LUT_NS + thermo_ns(n))
            out.delay = out.lsb_delay = round(compared.delay + extra, 3)
        else:
            out.delay = out.lsb_delay = round(code.delay + thermo_ns(n), 3)
        n, bits, wires = len(thresholds), [], []
        t = f"{code.name}[{{}}]"
        for b in range(width):  # bit b of the length: t[m 2^b - 1] & ~t[(m + 1) 2^b - 1] for odd m
            terms = []
            for m in range(1, (n >> b) + 2, 2):
                i, j = m * (1 << b) - 1, (m + 1) * (1 << b) - 1
                if i < n:
                    terms.append(t.format(i) if j >= n else f"({t.format(i)} & ~{t.format(j)})")
            bits.append(_or_tree(f"{out.name}_b{b}", terms, wires))
        return self.emit("thermo_count", out, a=code, bits=bits[::-1], wires=wires)

    def thermometer(self, name: str, a: Sig, thresholds: list[int]) -> Sig:
        """Bit i: a >= thresholds[i] (increasing thresholds: a monotone code), as an unsigned word."""
        extra = adder_ns(a.width)  # the comparators, side by side
        if _live_bits(a) <= 8:  # a narrow signal: ABC makes the comparators LUTs
            extra = min(extra, lut_function_ns(_live_bits(a)))
        [a] = self._ready([a], extra)
        n = len(thresholds)
        out = Sig(self._new(name), n + 1, 0, (1 << n) - 1, **self._after([a], 0, False))
        out.delay = out.lsb_delay = round(out.delay + extra, 3)
        keys = [{"bits": t % (1 << a.width)} for t in thresholds]
        return self.emit("thermometer", out, a=a, keys=keys)

    def concat(self, name: str, fields: list[tuple[Sig, int, int]], width: int) -> Sig:
        """An unsigned word of ``width`` bits from (signal, lsb, bits) fields (each signal non-negative)."""
        for sig, _, bits in fields:
            if sig.lo < 0 or sig.hi >= 1 << bits:
                raise FirmwareModelError(f"{self.name}: field {sig.name} holds {sig.lo}..{sig.hi}, not {bits} bits")
        hi = sum(min(sig.hi, (1 << bits) - 1) << lsb for sig, lsb, bits in fields)
        sigs = self._ready([f[0] for f in fields], 0)
        fields = [(sig, lsb, bits) for sig, (_, lsb, bits) in zip(sigs, fields)]
        parts = sorted(fields, key=lambda f: -f[1])
        out = Sig(self._new(name), width + 1, 0, hi, **self._after(sigs, 0, False))
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

    def mul_signals(self, name: str, a: Sig, b: Sig) -> Sig:
        """a times b, both signals (a real multiplier: softmax's exp(x_i) * 1/sum)."""
        if b.const is not None:
            return self.mul(name, a, b.const)
        if a.const is not None:
            return self.mul(name, b, a.const)
        corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        iv = Interval(min(corners), max(corners))
        a, b = self._ready([a, b], DSP_NS)
        out = Sig(self._new(name), iv.width, iv.lo, iv.hi, **self._after([a, b], iv.width, False))
        out.delay = out.lsb_delay = out.delay + DSP_NS
        return self.emit("mul_signals", out, a=a, b=b)

    def select_ge(self, name: str, a: Sig, b: Sig, if_ge: Sig, otherwise: Sig) -> Sig:
        """``a >= b ? if_ge : otherwise`` (max trees, argmax)."""
        iv = if_ge.interval.hull(otherwise.interval)
        extra = adder_ns(max(a.width, b.width)) + LUT_NS  # the comparison's carry chain, then the mux
        a, b, if_ge, otherwise = self._ready([a, b, if_ge, otherwise], extra)
        out = Sig(self._new(name), iv.width, iv.lo, iv.hi, **self._after([a, b, if_ge, otherwise], iv.width, False))
        out.delay = out.lsb_delay = max(out.delay + LUT_NS, a.delay + extra, b.delay + extra)
        return self.emit("select_ge", out, a=a, b=b, x=if_ge, y=otherwise, cw=max(a.width, b.width))

    def select_equal(self, name: str, a: Sig, k: int, if_equal: int, otherwise: int) -> Sig:
        """``a == k ? if_equal : otherwise`` for integer constants (a one-hot output)."""
        iv = Interval(min(if_equal, otherwise), max(if_equal, otherwise))
        out = Sig(self._new(name), iv.width, iv.lo, iv.hi, **self._after([a], iv.width, False))
        out.delay = out.lsb_delay = out.delay + (1 + (a.width + 5) // 6) * LUT_NS  # a LUT tree comparing a with k
        return self.emit("select_equal", out, a=a, k_bits=int(k) % (1 << a.width),
                         x_bits=int(if_equal) % (1 << iv.width), y_bits=int(otherwise) % (1 << iv.width))

    def argmax(self, name: str, xs: list[Sig], register_levels: bool = False) -> Sig:
        """The index of the first largest of ``xs``: a tournament of comparators in which ties go left.

        ``register_levels`` puts a register after every round (log2(n) cycles), for a decision
        that must meet the clock without ``pipeline: auto``.
        """
        nodes = [(x, self.const(f"{name}_i{k}", k)) for k, x in enumerate(xs)]
        level = 0
        while len(nodes) > 1:
            nxt = []
            for k in range(0, len(nodes), 2):
                if k + 1 == len(nodes):
                    nxt.append(nodes[k])
                    continue
                (va, ia), (vb, ib) = nodes[k], nodes[k + 1]
                nxt.append((self.select_ge(f"{name}_v{level}_{k // 2}", va, vb, va, vb),
                            self.select_ge(f"{name}_k{level}_{k // 2}", va, vb, ia, ib)))
            level += 1
            if register_levels and len(nxt) > 1:
                nxt = [(self.reg(f"{name}_v{level}_{k}_q", v), self.reg(f"{name}_k{level}_{k}_q", i))
                       for k, (v, i) in enumerate(nxt)]
            nodes = nxt
        return nodes[0][1]

    # ------------------------------------------------------------ arithmetic blocks
    def sum_tree(self, name: str, leaves: list[Sig], cap: int | None = None, every: int | None = None) -> Sig:
        """The sum of ``leaves`` as a balanced adder tree (a register every ``every`` levels, none after the root)."""
        return self.sum_trees(name, [leaves], cap, every)[0]

    def sum_trees(self, name: str, trees: list[list[Sig]], cap: int | None = None,
                  every: int | None = None) -> list[Sig]:
        """Several adder trees side by side, balanced on estimated delay, their roots on one stage.

        Registers go where a stage would exceed the builder's level budget (pipeline auto) or
        after every ``every`` adders (none after the root)."""
        self._every = every
        terms = [[(leaf, 0, 1) for leaf in t] for t in trees]
        return self._sum_terms(name, terms, cap, every)

    def constant_matvec(self, name: str, xs: list[Sig], matrix, bias, cap: int | None = None,
                        every: int | None = None) -> list[Sig]:
        """``y_j = bias_j + sum_i xs[i] * matrix[i, j]`` for an integer constant matrix (n_in, n_out).

        Exact, or modulo 2**cap when capped. Every constant-matrix product of every op
        (dense, convolution, ...) goes through here, so how constants are multiplied
        (and where pipeline registers go) is decided in one place: shift-and-add on signed
        digits with subexpressions shared across the outputs (``cmvm.plan_cmvm``), constants
        wider than the multiplier option allows as ``*``. One root per column, all on one stage.
        """
        matrix = np.asarray(matrix, dtype=object)
        n_in, n_out = matrix.shape
        self._every = every
        wide = np.array([[int(v) != 0 and self.uses_dsp(int(v)) for v in row] for row in matrix],
                        dtype=bool).reshape(n_in, n_out)
        narrow = np.where(wide, 0, matrix)
        plan = plan_cmvm(narrow, ranges=[(x.lo, x.hi) for x in xs])
        forms = _Forms(xs)
        sources = list(xs)
        for k, node in enumerate(plan.nodes):
            a, b = sources[node.a], sources[node.b]
            sources.append(self.shift_add(f"{name}c{k}", a, 0, b, node.shift, node.sign < 0, cap,
                                          forms.combine(a, 0, b, node.shift, node.sign)))
            forms.name(sources[-1])
        columns = []
        for j, col in enumerate(plan.columns):
            terms = [(sources[t.src], t.shift, t.sign) for t in col]
            terms += [(self.mul(f"{name}m{i}_{j}", xs[i], int(matrix[i, j]), cap), 0, 1)
                      for i in np.flatnonzero(wide[:, j])]
            b = int(bias[j])
            if b != 0:
                zeros = (b & -b).bit_length() - 1
                terms.append((self.const(f"{name}b{j}", abs(b) >> zeros), zeros, 1 if b > 0 else -1))
            columns.append(terms)
        return self._sum_terms(f"{name}s", columns, cap, every, forms)

    def _sum_terms(self, name: str, columns: list[list[tuple[Sig, int, int]]], cap: int | None,
                   every: int | None, forms: "_Forms | None" = None) -> list[Sig]:
        """Per column, the sum of signed shifted terms ``sign * (sig << shift)``, as an adder tree that
        always adds the two earliest-ready terms (balanced when they arrive together); roots aligned.
        ``forms``: the terms as linear forms of the product's inputs, for exact adder ranges."""
        forms = forms or _Forms([])
        roots = []
        for j, terms in enumerate(columns):
            heap = [(self._ready_key(sig, shift), k, sig, shift, sign) for k, (sig, shift, sign) in enumerate(terms)]
            heapq.heapify(heap)
            count = len(heap)
            while len(heap) > 1:
                _, _, x, sx, gx = heapq.heappop(heap)
                _, _, y, sy, gy = heapq.heappop(heap)
                low = min(sx, sy)
                if gx < 0 and gy > 0:  # the positive term first: p - q
                    x, sx, gx, y, sy, gy = y, sy, gy, x, sx, gx
                sign = -1 if gx != gy else 1
                node = self.shift_add(f"{name}{j}_{count}", x, sx - low, y, sy - low, sign < 0, cap,
                                      forms.combine(x, sx - low, y, sy - low, sign))
                forms.name(node)
                heapq.heappush(heap, (self._ready_key(node, low), count, node, low, gx))
                count += 1
            if not heap:
                roots.append(self.const(f"{name}{j}_zero", 0))
                continue
            _, _, sig, shift, sign = heap[0]
            roots.append(self.shift(f"{name}{j}_root", sig, shift, sign < 0, cap))
        self._every = None
        live = [r for r in roots if r.const is None]
        stage = max((r.stage for r in live), default=0)
        return [r if r.const is not None else self.delay(r, stage - r.stage) for r in roots]

    @staticmethod
    def _ready_key(sig: Sig, shift: int = 0) -> tuple:
        """When a term is ready: constants first, then by stage and estimated delay; among terms
        ready together, the one with the lowest top bit first. An adder costs a LUT per bit from the higher
        of its operands' LSBs to the top of its result; the LSB part adds up to the same over any tree, the
        top part is smallest when small terms are summed first (about 2% fewer adder bits and 13% fewer
        pipeline bits on the benchmark network than in input order; ordering by top bit rather than by
        shift saves another 0.3% of the adder bits)."""
        return (-1, 0, shift) if sig.const is not None else (sig.stage, sig.delay, sig.width + shift)

    # ------------------------------------------------------------ resource sharing (serial.py)
    def serial_matvec(self, name: str, xs: list[Sig], matrix, bias, cap: int | None, ii: int,
                      every: int | None = None) -> list[Sig]:
        """``constant_matvec`` shared over ``ii`` cycles (digit-serial); results valid one cycle: ``hold`` them."""
        from trigger.backends.rtl.serial import serial_matvec

        return serial_matvec(self, name, xs, matrix, bias, cap, ii, every)

    def shared_windows(self, name: str, windows, matrix, bias, cap: int | None, ii: int, finish,
                       every: int | None = None, hold_outputs: bool = True) -> list[list[Sig]]:
        """One constant-matrix product per window (a convolution's positions), shared over ``ii`` cycles."""
        from trigger.backends.rtl.serial import shared_windows

        return shared_windows(self, name, windows, matrix, bias, cap, ii, finish, every, hold_outputs)

    def hold(self, ys: list[Sig]) -> list[Sig]:
        """Registers written once per event, so a shared op's outputs stay put for the next op."""
        from trigger.backends.rtl.serial import hold

        return hold(self, ys)
