"""The generic standard-top testbench: outputs, latency and II measured on a known design."""

import uuid

import numpy as np
import pytest

from tests.helpers import PLUS_ONE_RTL
from trigger.errors import ConfigError
from trigger.rtlsim import _read_bulk_outputs, simulate
from trigger.verify import mismatching_rows
from trigger.vectors import pack_bytes, unpack_bytes


def test_pack_unpack_round_trip():
    """Equal element widths (the mixed-width cases are in test_ir.py)."""
    rng = np.random.default_rng(0)
    for k, w in [(1, 1), (3, 8), (16, 16), (5, 13)]:
        x = rng.integers(0, 1 << w, size=(37, k), dtype=np.int64)
        data, n_bytes = pack_bytes(x, [w] * k)
        assert n_bytes == (k * w + 7) // 8
        assert np.array_equal(unpack_bytes(data, 37, [w] * k), x)


def test_simulate_refuses_bad_arguments(tmp_path):
    good = np.zeros((4, 3), dtype=np.int64)
    with pytest.raises(ConfigError, match="unknown simulator 'modelsim'"):
        simulate([PLUS_ONE_RTL], "plus_one_top", good, [8] * 3, [8] * 3, simulator="modelsim", build_dir=tmp_path)
    with pytest.raises(ConfigError, match="no input vectors"):
        simulate([PLUS_ONE_RTL], "plus_one_top", good[:0], [8] * 3, [8] * 3, build_dir=tmp_path)
    for bad in (good[:, :2], good - 1, good + 256):
        with pytest.raises(ValueError, match=r"3 unsigned elements of \[8, 8, 8\] bits"):
            simulate([PLUS_ONE_RTL], "plus_one_top", bad, [8] * 3, [8] * 3, build_dir=tmp_path)


# ---------------------------------------------------------------- the harness path and the cache
def _variant(tmp_path, name: str, old: str, new: str):
    """plus_one_top with one piece of text replaced: a wrong RTL the checks must catch."""
    text = PLUS_ONE_RTL.read_text()
    assert old in text
    path = tmp_path / f"{name}.v"
    path.write_text(text.replace(old, new))
    return path


def _mismatches(outputs, expected):
    rows = mismatching_rows(expected, outputs)
    return int(rows.size), (int(rows[0]) if rows.size else None)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.slow
def test_harness_catches_a_wrong_rtl_in_both_phases(simulator, tmp_path):
    """Element 0 == 0x5A gives 0 instead of 0x5B: every such vector is counted, whether cocotb
    (the first protocol_vectors) or the harness (the rest) ran it; a corrupted expectation too."""
    wrong = _variant(tmp_path, "wrong", "stage[k*W +: W] <= in_data[k*W +: W] + 1'b1;",
                     "stage[k*W +: W] <= (k == 0 && in_data[7:0] == 8'h5a) ? 8'h00 : in_data[k*W +: W] + 1'b1;")
    rng = np.random.default_rng(7)
    inputs = rng.integers(0, 256, size=(3000, 3), dtype=np.int64)
    inputs[[10, 1500, 2999], 0] = 0x5A  # at least one in each phase, and the very last vector
    result = simulate([wrong], "plus_one_top", inputs, [8] * 3, [8] * 3, simulator=simulator,
                      build_dir=tmp_path / "sim", protocol_vectors=500)
    expected = (inputs + 1) % 256
    bad = np.flatnonzero(inputs[:, 0] == 0x5A)
    assert _mismatches(result.outputs, expected) == (len(bad), int(bad[0]))
    assert result.protocol_vectors == 500 and result.timing["bulk"]["received"] == 2500
    assert result.latency_cycles == 2 and result.ii == 1 and result.timing["spurious"] == 0
    corrupted = expected.copy()  # the right outputs against a corrupted expectation
    good = np.flatnonzero(inputs[:, 0] != 0x5A)
    corrupted[good[[3, 700, 2900]], 2] ^= 1
    fixed = result.outputs.copy()
    fixed[bad] = expected[bad]
    assert _mismatches(fixed, corrupted) == (3, int(good[3]))


@pytest.mark.slow
def test_harness_catches_dropped_outputs_and_a_reset_that_does_not_reset(tmp_path):
    """A design whose valid pipeline ignores reset emits the vectors in flight at reset (spurious);
    one that loses out_valid now and then leaves rows of -1 behind (mismatches)."""
    no_reset = _variant(tmp_path, "no_reset", "if (rst) begin", "if (1'b0) begin")
    inputs = np.random.default_rng(3).integers(0, 256, size=(800, 3), dtype=np.int64)
    result = simulate([no_reset], "plus_one_top", inputs, [8] * 3, [8] * 3, simulator="icarus",
                      build_dir=tmp_path / "a", protocol_vectors=100)
    assert result.timing["spurious"] >= 1  # latency 2: the one vector past out_data at the reset edge
    drops = _variant(tmp_path, "drops", "out_valid <= stage_valid;",
                     "out_valid <= stage_valid && stage[7:0] != 8'h11;")
    inputs[[50, 400, 401], 0] = 0x10  # out_valid stays low for these: the outputs are missing
    result = simulate([drops], "plus_one_top", inputs, [8] * 3, [8] * 3, simulator="icarus",
                      build_dir=tmp_path / "b", protocol_vectors=100)
    lost = int(np.count_nonzero(inputs[:, 0] == 0x10))
    assert result.timing["bulk"]["received"] == 700 - np.count_nonzero(inputs[100:, 0] == 0x10)
    count, first = _mismatches(result.outputs, (inputs + 1) % 256)
    assert count >= lost and first <= 50  # every vector from the first lost output on is shifted


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.slow
def test_simulate_measures_outputs_latency_and_ii_and_reuses_only_unchanged_rtl(simulator, tmp_path):
    """The first run (5000 vectors, the edge values first) measures outputs, latency 2 and II 1. Same RTL: the
    cached build is used (no build); changed RTL (even a comment): rebuilt. (One test: one fresh compile
    serves both.)"""
    marker = f"// cache test {uuid.uuid4()}\n"  # a build nobody has made before
    source = _variant(tmp_path, "plus_one", "endmodule", "endmodule\n" + marker)
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 256, size=(5000, 3), dtype=np.int64)
    inputs[:2] = [[255, 0, 127], [0, 255, 128]]
    cache = tmp_path / "cache" if simulator == "icarus" else True  # Verilator: share its run-time library
    runs = []
    for k, text in enumerate([None, None, marker.replace("cache test", "changed")]):
        if text is not None:
            source.write_text(source.read_text().replace(marker, text))
        run_inputs = inputs if k == 0 else inputs[:1200]
        options = {} if k == 0 else {"protocol_vectors": 200}
        result = simulate([source], "plus_one_top", run_inputs, [8] * 3, [8] * 3, simulator=simulator,
                          build_dir=tmp_path / f"run{k}", cache_dir=cache, **options)
        assert _mismatches(result.outputs, (run_inputs + 1) % 256) == (0, None)
        assert result.latency_cycles == 2 and result.ii == 1 and result.timing["spurious"] == 0
        runs.append(result)
    assert [r.cache_hit for r in runs] == [False, True, False]
    assert runs[1].compiled == runs[0].compiled != runs[2].compiled
    assert runs[1].build_seconds == 0.0 < runs[0].build_seconds
    assert (runs[2].compiled / "complete").exists()


def test_bulk_output_file_is_read_word_for_word(tmp_path):
    """%h words of a 13-bit bus split into elements; x digits and missing lines become -1 rows."""
    path = tmp_path / "bulk_out.hex"
    path.write_bytes(b"1fff\n0000\n1x23\n0a5c\n")
    got = _read_bulk_outputs(path, 5, [5, 8])
    assert got.tolist() == [[31, 255], [0, 0], [-1, -1], [0x1C, 0x52], [-1, -1]]
