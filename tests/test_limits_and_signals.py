"""Signals and limits: an interrupted build leaves nothing behind, and an oversized job is refused at once.

SIGTERM (what `timeout` and a cancelled CI job send) and SIGINT unwind a build like a failure: no
``.bundle.*.partial`` folder, no temporary files, one line on stderr, a non-zero exit. A partial folder
of a build killed outright (SIGKILL) is removed by the next build of the same bundle. Before any work
the job is estimated from its files (trigger/limits.py) and refused over a limit in one line naming the
setting: a float Dense 4096x4096, a 30-bit table in block RAM, 10^14 test vectors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml

from tests.helpers import REPO

CLI = [sys.executable, "-m", "trigger.cli"]


def _float_dense_4096(folder: Path) -> Path:
    """A Keras 2 model file pair (JSON + weights .h5) of one float Dense 4096x4096; the weights file holds
    the datasets' shapes (HDF5 does not store the values of a chunked dataset never written)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"class_name": "Sequential", "keras_version": "2.14.0", "backend": "tensorflow", "config": {
        "name": "big", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4096], "dtype": "float32",
                                                    "name": "x"}},
            {"class_name": "Dense", "config": {"name": "dense", "units": 4096, "activation": "linear",
                                               "use_bias": True, "dtype": "float32"}}]}}
    (folder / "big.json").write_text(json.dumps(config))
    with h5py.File(folder / "big_weights.h5", "w") as h5:
        h5.create_dataset("dense/dense/kernel:0", shape=(4096, 4096), dtype="f4", chunks=True)
        h5.create_dataset("dense/dense/bias:0", shape=(4096,), dtype="f4", chunks=True)
    return folder / "big.json"


def _table_in_bram(folder: Path, bits: int = 30) -> Path:
    """The muon pT table with its features widened to ``bits`` address bits, kept in block RAM."""
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "models" / "muon_pt_lut" / "trigger.yml").read_text())
    config["features"][0]["bits"] += bits - sum(f["bits"] for f in config["features"])
    config["address"]["bits"] = bits
    config["address"]["memory"] = "bram"
    (folder / "trigger.yml").write_text(yaml.safe_dump(config))
    return folder


def _run(args, timeout=60, **env) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    run = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})
    return run, time.monotonic() - t0


@pytest.mark.parametrize("case", ["dense_4096x4096", "table_30_bits_in_bram", "vectors_1e14"])
def test_oversized_jobs_are_refused_in_one_line_within_5_seconds(case, tmp_path, request):
    if case == "dense_4096x4096":
        source, extra, setting, limit = _float_dense_4096(tmp_path / "model"), [], "TRIGGER_MAX_PRODUCTS", "1,048,576"
        said = "16,777,216 constant products"
    elif case == "table_30_bits_in_bram":
        source, extra, setting, limit = _table_in_bram(tmp_path / "lut"), [], "TRIGGER_MAX_TABLE_BITS", "268,435,456"
        said = "1,073,741,824 words"
    else:
        reference_models = request.getfixturevalue("reference_models")
        source, extra, setting, limit = reference_models / "qkeras_3layer.json", ["--vectors", "99999999999999"], \
            "TRIGGER_MAX_VECTOR_VALUES", "134,217,728"
        said = "99,999,999,999,999 test vectors"
    out = tmp_path / "out"
    run, seconds = _run(["build", str(source), "-o", str(out), *extra])
    err = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-2000:]
    assert len(err) == 1 and setting in err[0] and limit in err[0] and said in err[0], err
    assert seconds < 5, f"refused after {seconds:.1f} s"
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_limits_are_settings(monkeypatch):
    from trigger.errors import ConfigError
    from trigger.limits import VECTOR_VALUES, Estimate, check

    job = Estimate(vectors=10**9, input_width=16, where="job")
    with pytest.raises(ConfigError, match="TRIGGER_MAX_VECTOR_VALUES"):
        check(job)
    monkeypatch.setenv(VECTOR_VALUES.variable, str(16 * 10**9))
    check(job)  # raised: accepted
    monkeypatch.setenv(VECTOR_VALUES.variable, "lots")
    with pytest.raises(ConfigError, match="TRIGGER_MAX_VECTOR_VALUES='lots'"):
        check(job)


def test_a_later_build_removes_the_partial_folders_of_dead_builds(tmp_path):
    """Partial folders are named .<bundle>.<host>-<pid>.<random>.partial: a build removes those of processes
    on this host that are gone, and keeps those of live builds and of other hosts."""
    from trigger.bundle import _owner, remove_stale_partials

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = _owner().rsplit("-", 1)[0]
    dead = tmp_path / f".b.{host}-{gone.pid}.abc123.partial"
    live = tmp_path / f".b.{host}-{os.getpid()}.def456.partial"
    other_host = tmp_path / f".b.elsewhere-{gone.pid}.ghi789.partial"
    other_bundle = tmp_path / f".c.{host}-{gone.pid}.jkl012.partial"
    for folder in (dead, live, other_host, other_bundle):
        (folder / "rtl").mkdir(parents=True)
    assert remove_stale_partials(tmp_path / "b") == [dead]
    assert not dead.exists() and live.exists() and other_host.exists() and other_bundle.exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM])  # SIGINT takes the same path (KeyboardInterrupt); 30-80 s each
def test_a_signal_during_a_build_leaves_nothing_behind(sig, tmp_path, reference_models):
    """The build is signalled once its partial folder exists (the long part, the design, is loaded)."""
    scratch = tmp_path / "tmp"  # the build's own TMPDIR: what TensorFlow and trigger put there must go
    scratch.mkdir()
    out = tmp_path / "bundles" / "b"
    out.parent.mkdir()
    build = subprocess.Popen([*CLI, "build", str(reference_models / "qkeras_3layer.json"), "-o", str(out),
                              "--vectors", "300000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 240
    while not list(out.parent.glob(".b.*.partial")):
        assert build.poll() is None, f"the build ended (exit {build.returncode}) before it could be signalled"
        assert time.monotonic() < deadline, "no partial folder after 240 s"
        time.sleep(0.02)
    build.send_signal(sig)
    stdout, stderr = build.communicate(timeout=120)
    err = stderr.strip().splitlines()
    assert build.returncode == (143 if sig == signal.SIGTERM else 130), stderr[-2000:]
    assert len(err) == 1 and ("terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted") in err[0], err
    assert sorted(p.name for p in out.parent.iterdir()) == []
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_a_stop_whose_exception_was_lost_commits_nothing(tmp_path, monkeypatch, capsys):
    """SIGTERM's handler raises, but an exception raised while Python runs a weakref callback is only printed
    ("Exception ignored in ...") and the build went on to write its bundle (seen once in the suite). The stop is
    also remembered: the staged bundle is not committed, and the command exits 143 all the same."""
    from trigger import cli
    from trigger.bundle import MANIFEST, staging
    from trigger.errors import Terminated, clear_stop, request_stop

    out = tmp_path / "new" / "b"
    try:
        with pytest.raises(Terminated):
            with staging(out) as folder:
                (folder / MANIFEST).write_text("{}")
                request_stop(Terminated)  # as the handler does before its raise is lost
    finally:
        clear_stop()
    assert not (tmp_path / "new").exists()

    def finished_anyway(args):
        request_stop(Terminated)
        return 0

    monkeypatch.setattr(cli, "cmd_doctor", finished_anyway)
    assert cli.main(["doctor"]) == 143
    assert capsys.readouterr().err.strip() == "trigger doctor: terminated (SIGTERM)"
    assert cli.main(["--version"]) == 0  # the next command in the process starts without the stop
