"""Yosys resource estimates on a design whose content is known."""

import numpy as np
import pytest

from tests.helpers import DEFAULT_PART, PLUS_ONE_RTL
from trigger import synth
from trigger.backends.rtl import write_rtl
from trigger.fixed import FixedFormat
from trigger.ir import FirmwareModel, TensorType
from trigger.ir.ops.activation import Relu
from trigger.ir.ops.dense import Dense
from trigger.parts import family_of, utilization
from trigger.synth import SynthesisError, SynthSettings, bram_for_table, synthesize


@pytest.fixture(scope="module")
def plus_one(tmp_path_factory):
    """One Yosys run of the known design, its cache in a folder of its own: (work folder, result, cache)."""
    root = tmp_path_factory.mktemp("synth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRIGGER_CACHE", str(root / "cache"))
        result = synthesize([PLUS_ONE_RTL], "plus_one_top", DEFAULT_PART, work_dir=root / "work")
    return root / "work", result, root / "cache"


@pytest.mark.slow
def test_synthesize_counts_registers_and_depth(plus_one, tmp_path, monkeypatch):
    _, result, cache = plus_one
    # 2 pipeline stages of 3 x 8 data bits, plus 2 valid bits
    assert result["FF"] == 50
    assert result["DSP"] == 0 and result["BRAM36"] == 0
    assert result["LUT"] + result["CARRY"] > 0
    assert result["logic_levels"] >= 1
    assert result["family"] == "xcup"
    assert result["settings"]["abc_fast"] and result["settings"]["summary"].startswith("abc -fast")
    assert not result["cached"] and result["yosys_cpu_seconds"] > 0
    pct = utilization(result, DEFAULT_PART)
    assert 0 < pct["FF"] < 0.01
    # the same script on the same files: the cached answer, without running Yosys again
    monkeypatch.setenv("TRIGGER_CACHE", str(cache))
    again = synthesize([PLUS_ONE_RTL], "plus_one_top", DEFAULT_PART, work_dir=tmp_path)
    assert again["cached"] and not (tmp_path / "plus_one_top.log").exists()
    assert {**again, "cached": False} == result


def _dense_relu(tmp_path):
    """A 4-3 dense layer and its relu, written with one module per op behind the standard top."""
    rng = np.random.default_rng(1)
    w_fmt, x_fmt, acc = FixedFormat(6, 1), FixedFormat(8, 3), FixedFormat(16, 6)
    relu_fmt = FixedFormat.parse("ufixed<6,2,RND_CONV,SAT>")
    ops = [Dense("fc1", TensorType.uniform(x_fmt, 4), TensorType.uniform(acc, 3),
                 rng.integers(-32, 32, (4, 3)), rng.integers(-32, 32, 3), w_fmt, w_fmt, acc),
           Relu("relu1", TensorType.uniform(acc, 3), TensorType.uniform(relu_fmt, 3))]
    model = FirmwareModel("dense_relu", TensorType.uniform(x_fmt, 4), ops)
    return write_rtl(model, tmp_path / "rtl", top="two_top", pipeline="layer")


@pytest.mark.slow
def test_one_run_per_module_gives_the_whole_design_figures(tmp_path, monkeypatch):
    """Modules synthesised alone (in parallel) sum to what one run over the whole design gives;
    the flattened logic depth across modules is the same too. The default for a small design is that one run
    (the same script: the cache answers for it)."""
    monkeypatch.setenv("TRIGGER_CACHE", str(tmp_path / "cache"))
    design = _dense_relu(tmp_path)
    assert set(synth._plan_units(design.sources, "two_top")) == {"two_top", "two_top_fc1", "two_top_relu1"}
    keys = ("LUT", "FF", "CARRY", "DSP", "MUXF", "logic_levels")
    split = synthesize(design.sources, "two_top", DEFAULT_PART, work_dir=tmp_path / "split", flat_depth=True,
                       settings=SynthSettings(split_min_bytes=0))
    default = synthesize(design.sources, "two_top", DEFAULT_PART, work_dir=tmp_path / "default", flat_depth=True)
    assert default["settings"]["runs"] == 1 and not default["cached"]  # small: one process by default
    whole = synthesize(design.sources, "two_top", DEFAULT_PART, work_dir=tmp_path / "whole", flat_depth=True,
                       settings=SynthSettings(split=False))
    assert whole["cached"] and {**whole, "cached": False} == default
    assert split["settings"]["per_module"] and not whole["settings"]["per_module"] and not split["cached"]
    assert split["settings"]["runs"] == 3 + 1  # the modules, then their netlists joined for the depth
    assert {k: split[k] for k in keys} == {k: whole[k] for k in keys}
    assert split["LUT"] > 0 and split["logic_levels"] > 0
    for name in ("two_top_fc1", "two_top_relu1"):
        assert split["modules"][name]["LUT"] == whole["modules"][name]["LUT"]
    # fc1 feeds relu1 without a register: the path across the two modules is deeper than either's own
    assert split["logic_levels"] > max(m["logic_levels"] for m in split["modules"].values())


def test_modules_that_repeat_or_take_parameters_run_inside_each_unit(tmp_path):
    (tmp_path / "add.v").write_text("module add #(parameter W = 4) (input [W-1:0] a, output [W:0] y);\n"
                                    "  assign y = a + 1;\nendmodule\n")
    (tmp_path / "stage.v").write_text("module stage (input [3:0] a, output [4:0] y, output [5:0] z);\n"
                                      "  add #(4) u0 (a, y);\n  add #(.W(5)) u1 (y, z);\nendmodule\n")
    (tmp_path / "top.v").write_text("// module commented_out (\nmodule top (input clk, input [3:0] a, output [5:0] z);\n"
                                    "  wire [4:0] y;\n  stage s (.a(a), .y(y), .z(z));\nendmodule\n")
    files = [tmp_path / n for n in ("top.v", "stage.v", "add.v")]
    plan = synth._plan_units(files, "top")
    assert plan == {"top": ([files[0]], [files[1]]), "stage": ([files[1], files[2]], [])}
    # a helper defined in the unit's own file (as the RTL builder's shift-and-add modules are)
    (tmp_path / "stage.v").write_text((tmp_path / "stage.v").read_text() + (tmp_path / "add.v").read_text())
    assert synth._plan_units(files[:2], "top") == {"top": ([files[0]], [files[1]]), "stage": ([files[1]], [])}
    (tmp_path / "top.v").write_text("module top (input [3:0] a, output [4:0] y, output [4:0] z);\n"
                                    "  stage s0 (.a(a), .y(y));\n  stage s1 (.a(a), .y(z));\nendmodule\n")
    assert synth._plan_units(files, "top") is None  # the stage repeats: one run for the whole design


@pytest.mark.slow
def test_unreadable_yosys_output_is_a_one_line_error_naming_the_file(plus_one, tmp_path):
    """A real run's stat -json, ltp and sta outputs, then corrupted: a SynthesisError naming Yosys and the file."""
    for name in ("plus_one_top.stat.json", "plus_one_top.ltp.txt", "plus_one_top.sta.txt"):
        (tmp_path / name).write_bytes((plus_one[0] / name).read_bytes())
    names = {"plus_one_top"}
    parsed = synth._parse_run(tmp_path, "plus_one_top", True, names)
    assert parsed["cells"]["FDRE"] == 50
    # a register's clock-to-output (0.15 ns) and an 8-bit incrementer's carry chain before the next register
    assert 0.15 + 0.115 < parsed["modules"]["plus_one_top"]["critical_path_ns"] < 1.0
    stat = tmp_path / "plus_one_top.stat.json"
    good = stat.read_text()
    for bad in (good[: len(good) // 2], good.replace('"design"', '"designs"'), ""):
        stat.write_text(bad)
        with pytest.raises(SynthesisError) as err:
            synth._parse_run(tmp_path, "plus_one_top", True, names)
        message = str(err.value)
        assert message.startswith("yosys: ") and str(stat) in message and "\n" not in message
    stat.write_text(good)
    ltp = tmp_path / "plus_one_top.ltp.txt"
    ltp.write_text("ltp: interrupted\n")
    with pytest.raises(SynthesisError, match=f"yosys: .*{ltp}"):
        synth._parse_run(tmp_path, "plus_one_top", True, names)
    ltp.unlink()
    with pytest.raises(SynthesisError, match=f"yosys: could not read {ltp}"):
        synth._parse_run(tmp_path, "plus_one_top", True, names)
    ltp.write_bytes((plus_one[0] / "plus_one_top.ltp.txt").read_bytes())
    sta = tmp_path / "plus_one_top.sta.txt"
    sta.write_text("sta: interrupted\n")
    with pytest.raises(SynthesisError, match=f"yosys: no 'Latest arrival time' in the sta output {sta}"):
        synth._parse_run(tmp_path, "plus_one_top", True, names)


def test_stat_json_with_unescaped_identifiers_is_read():
    """Yosys 0.23 writes the backslash of escaped identifiers ($paramod$...\\adder) unescaped."""
    text = '{\n "design": {\n  "num_cells_by_type": {\n   "$paramod$01\\shift_adder": 2,\n   "LUT2": 3\n  }\n }\n}\n'
    assert synth._stat_json(text)["design"]["num_cells_by_type"] == {"$paramod$01\\shift_adder": 2, "LUT2": 3}


def test_families_and_bram_arithmetic():
    assert family_of("xc7z020clg400-1") == "xc7" and family_of("xcku115-flvb2104-2-e") == "xcu"
    assert bram_for_table(1024, 9) == {"BRAM36": 1, "BRAM18": 1, "BRAM36_equivalent": 1}
    assert bram_for_table(1 << 20, 9)["BRAM36"] == 256  # 4096 x 9 per block
    assert bram_for_table(1 << 16, 36)["BRAM36"] == 64


def test_the_builder_estimates_with_the_delays_yosys_times_with():
    """pipeline auto places registers with the builder's cell delays; `trigger report` times the netlist with
    firmware_templates/yosys/timing_xcup.v: the two must be the same figures."""
    import re

    from trigger.backends.rtl import builder

    text = synth.timing_lib().read_text()

    def arc(cell: str, pattern: str) -> int:
        body = text[text.index(f"module {cell}("):]
        body = body[:body.index("endmodule")]
        return int(re.search(re.escape(pattern) + r"\) = (\d+);", body).group(1))

    assert arc("LUT6", "(I5 => O") == round(builder.LUT_NS * 1000)
    assert arc("CARRY4", "(CI => CO[3]") == round(builder.CARRY4_NS * 1000)
    assert arc("CARRY4", "(S[0] => CO[3]") == round(builder.CARRY_IN_NS * 1000)
    assert arc("CARRY4", "(CI => O[2]") == round(builder.CARRY_OUT_NS * 1000)
    assert arc("MUXF7", "(I0 => O") == round(builder.MUXF_NS * 1000)
    assert arc("FDRE", "(posedge C => (Q : D)") == round(builder.CLOCK_TO_Q_NS * 1000)


def test_the_yosys_timing_library_is_written_from_the_one_delay_table():
    """firmware_templates/yosys/timing_xcup.v is trigger.parts.CELL_DELAYS_PS as Yosys reads it: after a delay is
    changed in the table, `python -m trigger.parts` rewrites the file (this test fails until it is)."""
    from trigger import parts

    assert synth.timing_lib().read_text() == parts.timing_library()
    changed = dict(parts.CELL_DELAYS_PS, lut=parts.CELL_DELAYS_PS["lut"] + 1)
    original = parts.CELL_DELAYS_PS
    try:  # the library follows the table (a LUT arc is written from it, not copied)
        parts.CELL_DELAYS_PS = changed
        assert f"(I5 => O) = {changed['lut']};" in parts.timing_library()
    finally:
        parts.CELL_DELAYS_PS = original
    assert synth.TIMING_MODEL == parts.timing_model() and "0.5 ns" in synth.TIMING_MODEL
