"""Tables and their verification on Dask (trigger.cluster, trigger.frontends.lut.parts): a LocalCluster and real
ones on localhost.

The real cluster is the session fixture ``dask_scheduler_address`` (conftest.py): a ``dask scheduler``
and two ``dask worker`` processes. A small table in external memory is built in 2^10-address parts
with the 2 real workers (each writes its parts into the bundle's folder) and with 1 worker whose parts
travel back to be written by the client (a cluster without a shared filesystem): every byte of the two
bundles is the same. It is then verified through ``trigger verify --scheduler``: every address through the
emulator, the g++ C simulation and the RTL with its memory model; and a bundle whose C++ reads the
wrong word is caught, with the first mismatch reported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import trigger
from trigger.cli import main
from trigger.errors import ConfigError, ToolError
from trigger.cluster import check_address, scale_settings
from trigger.frontends.lut.parts import write_atomically, write_part

from tests.helpers import CLEAN, SMALL_EXTERNAL_TABLE, dask_cluster

TABLE = {**SMALL_EXTERNAL_TABLE, "name": "scale_table"}
ADDRESS_BITS = 12


def digests(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def table_source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scale_table")
    (folder / "trigger.yml").write_text(yaml.safe_dump(TABLE, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def cluster_bundle(table_source, dask_scheduler_address, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "two_workers"
    assert main(["build", str(table_source), "-o", str(out), "--scheduler", dask_scheduler_address]) == 0
    return out


def test_scale_settings_are_checked():
    assert scale_settings({"scheduler": "tcp://10.0.0.1:8786"}, "t.yml").scheduler == "tcp://10.0.0.1:8786"
    assert scale_settings({"workers": 2}, "t.yml", workers=3).workers == 3  # the command line wins
    for bad, field in (({"scheduler": "10.0.0.1"}, "scale.scheduler"), ({"workers": 0}, "scale.workers"),
                       ({"nodes": 2}, "scale.nodes"), ("x", "scale:")):
        with pytest.raises(ConfigError, match=field) as err:
            scale_settings(bad, "t.yml")
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="tcp://host:port"):
        check_address("tcp://host:99999")


def test_bad_scheduler_address_is_one_line(table_source, tmp_path, capsys):
    assert main(["build", str(table_source), "-o", str(tmp_path / "b"), "--scheduler", "localhost:8786"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--scheduler" in err and "tcp://host:port" in err and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_parts_are_written_whole_or_not_at_all(tmp_path):
    part = tmp_path / "part_00000.bin"
    write_atomically(part, np.arange(5, dtype="<u2"))
    assert np.array_equal(np.fromfile(part, dtype="<u2"), np.arange(5))
    with pytest.raises(TypeError):  # fails after the temporary file was opened: nothing is left of it
        write_atomically(tmp_path / "part_00001.bin", [1, 2, 3])
    assert [p.name for p in tmp_path.iterdir()] == ["part_00000.bin"]
    # a worker that does not see the client's folder (no shared filesystem) refuses instead of writing elsewhere
    with pytest.raises(ToolError, match="shared with the client") as err:
        write_part(None, None, "pt", None, 0, 0, 16, str(tmp_path / "not_here"))
    assert "\n" not in str(err.value) and not (tmp_path / "not_here").exists()


@pytest.mark.slow
def test_table_bytes_do_not_depend_on_worker_count(table_source, cluster_bundle, dask_scheduler_address, tmp_path,
                                                   monkeypatch, capsys):
    import trigger.frontends.lut.parts
    from distributed import Client

    with Client(dask_scheduler_address) as client:  # so the cluster build's workers wrote their own parts
        assert trigger.frontends.lut.parts.workers_share(client, tmp_path)
        assert not list(tmp_path.iterdir())  # the probe file is removed
    # the two real workers wrote their parts themselves (shared filesystem); here one worker's parts travel
    # back and this process writes them (what happens on a cluster that does not share the folder)
    monkeypatch.setattr(trigger.frontends.lut.parts, "workers_share", lambda client, folder: False)
    one = tmp_path / "one_worker"
    assert main(["build", str(table_source), "-o", str(one), "--workers", "1"]) == 0
    assert "do not see" in capsys.readouterr().err
    a, b = digests(one), digests(cluster_bundle)
    assert a == b
    for folder in (tmp_path, cluster_bundle.parent):  # the parts' temporary folders beside the bundles are gone
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not [p for p in (cluster_bundle / "memory").iterdir() if not p.name.startswith("part_")]
    manifest = json.loads((one / "manifest.json").read_text())
    parts = manifest["table"]["parts"]
    assert len(parts["files"]) == 1 << (ADDRESS_BITS - 10)  # four tasks, four part files
    # the table hash is built from the per-part hashes, each the sha256 of its binary part
    for rel, digest in zip(parts["files"], parts["sha256"]):
        assert hashlib.sha256((one / "memory" / rel).read_bytes()).hexdigest() == digest
    combined = hashlib.sha256("".join(parts["sha256"]).encode()).hexdigest()
    assert manifest["table"]["table_sha256"] == combined
    words = np.concatenate([np.fromfile(one / "memory" / rel, dtype=parts["dtype"]) for rel in parts["files"]])
    assert words.size == 1 << ADDRESS_BITS and words.max() < 1 << 9
    # the RTL is the compression in front of the documented memory interface; no ROM image
    top = (one / "rtl" / "scale_table.v").read_text()
    for port in ("mem_rd_en", "mem_addr", "mem_rd_data", "READ_LATENCY = 3"):
        assert port in top
    assert not list((one / "rtl").glob("*.mem"))


@pytest.mark.slow
def test_verify_through_the_cluster_every_address(cluster_bundle, dask_scheduler_address, tmp_path):
    """One verifier: in this process, through `--scheduler` and in 4 address ranges on the 2 workers, the same
    verify.json but for the timings."""
    from distributed import Client

    from trigger.verify import verify_bundle

    def verdict(*args: str) -> dict:
        assert main(["verify", str(cluster_bundle), *args]) == 0
        return json.loads((cluster_bundle / "reports" / "verify.json").read_text())

    local = verdict()
    distributed = verdict("--scheduler", dask_scheduler_address)
    with Client(dask_scheduler_address) as client:
        ranges = verify_bundle(cluster_bundle, client=client, range_words=1 << 10, progress=False)
    from_python = trigger.verify(cluster_bundle, scheduler=dask_scheduler_address, progress=False)  # the notebook API
    assert local["timings"]["sets"] == 2 and ranges["timings"]["sets"] == 5 and ranges["timings"]["workers"] == 2
    assert from_python["timings"]["workers"] == 2
    apart_from_timings = lambda r: {k: v for k, v in r.items() if k != "timings"}  # noqa: E731
    assert (apart_from_timings(distributed) == apart_from_timings(local) == apart_from_timings(ranges)
            == apart_from_timings(from_python))
    result = local
    assert result["pass"] and result["exhaustive"]
    assert result["mismatches"] == CLEAN
    assert result["cover"] == {"tensor": "output of op 'address'", "values": 1 << ADDRESS_BITS}
    # external memory: the stored vectors span the table, so they are checked against the emulator only
    assert result["vectors"] == 1 << ADDRESS_BITS and result["stored_vectors"] > 0
    assert result["overflows"]  # counted over the sets, as in this process
    manifest = json.loads((cluster_bundle / "manifest.json").read_text())
    assert result["latency_cycles"] == manifest["latency_cycles"]


@pytest.mark.slow
def test_a_wrong_word_read_is_caught_with_its_first_mismatch(cluster_bundle, dask_scheduler_address, tmp_path):
    import shutil

    from distributed import Client

    from trigger.bundle import file_hashes, write_json
    from trigger.verify import verify_bundle

    bad = tmp_path / "bad"
    shutil.copytree(cluster_bundle, bad)
    cpp = bad / "hls" / "scale_table.cpp"
    text = cpp.read_text()
    right = "mem[scale_table_address(dphi12, dphi23, eta)]"
    assert right in text
    # the C++ reads the word after the right one, for addresses 2048 and up only
    cpp.write_text(text.replace(right, "mem[scale_table_address(dphi12, dphi23, eta) + "
                                       "(scale_table_address(dphi12, dphi23, eta) >= 2048 ? 1 : 0)]"))
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["files"] = file_hashes(bad)
    write_json(bad / "manifest.json", manifest)
    with Client(dask_scheduler_address) as client:
        result = verify_bundle(bad, client=client, range_words=1 << 10, progress=False)
    assert not result["pass"]
    assert result["mismatches"]["emulator_vs_rtl"] == 0
    first = result["first_mismatch"]
    assert first["comparison"] == "emulator_vs_csim"
    assert first["emulator_trace"]["address"][0] >= 2048
    assert first["vector"] >= result["stored_vectors"]  # the stored vectors' set runs no C++ for external memory
    assert 0 < result["mismatches"]["emulator_vs_csim"] <= 2048  # only addresses 2048 and up read wrongly
    assert result["mismatches"]["emulator_vs_csim"] == result["mismatches"]["csim_vs_rtl"]


@pytest.mark.slow
def test_a_failing_part_leaves_no_part_file(table_source, dask_scheduler_address, tmp_path):
    from distributed import Client

    from trigger.frontends.lut.binning import build_layout
    from trigger.frontends.lut.config import check_config
    from trigger.frontends.lut.dataset import load_samples
    from trigger.frontends.lut.regressor import make_regressor, to_target
    from trigger.frontends.lut.parts import part_file, table_in_parts

    cfg = check_config(TABLE, table_source / "trigger.yml")
    train, _ = load_samples(cfg)
    layout = build_layout(cfg, train.raw)
    regressor = make_regressor(cfg.model, cfg.seed)
    regressor.fit(layout.regressor_inputs(layout.bins_of(layout.compress(train.raw))), to_target(train.pt, "pt"))
    folder = tmp_path / "memory"
    blocker = folder / part_file(15)
    blocker.mkdir(parents=True)  # the last of 16 parts cannot be renamed into place: its task fails
    with Client(dask_scheduler_address) as client:
        with pytest.raises(OSError):
            table_in_parts(client, layout, regressor, "pt", cfg.output, part_words=1 << 8, folder=folder,
                           progress=False)
    # the parts written before the failure are removed, and no temporary file is left
    assert [p.name for p in folder.iterdir()] == [blocker.name] and not list(blocker.iterdir())


@pytest.mark.slow
def test_reading_the_table_leaves_no_part_mapped(cluster_bundle):
    from trigger.ir.model import FirmwareModel, emulate

    model = FirmwareModel.load(cluster_bundle)
    lookup = model.ops[-1]
    words = lookup.read(np.arange(1 << ADDRESS_BITS))  # every part
    assert np.array_equal(words, np.concatenate(
        [np.fromfile(cluster_bundle / p["file"], dtype=lookup.part_dtype) for p in lookup.parts]))
    inputs = np.load(cluster_bundle / "vectors" / "inputs.npy")
    assert np.array_equal(emulate(model, inputs).outputs, np.load(cluster_bundle / "vectors" / "outputs.npy"))
    # a 2^30 table read at random addresses would otherwise stay mapped (and counted) in this process
    assert "part_0" not in Path("/proc/self/maps").read_text()


# An environment that changes what a worker's numpy computes unless the evaluation is independent of it:
# BLAS threads and kernel (OPENBLAS_CORETYPE), numpy's SIMD dispatch, locale, time zone, hash seed.
FOREIGN_ENV = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
               "OPENBLAS_CORETYPE": "Prescott", "TZ": "Pacific/Chatham", "LANG": "de_DE.UTF-8", "LC_ALL": "C",
               "PYTHONHASHSEED": "4242"}
BLAS_PROBE = ("import hashlib, numpy as np; r = np.random.default_rng(1); "
              "x, w = r.standard_normal((4096, 3)), r.standard_normal((3, 32)); "
              "print(hashlib.sha256(np.exp(x @ w / 4).tobytes()).hexdigest())")


def foreign_env() -> dict:
    import os

    import numpy as np

    env = {**os.environ, **FOREIGN_ENV,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    features = np.core._multiarray_umath.__cpu_features__
    avx512 = [f for f in ("AVX512F", "AVX512CD", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL")
              if features.get(f)]
    if avx512:  # numpy's exp/log without their AVX-512 kernels
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(avx512)
    return env


@pytest.fixture(scope="module")
def foreign_scheduler(tmp_path_factory):
    """A scheduler and two `dask worker` processes started by hand (subprocess, no nanny) with FOREIGN_ENV."""
    with dask_cluster(tmp_path_factory.mktemp("foreign_dask"), ["--no-nanny"], "foreign", env=foreign_env(),
                      what="the hand-started Dask cluster") as address:
        yield address


@pytest.mark.slow
def test_a_build_on_workers_in_another_environment_equals_a_local_build(table_source, foreign_scheduler, tmp_path):
    """Issue 27 item 5: every file of the bundle is byte-identical, built in this process or on hand-started
    workers whose environment changes numpy's own results (checked first: the probe differs)."""
    import subprocess
    import sys

    from distributed import Client

    here = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True, check=True).stdout
    there = subprocess.run([sys.executable, "-c", BLAS_PROBE], capture_output=True, text=True, check=True,
                           env=foreign_env()).stdout
    assert here != there  # BLAS and exp in that environment do give other floats
    with Client(foreign_scheduler) as client:
        env = client.run(lambda: {k: __import__("os").environ.get(k) for k in FOREIGN_ENV})
        assert all(e == FOREIGN_ENV for e in env.values()) and len(env) == 2
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["build", str(table_source), "-o", str(local)]) == 0  # in this process: no cluster at all
    assert main(["build", str(table_source), "-o", str(remote), "--scheduler", foreign_scheduler]) == 0
    a, b = digests(local), digests(remote)
    assert sorted(a) == sorted(b) and [rel for rel in a if a[rel] != b[rel]] == []
    assert json.loads((local / "manifest.json").read_text())["model"]["model_sha256"] == \
        json.loads((remote / "manifest.json").read_text())["model"]["model_sha256"]


def test_a_worker_whose_floats_differ_is_refused_by_name():
    """The client's guard: a part whose sampled floats differ from this machine's is refused, naming the worker."""
    from trigger.fixed import FixedFormat
    from trigger.frontends.lut.parts import check_sample, write_part

    class Layout:  # one field of 8 bits: address -> the address as a float
        bits = 8

        def bins_of(self, address):
            return np.asarray(address).reshape(-1, 1)

        def regressor_inputs(self, bins):
            return np.asarray(bins, dtype=np.float64)

    class Linear:
        def predict(self, x):
            return np.asarray(x, dtype=np.float64)[:, 0] / 16.0

    fmt = FixedFormat.parse("ufixed<9,8,RND_CONV,SAT>")
    record = write_part(Layout(), Linear(), "pt", fmt, 0, 0, 256)
    check_sample(record, Layout(), Linear(), "pt", fmt)  # the same here: accepted
    floats = np.frombuffer(bytes.fromhex(record["sample"]["floats"]), "<f8").copy()
    floats[3] = np.nextafter(floats[3], 1.0)  # one float one ULP off, as another BLAS kernel gives
    record["sample"]["floats"] = floats.tobytes().hex()
    record["worker"] = "worker tcp://10.0.0.7:4000 on node7"
    with pytest.raises(ToolError, match=r"table part 0: worker tcp://10.0.0.7:4000 on node7 computed address \d+ "
                                        r"as .*: its numeric environment differs; the table is not written") as err:
        check_sample(record, Layout(), Linear(), "pt", fmt)
    assert "\n" not in str(err.value)
