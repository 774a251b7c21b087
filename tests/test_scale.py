"""Tables and their verification on Dask (trigger.scale): a LocalCluster and a real one on localhost.

The real cluster is the session fixture ``dask_scheduler_address`` (conftest.py): a ``dask scheduler``
and two ``dask worker`` processes. A small table in external memory is built in 2^10-address parts
with 1 worker (a LocalCluster) and with the 2 real workers: every byte of the two bundles is the
same. It is then verified through ``trigger verify --scheduler``: every address through the
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

from trigger.cli import main
from trigger.errors import ConfigError
from trigger.scale import check_address, scale_settings

from helpers import CLEAN

TABLE = {
    "kind": "lut", "name": "scale_table", "seed": 3,
    "data": {"source": "muon", "n_train": 5000, "n_test": 2000},
    "features": [{"name": "dphi12", "bits": 6, "binning": "quantile"},
                 {"name": "dphi23", "bits": 4, "binning": "quantile"},
                 {"name": "eta", "bits": 2, "binning": "linear"}],
    "address": {"memory": "external", "read_latency": 3, "part_bits": 10},
    "model": {"type": "mlp", "hidden": [8], "epochs": 1},
    "output": {"format": "ufixed<9,8,RND_CONV,SAT>"},
}
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


@pytest.mark.slow
def test_table_bytes_do_not_depend_on_worker_count(table_source, cluster_bundle, tmp_path):
    one = tmp_path / "one_worker"
    assert main(["build", str(table_source), "-o", str(one), "--workers", "1"]) == 0
    a, b = digests(one), digests(cluster_bundle)
    assert a == b
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
def test_verify_through_the_cluster_every_address(cluster_bundle, dask_scheduler_address):
    assert main(["verify", str(cluster_bundle), "--scheduler", dask_scheduler_address]) == 0
    result = json.loads((cluster_bundle / "reports" / "verify.json").read_text())
    assert result["pass"] and result["exhaustive"]
    assert result["mismatches"] == CLEAN
    assert result["cover"]["values"] == 1 << ADDRESS_BITS
    assert result["vectors"] == (1 << ADDRESS_BITS) + result["stored_vectors"]
    assert result["distributed"]["workers"] == 2
    manifest = json.loads((cluster_bundle / "manifest.json").read_text())
    assert result["latency_cycles"] == manifest["latency_cycles"]


@pytest.mark.slow
def test_a_wrong_word_read_is_caught_with_its_first_mismatch(cluster_bundle, dask_scheduler_address, tmp_path):
    import shutil

    from trigger.bundle import file_hashes, write_json
    from trigger.scale import verify_distributed
    from distributed import Client

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
        result = verify_distributed(bad, client, range_words=1 << 10, progress=False)
    assert not result["pass"]
    assert result["mismatches"]["emulator_vs_rtl"] == 0
    first = result["first_mismatch"]
    assert first["comparison"] == "emulator_vs_csim"
    assert first["emulator_trace"]["address"][0] >= 2048
    assert first["vector"] >= result["stored_vectors"]  # the stored vectors' task runs no C++ for external memory
    assert 0 < result["mismatches"]["emulator_vs_csim"] <= 2048  # only addresses 2048 and up read wrongly
    assert result["mismatches"]["emulator_vs_csim"] == result["mismatches"]["csim_vs_rtl"]
