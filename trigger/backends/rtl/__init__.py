"""Verilog for a firmware model: one module per op behind the standard RTL top.

Each op builds its logic through ``ModuleBuilder`` (Python plans every width and
register); ``firmware_templates/rtl/module.v.j2`` prints the statements and
``top.v.j2`` the standard top. Registers: the top registers its input; an op's
outputs are registered unless the next op is cheap enough to follow without a
register (``Op.absorbs_previous``: activations, address packing, a ROM read) or
the op's own logic already ends in a register. ``pipeline=N`` also lets ops with
adder trees register every N adder levels; ``pipeline='auto'`` builds every op as one
chain and registers wherever a stage's estimated delay would exceed the clock period
(the builder's cell delays, the ones ``trigger.synth`` times the netlist with), wherever that falls, op
boundaries included; the chain is then cut into modules at stage boundaries, where
every signal that crosses is a register output (``split_chain``), so that every path
still runs between registers inside one module and each module is one Yosys run
(``trigger.synth`` runs them in parallel). ``RtlDesign.stage_delay_ns`` reports the
estimate per stage.
Constant products are shift-and-add unless the ``multiplier`` option says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from trigger.backends.rtl.builder import ModuleBuilder, RomImage, Sig, parse_multiplier
from trigger.errors import ConfigError
from trigger.ir.model import FirmwareModel
from trigger.ir.tensor import TensorType
from trigger.templates import render
from trigger.vectors import write_mem

__all__ = ["RtlDesign", "write_rtl", "parse_pipeline", "parse_multiplier", "standard_top", "finish_module", "write_module", "stage_of",
           "ModuleBuilder", "Sig"]


@dataclass
class RtlDesign:
    top: str
    sources: list[Path]
    data_files: list[Path]
    latency_cycles: int
    op_latency: dict[str, int] = field(default_factory=dict)
    pipeline: object = "layer"
    multiplier: str = "shift_add"
    # estimated longest path (ns) after each register (the input register first; the last: the path to out_data)
    stage_delay_ns: list[float] = field(default_factory=list)
    max_delay_ns: float | None = None  # the budget per stage (pipeline auto): the clock period
    ii: int = 1  # a new input every ii clocks (trigger/backends/rtl/serial.py)
    op_ii: dict[str, int] = field(default_factory=dict)  # cycles each op shares its arithmetic over
    stream: dict | None = None  # a streamed design (trigger/backends/rtl/stream.py): its frame protocol and stages


def parse_pipeline(pipeline) -> int | str | None:
    """'layer' -> None (registers between ops only); N -> a register every N adder levels too;
    'auto' -> registers where the clock period needs them."""
    if pipeline in (None, "layer"):
        return None
    if pipeline == "auto":
        return "auto"
    text = str(pipeline)
    if text.isdigit() and int(text) >= 1 and not isinstance(pipeline, bool):
        return int(text)
    raise ConfigError(f"pipeline must be 'layer', 'auto' or a positive number of adder levels, got {pipeline!r}")


def _ident(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if re.match(r"[A-Za-z]", ident) else f"op_{ident}"


def build_op_module(model: FirmwareModel, k: int, name: str, every: int | None, max_delay: float | None = None,
                    dsp_above_bits: int | None = None, in_delay: float = 0.0, ii: int = 1,
                    op_ii: dict[str, int] | None = None) -> tuple[ModuleBuilder, int]:
    """The module of op k: unpack its inputs, its logic, registers, packed outputs; and its latency.

    ``in_delay``: delay (ns) already on the inputs (the previous op's outputs, when not registered).
    ``ii`` > 1: the op shares its arithmetic over ii cycles and ends in hold registers, its own or, when
    the next op absorbs it (an activation), the next op's (narrower: ``holds_for_previous``)."""
    op = model.ops[k]
    nxt = model.ops[k + 1] if k + 1 < len(model.ops) else None
    m = ModuleBuilder(name, max_delay=max_delay, dsp_above_bits=dsp_above_bits, in_delay=in_delay)
    xs = [m.unpack(f"x{i}", lsb, fmt) for i, (lsb, fmt) in enumerate(zip(op.input.offsets, op.input.formats))]
    op_ii = op_ii or {}
    ys = op.emit_rtl(m, xs, {"pipeline_every": every, "ii": ii, "hold": not holds_for_previous(model, k + 1, op_ii)})
    if len(ys) != op.output.n:
        op.fail(f"RTL gave {len(ys)} outputs, expected {op.output.n}")
    stage = max(y.stage for y in ys if y.const is None) if any(y.const is None for y in ys) else 0
    ys = [m.delay(y, stage - y.stage) if y.const is None else y for y in ys]  # balance
    if holds_for_previous(model, k, op_ii):  # the shared op before left its hold registers to this op
        ys = m.hold(ys)
        stage += 1
    elif (nxt is None or not nxt.absorbs_previous) and not op.ends_in_register and ii == 1:
        ys = [m.reg(f"q{i}", y) for i, y in enumerate(ys)]
        stage += 1
    m.out_delay = max((y.delay for y in ys if y.const is None), default=0.0)
    finish_module(m, ys, op.input, op.output, op.name, op.kind, stage)
    return m, stage


def build_chain_module(model: FirmwareModel, name: str, max_delay: float, dsp_above_bits: int | None = None,
                       op_ii: dict[str, int] | None = None) -> tuple[ModuleBuilder, dict[str, int]]:
    """pipeline auto: every op in one module, registers wherever a stage would exceed ``max_delay`` ns
    (not at op boundaries), the outputs registered at the end. One module, so that every path inside
    it runs between registers (Yosys measures logic depth per module). Returns it and each op's share
    of the latency (its outputs' stage minus its inputs')."""
    m = ModuleBuilder(name, max_delay=max_delay, dsp_above_bits=dsp_above_bits)
    first, last = model.ops[0], model.ops[-1]
    xs = [m.unpack(f"x{i}", lsb, fmt) for i, (lsb, fmt) in enumerate(zip(first.input.offsets, first.input.formats))]
    latencies, before = {}, 0
    for k, op in enumerate(model.ops):
        ys = op.emit_rtl(m, xs, {"pipeline_every": None, "ii": (op_ii or {}).get(op.name, 1),
                                 "hold": not holds_for_previous(model, k + 1, op_ii or {})})
        if len(ys) != op.output.n:
            op.fail(f"RTL gave {len(ys)} outputs, expected {op.output.n}")
        if holds_for_previous(model, k, op_ii or {}):
            ys = m.hold(ys)
        after = max((y.stage for y in ys if y.const is None), default=before)
        latencies[op.name] = after - before
        xs, before = ys, after
    ys = [m.delay(y, before - y.stage) if y.const is None else y for y in xs]  # balance
    # outputs that are already registers (a shared op's hold registers) need no output register of their own
    if not last.ends_in_register and not all(y.const is not None or y.fresh for y in ys):
        ys = [m.reg(f"q{i}", y) for i, y in enumerate(ys)]
        before += 1
        latencies[last.name] += 1
    m.out_delay = 0.0
    what = f"ops {first.name} .. {last.name}" if len(model.ops) > 1 else first.name
    finish_module(m, ys, first.input, last.output, what, "+".join(op.kind for op in model.ops), before)
    return m, latencies


def build_graph_module(model: FirmwareModel, name: str, every: int | None, max_delay: float | None,
                       dsp_above_bits: int | None = None, tensors: dict | None = None) -> tuple[ModuleBuilder, dict[str, int]]:
    """A graph (several inputs, outputs, or ops reading other tensors than the op before) as one module.

    Each tensor's signals are kept by name; an op reads the signals of its source tensors one after
    another. Branches of different depth are balanced by the builder (an operation registers its
    earlier operands up to the stage of the latest), and the outputs are balanced to one stage at the
    end, so every path from in_data to out_data has the same latency. Registers: after each op
    (``pipeline: layer``, or N, which also registers every N adder levels) unless every reader of
    its output follows without one (``absorbs_previous``), or wherever the estimated delay would
    exceed ``max_delay`` (pipeline auto); the outputs end in a register. Returns the module and each
    op's share of the latency (its outputs' stage minus its inputs'). ``tensors``, when given, receives
    each tensor's signals by name (trigger prove cuts the flattened module at them)."""
    m = ModuleBuilder(name, max_delay=max_delay, dsp_above_bits=dsp_above_bits)
    signals, at = {}, 0
    offsets, formats = model.input.offsets, model.input.formats
    for port, n in model.input_ports:
        signals[port] = [m.unpack(f"{_ident(port)}_{i}", offsets[at + i], formats[at + i]) for i in range(n)]
        at += n
    readers = model.consumers()
    outputs = set(model.output_names)
    latencies = {}
    for k, op in enumerate(model.ops):
        xs = [s for t in model.sources(k) for s in signals[t]]
        before = max((x.stage for x in xs if x.const is None), default=0)
        ys = op.emit_rtl(m, xs, {"pipeline_every": every, "ii": 1, "hold": True})
        if len(ys) != op.output.n:
            op.fail(f"RTL gave {len(ys)} outputs, expected {op.output.n}")
        stage = max((y.stage for y in ys if y.const is None), default=before)
        ys = [m.delay(y, stage - y.stage) if y.const is None else y for y in ys]
        follows = [model.ops[[o.name for o in model.ops].index(r)] for r in readers.get(op.name, [])]
        unregistered = op.name not in outputs and follows and all(f.absorbs_previous for f in follows)
        if max_delay is None and not op.ends_in_register and not unregistered:
            ys = [m.reg(f"{_ident(op.name)}_q{i}", y) for i, y in enumerate(ys)]
            stage += 1
        latencies[op.name] = stage - before
        signals[op.name] = ys
    if tensors is not None:
        tensors.update(signals)
    ys = [y for t in model.output_names for y in signals[t]]
    last = max((y.stage for y in ys if y.const is None), default=0)
    if max_delay is not None:  # pipeline auto: the outputs end in a register, as a chain's do
        ys = [m.delay(y, last - y.stage) if y.const is None else y for y in ys]
        ys = [m.reg(f"q{i}", y) for i, y in enumerate(ys)]
        last += 1
    ys = [m.delay(y, last - y.stage) if y.const is None else y for y in ys]  # balance the outputs
    m.out_delay = 0.0
    kinds = "+".join(sorted({op.kind for op in model.ops}))
    finish_module(m, ys, model.input, model.output, f"graph of {len(model.ops)} ops", kinds, last)
    return m, latencies


# Statement kinds whose output is on the stage of their operands (combinational), and the register
# kinds (output one stage after the operands); a chain with any other kind (resource sharing) is not cut.
COMBINATIONAL_KINDS = {"unpack", "const", "mul", "add", "shift_add", "shift", "relu", "wrap", "requant",
                       "select_positive", "mul_signals", "select_ge", "select_equal", "count_at_least", "thermometer",
                       "thermo_count", "round_prep", "concat"}
REGISTER_KINDS = {"reg", "rom"}
# Logic (result bits of the statements) per module when a chain is cut. Measured on the benchmark network
# (16-64-32-32-5 at 5 ns, about 80k bits since pipeline auto times carry chains as Yosys sta does): whole,
# 112 s wall / 116 CPU s; in 3 modules (this size: 43k, 22k and 22k bits, so that 2 CPUs finish together),
# 77 s wall / 132 CPU s (each run reads Yosys' cell libraries first). LUT, FF and the longest path equal.
CHAIN_BITS_PER_MODULE = 30000


def _operands(value):
    """The signals a statement reads (its fields, nested in dicts and lists), not its output."""
    if isinstance(value, Sig):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "out":
                yield from _operands(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _operands(item)


def split_chain(m: ModuleBuilder, bits_per_module: int | None = None) -> list[ModuleBuilder]:
    """The finished chain module ``m`` (pipeline auto) cut at stage boundaries into modules of about
    ``bits_per_module`` (default ``CHAIN_BITS_PER_MODULE``) result bits each, chained in order (module
    k's out_data is module k+1's in_data).

    A statement sits at the stage of its output, a register at the stage of its input, so every signal
    that crosses a cut is a register output: each module's paths start at its inputs (registers of the
    module before) or its own registers and end at its registers, as inside the one module, and the
    logic is the same statements. Constants are repeated where they are read. Returns ``[m]`` when the
    chain is small or cannot be cut (resource sharing: strobes and hold registers cross stages)."""
    statements = m.statements
    if getattr(m, "start_sig", None) is not None or any(
            st["kind"] not in COMBINATIONAL_KINDS | REGISTER_KINDS for st in statements):
        return [m]
    position, producer = {}, {}
    for k, st in enumerate(statements):
        out = st["out"]
        producer[out.name] = k
        if out.const is not None:
            continue
        step = 1 if st["kind"] in REGISTER_KINDS else 0
        for sig in _operands(st):
            if sig.const is None and sig.stage != out.stage - step:
                return [m]  # an operand on another stage: no clean cut
        position[k] = out.stage - step
    last = max(position.values(), default=0)
    cost = [0] * (last + 1)
    for k, p in position.items():
        cost[p] += statements[k]["out"].width
    total = sum(cost)
    pieces = min(last + 1, max(1, round(total / (bits_per_module or CHAIN_BITS_PER_MODULE))))
    if pieces <= 1:
        return [m]
    group, done, g = [0] * (last + 1), 0, 0  # contiguous stages of about total / pieces bits each
    for p in range(last + 1):
        if done >= (g + 1) * total / pieces and g + 1 < pieces:
            g += 1
        group[p] = g
        done += cost[p]
    pieces = group[-1] + 1
    if pieces <= 1:
        return [m]
    home = {k: group[p] for k, p in position.items()}
    crossing = [{} for _ in range(pieces)]  # per piece, the signals it passes to the next (by name, in order)
    consts = [set() for _ in range(pieces)]
    for k, st in enumerate(statements):
        if k not in home:
            continue
        for sig in _operands(st):
            source = producer.get(sig.name)
            if sig.const is not None:
                if source is not None:
                    consts[home[k]].add(source)
                continue
            if source not in home:
                return [m]  # not a signal of this chain's statements
            here, there = home[k], home[source]
            if here == there:
                continue
            if here != there + 1 or statements[source]["kind"] not in REGISTER_KINDS:
                return [m]
            crossing[there].setdefault(sig.name, sig)
    for y in m.outputs:
        sig = y["sig"]
        if sig.const is None and home.get(producer.get(sig.name)) != pieces - 1:
            return [m]
        if sig.const is not None and producer.get(sig.name) is not None:
            consts[-1].add(producer[sig.name])
    stages = [[p for p in range(last + 1) if group[p] == g] for g in range(pieces)]
    out, w_in, in_desc = [], m.w_in, m.input_desc
    for g in range(pieces):
        piece = ModuleBuilder(f"{m.name}_{g}")
        if g:
            lsb = 0
            for sig in crossing[g - 1].values():
                piece.statements.append(dict(kind="unpack", out=sig, lsb=lsb, fmt_width=sig.width, signed=True))
                lsb += sig.width
        piece.statements += [statements[k] for k in sorted(consts[g])]
        piece.statements += [st for k, st in enumerate(statements) if home.get(k) == g]
        files = {st["file"] for st in piece.statements if st["kind"] == "rom"}
        piece.roms = [rom for rom in m.roms if rom.file in files]
        piece.has_clock = any(st["kind"] in REGISTER_KINDS for st in piece.statements)
        piece.stage_delay = {s: m.stage_delay[s] for s in stages[g] if s in m.stage_delay}
        if g == pieces - 1:
            piece.outputs, piece.w_out, out_desc = m.outputs, m.w_out, m.output_desc
        else:
            lsb, piece.outputs = 0, []
            for sig in crossing[g].values():
                piece.outputs.append({"sig": sig, "lsb": lsb, "width": sig.width})
                lsb += sig.width
            piece.w_out = lsb
            out_desc = f"{len(crossing[g])} registered signals of the chain"
        piece.op = f"{m.op}, stages {stages[g][0] + 1}..{stages[g][-1] + 1} of {last + 1} (part {g + 1} of {pieces})"
        piece.kind, piece.latency, piece.start_sig = m.kind, len(stages[g]), None
        piece.w_in, piece.input_desc, piece.output_desc = w_in, in_desc, out_desc
        w_in, in_desc = piece.w_out, out_desc
        out.append(piece)
    return out


def holds_for_previous(model: FirmwareModel, k: int, op_ii: dict[str, int]) -> bool:
    """Whether op k holds the outputs of the shared op before it (ii > 1): when op k absorbs it (an
    activation: it follows without a register) and does not share itself, its own outputs, usually
    much narrower than the accumulator-wide ones before it, are what is held for the next event."""
    if k <= 0 or k >= len(model.ops):
        return False
    op, previous = model.ops[k], model.ops[k - 1]
    return op_ii.get(previous.name, 1) > 1 and op.absorbs_previous and op_ii.get(op.name, 1) == 1 \
        and not op.ends_in_register


def finish_module(m: ModuleBuilder, ys: list[Sig], inputs: TensorType, outputs: TensorType, what: str, kind: str,
                  latency: int) -> ModuleBuilder:
    """Puts ``ys`` on the module's output bus (element i at ``outputs.offsets[i]``, at its format's width)
    and records what ``rtl/module.v.j2`` prints about the module: what it computes, its buses, its latency."""
    if len(ys) != outputs.n:
        raise ValueError(f"{m.name}: {len(ys)} output signals for {outputs.n} output elements")
    m.outputs = [{"sig": y, "lsb": lsb, "width": fmt.width} for y, lsb, fmt in zip(ys, outputs.offsets, outputs.formats)]
    m.op, m.kind, m.latency = what, kind, latency
    m.start_sig = getattr(m, "start_sig", None)  # a shared op's event strobe (serial.start_port)
    m.w_in, m.w_out = inputs.bus_width, outputs.bus_width
    m.input_desc, m.output_desc = inputs.describe(), outputs.describe()
    return m


def write_module(m: ModuleBuilder, out_dir: Path, top: str) -> Path:
    """Prints a finished module (``finish_module``) with ``rtl/module.v.j2`` into ``out_dir/<name>.v``."""
    path = Path(out_dir) / f"{m.name}.v"
    path.write_text(render("rtl/module.v.j2", mod=m, top=top))
    return path


# A ROM of at least this many bits is a module of its own (rtl/rom.v.j2), which trigger.synth does not give
# to Yosys: it counts the block RAMs from depth x width (a 2^20 x 9-bit table took Yosys minutes).
ROM_MODULE_BITS = 1 << 18


def write_rom_modules(m: ModuleBuilder, out_dir: Path, top: str) -> list[Path]:
    """The large ROMs of ``m`` as modules of their own, which ``m`` instantiates (module.v.j2); their files."""
    paths = []
    for st in m.statements:
        if st["kind"] == "rom" and st["depth"] * st["word_width"] >= ROM_MODULE_BITS:
            st["module"] = f"{Path(st['file']).stem}_table"
            path = Path(out_dir) / f"{st['module']}.v"
            path.write_text(render("rtl/rom.v.j2", name=st["module"], top=top, depth=st["depth"],
                                   width=st["word_width"], address_bits=st["address_bits"], file=st["file"]))
            paths.append(path)
    return paths


def write_adder_module(out_dir: Path, top: str) -> Path:
    """The adder every generated module of ``top`` instantiates (``<top>_sa``, rtl/shift_add.v.j2): its own
    module so that Yosys maps each addition onto a carry chain instead of merging chains of them."""
    path = Path(out_dir) / f"{top}_sa.v"
    path.write_text(render("rtl/shift_add.v.j2", name=f"{top}_sa", top=top))
    return path


def stage_of(m: ModuleBuilder, start_at: int | None = None) -> dict:
    """The standard top's stage entry for a generated module (ports clk, in_data, out_data; and rst, start
    = the top's valid shift register bit ``start_at`` when the module shares arithmetic)."""
    return {"module": m.name, "has_clock": m.has_clock, "clock_port": "clk", "in_port": "in_data",
            "out_port": "out_data", "w_out": m.w_out,
            "start_at": start_at if getattr(m, "start_sig", None) is not None else None}


def write_rtl(model: FirmwareModel, out_dir: Path, top: str = "trigger_top", pipeline="layer",
              clock_period_ns: float = 5.0, multiplier="shift_add", ii: int = 1,
              op_ii: dict[str, int] | None = None) -> RtlDesign:
    """Writes the Verilog of ``model`` (and its ROM images) behind the standard RTL top into ``out_dir``.

    ``multiplier``: 'shift_add' (constant products as adders), 'dsp' (``*``, DSP slices), or N
    (constants of more than N bits as ``*``). ``clock_period_ns`` sets the stage budget of pipeline auto.
    ``ii``: a new input every ii clocks; ``op_ii``: cycles each op shares its arithmetic over (at most
    ii; ``serial.resolve_ii`` makes both from the settings)."""
    model.validate()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", top):
        raise ConfigError(f"top module name {top!r} is not a Verilog identifier")
    if getattr(model.ops[-1], "external_memory", False):  # a table in the board's memory, not a ROM
        from trigger.backends.rtl.memory_table import write_memory_table_rtl
        return write_memory_table_rtl(model, out_dir, top, pipeline=pipeline, clock_period_ns=clock_period_ns,
                                      multiplier=multiplier)
    if any(getattr(op, "stream", False) for op in model.ops):  # io_stream: line buffers, one pixel per clock
        from trigger.backends.rtl.stream import write_stream_rtl
        return write_stream_rtl(model, out_dir, top, pipeline=pipeline, clock_period_ns=clock_period_ns,
                                multiplier=multiplier, ii=ii, op_ii=op_ii)
    every = parse_pipeline(pipeline)
    _, dsp_above_bits = parse_multiplier(multiplier)
    max_delay = float(clock_period_ns) if every == "auto" else None
    if every == "auto":
        every = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    op_ii = {op.name: 1 for op in model.ops} if ii == 1 else dict(op_ii or {})
    if any(v > ii for v in op_ii.values()):
        raise ConfigError(f"an op's ii ({max(op_ii.values())}) exceeds the model's ii {ii}")
    modules, latencies, used, starts = [], {}, set(), []
    in_delay, offset, stage_delay = 0.0, 1, {}  # stage 1 starts at the input register
    if not model.is_chain:
        if ii != 1:
            raise ConfigError(f"{model.name}: resource sharing (ii {ii}) is not supported for graph models "
                              "(several inputs, outputs or branches) yet; use ii 1")
        m, latencies = build_graph_module(model, f"{top}_ops", every, max_delay, dsp_above_bits)
        stage_delay = {1 + s: ns for s, ns in m.stage_delay.items()}
        pieces = split_chain(m)
        modules += pieces
        starts += [0] * len(pieces)
        latency = 1 + m.latency
    elif max_delay is not None:
        m, latencies = build_chain_module(model, f"{top}_ops", max_delay, dsp_above_bits, op_ii)
        stage_delay = {1 + s: ns for s, ns in m.stage_delay.items()}
        pieces = split_chain(m)
        modules += pieces
        starts += [0] * len(pieces)  # only an uncut chain may share arithmetic (start port)
    for k, op in enumerate(model.ops if max_delay is None and model.is_chain else []):
        name = f"{top}_{_ident(op.name)}"
        if name in used:
            name = f"{name}_{k}"
        used.add(name)
        m, latency = build_op_module(model, k, name, every, None, dsp_above_bits, in_delay, op_ii.get(op.name, 1),
                                     op_ii)
        starts.append(offset - 1)  # the valid shift register bit that is high when this module's inputs are
        in_delay = m.out_delay
        for s, ns in m.stage_delay.items():  # stage s of this op is global stage offset + s
            stage_delay[offset + s] = max(stage_delay.get(offset + s, 0.0), ns)
        offset += latency
        modules.append(m)
        latencies[op.name] = latency
    if model.is_chain:
        latency = 1 + sum(latencies.values())  # the input register, then the ops

    sources, data_files = [], []
    for m in modules:
        sources += write_rom_modules(m, out_dir, top)
        sources.append(write_module(m, out_dir, top))
        for rom in m.roms:
            data_files.append(write_rom(out_dir / rom.file, rom))
    if any(m.uses_adder_module for m in modules):
        sources.append(write_adder_module(out_dir, top))
    stages = [stage_of(m, start) for m, start in zip(modules, starts)]
    path = out_dir / f"{top}.v"
    path.write_text(standard_top(top, f"{model.kind} '{model.name}'", model.input.elements(),
                                 model.output.elements(), stages, latency, ii=ii))
    sources.append(path)
    kept = "auto" if max_delay is not None else (pipeline if every else "layer")
    delays = [stage_delay.get(s, 0.0) for s in range(1, latency + 1)]
    return RtlDesign(top, sources, data_files, latency, latencies, kept,
                     "dsp" if dsp_above_bits == 0 else ("shift_add" if dsp_above_bits is None else str(dsp_above_bits)),
                     delays, max_delay, ii, op_ii)


def standard_top(top: str, description: str, inputs: list[dict], outputs: list[dict], stages: list[dict],
                 latency: int, input_register: bool = True, ii: int = 1) -> str:
    """The standard top (DESIGN.md) around a chain of stage modules: the one template every design uses.
    With ``ii`` > 1 it takes an input every ii clocks and flags a sooner one on ``in_refused``."""
    w_in = sum(e["width"] for e in inputs)
    w_out = sum(e["width"] for e in outputs)
    if ii > 1 and not input_register:
        raise ValueError("a shared design (ii > 1) holds its input in the input register")
    return render("rtl/top.v.j2", top=top, description=description, inputs=inputs, outputs=outputs,
                  w_in=w_in, w_out=w_out, stages=stages, latency=latency, input_register=input_register,
                  ii=ii, ii_bits=max(1, (ii - 1).bit_length()), wait_name="ii_wait")


def write_rom(path: Path, rom: RomImage) -> Path:
    write_mem(path, rom.words.reshape(-1, 1), [rom.width])
    return path
