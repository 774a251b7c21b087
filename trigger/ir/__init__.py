"""The firmware model (IR): typed inputs, a sequence of registered ops, typed outputs."""

from trigger.ir import ops  # noqa: F401 - registers every op kind
from trigger.ir.model import FORMAT_VERSION, EmulatorResult, FirmwareModel, emulate
from trigger.ir.op import OPS, Op, register
from trigger.ir.ranges import Interval
from trigger.ir.tensor import TensorType

__all__ = ["FORMAT_VERSION", "EmulatorResult", "FirmwareModel", "emulate", "OPS", "Op", "register", "Interval",
           "TensorType"]
