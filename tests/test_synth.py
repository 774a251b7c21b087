"""Yosys resource estimates on a design whose content is known."""

from helpers import DEFAULT_PART, PLUS_ONE_RTL
from trigger.synth import bram_for_table, family_of, synthesize, utilization


def test_synthesize_counts_registers_and_depth(tmp_path):
    result = synthesize([PLUS_ONE_RTL], "plus_one_top", DEFAULT_PART, work_dir=tmp_path)
    # 2 pipeline stages of 3 x 8 data bits, plus 2 valid bits
    assert result["FF"] == 50
    assert result["DSP"] == 0 and result["BRAM36"] == 0
    assert result["LUT"] + result["CARRY"] > 0
    assert result["logic_levels"] >= 1
    assert result["family"] == "xcup"
    pct = utilization(result, DEFAULT_PART)
    assert 0 < pct["FF"] < 0.01
    # the same script on the same files: the cached answer, without running Yosys again
    assert synthesize([PLUS_ONE_RTL], "plus_one_top", DEFAULT_PART, work_dir=tmp_path) == result


def test_families_and_bram_arithmetic():
    assert family_of("xc7z020clg400-1") == "xc7" and family_of("xcku115-flvb2104-2-e") == "xcu"
    assert bram_for_table(1024, 9) == {"BRAM36": 1, "BRAM18": 1, "BRAM36_equivalent": 1}
    assert bram_for_table(1 << 20, 9)["BRAM36"] == 256  # 4096 x 9 per block
    assert bram_for_table(1 << 16, 36)["BRAM36"] == 64
