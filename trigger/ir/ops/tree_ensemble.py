"""``tree_ensemble``: a boosted (or averaged) ensemble of decision trees, summed per class.

Semantics (the project's own HLS C++, ``firmware_templates/hls_trees/``, states the same):
- every internal node tests one input element: go **left when raw <= threshold**, on the
  raw integers of that element's format. A library's float threshold ``t`` becomes
  ``floor(t * 2**F)`` for ``x <= t`` (scikit-learn) and ``ceil(t * 2**F) - 1`` for ``x < t``
  (xgboost): for every value the input format can hold, the decision is the library's;
- a tree's leaf holds one raw value per class in ``leaf_fmt``;
- per class, ``bias`` plus every tree's leaf is summed in ``accum_fmt`` (same LSB as the
  leaves); the range analysis (``sum_bounds``) proves the sum cannot leave the accumulator,
  so the order of the additions does not matter (``validate`` refuses one that could);
- the outputs are the per-class sums cast to the output formats (ap_fixed assignment:
  the optional output cast), then, with a decision, one more element: the class,
  ``sum > decision_threshold`` (one class score) or the first index of the largest sum
  (``argmax``), both taken on the accumulator.

RTL: one comparator per distinct (element, threshold) pair shared by all trees, in
parallel, registered; per tree a multiplexer tree picks the leaf (registered); a
pipelined adder tree (``m.sum_trees``: a register every 2 adder levels, every N with
``pipeline=N``, where the clock needs them with ``pipeline=auto``) sums trees and bias;
the output cast and the decision follow in a stage of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.fixed import FixedFormat
from trigger.ir.op import Op, counter, register
from trigger.ir.ranges import Interval, signed_width

DECISIONS = ("none", "threshold", "argmax")
DEFAULT_ADDER_LEVELS_PER_REGISTER = 2


@register
@dataclass
class TreeEnsemble(Op):
    feature: np.ndarray = None  # (n_nodes,) input element tested at each node; -1 at a leaf
    threshold: np.ndarray = None  # (n_nodes,) raw integer in that element's format: left when raw <= it
    left: np.ndarray = None  # (n_nodes,) node index of the left child; -1 at a leaf
    right: np.ndarray = None  # (n_nodes,) node index of the right child; -1 at a leaf
    value: np.ndarray = None  # (n_nodes, n_classes) raw leaf values in leaf_fmt (0 at internal nodes)
    roots: np.ndarray = None  # (n_trees,) node index of each tree's root
    bias: np.ndarray = None  # (n_classes,) raw, in accum_fmt (the ensemble's initial prediction)
    leaf_fmt: FixedFormat = None
    accum_fmt: FixedFormat = None
    decision: str = "none"  # none | threshold | argmax
    decision_threshold: int = 0  # raw in accum_fmt: class 1 when the (single) sum is above it

    kind = "tree_ensemble"
    arrays = ("feature", "threshold", "left", "right", "value", "roots", "bias")

    # ------------------------------------------------------------ shape
    @property
    def n_classes(self) -> int:
        return int(np.asarray(self.value).shape[1])

    @property
    def n_trees(self) -> int:
        return int(np.asarray(self.roots).size)

    @property
    def n_nodes(self) -> int:
        return int(np.asarray(self.feature).size)

    def tree_depths(self) -> list[int]:
        return list(self.__dict__.get("_depths") or self._structure())

    # ------------------------------------------------------------ checks
    def validate(self) -> None:
        self.feature = np.asarray(self.feature, dtype=np.int64).reshape(-1)
        self.threshold = np.asarray(self.threshold, dtype=np.int64).reshape(-1)
        self.left = np.asarray(self.left, dtype=np.int64).reshape(-1)
        self.right = np.asarray(self.right, dtype=np.int64).reshape(-1)
        self.roots = np.asarray(self.roots, dtype=np.int64).reshape(-1)
        self.value = np.asarray(self.value, dtype=np.int64)
        if self.value.ndim == 1:
            self.value = self.value.reshape(-1, 1)
        self.bias = np.asarray(self.bias, dtype=np.int64).reshape(-1)
        n = self.n_nodes
        for name in ("threshold", "left", "right"):
            if getattr(self, name).shape != (n,):
                self.fail(f"{name} has {getattr(self, name).size} entries for {n} nodes")
        if self.value.ndim != 2 or self.value.shape[0] != n or self.value.shape[1] < 1:
            self.fail(f"value must be (n_nodes={n}, n_classes), got {self.value.shape}")
        k = self.n_classes
        if self.bias.shape != (k,):
            self.fail(f"bias has {self.bias.size} entries for {k} classes")
        if self.n_trees < 1:
            self.fail("an ensemble needs at least one tree")
        if self.decision not in DECISIONS:
            self.fail(f"decision must be one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if self.decision == "threshold" and k != 1:
            self.fail(f"a threshold decision needs one class score, got {k}")
        if self.decision == "argmax" and k < 2:
            self.fail("an argmax decision needs at least two class scores")
        want = k + (self.decision != "none")
        if self.output.n != want:
            self.fail(f"{self.output.n} outputs, expected {want} ({k} scores"
                      f"{' and the class' if self.decision != 'none' else ''})")
        internal = self.feature >= 0
        bad = np.flatnonzero((self.feature < -1) | (self.feature >= self.input.n))
        if bad.size:
            self.fail(f"node {int(bad[0])} tests input element {int(self.feature[bad[0]])}, "
                      f"but there are {self.input.n} inputs")
        if self.leaf_fmt is None or self.accum_fmt is None:
            self.fail("leaf_fmt and accum_fmt are required")
        if self.accum_fmt.fractional != self.leaf_fmt.fractional:
            self.fail(f"accum {self.accum_fmt.cpp} and leaf {self.leaf_fmt.cpp} must have the same LSB")
        for i in np.flatnonzero(internal):
            fmt = self.input.formats[self.feature[i]]
            t = int(self.threshold[i])
            if not fmt.min_raw - 1 <= t <= fmt.max_raw:
                self.fail(f"node {int(i)}: threshold {t} outside [{fmt.min_raw - 1}, {fmt.max_raw}] "
                          f"of input element {int(self.feature[i])} ({fmt.cpp})")
        self.check_raw("leaf value", self.value[~internal], self.leaf_fmt)
        self.check_raw("bias", self.bias, self.accum_fmt)
        self.__dict__["_depths"] = self._structure()
        lo, hi = self.sum_bounds()
        if min(lo) < self.accum_fmt.min_raw or max(hi) > self.accum_fmt.max_raw:
            need = signed_width(min(lo), max(hi))
            self.fail(f"accumulator {self.accum_fmt.cpp} can overflow (sums reach {min(lo)}..{max(hi)} raw); "
                      f"it needs {need} bits")
        if self.decision != "none":
            cls = self.output.formats[-1]
            if cls.signed or cls.fractional != 0 or cls.max_raw < max(k - 1, 1):
                self.fail(f"the class output is {cls.cpp}, expected an ap_uint holding 0..{max(k - 1, 1)}")

    def _structure(self) -> list[int]:
        """Each tree's depth; every node must belong to exactly one tree, reached once from its root."""
        n = self.n_nodes
        owner = np.full(n, -1)
        depths = []
        for t, root in enumerate(self.roots):
            if not 0 <= root < n:
                self.fail(f"tree {t}: root {int(root)} is not a node")
            stack, depth = [(int(root), 0)], 0
            while stack:
                node, d = stack.pop()
                if owner[node] != -1:
                    self.fail(f"tree {t}: node {node} is reached twice (the trees must not share or loop)")
                owner[node] = t
                depth = max(depth, d)
                if self.feature[node] >= 0:
                    for child in (self.left[node], self.right[node]):
                        if not 0 <= child < n:
                            self.fail(f"tree {t}: node {node} has child {int(child)}, not a node")
                        stack.append((int(child), d + 1))
                elif self.left[node] != -1 or self.right[node] != -1:
                    self.fail(f"tree {t}: leaf {node} has children")
            depths.append(depth)
        if np.any(owner == -1):
            self.fail(f"node {int(np.flatnonzero(owner == -1)[0])} belongs to no tree")
        return depths

    # ------------------------------------------------------------ range analysis
    def tree_leaves(self) -> list[np.ndarray]:
        """Per tree, its leaf nodes."""
        out = []
        for root in self.roots:
            leaves, stack = [], [int(root)]
            while stack:
                node = stack.pop()
                if self.feature[node] >= 0:
                    stack += [int(self.left[node]), int(self.right[node])]
                else:
                    leaves.append(node)
            out.append(np.array(sorted(leaves), dtype=np.int64))
        return out

    def sum_bounds(self) -> tuple[list[int], list[int]]:
        """Per class, bounds of the sum and of every partial sum, in any order (raw, accumulator LSBs).

        Each tree adds one of its leaves; widening each tree's interval to hold 0 makes the
        bias plus the trees' smallest (largest) leaves bound every partial sum of any subset
        of trees, so the adder tree and the C++'s sequential sum agree whenever these fit."""
        lo = [int(b) for b in self.bias]
        hi = list(lo)
        for leaves in self.tree_leaves():
            v = self.value[leaves]
            for k in range(self.n_classes):
                lo[k] += min(int(v[:, k].min()), 0)
                hi[k] += max(int(v[:, k].max()), 0)
        return lo, hi

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        lo, hi = self.sum_bounds()
        out = []
        for k in range(self.n_classes):
            a, b, _ = self.output.formats[k].cast_interval(lo[k], hi[k], self.accum_fmt)
            out.append(Interval(a, b))
        if self.decision != "none":
            out.append(Interval(0, max(self.n_classes - 1, 1)))
        return out

    # ------------------------------------------------------------ emulation
    def leaves_of(self, x: np.ndarray) -> np.ndarray:
        """(n, n_trees) the leaf each vector reaches in each tree."""
        n = x.shape[0]
        nodes = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        for _ in range(max(self.tree_depths(), default=0)):
            f = self.feature[nodes]
            internal = f >= 0
            if not internal.any():
                break
            xv = np.take_along_axis(x, np.maximum(f, 0), axis=1)
            nxt = np.where(xv <= self.threshold[nodes], self.left[nodes], self.right[nodes])
            nodes = np.where(internal, nxt, nodes)
        return nodes

    def sums(self, x: np.ndarray) -> np.ndarray:
        """(n, n_classes) raw accumulator values: bias plus every tree's leaf."""
        leaves = self.leaves_of(np.asarray(x, dtype=np.int64))
        return self.bias[None, :] + self.value[leaves].sum(axis=1)

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        acc = self.sums(x)
        counter(counts, "accum").add(acc.size, 0)  # the range analysis proved it (validate)
        out = counter(counts, "output")
        cols = [self.output.formats[k].cast(acc[:, k], self.accum_fmt, out) for k in range(self.n_classes)]
        if self.decision == "threshold":
            cols.append((acc[:, 0] > self.decision_threshold).astype(np.int64))
        elif self.decision == "argmax":
            cols.append(np.argmax(acc, axis=1).astype(np.int64))  # the first largest, like the RTL's tie rule
        return np.stack(cols, axis=1)

    def boundary_values(self) -> list[np.ndarray]:
        """Per input element: every threshold it is tested against and the value just above it."""
        out = []
        for i, fmt in enumerate(self.input.formats):
            t = self.threshold[self.feature == i]
            out.append(np.unique(np.concatenate([t, t + 1, [fmt.min_raw, fmt.max_raw, 0]])).astype(np.int64))
        return out

    # ------------------------------------------------------------ RTL
    def emit_rtl(self, m, xs: list, options: dict) -> list:
        every = options.get("pipeline_every")
        if every is None and getattr(m, "max_delay", None) is None:  # pipeline auto places its own registers
            every = DEFAULT_ADDER_LEVELS_PER_REGISTER
        # 1. comparators, one per distinct (element, threshold): 1 when raw > threshold (go right)
        go_right: dict[tuple[int, int], object] = {}
        for node in np.flatnonzero(self.feature >= 0):
            key = (int(self.feature[node]), int(self.threshold[node]))
            if key in go_right:
                continue
            f, t = key
            fmt = self.input.formats[f]
            if t >= fmt.max_raw:
                go_right[key] = m.const(f"never_x{f}_{len(go_right)}", 0)
            elif t < fmt.min_raw:
                go_right[key] = m.const(f"always_x{f}_{len(go_right)}", 1)
            else:
                go_right[key] = m.count_at_least(f"gt_x{f}_{len(go_right)}", xs[f], [t + 1], 1)
        go_right = {key: m.reg(f"{sig.name}_q", sig) for key, sig in go_right.items()}

        # 2. per tree and class, the leaf value picked by a multiplexer tree
        def pick(node: int, k: int, tree: int):
            if self.feature[node] < 0:
                return m.const(f"t{tree}_leaf{node}_c{k}", int(self.value[node, k]))
            right, left = pick(int(self.right[node]), k, tree), pick(int(self.left[node]), k, tree)
            test = go_right[(int(self.feature[node]), int(self.threshold[node]))]
            if test.const is not None:
                return right if test.const else left
            if right.const is not None and right.const == left.const:
                return left
            return m.select_positive(f"t{tree}_n{node}_c{k}", test, right, left)

        trees = [[] for _ in range(self.n_classes)]
        for t, root in enumerate(self.roots):
            for k in range(self.n_classes):
                sig = pick(int(root), k, t)
                if sig.const == 0:
                    continue  # this tree adds nothing to class k (another class's tree)
                trees[k].append(m.reg(f"t{t}_c{k}_q", sig))
        for k, b in enumerate(self.bias):
            if b != 0 or not trees[k]:
                trees[k].append(m.const(f"bias_c{k}", int(b)))

        # 3. the pipelined adder trees (exact: the range analysis proved no overflow)
        roots = m.sum_trees("sum", trees, None, every)
        if self.decision != "none" or any(not _same(f, self.accum_fmt) for f in self.output.formats[:self.n_classes]):
            # the output cast (rounding, saturation) and the decision compare the sums: a stage of their own
            roots = [m.reg(f"sum{k}_q", r) for k, r in enumerate(roots)]
        outputs = [m.requant(f"score{k}", r, self.accum_fmt, self.output.formats[k]) for k, r in enumerate(roots)]
        if self.decision == "threshold":
            s = roots[0]
            t = self.decision_threshold + 1
            if t > s.hi:
                outputs.append(m.const("cls", 0))
            elif t <= s.lo:
                outputs.append(m.const("cls", 1))
            else:
                outputs.append(m.count_at_least("cls", s, [t], 1))
        elif self.decision == "argmax":
            # a register per round unless pipeline auto places them: many classes must still meet the clock
            outputs.append(m.argmax("cls", roots, register_levels=getattr(m, "max_delay", None) is None))
        return outputs

    def describe(self) -> str:
        depth = max(self.tree_depths(), default=0)
        text = (f"tree_ensemble {self.n_trees} trees (depth <= {depth}, {self.n_nodes} nodes), "
                f"{self.input.n} inputs -> {self.n_classes} score(s), leaf {self.leaf_fmt.cpp}, "
                f"accum {self.accum_fmt.cpp}")
        if self.decision != "none":
            text += f", decision {self.decision}"
        return text


def _same(a: FixedFormat, b: FixedFormat) -> bool:
    """Whether assigning b to a is the identity (same bits; rounding and overflow modes then do nothing)."""
    return (a.width, a.integer, a.signed) == (b.width, b.integer, b.signed)
