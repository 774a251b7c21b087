"""``verify_bundle``: the table through the RTL and the HLS C simulation, against the emulator.

The vectors: one raw input vector per table address (the lowest raw value of
each field's bin, so every ROM word is read once; ``vectors=N`` checks N
random addresses instead), then the bundle's stored vectors (every bin edge
and its neighbour, raw extremes, random raw values, physics muons) which
exercise the compression. The emulator is numpy (compress, then index the
table read back from the bundle's .mem file); the RTL runs under cocotb via
trigger.rtlsim; the C simulation is the bundle's HLS C++ compiled with g++.
Integers must be equal; counts and the first mismatch are reported.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from trigger.bundle import changed_files, load_manifest
from trigger.lut.binning import AddressLayout, Field
from trigger.lut.build import bus_patterns
from trigger.lut.firmware import compile_csim, run_csim
from trigger.lut.table import emulate


def layout_from_manifest(manifest: dict) -> AddressLayout:
    fields = [Field(f["name"], f["bits"], f["lsb"], f["binning"], np.asarray(f["edges"], dtype=np.int64),
                    f["raw_bits"], f["signed"], np.asarray(f["centres"], dtype=np.float64))
              for f in manifest["address"]["fields"]]
    return AddressLayout(fields, int(manifest["address"]["bits"]))


def read_mem(path: Path, depth: int) -> np.ndarray:
    text = path.read_bytes().split()
    if len(text) != depth:
        raise ValueError(f"{path}: {len(text)} words, expected {depth}")
    return np.array([int(t, 16) for t in text], dtype=np.int64)


def _first_mismatch(name, idx, raw, address, a, b, labels):
    i = int(idx[0])
    return {"comparison": name, "vector": i, "raw_inputs": [int(v) for v in raw[i]], "address": int(address[i]),
            labels[0]: int(a[i]), labels[1]: int(b[i])}


def verify_bundle(bundle_dir: Path, simulator: str = "verilator", vectors: int | None = None,
                  progress: bool = True) -> dict:
    """Verify a LUT bundle; writes and returns ``bundle/reports/verify.json``.

    ``vectors=None`` checks every table address (exhaustive); an integer checks that many
    random addresses. The bundle's stored edge/random vectors are always added.
    """
    bundle = Path(bundle_dir)
    manifest = load_manifest(bundle)
    if manifest.get("kind") != "lut":
        raise ValueError(f"{bundle}: not a LUT bundle (kind {manifest.get('kind')!r})")
    tampered = changed_files(bundle, manifest)
    if tampered:
        raise ValueError(f"{bundle}: files changed since the build: {', '.join(tampered[:3])}")
    if vectors is not None and (isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1):
        raise ValueError(f"vectors must be a positive integer or None (every address), got {vectors!r}")
    layout = layout_from_manifest(manifest)
    rtl, table = manifest["rtl"], manifest["table"]
    top, depth = rtl["top"], int(table["depth"])
    timings = {}

    t0 = time.perf_counter()
    words = read_mem(bundle / rtl["data_files"][0], depth)
    exhaustive = vectors is None or vectors >= depth
    if exhaustive:
        addresses = np.arange(depth, dtype=np.int64)
    else:
        addresses = np.unique(np.random.default_rng(12345).integers(0, depth, vectors))
    stored = np.load(bundle / "vectors" / "inputs.npy")
    stored_out = np.load(bundle / "vectors" / "outputs.npy")[:, 0]
    raw = np.concatenate([layout.representatives(addresses), stored]).astype(np.int64)
    address = layout.compress(raw)
    expected = emulate(layout, words, raw)
    timings["emulator_seconds"] = time.perf_counter() - t0
    # The representatives must land on their own address (the compression's inverse holds).
    wrong_address = int(np.count_nonzero(address[: len(addresses)] != addresses))
    stored_mismatch = int(np.count_nonzero(expected[len(addresses):] != stored_out))

    work = Path(tempfile.mkdtemp(prefix=f"verify_{top}_"))
    try:
        exe, timings["csim_compile_seconds"] = compile_csim(bundle / "hls", top, work / "csim")
        csim, timings["csim_seconds"] = run_csim(exe, raw, work)
        if len(csim) != len(raw):
            raise RuntimeError(f"C simulation returned {len(csim)} words for {len(raw)} vectors")

        from trigger.rtlsim import simulate

        if progress:
            print(f"verify {top}: {len(raw)} vectors through the RTL ({simulator})...", flush=True)
        result = simulate(sources=[bundle / s for s in rtl["sources"]], top=top,
                          inputs=bus_patterns(layout, raw), w_in=int(rtl["w_in"]), n_out=1,
                          w_out=int(rtl["w_out"]), simulator=simulator, build_dir=work / "rtl",
                          data_files=[bundle / f for f in rtl["data_files"]])
        rtl_out = result.outputs[:, 0]
        timings["rtl_build_seconds"] = result.build_seconds
        timings["rtl_seconds"] = result.seconds
    finally:
        if os.environ.get("TRIGGER_KEEP_WORK"):
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    pairs = {"emulator_vs_rtl": (expected, rtl_out, ("emulator", "rtl")),
             "emulator_vs_csim": (expected, csim, ("emulator", "csim")),
             "csim_vs_rtl": (csim, rtl_out, ("csim", "rtl"))}
    mismatches, first = {}, None
    for name, (a, b, labels) in pairs.items():
        idx = np.flatnonzero(a != b)
        mismatches[name] = int(idx.size)
        if idx.size and first is None:
            first = _first_mismatch(name, idx, raw, address, a, b, labels)
    mismatches["representative_address"] = wrong_address
    mismatches["stored_vectors_vs_emulator"] = stored_mismatch
    if first is None and wrong_address:
        i = int(np.flatnonzero(address[: len(addresses)] != addresses)[0])
        first = {"comparison": "representative_address", "vector": i, "expected_address": int(addresses[i]),
                 "address": int(address[i])}

    rtl_rate = len(raw) / timings["rtl_seconds"] if timings["rtl_seconds"] > 0 else None
    report = {
        "kind": "lut",
        "name": manifest.get("name"),
        "vectors": int(len(raw)),
        "table_vectors": int(len(addresses)),
        "compression_vectors": int(len(stored)),
        "exhaustive": bool(exhaustive),
        "address_bits": int(layout.bits),
        "addresses_covered": int(np.unique(address).size),
        "mismatches": mismatches,
        "first_mismatch": first,
        "latency_cycles": int(result.latency_cycles),
        "latency_cycles_expected": int(rtl["latency_cycles"]),
        "ii": int(result.ii),
        "simulator": simulator,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "rtl_vectors_per_second": round(rtl_rate, 1) if rtl_rate else None,
        "pass": all(v == 0 for v in mismatches.values()) and result.latency_cycles == int(rtl["latency_cycles"]),
    }
    if result.latency_cycles != int(rtl["latency_cycles"]):
        mismatches["latency"] = 1
        report["pass"] = False
    out = bundle / "reports" / "verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return report
