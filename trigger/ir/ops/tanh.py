"""``tanh``: nnet_activation.h's tanh table (see ``sigmoid``; range [-4, 4): ``x * T / 8 + T / 2``)."""

from __future__ import annotations

from dataclasses import dataclass

from trigger.ir.op import register
from trigger.ir.ops.sigmoid import TableActivation


@register
@dataclass
class Tanh(TableActivation):
    kind = "tanh"
    input_range = 8
