"""``item_dense``: the same dense layer applied to every item of a set (DeepSets' per-constituent network).

Keras ``Dense`` on a (n_items, n_features) input computes exactly what
``TimeDistributed(Dense)`` computes, and it is what hls4ml 1.3 converts as one
fully parallel layer (its ``ReplaceMultidimensionalDenseWithConv`` pass turns it
into a ``PointwiseConv1D``); hls4ml's ``TimeDistributed`` is a time-step loop
around the wrapped layer made for recurrent networks, which trigger does not
accept. nnet_conv1d_latency.h's ``conv_1d_latency_cl`` with a kernel of 1
computes, for every item, exactly ``dense`` (nnet_dense_latency.h): products cast
to accum_t, the accumulator started from the bias, summed in input order, cast
to res_T; weights ``[channel * n_filt + filter]``. So this op is ``dense`` per item:
the same range analysis and rules, one ``constant_matvec`` per item in the RTL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger.ir.op import register
from trigger.ir.ops.dense import Dense
from trigger.ir.ranges import Interval


@register
@dataclass
class ItemDense(Dense):
    n_items: int = 1

    kind = "item_dense"

    def validate(self) -> None:
        self.n_items = int(self.n_items)
        self.weight = np.asarray(self.weight, dtype=np.int64)
        self.bias = np.asarray(self.bias, dtype=np.int64).reshape(-1)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[1],):
            self.fail(f"weight must be (n_features, n_out) and bias (n_out,), got {self.weight.shape} "
                      f"and {self.bias.shape}")
        if self.n_items < 1 or self.input.n != self.n_items * self.n_in or self.output.n != self.n_items * self.n_out:
            self.fail(f"{self.input.n} inputs and {self.output.n} outputs are not {self.n_items} items of "
                      f"{self.n_in} -> {self.n_out}")
        self.check_constants()

    def output_ranges(self, x: list[Interval]) -> list[Interval]:
        per_item = super().output_ranges(x[:self.n_in])  # bounds over the whole input format: any item
        return per_item * self.n_items

    def emulate(self, x: np.ndarray, counts: dict) -> np.ndarray:
        items = x.reshape(len(x) * self.n_items, self.n_in)
        return super().emulate(items, counts).reshape(len(x), self.n_items * self.n_out)

    def emit_rtl(self, m, xs: list, options: dict) -> list:
        out = []
        for k in range(self.n_items):
            out.extend(super().emit_rtl(m, xs[k * self.n_in:(k + 1) * self.n_in], options))
        return out

    def describe(self) -> str:
        return f"item_dense x {self.n_items} items: " + super().describe()
