"""Every op kind; importing this package registers them all."""

from trigger.ir.ops import activation, bucketize, concat, dense, lookup, scale  # noqa: F401
