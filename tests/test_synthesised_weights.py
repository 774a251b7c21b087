"""The synthesised arithmetic is the verified arithmetic: the weights the C simulation loads are those synthesis reads.

hls4ml writes each weight array twice (``weights/*.h`` initialised for synthesis, ``weights/*.txt`` loaded by
the C simulation, which compiles in seconds where the initialised arrays take g++ minutes); the verifier proves
the two copies equal, value for value, and a bundle where they differ fails (exit 1) naming the array.
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


def _edit_first_nonzero(path, synthesis_branch: bool) -> int:
    """Set the first non-zero value of a weight array to 0 (in the header's synthesis branch, or in the .txt)."""
    text = path.read_text()
    pattern = r"(?s)(.*#else[^=]*=\s*\{)(.*?)(\};.*)" if synthesis_branch else r"(?s)()(.*)()"
    head, values, tail = re.match(pattern, text).groups()
    items = values.split(",")
    k = next(i for i, v in enumerate(items) if float(v) != 0)
    items[k] = " 0"
    path.write_text(head + ",".join(items) + tail)
    return k


def test_the_two_copies_of_every_weight_array_are_equal(reference_bundle):
    from trigger.backends.hls.hls4ml_project import check_weight_copies

    weights = reference_bundle.path / "hls" / "firmware" / "weights"
    headers = [h for h in sorted(weights.glob("*.h")) if "__SYNTHESIS__" in h.read_text()]
    assert headers and all(h.with_suffix(".txt").is_file() for h in headers), sorted(weights.iterdir())
    check_weight_copies(reference_bundle.path / "hls")  # raises when a value differs


@pytest.mark.parametrize("copy", ["synthesis", "csim"])
def test_an_edited_weight_copy_fails_verification(reference_bundle, tmp_path, capsys, copy):
    """w2's first non-zero weight set to 0 in one copy only (manifest re-hashed, so the tamper check passes):
    verify fails (exit 1), naming the array and the element, whichever copy was edited."""
    assert reference_bundle.verify_status == 0
    bundle = _copy(reference_bundle, tmp_path)
    weights = bundle / "hls" / "firmware" / "weights"
    k = _edit_first_nonzero(weights / ("w2.h" if copy == "synthesis" else "w2.txt"), copy == "synthesis")
    _rehash(bundle)
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert f"weights of w2: element {k} is" in err and "not be what is synthesised" in err, err
