"""Session fixtures shared by the test files: the expensive things are made once per session.

- ``reference_models``: the folder of reference models (../shared beside the checkout); tests
  that need it skip with a clear message when it is absent.
- ``qkeras_reference``: qkeras_3layer.json loaded and converted by hls4ml once.
- ``reference_bundle``: a bundle of qkeras_3layer built and verified once through the CLI (the
  compiled Verilator model is cached by a hash of the RTL, so later verifications reuse it).
- ``constructed_networks``: the QKeras networks of keras_cases.py, saved once as model folders
  (JSON + weights + trigger.yml); ``constructed_bundles``: each built and verified once, on first use.

Numbers and paths shared by several files are in helpers.py.

Tests that start a compiler, simulator or synthesis tool must be marked ``slow`` (``make test-fast``
skips them): ``pytest_runtest_teardown`` below fails a test that is not marked and started one, naming
the tool. Every Python process of the session records the tools it starts (tests/tool_watch), so the
CLI run as a subprocess, pytest-xdist workers and Dask workers are watched as well as the test itself.
A fixture that started a tool makes every test using it slow. (A child given an environment of its own,
without PYTHONPATH and TRIGGER_TEST_TOOL_LOG, is not watched.)
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import BUNDLE_VECTORS, CONSTRUCTED_VECTORS, REFERENCE_MODELS, Bundle, OnFirstUse, build_and_verify
from tests.tool_watch import sitecustomize as tool_watch

TOOL_WATCH = Path(tool_watch.__file__).parent


LIBRARY_LIMIT = "TRIGGER_MAX_LIBRARY_WEIGHTS"


def pytest_configure(config):
    """Each process of the session (controller, every xdist worker) logs the tools it and its children
    start to a file of its own; the folder of sitecustomize.py goes first on PYTHONPATH for the children.

    The emulator library (g++ -O2 over the network with every weight compiled in: 4.9 CPU-s for the
    reference MLP, more than its C simulation's compile) is built and checked by the tests about it:
    test_emulator_library, the tests marked ``library``, and the session's reference bundle and examples (``library_checked``). Elsewhere the
    suite's verifications leave it out as `trigger verify` does for large designs (TRIGGER_MAX_LIBRARY_WEIGHTS
    0: designs with hls4ml weights; tables and trees, which compile in none, still check theirs), and
    verify.json says so. Set TRIGGER_MAX_LIBRARY_WEIGHTS to check it everywhere.

    BLAS and OpenMP run on one thread in every process of the session (set here, before xdist starts its
    workers): the session already runs a worker per core, and a second BLAS thread only waits for a core
    (numpy's small float products then take several times their CPU in wall time); scikit-learn's tree training
    runs on OpenMP threads whose idle threads spin (the muon_pt_bdt build: 22.5 CPU-s, 4.1 on one thread, the
    same trees)."""
    import tempfile

    os.environ.setdefault(LIBRARY_LIMIT, "0")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    fd, log = tempfile.mkstemp(prefix=f"trigger-tools-{worker}-", suffix=".log")
    os.close(fd)
    config.stash[TOOL_LOG] = Path(log)
    os.environ[tool_watch.LOG] = log
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(TOOL_WATCH) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TOOL_WATCH), *filter(None, paths)])
    tool_watch.install()


def pytest_unconfigure(config):
    if TOOL_LOG in config.stash:
        config.stash[TOOL_LOG].unlink(missing_ok=True)


TOOL_LOG = pytest.StashKey[Path]()
LOG_AT = pytest.StashKey[int]()
FIXTURE_TOOLS = pytest.StashKey[dict]()  # fixture name -> the first tool its setup started (this process)


def _started(config, since: int) -> list[list[str]]:
    """[tool, pid, command] of each tool started since this offset of the process's log."""
    with open(config.stash[TOOL_LOG], "rb") as log:
        log.seek(since)
        return [line.split("\t", 2) for line in log.read().decode(errors="replace").splitlines() if line]


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A fixture whose setup started a tool makes every test using it slow, whichever test built it first."""
    config = request.config
    before = config.stash[TOOL_LOG].stat().st_size
    try:
        return (yield)
    finally:
        started = _started(config, before)
        if started:
            config.stash.setdefault(FIXTURE_TOOLS, {}).setdefault(fixturedef.argname, started[0])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[LOG_AT] = item.config.stash[TOOL_LOG].stat().st_size


def _warn_unmarked(message: str, pytrace: bool = False) -> None:
    import warnings

    warnings.warn(pytest.PytestWarning(message), stacklevel=2)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    """After the fixtures' teardown: a test not marked slow that started a tool, or uses a fixture that
    did, fails here when the session leaves slow tests out (``-m "not slow"``, make test-fast: where the
    marker decides what runs); in a session that runs them all (make test) the same finding is a warning."""
    if item.get_closest_marker("slow") is not None or LOG_AT not in item.stash:
        return
    fail = pytest.fail if "not slow" in (item.config.getoption("markexpr", "") or "") else _warn_unmarked
    started = _started(item.config, item.stash[LOG_AT])
    if started:
        tools = sorted({tool for tool, *_ in started})
        fail(f"{item.nodeid} is not marked @pytest.mark.slow but started {', '.join(tools)} "
                    f"({len(started)} run(s); first: {started[0][-1][:200]})", pytrace=False)
    built = item.config.stash.get(FIXTURE_TOOLS, {})
    used = [name for name in getattr(item, "fixturenames", ()) if name in built]
    if used:
        tool, _, command = built[used[0]]
        fail(f"{item.nodeid} is not marked @pytest.mark.slow but uses the fixture {used[0]}, whose set-up "
                    f"started {tool} ({command[:200]})", pytrace=False)


@contextlib.contextmanager
def library_checked():
    """Verifications inside check the emulator library with verify's own limit (see pytest_configure)."""
    from trigger.verify import MAX_LIBRARY_WEIGHTS

    before = os.environ.get(LIBRARY_LIMIT)
    os.environ[LIBRARY_LIMIT] = str(max(MAX_LIBRARY_WEIGHTS, int(before or 0)))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LIBRARY_LIMIT, None)
        else:
            os.environ[LIBRARY_LIMIT] = before


@pytest.fixture(autouse=True)
def _library_for_marked_tests(request):
    """Tests marked ``library`` check the emulator library in their verifications."""
    if request.node.get_closest_marker("library") is None:
        yield
        return
    with library_checked():
        yield


@pytest.fixture(scope="session")
def reference_models() -> Path:
    if not REFERENCE_MODELS.is_dir():
        pytest.skip(f"reference models not found at {REFERENCE_MODELS}: clone the shared folder "
                    f"beside the checkout (../shared/reference_models)")
    return REFERENCE_MODELS


@dataclass
class Converted:
    loaded: object  # trigger.frontends.keras.LoadedModel
    hls_model: object  # hls4ml ModelGraph (project not written)
    fw: object  # trigger.ir.FirmwareModel


@pytest.fixture(scope="session")
def qkeras_reference(reference_models, tmp_path_factory) -> Converted:
    """qkeras_3layer.json converted by hls4ml (Vitis backend) once, with its firmware model."""
    from trigger.frontends.network import convert
    from trigger.frontends.keras import load_model

    loaded = load_model(reference_models / "qkeras_3layer.json")
    hls_model, fw = convert(loaded, {"hls": {"backend": "Vitis"}},
                            output_dir=tmp_path_factory.mktemp("qkeras_reference_hls"))
    return Converted(loaded, hls_model, fw)


@pytest.fixture(scope="session")
def reference_bundle(reference_models, tmp_path_factory) -> Bundle:
    """qkeras_3layer.json built (BUNDLE_VECTORS vectors) and verified with Verilator, once."""
    out = tmp_path_factory.mktemp("reference_bundle") / "qkeras_3layer"
    with library_checked():
        return build_and_verify(reference_models / "qkeras_3layer.json", out, "--vectors", str(BUNDLE_VECTORS))


UNSW_VECTORS = 2000  # the C simulation of this 600-input MLP takes 2 ms per vector


@pytest.fixture(scope="session")
def unsw_bundle(reference_models, tmp_path_factory) -> Bundle:
    """unsw_nb15-mlp-w2a2.onnx (QONNX from Brevitas) built with UNSW_VECTORS vectors and verified, once."""
    out = tmp_path_factory.mktemp("unsw_bundle") / "unsw"
    return build_and_verify(reference_models / "unsw_nb15-mlp-w2a2.onnx", out, "--vectors", str(UNSW_VECTORS))


@dataclass
class Network:
    folder: Path  # model folder with trigger.yml
    json_path: Path
    weights_path: Path
    hls: dict  # the trigger.yml hls section


@pytest.fixture(scope="session")
def constructed_networks(tmp_path_factory) -> dict[str, Network]:
    """keras_cases.build_networks() saved once: one model folder (JSON, weights, trigger.yml) each."""
    from tests.keras_cases import build_networks, save_model

    root = tmp_path_factory.mktemp("constructed")
    nets = {}
    for name, (model, hls) in build_networks().items():
        folder = root / name
        folder.mkdir()
        json_path = save_model(model, folder, name)
        config = {"kind": "network", "name": name,
                  "model": {"file": json_path.name, "weights": f"{name}_weights.h5"},
                  "hls": hls, "verify": {"vectors": CONSTRUCTED_VECTORS}}
        (folder / "trigger.yml").write_text(yaml.safe_dump(config))
        nets[name] = Network(folder, json_path, folder / f"{name}_weights.h5", hls)
    return nets


@pytest.fixture(scope="session")
def constructed_bundles(constructed_networks, tmp_path_factory) -> dict[str, Bundle]:
    """Each constructed network built from its folder (trigger.yml) and verified with Verilator, once, when
    a test first asks for it."""
    root = tmp_path_factory.mktemp("constructed_bundles")
    return OnFirstUse(lambda name: build_and_verify(constructed_networks[name].folder, root / name))


@pytest.fixture(scope="session")
def dask_scheduler_address(tmp_path_factory):
    """A real Dask cluster on localhost: a `dask scheduler` and two `dask worker` processes (one thread
    each) on free ports, started once per session and stopped at the end; yields tcp://127.0.0.1:PORT."""
    from tests.helpers import dask_cluster

    with dask_cluster(tmp_path_factory.mktemp("dask"), ["--nworkers", "1"], "w") as address:
        yield address
