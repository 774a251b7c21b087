"""trigger: quantized networks and look-up-table regressors to bit-exact FPGA trigger firmware."""

__version__ = "0.1.0"
