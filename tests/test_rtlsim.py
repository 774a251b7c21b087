"""The generic standard-top testbench: outputs, latency and II measured on a known design."""

import numpy as np
import pytest

from helpers import PLUS_ONE_RTL
from trigger.errors import ConfigError
from trigger.rtlsim import simulate
from trigger.vectors import pack_bytes, unpack_bytes


def test_pack_unpack_round_trip():
    """Equal element widths (the mixed-width cases are in test_ir.py)."""
    rng = np.random.default_rng(0)
    for k, w in [(1, 1), (3, 8), (16, 16), (5, 13)]:
        x = rng.integers(0, 1 << w, size=(37, k), dtype=np.int64)
        data, n_bytes = pack_bytes(x, [w] * k)
        assert n_bytes == (k * w + 7) // 8
        assert np.array_equal(unpack_bytes(data, 37, [w] * k), x)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_simulate_measures_outputs_latency_and_ii(simulator, tmp_path):
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 256, size=(5000, 3), dtype=np.int64)
    inputs[:2] = [[255, 0, 127], [0, 255, 128]]
    result = simulate([PLUS_ONE_RTL], "plus_one_top", inputs, [8] * 3, [8] * 3, simulator=simulator,
                      build_dir=tmp_path)
    expected = (inputs + 1) % 256
    mismatches = int(np.count_nonzero(np.any(result.outputs != expected, axis=1)))
    assert mismatches == 0
    assert result.latency_cycles == 2
    assert result.ii == 1
    assert result.timing["spurious"] == 0


def test_simulate_refuses_bad_arguments(tmp_path):
    good = np.zeros((4, 3), dtype=np.int64)
    with pytest.raises(ConfigError, match="unknown simulator 'modelsim'"):
        simulate([PLUS_ONE_RTL], "plus_one_top", good, [8] * 3, [8] * 3, simulator="modelsim", build_dir=tmp_path)
    with pytest.raises(ConfigError, match="no input vectors"):
        simulate([PLUS_ONE_RTL], "plus_one_top", good[:0], [8] * 3, [8] * 3, build_dir=tmp_path)
    for bad in (good[:, :2], good - 1, good + 256):
        with pytest.raises(ValueError, match=r"3 unsigned elements of \[8, 8, 8\] bits"):
            simulate([PLUS_ONE_RTL], "plus_one_top", bad, [8] * 3, [8] * 3, build_dir=tmp_path)
