"""Resource sharing: a new event every II clocks, each adder reused for up to II cycles.

Level-1 triggers see a collision every 25 ns but clock at 240-360 MHz, so a design
may take a new input every II = 6 or 9 clocks (hls4ml's reuse factor, FINN's folding).
The constant-matrix products keep their shift-add networks (``ModuleBuilder.constant_matvec``,
shared subexpressions, the same constants every cycle) and are made **digit-serial**:
every input is cut into n <= II slices of b bits, cycle t feeds slice n-1-t (most
significant first; the top slice signed, the others unsigned) through ONE copy of the
network built for b-bit inputs, and one accumulator per output computes
``acc = ((acc << b) | bias digit) + partial``. The sum over t of ``partial_t << b*t`` is
``M^T x``, exactly (the bias rides in the zero low bits of the shifted accumulator, one
base-2**b digit a cycle, so it needs no adder of its own); the casts and activations
then run once per event on the same integers as the parallel design. Convolutions share
by position instead (``shared_windows``): the kernel network is the same at every output
position, so ceil(P / II) copies of it each take one multiplexed window per cycle.
Why digit-serial rather than hls4ml's reuse (products
``x_j * w_ij`` with the weights multiplexed per cycle): multiplexed weights are no
longer constants, so every product needs a real multiplier (a DSP or a LUT array)
where a constant costs one or two adders; here the network stays constant and only
its adders narrow (the input part of their width shrinks from w to about w / II bits).

Protocol (``firmware_templates/rtl/top.v.j2``): the top takes an input only when II
cycles have passed since the last one it took; an ``in_valid`` sooner than that is
refused (the input is dropped, no output will come for it) and flagged by the output
``in_refused``, high for one cycle one clock later. The taken input is held in the
input register, so every tensor of the event stays on its wires for II cycles; a shared
op reads it slice by slice and ends in a hold register written once per event. Each
shared op's module gets the event's ``start`` strobe (the top's valid shift register at
the op's input stage) and ``rst``: the strobes inside it are reset with the top.
"""

from __future__ import annotations

from trigger.backends.rtl.builder import CLOCK_TO_Q_NS, LUT_NS, ModuleBuilder, Sig, carry_ns, mux_ns
from trigger.ir.ranges import Interval, signed_width


# ------------------------------------------------------------------ control
def start_port(m: ModuleBuilder) -> Sig:
    """The module's ``start`` input: high in the cycle the event's inputs are on ``in_data`` (stage 0)."""
    if getattr(m, "start_sig", None) is None:
        m.has_clock = True
        m.start_sig = Sig("start", 2, 0, 1)
    return m.start_sig


def strobe(m: ModuleBuilder, stage: int) -> Sig:
    """The start strobe ``stage`` cycles later (registers with the synchronous reset, shared)."""
    cache = m.__dict__.setdefault("_strobes", {})
    sig = start_port(m)
    for k in range(1, stage + 1):
        if k not in cache:
            out = Sig(m._new(f"start_d{k}"), 2, 0, 1, stage=k)
            cache[k] = m.emit("strobe", out, a=sig)
        sig = cache[k]
    return sig


def phase(m: ModuleBuilder, stage: int, cycles: int) -> Sig:
    """A counter that reads t in cycle ``stage`` + t (t < cycles) of every event (shared per stage)."""
    cache = m.__dict__.setdefault("_phases", {})
    if (stage, cycles) not in cache:
        first = strobe(m, stage)
        width = max(1, (cycles - 1).bit_length())
        out = Sig(m._new(f"phase{stage}"), width + 1, 0, (1 << width) - 1, stage=stage, delay=first.delay + LUT_NS,
                  lsb_delay=first.delay + LUT_NS)
        cache[(stage, cycles)] = m.emit("phase", out, first=first, bits=width)
    return cache[(stage, cycles)]


def _align(m: ModuleBuilder, sigs: list[Sig]) -> list[Sig]:
    live = [s for s in sigs if s.const is None]
    stage = max((s.stage for s in live), default=0)
    return [s if s.const is not None else m.delay(s, stage - s.stage) for s in sigs]


# ------------------------------------------------------------------ digit-serial products
def slice_plan(xs: list[Sig], ii: int) -> tuple[int, int]:
    """(bits per slice b, slices n <= ii) for inputs whose value bits are at most max width."""
    widest = max(_value_bits(x) for x in xs)
    b = -(-widest // ii)
    return b, -(-widest // b)


def _value_bits(x: Sig) -> int:
    """Bits that carry x's value: its width, less the sign bit when x is never negative."""
    if x.const is not None:
        return 1
    return max(1, x.width - (1 if x.lo >= 0 else 0))


def serial_matvec(m: ModuleBuilder, name: str, xs: list[Sig], matrix, bias, cap: int | None, ii: int,
                  every: int | None = None) -> list[Sig]:
    """``bias_j + sum_i xs[i] * matrix[i, j]`` computed over n <= ii cycles (digit-serial): in cycle t
    ``acc = ((acc << b) | bias digit t) + partial_t``, starting from the bias's top part.

    The xs must hold their value for ii cycles from their stage on (the standard top's input
    register and the hold registers guarantee it). Returns one signal per column, valid in ONE
    cycle (its stage) only: finish with ``hold``. Exact, or modulo 2**cap when capped."""
    xs = _align(m, list(xs))
    live = [x for x in xs if x.const is None]
    if not live:
        return m.constant_matvec(name, xs, matrix, bias, cap, every)
    b, n = slice_plan(live, ii)
    stage = live[0].stage
    sel = phase(m, stage, n)
    slices = []
    for i, x in enumerate(xs):
        if x.const is not None:
            raise ValueError("serial_matvec: constant inputs are not sliced")  # ops pass tensors, not constants
        slices.append(_slice_mux(m, f"{name}sl{i}", x, b, n, sel))
    partials = m.constant_matvec(f"{name}d", slices, matrix, [0] * len(bias), cap, every)
    roots = []
    for j, p in enumerate(partials):
        bj = int(bias[j])
        column = Interval(min(0, bj), max(0, bj))  # every partial accumulation holds a floor of the bias
        for x, k in zip(xs, matrix[:, j] if hasattr(matrix, "shape") else [row[j] for row in matrix]):
            column = column + x.interval.hull(Interval(0, 0)).scale(int(k))
        width, lo, hi = m._capped(column, cap)
        if p.const is not None:  # an all-zero column
            roots.append(m.const(f"{name}z{j}", bj))
            continue
        p, delay = _accumulator_input(m, p, width)
        # the bias enters as base-2**b digits: its top part with the first partial, then one b-bit digit
        # in the (zero) low bits of each shifted accumulator: no adder of its own
        top = b * (n - 1)
        digits = [(bj >> (b * (n - 1 - t))) & ((1 << b) - 1) for t in range(1, n)]
        acc = Sig(m._new(f"{name}acc{j}"), width, lo, hi, stage=p.stage + n)
        m.has_clock = True
        for s in range(p.stage, p.stage + n):  # its adder runs in each of these cycles, register to register
            m.stage_delay[s] = max(m.stage_delay.get(s, 0.0), round(CLOCK_TO_Q_NS + delay, 3))
        roots.append(m.emit("accumulate", acc, a=p, first=strobe(m, p.stage), shift=b,
                            head_bits=(bj >> top) % (1 << width), digits=digits,
                            sel=phase(m, p.stage, n) if any(digits) else None))
    return _align(m, roots)


def _accumulator_input(m: ModuleBuilder, p: Sig, width: int) -> tuple[Sig, float]:
    """The partial sum as the accumulator adds it, and the delay of that addition (the builder's adder
    model: the accumulator's own bits come from its register, the partial's from the network): the
    partial is registered first when the addition would take its stage over the budget (pipeline auto),
    as the builder does before any adder."""
    def delay_of(q: Sig) -> float:
        return max(m._adder_timing([(q, 0)], width)[1], LUT_NS + carry_ns(width))

    if m.max_delay is not None and p.delay and CLOCK_TO_Q_NS + delay_of(p) > m.max_delay:
        p = m.delay(p, 1)
    return p, delay_of(p)


def _mux_inputs(m: ModuleBuilder, sigs: list[Sig], cases: int) -> tuple[list[Sig], int]:
    """The inputs of a ``cases``-way multiplexer (a LUT, two with MUXF7/8 past 4 cases) on one stage,
    registered first when it would take their stage over the budget (``ModuleBuilder._ready``); and
    the delay at its output."""
    extra = mux_ns(cases)
    live = [s for s in sigs if s is not None]
    ready = iter(m._ready(live, extra))
    sigs = [None if s is None else next(ready) for s in sigs]
    return sigs, max(s.delay for s in sigs if s is not None and s.const is None) + extra


def _slice_mux(m: ModuleBuilder, name: str, x: Sig, b: int, n: int, sel: Sig) -> Sig:
    """In cycle t, slice n-1-t of x (b bits; the top slice signed when x can be negative)."""
    (x, sel), delay = _mux_inputs(m, [x, sel], n)
    signed = x.lo < 0
    cases, lo, hi = [], 0, 0
    for t in range(n):
        j = n - 1 - t  # most significant slice first
        top_signed = signed and j == n - 1
        bits = [f"{x.name}[{min(k, x.width - 1)}]" for k in range(j * b + b - 1, j * b - 1, -1)]
        if top_signed:
            lo, hi = min(lo, -(1 << (b - 1))), max(hi, (1 << (b - 1)) - 1)
        else:
            hi = max(hi, (1 << b) - 1)
        cases.append((bits, top_signed))
    width = signed_width(lo, hi)
    cases = ["{" + ", ".join([bits[0]] * (width - b) + bits) + "}" if top_signed else
             "{" + ", ".join([f"{width - b}'b0"] + bits) + "}" for bits, top_signed in cases]
    out = Sig(m._new(name), width, lo, hi, stage=x.stage, delay=delay, lsb_delay=delay)
    return m.emit("slice_mux", out, sel=sel, cases=cases, slice_bits=b)


def hold(m: ModuleBuilder, ys: list[Sig]) -> list[Sig]:
    """Registers written once per event (enabled by the start strobe at the values' stage): a shared
    op's outputs stay on their wires until the next event's, as its successors need."""
    ys = _align(m, ys)
    live = [y for y in ys if y.const is None]
    if not live:
        return ys
    stage = live[0].stage
    enable = strobe(m, stage)
    m.has_clock = True
    return [y if y.const is not None else
            m.emit("hold", Sig(m._new(f"{y.name}_held"), y.width, y.lo, y.hi, stage=stage + 1, fresh=True), a=y,
                   enable=enable)
            for y in ys]


# ------------------------------------------------------------------ position-multiplexed products
def shared_windows(m: ModuleBuilder, name: str, windows: list[list[Sig | None]], matrix, bias, cap: int | None,
                   ii: int, finish, every: int | None = None, hold_outputs: bool = True) -> list[list[Sig]]:
    """The same constant-matrix product at every position of a convolution, shared over n <= ii cycles.

    ``windows[p]`` holds the inputs of position p (None: a padded cell, zero). ceil(P / ii) copies
    ("lanes") of the network each compute one position per cycle from a multiplexed window;
    ``finish(roots, p)`` turns a position's raw sums into its outputs (casts), once per lane. Every
    position but the last of a lane is captured in a register when it comes out; with
    ``hold_outputs`` all are then held for the next event (else the next op holds them)."""
    n_pos = len(windows)
    lanes = -(-n_pos // ii)
    n = -(-n_pos // lanes)
    live = [x for w in windows for x in w if x is not None and x.const is None]
    stage = max((x.stage for x in live), default=0)
    windows = [[x if x is None or x.const is not None else m.delay(x, stage - x.stage) for x in w] for w in windows]
    sel = phase(m, stage, n)
    outputs: list[list[Sig] | None] = [None] * n_pos
    pending = []
    for lane in range(lanes):
        positions = [p for p in range(lane * n, min(lane * n + n, n_pos))]
        muxed = []
        for r in range(len(windows[0])):
            cases = [windows[p][r] for p in positions]
            if all(c is None for c in cases):
                muxed.append(m.const(f"{name}l{lane}z{r}", 0))
                continue
            iv = Interval(0, 0) if any(c is None for c in cases) else None
            for c in cases:
                if c is not None:
                    iv = c.interval if iv is None else iv.hull(c.interval)
            [mux_sel, *cases], delay = _mux_inputs(m, [sel, *cases], len(cases))
            out = Sig(m._new(f"{name}l{lane}w{r}"), iv.width, iv.lo, iv.hi, stage=mux_sel.stage, delay=delay,
                      lsb_delay=delay)
            muxed.append(m.emit("select", out, sel=mux_sel, cases=cases))
        roots = m.constant_matvec(f"{name}l{lane}_", muxed, matrix, bias, cap, every)
        ys = finish(roots, f"{name}l{lane}_")
        ys = _align(m, ys)
        at = max((y.stage for y in ys if y.const is None), default=stage)
        pending.append((positions, ys, at))
    last = max(at for _, _, at in pending) + n - 1  # the cycle every position of every lane is out
    for positions, ys, at in pending:
        ys = [y if y.const is not None else m.delay(y, last - (n - 1) - at) for y in ys]
        for t, p in enumerate(positions):
            if t == len(positions) - 1 and t == n - 1:
                outputs[p] = [y if y.const is not None else
                              Sig(y.name, y.width, y.lo, y.hi, stage=last, delay=y.delay, lsb_delay=y.lsb_delay)
                              for y in ys]
                continue
            enable = strobe(m, last - (n - 1) + t)
            m.has_clock = True
            outputs[p] = [y if y.const is not None else
                          m.emit("hold", Sig(m._new(f"{y.name}_p{t}"), y.width, y.lo, y.hi, stage=last), a=y,
                                 enable=enable) for y in ys]
    if hold_outputs:
        flat = hold(m, [y for ys in outputs for y in ys])
        k = len(outputs[0])
        return [flat[p * k:(p + 1) * k] for p in range(n_pos)]
    return outputs
