"""Constants and assertions shared by the test files (fixtures live in conftest.py).

Every number or path that more than one test file needs is defined here once.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from trigger.parts import DEFAULT_PART  # noqa: F401  (the one default part, for the tests)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# The reference models live in ../shared beside the checkout (not part of the repository).
REFERENCE_MODELS = Path(__file__).resolve().parents[2] / "shared" / "reference_models"
PLUS_ONE_RTL = TESTS / "rtl" / "plus_one_top.v"  # a known 3 x 8-bit design, latency 2
CONFORMANCE = TESTS / "conformance"  # the tests' own C++ harness templates
JET_TAGGER = REPO / "models" / "jet_tagger"
JET_TAGGER_CONFIG = JET_TAGGER / "trigger.yml"

SEED = 20261123
# Vectors stored in (and verified on) the shared reference bundle: a few thousand keep the
# Verilator run short; the compiled simulator is cached by a hash of the RTL and reused.
BUNDLE_VECTORS = 2000
# Vectors of the bundles built from the constructed QKeras networks (keras_cases.py).
CONSTRUCTED_VECTORS = 10_000
# Random vectors per hand-built model (firmware_cases.py) checked against hls4ml's C++ kernels.
CPP_VECTORS = 3000
CLEAN = {"emulator_vs_csim": 0, "emulator_vs_rtl": 0, "csim_vs_rtl": 0, "emulator_vs_stored": 0,
         "latency_vs_manifest": 0, "library_vs_emulator": 0}

# A small table in external memory (memory/part_NNNNN.bin, 2^12 addresses in 2^10-address parts): each test
# that builds one gives it a name of its own ({**SMALL_EXTERNAL_TABLE, "name": ...}).
SMALL_EXTERNAL_TABLE = {
    "kind": "lut", "name": "external_table", "seed": 3,
    "data": {"source": "muon", "n_train": 5000, "n_test": 2000},
    "features": [{"name": "dphi12", "bits": 6, "binning": "quantile"},
                 {"name": "dphi23", "bits": 4, "binning": "quantile"},
                 {"name": "eta", "bits": 2, "binning": "linear"}],
    "address": {"memory": "external", "read_latency": 3, "part_bits": 10},
    "model": {"type": "mlp", "hidden": [8], "epochs": 1},
    "output": {"format": "ufixed<9,8,RND_CONV,SAT>"},
}


@dataclass
class Bundle:
    """A bundle a session fixture built and verified (through the CLI)."""

    path: Path
    build_status: int
    verify_status: int
    verify: dict  # reports/verify.json as written by the verification

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


class OnFirstUse(dict):
    """Expensive things by name (bundles), each made when a test first asks for it: under pytest-xdist's
    worksteal, a worker that takes one parametrised test from another builds that one only, not the set."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, name):
        self[name] = self._make(name)
        return self[name]


def build_and_verify(source: Path, out: Path, *build_args: str, verify_args=()) -> Bundle:
    """``trigger build`` then ``trigger verify`` (in process); the bundle with both exit codes."""
    from trigger.cli import main

    build = main(["build", str(source), "-o", str(out), *build_args])
    verify = main(["verify", str(out), *verify_args]) if build == 0 else None
    report = out / "reports" / "verify.json"
    return Bundle(out, build, verify, json.loads(report.read_text()) if report.exists() else {})


def checked_counts(result: dict) -> dict:
    """verify.json's mismatch counts, with library_vs_emulator 0 where verify left the emulator library out
    (a design without one, or the suite's limit: tests/conftest.py) and said why in ``library.skipped``."""
    counts = dict(result["mismatches"])
    if "skipped" in (result.get("library") or {}):
        assert result["library"]["skipped"], "a skipped library check says why"
        counts.setdefault("library_vs_emulator", 0)
    return counts


def assert_certified(result: dict, vectors: int | None = None) -> None:
    """A verify.json that certifies bit-exactness: every count 0, latency measured as built, II 1."""
    if vectors is not None:
        assert result["vectors"] == vectors
    counts = checked_counts(result)
    assert counts.pop("source_vs_firmware", 0) == 0, result.get("source_model")  # quantized source models only
    assert counts == CLEAN, result["first_mismatch"]
    assert result["pass"] is True
    assert result["latency_cycles"] == result["latency_cycles_expected"] > 0
    assert result["ii"] == 1
    assert result["spurious_outputs"] == 0


def assert_same(model, raw: np.ndarray, expected: np.ndarray, got: np.ndarray, names=("reference", "emulator"),
                what: str = "") -> None:
    """Equal integers on every vector; otherwise fail with the mismatch count and the first mismatching
    vector with both outputs and the emulator's op-by-op trace."""
    from trigger.verify import describe_mismatch, mismatching_rows

    expected, got = np.asarray(expected), np.asarray(got)
    assert expected.shape == got.shape, f"{what}: shapes {expected.shape} and {got.shape}"
    rows = mismatching_rows(expected, got)
    if rows.size:
        first = describe_mismatch(model, f"{names[0]}_vs_{names[1]}", int(rows[0]), raw,
                                  {names[0]: expected, names[1]: got})
        trace = "; ".join(f"{op}={v}" for op, v in first["emulator_trace"].items())
        pytest.fail(f"{what or model.name}: {rows.size}/{len(raw)} vectors differ; first #{first['vector']} input "
                    f"{first['input']}: {names[0]} {first[names[0]]} {names[1]} {first[names[1]]}; "
                    f"emulator trace {trace}")


@contextmanager
def dask_cluster(logs: Path, worker_options: list[str], names: str, env: dict | None = None,
                 what: str = "local Dask cluster") -> Iterator[str]:
    """A real Dask cluster on localhost: a `dask scheduler` on a free port and two `dask worker` processes (one
    thread each, named NAMES0 and NAMES1, with ``worker_options``) run from ``logs`` with ``env``; yields
    tcp://127.0.0.1:PORT once both workers are in, and stops them on exit. Workers stop on their own a minute
    after losing the scheduler, should a killed session leave them."""
    import socket
    import subprocess
    import sys
    import time

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(args, log):
        with open(logs / log, "w") as stderr:  # the child keeps its own copy of the file
            procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=logs,
                                          stdout=subprocess.DEVNULL, stderr=stderr))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", "--no-show"], "scheduler.log")
        for i in range(2):
            start(["worker", address, *worker_options, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                   "--local-directory", str(logs / f"w{i}"), "--name", f"{names}{i}", "--death-timeout", "60"],
                  f"worker{i}.log")
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"{what} did not start; logs in {logs}") from None
                time.sleep(0.5)
        yield address
    finally:
        # The workers first, while their scheduler is there to see them leave: a worker without a nanny whose
        # scheduler went first waits out its reconnection timeouts (20 s each, twice, on every teardown).
        for group in (procs[1:], procs[:1]):
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
