"""The emulator library (emulator/ in every bundle, lib<name>.so implementing hls4mlEmulator::Model).

Each design's library is built from its bundle with the bundle's own Makefile and loaded with dlopen by the
loader-shaped harness (trigger.backends.emulator_lib): the QKeras reference tagger, the muon table, the BDT,
a convolutional network and a graph model with two inputs, ALL in one process (each model in its own C++
namespace), equal the emulator and the stored outputs on every stored vector. Wrong input types and
lengths are std::invalid_argument with a message. `trigger verify` reports library_vs_emulator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, SMALL_EXTERNAL_TABLE, Bundle, assert_same, build_and_verify

VECTORS = 300  # stored vectors per bundle built here (the reference bundle has BUNDLE_VECTORS)


def _build(source, out: Path, *args) -> Path:
    from trigger.cli import main

    assert main(["build", str(source), "-o", str(out), "--vectors", str(VECTORS), *args]) == 0
    return out


# The built-in examples trained on fewer events (their tables and trees keep their shape: 2^20 addresses, 100 trees
# of depth 5): the libraries' evidence does not depend on how well they were trained, and the examples' own
# training (400,000 muons over 8 epochs for the table) was most of this file's Python CPU.
SMALLER_TRAINING = {"muon_pt_lut": {"data": {"n_train": 40_000, "n_test": 20_000}, "model": {"epochs": 1}},
                    "muon_pt_bdt": {"train": {"n_train": 10_000, "n_test": 10_000}}}


def _example(name: str, root: Path) -> Path:
    """models/<name>/trigger.yml with SMALLER_TRAINING, in a folder of its own."""
    import yaml

    config = yaml.safe_load((REPO / "models" / name / "trigger.yml").read_text())
    for section, values in SMALLER_TRAINING[name].items():
        assert set(values) <= set(config[section]), (name, section)  # only settings the example has
        config[section].update(values)
    folder = root / "sources" / name
    folder.mkdir(parents=True)
    (folder / "trigger.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def bundles(reference_bundle, reference_models, tmp_path_factory) -> dict[str, Path]:
    """The four designs of the issue and the two-input graph model, built once (the reference tagger is the
    session's verified bundle; the table and the trees are the built-in examples, trained on fewer events)."""
    from tests.graph_cases import multi_collection_tagger, save

    root = tmp_path_factory.mktemp("emulator_library")
    graph = save(multi_collection_tagger(), root / "sources" / "multi_collection_tagger")
    bdt = _build(_example("muon_pt_bdt", root), root / "muon_pt_bdt")
    return {"qkeras_3layer": reference_bundle.path,
            "muon_pt_lut": _build(_example("muon_pt_lut", root), root / "muon_pt_lut"),
            "muon_pt_bdt": bdt,
            "conv1d": _build(reference_models / "KERAS_conv1d_small.json", root / "conv1d"),
            "multi_collection_tagger": _build(graph, root / "multi_collection_tagger")}


@pytest.fixture(scope="module")
def libraries(bundles) -> dict[str, Path]:
    from trigger.backends.emulator_lib import build_library
    from trigger.bundle import load_manifest

    return {name: build_library(path, load_manifest(path))[0] for name, path in bundles.items()}


def _model(bundle: Path):
    from trigger.ir.model import FirmwareModel

    return FirmwareModel.load(bundle)


@pytest.mark.slow
def test_every_library_equals_the_emulator_all_loaded_in_one_process(bundles, libraries, tmp_path):
    from trigger.backends.emulator_lib import run_libraries
    from trigger.ir.model import emulate

    names = list(bundles)
    jobs, models = [], {}
    for name in names:
        models[name] = _model(bundles[name])
        raw = np.load(bundles[name] / "vectors" / "inputs.npy")
        jobs.append((libraries[name], raw, models[name].output.n))
    outputs = run_libraries(jobs, tmp_path)  # five libraries in one harness process, events interleaved
    for name, (lib, raw, _), got in zip(names, jobs, outputs):
        assert len(raw) >= VECTORS
        stored = np.load(bundles[name] / "vectors" / "outputs.npy")
        assert_same(models[name], raw, emulate(models[name], raw).outputs, got, ("emulator", "library"), name)
        assert np.array_equal(got, stored), name


@pytest.mark.slow
def test_two_different_models_in_one_process(bundles, libraries, tmp_path):
    """The framework's case: two models side by side (a network and a table), each its own namespace."""
    from trigger.backends.emulator_lib import run_libraries

    pair = ("qkeras_3layer", "muon_pt_lut")
    jobs = [(libraries[n], np.load(bundles[n] / "vectors" / "inputs.npy")[:VECTORS], _model(bundles[n]).output.n)
            for n in pair]
    for name, got in zip(pair, run_libraries(jobs, tmp_path)):
        assert np.array_equal(got, np.load(bundles[name] / "vectors" / "outputs.npy")[:VECTORS]), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qkeras_3layer", "muon_pt_lut", "muon_pt_bdt", "multi_collection_tagger"])
def test_real_valued_inputs_are_quantised_as_the_emulator_does(bundles, libraries, name, tmp_path):
    """prepare_input(std::vector<double>): each value assigned to its element's ap_fixed / ap_int."""
    from trigger.backends.emulator_lib import run_libraries
    from trigger.ir.model import emulate

    model = _model(bundles[name])
    rng = np.random.default_rng(5)
    lo = np.array([f.to_float(f.min_raw) for f in model.input.formats])
    hi = np.array([f.to_float(f.max_raw) for f in model.input.formats])
    x = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), size=(500, model.input.n))  # some overflow
    x[:50] = np.round(x[:50] * 4) / 4 - 1 / 1024  # values between the steps of most formats
    raw = model.input.quantize(x)
    (got,) = run_libraries([(libraries[name], x, model.output.n)], tmp_path, real=True)
    assert_same(model, raw, emulate(model, raw).outputs, got, ("emulator", "library"), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qkeras_3layer", "muon_pt_lut", "muon_pt_bdt"])
def test_wrong_input_type_or_length_is_a_clear_exception(bundles, libraries, name):
    from trigger.backends.emulator_lib import check_errors

    n_in = _model(bundles[name]).input.n
    code, text = check_errors(libraries[name], n_in)
    assert code == 0, text
    assert f"input too short: std::invalid_argument: {name}: prepare_input:" in text
    assert f"expected {n_in} input elements, got {n_in - 1}" in text
    assert f"expected {n_in} input elements, got {n_in + 1}" in text
    assert "got std::__cxx11::basic_string" in text and "got std::vector<int" in text
    assert "is outside its raw range" in text and "is not finite" in text
    assert "read_result before predict: std::logic_error" in text
    assert "0 wrong" in text


@pytest.mark.slow
def test_only_the_factories_are_exported(bundles, libraries):
    """Nothing of a model (hls4ml's configs, weights, nnet templates, the Emulator class) is visible outside
    its library: create_model and destroy_model, plus the standard library's own template instances."""
    from trigger.bundle import load_manifest

    if shutil.which("nm") is None:
        pytest.skip("nm not found")
    for name, lib in libraries.items():
        ns = load_manifest(bundles[name])["emulator"]["namespace"]
        symbols = subprocess.run(["nm", "-DC", "--defined-only", str(lib)], capture_output=True, text=True,
                                 check=True).stdout.splitlines()
        names = [line.split(None, 2)[2] for line in symbols if len(line.split(None, 2)) == 3]
        assert {"create_model", "destroy_model"} <= set(names), name
        others = [s for s in names if s not in ("create_model", "destroy_model")]
        assert all("std::" in s for s in others), (name, [s for s in others if "std::" not in s][:5])
        assert not [s for s in others if f"{ns}::" in s or "nnet" in s or "ap_fixed" in s], name


@pytest.mark.slow
def test_graph_header_declares_both_input_ports(bundles):
    bundle = bundles["multi_collection_tagger"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    em = manifest["emulator"]
    assert em["supported"] and em["library"] == "libmulti_collection_tagger.so"
    header = (bundle / em["header"]).read_text()
    assert "namespace multi_collection_tagger {" in header
    assert "// muons: elements 0..11" in header and "// jets: elements 12..20" in header
    assert "input_port_count[n_input_ports] = {12, 9};" in header
    assert "output_port_count[n_output_ports] = {3, 1};" in header
    assert "constexpr std::size_t n_inputs = 21;" in header
    for rel in (em["header"], em["source"], em["makefile"], em["interface"]):
        assert rel in manifest["files"]


@pytest.mark.slow
def test_makefile_defaults_build_from_the_bundle_alone(bundles):
    """`make` in emulator/ with no variables (hls4ml: the bundle's ap_types); the table needs AP_TYPES."""
    if shutil.which("make") is None:
        pytest.skip("make not found")
    net = subprocess.run(["make", "-n", "-C", str(bundles["qkeras_3layer"] / "emulator")], capture_output=True,
                         text=True)
    assert net.returncode == 0, net.stderr
    assert "-I../hls/firmware/ap_types" in net.stdout and "-I../hls/firmware" in net.stdout
    assert "-o libqkeras_3layer.so" in net.stdout and "-fvisibility=hidden" in net.stdout
    table = subprocess.run(["make", "-n", "-C", str(bundles["muon_pt_lut"] / "emulator")], capture_output=True,
                           text=True)
    assert table.returncode != 0 and "set AP_TYPES" in table.stderr


@pytest.mark.slow
def test_verify_reports_library_vs_emulator(reference_bundle: Bundle):
    from trigger.report import build_report

    result = reference_bundle.verify
    assert result["mismatches"]["library_vs_emulator"] == 0, result["first_mismatch"]
    assert result["library"] == {"library": "libqkeras_3layer.so", "vectors": result["vectors"], "mismatches": 0}
    report = build_report(reference_bundle.path, synth=False)
    assert report["verification"]["mismatches"]["library_vs_emulator"] == 0
    md = (reference_bundle.path / "reports" / "report.md").read_text()
    assert "| library_vs_emulator | 0 |" in md


@pytest.mark.slow
def test_trigger_emulator_command_writes_and_checks_the_library(bundles, libraries, tmp_path, capsys):
    from trigger.cli import main

    out = tmp_path / "lib"
    out.mkdir()
    assert main(["emulator", str(bundles["muon_pt_bdt"]), "-o", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert (out / "libmuon_pt_bdt.so").exists() and "(cached)" in text
    stored = len(np.load(bundles["muon_pt_bdt"] / "vectors" / "inputs.npy"))  # VECTORS plus the trees' own
    assert f"{stored} stored vectors through dlopen: 0 mismatches" in text
    assert 'ModelLoader("libmuon_pt_bdt")' in text


EXTERNAL_TABLE = {**SMALL_EXTERNAL_TABLE, "name": "external_table"}  # EXTERNAL_TABLE_MEMORY below: from the name


@pytest.mark.slow
def test_external_memory_table_reads_its_image_from_the_given_folder(tmp_path, monkeypatch):
    import yaml

    from trigger.backends.emulator_lib import build_library, run_libraries
    from trigger.bundle import load_manifest
    from trigger.errors import ToolError
    from trigger.ir.model import emulate

    source = tmp_path / "source"
    source.mkdir()
    (source / "trigger.yml").write_text(yaml.safe_dump(EXTERNAL_TABLE, sort_keys=False))
    bundle = _build(source, tmp_path / "external_table")  # parts made in this process (test_scale: on Dask workers)
    manifest = load_manifest(bundle)
    assert manifest["emulator"]["external_memory"] is True
    lib, _ = build_library(bundle, manifest)
    model = _model(bundle)
    raw = np.load(bundle / "vectors" / "inputs.npy")
    (got,) = run_libraries([(lib, raw, 1)], tmp_path / "run")  # the image folder given at build time
    assert_same(model, raw, emulate(model, raw).outputs, got, ("emulator", "library"), "external_table")
    moved = tmp_path / "elsewhere"
    shutil.copytree(bundle / "memory", moved)
    monkeypatch.setenv("EXTERNAL_TABLE_MEMORY", str(moved))  # the folder given at construction (create_model)
    (again,) = run_libraries([(lib, raw, 1)], tmp_path / "run")
    assert np.array_equal(again, got)
    (moved / "part_00001.bin").unlink()
    with pytest.raises(ToolError, match=r"external_table: memory image .*part_00001.bin cannot be opened"):
        run_libraries([(lib, raw, 1)], tmp_path / "run")


# ------------------------------------------------------------------ fast: no compiler needed
def _fake_bundle(folder: Path, emulator: dict | None) -> Path:
    folder.mkdir()
    manifest = {"format_version": 1, "name": "m", "files": {}, **({"emulator": emulator} if emulator else {})}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_missing_gxx_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    import trigger.toolchain
    from trigger.cli import main
    from trigger.verify import library_outputs

    monkeypatch.setattr(trigger.toolchain, "find_tool", lambda name: None)
    em = {"supported": True, "folder": "emulator", "library": "libm.so"}
    bundle = _fake_bundle(tmp_path / "b", em)
    assert main(["emulator", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "trigger emulator: error: g++ not found: needed to build the emulator library (run `trigger doctor`)"
    out, timings, note = library_outputs(bundle, {"emulator": em}, None, np.zeros((1, 1)), tmp_path)
    assert out is None and note.startswith("g++ not found")


def test_old_bundle_without_emulator_is_refused_in_one_line(tmp_path, capsys):
    from trigger.cli import main

    bundle = _fake_bundle(tmp_path / "old", None)
    assert main(["emulator", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no emulator/" in err and "rebuild it" in err


def test_emulator_help():
    from trigger.cli import main

    assert main(["emulator", "--help"]) == 0
