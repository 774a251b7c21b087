"""The synthesised arithmetic is the verified arithmetic: the C simulation compiles the weights synthesis reads.

hls4ml's default writes each weight array twice (``weights/*.h`` initialised for synthesis, ``weights/*.txt``
loaded by the C simulation only); the bundle's project has the ``.h`` copy alone, so an edit of it changes
the C simulation, and a project with a second copy is refused.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from trigger.bundle import file_hashes
from trigger.cli import main

pytestmark = pytest.mark.slow  # g++ of the C simulation (and the cached Verilator model)


def _copy(bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(bundle.path, out, ignore=shutil.ignore_patterns(".sim_build"))
    return out


def _rehash(bundle) -> None:
    """The manifest's hashes made to match the edited files, as a tamperer would: the tamper check passes."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = file_hashes(bundle)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_bundle_has_one_copy_of_the_weights(reference_bundle):
    weights = reference_bundle.path / "hls" / "firmware" / "weights"
    headers = sorted(weights.glob("*.h"))
    assert headers, f"no weight headers in {weights}"
    assert not list(weights.glob("*.txt"))
    assert not [h.name for h in headers if "__SYNTHESIS__" in h.read_text()]
    top = (reference_bundle.path / "hls" / "firmware" / "myproject.cpp").read_text()
    assert "weights_from_txt" not in top


def test_an_edited_synthesis_weight_fails_verification(reference_bundle, tmp_path, capsys):
    assert reference_bundle.verify_status == 0
    bundle = _copy(reference_bundle, tmp_path)
    header = bundle / "hls" / "firmware" / "weights" / "w2.h"
    text = header.read_text()
    head, values, tail = re.match(r"(?s)(.*=\s*\{)(.*?)(\};.*)", text).groups()
    items = values.split(",")
    k = next(i for i, v in enumerate(items) if float(v) != 0)  # the first non-zero weight becomes 0
    items[k] = " 0"
    header.write_text(head + ",".join(items) + tail)
    _rehash(bundle)
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 1
    result = json.loads((bundle / "reports" / "verify.json").read_text())
    counts = result["mismatches"]
    assert counts["emulator_vs_csim"] > 0 and counts["csim_vs_rtl"] > 0, counts
    assert counts["emulator_vs_rtl"] == 0, counts  # the RTL is untouched
    print(f"w2[{k}] -> 0: {counts['emulator_vs_csim']}/{result['vectors']} vectors differ")


def test_a_project_loading_text_weights_is_refused(reference_bundle, tmp_path):
    """A C simulation that would read weights/*.txt (hls4ml's default) is refused, naming the file, before
    anything is compiled (verify runs this same C simulation)."""
    import numpy as np

    from trigger.backends.hls import run_csim
    from trigger.bundle import load_manifest
    from trigger.errors import BundleError
    from trigger.ir.model import FirmwareModel

    bundle = _copy(reference_bundle, tmp_path)
    top = bundle / "hls" / "firmware" / "myproject.cpp"
    top.write_text(top.read_text().replace(
        "// hls-fpga-machine-learning insert load weights",
        "// hls-fpga-machine-learning insert load weights\n#ifndef __SYNTHESIS__\n"
        "    nnet::load_weights_from_txt<weight2_t, 1>(w2, \"w2.txt\");\n#endif"))
    assert "load_weights_from_txt" in top.read_text()
    _rehash(bundle)
    raw = np.load(bundle / "vectors" / "inputs.npy")[:200]
    (tmp_path / "work").mkdir()
    with pytest.raises(BundleError, match=r"myproject\.cpp: loads weights/\*\.txt in the C simulation"):
        run_csim(bundle, load_manifest(bundle), FirmwareModel.load(bundle), raw, tmp_path / "work")
