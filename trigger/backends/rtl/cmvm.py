"""Multiplier-free constant matrix-vector products: signed digits plus shared subexpressions.

Why: a trigger FPGA keeps its DSPs for other algorithms, and ``x * k`` for a
constant ``k`` is only a handful of shifted additions. Writing every constant
in canonical signed digits (CSD: digits -1, 0, +1, no two adjacent non-zeros)
turns ``y_j = sum_i x_i * M[i, j]`` into a sum of signed, shifted inputs; many
outputs of a layer then need the same pair ``x_a +- (x_b << d)`` (at various
shifts), so computing that pair once and reusing it removes adders across the
whole layer. This is the idea of da4ml's CMVM (Sun et al., "da4ml: Distributed
Arithmetic for Real-time Neural Networks on FPGAs"); the algorithm here is our
own, simpler and deterministic:

1. Recode every entry in CSD: a digit tensor ``D[source, bit, column]``.
2. Count, for every pattern ``(a, b, d, sign)``, how many digit pairs in the
   same column have source ``a`` at bit ``s`` and source ``b`` at bit ``s + d``
   with relative sign ``sign`` (matrix products over the digit planes; only the
   rows of changed sources are recounted after each step).
3. Take the pattern of the highest score, make it a new source
   ``a + sign * (b << d)``, and replace its non-overlapping occurrences. The
   score (step 5) is how often the pattern occurs, ties broken by width or by
   input order; "bits", the adder bits the node saves from the value ranges of
   the sources (an adder costs a LUT per bit from its shifted operand's lowest
   bit to the top of its result), is also available. A new source may not be deeper than ``max_depth`` adders, so sharing cannot make
   the logic much deeper than a plain adder tree.
4. Stop when no pattern occurs twice: what remains in each column is summed
   by the RTL builder as an adder tree balanced on estimated delay.
5. Greedy choices are myopic and ties frequent, so steps 2-4 run with three
   scores (``SCORES``: occurrences, ties to the wider node; occurrences alone,
   ties to the first or to the last inputs) and the plan with the fewest
   estimated adder bits (``estimated_bits``, from the input ranges) is kept:
   with the builder's tree order, 0.6% fewer LUTs on the benchmark network than
   occurrences alone (Yosys, scripts/bench_da4ml.py), for about three times the
   solving time. The "bits" score (adder bits saved) gave the smallest plan on
   none of the 8 layers of the benchmark network and the reference jet tagger,
   so it is not in ``SCORES``.

The result is a pure integer plan (no RTL): ``plan_cmvm`` gives the shared
nodes and, per column, the signed shifted terms left to add. ``evaluate`` checks
a plan against the matrix with integers (the tests use it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def csd(value: int) -> list[int]:
    """Canonical signed digits of an integer, least significant first (digits -1, 0, 1)."""
    value, digits = int(value), []
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value = 1 mod 4, -1 when value = 3 mod 4
            value -= digit
        else:
            digit = 0
        digits.append(digit)
        value >>= 1
    return digits


@dataclass(frozen=True)
class Node:
    """A shared source: ``source[a] + sign * (source[b] << shift)``."""

    a: int
    b: int
    shift: int
    sign: int


@dataclass(frozen=True)
class Term:
    """``sign * (source[src] << shift)`` in a column's sum."""

    src: int
    shift: int
    sign: int


@dataclass
class CmvmPlan:
    n_inputs: int
    nodes: list[Node]  # source n_inputs + k is nodes[k]
    columns: list[list[Term]]
    depth: list[int]  # adders from the inputs to each source

    @property
    def adders(self) -> int:
        """Adders the plan needs (shared nodes, then a tree per column; biases not counted)."""
        return len(self.nodes) + sum(max(len(c) - 1, 0) for c in self.columns)


_PLANS: dict = {}  # the last plans made: the same layer written twice (pipelines, tests) is solved once


def plan_cmvm(matrix, max_depth: int | None = None, ranges=None) -> CmvmPlan:
    """The shift-and-add plan of ``y = x @ matrix`` for an integer matrix (n_in, n_out).

    ``max_depth`` bounds the adder depth of a shared node (default: the depth of a balanced
    tree over the most digits any column has, so that sharing rarely lengthens a column).
    ``ranges``: the (lo, hi) integer range of each input (default: all equal), so that a
    shared node is chosen by the adder bits it saves, not by how often it occurs alone.
    """
    matrix = np.asarray(matrix, dtype=object)
    ranges = None if ranges is None else tuple((int(lo), int(hi)) for lo, hi in ranges)
    key = (matrix.shape, tuple(int(v) for v in matrix.ravel()), max_depth, ranges)
    if key not in _PLANS:
        if len(_PLANS) >= 64:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = _stored_plan(key) or _plan_single_threaded(matrix, max_depth, ranges)
        _store_plan(key, _PLANS[key])
    return _PLANS[key]


def _plan_single_threaded(matrix, max_depth, ranges) -> CmvmPlan:
    """``_plan`` with BLAS on one thread: its thousands of small products gain nothing from a second thread,
    and on a busy machine each one waits for that thread to be scheduled (a 16 x 64 matrix: 5.1 s wall for
    1.0 s of CPU beside another job on 2 cores, 0.7 s with one thread)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _plan(matrix, max_depth, ranges)


def _plan_file(key):
    """Where a plan is kept between runs ($TRIGGER_CACHE/cmvm; None when caching is off): named by a hash of
    the problem and of this file, so a changed algorithm never reads an old plan. Solving a wide layer takes
    seconds to minutes, and a scan or a rebuild with other settings asks for the same plans again."""
    import hashlib
    import json

    from trigger.toolchain import cache_root

    root = cache_root()
    if root is None:
        return None
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(json.dumps([list(key[0]), list(key[1]), key[2], key[3]]).encode())
    return root / "cmvm" / f"{digest.hexdigest()[:40]}.json"


def _stored_plan(key) -> CmvmPlan | None:
    """The plan stored for ``key``, or None (missing or unreadable: solved again)."""
    import json

    path = _plan_file(key)
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return CmvmPlan(int(data["n_inputs"]), [Node(*node) for node in data["nodes"]],
                        [[Term(*term) for term in column] for column in data["columns"]], list(data["depth"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store_plan(key, plan: CmvmPlan) -> None:
    """Writes the plan atomically (a temporary file renamed into place); a failure only loses the cache."""
    import json
    import os
    import tempfile

    path = _plan_file(key)
    if path is None or path.exists():
        return
    data = {"n_inputs": plan.n_inputs, "nodes": [[x.a, x.b, x.shift, x.sign] for x in plan.nodes],
            "columns": [[[t.src, t.shift, t.sign] for t in column] for column in plan.columns],
            "depth": [int(v) for v in plan.depth]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass


SCORES = ("count_then_width", "count", "count_last")


def _plan(matrix: np.ndarray, max_depth: int | None, ranges=None, scores=SCORES) -> CmvmPlan:
    """Solves with each of ``scores`` and keeps the plan of fewest estimated adder bits (the first on ties):
    the greedy choice is myopic and ties are frequent, so no one score wins on every matrix."""
    n_in, n_out = matrix.shape
    recoded = [[csd(v) for v in row] for row in matrix]
    bits = max((len(d) for row in recoded for d in row), default=0) + 1
    digits = np.zeros((n_in, bits, n_out), dtype=np.int8)
    for i, row in enumerate(recoded):
        for j, ds in enumerate(row):
            digits[i, :len(ds), j] = ds
    if max_depth is None:
        most = int(np.count_nonzero(digits, axis=(0, 1)).max(initial=1))
        max_depth = max(1, (most - 1).bit_length())
    if ranges is None:
        ranges = [(-(1 << 15), (1 << 15) - 1)] * n_in
    best = None
    for score in scores:
        if score == "count_last":  # ties to the last inputs: solved with the inputs in reverse order
            solver = _Solver(digits[::-1].copy(), max_depth, ranges[::-1], "count")
            solver.run()
            plan = _reverse_inputs(solver.plan())
        else:
            solver = _Solver(digits, max_depth, ranges, score)
            solver.run()
            plan = solver.plan()
        cost = estimated_bits(plan, ranges)
        if best is None or cost < best[0]:
            best = (cost, plan)
    return best[1]


def _reverse_inputs(plan: CmvmPlan) -> CmvmPlan:
    """The plan of a matrix solved with its rows (inputs) in reverse order, for the matrix itself."""
    n = plan.n_inputs

    def source(i: int) -> int:
        return n - 1 - i if i < n else i

    nodes = [Node(source(x.a), source(x.b), x.shift, x.sign) for x in plan.nodes]
    columns = [sorted((Term(source(t.src), t.shift, t.sign) for t in col), key=lambda t: (t.src, t.shift))
               for col in plan.columns]
    return CmvmPlan(n, nodes, columns, plan.depth[:n][::-1] + plan.depth[n:])


class _Solver:
    """Greedy pair extraction over the digit tensor (see the module docstring)."""

    def __init__(self, digits: np.ndarray, max_depth: int, ranges, score: str = "bits"):
        self.n_inputs, self.bits, self.n_cols = digits.shape
        self.max_depth = max_depth
        self.score = score
        if score == "count_then_width":  # every input signed and as wide as the widest: a node's width
            wide = max(_width(int(lo), int(hi)) for lo, hi in ranges)  # tells its depth and shift only
            ranges = [(-(1 << (wide - 1)), (1 << (wide - 1)) - 1)] * len(ranges)
        self.n = self.n_inputs
        cap = self.n_inputs + 16
        self.digits = np.zeros((cap, self.bits, self.n_cols), dtype=np.int8)
        self.digits[:self.n] = digits
        self.depth = [0] * self.n
        self.nodes: list[Node] = []
        # the value range of every source (floats: only for the scores)
        self.lo = np.zeros(cap)
        self.hi = np.zeros(cap)
        self.lo[:self.n] = [lo for lo, _ in ranges]
        self.hi[:self.n] = [hi for _, hi in ranges]
        # counts[d, 0 or 1, a, b]: pairs (a at bit s, b at bit s + d) with equal (0) or opposite (1) signs
        self.counts = np.zeros((self.bits, 2, cap, cap), dtype=np.int32)
        self._count_all()
        # per (d, sign, a): the partner b of the highest score (``_score``), kept up to date incrementally
        self.best = np.zeros((self.bits, 2, cap))
        self.partner = np.zeros((self.bits, 2, cap), dtype=np.int64)
        d, o, a = (g.ravel() for g in np.indices((self.bits, 2, cap)))
        rows = self._score(self.counts[d, o, a, :], d, o, a)
        self.best[d, o, a] = rows.max(axis=1)
        self.partner[d, o, a] = rows.argmax(axis=1)

    def _score(self, counts: np.ndarray, d, opposite, a, b=None) -> np.ndarray:
        """The score of making each pattern (d, opposite, a, b) a shared node, one row per (d, opposite, a)
        and one column per b; 0 for a pattern that occurs less than twice. 'bits': the adder bits it
        saves (every occurrence but the one the node itself costs saves an adder about as wide as the
        node, counted from its shifted operand's lowest bit up); 'count_then_width': occurrences, ties
        to the wider node; 'count': occurrences alone (ties to the first in a fixed order)."""
        if self.score == "count":
            return np.where(counts >= 2, counts, 0).astype(np.float64)
        score = np.zeros(counts.shape)
        i, j = np.nonzero(counts >= 2)  # only patterns that occur twice are scored (few)
        d, opposite, a = (np.asarray(v)[i] for v in (d, opposite, a))
        b = j if b is None else np.asarray(b).ravel()[j]
        scale = np.exp2(d)
        blo, bhi = self.lo[b] * scale, self.hi[b] * scale
        lo = self.lo[a] + np.where(opposite == 1, -bhi, blo)
        hi = self.hi[a] + np.where(opposite == 1, -blo, bhi)
        width = np.maximum(np.frexp(hi)[1], np.frexp(-lo - 1)[1]) + 1
        width = width - ((lo >= 0) | (hi < 0))  # an adder with a result of one sign skips its top bit
        bits = np.maximum(width - d, 1)
        score[i, j] = (counts[i, j] - 1) * bits if self.score == "bits" else counts[i, j] * 4096.0 + bits
        return score

    # ---------------------------------------------------------------- counting
    def _count_all(self):
        n, planes = self.n, self.digits[:self.n]
        pos, neg = (planes == 1).astype(np.float32), (planes == -1).astype(np.float32)
        for d in range(self.bits):
            lo_p = pos[:, :self.bits - d].reshape(n, -1)
            lo_n = neg[:, :self.bits - d].reshape(n, -1)
            hi_p = pos[:, d:].reshape(n, -1)
            hi_n = neg[:, d:].reshape(n, -1)
            self.counts[d, 0, :n, :n] = np.rint(lo_p @ hi_p.T + lo_n @ hi_n.T)
            self.counts[d, 1, :n, :n] = np.rint(lo_p @ hi_n.T + lo_n @ hi_p.T)
        self._mask_rows(range(n))

    def _recount(self, rows):
        """Recounts every pattern involving the sources ``rows`` (as a or as b), all rows in one product.

        ``corr[r, q, t, s]`` = sum over columns of digit (q, t) times digit (r, s), per sign pair; the
        pairs (r at s, q at s + d) lie on its diagonal offset -d, (q at s, r at s + d) on offset +d."""
        n, bits = self.n, self.bits
        rows = list(rows)
        planes = self.digits[:n]
        pos = (planes == 1).astype(np.float32).reshape(n * bits, self.n_cols)
        neg = (planes == -1).astype(np.float32).reshape(n * bits, self.n_cols)
        diagonals, ahead, behind = self._diagonals()
        k = len(rows)
        rp = pos.reshape(n, bits, -1)[rows].reshape(k * bits, -1)
        rn = neg.reshape(n, bits, -1)[rows].reshape(k * bits, -1)

        def per_row(corr):  # (n * bits, k * bits) -> (k, n, 2 * bits - 1): row r, source q, diagonal offset
            corr = corr.reshape(n, bits, k, bits).transpose(2, 0, 1, 3).reshape(k * n, bits * bits)
            return np.rint(corr @ diagonals).astype(np.int32).reshape(k, n, -1)

        same = per_row(pos @ rp.T + neg @ rn.T)
        opposite = per_row(pos @ rn.T + neg @ rp.T)
        for i, r in enumerate(rows):  # the same value from either row of a pair: the order does not matter
            self.counts[:, 0, r, :n] = same[i][:, ahead].T
            self.counts[:, 1, r, :n] = opposite[i][:, ahead].T
            self.counts[:, 0, :n, r] = same[i][:, behind].T
            self.counts[:, 1, :n, r] = opposite[i][:, behind].T
        self._mask_rows(rows)
        self._refresh(rows)

    def _diagonals(self):
        """(matrix summing each diagonal of a bits x bits block, the offsets +d, the offsets -d), made once."""
        if getattr(self, "_diagonal_sums", None) is None:
            bits = self.bits
            t, u = np.indices((bits, bits))
            diagonals = (t - u + bits - 1 == np.arange(2 * bits - 1)[:, None, None]).reshape(2 * bits - 1, -1)
            self._diagonal_sums = (diagonals.T.astype(np.float32),  # (t, s) -> offset t - s (+ bits - 1)
                                   np.arange(bits - 1, 2 * bits - 1),  # q at s + d: offset +d
                                   np.arange(bits - 1, -1, -1))  # r at s + d: offset -d
        return self._diagonal_sums

    def _refresh(self, rows):
        """Updates ``best``/``partner`` after the counts of ``rows`` (as a and as b) changed: rows that
        changed, or whose best partner did, are searched again; the others only compare the new columns
        (the highest score among them, the first column on ties, as if compared one after another)."""
        rows = sorted(rows)
        again = self.partner == rows[0]
        for r in rows[1:]:
            again |= self.partner == r
        again[:, :, rows] = True
        idx = np.nonzero(again)
        sub = self._score(self.counts[idx[0], idx[1], idx[2], :], *idx)
        self.best[idx] = sub.max(axis=1)
        self.partner[idx] = sub.argmax(axis=1)
        d, o, a = self._all_rows()
        vals = self._score(self.counts[:, :, :, rows].reshape(d.size, len(rows)), d, o, a, np.array(rows))
        top = vals.max(axis=1).reshape(self.best.shape)
        column = np.asarray(rows)[vals.argmax(axis=1)].reshape(self.best.shape)
        better = ~again & ((top > self.best) | ((top == self.best) & (column < self.partner)))
        self.best[better] = top[better]
        self.partner[better] = column[better]

    def _all_rows(self):
        """Every (d, sign, a) of ``best``, raveled (made again when the arrays grow)."""
        if getattr(self, "_rows", None) is None or self._rows[0].size != self.best.size:
            self._rows = tuple(g.ravel() for g in np.indices(self.best.shape))
        return self._rows

    def _mask_rows(self, rows):
        """Patterns that are not allowed: a source with itself at shift 0, (b, a) at shift 0 for a < b,
        and sources already at the depth limit."""
        n = self.n
        for r in rows:
            self.counts[0, :, r, :r + 1] = 0
            self.counts[0, :, r:n, r] = 0
            if self.depth[r] >= self.max_depth:
                self.counts[:, :, r, :n] = 0
                self.counts[:, :, :n, r] = 0

    # ---------------------------------------------------------------- main loop
    def run(self):
        while True:
            d, opposite, a = np.unravel_index(int(np.argmax(self.best)), self.best.shape)
            b = int(self.partner[d, opposite, a])
            if self.best[d, opposite, a] <= 0:
                return
            d, a, sign = int(d), int(a), -1 if opposite else 1
            if self._substitute(a, b, d, sign) < 2:  # overlapping occurrences (a == b): not worth a node
                self.counts[d, int(opposite), a, b] = 0
                self._refresh([a])

    def _grow(self):
        cap = self.digits.shape[0]
        if self.n < cap:
            return
        new = cap * 2
        digits = np.zeros((new, self.bits, self.n_cols), dtype=np.int8)
        digits[:cap] = self.digits
        counts = np.zeros((self.bits, 2, new, new), dtype=np.int32)
        counts[:, :, :cap, :cap] = self.counts
        best = np.zeros((self.bits, 2, new), dtype=self.best.dtype)
        best[:, :, :cap] = self.best
        partner = np.zeros((self.bits, 2, new), dtype=self.partner.dtype)
        partner[:, :, :cap] = self.partner
        lo, hi = np.zeros(new), np.zeros(new)
        lo[:cap], hi[:cap] = self.lo, self.hi
        self.digits, self.counts, self.best, self.partner, self.lo, self.hi = digits, counts, best, partner, lo, hi

    def _substitute(self, a: int, b: int, d: int, sign: int) -> int:
        """Makes source n = a + sign * (b << d) and rewrites its occurrences; returns how many."""
        lo = self.digits[a, :self.bits - d, :]
        hi = self.digits[b, d:, :]
        match = (lo != 0) & (hi == sign * lo)
        if a == b:  # a digit may belong to two overlapping occurrences: keep the lower one
            for s in range(self.bits - d):
                clash = match[s] & (match[s - d] if s >= d else False)
                match[s] &= ~clash
        found = int(np.count_nonzero(match))
        if found < 2:
            return found
        self._grow()
        r = self.n
        s_idx, c_idx = np.nonzero(match)
        self.digits[r, s_idx, c_idx] = self.digits[a, s_idx, c_idx]
        self.digits[a, s_idx, c_idx] = 0
        self.digits[b, s_idx + d, c_idx] = 0
        self.nodes.append(Node(a, b, d, sign))
        shifted = (self.lo[b] * 2.0 ** d, self.hi[b] * 2.0 ** d)[::sign]
        self.lo[r], self.hi[r] = self.lo[a] + sign * shifted[0], self.hi[a] + sign * shifted[1]
        self.depth.append(max(self.depth[a], self.depth[b]) + 1)
        self.n += 1
        self._recount(sorted({a, b, r}))
        return found

    def plan(self) -> CmvmPlan:
        columns = []
        for c in range(self.n_cols):
            src, bit = np.nonzero(self.digits[:self.n, :, c])
            columns.append([Term(int(i), int(s), int(self.digits[i, s, c])) for i, s in zip(src, bit)])
        return CmvmPlan(self.n_inputs, list(self.nodes), columns, list(self.depth))


def evaluate(plan: CmvmPlan, x) -> list[int]:
    """The plan's outputs for integer inputs ``x`` (Python integers: a reference for tests)."""
    values = [int(v) for v in x]
    for node in plan.nodes:
        values.append(values[node.a] + node.sign * (values[node.b] << node.shift))
    return [sum(t.sign * (values[t.src] << t.shift) for t in col) for col in plan.columns]


def _width(lo: int, hi: int) -> int:
    """Bits of the signed signal holding [lo, hi]."""
    return max(hi.bit_length(), (-lo - 1).bit_length()) + 1


def _adder_bits(lo: int, hi: int, lsb: int) -> int:
    """The LUTs of an adder with result range [lo, hi] whose operands both have bits from ``lsb`` up (the
    bits below pass through; a result of one sign has a constant top bit), as the RTL builder writes it."""
    return max(_width(lo, hi) - lsb - (lo >= 0 or hi < 0), 1)


def estimated_bits(plan: CmvmPlan, ranges) -> int:
    """The adder bits (about the LUTs) of a plan on inputs in ``ranges``: its shared nodes, then each
    column summed as a tree that adds the two narrowest terms first (the builder balances on delay;
    this only ranks plans of the same matrix)."""
    lo, hi = [int(r[0]) for r in ranges], [int(r[1]) for r in ranges]
    total = 0
    for node in plan.nodes:
        blo, bhi = (lo[node.b] << node.shift, hi[node.b] << node.shift)[::node.sign]
        lo.append(lo[node.a] + node.sign * blo)
        hi.append(hi[node.a] + node.sign * bhi)
        total += _adder_bits(lo[-1], hi[-1], node.shift)
    for column in plan.columns:
        heap = []
        for k, t in enumerate(column):
            tlo, thi = (lo[t.src] << t.shift, hi[t.src] << t.shift)[::t.sign]
            tlo, thi = t.sign * tlo, t.sign * thi
            heap.append((_width(tlo, thi), k, tlo, thi, t.shift))
        heapq.heapify(heap)
        count = len(heap)
        while len(heap) > 1:
            _, _, alo, ahi, alsb = heapq.heappop(heap)
            _, _, blo, bhi, blsb = heapq.heappop(heap)
            slo, shi = alo + blo, ahi + bhi
            total += _adder_bits(slo, shi, max(alsb, blsb))
            heapq.heappush(heap, (_width(slo, shi), count, slo, shi, min(alsb, blsb)))
            count += 1
    return total
