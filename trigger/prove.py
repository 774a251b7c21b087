"""``trigger prove``: each op module of a bundle's RTL equals its op's integer semantics for all inputs.

Why: ``trigger verify`` checks 10^5 random vectors of a 2^256 input space; a sharing or width bug that
shows on a rare input passes it. Stock equivalence checkers time out on reassociated adder trees
(DESIGN.md, "Equivalence proofs"), so the arithmetic is proved here by an exact word-level evaluation.

Per op, in its module (``rtl/<top>_<op>.v`` with the design's adder module; pipeline layer or N), between
cut points of the chain module (pipeline auto: ``prove_chain``), or between the signals of the tensors it
reads and writes in a graph model's one module (``prove_graph``: a skip branch's delay registers are wires
like any others):

1. Yosys flattens it (``proc; flatten; opt_clean; write_json``). Registers are removed by latency: every
   cell must read signals of one register depth and every output bit must be the op's latency (the chain's
   total) deep (checked), so output(t + L) = f(input(t)) with f the netlist whose registers are wires.
   In a chain, an op's inputs are the previous op's output signals (free variables over the exact output
   range proved for that op), and its logic must not read anything else.
2. Every netlist word is evaluated as an integer affine form over the op's input elements, valid modulo
   2^m (m: the bits that are known), with the exact range of the form over the input domain (linear
   over a box: the range is attained at its corners). Adders, subtractors, negation, constant shifts and
   products, slices, extensions and concatenations stay affine; a sign extension or a slice is exact only
   when the range proves it (an adder cut too narrow is therefore not exact). Anything else (muxes,
   comparisons, logic) is opaque.
3. The reference (``reference``) is printed from the op's fields the way ``emulate`` computes: per output
   an affine accumulator form (bias + sum of weight * input, in accumulator LSBs) and the cast after it
   (``trigger.fixed``: the emulator's own cast); an element-wise op is its own ``emulate`` on one element.
4. An output whose bits are an exact read of one affine word, where the reference cast is the identity on
   the form's range, is proved by comparing the forms. Otherwise the output's non-affine cone is cut at the
   affine words it reads; when they are all affine in one scalar (the reference's accumulator direction),
   the cone and the reference cast are both evaluated on every value of that scalar (exhaustive, up to
   ``ENUM_LIMIT`` values; outputs with the same cone and cast are enumerated once); beyond the limit the same
   question goes to z3 (``_solve``: the cone and ``z3_cast`` on one 64-bit word, with ``SAT_SECONDS`` per
   question). An op with no reference form is enumerated over its whole input space when it has at most
   ``WHOLE_BITS`` input bits, else put to z3 per output when its semantics are written for it (``WHOLE_Z3``);
   a tree ensemble goes part by part (``_check_trees``: each tree, then the sum over the leaf registers).
5. Where a step fails, candidate inputs (the corners of a non-exact word, the witnesses of a mismatching
   scalar, inputs where the forms differ) go through the netlist and ``op.emulate``; a mismatch is a
   counterexample, replayed through Verilator on the module itself (``confirm``), or, for an op inside a cut
   chain, through Icarus on the chain with the op's input signals forced (``_confirm_in_chain``).

Resource sharing (ii > 1): a shared module or chain has loops through registers (the accumulators, the phase
counters); it is unrolled over one event instead (``Unrolled``: each cycle a copy of the cells, registers the
previous cycle's values, the schedule's start/rst and everything they decide folded to constants), which
leaves a netlist without registers for the steps above; a digit-serial dense's input slices are variables of
their own (``_digit_split``). Streamed designs: the tail and each stage's kernel datapath (``_prove_stream``).

Reference Verilog (``prove_reference``, trigger/backends/rtl/reference.py): each op of a printed kind is also
written as plain combinational Verilog (``reports/reference/<op>.v``) and that module is proved equal to the same
reference form by the same steps; the bundle's module, proved equal to the form, then equals the reference
Verilog for all inputs.

Results per op: ``proved`` / ``counterexample`` / ``not proved`` (with the reason), the method, time and
peak memory. They are cached by a hash of the module's sources, the op and this file
(``$TRIGGER_CACHE/prove``). What a proof rests on: Yosys' reading of the Verilog, the reference's
faithfulness to ``emulate`` (tested on every supported op kind), the balanced-register check, this file, and
z3 for the solver steps (``z3_cast``, ``WHOLE_Z3`` and the tree selection are tested against the emulator).
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from trigger.errors import ConfigError

ENUM_LIMIT = 1 << 25  # values of one scalar enumerated per cone class
WHOLE_BITS = 20  # an op without a reference form is enumerated when its inputs have at most this many bits
CHUNK = 1 << 21
SAT_SECONDS = 60  # z3's time limit per question (one output's cone and cast over its accumulator's range)
ELEMENTWISE = {"relu", "linear", "leaky_relu", "thresholded_relu", "hard_tanh", "elu", "sigmoid", "tanh",
               "softsign", "prelu", "element_quantize", "binary_threshold", "sign_threshold", "selu", "scale"}
OPAQUE_KINDS = {"$mux", "$pmux", "$eq", "$ne", "$eqx", "$nex", "$lt", "$le", "$gt", "$ge", "$and", "$or", "$xor",
                "$xnor", "$not", "$reduce_and", "$reduce_or", "$reduce_xor", "$reduce_xnor", "$reduce_bool",
                "$logic_not", "$logic_and", "$logic_or", "$add", "$sub", "$neg", "$pos", "$mul", "$shl", "$sshl",
                "$shr", "$sshr"}


class ProofError(Exception):
    """The netlist cannot be handled (unknown cell, unbalanced registers): the op is not proved."""


# ---------------------------------------------------------------------------------------------- affine forms
@dataclass(frozen=True)
class Aff:
    """``const + sum(coef[v] * x_v)`` over input elements x_v (integers)."""

    const: int
    coef: tuple  # sorted ((var, coef), ...) with coef != 0

    @staticmethod
    def make(const: int, coef: dict) -> "Aff":
        return Aff(int(const), tuple(sorted((v, int(c)) for v, c in coef.items() if c)))

    def __add__(self, other: "Aff") -> "Aff":
        d = dict(self.coef)
        for v, c in other.coef:
            d[v] = d.get(v, 0) + c
        return Aff.make(self.const + other.const, d)

    def scale(self, k: int) -> "Aff":
        return Aff.make(self.const * k, {v: c * k for v, c in self.coef})

    def range(self, dom) -> tuple[int, int]:
        lo = hi = self.const
        for v, c in self.coef:
            a, b = c * dom[v][0], c * dom[v][1]
            lo, hi = lo + min(a, b), hi + max(a, b)
        return lo, hi

    def divisible(self, k: int) -> bool:
        return self.const % (1 << k) == 0 and all(c % (1 << k) == 0 for _, c in self.coef)

    def shr(self, k: int) -> "Aff":
        return Aff.make(self.const >> k, {v: c >> k for v, c in self.coef})

    def eval(self, x: np.ndarray) -> np.ndarray:
        out = np.full(x.shape[0], self.const, dtype=np.int64)
        for v, c in self.coef:
            out += np.int64(c) * x[:, v]
        return out

    def text(self, names=None) -> str:
        terms = [f"{c}*{names[v] if names else f'x{v}'}" for v, c in self.coef]
        return " + ".join(terms + [str(self.const)]) if terms else str(self.const)


def _signed_offset(lo: int, hi: int, n: int) -> int | None:
    """The c with lo - c 2^n and hi - c 2^n both inside signed n bits (what n bits read signed hold), or None."""
    c = (lo + (1 << (n - 1))) >> n
    return c if (hi + (1 << (n - 1))) >> n == c else None


def _cpu() -> float:
    """CPU seconds of this process and of the children it waited for (Yosys)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def fits_signed(lo: int, hi: int, n: int) -> bool:
    return -(1 << (n - 1)) <= lo and hi < (1 << (n - 1))


def fits_unsigned(lo: int, hi: int, n: int) -> bool:
    return 0 <= lo and hi < (1 << n)


@dataclass
class Word:
    """A netlist word: its low ``m`` bits are those of the integer ``aff`` (two's complement)."""

    aff: Aff
    m: int
    lo: int
    hi: int


# ---------------------------------------------------------------------------------------------- the netlist
def yosys_json(sources: list[Path], module: str, work: Path, keep: bool = False) -> dict:
    """The flattened netlist of ``module`` (Yosys JSON): processes, hierarchy and unused wires removed (with
    ``keep``, every wire and what drives it stays: an op's output that nothing reads has signals to prove)."""
    from trigger.toolchain import find_tool

    yosys = find_tool("yosys")
    if yosys is None:
        raise ConfigError("yosys not found: run `make setup` (scripts/install_system_tools.sh installs it)")
    out = work / f"{module}.json"
    files = " ".join(str(s) for s in sources)
    script = (f"read_verilog -sv {files}; hierarchy -top {module}; proc; flatten; "
              f"{'setattr -set keep 1 w:*; ' if keep else ''}opt_clean; write_json {out}")
    run = subprocess.run([yosys, "-q", "-p", script], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise ProofError(f"yosys could not read {module}: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
    return json.loads(out.read_text())["modules"][module]


class Netlist:
    """A flattened Yosys netlist, read as affine words (``sym``) and evaluated on numbers (``Concrete``)."""

    def __init__(self, mod: dict, inputs: list[list], dom: list[tuple[int, int]], driver=None):
        """``inputs``: per input element, its netlist bits (two's complement, lowest first), the cut point
        where the op's inputs enter (in_data of an op module, the previous op's signals in a chain)."""
        self.mod, self.cells = mod, mod["cells"]
        if driver is None:
            driver = {}
            for name, cell in self.cells.items():
                for port, direction in cell["port_directions"].items():
                    if direction == "output":
                        for i, b in enumerate(cell["connections"][port]):
                            driver[b] = (name, port, i)
        self.driver = driver
        ports = mod["ports"]
        self.in_bits = ports["in_data"]["bits"]
        self.in_data = set(self.in_bits)
        self.out_bits = ports["out_data"]["bits"]
        self.dom = dom
        self.words: list[Word] = []
        self.input_bit = {}
        for v, bits in enumerate(inputs):
            wid = self._word(Aff.make(0, {v: 1}), len(bits))
            for k, b in enumerate(bits):
                if isinstance(b, str):  # a constant bit only where every value of the domain has it
                    lo, hi = dom[v]
                    if not ((lo >> k) == (hi >> k) and str((lo >> k) & 1) == b):
                        raise ProofError(f"input element {v} has a constant bit {k}: not a free input")
                    continue
                self.input_bit.setdefault(b, ("w", wid, k))
        self._sym, self._cell_sym, self._depth, self._active = {}, {}, {}, set()
        self._cell_depth = {}  # combinational cell -> the registers between in_data and its inputs
        self.adders: list[tuple[int, int]] = []  # (result bits, word) of every adder read as an affine word
        unknown = {c["type"] for c in self.cells.values()} - OPAQUE_KINDS - {"$dff", "$memrd", "$meminit_v2"}
        if unknown:
            raise ProofError(f"cells this prover does not read: {', '.join(sorted(unknown))}")
        self.memories = _memories(self.cells)
        self.alias = {}  # input element -> the element it equals (a tensor an op reads twice, as x . x)
        self.scale = {}  # input element -> k: the variable is the element >> k (its k low bits are constant 0)
        self.legal = None  # variables other than the op's inputs (digits): rows -> which rows are inputs

    def _word(self, aff: Aff, m: int) -> int:
        lo, hi = aff.range(self.dom)
        self.words.append(Word(aff, m, lo, hi))
        return len(self.words) - 1

    # ------------------------------------------------------------ registers
    def depth(self, bit) -> int | None:
        """Registers between in_data and ``bit`` (None: a constant); ProofError where paths disagree."""
        if isinstance(bit, str) or bit in self.in_data:
            return None if isinstance(bit, str) else 0
        if bit in self._depth:
            return self._depth[bit]
        if bit not in self.driver:
            raise ProofError(f"netlist bit {bit} has no driver")
        name, _, i = self.driver[bit]
        cell = self.cells[name]
        if bit in self._active:
            raise ProofError(f"a loop through cell {name} (resource sharing or state): not a pipeline")
        self._active.add(bit)
        if cell["type"] == "$dff":
            d = self.depth(cell["connections"]["D"][i])
            result = None if d is None else d + 1
        elif name in self._cell_depth:  # every output bit of a combinational cell has its inputs' depth
            result = self._cell_depth[name]
        else:
            seen = set()
            for port, direction in cell["port_directions"].items():
                if direction == "input":
                    seen |= {self.depth(b) for b in cell["connections"][port]}
            seen.discard(None)
            if len(seen) > 1:
                raise ProofError(f"cell {name} reads signals {sorted(seen)} registers deep: not a balanced pipeline")
            result = seen.pop() if seen else None
            self._cell_depth[name] = result
        self._active.discard(bit)
        self._depth[bit] = result
        return result

    # ------------------------------------------------------------ symbolic
    def sym(self, bit):
        """0/1, ('w', word, k): bit k of an affine word, or ('o', cell, k): an opaque bit."""
        if isinstance(bit, str):
            return 1 if bit == "1" else 0 if bit == "0" else ("x",)
        if bit in self.input_bit:
            return self.input_bit[bit]
        if bit in self._sym:
            return self._sym[bit]
        if bit not in self.driver:
            why = self.mod.get("unknown", {}).get(bit)  # an unrolled schedule: a value outside the event
            raise ProofError(f"the op's logic reads {why}" if why else "the op's logic reads a signal outside its inputs")
        name, port, i = self.driver[bit]
        cell = self.cells[name]
        if cell["type"] == "$dff":
            value = self.sym(cell["connections"]["D"][i])
        else:
            value = self._cell(name)[i]
        self._sym[bit] = value
        return value

    def read(self, bits: list, signed: bool):
        """The integer a bit vector holds (signed or not) as (Aff, m): exact when m is None, else known
        modulo 2^m; None when a bit is opaque or a slice is not affine."""
        vals = [self.sym(b) for b in bits]
        n = len(vals)
        total, mod, p = Aff.make(0, {}), None, 0
        while p < n:
            v = vals[p]
            if isinstance(v, int):
                weight = -(1 << p) if (signed and p == n - 1) else (1 << p)
                total = total + Aff.make(v * weight, {})
                p += 1
                continue
            if v[0] != "w":
                return None
            wid, k0 = v[1], v[2]
            word = self.words[wid]
            real = virt = k0
            q = p + 1
            while q < n:
                u = vals[q]
                if not (isinstance(u, tuple) and u[0] == "w" and u[1] == wid):
                    break
                if u[2] == real + 1 and virt == real and real + 1 < word.m:
                    real += 1
                    virt += 1
                elif u[2] == real and _signed_offset(word.lo >> k0, word.hi >> k0, real - k0 + 1) is not None \
                        and (k0 == 0 or word.aff.divisible(k0)):
                    virt += 1  # a sign extension of the real bits
                else:
                    break
                q += 1
            aff, lo, hi = word.aff, word.lo, word.hi
            if k0 > 0:  # a slice from bit k0: affine only when the form is a multiple of 2^k0
                if not aff.divisible(k0):
                    return None
                aff, lo, hi = aff.shr(k0), lo >> k0, hi >> k0
            length = virt - k0 + 1
            if virt > real:  # sign-extended: the real bits, read signed, hold the integer minus c * 2^base
                base = real - k0 + 1
                c = _signed_offset(lo, hi, base)
                aff, lo, hi = aff + Aff.make(-c << base, {}), lo - (c << base), hi - (c << base)
            # the run holds the integer minus c * 2^length, for one c over the whole range (else only modulo)
            half = (1 << (length - 1)) if (signed and q == n) else 0
            c = (lo + half) >> length
            if (hi + half) >> length == c:
                aff = aff + Aff.make(-c << length, {})
            elif mod is None or p + length < mod:
                mod = p + length
            total = total + aff.scale(1 << p)
            p = q
        return total, mod

    @staticmethod
    def _port(cell, port: str, width: int, signed: bool) -> list:
        bits = list(cell["connections"][port])
        if len(bits) < width:
            bits += [bits[-1] if (signed and bits) else "0"] * (width - len(bits))
        return bits[:width]

    def _const(self, bits: list, signed: bool) -> int | None:
        vals = [self.sym(b) for b in bits]
        if not all(isinstance(v, int) for v in vals):
            return None
        value = sum(v << k for k, v in enumerate(vals))
        if signed and vals and vals[-1]:
            value -= 1 << len(vals)
        return value

    def _cell(self, name: str) -> list:
        """The output bits of a cell: affine where the cell is linear in affine operands, else opaque."""
        if name in self._cell_sym:
            return self._cell_sym[name]
        cell = self.cells[name]
        kind, par = cell["type"], cell.get("parameters", {})
        y = len(cell["connections"]["DATA" if kind == "$memrd" else "Y"])
        opaque = [("o", name, k) for k in range(y)]
        signed = bool(int(str(par.get("A_SIGNED", "0")), 2)) and (
            "B_SIGNED" not in par or bool(int(str(par.get("B_SIGNED", "0")), 2)))
        result = opaque
        if kind in ("$add", "$sub", "$neg", "$pos", "$mul", "$shl", "$sshl"):
            a = self.read(self._port(cell, "A", y, signed), signed)
            b = self.read(self._port(cell, "B", y, signed), signed) if "B" in cell["connections"] else None
            aff = m = None
            if kind in ("$add", "$sub") and a and b:
                aff = a[0] + (b[0] if kind == "$add" else b[0].scale(-1))
                m = min(x for x in (y, a[1], b[1]) if x is not None)
            elif kind in ("$neg", "$pos") and a:
                aff, m = (a[0] if kind == "$pos" else a[0].scale(-1)), min(y, a[1] or y)
            elif kind == "$mul":
                ka = self._const(self._port(cell, "A", y, signed), signed)
                kb = self._const(self._port(cell, "B", y, signed), signed)
                if kb is not None and a:
                    aff, m = a[0].scale(kb), min(y, a[1] or y)
                elif ka is not None and b:
                    aff, m = b[0].scale(ka), min(y, b[1] or y)
            elif kind in ("$shl", "$sshl"):
                s = self._const(list(cell["connections"]["B"]), False)
                if s is not None and a:
                    aff, m = a[0].scale(1 << s), min(y, (a[1] or y) + s)
            if aff is not None:
                wid = self._word(aff, m)
                if kind in ("$add", "$sub"):
                    self.adders.append((y, wid, name))
                result = [("w", wid, k) if k < m else ("o", name, k) for k in range(y)]
        elif kind in ("$shr", "$sshr"):
            s = self._const(list(cell["connections"]["B"]), False)
            if signed and kind == "$shr" and y > len(cell["connections"]["A"]):
                raise ProofError(f"cell {name}: a logical shift of a signed operand widened first (not read here)")
            if s is not None:
                abits = list(cell["connections"]["A"])
                fill = abits[-1] if (kind == "$sshr" and signed) else "0"
                result = [self.sym(abits[k + s]) if k + s < len(abits) else self.sym(fill) for k in range(y)]
        self._cell_sym[name] = result
        return result

    # ------------------------------------------------------------ cones
    def cone(self, bits: list):
        """The opaque cells feeding ``bits`` and the affine words they (or the bits) read directly; and a
        structural signature (cells renamed in visiting order) for sharing enumerations."""
        cells, words, sig, seen, index = [], [], [], set(), {}

        def visit(b):
            v = self.sym(b)
            if isinstance(v, int) or v[0] == "x":
                return repr(v)
            if v[0] == "w":
                if v[1] not in index:
                    index[v[1]] = f"w{len(words)}"
                    words.append(v[1])
                return f"{index[v[1]]}.{v[2]}"
            name = v[1]
            if name not in seen:
                seen.add(name)
                cell = self.cells[name]
                ins = {p: [visit(x) for x in cell["connections"][p]]
                       for p, d in sorted(cell["port_directions"].items()) if d == "input"}
                index[name] = f"c{len(cells)}"
                cells.append(name)
                sig.append((index[name], cell["type"], sorted(cell.get("parameters", {}).items()), ins))
            return f"{index[name]}.{v[2]}"

        outs = [visit(b) for b in bits]
        return cells, words, repr((sig, outs))


def _memories(cells: dict) -> dict:
    """The ROMs of a netlist (``$readmemh`` tables: $meminit_v2 cells), as integer arrays by memory name; a
    read port with a clock is refused (the registers are counted by $dff cells only)."""
    words: dict = {}
    for name, cell in cells.items():
        par = cell.get("parameters", {})
        if cell["type"] == "$memrd" and int(str(par.get("CLK_ENABLE", "0")), 2):
            raise ProofError(f"cell {name}: a clocked memory read port (not read here)")
        if cell["type"] != "$meminit_v2":
            continue
        width, count = int(str(par["WIDTH"]), 2), int(str(par["WORDS"]), 2)
        addr_bits = cell["connections"]["ADDR"]
        if not all(b in ("0", "1") for b in addr_bits):
            raise ProofError(f"cell {name}: a memory initialised at a variable address")
        start = sum(int(b) << k for k, b in enumerate(addr_bits))
        data = cell["connections"]["DATA"]  # lowest bit first
        if any(b not in ("0", "1") for b in data) or len(data) != width * count:
            raise ProofError(f"cell {name}: a memory word with undefined bits")
        mem = words.setdefault(str(par["MEMID"]), {})
        for i in range(count):
            mem[start + i] = sum(int(b) << k for k, b in enumerate(data[i * width:(i + 1) * width]))
    out = {}
    for memid, mem in words.items():
        out[memid] = np.zeros(max(mem) + 1, dtype=np.int64)
        out[memid][list(mem)] = list(mem.values())
    return out


class Concrete:
    """The netlist evaluated on numbers: affine words from ``word_value(wid)``, opaque cells computed."""

    def __init__(self, net: Netlist, word_value):
        self.net, self.word_value = net, word_value
        self._cells, self._words = {}, {}

    def word(self, wid: int) -> np.ndarray:
        if wid not in self._words:
            self._words[wid] = self.word_value(wid)
        return self._words[wid]

    def bit(self, b) -> np.ndarray | int:
        v = self.net.sym(b)
        if isinstance(v, int):
            return v
        if v[0] == "w":
            return (self.word(v[1]) >> v[2]) & 1
        if v[0] == "x":
            raise ProofError("the netlist reads an undefined bit")
        return (self.cell(v[1]) >> v[2]) & 1

    def _source(self, v):
        return self.word(v[1]) if v[0] == "w" else self.cell(v[1])

    def bits(self, bits: list, signed: bool) -> np.ndarray:
        """A bit vector as an integer array (signed or not); runs of consecutive bits of one word or cell
        are taken in one shift and mask."""
        vals = [self.net.sym(b) for b in bits]
        n, p, value = len(vals), 0, np.int64(0)
        while p < n:
            v = vals[p]
            if isinstance(v, int) or v[0] not in ("w", "o"):
                value = value + (np.int64(v) << np.int64(p)) if isinstance(v, int) else value + (self.bit(bits[p]) << p)
                p += 1
                continue
            q = p + 1
            while q < n and isinstance(vals[q], tuple) and vals[q][:2] == v[:2] and vals[q][2] == v[2] + q - p:
                q += 1
            piece = (self._source(v) >> np.int64(v[2])) & np.int64((1 << (q - p)) - 1)
            value = value + (piece << np.int64(p))
            p = q
        if signed and n:
            value = np.where((value >> np.int64(n - 1)) & 1, value - (np.int64(1) << np.int64(n)), value)
        return np.asarray(value, dtype=np.int64)

    def cell(self, name: str) -> np.ndarray:
        if name in self._cells:
            return self._cells[name]
        cell = self.net.cells[name]
        kind, par = cell["type"], cell.get("parameters", {})
        y = len(cell["connections"]["DATA" if kind == "$memrd" else "Y"])
        if y > 62:
            raise ProofError(f"cell {name} is {y} bits wide: beyond the numeric evaluator")
        if kind == "$memrd":  # an asynchronous read of a ROM (a registered one reads it through a $dff)
            words = self.net.memories.get(str(par["MEMID"]))
            addr = self.bits(list(cell["connections"]["ADDR"]), False)
            if words is None or np.any(addr >= len(words)):
                raise ProofError(f"cell {name}: a read outside the memory's initialised words")
            r = words[addr]
        else:
            r = cell_word(self, cell, y, flag=lambda c: np.asarray(c).astype(np.int64),
                          select=lambda s, b, a: np.where(np.asarray(s) != 0, b, a), parity=_parity)
        r = np.asarray(r, dtype=np.int64) & np.int64((1 << y) - 1)
        self._cells[name] = r
        return r


def _parity(a, n: int):
    r = np.zeros_like(a)
    for k in range(n):
        r ^= (a >> k) & 1
    return r


def cell_word(reader, cell: dict, y: int, flag, select, parity):
    """A cell's output word as Yosys defines the cell, over numbers (``Concrete``) or z3 terms (``Symbolic``):
    ``reader.bits``/``reader.bit`` read operands, ``flag(cond)`` is 1 or 0, ``select(s, b, a)`` is b where bit s
    is 1, else a, ``parity(a, n)`` the xor of a's n low bits. Values are integers (64-bit terms), not yet cut
    to the cell's y bits."""
    kind, par = cell["type"], cell.get("parameters", {})
    a_signed = bool(int(str(par.get("A_SIGNED", "0")), 2))
    b_signed = bool(int(str(par.get("B_SIGNED", "0")), 2))
    both = a_signed and ("B_SIGNED" not in par or b_signed)
    conn = cell["connections"]

    def port(p, width=None, signed=None):
        bits = list(conn[p])
        s = both if signed is None else signed
        if width is not None:
            bits = Netlist._port(cell, p, width, s)
        return reader.bits(bits, s)

    if kind in ("$add", "$sub", "$mul", "$and", "$or", "$xor", "$xnor"):
        a, b = port("A", y), port("B", y)
        return {"$add": lambda: a + b, "$sub": lambda: a - b, "$mul": lambda: a * b, "$and": lambda: a & b,
                "$or": lambda: a | b, "$xor": lambda: a ^ b, "$xnor": lambda: ~(a ^ b)}[kind]()
    if kind in ("$neg", "$pos", "$not"):
        a = port("A", y)
        return -a if kind == "$neg" else a if kind == "$pos" else ~a
    if kind in ("$eq", "$ne", "$eqx", "$nex", "$lt", "$le", "$gt", "$ge"):
        w = max(len(conn["A"]), len(conn["B"]))
        a, b = port("A", w), port("B", w)  # values in 64 bits: a signed comparison is the integers'
        return flag({"$eq": a == b, "$eqx": a == b, "$ne": a != b, "$nex": a != b, "$lt": a < b, "$le": a <= b,
                     "$gt": a > b, "$ge": a >= b}[kind])
    if kind in ("$reduce_and", "$reduce_or", "$reduce_xor", "$reduce_xnor", "$reduce_bool", "$logic_not"):
        n = len(conn["A"])
        a = reader.bits(list(conn["A"]), False)
        if kind == "$reduce_and":
            return flag(a == (1 << n) - 1)
        if kind in ("$reduce_or", "$reduce_bool"):
            return flag(a != 0)
        if kind == "$logic_not":
            return flag(a == 0)
        odd = parity(a, n)
        return odd if kind == "$reduce_xor" else 1 - odd
    if kind in ("$logic_and", "$logic_or"):
        a, b = flag(port("A", signed=False) != 0), flag(port("B", signed=False) != 0)
        return a & b if kind == "$logic_and" else a | b
    if kind == "$mux":
        return select(reader.bit(conn["S"][0]), port("B", y, False), port("A", y, False))
    if kind == "$pmux":
        r = port("A", y, False)
        for i in reversed(range(len(conn["S"]))):  # the first set select wins
            r = select(reader.bit(conn["S"][i]), reader.bits(conn["B"][i * y:(i + 1) * y], False), r)
        return r
    if kind in ("$shl", "$sshl", "$shr", "$sshr"):
        s = port("B", signed=False)
        if kind in ("$shl", "$sshl"):
            return port("A", y) << s
        return port("A", signed=a_signed and kind == "$sshr") >> s
    raise ProofError(f"no evaluation of {kind}")


# ---------------------------------------------------------------------------------------------- schedules (II > 1)
@dataclass(frozen=True)
class Schedule:
    """What the protocol says around one event of a shared design (trigger/backends/rtl/serial.py): ``start`` is
    high in cycle 0 and low in the ii - 1 cycles before and after it (events are ii clocks apart); ``in_data``
    holds the event's input in cycles 0 .. held - 1; out_data must hold the result in cycles latency .. latency
    + need - 1 (the next op reads it that long). Everything else (earlier and later inputs, the next event's
    start, register contents before the event) is unknown, and a result that reads it is not proved."""

    ii: int
    held: int
    need: int = 1


class _Constants:
    """One cell whose inputs are all constant, as ``Concrete`` reads a netlist (folding a schedule's control)."""

    memories: dict = {}

    def __init__(self, cell: dict):
        self.cells = {"c": cell}

    def sym(self, b):
        return 1 if b == "1" else 0


class Unrolled:
    """Time-frame expansion of a flattened netlist over one event's cycles: bit b in cycle t is a new netlist
    bit (a copy of its cell in frame t), a register in cycle t is its D input in cycle t - 1, and the control
    the schedule fixes (start, rst, the phase counters and the multiplexers they drive) folds to constants,
    so the shared arithmetic reads the input bits themselves and is affine again. Copies are made lazily,
    from the bits asked for; the result (``module``) has no registers, and is read by ``Netlist`` as an op
    module's combinational equivalent."""

    def __init__(self, mod: dict, schedule: Schedule | None, drive: dict | None = None, first: int | None = None):
        """``drive`` (instead of a schedule): port name -> f(bit, cycle) giving "0"/"1", a key (the same key, the
        same free bit: an input variable) or None (unknown); ``first``: the earliest cycle unrolled."""
        self.mod, self.cells, self.schedule, self.drive = mod, mod["cells"], schedule, drive or {}
        self.variables: dict = {}
        self.port_bit = {b: (name, k) for name, port in mod["ports"].items() for k, b in enumerate(port["bits"])
                         if name in self.drive}
        ports = mod["ports"]
        self.in_bits = ports["in_data"]["bits"]
        self.in_data = set(self.in_bits)
        self.start = ports["start"]["bits"][0] if "start" in ports else None
        self.rst = ports["rst"]["bits"][0] if "rst" in ports else None
        clk = ports["clk"]["bits"][0] if "clk" in ports else None
        self.first = first if first is not None else -(schedule.ii - 1)  # strobes of the ii - 1 cycles before known
        self.driver = {}
        for name, cell in self.cells.items():
            kind = cell["type"]
            if kind not in OPAQUE_KINDS | {"$dff", "$memrd", "$meminit_v2", "$shiftx"}:
                raise ProofError(f"cells this prover does not read: {kind} ({name})")
            if kind == "$dff" and (cell["connections"]["CLK"] != [clk]
                                   or not int(str(cell["parameters"].get("CLK_POLARITY", "1")), 2)):
                raise ProofError(f"register {name} is not clocked on the rising edge of clk")
            for port, direction in cell["port_directions"].items():
                if direction == "output":
                    for i, b in enumerate(cell["connections"][port]):
                        self.driver[b] = (name, i)
        self.next_id = 1 + max([b for c in self.cells.values() for bits in c["connections"].values()
                                for b in bits if isinstance(b, int)] + [b for p in ports.values() for b in p["bits"]
                                                                        if isinstance(b, int)])
        self.values: dict = {}  # (bit, cycle) -> "0"/"1"/"x" or a bit of the unrolled netlist
        self.copies: dict = {}  # (cell, cycle) -> its output values
        self.new_cells: dict = {}
        self.unknown: dict = {}  # unrolled bit -> what it stands for (read: not proved)

    def _fresh(self, why: str | None = None) -> int:
        self.next_id += 1
        if why is not None:
            self.unknown[self.next_id] = why
        return self.next_id

    def bit(self, b, t: int):
        """Bit ``b`` of the netlist in cycle ``t`` of the event."""
        if isinstance(b, str):
            return b
        key = (b, t)
        if key in self.values:
            return self.values[key]
        s = self.schedule
        if b in self.port_bit:
            name, k = self.port_bit[b]
            got = self.drive[name](k, t)
            if got is None:
                value = self._fresh(f"{name} in cycle {t}")
            elif got in ("0", "1"):
                value = got
            else:
                value = self.variables.setdefault(got, self._fresh())
        elif b in self.in_data:
            value = b if 0 <= t < s.held else self._fresh(f"in_data in cycle {t} (held in cycles 0..{s.held - 1})")
        elif b == self.start:
            value = "1" if t == 0 else "0" if abs(t) < s.ii else self._fresh(f"start in cycle {t} (another event)")
        elif b == self.rst:
            value = "0"
        elif b not in self.driver:
            raise ProofError(f"netlist bit {b} has no driver")
        else:
            name, i = self.driver[b]
            cell = self.cells[name]
            if cell["type"] == "$dff":
                d = cell["connections"]["D"][i]
                value = self.bit(d, t - 1) if t > self.first else self._fresh(
                    f"register {name.split('$')[-1] if name.startswith('$') else name} before the event")
            else:
                value = self._cell(name, t)[i]
        self.values[key] = value
        return value

    def _cell(self, name: str, t: int) -> list:
        key = (name, t)
        if key in self.copies:
            return self.copies[key]
        cell = self.cells[name]
        kind, conn = cell["type"], cell["connections"]
        out = None
        if kind == "$mux":  # a select the schedule fixes picks its input; the other is never read
            s = self.bit(conn["S"][0], t)
            if s in ("0", "1"):
                out = [self.bit(x, t) for x in conn["B" if s == "1" else "A"]]
        elif kind == "$pmux":
            ss = [self.bit(x, t) for x in conn["S"]]
            if all(v in ("0", "1") for v in ss):
                y = len(conn["Y"])
                first = ss.index("1") if "1" in ss else None  # the first set select wins
                out = [self.bit(x, t) for x in (conn["A"] if first is None else conn["B"][first * y:(first + 1) * y])]
        if out is None:
            mapped = {p: ([self.bit(x, t) for x in bits] if cell["port_directions"][p] == "input" else None)
                      for p, bits in conn.items()}
            ins = [v for p, v in mapped.items() if v is not None]
            if kind == "$mux" and mapped["A"] == mapped["B"]:
                out = mapped["A"]
            elif kind in ("$and", "$or", "$logic_and", "$logic_or") and _absorbed(kind, mapped, len(conn["Y"])):
                out = _absorbed(kind, mapped, len(conn["Y"]))  # a known 0 (and) or 1 (or) decides it
            elif kind == "$shiftx" and all(v in ("0", "1") for bits in ins for v in bits):  # a constant bit select
                a, sel = mapped["A"], mapped["B"]
                at = int("".join(reversed(sel)), 2)
                if int(str(cell["parameters"].get("B_SIGNED", "0")), 2) and sel[-1] == "1":
                    at -= 1 << len(sel)
                out = [a[at + k] if 0 <= at + k < len(a) else "x" for k in range(len(conn["Y"]))]
            elif kind not in ("$memrd", "$shiftx") and all(v in ("0", "1") for bits in ins for v in bits):
                folded = dict(cell, connections={p: (v if v is not None else conn[p]) for p, v in mapped.items()})
                y = conn["Y"]
                value = int(Concrete(_Constants(folded), None).cell("c"))
                out = [str((value >> k) & 1) for k in range(len(y))]
            else:
                for p, v in mapped.items():
                    if v is None:
                        mapped[p] = [self._fresh() for _ in conn[p]]
                self.new_cells[f"{name}@{t}"] = dict(cell, connections=mapped)
                out = mapped["DATA" if kind == "$memrd" else "Y"]
        self.copies[key] = out
        return out

    def module(self, out_bits: list) -> dict:
        """The unrolled netlist as a Yosys module: in_data (the event's input), ``out_bits`` as out_data."""
        cells = dict(self.new_cells)
        cells.update({n: c for n, c in self.cells.items() if c["type"] == "$meminit_v2"})
        return {"ports": {"in_data": {"direction": "input", "bits": self.in_bits},
                          "out_data": {"direction": "output", "bits": out_bits}},
                "cells": cells, "netnames": {}, "unknown": dict(self.unknown)}


def _absorbed(kind: str, mapped: dict, y: int) -> list | None:
    """The output of an and/or whose known operand decides it whatever the other (a valid flag that is low gates
    a counter's unknown value), else None."""
    a, b = mapped["A"], mapped["B"]
    if kind in ("$logic_and", "$logic_or"):
        zero = [all(v == "0" for v in x) for x in (a, b)]
        one = [any(v == "1" for v in x) for x in (a, b)]
        if kind == "$logic_and" and any(zero):
            return ["0"] * y
        if kind == "$logic_or" and any(one):
            return ["1"] + ["0"] * (y - 1)
        return None
    if not len(a) == len(b) == y:
        return None
    stop = "0" if kind == "$and" else "1"
    out = []
    for u, v in zip(a, b):
        if stop in (u, v):
            out.append(stop)
        elif u in ("0", "1") and v in ("0", "1"):
            out.append(str(int(u) & int(v)) if kind == "$and" else str(int(u) | int(v)))
        else:
            return None
    return out


def unroll(mod: dict, latency: int, schedule: Schedule) -> dict:
    """An op module over one event (``Unrolled``): out_data in cycle ``latency``, checked to stay the same
    signal for the ``schedule.need`` cycles the next op reads it."""
    frames = Unrolled(mod, schedule)
    out = [frames.bit(b, latency) for b in mod["ports"]["out_data"]["bits"]]
    for k in range(1, schedule.need):
        if [frames.bit(b, latency + k) for b in mod["ports"]["out_data"]["bits"]] != out:
            raise ProofError(f"out_data changes in cycle {latency + k} of the event; the next op reads it in "
                             f"cycles {latency}..{latency + schedule.need - 1}")
    return frames.module(out)


# ---------------------------------------------------------------------------------------------- SAT per element
def z3_round_shift(a, right: int, rounding: str):
    """``trigger.fixed._round_shift`` on a 64-bit z3 vector holding a signed integer: a * 2^-right rounded."""
    import z3

    if right == 0:
        return a
    if right > 62:
        raise ProofError("a cast dropping more than 62 bits (not written for the solver)")
    floor = a >> right  # arithmetic
    rem = a & ((1 << right) - 1)
    half = 1 << (right - 1)
    above, tie, negative, inexact = z3.UGT(rem, half), rem == half, a < 0, rem != 0
    up = {"TRN": z3.BoolVal(False), "TRN_ZERO": z3.And(negative, inexact), "RND": z3.Or(above, tie),
          "RND_ZERO": z3.Or(above, z3.And(tie, negative)), "RND_MIN_INF": above,
          "RND_INF": z3.Or(above, z3.And(tie, z3.Not(negative))),
          "RND_CONV": z3.Or(above, z3.And(tie, (floor & 1) == 1))}[rounding]
    return floor + z3.If(up, z3.BitVecVal(1, 64), z3.BitVecVal(0, 64))


def z3_cast(fmt, a, source):
    """``fmt.cast(a, source)`` (trigger.fixed: rounding, then overflow) on a 64-bit z3 vector; the same steps as
    ``FixedFormat._requantize``, written for the solver (tests/test_prove.py compares the two on every mode)."""
    import z3

    shift = fmt.fractional - source.fractional
    right, left = max(-shift, 0), min(max(shift, 0), 63)
    r = z3_round_shift(a, right, fmt.rounding)
    hi = int(fmt.max_raw)
    lo = -hi if (fmt.overflow == "SAT_SYM" and fmt.signed) else int(fmt.min_raw)
    hi_s, lo_s = hi >> left, -((-lo) >> left)
    over = z3.Or(r > hi_s, r < lo_s)
    width = fmt.width
    keep = max(width - left, 0)
    wrapped = (r & ((1 << keep) - 1)) << min(left, width)
    if fmt.signed:
        wrapped = z3.If(wrapped > hi, wrapped - (1 << width), wrapped)
    if fmt.overflow == "WRAP":
        return wrapped
    if fmt.overflow == "SAT_ZERO":
        return z3.If(over, z3.BitVecVal(0, 64), wrapped)
    return z3.If(over, z3.If(r > 0, z3.BitVecVal(hi, 64), z3.BitVecVal(lo, 64)), wrapped)


class Symbolic:
    """The netlist as z3 bit-vector terms (64 bits holding each value, as ``Concrete`` holds numbers): affine
    words from ``word_value(wid)``, opaque cells translated cell by cell."""

    def __init__(self, net: Netlist, word_value):
        self.net, self.word_value = net, word_value
        self._cells, self._words = {}, {}

    def word(self, wid: int):
        if wid not in self._words:
            self._words[wid] = self.word_value(wid)
        return self._words[wid]

    def bit(self, b):
        """One netlist bit as a 1-bit vector."""
        import z3

        v = self.net.sym(b)
        if isinstance(v, int):
            return z3.BitVecVal(v, 1)
        if v[0] == "x":
            raise ProofError("the netlist reads an undefined bit")
        source = self.word(v[1]) if v[0] == "w" else self.cell(v[1])
        return z3.Extract(min(v[2], 63), min(v[2], 63), source)

    def bits(self, bits: list, signed: bool):
        import z3

        if not bits:
            return z3.BitVecVal(0, 64)
        parts = [self.bit(b) for b in reversed(bits)]
        value = parts[0] if len(parts) == 1 else z3.Concat(*parts)
        if len(bits) > 64:
            raise ProofError(f"a {len(bits)}-bit vector: beyond the 64-bit terms")
        return (z3.SignExt if signed else z3.ZeroExt)(64 - len(bits), value) if len(bits) < 64 else value

    def cell(self, name: str):
        import z3

        if name in self._cells:
            return self._cells[name]
        cell = self.net.cells[name]
        if cell["type"] not in OPAQUE_KINDS:
            raise ProofError(f"no solver translation of {cell['type']}")
        y = len(cell["connections"]["Y"])
        if y > 62:
            raise ProofError(f"cell {name} is {y} bits wide: beyond the 64-bit terms")
        one, zero = z3.BitVecVal(1, 64), z3.BitVecVal(0, 64)

        def parity(a, n):
            r = z3.ZeroExt(63, z3.Extract(0, 0, a))
            for k in range(1, n):
                r = r ^ z3.ZeroExt(63, z3.Extract(k, k, a))
            return r

        r = cell_word(self, cell, y, flag=lambda c: z3.If(c, one, zero),
                      select=lambda s, b, a: z3.If(s == 1, b, a), parity=parity)
        r = r & ((1 << y) - 1)
        self._cells[name] = r
        return r


def _solve(net, bits, signed, parts, post_sym, scale, const, glo, ghi, seconds: float) -> tuple[str, int | None]:
    """The non-linear cone of one output against the reference cast on every value g in [glo, ghi] of its
    accumulator direction, by z3: the words the cone reads are s * g + c (the affine part, proved exactly
    above). Returns ("proved", None), ("counterexample", g) or ("timeout", None)."""
    import z3

    if max(abs(glo), abs(ghi)) * max(abs(scale), *(abs(s) for _, s, _ in parts), 1) + abs(const) + \
            max((abs(c) for _, _, c in parts), default=0) >= 1 << 62:
        raise ProofError("an accumulator beyond 62 bits (not written for the solver)")
    g = z3.BitVec("g", 64)
    values = {wid: g * s + c for wid, s, c in parts}
    sym = Symbolic(net, lambda wid: values[wid])
    got = sym.bits(bits, signed)
    want = post_sym(g * scale + const)
    solver = z3.SolverFor("QF_BV")
    solver.set("timeout", int(seconds * 1000))
    solver.add(g >= glo, g <= ghi, got != want)
    answer = solver.check()
    if answer == z3.unsat:
        return "proved", None
    if answer == z3.sat:
        return "counterexample", solver.model()[g].as_signed_long()
    return "timeout", None


# ---------------------------------------------------------------------------------------------- the reference
@dataclass
class Reference:
    """Per output element: its accumulator as an affine form over the op's inputs and the cast after it
    (``post``: raw accumulator integers -> raw outputs), or ``None`` (no form: whole-op enumeration)."""

    forms: list | None
    post: list | None
    identity: list | None  # per output: (lo, hi) -> whether post is the identity on [lo, hi]
    text: list = field(default_factory=list)  # the reference, printed (reports, review)
    post_sym: list | None = None  # per output: post on a z3 bit vector (the SAT fallback), or None
    post_range: list | None = None  # per output: (lo, hi) of the accumulator -> (lo, hi) of post over it


def _linear_reference(op, kernel, positions) -> Reference | None:
    """dense (one position, index = identity) or a convolution (``positions``: input index per window cell,
    -1 in the padding): acc = bias_acc + sum_i (w_ij << shift) x_i, exact (the range analysis proves no
    partial sum leaves the accumulator) or modulo the accumulator (WRAP); then the output cast."""
    plan = kernel.plan()
    if plan["shift"] < 0:
        return None  # each product is rounded on its own: not linear
    acc = kernel.accum_fmt
    wraps = plan["product_can_overflow"] or plan["sum_can_overflow"]
    if wraps and acc.overflow != "WRAP":
        return None
    forms, post, ident, text, sym, span = [], [], [], [], [], []
    w = kernel.weight.astype(object) << plan["shift"]
    for p, idx in enumerate(positions):
        for j in range(kernel.n_out):
            coef = {}
            for c, i in enumerate(idx):
                if i >= 0 and w[c, j]:
                    coef[int(i)] = coef.get(int(i), 0) + int(w[c, j])
            form = Aff.make(int(plan["bias_acc"][j]), coef)
            out = op.output.formats[p * kernel.n_out + j]
            forms.append(form)
            post.append(_cast(out, acc, wraps))
            ident.append(lambda lo, hi, out=out: (not wraps and out.fractional == acc.fractional
                                                  and out.min_raw + (out.overflow == "SAT_SYM") <= lo
                                                  and hi <= out.max_raw))
            text.append(f"y{p * kernel.n_out + j} = ({out.cpp}) ({acc.cpp}) ({form.text()})")
            sym.append(lambda a, out=out: z3_cast(out, z3_cast(acc, a, acc) if wraps else a, acc))
            span.append(lambda lo, hi, out=out: _cast_span(out, acc, lo, hi, wraps))
    return Reference(forms, post, ident, text, sym, span)


def _cast_span(out, source, lo: int, hi: int, wraps: bool = False) -> tuple[int, int]:
    """The range of out.cast over the raw values [lo, hi] of ``source`` (the format's own interval rule)."""
    if wraps:
        return int(out.min_raw), int(out.max_raw)
    a, b, _ = out.cast_interval(int(lo), int(hi), source)
    return int(a), int(b)


def _cast(out, acc, wraps):
    def post(a):
        a = np.asarray(a, dtype=np.int64)
        if wraps:
            a = acc.cast(a, acc)
        return out.cast(a, acc)
    return post


def _cast_reference(forms: list, casts: list, text: list) -> Reference:
    """Per output: an exact affine form (no accumulator of its own) and one cast ``(out, source format)``."""
    post, ident, sym, span = [], [], [], []
    for out, source in casts:
        post.append(lambda a, out=out, source=source: out.cast(np.asarray(a, dtype=np.int64), source))
        ident.append(lambda lo, hi, out=out, source=source: (out.fractional == source.fractional
                                                            and out.min_raw + (out.overflow == "SAT_SYM") <= lo
                                                            and hi <= out.max_raw))
        sym.append(lambda a, out=out, source=source: z3_cast(out, a, source))
        span.append(lambda lo, hi, out=out, source=source: _cast_span(out, source, lo, hi))
    return Reference(forms, post, ident, text, sym, span)


def _merge_reference(op) -> Reference | None:
    """merge add / subtract / average: (a << sa) +- (b << sb) at the finer LSB, exact in its ap_fixed type
    (average: the same raw sum with one more fractional bit), then the cast to the output."""
    from trigger.ir.ops.merge import _widths, exact_format

    if op.operation not in ("add", "subtract", "average"):
        return None  # multiply, maximum, minimum: per output by z3 (WHOLE_Z3) or every input
    sign = -1 if op.operation == "subtract" else 1
    forms, casts, text = [], [], []
    for i in range(op.output.n):
        ia, ib = op.sources(i)
        fa, fb = op.operands(i)
        sa, sb = _widths(fa, fb)
        exact = exact_format(op.operation, fa, fb)
        forms.append(Aff.make(0, {ia: 1 << sa, ib: sign * (1 << sb)}))
        casts.append((op.output.formats[i], exact))
        text.append(f"y{i} = ({op.output.formats[i].cpp}) ({exact.cpp}) ({forms[-1].text()})")
    return _cast_reference(forms, casts, text)


def _mean_reference(op) -> Reference | None:
    """global_pool mean: per feature the sum over the items in accumulator LSBs, exact when no partial sum
    rounds or overflows (then its order does not matter), and after it the division by N (toward zero) and
    the output cast, enumerated on the sum (no solver form: too wide a sum is 'not proved')."""
    if not op._sum_is_exact():
        return None
    src, acc, out = op.input.format, op.accum_fmt, op.output.format
    scale = 1 << (acc.fractional - src.fractional)
    forms, post, text = [], [], []
    for f in range(op.n_features):
        forms.append(Aff.make(0, {i * op.n_features + f: scale for i in range(op.n_items)}))
        post.append(lambda g: out.cast(op._divide(np.asarray(g, dtype=np.int64)), acc))
        text.append(f"y{f} = ({out.cpp}) (({acc.cpp}) ({forms[-1].text()}) / {op.n_items})")
    return Reference(forms, post, [lambda lo, hi: False] * op.n_features, text)


def _global_max_z3(op, xs):
    """global_pool max: per feature the largest item (the first on a tie: the same value), cast to accum_t,
    then to the output."""
    import z3

    if op.mode != "max":
        raise ProofError("global_pool mean without a reference form (its sum can round or overflow)")
    outs = []
    for f in range(op.n_features):
        best = xs[f]
        for i in range(1, op.n_items):
            v = xs[i * op.n_features + f]
            best = z3.If(v > best, v, best)
        outs.append(z3_cast(op.output.format, z3_cast(op.accum_fmt, best, op.input.format), op.accum_fmt))
    return outs


def _concatenate_reference(op) -> Reference:
    """concatenate: output i is input index[i], cast to its output format."""
    forms = [Aff.make(0, {int(j): 1}) for j in op.index]
    casts = [(op.output.formats[i], op.input.formats[int(j)]) for i, j in enumerate(op.index)]
    text = [f"y{i} = ({op.output.formats[i].cpp}) x{int(j)}" for i, j in enumerate(op.index)]
    return _cast_reference(forms, casts, text)


def reference(op) -> Reference:
    """The op's semantics as ``Reference`` (see the class), printed from its fields as emulate() computes."""
    if op.kind == "dense":
        r = _linear_reference(op, op, [list(range(op.n_in))])
    elif op.kind == "item_dense":  # dense per item: item k reads inputs k * n_in .. and writes outputs k * n_out ..
        r = _linear_reference(op, op, [list(range(k * op.n_in, (k + 1) * op.n_in)) for k in range(op.n_items)])
    elif op.kind == "global_pool" and op.mode == "mean":
        r = _mean_reference(op)
    elif op.kind in ("conv1d", "conv2d") and hasattr(op, "kernel_op") and not getattr(op, "stream", False):
        r = _linear_reference(op, op.kernel_op(), [list(map(int, row)) for row in op.geometry.im2col()])
    elif op.kind in ELEMENTWISE and op.input.n == op.output.n:
        forms = [Aff.make(0, {j: 1}) for j in range(op.input.n)]
        base = np.clip(np.zeros(op.input.n, dtype=np.int64), op.input.min_raw, op.input.max_raw)

        # every element computes the same function: uniform formats and no per-element array (a scale's or
        # prelu's factors) that differs between elements
        same = op.input.is_uniform and op.output.is_uniform and all(
            np.all(np.asarray(getattr(op, name)) == np.asarray(getattr(op, name)).flat[0])
            for name in getattr(op, "arrays", ()) if np.asarray(getattr(op, name)).size)

        def elem(j):
            def post(g):
                g = np.asarray(g, dtype=np.int64)
                if same:  # every element computes the same function: g packed into rows of n_in
                    n = op.input.n
                    rows = np.resize(g, (-(-len(g) // n)) * n).reshape(-1, n)
                    return op.emulate(rows, {}).reshape(-1)[:len(g)]
                x = np.broadcast_to(base, (len(g), op.input.n)).copy()
                x[:, j] = g
                return op.emulate(x, {})[:, j]
            return post
        text = [f"y{j} = {op.kind}.emulate(x{j}) (element-wise)" for j in range(op.input.n)]
        sym = span = None
        if op.kind in ("relu", "linear"):  # emulate: the output cast of x (relu: of max(x, 0))
            import z3

            fin, fout = op.input.formats, op.output.formats
            pre = (lambda a: z3.If(a > 0, a, z3.BitVecVal(0, 64))) if op.kind == "relu" else (lambda a: a)
            sym = [lambda a, j=j: z3_cast(fout[j], pre(a), fin[j]) for j in range(op.input.n)]
            low = (lambda v: max(v, 0)) if op.kind == "relu" else (lambda v: v)
            span = [lambda lo, hi, j=j: _cast_span(fout[j], fin[j], low(lo), low(hi)) for j in range(op.input.n)]
        r = Reference(forms, [elem(j) for j in range(op.input.n)], [lambda lo, hi: False] * op.input.n, text,
                      sym, span)
    elif op.kind == "merge":
        r = _merge_reference(op)
    elif op.kind == "concatenate":
        r = _concatenate_reference(op)
    else:
        r = None
    return r or Reference(None, None, None, [f"{op.kind}.emulate(x) (whole op)"])


# ---------------------------------------------------------------------------------------------- proof of one op
def _direction(aff: Aff):
    """The primitive direction of a form's variable part: (sorted ((var, coef)...), scale)."""
    if not aff.coef:
        return (), 0
    g = 0
    for _, c in aff.coef:
        g = math.gcd(g, c)
    if aff.coef[0][1] < 0:
        g = -g
    return tuple((v, c // g) for v, c in aff.coef), g


def _witness(dirn, dom, target: int) -> dict | None:
    """Inputs (var -> value) inside ``dom`` where sum(d * x) == target (greedy, largest step first)."""
    x = {v: (dom[v][0] if d > 0 else dom[v][1]) for v, d in dirn}
    rest = target - sum(d * x[v] for v, d in dirn)
    if rest < 0:
        return None
    for v, d in sorted(dirn, key=lambda t: -abs(t[1])):
        room = dom[v][1] - dom[v][0]
        step = min(room, rest // abs(d))
        x[v] += step if d > 0 else -step
        rest -= step * abs(d)
    return x if rest == 0 else None


def _witness_row(dirn, dom, target: int) -> np.ndarray | None:
    """An input row where the accumulator direction ``dirn`` takes ``target`` (the other inputs near 0)."""
    x = _witness(dirn, dom, target)
    if x is None:
        return None
    row = np.array([min(max(0, lo), hi) for lo, hi in dom], dtype=np.int64)
    for v, val in x.items():
        row[v] = val
    return row


def _corners(aff: Aff, dom, n: int) -> list[np.ndarray]:
    """The inputs where a form takes its smallest and its largest value (the others at 0 or their bound)."""
    rows = []
    for sign in (1, -1):
        x = np.array([min(max(0, lo), hi) for lo, hi in dom], dtype=np.int64)
        for v, c in aff.coef:
            x[v] = dom[v][1] if c * sign > 0 else dom[v][0]
        rows.append(x)
    return rows


def prove_op(op, sources: list[Path], module: str, latency: int, work: Path,
             limit: int = ENUM_LIMIT, dom=None, model_dom=None, schedule: Schedule | None = None) -> dict:
    """Proves one op module against the op's reference; returns the result dict (see the module docstring).
    ``schedule``: a module of a shared design (ii > 1), proved over one event unrolled (``unroll``)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    t0, cpu0 = time.perf_counter(), _cpu()
    dom = dom or [(int(f.min_raw), int(f.max_raw)) for f in op.input.formats]
    widths = [f.width for f in op.input.formats]
    result = {"op": op.name, "kind": op.kind, "module": module, "latency": latency}
    if schedule is not None:
        result["schedule"] = {"ii": schedule.ii, "input_held_cycles": schedule.held,
                              "output_held_cycles": schedule.need}
    try:
        Path(work).mkdir(parents=True, exist_ok=True)
        mod = yosys_json(sources, module, work)
        if schedule is not None:
            mod = unroll(mod, latency, schedule)
            result["schedule"]["unrolled_cells"] = len(mod["cells"])
        bits = mod["ports"]["in_data"]["bits"]
        in_bits = [bits[lsb:lsb + w] for lsb, w in zip(op.input.offsets, widths)]
        split = _digit_split(mod, in_bits, dom) if schedule is not None and schedule.held > 1 else None
        net = Netlist(mod, split[0] if split else in_bits, split[1] if split else dom)
        net.outputs = [(net.out_bits[lsb:lsb + f.width], f.signed) for lsb, f in zip(op.output.offsets,
                                                                                    op.output.formats)]
        for b in net.out_bits:
            d = net.depth(b)
            if d is not None and d != (0 if schedule else latency):
                raise ProofError(f"out_data bit is {d} registers deep, the op's latency is {latency}")
        if split:
            result.update(_check_digits(op, net, split[1], dom, split[2], limit))
        else:
            result.update(_check(op, net, dom, limit, model_dom))
    except ProofError as err:
        result.update(status="not proved", method="none", reason=str(err))
    result["seconds"] = round(time.perf_counter() - t0, 3)
    result["cpu_seconds"] = round(_cpu() - cpu0, 3)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _aliased(form: Aff, alias: dict) -> Aff:
    coef = {}
    for v, c in form.coef:
        coef[alias.get(v, v)] = coef.get(alias.get(v, v), 0) + c
    return Aff.make(form.const, coef)


def _strip_low_zeros(bits: list, dom: list) -> tuple[list, list, dict]:
    """Inputs whose k lowest netlist bits are constant 0 where their interval does not prove it (a dense
    output with only even weights and bias: the builder knows, the range does not): each such element's
    variable becomes the element >> k, over its interval's multiples of 2^k. The values the signal carries
    are all multiples (its bits are constant), so the proof over them covers every value it can hold."""
    out_bits, out_dom, scale = [], [], {}
    for v, (b, (lo, hi)) in enumerate(zip(bits, dom)):
        k = 0
        while k < len(b) - 1 and b[k] == "0":
            k += 1
        if k and lo != hi and not all(isinstance(x, str) for x in b[k:]):
            scale[v] = k
            out_bits.append(b[k:])
            out_dom.append((-(-lo >> k), hi >> k))
        else:
            out_bits.append(b)
            out_dom.append((lo, hi))
    return out_bits, out_dom, scale


def _check_scaled(op, net: Netlist, dom, limit: int) -> dict:
    """_check where some inputs are variables >> k (``net.scale``): the reference forms are rewritten over them
    and every input row is scaled back for the emulator and the report."""
    if not net.scale:
        return _check(op, net, dom, limit)
    factor = {v: 1 << k for v, k in net.scale.items()}

    def actual(y):
        x = np.array(y, dtype=np.int64)
        for v, f in factor.items():
            x[..., v] = x[..., v] * f
        return x

    result = _check_rewritten(
        op, net, dom, limit, lambda form: Aff.make(form.const, {v: c * factor.get(v, 1) for v, c in form.coef}),
        actual, f"input elements {sorted(net.scale)} have constant low bits their range does not prove")
    result["scaled_inputs"] = {str(v): k for v, k in net.scale.items()}
    return result


def _check_rewritten(op, net: Netlist, dom, limit: int, rewrite, actual, why: str) -> dict:
    """_check over variables other than the op's input elements: ``rewrite`` turns a reference form over the
    elements into one over the variables, ``actual`` a row of variables into the elements (for the emulator
    and the report)."""
    ref = reference(op)
    if op.kind in PARTS or ref.forms is None:
        raise ProofError(f"{why}, and {op.kind} has no reference form to rewrite over them")
    ref = replace(ref, forms=[None if f is None else rewrite(f) for f in ref.forms])
    result = _check(op, net, dom, limit, ref=ref, emulate=lambda y: op.emulate(actual(y), {}))
    cex = result.get("counterexample")
    if cex and "input" in cex:
        cex["input"] = [int(v) for v in actual(np.array([cex["input"]]))[0]]
    return result


def _digit_split(mod: dict, bits: list[list], dom: list) -> tuple[list, list, list] | None:
    """Digit-serial inputs (a shared dense reads each input slice by slice, serial.py): every element whose bits
    the arithmetic reads in pieces becomes one variable per piece, the top one signed as the element, the others
    unsigned, element = sum(piece << its lowest bit). Returns (bits, domain, (element, shift)) per variable, or
    None when every element is read whole. The pieces' box holds every value of the element's domain, and
    more when the domain is narrower than its bits (``_digit_legal`` drops such rows from counterexamples)."""
    where = {}
    for v, b in enumerate(bits):
        for k, x in enumerate(b):
            if isinstance(x, int):
                where.setdefault(x, (v, k))
    cuts = [set() for _ in bits]
    for cell in mod["cells"].values():
        if cell["type"] not in ("$add", "$sub", "$neg", "$pos", "$mul", "$shl", "$sshl"):
            continue
        for port, direction in cell["port_directions"].items():
            if direction != "input":
                continue
            prev = None
            for x in cell["connections"][port] + ["0"]:
                at = where.get(x) if isinstance(x, int) else None
                if prev is not None and at is not None and at[0] == prev[0] and (
                        at[1] == prev[1] + 1 or (at == prev and at[1] == len(bits[at[0]]) - 1)):
                    prev = at  # the next bit of the run, or the element's sign bit repeated (an extension)
                    continue
                if prev is not None:
                    cuts[prev[0]].add(prev[1] + 1)
                if at is not None:
                    cuts[at[0]].add(at[1])
                prev = at
    out_bits, out_dom, parts = [], [], []
    for v, (b, (lo, hi)) in enumerate(zip(bits, dom)):
        edges = sorted({0, len(b)} | {c for c in cuts[v] if 0 < c < len(b)})
        for k in range(len(edges) - 2, 0, -1):  # a piece of constant bits only (a sign bit known 0) joins the one below
            if all(isinstance(x, str) for x in b[edges[k]:edges[k + 1]]):
                del edges[k]
        for s, e in zip(edges, edges[1:]):
            out_bits.append(b[s:e])
            out_dom.append((lo >> s, hi >> s) if e == len(b) else (0, (1 << (e - s)) - 1))
            parts.append((v, s))
    return (out_bits, out_dom, parts) if len(parts) > len(bits) else None


def _check_digits(op, net: Netlist, dom, x_dom, parts: list, limit: int) -> dict:
    """_check over digit variables (``_digit_split``): the reference forms rewritten over the pieces."""
    n_x = len(x_dom)

    def rewrite(form):
        coef = {}
        for j, (v, s) in enumerate(parts):
            c = dict(form.coef).get(v, 0)
            if c:
                coef[j] = c << s
        return Aff.make(form.const, coef)

    def actual(y):
        y = np.asarray(y, dtype=np.int64)
        x = np.zeros(y.shape[:-1] + (n_x,), dtype=np.int64)
        for j, (v, s) in enumerate(parts):
            x[..., v] += y[..., j] << s
        return x

    lo = np.array([a for a, _ in x_dom], dtype=np.int64)
    hi = np.array([b for _, b in x_dom], dtype=np.int64)
    net.legal = lambda y: np.all((actual(y) >= lo) & (actual(y) <= hi), axis=-1)
    result = _check_rewritten(op, net, dom, limit, rewrite, actual, "the inputs are read in digits")
    result["digit_inputs"] = [[int(v), int(s)] for v, s in parts]
    return result


def _check(op, net: Netlist, dom, limit: int, model_dom=None, ref=None, emulate=None) -> dict:
    """The outputs of ``net`` (its inputs ranging over ``dom``) against ``ref`` (default: the op's reference;
    ``emulate``: the same on numbers, default op.emulate), output by output."""
    if ref is None and op.kind in PARTS:
        return PARTS[op.kind](op, net, dom, limit)
    ref = ref or reference(op)
    emulate = emulate or (lambda x: op.emulate(x, {}))
    n_in = len(dom)
    if ref.forms is None:
        return _whole(op, net, dom)
    if net.alias:  # the reference over the elements the netlist reads
        ref = replace(ref, forms=[None if f is None else _aliased(f, net.alias) for f in ref.forms])
    n_out = len(ref.forms)
    proved, methods, failures, candidates, classes, pending, wide = 0, {}, [], [], {}, [], []
    enumerated = restricted = 0
    out_ranges = [None] * n_out  # the exact range of each proved output (the next op's domain in a chain)
    for j in range(n_out):
        bits, signed = net.outputs[j]
        form = ref.forms[j]
        if form is None:
            failures.append(f"output {j}: no reference form of one accumulator (not proved here)")
            continue
        rlo, rhi = form.range(dom)
        read = net.read(bits, signed)
        if read is not None and read[1] is None and ref.identity[j](rlo, rhi):
            if read[0] == form:
                proved += 1
                methods["affine"] = methods.get("affine", 0) + 1
                out_ranges[j] = (rlo, rhi)
            else:
                failures.append(f"output {j}: form {read[0].text()} != reference {form.text()}")
                candidates += _difference_inputs(read[0], form, dom, n_in)
            continue
        cells, words, sig = net.cone(bits)
        dirn, scale = _direction(form)
        parts = []
        for wid in words:
            word = net.words[wid]
            d, s = _direction(word.aff)
            if d and d != dirn:
                parts = None
                break
            parts.append((wid, s, word.aff.const))
        if parts is not None and not dirn and not parts:  # a constant output
            got = int(Concrete(net, lambda wid: None).bits(bits, signed))
            if got == int(ref.post[j](np.array([form.const]))[0]):
                proved += 1
                methods["constant"] = methods.get("constant", 0) + 1
                out_ranges[j] = (got, got)
            else:
                failures.append(f"output {j}: constant {got} != reference")
                candidates += _corners(form, dom, n_in)
            continue
        if parts is None or not dirn:
            failures.append(f"output {j}: its cone reads words that are not affine in the reference's accumulator")
            candidates += [c for wid in words for c in _corners(net.words[wid].aff, dom, n_in)]
            candidates += _corners(form, dom, n_in)
            continue
        glo, ghi = Aff.make(0, dict(dirn)).range(dom)
        space = dom
        if ghi - glo + 1 > limit and model_dom is not None:
            nlo, nhi = Aff.make(0, dict(dirn)).range(model_dom)
            if nhi - nlo + 1 <= limit:  # every value the ops before can deliver (the model's range analysis)
                glo, ghi, space = nlo, nhi, model_dom
                restricted += 1
        if ghi - glo + 1 > limit:
            if ref.post_sym is None:
                failures.append(f"output {j}: {ghi - glo + 1} values of its accumulator (limit {limit})")
            else:  # too wide to enumerate: the solver, on the same cone and cast
                glo, ghi = Aff.make(0, dict(dirn)).range(dom)
                wide.append((j, bits, signed, parts, dirn, scale, form.const, glo, ghi))
            continue
        key = (sig, tuple((s, c) for _, s, c in parts), scale, form.const, repr(_post_key(op, j)))
        hull = classes.get(key, (glo, ghi))
        hull = (min(hull[0], glo), max(hull[1], ghi))
        if hull[1] - hull[0] + 1 > limit:  # too wide together: a class of its own
            key, hull = key + (glo, ghi), (glo, ghi)
        classes[key] = hull
        pending.append((j, key, bits, signed, parts, dirn, scale, form.const, glo, ghi, space))
    done, members = {}, {}
    for entry in pending:
        members.setdefault(entry[1], []).append((entry[8], entry[9]))
    for j, key, bits, signed, parts, dirn, scale, const, glo, ghi, space in pending:
        if key not in done:
            lo, hi = classes[key]
            done[key] = _enumerate(net, bits, signed, parts, ref.post[j], scale, const, lo, hi, members[key])
            enumerated += hi - lo + 1
        bad, spans, covered = done[key]
        bad = bad[(bad >= glo) & (bad <= ghi)]
        if not bad.size and covered < ghi:
            failures.append(f"output {j}: enumeration stopped after 10^6 mismatches of outputs like it")
        elif not bad.size:
            proved += 1
            methods["enumeration"] = methods.get("enumeration", 0) + 1
            out_ranges[j] = spans[(glo, ghi)]
        else:
            failures.append(f"output {j}: differs from the reference at accumulator value(s) "
                            f"{[int(b) * scale + const for b in bad[:3]]}")
            candidates += [row for g in bad[[0, bad.size // 2, -1]]
                           if (row := _witness_row(dirn, space, int(g))) is not None]
    solved, sat_seconds = {}, 0.0
    for j, bits, signed, parts, dirn, scale, const, glo, ghi in wide:
        # outputs with the same cone, words and cast over the same range are one question to the solver
        key = (net.cone(bits)[2], tuple((s, c) for _, s, c in parts), scale, const, repr(_post_key(op, j)), glo, ghi)
        if key not in solved:
            t_solve = time.perf_counter()
            solved[key] = _solve(net, bits, signed, parts, ref.post_sym[j], scale, const, glo, ghi, SAT_SECONDS)
            sat_seconds += time.perf_counter() - t_solve
        verdict, g = solved[key]
        if verdict == "proved":
            proved += 1
            methods["sat"] = methods.get("sat", 0) + 1
            ends = sorted((scale * glo + const, scale * ghi + const))
            out_ranges[j] = ref.post_range[j](*ends)
        elif verdict == "counterexample":
            failures.append(f"output {j}: differs from the reference at accumulator value {g * scale + const} (z3)")
            row = _witness_row(dirn, dom, int(g))
            if row is not None:
                candidates.append(row)
        else:
            failures.append(f"output {j}: {ghi - glo + 1} values of its accumulator, and the solver gave no "
                            f"answer within {SAT_SECONDS} s")
    method = "+".join(f"{k} ({v} outputs)" for k, v in sorted(methods.items()))
    widths = adder_widths(net)
    out = {"outputs": n_out, "proved_outputs": proved, "method": method or "none",
           "enumerated_values": enumerated, "enumeration_classes": len(classes), "adders": widths,
           "solver_questions": len(solved), "solver_seconds": round(sat_seconds, 3),
           "out_ranges": None if None in out_ranges else [[int(a), int(b)] for a, b in out_ranges],
           "domain": "input format" if not restricted else
           f"input format; {restricted} outputs over the model's range of their input (range analysis)"}
    if not failures:
        return dict(out, status="proved")
    cex = _counterexample(emulate, net, candidates, n_in, dom)
    out["reason"] = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
    if cex is not None:
        return dict(out, status="counterexample", counterexample=cex)
    return dict(out, status="not proved")


def _aff_z3(aff: Aff, xs):
    import z3

    out = z3.BitVecVal(aff.const, 64)
    for v, c in aff.coef:
        out = out + xs[v] * c
    return out


def _tree_z3(op, node: int, k: int, xs):
    """The leaf value of class k the tree from ``node`` picks (op.leaves_of: left when raw <= threshold)."""
    import z3

    if op.feature[node] < 0:
        return z3.BitVecVal(int(op.value[node, k]), 64)
    return z3.If(xs[int(op.feature[node])] <= int(op.threshold[node]), _tree_z3(op, int(op.left[node]), k, xs),
                 _tree_z3(op, int(op.right[node]), k, xs))


def _check_trees(op, net: Netlist, dom, limit: int) -> dict:
    """tree_ensemble, part by part (2^41 inputs cannot be enumerated, and a solver does not see through the sum
    of 100 trees added in another order): (1) each tree's leaf register (``t<t>_c<k>_q``) against the tree's
    leaf selection, by z3 over the op's inputs (comparators and multiplexers only); (2) the adder tree, the
    output cast and the decision over the leaf registers as free inputs: bias + the sum of the leaves is an
    exact affine form (as a dense op's), the cast after it enumerated or solved like a dense op's."""
    import z3

    t0 = time.perf_counter()
    names = {}
    for name, info in (net.mod.get("netnames") or {}).items():
        names.setdefault(name.split(".")[-1], []).append(info["bits"])
    xs = [z3.BitVec(f"x{v}", 64) for v in range(len(dom))]
    sym = Symbolic(net, lambda wid: _aff_z3(net.words[wid].aff, xs))
    inside = [z3.And(x >= lo, x <= hi) for x, (lo, hi) in zip(xs, dom)]
    leaf_bits, leaf_dom, coefs, failures, cex = [], [], [{} for _ in range(op.n_classes)], [], None
    owners = []  # the (tree, class) of each leaf register
    leaves = op.tree_leaves()
    for t, root in enumerate(op.roots):
        for k in range(op.n_classes):
            want = _tree_z3(op, int(root), k, xs)
            found = names.get(f"t{t}_c{k}_q")
            if found is not None and len(found) > 1:
                raise ProofError(f"several signals named t{t}_c{k}_q in the netlist")
            solver = z3.SolverFor("QF_BV")
            solver.set("timeout", int(SAT_SECONDS * 1000))
            solver.add(*inside)
            # the builder leaves out a tree that adds nothing to class k: then the tree must pick 0 everywhere
            solver.add(want != 0 if found is None else sym.bits(found[0], True) != want)
            answer = solver.check()
            if answer == z3.sat:
                model = solver.model()
                failures.append(f"tree {t} class {k}: its leaf register differs from the tree's leaf selection")
                cex = cex or [model.eval(x, model_completion=True).as_signed_long() for x in xs]
            elif answer != z3.unsat:
                failures.append(f"tree {t} class {k}: the solver gave no answer within {SAT_SECONDS} s")
            if found is not None:
                coefs[k][len(leaf_bits)] = 1
                owners.append((t, k))
                leaf_bits.append(found[0])
                values = op.value[leaves[t], k]
                leaf_dom.append((int(values.min()), int(values.max())))
    n_trees = op.n_trees * op.n_classes
    head = {"trees": n_trees, "trees_seconds": round(time.perf_counter() - t0, 3)}
    if failures:
        out = dict(head, outputs=op.output.n, proved_outputs=0, method=f"sat per tree ({n_trees} trees)",
                   reason=failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
        found = _counterexample(lambda x: op.emulate(x, {}), net, [np.array(cex, dtype=np.int64)] if cex else [],
                                len(dom), dom)
        return dict(out, status="counterexample", counterexample=found) if found else dict(out, status="not proved")
    # (2) the sums over the leaf registers, as free inputs over their leaves' range
    acc = op.accum_fmt
    forms = [Aff.make(int(op.bias[k]), coefs[k]) for k in range(op.n_classes)]
    outs = op.output.formats
    post = [_cast(outs[k], acc, False) for k in range(op.n_classes)]
    ident = [lambda lo, hi, out=outs[k]: (out.fractional == acc.fractional and out.min_raw
                                          + (out.overflow == "SAT_SYM") <= lo and hi <= out.max_raw)
             for k in range(op.n_classes)]
    sym_post = [lambda a, out=outs[k]: z3_cast(out, a, acc) for k in range(op.n_classes)]
    span = [lambda lo, hi, out=outs[k]: _cast_span(out, acc, lo, hi) for k in range(op.n_classes)]
    text = [f"y{k} = ({outs[k].cpp}) ({acc.cpp}) ({forms[k].text()}) over the leaf registers"
            for k in range(op.n_classes)]
    thr = int(op.decision_threshold)
    if op.decision == "threshold":  # class 1 when the sum is above the threshold: a function of that sum
        forms.append(forms[0])
        post.append(lambda a: (np.asarray(a, dtype=np.int64) > thr).astype(np.int64))
        ident.append(lambda lo, hi: False)
        sym_post.append(lambda a: z3.If(a > thr, z3.BitVecVal(1, 64), z3.BitVecVal(0, 64)))
        span.append(lambda lo, hi: (int(lo > thr), int(hi > thr)))
        text.append(f"cls = ({forms[0].text()}) > {thr}")
    ref = Reference(forms, post, ident, text, sym_post, span)
    n_checked = len(forms)  # an argmax decision reads several sums: proved after them, by z3

    def emulate(leaf):
        sums = [f.eval(leaf) for f in forms[:op.n_classes]]
        cols = [p(s) for p, s in zip(post, sums)]
        if op.decision == "threshold":
            cols.append((sums[0] > thr).astype(np.int64))
        return np.stack(cols, axis=1)


    sums = Netlist(net.mod, leaf_bits, leaf_dom, driver=net.driver)
    sums.outputs = net.outputs[:n_checked]
    result = _check(op, sums, leaf_dom, limit, ref=ref, emulate=emulate)
    method = f"sat per tree ({n_trees} trees); sums: {result['method']}"
    if result.get("counterexample"):  # leaf values: an input of the op where every tree picks them, if any
        leaf = result["counterexample"]["input"]
        solver = z3.SolverFor("QF_BV")
        solver.set("timeout", int(SAT_SECONDS * 1000))
        solver.add(*inside, *[_tree_z3(op, int(op.roots[t]), k, xs) == v for (t, k), v in zip(owners, leaf)])
        found = None
        if solver.check() == z3.sat:
            row = np.array([solver.model().eval(x, model_completion=True).as_signed_long() for x in xs])
            found = _counterexample(lambda x: op.emulate(x, {}), net, [row], len(dom), dom)
        if found is not None:
            result["counterexample"] = dict(found, leaf_registers=leaf)
        else:  # no input reaches those leaves together: the leaf-register step over-approximates
            del result["counterexample"]
            result["status"] = "not proved"
            result["reason"] += "; no input of the op reaches the differing leaf values (not proved)"
    if op.decision == "argmax":
        # the class: the first largest sum, exactly: the leaf registers are tied to the op's inputs by the trees
        # (proved above), the sums are the exact forms above, so z3 compares comparisons of the same forms
        leaf = [z3.BitVec(f"leaf{v}", 64) for v in range(len(leaf_dom))]
        sym = Symbolic(sums, lambda wid: _aff_z3(sums.words[wid].aff, leaf))
        solver = z3.SolverFor("QF_BV")
        solver.set("timeout", int(SAT_SECONDS * 1000))
        solver.add(*inside, *[v == _tree_z3(op, int(op.roots[t]), k, xs) for v, (t, k) in zip(leaf, owners)])
        solver.add(sym.bits(*net.outputs[-1]) != _argmax_z3(op, [_aff_z3(f, leaf) for f in forms])[0])
        answer = solver.check()
        result["outputs"], method = op.output.n, method + "; class: sat over the inputs"
        if answer == z3.unsat:
            result["proved_outputs"] += 1
            if result.get("out_ranges"):
                result["out_ranges"].append([0, op.n_classes - 1])
        else:
            result["out_ranges"] = None
            result["reason"] = result.get("reason") or (
                "the class differs from the first largest sum (z3)" if answer == z3.sat else
                f"the class: the solver gave no answer within {SAT_SECONDS} s")
            if answer == z3.sat and not result.get("counterexample"):
                row = np.array([solver.model().eval(x, model_completion=True).as_signed_long() for x in xs])
                found = _counterexample(lambda x: op.emulate(x, {}), net, [row], len(dom), dom)
                if found is not None:
                    result["counterexample"] = found
            result["status"] = "counterexample" if result.get("counterexample") else "not proved"
    result.update(head, method=method, domain="input format; the sums over every leaf value of each tree")
    return result


def _cone_multipliers(net: Netlist, bits: list) -> list[str]:
    """The $mul cells an output's cone reads (not looking through them), in netlist order."""
    found, seen, stack = set(), set(), [b for b in bits if not isinstance(b, str)]
    while stack:
        b = stack.pop()
        if b in seen or b in net.input_bit or b not in net.driver:
            continue
        seen.add(b)
        name = net.driver[b][0]
        cell = net.cells[name]
        if cell["type"] == "$mul":
            found.add(name)
            continue
        for port, direction in cell["port_directions"].items():
            if direction == "input":
                stack += [x for x in cell["connections"][port] if not isinstance(x, str)]
    return sorted(found)


def _check_dot(op, net: Netlist, dom, limit: int) -> dict:
    """dot, part by part (39 products summed in another order are beyond a solver): (1) each multiplier of the
    output's cone multiplies two input elements, read as exact words, into a result wide enough for every
    product (then, by the cell's semantics, it is their exact product): matched one to one with the dot's
    pairs (x_i, x_{n+i}); (2) the products become free inputs over their ranges, and the sum of their casts
    to accum_t (exact: same LSB, no overflow) and the output cast after it are proved as a dense op's sum.
    Step (2) over-approximates (a square cannot be negative), so a failure there is 'not proved'."""
    n, acc = op.n, op.accum_fmt
    if op.product != "mult":
        raise ProofError(f"dot with {op.product} products: not proved by trigger prove yet")
    (bits, signed), = net.outputs
    pairs = {}
    for i in range(n):
        key = tuple(sorted((i, net.alias.get(n + i, n + i))))
        pairs.setdefault(key, []).append(i)
    leaves, leaf_dom, coef = [], [], {}
    for name in _cone_multipliers(net, bits):
        cell = net.cells[name]
        par = cell.get("parameters", {})
        ops_ = []
        for port in ("A", "B"):
            s = bool(int(str(par.get(f"{port}_SIGNED", "0")), 2))
            read = net.read(list(cell["connections"][port]), s)
            if read is None or read[1] is not None or read[0].const or len(read[0].coef) != 1 \
                    or read[0].coef[0][1] != 1:
                raise ProofError(f"multiplier {name} does not read two input elements as they are")
            ops_.append(read[0].coef[0][0])
        key = tuple(sorted(ops_))
        if not pairs.get(key):
            raise ProofError(f"multiplier {name} multiplies x{key[0]} and x{key[1]}, not a pair of the dot")
        i = pairs[key].pop()
        a_lo, a_hi = dom[ops_[0]]
        b_lo, b_hi = dom[ops_[1]]
        corners = [a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi]
        lo, hi = min(corners), max(corners)
        if ops_[0] == ops_[1]:  # a square
            lo = 0 if a_lo <= 0 <= a_hi else min(a_lo * a_lo, a_hi * a_hi)
            hi = max(a_lo * a_lo, a_hi * a_hi)
        y = list(cell["connections"]["Y"])
        y_signed = lo < 0
        if not (fits_signed(lo, hi, len(y)) if y_signed else fits_unsigned(lo, hi, len(y))):
            raise ProofError(f"multiplier {name}: {len(y)} result bits do not hold every product {lo}..{hi}")
        pf = op.product_format(i)
        if acc.fractional < pf.fractional or not (acc.min_raw <= lo << (acc.fractional - pf.fractional)
                                                  and hi << (acc.fractional - pf.fractional) <= acc.max_raw):
            raise ProofError(f"product {i}'s cast to {acc.cpp} is not exact: not proved by trigger prove yet")
        coef[len(leaves)] = 1 << (acc.fractional - pf.fractional)
        leaves.append(y if y_signed else y + ["0"])
        leaf_dom.append((lo, hi))
    if any(pairs.values()):
        raise ProofError("the output's cone has fewer multipliers than the dot has products")
    # (2) the sum over the products
    lo = sum(min(c * a, c * b) for (v, c), (a, b) in zip(sorted(coef.items()), leaf_dom))
    hi = sum(max(c * a, c * b) for (v, c), (a, b) in zip(sorted(coef.items()), leaf_dom))
    wraps = lo < acc.min_raw or hi > acc.max_raw
    if wraps and acc.overflow != "WRAP":
        raise ProofError(f"the sum can leave {acc.cpp}, which saturates")
    out = op.output.formats[0]
    form = Aff.make(0, coef)
    ref = Reference([form], [_cast(out, acc, wraps)],
                    [lambda lo, hi: (not wraps and out.fractional == acc.fractional
                                     and out.min_raw + (out.overflow == "SAT_SYM") <= lo and hi <= out.max_raw)],
                    [f"y0 = ({out.cpp}) ({acc.cpp}) ({form.text()}) over the products"],
                    [lambda a: z3_cast(out, z3_cast(acc, a, acc) if wraps else a, acc)],
                    [lambda lo, hi: _cast_span(out, acc, lo, hi, wraps)])
    sums = Netlist(net.mod, leaves, leaf_dom, driver=net.driver)
    sums.outputs = net.outputs
    result = _check(op, sums, leaf_dom, limit, ref=ref, emulate=lambda p: ref.post[0](form.eval(p))[:, None])
    result["method"] = f"products ({len(leaves)} multipliers) + {result.get('method', '')}"
    result["products"] = len(leaves)
    if result["status"] == "counterexample":  # in product values, which may not all be reachable
        result.pop("counterexample", None)
        result["status"] = "not proved"
        result["reason"] = "the sum over the products differs for some product values (not realised as an input)"
    return result


PARTS = {"tree_ensemble": _check_trees, "dot": _check_dot}  # op kinds proved part by part (the rest: reference() and _check)


def adder_widths(net: Netlist) -> dict:
    """Adders whose result bits exceed what the exact range of their value needs (a result of one sign
    drops its constant top bit, as the builder writes it): the bits, about LUTs, tighter widths would save.
    An unrolled netlist (ii > 1) has a copy of a shared adder per cycle (``name@cycle``): it needs the widest."""
    needs: dict = {}
    for y, wid, name in net.adders:
        word = net.words[wid]
        lo, hi = word.lo, word.hi
        need = None if word.m < y else max(1, hi.bit_length() if lo >= 0 else (-lo - 1).bit_length() if hi < 0
                                           else max(hi.bit_length(), (-lo - 1).bit_length()) + 1)
        cell = name.split("@")[0]
        before = needs.get(cell, (y, 0))
        needs[cell] = (y, None if need is None or before[1] is None else max(before[1], need))
    exact = [(y, need) for y, need in needs.values() if need is not None]  # else only known modulo 2^m
    spare = [y - need for y, need in exact if y > need]
    return {"count": len(needs), "bits": sum(y for y, _ in exact), "wider_than_needed": len(spare),
            "spare_bits": sum(spare)}


def _post_key(op, j):
    """What makes two outputs' casts the same function (for sharing an enumeration)."""
    if op.kind in ELEMENTWISE:
        return (op.kind, op.name, j) if op.kind == "prelu" else (op.kind, op.name, op.input.formats[j].cpp,
                                                                    op.output.formats[j].cpp)
    return (op.kind, op.name, op.output.formats[j].cpp, getattr(op, "accum_fmt", None) and op.accum_fmt.cpp)


def _enumerate(net, bits, signed, parts, post, scale, const, glo, ghi, members=()) -> tuple:
    """Every value g of the scalar: the cone (its words at s * g + c) against post(scale * g + const).
    Returns the values of g where they differ (at most 10^6; empty when they agree everywhere) and, per
    member range (lo, hi) of g, the smallest and largest reference output over it."""
    bad, spans = [], {m: None for m in members}
    for start in range(glo, ghi + 1, CHUNK):
        g = np.arange(start, min(ghi + 1, start + CHUNK), dtype=np.int64)
        values = {wid: np.int64(s) * g + np.int64(c) for wid, s, c in parts}
        conc = Concrete(net, lambda wid: values[wid])
        got = conc.bits(bits, signed)
        want = post(np.int64(scale) * g + np.int64(const))
        bad.append(g[np.broadcast_to(got, want.shape) != want])
        end = start + len(g) - 1
        for (lo, hi), span in spans.items():
            if hi < start or lo > end:
                continue
            part = want[max(lo, start) - start:min(hi, end) - start + 1]
            a, b = int(part.min()), int(part.max())
            spans[(lo, hi)] = (a, b) if span is None else (min(span[0], a), max(span[1], b))
        if sum(x.size for x in bad) > 1_000_000:  # broken: stop here (values above ``end`` not enumerated)
            return np.concatenate(bad), spans, end
    return np.concatenate(bad), spans, ghi


def _difference_inputs(got: Aff, want: Aff, dom, n: int) -> list[np.ndarray]:
    """Inputs where two forms differ: each variable with a different coefficient at its ends."""
    rows = []
    base = np.array([min(max(0, lo), hi) for lo, hi in dom], dtype=np.int64)
    g, w = dict(got.coef), dict(want.coef)
    for v in sorted(set(g) | set(w)):
        if g.get(v, 0) != w.get(v, 0):
            for end in dom[v]:
                row = base.copy()
                row[v] = end
                rows.append(row)
    rows.append(base)
    return rows[:64]


def evaluate(net: Netlist, x: np.ndarray, outs) -> np.ndarray:
    """The netlist's raw outputs on raw inputs x (n, n_in)."""
    conc = Concrete(net, lambda wid: net.words[wid].aff.eval(x))
    cols = [np.broadcast_to(conc.bits(bits, signed), (x.shape[0],)) for bits, signed in net.outputs]
    return np.stack(cols, axis=1)


def _counterexample(emulate, net, candidates, n_in, dom) -> dict | None:
    """The first candidate input where the netlist and ``emulate`` differ (random inputs added)."""
    rng = np.random.default_rng(0)
    lo = np.array([d[0] for d in dom], dtype=np.int64)
    hi = np.array([d[1] for d in dom], dtype=np.int64)
    rows = list(candidates) + list(rng.integers(lo, hi + 1, size=(256, n_in)))
    x = np.stack(rows).astype(np.int64)
    for v, u in net.alias.items():  # inputs the op reads twice hold the same value
        x[:, v] = x[:, u]
    if net.legal is not None:  # variables that are not the op's inputs: only rows that are its inputs
        x = x[net.legal(x)]
        if not len(x):
            return None
    got = evaluate(net, x, None)
    want = emulate(x)
    bad = np.flatnonzero(np.any(got != want, axis=1))
    if not bad.size:
        return None
    i = int(bad[0])
    elems = np.flatnonzero(got[i] != want[i])
    return {"input": [int(v) for v in x[i]], "netlist": [int(v) for v in got[i]],
            "emulator": [int(v) for v in want[i]], "outputs_differing": [int(e) for e in elems[:16]]}


def _argmax_z3(op, xs):
    """argmax: the first index of the largest input (np.argmax)."""
    import z3

    best, index = xs[0], z3.BitVecVal(0, 64)
    for i, x in enumerate(xs[1:], start=1):
        index = z3.If(x > best, z3.BitVecVal(i, 64), index)
        best = z3.If(x > best, x, best)
    return [index]


def _max_pool_z3(op, xs):
    """max_pool: the largest cell of each window (the pad value in the padding), cast to accum_t, then out."""
    import z3

    outs = []
    for k, cells in enumerate(op.windows()):
        vals = [xs[int(i)] if i >= 0 else z3.BitVecVal(int(op.pad_raw), 64) for i in cells]
        best = vals[0]
        for v in vals[1:]:
            best = z3.If(v > best, v, best)
        y = z3_cast(op.accum_fmt, best, op.input.format)
        outs.append(z3_cast(op.output.formats[k], y, op.accum_fmt))
    return outs


def _merge_z3(op, xs):
    """merge: per output, the exact result of its two operands (aligned to the finer LSB; multiply: the
    product; maximum / minimum: the larger / smaller aligned value), cast to the output."""
    import z3

    from trigger.ir.ops.merge import _widths, exact_format

    outs = []
    for i in range(op.output.n):
        ia, ib = op.sources(i)
        fa, fb = op.operands(i)
        sa, sb = _widths(fa, fb)
        a, b = xs[ia], xs[ib]
        if op.operation == "multiply":
            r = a * b
        else:
            a, b = a << sa, b << sb
            r = {"add": lambda: a + b, "average": lambda: a + b, "subtract": lambda: a - b,
                 "maximum": lambda: z3.If(a > b, a, b), "minimum": lambda: z3.If(a < b, a, b)}[op.operation]()
        outs.append(z3_cast(op.output.formats[i], r, exact_format(op.operation, fa, fb)))
    return outs


def _dot_z3(op, xs):
    """dot: each product cast to accum_t, summed in input order (each partial sum cast to accum_t), then the
    output cast."""
    import z3

    acc_fmt, n = op.accum_fmt, op.n
    acc = z3.BitVecVal(0, 64)
    for i in range(n):
        a, b = xs[i], xs[n + i]
        if op.product == "ternary":
            p = z3.If(b == 0, z3.BitVecVal(0, 64), z3.If(b == -1, -a, a))
        else:
            p = a * b
        acc = z3_cast(acc_fmt, acc + z3_cast(acc_fmt, p, op.product_format(i)), acc_fmt)
    return [z3_cast(op.output.formats[0], acc, acc_fmt)]


# op kinds whose semantics are also written for the solver (per output, over all inputs), where the inputs
# are too wide to enumerate; each is compared with op.emulate in tests/test_prove.py
WHOLE_Z3 = {"argmax": _argmax_z3, "max_pool": _max_pool_z3, "merge": _merge_z3, "dot": _dot_z3,
            "global_pool": _global_max_z3}


def _whole_sat(op, net, dom) -> dict:
    """Each output of the netlist against the op's semantics written for z3 (WHOLE_Z3), over every input."""
    import z3

    xs = [z3.BitVec(f"x{v}", 64) for v in range(len(dom))]
    sym = Symbolic(net, lambda wid: _aff_z3(net.words[wid].aff, xs))
    want = WHOLE_Z3[op.kind](op, xs)
    inside = [z3.And(x >= lo, x <= hi) for x, (lo, hi) in zip(xs, dom)]
    inside += [xs[v] == xs[u] for v, u in net.alias.items()]
    proved, failures, candidates, t0 = 0, [], [], time.perf_counter()
    for j, (bits, signed) in enumerate(net.outputs):
        solver = z3.SolverFor("QF_BV")
        solver.set("timeout", int(SAT_SECONDS * 1000))
        solver.add(*inside, sym.bits(bits, signed) != want[j])
        answer = solver.check()
        if answer == z3.unsat:
            proved += 1
        elif answer == z3.sat:
            model = solver.model()
            failures.append(f"output {j}: differs from the reference (z3)")
            candidates.append(np.array([model.eval(x, model_completion=True).as_signed_long() for x in xs]))
        else:
            failures.append(f"output {j}: the solver gave no answer within {SAT_SECONDS} s")
    out = {"outputs": op.output.n, "proved_outputs": proved, "method": f"sat per output ({op.output.n} outputs)",
           "solver_questions": op.output.n, "solver_seconds": round(time.perf_counter() - t0, 3)}
    if not failures:
        return dict(out, status="proved")
    out["reason"] = failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
    cex = _counterexample(lambda x: op.emulate(x, {}), net, candidates, len(dom), dom)
    return dict(out, status="counterexample", counterexample=cex) if cex else dict(out, status="not proved")


def _whole(op, net, dom) -> dict:
    """An op without a reference form: every input of a narrow input space, netlist against op.emulate;
    wider ones per output by z3 where the op's semantics are written for it (WHOLE_Z3)."""
    if any(v not in net.alias for v in range(len(dom))) and \
            sum(math.log2(hi - lo + 1) for v, (lo, hi) in enumerate(dom) if v not in net.alias) > WHOLE_BITS \
            and op.kind in WHOLE_Z3:
        return _whole_sat(op, net, dom)
    dom = [(lo, lo) if v in net.alias else (lo, hi) for v, (lo, hi) in enumerate(dom)]
    sizes = [hi - lo + 1 for lo, hi in dom]
    bits = sum(math.log2(s) for s in sizes)
    if bits > WHOLE_BITS:
        cex = _counterexample(lambda x: op.emulate(x, {}), net, [], op.input.n, dom)
        out = {"outputs": op.output.n, "proved_outputs": 0, "method": "none",
               "reason": f"no reference form for {op.kind} and 2^{bits:.0f} inputs (limit 2^{WHOLE_BITS})"}
        return dict(out, status="counterexample", counterexample=cex) if cex else dict(out, status="not proved")
    grids = np.meshgrid(*[np.arange(lo, hi + 1, dtype=np.int64) for lo, hi in dom], indexing="ij")
    x = np.stack([g.ravel() for g in grids], axis=1)
    for v, u in net.alias.items():
        x[:, v] = x[:, u]
    got = evaluate(net, x, op.output)
    want = op.emulate(x, {})
    bad = np.flatnonzero(np.any(got != want, axis=1))
    out = {"outputs": op.output.n, "method": f"exhaustive ({x.shape[0]} inputs)", "enumerated_values": int(x.shape[0])}
    if bad.size:
        i = int(bad[0])
        return dict(out, status="counterexample", proved_outputs=0,
                    counterexample={"input": [int(v) for v in x[i]], "netlist": [int(v) for v in got[i]],
                                    "emulator": [int(v) for v in want[i]]})
    return dict(out, status="proved", proved_outputs=op.output.n,
                out_ranges=[[int(a), int(b)] for a, b in zip(want.min(axis=0), want.max(axis=0))])


# ---------------------------------------------------------------------------------------------- confirmation
def confirm(op, sources: list[Path], module: str, latency: int, x: np.ndarray, work: Path,
            simulator: str = "verilator", ii: int = 1) -> np.ndarray:
    """The op module's outputs on raw inputs x (n, n_in), simulated (Verilator by default) behind the standard
    top (the bundle's own harness, trigger.rtlsim); ROM images ($readmemh) beside the module go with it.
    ``ii`` > 1: a shared op's module, its ``start`` driven by the top as in the bundle, an input every ii clocks."""
    from trigger.backends.rtl import standard_top
    from trigger.rtlsim import simulate

    top = f"prove_{module}"
    head = _module_head(sources[0])
    stage = {"module": module, "has_clock": latency > 0 or "input  wire clk" in head, "clock_port": "clk",
             "in_port": "in_data", "out_port": "out_data", "w_out": op.output.bus_width,
             "start_at": 0 if "input  wire start" in head else None}
    work.mkdir(parents=True, exist_ok=True)
    wrapper = work / f"{top}.v"
    wrapper.write_text(standard_top(top, f"op '{op.name}' alone (trigger prove)", op.input.elements(),
                                    op.output.elements(), [stage], latency + 1, ii=ii))
    x = np.atleast_2d(np.asarray(x, dtype=np.int64))
    sim = simulate([*sources, wrapper], top, op.input.to_bits(x), op.input.widths, op.output.widths,
                   simulator=simulator, build_dir=work / "sim", max_latency=latency + 8,
                   data_files=sorted(Path(sources[0]).parent.glob(f"{module}_*.mem")), ii=ii)
    return op.output.from_bits(sim.outputs)


def _confirm_counterexample(cex: dict, op, sources: list[Path], module: str, latency: int, work: Path,
                            ii: int = 1) -> None:
    """Replays a counterexample through the simulator: ``confirmed`` when the simulated module differs from
    ``op.emulate`` on it (a failed simulation is reported, not fatal)."""
    x = np.array([cex["input"]], dtype=np.int64)
    try:
        sim = confirm(op, sources, module, latency, x, work, ii=ii)[0]
        cex["simulation"] = [int(v) for v in sim]
        cex["confirmed"] = bool(np.any(sim != op.emulate(x, {})[0]))
    except Exception as err:  # noqa: BLE001 - a failed confirmation is reported, not fatal
        cex["confirmed"] = None
        cex["confirm_error"] = str(err).splitlines()[0][:300]


def _module_head(source: Path) -> str:
    """A Verilog module's port list."""
    head = Path(source).read_text()
    head = head[head.find("\nmodule "):]
    return head[:head.find(");")]


def _schedule(model, rtl: dict, k: int) -> Schedule | None:
    """Op k's schedule in a shared design (rtl ii > 1), None at ii 1: it reads its input for its own ii cycles
    (the op before, or the top's input register, holds it that long), and its output must stay for the
    cycles the next op reads it (its ii; the top reads the last op's once)."""
    ii = int(rtl.get("ii", 1))
    if ii == 1:
        return None
    op_ii = rtl.get("op_ii") or {}
    after = model.ops[k + 1].name if k + 1 < len(model.ops) else None
    return Schedule(ii, int(op_ii.get(model.ops[k].name, 1)), int(op_ii.get(after, 1)) if after else 1)


# ---------------------------------------------------------------------------------------------- a bundle
def op_modules(model, rtl_dir: Path, top: str, op_latency: dict) -> list[tuple]:
    """(op, module name, sources, latency) per op of RTL written one module per op (pipeline layer or N);
    sources None for an op without a module of its own."""
    import re

    rtl_dir = Path(rtl_dir)
    adder = rtl_dir / f"{top}_sa.v"
    used, out = set(), []
    for k, op in enumerate(model.ops):
        ident = re.sub(r"[^A-Za-z0-9_]", "_", op.name)
        ident = ident if re.match(r"[A-Za-z]", ident) else f"op_{ident}"
        name = f"{top}_{ident}"
        if name in used:
            name = f"{name}_{k}"
        used.add(name)
        path = rtl_dir / f"{name}.v"
        sources = [path] + ([adder] if adder.exists() else []) if path.exists() else None
        out.append((op, name, sources, int(op_latency.get(op.name, 0))))
    return out


def chain_signals(model, rtl: dict) -> list[list[tuple]]:
    """pipeline auto: each op's output signals (name, width, constant, lo, hi, stage) in the chain module, found by running
    the op emitters again with the bundle's settings (names only: the proof reads the bundle's netlist, and a
    name that is not there makes the op 'not proved')."""
    from trigger.backends.rtl import holds_for_previous
    from trigger.backends.rtl.builder import ModuleBuilder, parse_multiplier

    _, dsp = parse_multiplier(rtl.get("multiplier", "shift_add"))
    op_ii = rtl.get("op_ii") or {}
    m = ModuleBuilder(f"{rtl['top']}_ops", max_delay=float(rtl["max_delay_ns_per_stage"]), dsp_above_bits=dsp)
    first = model.ops[0]
    xs = [m.unpack(f"x{i}", lsb, fmt) for i, (lsb, fmt) in enumerate(zip(first.input.offsets, first.input.formats))]
    out = []
    for k, op in enumerate(model.ops):
        ys = op.emit_rtl(m, xs, {"pipeline_every": None, "ii": op_ii.get(op.name, 1),
                                 "hold": not holds_for_previous(model, k + 1, op_ii)})
        if holds_for_previous(model, k, op_ii):
            ys = m.hold(ys)
        out.append([(y.name, y.width, y.const, y.lo, y.hi, y.stage) for y in ys])
        xs = ys
    return out


def _chain_wrapper(bundle: Path, pieces: list[Path], work: Path) -> tuple[Path, str]:
    """A module chaining the pieces of a cut chain (out_data of one into in_data of the next), to flatten."""
    import re

    lines, prev, w_in = [], "in_data", None
    for k, piece in enumerate(pieces):
        head = piece.read_text()
        head = head[head.find("\nmodule "):]
        head = head[:head.find(");")]
        name = re.search(r"module (\w+)", head).group(1)
        win = int(re.search(r"input\s+wire \[(\d+):0\] in_data", head).group(1)) + 1
        wout = int(re.search(r"output\s+wire \[(\d+):0\] out_data", head).group(1)) + 1
        w_in = w_in or win
        clk = ".clk(clk), " if "input  wire clk" in head else ""
        lines.append(f"    wire [{wout - 1}:0] d{k};")
        lines.append(f"    {name} u{k} ({clk}.in_data({prev}), .out_data(d{k}));")
        prev, w_out = f"d{k}", wout
    top = "trigger_prove_chain"
    text = (f"module {top} (input wire clk, input wire [{w_in - 1}:0] in_data, output wire [{w_out - 1}:0] out_data);\n"
            + "\n".join(lines) + f"\n    assign out_data = {prev};\nendmodule\n")
    path = work / f"{top}.v"
    path.write_text(text)
    return path, top


def prove_chain(bundle: Path, rtl: dict, model, work: Path, limit: int, ops=None, progress=None,
                kernel: tuple | None = None) -> list[dict]:
    """pipeline auto (the ops in one chain module, cut into pieces at registers): the chain is flattened
    once, every cell checked to read signals of one register depth (so registers become wires), and each
    op proved between cut points: its input signals are free variables, its output signals are compared.
    A shared chain (ii > 1: one piece) is unrolled over one event instead (``Unrolled``), each op's signals
    taken in the cycle they hold its values. ``kernel``: (module, its ops' signals, latency) of a streamed
    stage's kernel datapath (``_kernel_signals``), proved the same way."""
    chain = f"{rtl['top']}_ops"
    pieces = [bundle / s for s in rtl["sources"] if (Path(s).stem == kernel[0] if kernel else
                                                     Path(s).stem.startswith(chain))]
    adder = [bundle / s for s in rtl["sources"] if Path(s).stem == f"{rtl['top']}_sa"]
    ii, op_ii = int(rtl.get("ii", 1)), rtl.get("op_ii") or {}
    results = []
    t0 = time.perf_counter()
    try:
        if ii > 1 and len(pieces) != 1:
            raise ProofError(f"a shared chain (ii {ii}) in {len(pieces)} pieces (written as one module)")
        if ii > 1:
            files, top = [*pieces, *adder], f"{rtl['top']}_ops"
        else:
            wrapper, top = _chain_wrapper(bundle, pieces, work)
            files = [*pieces, *adder, wrapper]
        signals = kernel[1]() if kernel else chain_signals(model, rtl)
        mod = _netlist_with(files, top, work, [y for ys in signals for y in ys])
    except (ProofError, KeyError, ValueError, AttributeError) as err:
        return [{"op": op.name, "kind": op.kind, "module": None, "status": "not proved", "method": "none",
                 "reason": f"chain module: {err}"} for op in model.ops if not ops or op.name in ops]
    netnames = _netnames(mod)
    total = kernel[2] if kernel else sum(int(v) for v in rtl["op_latency"].values())
    frames = Unrolled(mod, Schedule(ii, ii)) if ii > 1 else None
    chain_error = None

    def signal_bits(bits, stage):  # a signal's bits in the cycle it holds its value (unrolled), else as they are
        return [frames.bit(b, stage) for b in bits] if frames else list(bits)

    try:
        op_outs = []
        for k, op in enumerate(model.ops):
            outs, missing = [], None
            for name, width, const, _, _, stage in signals[k]:
                bits = netnames.get(name)
                if bits is None and const is None:
                    missing, bits = name, ["x"] * width
                outs.append((signal_bits(list(bits)[:width], stage) if bits is not None else
                             [str((const >> i) & 1) for i in range(width)], True))
            if k == len(model.ops) - 1:  # the last op: what the chain puts on out_data
                out_bits = signal_bits(mod["ports"]["out_data"]["bits"], total)
                outs = [(out_bits[lsb:lsb + f.width], f.signed) for lsb, f in zip(op.output.offsets,
                                                                                  op.output.formats)]
            op_outs.append((outs, missing))
        if frames:
            mod = frames.module(out_bits)
    except ProofError as err:
        chain_error = str(err)
        op_outs = [([], None)] * len(model.ops)
    setup = time.perf_counter() - t0
    probe = Netlist(mod, [], [])
    try:
        for b in probe.out_bits:
            d = probe.depth(b)
            if chain_error is None and d is not None and d != (0 if frames else total):
                raise ProofError(f"out_data bit is {d} registers deep, the ops' latencies add up to {total}")
    except ProofError as err:
        chain_error = str(err)
    proven = None
    prev_bits = [[b for b in mod["ports"]["in_data"]["bits"][lsb:lsb + f.width]]
                 for lsb, f in zip(model.ops[0].input.offsets, model.ops[0].input.formats)]
    for k, op in enumerate(model.ops):
        outs, missing = op_outs[k]
        if ops and op.name not in ops:
            prev_bits, proven = [b for b, _ in outs], None
            continue
        t1, cpu0 = time.perf_counter(), _cpu()
        result = {"op": op.name, "kind": op.kind, "module": f"{kernel[0]} (kernel datapath)" if kernel else
                  f"{chain} (chain)",
                  "latency": int(rtl["op_latency"].get(op.name, 0))}
        if frames:
            result["schedule"] = {"ii": ii, "op_ii": int(op_ii.get(op.name, 1))}
        # the chain's signals are only as wide as the values they carry: an op's inputs range over the exact
        # output range proved for the op before (else the builder's ranges, and the result says so)
        if k == 0:
            dom, domain = [(int(f.min_raw), int(f.max_raw)) for f in op.input.formats], "input format"
        elif proven is not None:
            dom, domain = [tuple(r) for r in proven], "the proved output range of the op before"
        else:
            dom = [(int(lo), int(hi)) for _, _, _, lo, hi, _ in signals[k - 1]]
            domain = "the builder's ranges of its inputs (the op before is not proved)"
        try:
            if chain_error:
                raise ProofError(chain_error)
            if missing:
                raise ProofError(f"signal {missing} of the chain not found in the netlist")
            result.update(_check_between(op, mod, prev_bits, dom, outs, limit, probe.driver,
                                         digits=op_ii.get(op.name, 1) > 1))
            result["domain"] = domain
            cex = result.get("counterexample")
            if cex is not None and frames is None and not kernel and "space" not in cex:
                _confirm_in_chain(cex, op, files, signals[k - 1] if k else None, signals[k],
                                  k == len(model.ops) - 1, total, work / f"confirm_{k}")
            elif cex is not None:
                cex["confirmed"] = None
                cex["confirm_note"] = "an op inside a shared chain or a kernel datapath is not simulated alone"
        except ProofError as err:
            result.update(status="not proved", method="none", reason=str(err))
        _close(result, results, t1, cpu0, setup, "chain_setup_seconds", progress)
        prev_bits = [b for b, _ in outs]
        proven = result.get("out_ranges") if result.get("status") == "proved" else None
    return results


def _declaring(files: list[Path], name: str) -> list[str]:
    """The chain wrapper's instances (u0, u1, ...: one per piece, in order) whose piece declares wire ``name``."""
    import re

    pattern = re.compile(rf"\bwire\b[^;=]*\b{re.escape(name)}\s*[=;]")
    pieces = [f for f in files if "_ops" in Path(f).stem]
    return [f"u{j}" for j, f in enumerate(pieces) if pattern.search(Path(f).read_text())]


def _confirm_in_chain(cex: dict, op, files: list[Path], in_signals, out_signals, last: bool, latency: int,
                      work: Path) -> None:
    """A counterexample of an op inside a cut chain (pipeline auto), simulated alone (Icarus): the chain's own
    Verilog with the op's input signals forced to the counterexample's values (its first op: driven on in_data)
    and held for the chain's latency and two clocks, so that every register before the op's outputs holds values
    computed from them; its output signals (the last op: out_data) are read and compared with ``op.emulate``.
    ``confirmed``: they differ; None with ``confirm_error`` when it could not be simulated."""
    from trigger.toolchain import find_tool

    try:
        iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
        if iverilog is None or vvp is None:
            raise ProofError("Icarus Verilog not found")
        work.mkdir(parents=True, exist_ok=True)
        x = np.array([cex["input"]], dtype=np.int64)
        drive = []
        if in_signals is None:
            bits = int(op.input.to_bits(x)[0].dot(1 << np.array(op.input.offsets, dtype=object)))
            width = op.input.bus_width
            drive.append(f"    in_data = {width}'d{bits};")
        else:
            for (name, width, const, *_), value in zip(in_signals, cex["input"]):
                if const is not None:
                    continue  # a constant signal: the counterexample's value is that constant (its domain)
                where = _declaring(files, name)
                if not where:
                    raise ProofError(f"signal {name} is not declared in the chain's pieces")
                drive += [f"    force dut.{u}.{name} = {width}'d{int(value) & ((1 << width) - 1)};" for u in where]
        reads = []
        if last:
            reads = [(f"dut.out_data[{lsb + f.width - 1}:{lsb}]", f.width) for lsb, f in
                     zip(op.output.offsets, op.output.formats)]
        else:
            for name, width, const, *_ in out_signals:
                where = _declaring(files, name) if const is None else []
                if const is None and not where:
                    raise ProofError(f"signal {name} is not declared in the chain's pieces")
                reads.append((f"dut.{where[0]}.{name}" if where else f"{width}'d{const & ((1 << width) - 1)}", width))
        in_width, out_width = _port_width(files[-1], "in_data"), _port_width(files[-1], "out_data")
        tb = work / "confirm_tb.v"
        tb.write_text("`timescale 1ns/1ps\nmodule confirm_tb;\n  reg clk = 0;\n"
                      f"  reg [{in_width - 1}:0] in_data = 0;\n  wire [{out_width - 1}:0] out_data;\n"
                      "  trigger_prove_chain dut (.clk(clk), .in_data(in_data), .out_data(out_data));\n"
                      "  initial begin\n" + "\n".join(drive) + "\n"
                      f"    repeat ({latency + 2}) begin #1 clk = 1; #1 clk = 0; end\n    #1;\n"
                      + "".join(f'    $display("%b", {r});\n' for r, _ in reads) + "    $finish;\n  end\nendmodule\n")
        sim = work / "confirm.vvp"
        run = subprocess.run([iverilog, "-g2012", "-o", str(sim), *map(str, files), str(tb)], capture_output=True,
                             text=True, timeout=600)
        if run.returncode != 0:
            raise ProofError(f"iverilog: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
        run = subprocess.run([vvp, "-n", str(sim)], capture_output=True, text=True, timeout=600)
        lines = [v for v in run.stdout.split() if set(v) <= set("01xz")][:len(reads)]
        if len(lines) != len(reads) or any(set(v) - set("01") for v in lines):
            raise ProofError(f"the simulation printed {lines[:3]}... for {len(reads)} outputs")
        got = [int(v, 2) - ((1 << w) if v[0] == "1" and (last and f.signed or not last) else 0)
               for v, (_, w), f in zip(lines, reads, op.output.formats)]
        cex["simulation"] = got
        cex["confirmed"] = bool(np.any(np.array(got) != op.emulate(x, {})[0]))
        cex["confirm_note"] = "the chain's Verilog simulated (Icarus) with the op's input signals forced"
    except (ProofError, OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        cex["confirmed"] = None
        cex["confirm_error"] = str(err).splitlines()[0][:300]


def _port_width(wrapper: Path, port: str) -> int:
    import re

    return int(re.search(rf"wire \[(\d+):0\] {port}\b", Path(wrapper).read_text()).group(1)) + 1


def _netlist_with(files: list[Path], top: str, work: Path, signals: list[tuple]) -> dict:
    """The flattened netlist, with every signal (name, width, constant, ...) the op boundaries need: Yosys removes
    a signal nothing reads (an op output no later op uses), so a missing one is asked for again with every wire
    kept."""
    mod = yosys_json(files, top, work)
    names = _netnames(mod)
    if all(y[0] in names or y[2] is not None for y in signals):
        return mod
    return yosys_json(files, top, work, keep=True)


def _netnames(mod: dict) -> dict:
    """A flattened netlist's signals by their own name (the last part of a hierarchical one), first one kept."""
    out = {}
    for name, info in mod["netnames"].items():
        out.setdefault(name.split(".")[-1], info["bits"])
    return out


def _check_between(op, mod: dict, in_bits: list, dom: list, outs: list, limit: int, driver,
                   digits: bool = False) -> dict:
    """One op of a chain or graph module between its input signals (free over ``dom``) and its output signals;
    ``digits``: a shared op, whose arithmetic may read its inputs slice by slice (``_digit_split``)."""
    op_bits, dom, scale = _strip_low_zeros(in_bits, dom)
    split = _digit_split(mod, op_bits, dom) if digits else None
    if split and scale:
        raise ProofError(f"input elements {sorted(scale)} have constant low bits and are read in digits")
    net = Netlist(mod, split[0] if split else op_bits, split[1] if split else dom, driver=driver)
    net.outputs, net.scale = outs, scale
    return _check_digits(op, net, split[1], dom, split[2], limit) if split else _check_scaled(op, net, dom, limit)


def _close(result: dict, results: list, t1: float, cpu0: float, setup: float, setup_key: str, progress) -> None:
    """An op's result inside a chain or graph module: times (the first op carries the module's set-up: Yosys on
    the whole module, its signal names), peak memory; appended and reported."""
    result["seconds"] = round(time.perf_counter() - t1 + (setup if not results else 0), 3)
    if not results:
        result[setup_key] = round(setup, 3)
    result["cpu_seconds"] = round(_cpu() - cpu0, 3)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    results.append(result)
    if progress:
        progress(result)


def graph_signals(model, rtl: dict) -> tuple[dict, int]:
    """A graph model (one module ``<top>_ops``, cut into pieces): each tensor's signals (name, width, constant,
    lo, hi) in it, found by running the graph builder again with the bundle's settings (names only, as for a
    chain), and the module's latency."""
    from trigger.backends.rtl import build_graph_module, parse_pipeline
    from trigger.backends.rtl.builder import parse_multiplier

    _, dsp = parse_multiplier(rtl.get("multiplier", "shift_add"))
    every = parse_pipeline(rtl.get("pipeline"))
    max_delay = float(rtl["max_delay_ns_per_stage"]) if every == "auto" else None
    tensors: dict = {}
    m, _ = build_graph_module(model, f"{rtl['top']}_ops", None if every == "auto" else every, max_delay, dsp,
                              tensors=tensors)
    return {t: [(y.name, y.width, y.const, y.lo, y.hi) for y in ys] for t, ys in tensors.items()}, m.latency


def _confirm_in_graph(cex: dict, op, model, sources, files, module, latency, work, confirm_sim) -> None:
    """A counterexample of an op that reads the model's inputs as they come and writes its only output is an
    input of the graph module: simulated (Verilator) to confirm; any other op's is not simulated alone."""
    whole = (sources == [p for p, _ in model.input_ports] and model.output_names == [op.name]
             and sum(Path(f).stem.startswith(module) for f in files) == 1 and "space" not in cex)
    if not (whole and confirm_sim):
        cex["confirmed"] = None
        cex["confirm_note"] = "an op inside a graph module is not simulated alone"
        return
    _confirm_counterexample(cex, op, files, module, latency, work / "confirm")


def prove_graph(bundle: Path, rtl: dict, model, work: Path, limit: int, ops=None, progress=None,
                confirm_sim: bool = True) -> list[dict]:
    """A graph model (several inputs, outputs or branches: one module, cut into pieces at registers): flattened
    once, every cell checked to read signals of one register depth (a branch the builder delayed to meet its
    merge included), and each op proved between its source tensors' signals (free variables over their
    proved ranges) and its own."""
    pieces = [bundle / s for s in rtl["sources"] if Path(s).stem.startswith(f"{rtl['top']}_ops")]
    rest = [bundle / s for s in rtl["sources"]
            if Path(s).suffix == ".v" and Path(s).stem != rtl["top"] and bundle / s not in pieces]
    results = []
    t0 = time.perf_counter()
    try:
        wrapper, top = _chain_wrapper(bundle, pieces, work)
        signals, latency = graph_signals(model, rtl)
        mod = _netlist_with([*pieces, *rest, wrapper], top, work, [y for ys in signals.values() for y in ys])
    except (ProofError, KeyError, ValueError, AttributeError) as err:
        return [{"op": op.name, "kind": op.kind, "module": None, "status": "not proved", "method": "none",
                 "reason": f"graph module: {err}"} for op in model.ops if not ops or op.name in ops]
    netnames = _netnames(mod)
    setup = time.perf_counter() - t0
    probe = Netlist(mod, [], [])
    graph_error = None
    try:
        for b in probe.out_bits:
            d = probe.depth(b)
            if d is not None and d != latency:
                raise ProofError(f"out_data bit is {d} registers deep, the graph's latency is {latency}")
    except ProofError as err:
        graph_error = str(err)
    # each tensor: its bits per element and the values they can hold (a port: its format; an op's output: the
    # range proved for it, else the builder's)
    bits, dom, how = {}, {}, {}
    in_bits, at = mod["ports"]["in_data"]["bits"], 0
    for port, n in model.input_ports:
        fmts = model.input.formats[at:at + n]
        offsets = model.input.offsets[at:at + n]
        bits[port] = [in_bits[lsb:lsb + f.width] for lsb, f in zip(offsets, fmts)]
        dom[port] = [(int(f.min_raw), int(f.max_raw)) for f in fmts]
        how[port] = "input format"
        at += n
    for k, op in enumerate(model.ops):
        outs, missing = [], None
        for name, width, const, _, _ in signals[op.name]:
            found = netnames.get(name)
            if found is None and const is None:
                missing = name
            outs.append((list(found)[:width] if found is not None else
                         [str((const >> i) & 1) for i in range(width)], True))
        sources = model.sources(k)
        t1, cpu0 = time.perf_counter(), _cpu()
        result = {"op": op.name, "kind": op.kind, "module": f"{rtl['top']}_ops (graph)",
                  "latency": int(rtl.get("op_latency", {}).get(op.name, 0)), "reads": sources}
        op_dom = [v for s in sources for v in dom[s]]
        domain = ", ".join(sorted({how[s] for s in sources}))
        proved_range = None
        if not ops or op.name in ops:
            try:
                if graph_error:
                    raise ProofError(graph_error)
                if missing:
                    raise ProofError(f"signal {missing} of the graph not found in the netlist")
                op_bits, op_dom, scale = _strip_low_zeros([b for s in sources for b in bits[s]], op_dom)
                net = Netlist(mod, op_bits, op_dom, driver=probe.driver)
                net.outputs, net.scale = outs, scale
                first, at = {}, 0
                for s in sources:  # a tensor read twice: its second copy's elements are the first's
                    n = len(bits[s])
                    if s in first:
                        net.alias.update({at + i: first[s] + i for i in range(n)})
                    first.setdefault(s, at)
                    at += n
                result.update(_check_scaled(op, net, op_dom, limit))
                result["domain"] = domain
                if result.get("counterexample"):
                    _confirm_in_graph(result["counterexample"], op, model, sources, [*pieces, *rest],
                                      f"{rtl['top']}_ops", latency, work, confirm_sim)
            except ProofError as err:
                result.update(status="not proved", method="none", reason=str(err))
            _close(result, results, t1, cpu0, setup, "graph_setup_seconds", progress)
            if result.get("status") == "proved" and result.get("out_ranges"):
                proved_range = result["out_ranges"]
        bits[op.name] = [b for b, _ in outs]
        if proved_range is not None and all(r is not None for r in proved_range):
            dom[op.name], how[op.name] = [tuple(r) for r in proved_range], "proved range of the ops before"
        else:
            dom[op.name] = [(int(lo), int(hi)) for _, _, _, lo, hi in signals[op.name]]
            how[op.name] = "the builder's ranges of an op before (not proved)"
    return results


def _cache_key(op, sources, latency, limit, model_dom=None) -> str:
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for s in sources:
        digest.update(Path(s).read_bytes())
    digest.update(json.dumps(op.to_dict(), sort_keys=True, default=str).encode())
    digest.update(f"{latency} {limit} {model_dom}".encode())
    return digest.hexdigest()


def _cache_dir() -> Path | None:
    from trigger.toolchain import cache_root

    root = cache_root()
    return None if root is None else root / "prove"


def prove_bundle(bundle, ops: list[str] | None = None, limit: int = ENUM_LIMIT, confirm_sim: bool = True,
                 progress=None, write: bool = True) -> dict:
    """Proves every op module of a bundle; writes and returns ``reports/prove.json``."""
    from trigger.bundle import changed_files, load_manifest, write_json
    from trigger.ir.model import FirmwareModel

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    model = FirmwareModel.load(bundle)
    edited = set(changed_files(bundle, manifest))
    rtl = dict(manifest.get("rtl", {}), ii=manifest.get("ii", 1))
    with tempfile.TemporaryDirectory(prefix="trigger-reference-") as tmp:
        folder = bundle / "reports" / "reference" if write else Path(tmp)
        if write and not ops:  # the folder holds this build's references only
            for old in folder.glob("*.v"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        by_name = {op.name: (k, op) for k, op in enumerate(model.ops)}
        ranges = model.ranges() if model.is_chain else None

        def step(result):  # the reference leg of each op, before its line is printed
            if "reference" not in result:
                result["reference"] = prove_reference(by_name, ranges, result["op"], folder, bundle, limit)
                result["reference_used"] = "verilog" if result["reference"]["status"] == "proved" else "python form"
            if progress:
                progress(result)
        results = prove_design(model, bundle, rtl, ops, limit, confirm_sim, step, edited)
        for result in results:  # ops that were not reported through progress (no module of their own)
            if "reference" not in result:
                step(result)
    return _finish(bundle, manifest, results, edited, limit, write)


def prove_reference(by_name: dict, ranges, name: str, folder: Path, bundle: Path, limit: int) -> dict:
    """The op's reference Verilog (trigger/backends/rtl/reference.py), written to ``folder/<op>.v`` and proved
    equal to the op's reference form with the same methods as the bundle's module (Yosys, affine forms,
    enumeration or z3 for the casts). With the bundle's module proved equal to the same form, the bundle's
    module equals the reference Verilog for all inputs (equality is transitive)."""
    import re

    from trigger.backends.rtl.reference import Unsupported, module_name, print_reference

    if name not in by_name:
        return {"verilog": None, "status": "not printed", "reason": f"op {name!r} is not in the firmware model"}
    k, op = by_name[name]
    try:
        text = print_reference(op)
    except Unsupported as err:
        return {"verilog": None, "status": "not printed", "reason": str(err)}
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", op.name) + ".v")
    path.write_text(text)
    shown = path.relative_to(bundle).as_posix() if path.is_relative_to(bundle) else path.name
    model_dom = [(int(iv.lo), int(iv.hi)) for iv in ranges[k - 1]] if (ranges and k > 0) else None
    cache = _cache_dir()
    key = _cache_key(op, [path], "reference", limit, model_dom)
    hit = cache / f"{key}-reference.json" if cache else None
    if hit is not None and hit.exists():
        leg = dict(json.loads(hit.read_text()), cached=True)
    else:
        with tempfile.TemporaryDirectory(prefix="trigger-prove-reference-") as tmp:
            proof = prove_op(op, [path], module_name(op), 0, Path(tmp), limit, model_dom=model_dom)
        leg = {item: proof[item] for item in ("status", "method", "reason", "counterexample", "seconds", "domain")
               if item in proof}
        if hit is not None:
            hit.parent.mkdir(parents=True, exist_ok=True)
            hit.with_name(hit.name + ".partial").write_text(json.dumps(leg, sort_keys=True))
            hit.with_name(hit.name + ".partial").replace(hit)
        leg["cached"] = False
    return {"verilog": shown, "module": module_name(op), **leg}


def prove_design(model, root: Path, rtl: dict, ops: list[str] | None = None, limit: int = ENUM_LIMIT,
                 confirm_sim: bool = True, progress=None, edited=frozenset()) -> list[dict]:
    """The results per op of RTL under ``root`` described by ``rtl`` (a manifest's rtl section, plus ``ii``):
    one module per op, or the cut chain of pipeline auto."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # netlists are walked recursively, cone by cone
    bundle = Path(root)
    names = [op.name for op in model.ops]
    for name in ops or []:
        if name not in names:
            raise ConfigError(f"{bundle}: no op named {name!r} (ops: {', '.join(names)})")
    if rtl.get("stream"):
        return _prove_stream(model, bundle, rtl, ops, limit, confirm_sim, progress, edited)
    cache = _cache_dir()
    results = []
    ranges = model.ranges() if model.is_chain else None
    graph = not model.is_chain and not rtl.get("stream") and rtl.get("ii", 1) == 1
    if graph or (rtl.get("pipeline") == "auto" and model.is_chain and not rtl.get("stream")):
        rels = [s for s in rtl["sources"] if Path(s).stem != rtl["top"]]
        key = _cache_key(model.ops[0], [bundle / r for r in rels], json.dumps(rtl, sort_keys=True), limit,
                         [[op.to_dict() for op in model.ops], model.input_ports, model.output_names,
                          [model.sources(k) for k in range(len(model.ops))]])
        hit = cache / f"{key}-{'graph' if graph else 'chain'}.json" if cache else None
        if hit is not None and hit.exists():
            results = [dict(r, cached=True) for r in json.loads(hit.read_text())]
            results = [r for r in results if not ops or r["op"] in ops]
        else:
            with tempfile.TemporaryDirectory(prefix="trigger-prove-") as tmp:
                results = (prove_graph(bundle, rtl, model, Path(tmp), limit, ops, confirm_sim=confirm_sim) if graph
                           else prove_chain(bundle, rtl, model, Path(tmp), limit, ops))
            if hit is not None and not ops:
                hit.parent.mkdir(parents=True, exist_ok=True)
                hit.with_name(hit.name + ".partial").write_text(json.dumps(results, default=str))
                hit.with_name(hit.name + ".partial").replace(hit)
            results = [dict(r, cached=False) for r in results]
        for r in results:
            r["sources"] = rels
            r["edited_after_build"] = any(x in edited for x in rels)
            if progress:
                progress(r)
        return results
    with tempfile.TemporaryDirectory(prefix="trigger-prove-") as tmp:
        for op, module, sources, latency in op_modules(model, bundle / "rtl", rtl.get("top"),
                                                       rtl.get("op_latency", {})):
            if ops and op.name not in ops:
                continue
            schedule = _schedule(model, rtl, names.index(op.name))
            if sources is None:
                results.append({"op": op.name, "kind": op.kind, "module": None, "status": "not proved",
                                "method": "none", "reason": "no module of its own (pipeline auto, graph or "
                                "streamed RTL): not supported by trigger prove yet"})
                continue
            rels = [s.relative_to(bundle).as_posix() for s in sources]
            k = names.index(op.name)
            model_dom = [(int(iv.lo), int(iv.hi)) for iv in ranges[k - 1]] if (ranges and k > 0) else None
            key = _cache_key(op, sources, f"{latency} {schedule}", limit, model_dom)
            hit = cache / f"{key}.json" if cache else None
            if hit is not None and hit.exists():
                result = json.loads(hit.read_text())
                result["cached"] = True
            else:
                work = Path(tmp) / module
                work.mkdir()
                result = prove_op(op, sources, module, latency, work, limit, model_dom=model_dom, schedule=schedule)
                cex = result.get("counterexample")
                if cex is not None and confirm_sim and "space" not in cex:  # op inputs only
                    _confirm_counterexample(cex, op, sources, module, latency, work,
                                            schedule.ii if schedule else 1)
                if hit is not None:
                    hit.parent.mkdir(parents=True, exist_ok=True)
                    tmp_file = hit.with_name(hit.name + ".partial")
                    tmp_file.write_text(json.dumps(result, sort_keys=True))
                    tmp_file.replace(hit)
                result["cached"] = False
            result["sources"] = rels
            result["edited_after_build"] = any(r in edited for r in rels)
            results.append(result)
            if progress:
                progress(result)
    return results


def _prove_stream(model, bundle: Path, rtl: dict, ops, limit: int, confirm_sim: bool, progress, edited) -> list[dict]:
    """A streamed design (trigger/backends/rtl/stream.py): the tail after the streamed layers is an RTL design
    of its own (``<top>_tail``, the tail model written by write_rtl, shared at the tail's ii), proved as any;
    the streamed layers are "not proved" (docs/prove.md, "Not covered yet")."""
    from trigger.ir.model import FirmwareModel

    from trigger.backends.rtl.stream import plan_stages

    stream = rtl["stream"]
    tail_names = list(stream.get("tail_ops") or [])
    at = len(model.ops) - len(tail_names)
    results = []
    stages, _, _ = plan_stages(model)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trigger-prove-") as tmp:
        why_stage, why_collector = stream_frame(bundle, rtl, stages, Path(tmp))
    frame_seconds = round(time.perf_counter() - t0, 3)
    for s, (stage, info) in enumerate(zip(stages, stream["stages"])):
        if ops and not any(op.name in ops for op in stage.ops):
            continue
        kernel = FirmwareModel(f"{model.name}_k{s}", stage.kernel_ops[0].input, stage.kernel_ops)
        module = f"{rtl['top']}_k{s}"
        with tempfile.TemporaryDirectory(prefix="trigger-prove-") as tmp:
            proofs = prove_chain(bundle, dict(rtl, ii=1), kernel, Path(tmp), limit, progress=None,  # one pixel a clock
                                 kernel=(module, lambda: _kernel_signals(kernel, rtl, module),
                                         int(info["kernel_latency"])))
        # the stage's windows feed the datapath; the next stage's windows (or the collector) take its output
        frame = why_stage[s] or (why_stage[s + 1] if s + 1 < len(stages) else why_collector)
        for op, proof in zip(stage.ops, proofs):
            if ops and op.name not in ops:
                continue
            done = proof["status"] == "proved"
            reason = (f"kernel datapath: {proof.get('reason', proof['status'])}" if not done else
                      f"its kernel datapath is proved for every window, but the frame check failed: {frame}" if frame
                      else None)
            kept = {k: proof[k] for k in ("seconds", "cpu_seconds", "peak_rss_mb", "adders", "domain",
                                         "counterexample") if k in proof}
            status = "counterexample" if proof["status"] == "counterexample" else \
                "proved" if done and not frame else "not proved"
            results.append(dict(kept, op=op.name, kind=op.kind, module=proof["module"], status=status,
                                method=f"{proof.get('method')} (kernel datapath)" + (
                                    "; line buffer and collector: frame unrolled" if done else ""),
                                kernel_datapath=proof["status"], frame_check=frame or "passed",
                                frame_seconds=frame_seconds, **({"reason": reason} if reason else {})))
            if progress:
                progress(results[-1])
    wanted = [name for name in tail_names if not ops or name in ops]
    if not wanted:
        return results
    tail = FirmwareModel(f"{model.name}_tail", model.ops[at - 1].output, model.ops[at:], kind=model.kind)
    top = f"{rtl['top']}_tail"
    tail_rtl = dict(rtl, top=top, ii=int(stream.get("tail_ii", 1)),
                    sources=[x for x in rtl["sources"] if Path(x).stem.startswith(top)])
    tail_rtl.pop("stream")
    for r in prove_design(tail, bundle, tail_rtl, wanted, limit, confirm_sim, progress, edited):
        results.append(dict(r, stream_tail=top))
    return results


def stream_frame(bundle: Path, rtl: dict, stages: list, work: Path) -> tuple[list, str | None]:
    """The line buffers and the collector of a streamed design, over one frame unrolled (``Unrolled`` driven by the
    frame protocol: pixel t of the frame on in_data in cycle t, in_first with pixel 0, in_valid high for the
    frame's pixels; checked twice, the frame before it idle, and back to back): for each stage, None when the
    j-th output pixel its kernel datapath computes was given window j of the stage's input (every element, bit
    for bit: the frame's pixels, or the pixels the stage before put out), else why; and the same for the
    collector (the flat tensor it hands on holds the last stage's output pixels in order). With the datapath
    proved for every window, that proves the streamed op for every frame."""
    stream = rtl["stream"]
    n = len(stages)
    if stream.get("padding"):
        return ["a padding stage in front (valid/ready input): its frame is not unrolled yet"] * n, "not checked"
    pixels, latency = int(stream["pixels_per_frame"]), int(stream["latency_after_last_pixel"])
    files = [bundle / x for x in rtl["sources"] if Path(x).suffix == ".v"]
    try:
        mod = yosys_json(files, rtl["top"], work)
        names = {name: info["bits"] for name, info in mod["netnames"].items()}
        wanted = ["held", "frame_release"] + [f"s{k}_{w}" for k in range(n) for w in ("valid", "first")] + \
            [f"u_s{k}.u_kernel.{w}" for k in range(n) for w in ("in_data", "out_data")]
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ProofError(f"signals {missing[:3]} not found in the streamed top")
    except ProofError as err:
        return [str(err)] * n, str(err)
    why_stage: list = [None] * n
    why_collector = None
    end = pixels + latency + 4
    for before in ("idle", "back to back"):
        start = -pixels if before == "back to back" else 0
        first = start - latency - 8  # registers before that are unknown; the valid chains are flushed by then

        def valid(k, t):
            return "1" if (0 <= t < pixels or start <= t < 0) else "0" if t < pixels else None

        drive = {"in_valid": valid, "rst": lambda k, t: "0",
                 "in_first": lambda k, t: "1" if t in (0, start) else "0" if t < pixels else None,
                 "in_data": lambda k, t: ("pixel", t, k) if 0 <= t < pixels else None}
        frames = Unrolled(mod, None, drive=drive, first=first)
        try:
            outs = []  # per stage, the cycles its output pixels of this frame come out
            for k, (stage, info) in enumerate(zip(stages, stream["stages"])):
                cycles = _frame_pixels(frames, names, k, start, end, stage.out_height * stage.out_width,
                                       1 if before == "back to back" else 0)
                outs.append(cycles)
                why = _windows_differ(frames, names, stage, k, cycles, int(info["kernel_latency"]),
                                      outs[k - 1] if k else None, stages[k - 1] if k else None)
                if why and why_stage[k] is None:
                    why_stage[k] = f"{why} (frame before {before})"
            last, cycles = stages[-1], outs[-1]
            release = [t for t in range(cycles[-1], end + pixels) if frames.bit(names["frame_release"][0], t) == "1"]
            if not release:
                raise ProofError("no frame_release after the frame's last output pixel")
            held = [frames.bit(b, release[0]) for b in names["held"]]
            width = len(names[f"u_s{n - 1}.u_kernel.out_data"])
            want = [frames.bit(b, t) for t in cycles for b in names[f"u_s{n - 1}.u_kernel.out_data"]]
            if held[:len(want)] != want:
                bad = next(i for i, (a, b) in enumerate(zip(held, want)) if a != b)
                why_collector = why_collector or (f"output pixel {bad // width}, bit {bad % width}: the collected tensor "
                                                  f"does not hold it (frame before {before})")
        except ProofError as err:
            text = f"{err} (frame before {before})"
            why_stage = [w or text for w in why_stage]
            why_collector = why_collector or text
    return why_stage, why_collector


def _frame_pixels(frames: Unrolled, names: dict, k: int, start: int, end: int, count: int, group: int) -> list:
    """The cycles stage k puts out the output pixels of frame ``group`` (0: the first frame from cycle ``start``),
    from its out_valid and out_first flags unrolled: ``count`` of them, the first flagged first."""
    groups: list = []
    t = start
    while not (len(groups) > group and len(groups[group]) == count):
        if t >= end + count:
            raise ProofError(f"stage {k}: {len(groups[group]) if len(groups) > group else 0} output pixels in a "
                             f"frame, {count} expected")
        v = frames.bit(names[f"s{k}_valid"][0], t)
        f = frames.bit(names[f"s{k}_first"][0], t) if v == "1" else "0"
        if v not in ("0", "1") or f not in ("0", "1"):
            why = frames.unknown.get(v if v not in ("0", "1") else f, "a value outside the frame")
            raise ProofError(f"stage {k}: out_valid/out_first in cycle {t} depend on {why}")
        if v == "1":
            if f == "1":
                groups.append([])
            elif not groups:
                raise ProofError(f"stage {k}: an output pixel in cycle {t} before any flagged first")
            groups[-1].append(t)
        t += 1
    return groups[group]


def _windows_differ(frames: Unrolled, names: dict, stage, k: int, cycles: list, latency: int, source_cycles,
                    source_stage) -> str | None:
    """The first window element of stage k's kernel datapath that is not the input element window j should read
    (None: every one is): j-th output pixel in cycle cycles[j], its window in cycle cycles[j] - latency."""
    geo = stage.ops[0].geometry
    ins = names[f"u_s{k}.u_kernel.in_data"]
    w = stage.kernel_ops[0].input.widths[0]
    if source_stage is not None:
        src = names[f"u_s{k - 1}.u_kernel.out_data"]
        if source_stage.kernel_ops[-1].output.widths[0] != w:
            return f"stage {k}: its input elements are {w} bits, the stage before puts out " \
                   f"{source_stage.kernel_ops[-1].output.widths[0]}"
    for j, row in enumerate(geo.im2col()):
        got = [frames.bit(b, cycles[j] - latency) for b in ins]
        for e, flat in enumerate(row):
            pixel, ch = divmod(int(flat), geo.channels)
            if source_stage is None:  # the frame's pixel, as the top's in_data carried it
                want = [frames.bit(b, pixel) for b in frames.mod["ports"]["in_data"]["bits"][ch * w:(ch + 1) * w]]
            else:
                want = [frames.bit(b, source_cycles[pixel]) for b in src[ch * w:(ch + 1) * w]]
            if got[e * w:(e + 1) * w] != want:
                return f"stage {k}: window {j}, element {e} is not input pixel {pixel} channel {ch}"
    return None


def _kernel_signals(kernel, rtl: dict, module: str) -> list[list[tuple]]:
    """A streamed stage's kernel datapath (stream.kernel_module: the window op, then the pixel ops, in one module):
    each op's output signals, found by running the op emitters again with the bundle's settings (names only)."""
    from trigger.backends.rtl import parse_pipeline
    from trigger.backends.rtl.builder import ModuleBuilder, parse_multiplier

    _, dsp = parse_multiplier(rtl.get("multiplier", "shift_add"))
    every = parse_pipeline(rtl.get("pipeline"))
    max_delay = float(rtl["max_delay_ns_per_stage"]) if every == "auto" else None
    m = ModuleBuilder(module, max_delay=max_delay, dsp_above_bits=dsp)
    first = kernel.ops[0]
    xs = [m.unpack(f"x{i}", lsb, fmt) for i, (lsb, fmt) in enumerate(zip(first.input.offsets, first.input.formats))]
    out = []
    for op in kernel.ops:
        xs = op.emit_rtl(m, xs, {"pipeline_every": None if every == "auto" else every, "ii": 1, "hold": True})
        out.append([(y.name, y.width, y.const, y.lo, y.hi, y.stage) for y in xs])
    return out


def _finish(bundle, manifest, results, edited, limit, write) -> dict:
    from trigger.bundle import write_json

    counts = {s: sum(r["status"] == s for r in results) for s in ("proved", "counterexample", "not proved")}
    from trigger.bundle import MANIFEST, sha256

    report = {"bundle": manifest.get("name"), "manifest_sha256": sha256(bundle / MANIFEST), "ops": results,
              "summary": counts,
              "reference_verilog": {s: sum(r.get("reference", {}).get("status") == s for r in results)
                                    for s in ("proved", "counterexample", "not proved", "not printed")},
              "edited_files": sorted(edited),
              "rests_on": ["Yosys 'read_verilog; proc; flatten' reads the Verilog as the simulators do",
                           "the reference forms equal op.emulate (tests/test_prove.py checks them on random vectors)",
                           "the reference Verilog (reports/reference/<op>.v) equals op.emulate (tests/test_prove.py "
                           "simulates each printed kind with Icarus on random and extreme inputs); where it is proved "
                           "equal to the reference form, the bundle's module equals it for all inputs",
                           "every in_data-to-out_data path crosses the op's latency in registers (checked per bit)",
                           "a shared design (ii > 1): the unrolled event (start in cycle 0, events ii clocks apart, "
                           "rst low; anything else unknown and, if read, not proved)",
                           "a streamed design: its frame unrolled with the pixels on consecutive clocks, the frame "
                           "before idle or back to back",
                           "trigger/prove.py's affine evaluation and enumeration"],
              "limits": {"enumeration_values": limit, "whole_op_input_bits": WHOLE_BITS}}
    if write:
        write_json(bundle / "reports" / "prove.json", report)
    return report


def line(result: dict) -> str:
    """One line per op for the CLI."""
    text = f"{result['op']:<16} {result['status']:<15} {result.get('method', '')}"
    if "seconds" in result:
        text += f"  {result['seconds']:.1f} s"
    if result.get("cached"):
        text += " (cached)"
    if result.get("edited_after_build"):
        text += "  [RTL edited after build]"
    if result["status"] != "proved" and result.get("reason"):
        text += f"\n    {result['reason']}"
    ref = result.get("reference")
    if ref:
        text += (f"\n    reference Verilog {ref['verilog']}: {ref['status']} {ref.get('method', '')}".rstrip()
                 + (f" ({ref['reason']})" if ref["status"] != "proved" and ref.get("reason") else ""))
    cex = result.get("counterexample")
    if cex:
        text += (f"\n    counterexample: outputs {cex.get('outputs_differing', [])[:4]} differ; "
                 f"simulation confirms: {cex.get('confirmed')}")
    return text
