"""The hls4ml C simulation is compiled once per content of its C++ and reused from the cache."""

import shutil

import numpy as np
import pytest

from trigger.backends.hls.hls4ml_project import csim_project
from trigger.ir.model import FirmwareModel, emulate

pytestmark = pytest.mark.slow


def test_csim_is_compiled_once_per_content(reference_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_CACHE", str(tmp_path / "cache"))
    model = FirmwareModel.load(reference_bundle.path)
    raw = np.load(reference_bundle.path / "vectors" / "inputs.npy")[:1500]
    expected = emulate(model, raw).outputs
    project = tmp_path / "hls"
    shutil.copytree(reference_bundle.path / "hls", project)
    entries = []
    for step in ("cold", "hit", "changed"):
        if step == "changed":  # any change to the C++ is a new entry, even a comment
            top = project / "firmware" / "myproject.cpp"
            top.write_text(top.read_text() + "\n// changed\n")
        out, timings = csim_project(project, model, raw)
        assert np.array_equal(out, expected)
        entries.append(sorted(p.name for p in (tmp_path / "cache" / "csim").iterdir()
                              if not p.name.startswith((".", "pch-"))))
        if step == "hit":
            assert timings["csim_build_s"] < 1.0
    assert len(entries[0]) == 1 and entries[1] == entries[0] and len(entries[2]) == 2
    # the ap_types headers, precompiled once for both compiles (gxx_csim.ap_types_pch)
    assert [p.name[:4] for p in (tmp_path / "cache" / "csim").glob("pch-*")] == ["pch-"]
