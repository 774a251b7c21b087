"""Resource sharing (rtl.ii): the setting, the digit-serial RTL, the II protocol, hls4ml's ReuseFactor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.firmware_cases import mlp
from tests.helpers import SEED, assert_same, build_and_verify
from trigger.errors import ConfigError
from trigger.ir.ii import auto_ii, parse_ii, resolve_ii

II_VECTORS = 2000
# The small shared designs (a few dense neurons) run under Icarus: no simulator to compile, 0.5 CPU-s a design
# against Verilator's 1.8 (measured on zero_column at ii 3, 1,500 vectors). The convolutions (37 CPU-s under
# Icarus, 3 under Verilator) and the reference tagger's 3-way verification stay on Verilator.
SMALL_DESIGN_SIM = "icarus"


# ------------------------------------------------------------------ the setting
@pytest.mark.parametrize("bad", [0, -1, 2.5, "2.5", "two", True, [2], "0"])
def test_bad_ii_values_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match=r"^rtl\.ii: ii must be a positive whole number or auto, got ") as err:
        parse_ii(bad)
    assert "\n" not in str(err.value)


def test_auto_ii_follows_the_clock_and_the_budget():
    assert [auto_ii(1000 / mhz) for mhz in (40, 79, 200, 240, 360)] == [1, 1, 5, 6, 9]
    assert auto_ii(1000 / 240, {"ii": 3}) == 3  # the budget's ii wins when smaller
    assert auto_ii(1000 / 240, {"ii": 12}) == 6
    assert parse_ii("auto") == parse_ii(" AUTO ") == "auto" and parse_ii(None) == 1 and parse_ii("4") == 4


def test_ii_is_checked_against_what_the_model_can_use():
    model = mlp(sizes=(8, 12, 6, 3))  # fixed<16,6> inputs, ufixed<9,4> between layers
    assert {op.name: op.max_ii() for op in model.ops} == {"dense0": 16, "relu0": 1, "dense1": 9, "relu1": 1,
                                                           "dense2": 9}
    ii, per_op = resolve_ii(model, 12)
    assert ii == 12 and per_op == {"dense0": 12, "relu0": 1, "dense1": 9, "relu1": 1, "dense2": 9}
    assert resolve_ii(model, "auto", clock_period_ns=1000 / 240) == (6, {"dense0": 6, "relu0": 1, "dense1": 6,
                                                                         "relu1": 1, "dense2": 6})
    assert resolve_ii(model, "auto", clock_period_ns=1000 / 240, budget={"ii": 2})[0] == 2
    assert resolve_ii(model, 6, {"dense1": 2})[1]["dense1"] == 2
    cases = [((17,), r"rtl\.ii: 17 is larger than 'mlp' can use \(at most 16: dense0 up to 16, dense1 up to 9"),
             ((3, {"dense1": 4}), r"rtl\.layer_ii\.dense1: 4 is larger than the model's ii 3"),
             ((16, {"dense1": 10}), r"rtl\.layer_ii\.dense1: 10 is larger than this layer can use \(at most 9\)"),
             ((4, {"dense9": 2}), r"rtl\.layer_ii: no layer 'dense9'"),
             ((4, {"dense1": 0}), r"rtl\.layer_ii\.dense1: ii must be a positive whole number, got 0"),
             ((4, [2]), r"rtl\.layer_ii must be a mapping")]
    for args, message in cases:
        with pytest.raises(ConfigError, match=message):
            resolve_ii(model, *args)


def test_cli_refuses_a_bad_ii_in_one_line(capsys, tmp_path):
    from trigger.cli import main

    for bad in ("0", "-2", "1.5", "fast"):
        assert main(["build", str(tmp_path / "model.json"), "--ii", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("trigger build: error: argument --ii: ii must be a positive whole number or auto")
        assert "\n" not in err


def test_a_bad_ii_in_trigger_yml_is_refused_before_any_work(capsys, tmp_path):
    from trigger.cli import main

    cases = [({"ii": 0}, "rtl.ii: ii must be a positive whole number or auto, got 0"),
             ({"ii": 2.5}, "rtl.ii: ii must be a positive whole number or auto, got 2.5"),
             ({"ii": 4, "layer_ii": {"fc1": "auto"}}, "rtl.layer_ii.fc1: ii must be a positive whole number, got 'auto'"),
             ({"layer_ii": [1]}, "rtl.layer_ii must be a mapping")]
    for k, (rtl, message) in enumerate(cases):
        folder = tmp_path / f"m{k}"
        folder.mkdir()
        config = {"kind": "network", "model": {"file": "missing.json"}, "rtl": rtl}
        (folder / "trigger.yml").write_text(yaml.safe_dump(config))
        assert main(["build", str(folder), "-o", str(tmp_path / f"b{k}")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("trigger build: error: ") and message in err and "\n" not in err, err
        assert str(folder / "trigger.yml") in err  # names the file


# ------------------------------------------------------------------ the RTL, simulated
@pytest.mark.parametrize("ii,pipeline", [(3, "layer"), (5, "auto")])
@pytest.mark.slow
def test_shared_rtl_is_exact_at_ii_spacing_and_refuses_early_inputs(tmp_path, ii, pipeline):
    """Digit-serial dense layers (and ReLUs between them) against the emulator, driven exactly ii clocks
    apart by cocotb and by the bulk harness; an input one clock after another is refused and flagged."""
    from trigger.backends.rtl import write_rtl
    from trigger.ir.model import emulate
    from trigger.rtlsim import simulate
    from trigger.vectors import test_vectors

    model = mlp(sizes=(4, 4, 2), seed=3)
    ii, per_op = resolve_ii(model, ii)
    design = write_rtl(model, tmp_path / "rtl", top="shared", pipeline=pipeline, clock_period_ns=3.0, ii=ii,
                       op_ii=per_op)
    inputs = test_vectors(model, II_VECTORS, SEED)
    expected = emulate(model, inputs).outputs
    sim = simulate(design.sources, "shared", model.input.to_bits(inputs), model.input.widths, model.output.widths,
                   simulator=SMALL_DESIGN_SIM, build_dir=tmp_path / "sim", max_latency=design.latency_cycles + 8,
                   ii=ii)
    assert_same(model, inputs, expected, model.output.from_bits(sim.outputs), ("emulator", "rtl"))
    assert (sim.ii, sim.latency_cycles) == (ii, design.latency_cycles)
    assert sim.timing["input_gaps"][0] == ii and sim.timing["bulk"]["received"] == II_VECTORS - sim.protocol_vectors
    assert sim.timing["too_early"] == {"refused_flags": 1, "outputs": 1, "output_matches_first": True}
    assert sim.timing["bulk"]["refused"] == 0 and sim.timing["spurious"] == 0
    top = (tmp_path / "rtl" / "shared.v").read_text()
    assert f"one new input every {ii} clocks" in top and "output reg  in_refused" in top


@pytest.mark.slow
@pytest.mark.parametrize("name,ii,pipeline", [("wrapping_exact", 8, "layer"), ("zero_column", 3, "layer"),
                                              ("s6_scale", 4, "auto"), ("leaky", 5, "layer"),
                                              ("items", 6, "layer")])
def test_shared_rtl_corner_cases(tmp_path, name, ii, pipeline):
    """A wrapping accumulator at one input bit per cycle, all-zero columns (constant outputs), a batch
    norm and a leaky ReLU between shared layers: exact at ii spacing, early inputs refused."""
    from tests.firmware_cases import F, case_inputs, random_dense, small_models
    from trigger.ir import FirmwareModel, TensorType
    from trigger.ir.ops.item_dense import ItemDense

    models = small_models()
    rng = np.random.default_rng(5)  # exact products into an accumulator that wraps (10 inputs of 8 bits)
    d = random_dense(rng, "d0", 10, 4, F("fixed<8,3>"), F("fixed<6,2>"), F("fixed<6,2>"), F("fixed<8,4,TRN,WRAP>"),
                     F("fixed<14,4,TRN,WRAP>"), zero_fraction=0.0)
    models["wrapping_exact"] = FirmwareModel("wrapping_exact", d.input, [d])
    assert d.plan()["sum_can_overflow"] and d.plan()["shift"] >= 0  # wraps, and one linear map
    item = random_dense(rng, "per_item", 4, 3, F("fixed<7,2>"), F("fixed<5,1>"), F("fixed<6,2>"), F("fixed<9,4,RND,SAT>"))
    items = ItemDense("items", TensorType.uniform(F("fixed<7,2>"), 12), TensorType.uniform(F("fixed<9,4,RND,SAT>"), 9),
                      item.weight, item.bias, item.weight_fmt, item.bias_fmt, item.accum_fmt, n_items=3)
    models["items"] = FirmwareModel("items", items.input, [items])  # DeepSets' per-item dense
    model = models[name]
    ii, per_op = resolve_ii(model, ii)
    assert max(per_op.values()) == ii
    assert_exact_at_ii(model, case_inputs(model, 1500), "corner", tmp_path, pipeline, ii, per_op, SMALL_DESIGN_SIM)


def assert_exact_at_ii(model, inputs, top: str, tmp_path, pipeline, ii: int, per_op: dict,
                       simulator: str = "verilator") -> None:
    """The model's RTL shared over ``ii`` clocks (``per_op``), simulated: equal to the emulator on every input,
    at the measured II and latency, and an input sent too early refused."""
    from trigger.backends.rtl import write_rtl
    from trigger.ir.model import emulate
    from trigger.rtlsim import simulate

    design = write_rtl(model, tmp_path / "rtl", top=top, pipeline=pipeline, clock_period_ns=3.0, ii=ii,
                       op_ii=per_op)
    sim = simulate(design.sources, top, model.input.to_bits(inputs), model.input.widths, model.output.widths,
                   simulator=simulator, build_dir=tmp_path / "sim", max_latency=design.latency_cycles + 8, ii=ii,
                   protocol_vectors=300)
    assert_same(model, inputs, emulate(model, inputs).outputs, model.output.from_bits(sim.outputs),
                ("emulator", "rtl"))
    assert (sim.ii, sim.latency_cycles) == (ii, design.latency_cycles)
    assert sim.timing["too_early"] == {"refused_flags": 1, "outputs": 1, "output_matches_first": True}


def conv_model():
    """Conv2D (padding, stride) -> ReLU -> Conv2D -> dense: shared by positions, then digit-serial."""
    from tests.firmware_cases import F, random_dense, relu
    from trigger.ir import FirmwareModel, TensorType
    from trigger.ir.ops.conv2d import Conv2D

    rng = np.random.default_rng(11)
    fi, wf, bf, acc = F("fixed<8,3>"), F("fixed<6,1>"), F("fixed<7,2>"), F("fixed<24,10>")

    def conv(name, x, in_shape, kernel, stride, pad, filters, out_fmt):
        w = rng.integers(wf.min_raw, wf.max_raw + 1, (int(np.prod(kernel)) * in_shape[2], filters))
        b = rng.integers(bf.min_raw, bf.max_raw + 1, filters)
        probe = Conv2D(name, x, TensorType.uniform(out_fmt, filters), in_shape, kernel, stride, pad, w, b, wf, bf, acc)
        out = TensorType.uniform(out_fmt, probe.geometry.n_positions * filters)
        return Conv2D(name, x, out, in_shape, kernel, stride, pad, w, b, wf, bf, acc)

    c0 = conv("c0", TensorType.uniform(fi, 5 * 6 * 2), [5, 6, 2], [3, 2], [1, 2], [1, 0, 1, 1], 3,
              F("fixed<12,5,RND,SAT>"))
    r0 = relu("r0", c0, F("ufixed<6,3,RND_CONV,SAT>"))
    shape = [*c0.geometry.out_spatial, 3]
    c1 = conv("c1", r0.output, shape, [2, 2], [1, 1], [0, 0, 0, 0], 2, F("fixed<10,4,RND,SAT>"))
    d = random_dense(rng, "d", c1.output.n, 3, c1.output.format, wf, bf, F("fixed<12,5,RND,SAT>"))
    model = FirmwareModel("convs", c0.input, [c0, r0, c1, d])
    model.validate()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("ii,clock_ns", [(2, 3.0)])
def test_pipeline_auto_times_the_shared_path_as_yosys_does(tmp_path, ii, clock_ns):
    """pipeline auto on a shared design: the builder's estimated longest path per stage (slice multiplexers,
    the network, the accumulators) against Yosys' sta over the synthesised chain with the same cell delays.
    The accumulator adds a partial to a register over its full width every cycle: counted, its stage is not
    underestimated. Measured 2.40 ns, estimated 2.65 ns at 3 ns: the estimate may be high (casts' LUT
    levels, which ABC packs), never low by more than a carry cell or two. A 4-4-2 network has the same longest
    paths as an 8-12-6-3 one (the accumulators'), at 2/5 of the Yosys time."""
    from trigger.backends.rtl import write_rtl
    from trigger.synth import synthesize

    model = mlp(sizes=(4, 4, 2), seed=3)
    ii, per_op = resolve_ii(model, ii)
    design = write_rtl(model, tmp_path / "rtl", top="shared", pipeline="auto", clock_period_ns=clock_ns, ii=ii,
                       op_ii=per_op)
    measured = synthesize(design.sources, "shared", "xcvu13p-flga2577-2-e",
                          work_dir=tmp_path / "synth")["modules"]["shared_ops"]["critical_path_ns"]
    estimated = max(design.stage_delay_ns)
    assert measured <= clock_ns and estimated <= clock_ns, (measured, design.stage_delay_ns)
    assert measured - 0.1 <= estimated <= measured + 1.0, (estimated, measured, design.stage_delay_ns)
    accumulating = [s for s, ns in enumerate(design.stage_delay_ns) if ns >= 2.0]
    assert len(accumulating) >= 3 * ii  # the accumulators' cycles count, not only the cycles a signal is born in


@pytest.mark.parametrize("ii,pipeline", [(4, "layer"), pytest.param(7, "auto", marks=pytest.mark.slow)])
@pytest.mark.slow
def test_shared_convolutions_are_exact(tmp_path, ii, pipeline):
    """Convolutions share one kernel network per ceil(positions / ii) positions (a multiplexed window
    each cycle), the dense after them is digit-serial: exact against the emulator at ii spacing."""
    from trigger.vectors import test_vectors

    model = conv_model()
    ii, per_op = resolve_ii(model, ii)
    assert per_op == {"c0": ii, "r0": 1, "c1": ii, "d": ii}
    assert {op.name: op.max_ii() for op in model.ops} == {"c0": 15, "r0": 1, "c1": 8, "d": 10}
    assert_exact_at_ii(model, test_vectors(model, 1500, SEED), "convs", tmp_path, pipeline, ii, per_op)


def test_an_ii_one_design_keeps_the_plain_top(tmp_path):
    from trigger.backends.rtl import write_rtl

    model = mlp(sizes=(4, 3, 2))
    design = write_rtl(model, tmp_path, top="plain", ii=1)
    top = (tmp_path / "plain.v").read_text()
    assert design.ii == 1 and "in_refused" not in top and "one new input per clock (II = 1)" in top


# ------------------------------------------------------------------ the whole flow, hls4ml included
@pytest.fixture(scope="session")
def shared_reference_bundle(reference_models, tmp_path_factory):
    """qkeras_3layer built with ``rtl.ii: 3`` (trigger.yml) and verified 3-way, once."""
    folder = tmp_path_factory.mktemp("ii3")
    config = {"kind": "network", "name": "qkeras_ii3",
              "model": {"file": str(reference_models / "qkeras_3layer.json"),
                        "weights": str(reference_models / "qkeras_3layer_weights.h5")},
              "rtl": {"ii": 3, "layer_ii": {"output": 2}}, "verify": {"vectors": II_VECTORS}}
    (folder / "trigger.yml").write_text(yaml.safe_dump(config))
    return build_and_verify(folder, folder / "bundle")


@pytest.mark.slow
def test_reference_tagger_at_ii_3_is_exact_three_ways(shared_reference_bundle):
    bundle = shared_reference_bundle
    result = bundle.verify
    assert bundle.build_status == 0 and bundle.verify_status == 0, result.get("first_mismatch")
    assert result["vectors"] == II_VECTORS and result["ii"] == 3 and result["pass"]
    assert all(v == 0 for v in result["mismatches"].values())
    assert result["mismatches"]["too_early_input_not_refused"] == 0
    manifest = bundle.manifest
    assert manifest["ii"] == 3
    assert manifest["rtl"]["op_ii"] == {"fc1": 3, "relu1": 1, "fc2": 3, "relu2": 1, "fc3": 3, "relu3": 1, "output": 2}
    # the HLS project: hls4ml's Latency strategy with the matching ReuseFactor per layer
    assert manifest["hls"]["strategy"] == "Latency" and manifest["hls"]["reuse_factor"] == 3
    assert manifest["hls"]["layer_reuse_factor"] == {"fc1": 3, "fc2": 3, "fc3": 3, "output": 2}
    params = (bundle.path / "hls" / "firmware" / "parameters.h").read_text()
    assert params.count("static const unsigned reuse_factor = 3;") >= 3
    assert "static const unsigned reuse_factor = 2;" in params


@pytest.mark.slow
def test_an_ii_larger_than_the_model_can_use_is_a_one_line_build_error(reference_models, tmp_path, capsys):
    from trigger.cli import main

    status = main(["build", str(reference_models / "qkeras_3layer.json"), "--ii", "17", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and not (tmp_path / "b").exists()
    assert err.startswith("trigger build: error: rtl.ii: 17 is larger than 'qkeras_3layer' can use (at most 16: ")


# ------------------------------------------------------------------ the report's resource view
def test_report_shows_each_budgeted_figure_as_a_share_of_its_limit_and_of_the_part():
    from trigger.report import _plot_png, module_table, resource_shares, summary_rows

    modules = {"t_fc1": {"LUT": 8640, "FF": 1000, "DSP": 0, "BRAM18": 0, "BRAM36": 0},
               "t_fc2": {"LUT": 8640, "FF": 2456, "DSP": 0, "BRAM18": 2, "BRAM36": 0}}
    report = {"part": "xcvu13p-flga2577-2-e", "latency": {"ns": 20.0, "cycles": 5, "ii": 2},
              "resources": {"source": "yosys", "LUT": 17280, "FF": 3456, "DSP": 0, "BRAM": 1, "modules": modules},
              "budget": {"limits": {"LUT": {"percent": 10.0}, "FF": 6912, "latency_ns": 50}}}
    shares = resource_shares(report)
    assert shares["LUT"] == {"value": 17280, "part": 1.0, "limit": 10.0, "limit_count": 172800.0,
                             "modules": {"t_fc1": {"part": 0.5, "limit": 5.0}, "t_fc2": {"part": 0.5, "limit": 5.0}}}
    assert (shares["FF"]["part"], shares["FF"]["limit"]) == (0.1, 50.0)
    assert shares["DSP"]["limit"] is None and shares["BRAM"]["modules"]["t_fc2"]["part"] == round(100 / 2688, 3)
    assert _plot_png(report).startswith(b"\x89PNG")
    # the tables say the same: a module's figure beside its share of the budget, or of the part when unbudgeted
    header, rows = module_table(report)
    assert header[:6] == ["module", "LUT", "FF", "CARRY", "DSP", "BRAM36"]
    assert rows[0][:3] == ["t_fc1", "8640 (5 % of budget)", f"1000 ({100 * 1000 / 6912:.3g} % of budget)"]
    assert rows[1][4] == "0"  # nothing used: no share
    report.update(bit_exact=True, budget={**report["budget"], "pass": True, "violations": []})
    report["latency"].update(clock_period_ns=5.0)
    assert dict(summary_rows(report))["LUT"] == "17280 (10 % of the budget, 1 % of the part)"
    # a part trigger does not know: counts alone where no budget limits them
    unknown = {**report, "part": "xc_unknown", "budget": {"limits": {}, "pass": True, "violations": []}}
    assert module_table(unknown)[1][0][:3] == ["t_fc1", "8640", "1000"]
    assert dict(summary_rows(unknown))["LUT"] == "17280"


def test_ii_curve_table_plot_and_values():
    from trigger.ii_curve import markdown, parse_iis, plot_png

    point = {"FF": 10, "DSP": 0, "BRAM": 0, "vectors": 10, "bit_exact": True}
    curve = {"source": "m.json", "iis": [1, 2, 9], "skipped": [{"ii": 9, "reason": "rtl.ii: 9 is larger than 'm' can use"}],
             "points": [{**point, "ii": 1, "LUT": 100, "LUT_vs_first": 1.0, "latency_cycles": 5, "latency_ns": 25.0,
                         "ii_measured": 1},
                        {**point, "ii": 2, "LUT": 70, "LUT_vs_first": 0.7, "latency_cycles": 9, "latency_ns": 45.0,
                         "ii_measured": 2, "bit_exact": False, "critical_path_ns": 5.2, "fits_clock": False}]}
    text = markdown(curve)
    assert "| 1 | 100 | 1.0 | 10 | 0 | 0 | 5 | 25.0 | - | 1 | 10 | yes |" in text  # a curve without timing: '-'
    assert "| 2 | 70 | 0.7 | 10 | 0 | 0 | 9 | 45.0 | 5.2 (> clock) | 2 | 10 | NO |" in text
    assert "II 9 skipped: rtl.ii: 9" in text
    assert plot_png(curve).startswith(b"\x89PNG")
    assert parse_iis("9,1,2,2") == (1, 2, 9)
    with pytest.raises(ConfigError, match="--ii-values: ii must be a positive whole number, got 0"):
        parse_iis("1,0")


# ------------------------------------------------------------------ the curve in `trigger report`
def _curve_points(bundle_name: str) -> list[dict]:
    point = {"FF": 900, "DSP": 0, "BRAM": 0, "vectors": 100, "bit_exact": True, "op_ii": {}, "percent": {}}
    return [{**point, "ii": 1, "bundle": "ii1", "LUT": 3000, "latency_cycles": 5, "latency_ns": 25.0, "ii_measured": 1},
            {**point, "ii": 3, "bundle": bundle_name, "LUT": 1900, "latency_cycles": 17, "latency_ns": 85.0,
             "ii_measured": 3, "critical_path_ns": 4.1, "fits_clock": True}]


def test_a_bundle_finds_the_curve_it_is_a_point_of(tmp_path):
    from trigger.ii_curve import _write, find_curve

    _write(tmp_path, "m.json", (1, 3), _curve_points("ii3"), [])
    (tmp_path / "ii3").mkdir()
    (tmp_path / "other").mkdir()
    curve = find_curve(tmp_path / "ii3")  # the folder holding the bundle has the curve, which lists it
    assert [p["LUT"] for p in curve["points"]] == [3000, 1900] and curve["png"] == str(tmp_path / "ii_curve.png")
    assert find_curve(tmp_path / "other") is None  # a curve beside it that does not list it is not its curve
    assert find_curve(tmp_path / "other", tmp_path)["json"] == str(tmp_path / "ii_curve.json")  # given: shown
    with pytest.raises(ConfigError, match=r"^--ii-curve: .*other/ii_curve\.json not found"):
        find_curve(tmp_path / "ii3", tmp_path / "other")
    (tmp_path / "other" / "ii_curve.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"other/ii_curve\.json: not a resource-versus-II curve"):
        find_curve(tmp_path / "other")


@pytest.mark.slow
def test_report_shows_the_resource_versus_ii_curve(shared_reference_bundle, tmp_path, capsys):
    """`trigger report` on a real verified bundle (the reference tagger at II 3, this file's own): the curve beside
    it (table and plot) in report.md/.html/.json; none when there is no curve; a given curve folder is shown too."""
    import shutil

    from trigger.cli import main
    from trigger.ii_curve import _write

    bundle = tmp_path / "curve" / "ii3"
    shutil.copytree(shared_reference_bundle.path, bundle)
    assert main(["report", str(bundle), "--no-synth"]) in (0, 1)
    reports = bundle / "reports"
    assert "Resources versus II" not in (reports / "report.md").read_text()
    assert not (reports / "plots" / "ii_curve.png").exists()

    _write(tmp_path / "curve", "qkeras_3layer.json", (1, 3), _curve_points("ii3"), [])
    assert main(["report", str(bundle), "--no-synth"]) in (0, 1)
    text = (reports / "report.md").read_text()
    assert "## Resources versus II" in text and "| 3 | 1900 | 0.6333 | 900 | 0 | 0 | 17 | 85.0 | 4.1 | 3 | 100 | yes |" in text
    assert (reports / "plots" / "ii_curve.png").read_bytes() == (tmp_path / "curve" / "ii_curve.png").read_bytes()
    html = (reports / "report.html").read_text()
    assert "<h2>Resources versus II</h2>" in html and "<td>1900</td>" in html and 'alt="ii_curve"' in html
    assert json.loads((reports / "report.json").read_text())["ii_curve"]["points"][1]["LUT"] == 1900

    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "curve"), elsewhere)
    bundle = elsewhere / "ii3"
    (elsewhere / "ii_curve.json").rename(elsewhere / "kept.json")
    assert main(["report", str(bundle), "--no-synth"]) in (0, 1)  # the curve is gone: none shown, stale plot removed
    assert "Resources versus II" not in (bundle / "reports" / "report.md").read_text()
    assert not (bundle / "reports" / "plots" / "ii_curve.png").exists()
    given = tmp_path / "given"
    given.mkdir()
    (elsewhere / "kept.json").rename(given / "ii_curve.json")
    assert main(["report", str(bundle), "--no-synth", "--ii-curve", str(given)]) in (0, 1)
    assert "| 1 | 3000 | 1.0 |" in (bundle / "reports" / "report.md").read_text()
    capsys.readouterr()


def test_one_sweep_engine_and_no_import_circle_between_the_report_and_the_curve():
    """The curve is a preset of the scan; the report shows a curve without importing either (the modules are read
    with ast: every import, at the top or inside a function, counts)."""
    import ast
    from pathlib import Path

    import trigger

    def imports(module: str) -> set[str]:
        tree = ast.parse((Path(trigger.__file__).parent / f"{module}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        return found

    assert not {"trigger.ii_curve", "trigger.scan"} & imports("report")
    assert "trigger.scan" in imports("ii_curve") and "trigger.ii_curve" not in imports("scan")
    assert not {"trigger.report", "trigger.ii_curve"} & imports("synth")
    assert "trigger.synth" not in {m for m in imports("scan")}  # the scan's figures come from the report's function
