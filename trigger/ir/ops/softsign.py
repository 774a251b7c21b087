"""``softsign``: nnet_activation.h's softsign table, indexed like sigmoid's (range [-8, 8): ``x * T / 16 + T / 2``).

The table (``x / (|x| + 1)`` on ``16 * (i - T / 2) / T``) is filled by hls4ml's own C++
(``init_softsign_table``, through ``trigger.frontends.hls4ml_tables``); the index, the clamp and
the ROM are ``sigmoid``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from trigger.ir.op import register
from trigger.ir.ops.sigmoid import TableActivation


@register
@dataclass
class Softsign(TableActivation):
    kind = "softsign"
    input_range = 16
