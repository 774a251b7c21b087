"""Session fixtures shared by the test files: the expensive things are made once per session.

- ``reference_models``: the folder of reference models (../shared beside the checkout); tests
  that need it skip with a clear message when it is absent.
- ``qkeras_reference``: qkeras_3layer.json loaded and converted by hls4ml once.
- ``reference_bundle``: a bundle of qkeras_3layer built and verified once through the CLI (the
  compiled Verilator model is cached by a hash of the RTL, so later verifications reuse it).
- ``constructed_networks``: the QKeras networks of keras_cases.py, saved once as model folders
  (JSON + weights + trigger.yml); ``constructed_bundles``: each built and verified once.

Numbers and paths shared by several files are in helpers.py.

Order: ``make test`` runs the files on every CPU with ``--dist loadfile`` (a whole file on one worker).
pytest-xdist hands the files out in collection order, so the longest files go first (``LONGEST_FIRST``)
and the short ones fill the gaps at the end: the workers finish together.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, keras_cases, firmware_cases

from helpers import BUNDLE_VECTORS, CONSTRUCTED_VECTORS, REFERENCE_MODELS, Bundle, build_and_verify  # noqa: E402

# The files that take longest (pytest --durations, summed per file), longest first; the others follow
# in their usual order. A rough order is enough: it only has to keep the long files from coming last.
LONGEST_FIRST = ["test_rtl.py", "test_ii.py", "test_network_flow.py", "test_softmax_sets.py", "test_scan.py",
                 "test_model_formats.py", "test_constructed_flow.py", "test_spatial.py", "test_jet_tagger.py",
                 "test_calo_conv2d.py", "test_da4ml_bench.py", "test_lut_flow.py", "test_cmvm.py", "test_scale.py",
                 "test_csim_cache.py", "test_train.py", "test_fixed_conformance.py", "test_trees.py", "test_hls.py"]


def pytest_configure(config):
    # xdist would otherwise hand out the files with the most tests first, whatever they cost
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep their order in a file


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
    from keras_cases import build_networks, save_model

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
    """Every constructed network built from its folder (trigger.yml) and verified with Verilator, once."""
    root = tmp_path_factory.mktemp("constructed_bundles")
    return {name: build_and_verify(net.folder, root / name)
            for name, net in constructed_networks.items()}


@pytest.fixture(scope="session")
def dask_scheduler_address(tmp_path_factory):
    """A real Dask cluster on localhost: a `dask scheduler` and two `dask worker` processes (one thread
    each) on free ports, started once per session and stopped at the end; yields tcp://127.0.0.1:PORT.
    Workers stop on their own a minute after losing the scheduler, should a killed session leave them."""
    import socket
    import subprocess
    import time

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    dask = [sys.executable, "-m", "dask"]
    procs = []

    def start(args, log):
        procs.append(subprocess.Popen(dask + args, stdout=subprocess.DEVNULL, stderr=open(logs / log, "w"),
                                      cwd=logs))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--no-show"], "scheduler.log")
        for i in range(2):
            start(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                   "--local-directory", str(logs / f"w{i}"), "--name", f"w{i}",
                   "--death-timeout", "60"], f"worker{i}.log")
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"local Dask cluster did not start; logs in {logs}") from None
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
