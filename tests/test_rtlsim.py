"""The generic standard-top testbench: outputs, latency and II measured on a known design."""

from pathlib import Path

import numpy as np
import pytest

from trigger.rtlsim import pack_words, simulate, unpack_words

FIXTURE = Path(__file__).parent / "rtl" / "plus_one_top.v"


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    for k, w in [(1, 1), (3, 8), (16, 16), (5, 13)]:
        x = rng.integers(0, 1 << w, size=(37, k), dtype=np.int64)
        data, n_bytes = pack_words(x, w)
        assert n_bytes == (k * w + 7) // 8
        assert np.array_equal(unpack_words(data, 37, k, w), x)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_simulate_measures_outputs_latency_and_ii(simulator, tmp_path):
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 256, size=(5000, 3), dtype=np.int64)
    inputs[:2] = [[255, 0, 127], [0, 255, 128]]
    result = simulate([FIXTURE], "plus_one_top", inputs, 8, 3, 8, simulator=simulator, build_dir=tmp_path)
    expected = (inputs + 1) % 256
    mismatches = int(np.count_nonzero(np.any(result.outputs != expected, axis=1)))
    assert mismatches == 0
    assert result.latency_cycles == 2
    assert result.ii == 1
    assert result.timing["spurious"] == 0
