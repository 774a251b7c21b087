"""``trigger prove`` (trigger/prove.py) on the reference QKeras tagger: every op of its RTL proved equal to the
op's integer semantics for all inputs, both as one module per op (pipeline layer) and as the cut chain of
pipeline auto; deliberately broken modules caught with counterexamples that simulation confirms (Icarus for an op
module alone: it compiles in a fraction of Verilator's CPU; Verilator where trigger prove confirms a graph's), one
of which 1,500 random vectors miss; the printed reference checked against op.emulate; an edited RTL file named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from trigger.backends.rtl import write_rtl
from trigger.bundle import changed_files, load_manifest
from trigger.cli import main
from trigger.ir.model import FirmwareModel
from trigger.prove import confirm, op_modules, prove_bundle, prove_op, reference

pytestmark = pytest.mark.slow  # Yosys, Icarus and Verilator in most tests (the tool check flagged them)

RANDOM_VECTORS = 1500


@pytest.fixture(scope="module")
def tagger(reference_bundle, tmp_path_factory) -> Path:
    """A copy of the shared reference bundle (qkeras_3layer, pipeline auto), so reports and edits stay here."""
    assert reference_bundle.build_status == 0
    out = tmp_path_factory.mktemp("prove") / "tagger"
    shutil.copytree(reference_bundle.path, out)
    return out


@pytest.fixture(scope="module")
def layer_rtl(tagger, tmp_path_factory):
    """The tagger's firmware model written one module per op (pipeline layer) by the RTL builder."""
    model = FirmwareModel.load(tagger)
    folder = tmp_path_factory.mktemp("layer_rtl")
    design = write_rtl(model, folder, top="tagger", pipeline="layer")
    return model, {op.name: entry for op, *entry in
                   [(m[0], *m) for m in op_modules(model, folder, "tagger", design.op_latency)]}


def module_of(layer_rtl, name: str, folder: Path, edit=None):
    """(op, module, sources, latency) of one op, its module copied into ``folder`` and edited by ``edit``."""
    model, modules = layer_rtl
    op, module, sources, latency = modules[name]
    folder.mkdir(parents=True, exist_ok=True)
    copies = [Path(shutil.copy(s, folder / s.name)) for s in sources]
    if edit is not None:
        text = copies[0].read_text()
        edited = edit(text)
        assert edited != text, "the mutation did not apply"
        copies[0].write_text(edited)
    return op, module, copies, latency


def change_shift(text: str) -> str:
    """The first shared adder whose second operand is shifted: one bit more shift."""
    return re.sub(r"\.SB\(([1-9]\d*)\)", lambda m: f".SB({int(m.group(1)) + 1})", text, count=1)


def change_constant(text: str) -> str:
    """The lowest bit of the first bias constant flipped."""
    m = re.search(r"wire signed \[(\d+):0\] (b[\d_]+) = (\d+)'sh([0-9a-f]+);", text)
    return text.replace(m.group(0), f"wire signed [{m.group(1)}:0] {m.group(2)} = {m.group(3)}'sh"
                                    f"{int(m.group(4), 16) ^ 1:x};")


def narrow_root(j: int, cut: int):
    """The root adder of output j cut ``cut`` bits too narrow: it wraps only near the ends of its range."""
    def edit(text: str) -> str:
        root = re.search(rf"wire signed \[\d+:0\] y{j}_r = \$signed\((\w+)\);", text).group(1)
        decl = re.search(rf"wire \[(\d+):0\] {root}_y;", text)
        w = int(decl.group(1)) + 1
        n = w - cut
        text = text.replace(decl.group(0), f"wire [{n - 1}:0] {root}_y;")
        inst = re.search(rf"_sa #\(\.W\({w}\).* u_{root} .*;", text).group(0)
        text = text.replace(inst, inst.replace(f".W({w})", f".W({n})"))
        return text.replace(f"$signed({root}_y)", f"$signed({{{{{cut}{{{root}_y[{n - 1}]}}}}, {root}_y}})")
    return edit


def change_rounding(text: str) -> str:
    """The rounding bit of element 0's cast read one position too low."""
    m = re.search(r"wire y0_half = y0_x\[(\d+)\];", text)
    return text.replace(m.group(0), f"wire y0_half = y0_x[{int(m.group(1)) - 1}];")


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_reference_forms_equal_emulator(tagger):
    """What a proof rests on: each op's printed reference (affine accumulator, then the cast) equals emulate."""
    model = FirmwareModel.load(tagger)
    rng = np.random.default_rng(1)
    for op in model.ops:
        ref = reference(op)
        assert ref.forms is not None, op.name
        x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(2000, op.input.n))
        x[:8], x[8:16] = op.input.max_raw, op.input.min_raw  # the ends of the range too
        want = op.emulate(x, {})
        for j, (form, post) in enumerate(zip(ref.forms, ref.post)):
            assert np.array_equal(post(form.eval(x)), want[:, j]), (op.name, j)


@pytest.fixture(scope="module")
def tagger_cache(tmp_path_factory) -> Path:
    """A cache of the tagger's proofs of its own: the chain test sees its first proof computed, not read; the
    edited bundle's test then reads the unchanged ops' reference legs from it (its edited chain is a new key)."""
    return tmp_path_factory.mktemp("tagger_cache")


@pytest.mark.slow
def test_chain_bundle_proved_and_cached(tagger, tagger_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_CACHE", str(tagger_cache))
    report = prove_bundle(tagger)
    by_op = {r["op"]: r for r in report["ops"]}
    assert load_manifest(tagger)["rtl"]["pipeline"] == "auto"
    assert report["summary"] == {"proved": 7, "counterexample": 0, "not proved": 0}, report["ops"]
    for name in ("fc1", "fc2", "fc3", "output"):  # constant-matrix products: every output an exact affine form
        assert by_op[name]["method"] == f"affine ({by_op[name]['outputs']} outputs)"
    for name in ("relu1", "relu2", "relu3"):  # casts: every input value enumerated
        assert by_op[name]["method"].startswith("enumeration") and by_op[name]["enumerated_values"] > 0
    assert not any(r["edited_after_build"] or r["cached"] for r in report["ops"])
    assert json.loads((tagger / "reports" / "prove.json").read_text())["summary"] == report["summary"]
    assert changed_files(tagger, load_manifest(tagger)) == []  # the manifest's hashes still hold
    # each op's reference Verilog written beside the report and proved equal to the reference form: with the
    # bundle's module proved equal to the same form, the bundle's module equals the reference Verilog
    assert report["reference_verilog"] == {"proved": 7, "counterexample": 0, "not proved": 0, "not printed": 0}
    printed = {}
    for r in report["ops"]:
        assert r["reference_used"] == "verilog" and r["reference"]["verilog"] == f"reports/reference/{r['op']}.v", r
        printed[r["op"]] = (tagger / r["reference"]["verilog"]).read_bytes()
    again = prove_bundle(tagger)
    assert all(r["cached"] for r in again["ops"]) and again["summary"] == report["summary"]
    assert all(r["reference"]["cached"] for r in again["ops"])
    assert {r["op"]: (tagger / r["reference"]["verilog"]).read_bytes() for r in again["ops"]} == printed
    # the report's proof section: every op proved for all inputs, so a budget asking for it passes
    budget = tmp_path / "proved.yml"
    budget.write_text("budget:\n  proved: true\n")
    assert main(["report", str(tagger), "--no-synth", "--budget", str(budget)]) == 0
    section = json.loads((tagger / "reports" / "report.json").read_text())["proof"]
    assert section["status"] == "run" and section["unproved"] == [] and section["proved"] == 7
    assert {row["result"] for row in section["ops"]} == {"proved for all inputs"}
    assert "## Proof for all inputs" in (tagger / "reports" / "report.md").read_text()
    assert "<h2>Proof for all inputs</h2>" in (tagger / "reports" / "report.html").read_text()


@pytest.mark.slow
def test_layer_modules_proved(layer_rtl, tmp_path):
    """One module per op (pipeline layer; the chain test covers fc1 and relu1): proved with their latencies."""
    model, modules = layer_rtl
    for name in ("fc2", "relu2", "output"):
        op, module, sources, latency = modules[name]
        result = prove_op(op, sources, module, latency, tmp_path)
        assert result["status"] == "proved", result
        assert latency == 1 or name != "relu2"


@pytest.mark.parametrize("name,edit", [("output", change_shift), ("output", change_constant),
                                       ("output", narrow_root(3, 2)), ("relu3", change_rounding)],
                         ids=["shift", "constant_digit", "narrow_adder", "rounding_bit"])
@pytest.mark.slow
def test_mutant_caught_and_confirmed_by_simulation(layer_rtl, tmp_path, name, edit):
    op, module, sources, latency = module_of(layer_rtl, name, tmp_path / "rtl", edit)
    result = prove_op(op, sources, module, latency, tmp_path)
    assert result["status"] == "counterexample", result
    x = np.array([result["counterexample"]["input"]])
    simulated = confirm(op, sources, module, latency, x, tmp_path / "sim", simulator="icarus")
    assert not np.array_equal(simulated, op.emulate(x, {}))  # the simulator shows the bug on that input


@pytest.mark.slow
def test_random_simulation_misses_narrow_adder(layer_rtl, tmp_path):
    """Output 3's root adder one bit too narrow: 1,500 random vectors through Icarus agree with the
    emulator (the sum rarely reaches the ends of its range), while the proof names an input where they differ.
    (The builder sizes constant-matrix adders from their exact ranges, so one bit less already wraps.)"""
    op, module, sources, latency = module_of(layer_rtl, "output", tmp_path / "rtl", narrow_root(3, 1))
    rng = np.random.default_rng(2)
    x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(RANDOM_VECTORS, op.input.n))
    assert np.array_equal(confirm(op, sources, module, latency, x, tmp_path / "random", simulator="icarus"),
                          op.emulate(x, {}))
    result = prove_op(op, sources, module, latency, tmp_path)
    assert result["status"] == "counterexample"


@pytest.mark.slow
def test_edited_bundle_names_the_op(tagger, tagger_cache, tmp_path, capsys, monkeypatch):
    """A bias constant of the chain's last piece changed after build: the op it belongs to gets a
    counterexample, the edit is reported, and the CLI exits 1."""
    monkeypatch.setenv("TRIGGER_CACHE", str(tagger_cache))
    bundle = tmp_path / "edited"
    shutil.copytree(tagger, bundle)
    piece = sorted((bundle / "rtl").glob("*_ops_*.v"))[-1]
    piece.write_text(change_constant(piece.read_text()))
    ops = ["fc2", "relu2", "fc3", "relu3", "output"]  # those of the last piece (fc1, relu1: the chain test)
    assert main(["prove", str(bundle), *[a for op in ops for a in ("--op", op)]]) == 1
    out = capsys.readouterr().out
    assert "counterexample" in out and "RTL edited after build" in out
    report = json.loads((bundle / "reports" / "prove.json").read_text())
    bad = [r for r in report["ops"] if r["status"] == "counterexample"]
    assert len(bad) == 1 and bad[0]["edited_after_build"], report["ops"]
    # the op inside the chain simulated alone (Icarus: the chain's Verilog, its input signals forced): the
    # simulation shows the netlist's outputs, which differ from emulate
    cex = bad[0]["counterexample"]
    assert cex["confirmed"] is True and cex["simulation"] == cex["netlist"] != cex["emulator"], cex
    assert report["edited_files"] == [piece.relative_to(bundle).as_posix()]
    # in the report: the op with the counterexample and the two not proved here rest on the simulated vectors;
    # "not proved" fails only a budget with proved: true, which names them
    capsys.readouterr()
    budget = tmp_path / "proved.yml"
    budget.write_text("budget:\n  proved: true\n")
    assert main(["report", str(bundle), "--no-synth", "--budget", str(budget)]) == 1
    assert "proved: not proved for all inputs: fc1, relu1, " + bad[0]["op"] in capsys.readouterr().err
    section = json.loads((bundle / "reports" / "report.json").read_text())["proof"]
    rows = {row["op"]: row for row in section["ops"]}
    vectors = json.loads((bundle / "reports" / "verify.json").read_text())["vectors"]
    assert rows["fc1"]["result"] == f"simulated on {vectors} vectors" and rows["fc1"]["note"] == "not run"
    assert rows[bad[0]["op"]]["counterexample"] and rows[bad[0]["op"]]["note"].startswith("counterexample")
    assert section["edited_files"] == report["edited_files"]
    no_budget = tmp_path / "none.yml"
    no_budget.write_text("budget:\n  proved: false\n")
    assert main(["report", str(bundle), "--no-synth", "--budget", str(no_budget)]) == 0
    # a prove.json of another build (another manifest's hash) is not read: "stale", and the budget fails
    proofs = bundle / "reports" / "prove.json"
    proofs.write_text(proofs.read_text().replace(report["manifest_sha256"], "0" * 64))
    assert main(["report", str(bundle), "--no-synth", "--budget", str(budget)]) == 1
    assert "trigger prove not run for this build" in capsys.readouterr().err
    assert json.loads((bundle / "reports" / "report.json").read_text())["proof"]["status"].startswith("stale")
    assert main(["prove", str(bundle), "--op", "nope"]) == 2
    assert main(["prove", str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err


def conv_model():
    """A Conv2D (padding, stride, rounding and saturating cast) -> ReLU -> Conv1D-like Conv2D -> dense, built
    directly (no hls4ml): convolutions and casts that are not the identity, so outputs go by enumeration."""
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

    c0 = conv("c0", TensorType.uniform(fi, 4 * 5 * 2), [4, 5, 2], [3, 2], [1, 2], [1, 0, 1, 1], 3,
              F("fixed<12,5,RND,SAT>"))
    r0 = relu("r0", c0, F("ufixed<6,3,RND_CONV,SAT>"))
    c1 = conv("c1", r0.output, [*c0.geometry.out_spatial, 3], [2, 2], [1, 1], [0, 0, 0, 0], 2,
              F("fixed<10,4,RND,SAT>"))
    d = random_dense(rng, "d", c1.output.n, 3, c1.output.format, wf, bf, F("fixed<12,5,RND,SAT>"))
    model = FirmwareModel("convs", c0.input, [c0, r0, c1, d])
    model.validate()
    return model


@pytest.mark.parametrize("pipeline", ["layer", "auto"])
@pytest.mark.slow
def test_convolutions_with_casts_proved(tmp_path, pipeline):
    """Convolutions whose casts round and saturate: every output enumerated over its accumulator, the
    reference checked against emulate first; one module per op, and the cut chain of pipeline auto."""
    from trigger.prove import prove_design

    model = conv_model()
    rng = np.random.default_rng(3)
    for op in model.ops:
        ref = reference(op)
        x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(3000, op.input.n))
        want = op.emulate(x, {})
        assert all(np.array_equal(post(form.eval(x)), want[:, j])
                   for j, (form, post) in enumerate(zip(ref.forms, ref.post))), op.name
    design = write_rtl(model, tmp_path / "rtl", top="convs", pipeline=pipeline)
    rtl = {"top": design.top, "sources": [Path(s).relative_to(tmp_path).as_posix() for s in design.sources],
           "op_latency": design.op_latency, "pipeline": design.pipeline, "multiplier": design.multiplier,
           "max_delay_ns_per_stage": design.max_delay_ns, "op_ii": design.op_ii, "ii": design.ii}
    results = prove_design(model, tmp_path, rtl)
    assert [r["status"] for r in results] == ["proved"] * 4, results
    assert results[0]["method"].startswith("enumeration")


@pytest.mark.slow
def test_register_missing_from_one_output_is_not_proved(layer_rtl, tmp_path):
    """Element 0 of relu3 leaves without its output register: the same function, one cycle early. The
    register check refuses it (the other outputs are a cycle later), where a check of the function alone
    would pass."""
    op, module, sources, latency = module_of(
        layer_rtl, "relu3", tmp_path / "rtl",
        lambda text: text.replace("always @(posedge clk) q0 <= ", "always @* q0 = ", 1))
    result = prove_op(op, sources, module, latency, tmp_path)
    assert result["status"] == "not proved" and "registers deep" in result["reason"], result


# ---------------------------------------------------------------------------------------------- every op kind
def kind_models() -> dict:
    """One small model per op kind the mutation tests break (built directly, no hls4ml)."""
    from tests.firmware_cases import F, requant_chain, small_models
    from trigger.ir import FirmwareModel, TensorType
    from trigger.ir.ops.argmax import Argmax
    from trigger.ir.ops.lookup import Lookup
    from trigger.ir.ops.max_pool import MaxPool
    from trigger.ir.ops.tree_ensemble import TreeEnsemble

    T = TensorType.uniform
    rng = np.random.default_rng(5)
    mp = MaxPool("mp", T(F("fixed<8,3>"), 24), T(F("fixed<7,2,RND,SAT>"), 12), [12, 2], [2], [2], [0, 0],
                 F("fixed<8,3>"))
    am = Argmax("am", T(F("fixed<10,4>"), 6), T(F("ufixed<3,3>"), 1))
    lut = Lookup("lut", T(F("ufixed<8,8>"), 1), T(F("fixed<9,4>"), 1), rng.integers(-256, 256, 256))
    # two trees of depth 2 over three 16-bit features (2^48 inputs)
    trees = TreeEnsemble("trees", T(F("fixed<16,6>"), 3), T(F("fixed<10,5,RND,SAT>"), 1),
                         feature=np.array([0, 1, -1, -1, -1, 2, 0, -1, -1, -1]),
                         threshold=np.array([1000, -2000, 0, 0, 0, 30000, -5, 0, 0, 0]),
                         left=np.array([1, 2, -1, -1, -1, 6, 7, -1, -1, -1]),
                         right=np.array([4, 3, -1, -1, -1, 9, 8, -1, -1, -1]),
                         value=np.array([0, 0, 37, -12, 5, 0, 0, -30, 21, 9]).reshape(-1, 1),
                         roots=np.array([0, 5]), bias=np.array([3]), leaf_fmt=F("fixed<8,3>"),
                         accum_fmt=F("fixed<12,7>"))
    # the same trees scoring two classes, the class the first largest sum (argmax)
    value2 = np.array([[0, 0], [0, 0], [37, -4], [-12, 30], [5, 5], [0, 0], [0, 0], [-30, 2], [21, -9], [9, 9]])
    vote = TreeEnsemble("vote", trees.input, TensorType([F("fixed<10,5,RND,SAT>")] * 2 + [F("ufixed<1,1>")]),
                        feature=trees.feature, threshold=trees.threshold, left=trees.left, right=trees.right,
                        value=value2, roots=trees.roots, bias=np.array([0, 0]), leaf_fmt=F("fixed<8,3>"),
                        accum_fmt=F("fixed<12,7>"), decision="argmax")
    models = {"vote": FirmwareModel("vote", vote.input, [vote]), "max_pool": FirmwareModel("mp", mp.input, [mp]), "argmax": FirmwareModel("am", am.input, [am]),
              "lookup": FirmwareModel("lut", lut.input, [lut]), "trees": FirmwareModel("trees", trees.input, [trees]),
              "leaky": small_models()["leaky"], "casts": requant_chain("SAT"), "convs": conv_model()}
    for model in models.values():
        model.validate()
    return models


@pytest.fixture(scope="module")
def kind_rtl(tmp_path_factory) -> dict:
    """Each kind model written one module per op (pipeline layer): name -> {op name: (op, module, sources, latency)}."""
    out = {}
    for name, model in kind_models().items():
        folder = tmp_path_factory.mktemp(f"rtl_{name}")
        design = write_rtl(model, folder, top="k", pipeline="layer")
        out[name] = (model, {m[0].name: m for m in op_modules(model, folder, "k", design.op_latency)})
    return out


def replace_once(old: str, new: str):
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)
    return edit


def change_rom_word(text: str) -> str:
    """Word 100 of a $readmemh table, one bit flipped."""
    lines = text.splitlines()
    lines[100] = f"{int(lines[100], 16) ^ 1:x}"
    return "\n".join(lines) + "\n"


# (kind model, op, edit, the file edited, enumeration limit): each a bug the proof must catch. A limit of 16
# values sends the casts to the solver instead of enumeration.
MUTANTS = {
    "conv_bias_digit": ("convs", "c0", lambda t: re.sub(r"(wire signed \[\d+:0\] o0_b0 = \d+'sh)([0-9a-f]+);",
                                                        lambda m: f"{m.group(1)}{int(m.group(2), 16) ^ 1:x};", t),
                        None, 1 << 25),
    "conv_cast_by_solver": ("convs", "c1", lambda t: re.sub(r"wire (\w+)_up = \1_half;", r"wire \1_up = 1'b0;", t,
                                                             count=1), None, 16),
    "relu_rounding_by_solver": ("convs", "r0", lambda t: re.sub(r"wire (y\d+)_up = \1_half[^;]*;",
                                                                r"wire \1_up = \1_half;", t, count=1), None, 16),
    "cast_rnd_conv_tie": ("casts", "q2_rnd_conv", replace_once("wire y0_up = y0_half & (y0_rest | y0_odd);",
                                                               "wire y0_up = y0_half;"), None, 16),
    "leaky_relu_rounding": ("leaky", "leaky", replace_once("wire k0_up = k0_half;", "wire k0_up = 1'b0;"),
                            None, 1 << 25),
    "max_pool_saturation": ("max_pool", "mp", replace_once("wire y0_ohi = y0_r > 8'sh3f;",
                                                           "wire y0_ohi = y0_r > 8'sh40;"), None, 1 << 25),
    "argmax_tie_rule": ("argmax", "am", lambda t: re.sub(r"(arg_k1_0 = \(\$signed\(arg_v0_0\)) >=", r"\1 >", t),
                        None, 1 << 25),
    "table_word": ("lookup", "lut", change_rom_word, "k_lut_rom.mem", 1 << 25),
    "tree_argmax_tie_rule": ("vote", "vote", replace_once("cls_k0_0 = ($signed(sum0_q) >= $signed(sum1_q))",
                                                           "cls_k0_0 = ($signed(sum0_q) > $signed(sum1_q))"),
                             None, 1 << 25),
    "tree_comparator": ("trees", "trees", replace_once("($signed(x0) >= 16'sh3e9)", "($signed(x0) >= 16'sh3ea)"),
                        None, 1 << 25),
    "tree_leaf_digit": ("trees", "trees", replace_once("t1_leaf9_c0 = 5'sh9;", "t1_leaf9_c0 = 5'shb;"),
                        None, 1 << 25),
}


@pytest.mark.slow  # Yosys and Icarus per mutant
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_every_kind_proved_and_its_mutant_caught(kind_rtl, tmp_path, mutant):
    """The op as built is proved; the broken copy gets a counterexample on which Icarus shows the bug."""
    kind, name, edit, edited_file, limit = MUTANTS[mutant]
    model, modules = kind_rtl[kind]
    op, module, sources, latency = modules[name]
    clean = prove_op(op, sources, module, latency, tmp_path / "clean", limit=limit)
    assert clean["status"] == "proved", clean
    folder = tmp_path / "rtl"
    folder.mkdir()
    copies = [Path(shutil.copy(s, folder / s.name)) for s in sources]
    for data in sources[0].parent.glob("*.mem"):
        shutil.copy(data, folder / data.name)
    target = folder / edited_file if edited_file else copies[0]
    text = target.read_text()
    target.write_text(edit(text))
    assert target.read_text() != text, "the mutation did not apply"
    result = prove_op(op, copies, module, latency, tmp_path / "broken", limit=limit)
    assert result["status"] == "counterexample", result
    x = np.array([result["counterexample"]["input"]])
    simulated = confirm(op, copies, module, latency, x, tmp_path / "sim", simulator="icarus")  # compiles fastest
    assert not np.array_equal(simulated, op.emulate(x, {}))  # the simulator shows the bug on that input...
    assert simulated[0].tolist() == result["counterexample"]["netlist"]  # ...with the netlist's very outputs
    if limit == 16:
        assert "sat" in clean["method"] and clean["solver_questions"] > 0, clean


def test_random_simulation_misses_tree_comparator(kind_rtl, tmp_path):
    """A tree's threshold one too high (x0 >= 1002 instead of >= 1001) differs on one value of a 16-bit input:
    1,500 random vectors through the simulator agree with the emulator, the proof names x0 = 1001."""
    kind, name, edit, _, limit = MUTANTS["tree_comparator"]
    op, module, sources, latency = kind_rtl[kind][1][name]
    folder = tmp_path / "rtl"
    folder.mkdir()
    copies = [Path(shutil.copy(s, folder / s.name)) for s in sources]
    copies[0].write_text(edit(copies[0].read_text()))
    rng = np.random.default_rng(2)
    x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(RANDOM_VECTORS, op.input.n))
    assert np.array_equal(confirm(op, copies, module, latency, x, tmp_path / "random", simulator="icarus"),
                          op.emulate(x, {}))
    result = prove_op(op, copies, module, latency, tmp_path / "proof", limit=limit)
    assert result["status"] == "counterexample" and result["counterexample"]["input"][0] == 1001, result


def test_z3_cast_equals_fixed_cast():
    """What the solver path rests on: z3_cast computes trigger.fixed's cast, for every rounding and overflow
    mode, narrowing and widening, on the values around every rounding tie and both overflow edges."""
    import z3

    from trigger.fixed import FixedFormat
    from trigger.prove import z3_cast

    a = z3.BitVec("a", 64)
    source = FixedFormat(14, 6, True)
    values = np.unique(np.concatenate([np.arange(-80, 80), np.arange(source.min_raw, source.min_raw + 12),
                                       np.arange(source.max_raw - 12, source.max_raw + 1)]))
    for rounding in ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV"):
        for overflow in ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO"):
            for width, integer, signed in ((6, 3, True), (5, 2, False), (9, 1, True), (16, 8, True)):
                fmt = FixedFormat(width, integer, signed, rounding, overflow)
                expr = z3_cast(fmt, a, source)
                want = fmt.cast(values, source)
                got = [z3.simplify(z3.substitute(expr, (a, z3.BitVecVal(int(v), 64)))).as_signed_long()
                       for v in values]
                assert got == want.tolist(), fmt.cpp


def test_solver_semantics_equal_emulator():
    """The ops written for the solver (argmax, max_pool: WHOLE_Z3; a tree's leaf selection) equal emulate."""
    import z3

    from trigger.prove import WHOLE_Z3, _tree_z3

    models = kind_models()
    rng = np.random.default_rng(4)
    for kind in ("argmax", "max_pool", "trees"):
        op = models[kind].ops[0]
        xs = [z3.BitVec(f"x{v}", 64) for v in range(op.input.n)]
        x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(40, op.input.n))
        x[0], x[1] = op.input.min_raw, op.input.max_raw  # every element equal: the tie rule
        if kind == "trees":
            exprs = [sum((_tree_z3(op, int(r), 0, xs) for r in op.roots), z3.BitVecVal(int(op.bias[0]), 64))]
            want = op.sums(x)
        else:
            exprs, want = WHOLE_Z3[kind](op, xs), op.emulate(x, {})
        for row, expected in zip(x, want):
            subs = [(v, z3.BitVecVal(int(val), 64)) for v, val in zip(xs, row)]
            got = [z3.simplify(z3.substitute(e, *subs)).as_signed_long() for e in exprs]
            assert got == expected.tolist(), (kind, row)


@pytest.mark.slow  # a build, a verification, the proof and Yosys synthesis
def test_ci_prove_with_proved_budget(constructed_networks, tmp_path, capsys):
    """`trigger ci --prove` with `proved: true`: the proof runs before the report, which shows every op proved
    and passes the budget; editing one op's constant then fails `trigger prove` (counterexample, exit 1) and the
    report's budget names the op."""
    budget = tmp_path / "budget.yml"
    budget.write_text("budget:\n  proved: true\n  bit_exact: true\n")
    out = tmp_path / "bundle"
    assert main(["ci", str(constructed_networks["four_bit"].folder), "-o", str(out), "--budget", str(budget),
                 "--vectors", "300", "--prove"]) == 0
    section = json.loads((out / "reports" / "report.json").read_text())["proof"]
    assert section["status"] == "run" and section["unproved"] == [] and section["proved"] == len(section["ops"])
    piece = sorted((out / "rtl").glob("*_ops*.v"))[-1]
    piece.write_text(change_constant(piece.read_text()))
    capsys.readouterr()
    assert main(["prove", str(out)]) == 1
    assert main(["report", str(out), "--no-synth", "--budget", str(budget)]) == 1
    assert "proved: not proved for all inputs: " in capsys.readouterr().err


def test_proved_budget_key_is_a_boolean():
    from trigger.budget import BudgetError, load_budget

    assert load_budget({"proved": True}) == {"proved": True}
    with pytest.raises(BudgetError, match="proved must be true or false"):
        load_budget({"proved": "yes"})


# ---------------------------------------------------------------------------------------------- graph models
def graph_model():
    """Three ports a (6), b (6), b2 (2): a residual add (a dense on a, added to a itself: the skip branch is
    delayed to meet it), every merge on a and b (formats of different LSBs: b is aligned by a shift), a
    broadcast add, a concatenation, a dot a . b and a dot a . a (one tensor read twice); every op an output."""
    from tests.firmware_cases import F, exact_accum, random_dense, relu
    from tests.test_merge_ops import OPERATIONS, T, concatenate_op, dot_op, join, merge_op

    f1, f2, out = F("fixed<9,3>"), F("ufixed<7,2>"), F("fixed<6,2,RND,SAT>")
    dense = random_dense(np.random.default_rng(8), "fc", 6, 6, f1, F("fixed<6,1>"), F("fixed<6,1>"),
                         F("fixed<9,3,RND,SAT>"))
    # a dense whose output 0 has only even weights and an even bias, kept in its accumulator's format: the
    # builder's bit 0 of it is a constant 0, which its interval does not prove; a relu reads it
    acc = exact_accum(f1, F("fixed<6,1>"), 6)
    even = random_dense(np.random.default_rng(9), "even", 6, 3, f1, F("fixed<6,1>"), F("fixed<6,1>"), acc, acc)
    even.weight[:, 0] = even.weight[:, 0] // 2 * 2
    even.bias[0] = even.bias[0] // 2 * 2
    ops = [dense, merge_op("residual", "add", dense.output.format, f1, None, 6, 6), even,
           relu("even_relu", even, F("ufixed<8,4,RND,SAT>"))]
    ops += [merge_op(op, op, f1, f2, out, 6, 6) for op in OPERATIONS]
    ops += [merge_op("add_broadcast", "add", f1, f2, out, 6, 2),
            concatenate_op("concatenate", f1, f2, out, (2, 3), (2, 3), -1),
            dot_op("dot", f1, f2, out, F("fixed<24,13>"), 6), dot_op("square", f1, f1, out, F("fixed<24,12>"), 6)]
    reads = {op.name: ["a", "b"] for op in ops}
    reads.update(fc=["a"], residual=["fc", "a"], add_broadcast=["a", "b2"], square=["a", "a"], even=["a"],
                 even_relu=["even"])
    model = FirmwareModel("graph", join([T(f1, 6), T(f2, 6), T(f2, 2)], ["a", "b", "b2"]), ops,
                          ports=[("a", 6), ("b", 6), ("b2", 2)], reads=reads, outputs=[op.name for op in ops])
    model.validate()
    return model


def design_rtl(model, folder: Path, pipeline: str, top: str = "g", ii: int = 1) -> dict:
    """write_rtl (ii > 1: resource sharing, each op at the ii it can use), and the manifest's rtl section for it."""
    from trigger.ir.ii import resolve_ii

    design = write_rtl(model, folder / "rtl", top=top, pipeline=pipeline, ii=ii,
                       op_ii=resolve_ii(model, ii)[1] if ii > 1 else None)
    return {"top": design.top, "sources": [Path(s).relative_to(folder).as_posix() for s in design.sources],
            "op_latency": design.op_latency, "pipeline": design.pipeline, "multiplier": design.multiplier,
            "max_delay_ns_per_stage": design.max_delay_ns, "op_ii": design.op_ii, "ii": design.ii}


def test_merge_references_equal_emulator():
    """The merge ops' reference forms (add, subtract, average, concatenate) and their solver semantics (every
    merge) compute emulate, on random inputs and every input at both ends of its format."""
    import z3

    from trigger.prove import WHOLE_Z3

    rng = np.random.default_rng(6)
    for op in graph_model().ops[4:-2]:
        x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(400, op.input.n))
        x[0], x[1] = op.input.min_raw, op.input.max_raw
        want = op.emulate(x, {})
        ref = reference(op)
        if op.kind == "concatenate" or op.operation in ("add", "subtract", "average"):
            assert all(np.array_equal(post(form.eval(x)), want[:, j])
                       for j, (form, post) in enumerate(zip(ref.forms, ref.post))), op.name
        else:
            assert ref.forms is None, op.name
        if op.kind == "merge":
            xs = [z3.BitVec(f"x{v}", 64) for v in range(op.input.n)]
            exprs = WHOLE_Z3["merge"](op, xs)
            for row, expected in zip(x[:40], want[:40]):
                subs = [(v, z3.BitVecVal(int(val), 64)) for v, val in zip(xs, row)]
                assert [z3.simplify(z3.substitute(e, *subs)).as_signed_long() for e in exprs] == expected.tolist()


@pytest.mark.slow  # Yosys on the graph
@pytest.mark.parametrize("pipeline", ["layer", "auto"])
def test_graph_model_every_op_proved(tmp_path, pipeline):
    """A graph (three ports, a skip branch delayed to meet its add, every merge, a concatenation): each op
    proved between its source tensors' signals in the one flattened module."""
    from trigger.prove import prove_design

    model = graph_model()
    results = prove_design(model, tmp_path, design_rtl(model, tmp_path, pipeline))
    assert {r["op"]: r["status"] for r in results} == {op.name: "proved" for op in model.ops}, results
    methods = {r["op"]: r["method"] for r in results}
    assert methods["multiply"].startswith("sat per output") and not methods["add"].startswith("sat"), methods
    assert methods["dot"].startswith("products (6 multipliers)") and methods["square"].startswith("products (6")
    assert next(r for r in results if r["op"] == "residual")["reads"] == ["fc", "a"]
    # the relu after the even dense output, unregistered (auto): its input 0 proved as a multiple of 2 (bit 0 a
    # constant in the netlist); with a register between (layer) the bit is a register of a constant instead
    if pipeline == "auto":
        assert next(r for r in results if r["op"] == "even_relu")["scaled_inputs"] == {"0": 1}


# (operation, edit of the merge's graph module): each a bug the proof must catch
MERGE_MUTANTS = {
    "add_alignment": ("add", replace_once("m_sa #(.W(10), .SA(0), .SB(1), .SUB(0)) u_s2",
                                          "m_sa #(.W(10), .SA(0), .SB(0), .SUB(0)) u_s2")),
    "maximum_unsigned_compare": ("maximum", replace_once("($signed(a_2) >= $signed(b2))",
                                                       "($unsigned(a_2) >= $unsigned(b2))")),
}


def merge_alone(operation: str, folder: Path):
    from tests.firmware_cases import F
    from tests.test_merge_ops import merge_op, two_input_model

    model = two_input_model(merge_op(operation, operation, F("fixed<9,3>"), F("ufixed<7,2>"), None, 4, 4), 4, 4)
    return model, design_rtl(model, folder, "layer", top="m")


@pytest.mark.slow  # Yosys and Verilator per mutant
@pytest.mark.parametrize("mutant", sorted(MERGE_MUTANTS))
def test_merge_mutant_caught_and_confirmed_by_simulation(tmp_path, mutant):
    """A merge (one op on two ports: a graph) proved as built; broken (one element's operand not aligned; a
    maximum comparing as unsigned), a counterexample that Verilator, running the graph module, confirms."""
    from trigger.prove import prove_design

    operation, edit = MERGE_MUTANTS[mutant]
    model, rtl = merge_alone(operation, tmp_path)
    assert [r["status"] for r in prove_design(model, tmp_path, rtl)] == ["proved"]
    ops_file = tmp_path / "rtl" / "m_ops.v"
    ops_file.write_text(edit(ops_file.read_text()))
    (result,) = prove_design(model, tmp_path, rtl)
    assert result["status"] == "counterexample", result
    cex = result["counterexample"]
    assert cex["confirmed"] is True, cex
    assert cex["simulation"] == cex["netlist"] != cex["emulator"]


@pytest.mark.slow  # Yosys
def test_maximum_tie_rule_is_proved_equivalent(tmp_path):
    """A maximum taking b on a tie (a > b ? a : b instead of a >= b ? a : b) is not a bug: on a tie the aligned
    values are equal, so the proof proves it (a check of the RTL text would flag it)."""
    from trigger.prove import prove_design

    model, rtl = merge_alone("maximum", tmp_path)
    ops_file = tmp_path / "rtl" / "m_ops.v"
    ops_file.write_text(replace_once("($signed(a_2) >= $signed(b2))", "($signed(a_2) > $signed(b2))")(
        ops_file.read_text()))
    assert [r["status"] for r in prove_design(model, tmp_path, rtl)] == ["proved"]


def deepsets_models() -> list:
    """DeepSets' pieces: an item_dense (3 items of 4 features -> 3) and a global mean or max over the items."""
    from tests.firmware_cases import F
    from trigger.ir import TensorType
    from trigger.ir.ops.global_pool import GlobalPool
    from trigger.ir.ops.item_dense import ItemDense

    T = TensorType.uniform
    rng = np.random.default_rng(1)
    wf, mid = F("fixed<6,1>"), F("fixed<9,4,RND,SAT>")
    items = ItemDense("items", T(F("fixed<7,2>"), 12), T(mid, 9), rng.integers(-32, 32, (4, 3)),
                      rng.integers(-32, 32, 3), wf, wf, F("fixed<20,8>"), 3)
    out = T(F("fixed<8,3,RND,SAT>"), 3)
    models = [FirmwareModel("ds_mean", items.input, [items, GlobalPool("mean", T(mid, 9), out, "mean", 3, 3,
                                                                       F("fixed<14,7>"))]),
              FirmwareModel("ds_max", items.input, [items, GlobalPool("max", T(mid, 9), out, "max", 3, 3,
                                                                      F("fixed<10,5>"))])]
    for model in models:
        model.validate()
    return models


@pytest.mark.slow  # Yosys
@pytest.mark.parametrize("pipeline", ["layer", "auto"])
def test_item_dense_and_global_pool_proved(tmp_path, pipeline):
    """item_dense (dense per item: affine forms) and global_pool (mean: the sum as an affine form, the division
    and cast enumerated on it; max: z3 per output), their references equal to emulate first."""
    from trigger.prove import WHOLE_Z3, prove_design

    rng = np.random.default_rng(2)
    for model in deepsets_models():
        items, pool = model.ops
        for op in (items, pool) if pool.mode == "mean" else (items,):
            ref = reference(op)
            x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(2000, op.input.n))
            x[0], x[1] = op.input.min_raw, op.input.max_raw
            want = op.emulate(x, {})
            assert all(np.array_equal(post(form.eval(x)), want[:, j])
                       for j, (form, post) in enumerate(zip(ref.forms, ref.post))), op.name
        if pool.mode == "max":
            import z3

            xs = [z3.BitVec(f"x{v}", 64) for v in range(pool.input.n)]
            x = rng.integers(pool.input.min_raw, pool.input.max_raw + 1, size=(30, pool.input.n))
            for row, expected in zip(x, pool.emulate(x, {})):
                subs = [(v, z3.BitVecVal(int(val), 64)) for v, val in zip(xs, row)]
                assert [z3.simplify(z3.substitute(e, *subs)).as_signed_long()
                        for e in WHOLE_Z3["global_pool"](pool, xs)] == expected.tolist()
        folder = tmp_path / model.name
        results = prove_design(model, folder, design_rtl(model, folder, pipeline, top="d"))
        assert [r["status"] for r in results] == ["proved", "proved"], results


# ---------------------------------------------------------------------------------------------- shared designs (ii > 1)
def shared_mlp():
    """A small dense network (4 -> 5 -> 3, fixed<16,6> inputs, ReLU between): its dense layers digit-serial."""
    from tests.firmware_cases import mlp

    return mlp(sizes=(4, 5, 3))


@pytest.mark.slow  # Yosys
@pytest.mark.parametrize("pipeline,ii", [("layer", 2), ("auto", 4)])
def test_shared_design_proved_op_by_op(tmp_path, pipeline, ii):
    """Resource sharing: every op of the shared design proved over one event unrolled (the phase counters and
    operand multiplexers folded), the dense layers over their input slices (digit variables)."""
    from trigger.prove import prove_design

    model = shared_mlp()
    rtl = design_rtl(model, tmp_path, pipeline, top="s", ii=ii)
    assert rtl["ii"] == ii and rtl["op_ii"]["dense0"] == ii
    results = prove_design(model, tmp_path, rtl)
    assert [r["status"] for r in results] == ["proved"] * 3, results
    by_op = {r["op"]: r for r in results}
    assert by_op["dense0"]["digit_inputs"] and by_op["dense1"]["digit_inputs"]  # read slice by slice
    assert by_op["dense1"]["method"] == "affine (3 outputs)"
    if pipeline == "layer":  # relu0 holds dense0's sums for the ii cycles dense1 reads them
        assert by_op["relu0"]["schedule"]["output_held_cycles"] == ii
        assert by_op["dense0"]["schedule"]["input_held_cycles"] == ii


def shared_module(folder: Path, name: str, edit=None):
    """(op, module, sources, latency, schedule) of one op of shared_mlp at ii 2, one module per op, its module
    edited by ``edit``."""
    from trigger.prove import _schedule

    model = shared_mlp()
    rtl = design_rtl(model, folder, "layer", top="s", ii=2)
    k = [op.name for op in model.ops].index(name)
    op, module, sources, latency = op_modules(model, folder / "rtl", "s", rtl["op_latency"])[k]
    if edit is not None:
        text = sources[0].read_text()
        assert edit(text) != text, "the mutation did not apply"
        sources[0].write_text(edit(text))
    return op, module, sources, latency, _schedule(model, rtl, k)


SHARED_MUTANTS = {
    # cycle 1 selects the top slice again: the counter value for slot 1 replaced by one that never occurs
    "operand_slot": lambda text: text.replace("            1: sl0 = ", "            2: sl0 = ", 1),
    # the bias's top part, added in the first time slot only, one LSB off
    "slot_constant": lambda text: re.sub(r"acc0 <= \(start \? (\d+)'sh([0-9a-f]+)",
                                         lambda m: f"acc0 <= (start ? {m.group(1)}'sh{int(m.group(2), 16) ^ 1:x}",
                                         text, count=1),
}


@pytest.mark.slow  # Yosys and Icarus
@pytest.mark.parametrize("mutant", sorted(SHARED_MUTANTS))
def test_shared_mutant_caught_and_confirmed_by_simulation(tmp_path, mutant):
    """A shared dense with a wrong operand selection in one cycle, or a wrong constant in one time slot: a
    counterexample that Icarus, driving the module at ii 2 behind the standard top, confirms."""
    op, module, sources, latency, schedule = shared_module(tmp_path, "dense0", SHARED_MUTANTS[mutant])
    result = prove_op(op, sources, module, latency, tmp_path / "proof", schedule=schedule)
    assert result["status"] == "counterexample", result
    x = np.array([result["counterexample"]["input"]])
    assert np.all((x >= op.input.min_raw) & (x <= op.input.max_raw))  # an input of the op, not of the digits
    simulated = confirm(op, sources, module, latency, x, tmp_path / "sim", simulator="icarus", ii=2)
    assert not np.array_equal(simulated, op.emulate(x, {}))
    assert simulated.tolist() == [result["counterexample"]["netlist"]]  # the unrolled netlist computes what runs


@pytest.mark.slow  # Yosys and Icarus
def test_unrolled_netlist_equals_simulation(tmp_path):
    """What a shared op's proof rests on: the unrolled netlist (``Unrolled``), evaluated on random inputs,
    computes what Icarus computes for the module at ii 2 behind the standard top."""
    from trigger.prove import Netlist, evaluate, unroll, yosys_json

    op, module, sources, latency, schedule = shared_module(tmp_path, "dense0")
    mod = unroll(yosys_json(sources, module, tmp_path), latency, schedule)
    bits = mod["ports"]["in_data"]["bits"]
    net = Netlist(mod, [bits[lsb:lsb + f.width] for lsb, f in zip(op.input.offsets, op.input.formats)],
                  [(int(f.min_raw), int(f.max_raw)) for f in op.input.formats])
    net.outputs = [(net.out_bits[lsb:lsb + f.width], f.signed) for lsb, f in zip(op.output.offsets,
                                                                                op.output.formats)]
    x = np.random.default_rng(4).integers(op.input.min_raw, op.input.max_raw + 1, size=(300, op.input.n))
    x[:2] = op.input.min_raw, op.input.max_raw
    got = evaluate(net, x, None)
    assert np.array_equal(got, confirm(op, sources, module, latency, x, tmp_path / "sim", simulator="icarus", ii=2))
    assert np.array_equal(got, op.emulate(x, {}))


@pytest.mark.slow  # Yosys
def test_shared_output_not_held_is_not_proved(tmp_path):
    """relu0 writes its hold register every cycle instead of once per event: the same function in the cycle it
    is read first, but the next op (shared, ii 2) reads it a cycle longer, when it holds the next input's."""
    op, module, sources, latency, schedule = shared_module(
        tmp_path, "relu0", lambda text: text.replace("always @(posedge clk) if (start) y0_held", "always @(posedge clk) y0_held"))
    assert schedule.need == 2
    result = prove_op(op, sources, module, latency, tmp_path / "proof", schedule=schedule)
    assert result["status"] == "not proved" and "out_data changes in cycle 2" in result["reason"], result


@pytest.mark.slow  # Yosys
def test_streamed_design_tail_and_kernel_datapaths(tmp_path):
    """A streamed CNN (tests/test_stream_conv.py's 2D model; the dense tail shared over 3 clocks): the tail's dense
    is proved at its ii; stage 0's ops (convolution, scale, relu) are proved: their kernel datapath for every
    window, the line buffers and the collector over a frame unrolled. A broken line buffer leaves them "not
    proved", naming the window element or the missing output pixels."""
    from tests.test_stream_conv import _hand_models
    from trigger.ir.ii import resolve_ii
    from trigger.prove import prove_design

    model = _hand_models()["hand2d"]
    ii, op_ii = resolve_ii(model, 3)
    design = write_rtl(model, tmp_path / "rtl", top="h", ii=ii, op_ii=op_ii)
    rtl = {"top": design.top, "sources": [Path(s).relative_to(tmp_path).as_posix() for s in design.sources],
           "op_latency": design.op_latency, "pipeline": design.pipeline, "multiplier": design.multiplier,
           "max_delay_ns_per_stage": design.max_delay_ns, "op_ii": design.op_ii, "ii": design.ii,
           "stream": design.stream}
    by_op = {r["op"]: r for r in prove_design(model, tmp_path, rtl)}
    assert list(by_op) == [op.name for op in model.ops]
    assert by_op["d"]["status"] == "proved" and by_op["d"]["schedule"]["ii"] == 3, by_op["d"]
    for name in ("c", "bn", "r"):  # stage 0's datapath: the window convolution, the per-channel scale, relu
        assert by_op[name]["status"] == "proved" and by_op[name]["kernel_datapath"] == "proved", by_op[name]
        assert by_op[name]["frame_check"] == "passed" and by_op[name]["module"] == "h_k0 (kernel datapath)"
    # the scale's channel 2 never reads the convolution's output 2 (its factor is 0): Yosys keeps it when asked
    assert by_op["c"]["method"].startswith("enumeration (3 outputs) (kernel datapath)")
    assert by_op["avg"]["status"] == "not proved" and by_op["avg"]["reason"].startswith("kernel datapath: no reference")
    # the line buffer broken: a window with two channels of a pixel swapped, a column mask that fires once too few
    text = (tmp_path / "rtl" / "h_s0.v").read_text()
    swapped = re.sub(r"(lb\[\d+:\d+\]),\n(\s+)(lb\[\d+:\d+\]),", r"\3,\n\2\1,", text, count=1)
    masked = re.sub(r"COLS = (\d+)'b(\d*)1(0*);", lambda m: f"COLS = {m.group(1)}'b{m.group(2)}0{m.group(3)};", text)
    for edited, why in ((swapped, "frame check failed: stage 0: window 0, element "), (masked, "frame check failed: stage 0: ")):
        assert edited != text
        (tmp_path / "rtl" / "h_s0.v").write_text(edited)
        by_op = {r["op"]: r for r in prove_design(model, tmp_path, rtl)}
        for name in ("c", "bn", "r"):
            assert by_op[name]["status"] == "not proved" and why in by_op[name]["reason"], by_op[name]
        assert by_op["d"]["status"] == "proved"


def test_per_element_reference_equals_emulator():
    """A scale with a factor per element: the element-wise reference evaluates each element with its own factor
    (it had evaluated rows of every element's factors, which only holds when they are all the same), equal to
    emulate."""
    from tests.firmware_cases import small_models

    scales = [op for m in small_models().values() for op in m.ops if op.kind in ("scale", "prelu")]
    assert scales
    rng = np.random.default_rng(8)
    for op in scales:
        x = rng.integers(op.input.min_raw, op.input.max_raw + 1, size=(500, op.input.n))
        want = op.emulate(x, {})
        ref = reference(op)
        assert all(np.array_equal(post(form.eval(x)), want[:, j])
                   for j, (form, post) in enumerate(zip(ref.forms, ref.post))), op.name


# ---------------------------------------------------------------------------------------------- reference Verilog
def conv1d_op():
    """A Conv1D with padding and stride 2 over two channels (3 filters, a rounding and saturating output)."""
    from tests.firmware_cases import F
    from trigger.ir import TensorType
    from trigger.ir.ops.conv1d import Conv1D

    rng = np.random.default_rng(12)
    fi, wf, bf, acc = F("fixed<7,2>"), F("fixed<5,1>"), F("fixed<6,2>"), F("fixed<20,8>")
    w, b = rng.integers(wf.min_raw, wf.max_raw + 1, (3 * 2, 3)), rng.integers(bf.min_raw, bf.max_raw + 1, 3)
    args = ([7, 2], [3], [2], [1, 1], w, b, wf, bf, acc)
    probe = Conv1D("c1d", TensorType.uniform(fi, 14), TensorType.uniform(F("fixed<8,3,RND_CONV,SAT>"), 3), *args)
    op = Conv1D("c1d", probe.input, TensorType.uniform(probe.output.format, probe.geometry.n_positions * 3), *args)
    op.validate()
    return op


def printed_ops() -> list:
    """Ops of every kind that has reference Verilog: the kind models, the small models (unsigned inputs, a
    wrapping accumulator, SAT_ZERO), the graph model's merges and concatenation, a Conv1D."""
    from tests.firmware_cases import small_models

    models = [*kind_models().values(), *small_models().values(), graph_model()]
    return [op for m in models for op in m.ops] + [conv1d_op()]


def extreme_inputs(op, rng, n_random: int = 200) -> np.ndarray:
    """Random rows, then the ends of each element's range (all low, all high, alternating), zero and +-1 LSB,
    and rounding ties: each element with its k lowest bits 100..0 (k = 1..8) over random high bits."""
    lo = np.broadcast_to(np.asarray(op.input.min_raw, dtype=np.int64), (op.input.n,))
    hi = np.broadcast_to(np.asarray(op.input.max_raw, dtype=np.int64), (op.input.n,))
    rows = [rng.integers(lo, hi + 1, size=(n_random, op.input.n)), [lo, hi, np.where(np.arange(op.input.n) % 2, hi, lo),
            np.where(np.arange(op.input.n) % 2, lo, hi)]]
    rows += [np.clip(np.full((1, op.input.n), v), lo, hi) for v in (0, 1, -1)]
    for k in range(1, 9):
        x = rng.integers(lo, hi + 1, size=(20, op.input.n))
        rows.append(np.clip((x & ~((1 << k) - 1)) | (1 << (k - 1)), lo, hi))
    return np.vstack([np.asarray(r, dtype=np.int64).reshape(-1, op.input.n) for r in rows])


def simulate_references(cases: list, folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The printed reference modules of several (op, x) side by side in one module, simulated by one Icarus
    run (compiling and starting Icarus per op cost half a CPU second each): per op, the simulated outputs on its
    x and op.emulate on x. Each op's rows are repeated to the longest x."""
    from types import SimpleNamespace

    from trigger.backends.rtl.reference import module_name, print_reference
    from trigger.ir.tensor import TensorType

    folder.mkdir(parents=True, exist_ok=True)
    rows = max(len(x) for _, x in cases)
    modules, instances, columns = [], [], []
    lo_in = lo_out = 0
    for k, (op, x) in enumerate(cases):
        name = f"{module_name(op)}_{k}"  # ops of different models may share a name
        modules.append(print_reference(op).replace(f"module {module_name(op)} (", f"module {name} (", 1))
        instances.append(f"  {name} u{k} (.in_data(in_data[{lo_in + op.input.bus_width - 1}:{lo_in}]), "
                         f".out_data(out_data[{lo_out + op.output.bus_width - 1}:{lo_out}]));")
        lo_in, lo_out = lo_in + op.input.bus_width, lo_out + op.output.bus_width
        columns.append(np.resize(np.asarray(x, dtype=np.int64), (rows, op.input.n)))
    bank = "reference_bank"
    path = folder / f"{bank}.v"
    path.write_text(f"// the reference modules of {len(cases)} ops, side by side\nmodule {bank} (\n"
                    f"  input  wire [{lo_in - 1}:0] in_data,\n  output wire [{lo_out - 1}:0] out_data\n);\n"
                    + "\n".join(instances) + "\nendmodule\n\n" + "\n".join(modules))
    side_by_side = SimpleNamespace(
        name=bank, input=TensorType(tuple(f for op, _ in cases for f in op.input.formats)),
        output=TensorType(tuple(f for op, _ in cases for f in op.output.formats)))
    got = confirm(side_by_side, [path], bank, 0, np.hstack(columns), folder, simulator="icarus")
    results, at = [], 0
    for (op, x), inputs in zip(cases, columns):
        results.append((got[:len(x), at:at + op.output.n], op.emulate(inputs[:len(x)], {})))
        at += op.output.n
    return results


def simulate_reference(op, folder: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The printed reference module of op simulated by Icarus on x, and op.emulate on x."""
    return simulate_references([(op, x)], folder)[0]


@pytest.mark.slow  # Icarus
def test_reference_verilog_simulates_as_emulator(tmp_path):
    """What a proof rests on: each printed reference module, simulated by Icarus, equals emulate on random and
    extreme inputs (ends of ranges, rounding ties), for every op kind the printer covers; printing twice gives
    the same bytes; a kind or op it does not cover is refused, not printed wrong."""
    from trigger.backends.rtl.reference import PRINTERS, Unsupported, print_reference

    rng = np.random.default_rng(21)
    cases, refused = [], {}
    for op in printed_ops():
        try:
            text = print_reference(op)
        except Unsupported as err:
            refused[op.name] = str(err)
            continue
        assert print_reference(op) == text
        cases.append((op, extreme_inputs(op, rng)))
    simulated = set()
    for (op, x), (got, want) in zip(cases, simulate_references(cases, tmp_path / "references")):
        bad = np.flatnonzero(np.any(got != want, axis=1))
        assert not bad.size, (op.name, f"{bad.size} of {len(x)} vectors differ; first: input {x[bad[0]].tolist()}, "
                                       f"simulated {got[bad[0]].tolist()}, emulate {want[bad[0]].tolist()}")
        simulated.add(op.operation if op.kind == "merge" else op.kind)
    assert simulated == set(PRINTERS) - {"merge"} | {"add", "subtract", "average", "multiply", "maximum", "minimum"}
    assert "rounded to the accumulator on its own" in refused["d0"]  # s16_rounded_products' dense
    assert set(refused) >= {"lut", "trees", "vote", "bn", "dot", "square"}


@pytest.mark.slow  # Icarus and Yosys
def test_printer_mutant_caught(tmp_path, monkeypatch):
    """The printer's RND_CONV tie rule replaced by RND's (a tie always up, not to even): its module differs from
    emulate in simulation on the ties, and the reference leg of the proof finds a counterexample."""
    from trigger.backends.rtl import reference as printer
    from trigger.prove import prove_reference

    model = kind_models()["casts"]
    op = next(o for o in model.ops if o.output.format.rounding == "RND_CONV")
    monkeypatch.setitem(printer.ROUND_UP, "RND_CONV", printer.ROUND_UP["RND"])
    got, want = simulate_reference(op, tmp_path / "sim", extreme_inputs(op, np.random.default_rng(2)))
    assert np.any(got != want)
    by_name = {o.name: (k, o) for k, o in enumerate(model.ops)}
    leg = prove_reference(by_name, None, op.name, tmp_path, tmp_path, 1 << 25)
    assert leg["status"] == "counterexample", leg
    assert leg["verilog"] == f"{op.name}.v"
