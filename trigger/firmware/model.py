"""The firmware model: the bit-exact intermediate representation of a network.

Every tensor's exact fixed-point format and every integer weight, taken from the
hls4ml model after its precision inference. The numpy emulator, the HLS project
and the RTL are all generated from it, so they cannot drift apart silently.

Semantics (the specification is hls4ml's C++ in templates/vivado/nnet_utils):
- ``Dense`` follows nnet_dense_latency.h: each product ``x_i * w_ij`` is exact,
  cast to ``accum_fmt``; the accumulator starts from the bias cast to
  ``accum_fmt`` and adds the products in input order in ``accum_fmt``; the sum is
  cast to ``output_fmt``.
- ``Activation`` ``relu``: ``output_fmt.cast(max(x, 0))``; ``linear``: ``output_fmt.cast(x)``.
- ``Scale`` (batch normalisation hls4ml did not fold) follows nnet_batchnorm.h:
  ``output_fmt.cast(x_i * scale_i + bias_i)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from trigger.fixed import FixedFormat


@dataclass
class Dense:
    name: str
    weight: np.ndarray  # raw int64, shape (n_in, n_out), in weight_fmt
    bias: np.ndarray  # raw int64, shape (n_out,), in bias_fmt
    input_fmt: FixedFormat
    weight_fmt: FixedFormat
    bias_fmt: FixedFormat
    accum_fmt: FixedFormat
    output_fmt: FixedFormat

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class Activation:
    name: str
    function: str  # "relu" or "linear"
    n: int
    input_fmt: FixedFormat
    output_fmt: FixedFormat

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n


@dataclass
class Scale:
    name: str
    scale: np.ndarray  # raw int64, shape (n,), in scale_fmt
    bias: np.ndarray  # raw int64, shape (n,), in bias_fmt
    input_fmt: FixedFormat
    scale_fmt: FixedFormat
    bias_fmt: FixedFormat
    output_fmt: FixedFormat

    @property
    def n_in(self) -> int:
        return int(self.scale.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.scale.shape[0])


Layer = Union[Dense, Activation, Scale]


@dataclass
class FirmwareModel:
    name: str
    input_fmt: FixedFormat
    n_inputs: int
    layers: list[Layer] = field(default_factory=list)

    @property
    def output_fmt(self) -> FixedFormat:
        return self.layers[-1].output_fmt if self.layers else self.input_fmt

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out if self.layers else self.n_inputs


# ------------------------------------------------------------------ storage
def to_dict(model: FirmwareModel) -> dict:
    """A JSON-ready description of the model: formats as strings, weights as integer lists."""
    layers = []
    for layer in model.layers:
        entry = {"type": type(layer).__name__, "name": layer.name}
        for key, value in vars(layer).items():
            if key == "name":
                continue
            if isinstance(value, FixedFormat):
                entry[key] = value.cpp
            elif isinstance(value, np.ndarray):
                entry[key] = value.astype(np.int64).tolist()
            else:
                entry[key] = value
        layers.append(entry)
    return {"name": model.name, "input_fmt": model.input_fmt.cpp, "n_inputs": model.n_inputs, "layers": layers}


def from_dict(data: dict) -> FirmwareModel:
    """Inverse of ``to_dict``; only data, never code, is read."""
    kinds = {"Dense": Dense, "Activation": Activation, "Scale": Scale}
    layers = []
    for entry in data["layers"]:
        entry = dict(entry)
        kind = entry.pop("type")
        if kind not in kinds:
            raise ValueError(f"firmware model layer {entry.get('name')!r}: unknown type {kind!r}")
        args = {}
        for key, value in entry.items():
            if key.endswith("_fmt"):
                args[key] = FixedFormat.parse(value)
            elif isinstance(value, list):
                args[key] = np.array(value, dtype=np.int64)
            else:
                args[key] = value
        layers.append(kinds[kind](**args))
    return FirmwareModel(data["name"], FixedFormat.parse(data["input_fmt"]), int(data["n_inputs"]), layers)
