"""Yosys speed-ups that must not change the design or its figures: a pipeline-auto chain cut into modules
at register boundaries (one Yosys run each), and large ROMs counted from depth x width instead of synthesised.
"""

import re

import numpy as np
import pytest

from tests.firmware_cases import case_inputs, mlp
from tests.helpers import DEFAULT_PART
from trigger.backends import rtl
from trigger.backends.rtl import split_chain, write_rtl
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType, emulate
from trigger.ir.ops.lookup import Lookup
from trigger.rtlsim import simulate
from trigger.synth import bram_for_table, synthesize


def _mismatches(design, model, raw, work) -> int:
    result = simulate(design.sources, design.top, model.input.to_bits(raw), model.input.widths, model.output.widths,
                      simulator="icarus", build_dir=work, data_files=design.data_files,
                      max_latency=design.latency_cycles + 8)
    assert result.latency_cycles == design.latency_cycles and result.ii == 1
    got = model.output.from_bits(result.outputs)
    return int(np.count_nonzero(np.any(got != emulate(model, raw).outputs, axis=1)))


@pytest.mark.slow
def test_a_cut_chain_keeps_latency_stages_and_bit_exactness(tmp_path, monkeypatch):
    """pipeline auto cut into several modules: the same latency, per-op latency and delay per stage as
    the chain in one module, every signal between modules a register output, and 0 mismatches."""
    model = mlp((8, 12, 6, 4), seed=4)
    whole = write_rtl(model, tmp_path / "whole", top="cut_top", pipeline="auto", clock_period_ns=2.5)
    assert [p.name for p in whole.sources] == ["cut_top_ops.v", "cut_top_sa.v", "cut_top.v"]  # small: one module
    monkeypatch.setattr(rtl, "CHAIN_BITS_PER_MODULE", 400)
    cut = write_rtl(model, tmp_path / "cut", top="cut_top", pipeline="auto", clock_period_ns=2.5)
    pieces = [p for p in cut.sources if re.fullmatch(r"cut_top_ops_\d+\.v", p.name)]
    assert len(pieces) >= 3
    assert (cut.latency_cycles, cut.op_latency, cut.stage_delay_ns) == \
        (whole.latency_cycles, whole.op_latency, whole.stage_delay_ns)
    for k, path in enumerate(pieces[:-1]):  # each piece's outputs are its registers, the next one's inputs
        text = path.read_text()
        regs = set(re.findall(r"^\s*reg signed \[\d+:0\] (\w+);", text, re.M))
        outputs = re.findall(r"^\s*assign out_data\[\d+:\d+\] = (\w+);", text, re.M)
        assert outputs and set(outputs) <= regs, path.name
        width = int(re.search(r"output wire \[(\d+):0\] out_data", text).group(1))
        assert f"input  wire [{width}:0] in_data" in pieces[k + 1].read_text()
    top = (tmp_path / "cut" / "cut_top.v").read_text()
    assert [f"cut_top_ops_{k}" for k in range(len(pieces))] == re.findall(r"^\s*(cut_top_ops_\d+) u_s\d+", top, re.M)
    raw = case_inputs(model, 150, seed=11)
    assert _mismatches(cut, model, raw, tmp_path / "sim") == 0


def test_a_chain_with_shared_arithmetic_is_not_cut():
    """Resource sharing (ii > 1) puts strobes and hold registers across stages: the chain stays whole."""
    from trigger.backends.rtl import build_chain_module
    from trigger.ir.ii import resolve_ii

    model = mlp((6, 8, 4), seed=2)
    ii, op_ii = resolve_ii(model, 3)
    assert ii == 3 and max(op_ii.values()) > 1
    m, _ = build_chain_module(model, "shared_ops", 6, None, op_ii)
    assert split_chain(m, bits_per_module=1) == [m]


def _rom_model(bits: int) -> FirmwareModel:
    address = TensorType((FixedFormat.parse(f"uint<{bits}>"),), ("a",))
    word = FixedFormat.parse("ufixed<9,8>")
    words = (np.arange(1 << bits) * 37 + 5) % 512
    return FirmwareModel("rom", address, [Lookup("t", address, TensorType((word,)), words)], kind="table")


@pytest.mark.slow
def test_a_large_rom_is_counted_not_synthesised(tmp_path, monkeypatch):
    """A 32768 x 9 table (over ROM_MODULE_BITS) is a module of its own: Yosys synthesises the rest with it as
    a black box, its block RAMs come from depth x width (8 BRAM36, as Yosys itself maps it: 4096 x 9 per
    block), the result says so, and the RTL still reads the right words."""
    monkeypatch.setenv("TRIGGER_CACHE", "off")
    model = _rom_model(15)
    design = write_rtl(model, tmp_path / "rtl", top="rom_top")
    assert [p.name for p in design.sources] == ["rom_top_t_rom_table.v", "rom_top_t.v", "rom_top.v"]
    assert "// trigger ROM: 32768 words x 9 bits" in design.sources[0].read_text()
    res = synthesize(design.sources, "rom_top", DEFAULT_PART, work_dir=tmp_path / "yosys",
                     data_files=design.data_files, flat_depth=True)
    how = "ROM of 32768 x 9 bits counted as 8 BRAM36 from depth x width (not synthesised)"
    assert res["computed"] == {"rom_top_t_rom_table": how} and how in res["settings"]["summary"]
    assert res["BRAM36"] == 8 == bram_for_table(1 << 15, 9)["BRAM36_equivalent"] and res["BRAM18"] == 0
    assert res["modules"]["rom_top_t_rom_table"]["BRAM36"] == 8
    assert res["cells"]["RAMB36E2"] == 8 and res["settings"]["runs"] == 1  # the rest: small, one Yosys run
    assert not (tmp_path / "yosys" / "rom_top_t_rom_table.ys").exists()  # no Yosys run for the ROM
    raw = np.concatenate([[0, 1, (1 << 15) - 1], np.random.default_rng(3).integers(0, 1 << 15, 300)])[:, None]
    assert _mismatches(design, model, raw, tmp_path / "sim") == 0


def test_a_small_rom_stays_inline(tmp_path):
    """Tables under ROM_MODULE_BITS (sigmoid, softmax, small lookups) stay in their op's module, synthesised."""
    design = write_rtl(_rom_model(10), tmp_path, top="small_top")
    assert [p.name for p in design.sources] == ["small_top_t.v", "small_top.v"]
    assert "$readmemh" in design.sources[0].read_text()


def test_rom_block_arithmetic():
    """36 Kb blocks, or 18 Kb halves where they need less; primitive names by family."""
    from trigger.synth import rom_blocks

    assert rom_blocks(1 << 20, 9, "xcup")["cells"] == {"RAMB36E2": 256}  # 4096 x 9 per block
    assert rom_blocks(512, 36, "xc7") == {"cells": {"RAMB18E1": 1}, "how": "ROM of 512 x 36 bits counted as "
                                          "1 BRAM18 from depth x width (not synthesised)"}
    assert rom_blocks(3 * 512, 36, "xcup")["cells"] == {"RAMB36E2": 1, "RAMB18E2": 1}
