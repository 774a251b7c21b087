"""One verifier for every design: emulator == HLS C simulation == RTL simulation, integer for integer.

The vectors are the bundle's stored ones plus, when the firmware model has a
tensor small enough to enumerate (``trigger.vectors.cover``), one vector for
every value of it: every address of a table. ``vectors=N`` checks the first N
test vectors instead. The bundle's own files are used (its HLS project, its
RTL, its firmware_model.json), and a bundle changed since it was built is
refused. Every comparison reports its mismatch count; the first mismatching
vector is reported with its op-by-op emulator trace.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from trigger.backends.hls import run_csim
from trigger.bundle import VECTOR_SEED, changed_files, load_manifest, write_json
from trigger.errors import BundleError, ConfigError
from trigger.ir.model import FirmwareModel, emulate
from trigger.rtlsim import SIMULATORS, simulate
from trigger.source_model import compare as compare_source, describe as describe_source
from trigger.vectors import cover, test_vectors

COMPARISONS = ("emulator_vs_csim", "emulator_vs_rtl", "csim_vs_rtl", "emulator_vs_stored")


def mismatching_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of vectors whose outputs differ in any element (missing rows count as different)."""
    n = min(len(a), len(b))
    rows = np.flatnonzero(np.any(a[:n] != b[:n], axis=1))
    if len(a) != len(b):
        rows = np.concatenate([rows, np.arange(n, max(len(a), len(b)))])
    return rows


def describe_mismatch(model: FirmwareModel, comparison: str, index: int, inputs: np.ndarray,
                      outputs: dict[str, np.ndarray]) -> dict:
    """The first mismatching vector: its inputs, every witness's outputs and the emulator's trace, op by op."""
    x = inputs[index:index + 1]
    trace = emulate(model, x, trace=True).trace
    return {"comparison": comparison, "vector": int(index), "input": x[0].tolist(),
            **{name: (out[index].tolist() if index < len(out) else None) for name, out in outputs.items()},
            "emulator_trace": {op.name: np.asarray(t)[0].tolist() for op, t in zip(model.ops, trace)}}


def format_mismatch(first: dict) -> str:
    """The first mismatch as a few lines for a terminal."""
    lines = [f"first mismatch ({first['comparison']}) at vector {first['vector']}: input {first['input']}"]
    for name in ("emulator", "csim", "rtl", "stored", "library"):
        if name in first:
            lines.append(f"  {name:<9} {first[name]}")
    for op, values in first.get("emulator_trace", {}).items():
        lines.append(f"  after {op}: {values}")
    return "\n".join(lines)


def source_comparison(bundle: Path, manifest: dict, model: FirmwareModel, stored_in: np.ndarray,
                      firmware_out: np.ndarray) -> dict | None:
    """The fourth witness: the user's model, run by its own framework at build time, vs the firmware
    on the stored vectors (``trigger.source_model``); None when the bundle has no source outputs."""
    section = manifest.get("source_model")
    if not section:
        return None
    outputs = np.load(bundle / section["outputs"], allow_pickle=False)
    return compare_source(section, outputs, stored_in, firmware_out, model)


def library_outputs(bundle: Path, manifest: dict, model: FirmwareModel, inputs: np.ndarray, work: Path):
    """The fifth witness: the bundle's emulator library (emulator/, lib<name>.so) built (cached) and loaded
    through dlopen by a harness shaped like the experiment's loader, on every vector. Returns (outputs,
    timings, None), or (None, {}, why) when it cannot be checked (no emulator/ in an old bundle, a design
    without a library, no g++); a library that fails to build is a ToolError."""
    from trigger.backends import emulator_lib
    from trigger.toolchain import find_tool

    em = manifest.get("emulator")
    if not em:
        return None, {}, "the bundle has no emulator/ (built before the emulator library): rebuild it"
    if not em.get("supported"):
        return None, {}, f"no emulator library for this design: {em.get('reason')}"
    if find_tool("g++") is None:
        return None, {}, "g++ not found: the emulator library is not checked (run `trigger doctor`)"
    lib, timings = emulator_lib.build_library(bundle, manifest, Path(work) / "library_build")
    t0 = time.perf_counter()
    (out,) = emulator_lib.run_libraries([(lib, inputs, model.output.n)], Path(work) / "library")
    timings["library_s"] = round(time.perf_counter() - t0, 3)
    return out, timings, None


# Frames of a streamed design checked cycle by cycle from cocotb (each takes pixels-per-frame clocks); the rest stream
# through the harness with no Python in the loop.
STREAM_PROTOCOL_FRAMES = 24


def _stream_options(rtl: dict) -> dict:
    """simulate()'s options for a streamed design (frame protocol, trigger/backends/rtl/stream.py); none otherwise."""
    if not rtl.get("stream"):
        return {}
    return {"stream": rtl["stream"], "protocol_vectors": STREAM_PROTOCOL_FRAMES}


def verify_bundle(bundle, simulator: str = "verilator", vectors: int | None = None, progress: bool = True) -> dict:
    """Verify a bundle; writes and returns ``reports/verify.json``."""
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}, expected one of {', '.join(SIMULATORS)}")
    if vectors is not None and (isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1):
        raise ConfigError(f"vectors must be a positive integer, got {vectors!r}")
    tampered = changed_files(bundle, manifest)
    if tampered:
        raise BundleError(f"{bundle}: files changed since the build: {', '.join(tampered[:3])}; rebuild it")
    model = FirmwareModel.load(bundle)
    stored_in = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
    stored_out = np.load(bundle / "vectors" / "outputs.npy", allow_pickle=False)
    seed = int(manifest["vectors"].get("seed", VECTOR_SEED))
    covered = None
    if vectors is None:
        covered = cover(model)
        inputs = stored_in if covered is None else np.vstack([stored_in, covered.inputs])
    else:
        inputs = test_vectors(model, vectors, seed)[:vectors]
    timings = {}
    work = Path(tempfile.mkdtemp(prefix="trigger-verify-"))
    csim_job = library_job = None
    try:
        if progress:
            print(f"verify {manifest['name']}: {len(inputs)} vectors through the C simulation and the RTL "
                  f"({simulator})...", flush=True)
        # The C simulation (a compiler, then compiled code that releases the GIL) runs in a thread while
        # the emulator runs and the RTL simulator is built and run: the witnesses are independent, and
        # each of them alone leaves a core idle most of the time.
        pool = ThreadPoolExecutor(max_workers=1)
        csim_job = pool.submit(run_csim, bundle, manifest, model, inputs, work)
        pool.shutdown(wait=False)
        library_pool = ThreadPoolExecutor(max_workers=1)  # the emulator library: g++ (cached), then the harness
        library_job = library_pool.submit(library_outputs, bundle, manifest, model, inputs, work)
        library_pool.shutdown(wait=False)
        t0 = time.perf_counter()
        emulated = emulate(model, inputs)
        emu = emulated.outputs
        # the stored vectors come first when checking them; otherwise emulate them on their own
        again = emu[:len(stored_in)] if vectors is None else emulate(model, stored_in).outputs
        timings["emulator_s"] = round(time.perf_counter() - t0, 3)
        rtl = manifest["rtl"]
        sim = simulate([bundle / s for s in rtl["sources"]], rtl["top"], model.input.to_bits(inputs),
                       model.input.widths, model.output.widths, simulator=simulator,
                       build_dir=bundle / ".sim_build", data_files=[bundle / f for f in rtl.get("data_files", [])],
                       max_latency=int(manifest["latency_cycles"]) + 8, ii=int(manifest.get("ii", 1)),
                       **_stream_options(rtl))
        timings["rtl_build_s"] = round(sim.build_seconds, 3)
        timings["rtl_sim_s"] = round(sim.seconds, 3)
        timings.update(sim.summary())  # cache hit, CPU times, the harness's bulk throughput
        csim_out, csim_times = csim_job.result()
        timings.update({k: round(v, 3) for k, v in csim_times.items()})
        library_out, library_times, library_note = library_job.result()
        timings.update(library_times)
    finally:
        for job in (csim_job, library_job):
            if job is not None:
                wait([job])  # the work folder is the C simulation's (and the library's) until it ends
        if os.environ.get("TRIGGER_KEEP_WORK"):
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rtl_out = model.output.from_bits(sim.outputs)

    pairs = {"emulator_vs_csim": (emu, csim_out), "emulator_vs_rtl": (emu, rtl_out),
             "csim_vs_rtl": (csim_out, rtl_out), "emulator_vs_stored": (again, stored_out)}
    mismatches, first = {}, None
    for name in COMPARISONS:
        rows = mismatching_rows(*pairs[name])
        mismatches[name] = int(rows.size)
        if rows.size and first is None:
            if name == "emulator_vs_stored":
                first = describe_mismatch(model, name, int(rows[0]), stored_in,
                                          {"emulator": again, "stored": stored_out})
            else:
                first = describe_mismatch(model, name, int(rows[0]), inputs,
                                          {"emulator": emu, "csim": csim_out, "rtl": rtl_out})
    if library_out is not None:  # the fifth comparison: the emulator library (dlopen) vs the emulator
        rows = mismatching_rows(emu, library_out)
        mismatches["library_vs_emulator"] = int(rows.size)
        if rows.size and first is None:
            first = describe_mismatch(model, "library_vs_emulator", int(rows[0]), inputs,
                                      {"emulator": emu, "library": library_out})
    elif progress:
        print(f"verify {manifest['name']}: {library_note}", flush=True)
    source = source_comparison(bundle, manifest, model, stored_in, again)
    if source is not None and source["exact"]:
        mismatches["source_vs_firmware"] = source["mismatches"]  # quantized source: counted like any comparison
    if source is not None and progress:
        print(f"verify {manifest['name']}: {describe_source(source)}", flush=True)
    expected = int(manifest["latency_cycles"])
    mismatches["latency_vs_manifest"] = int(sim.latency_cycles != expected or sim.ii != int(manifest.get("ii", 1)))
    if int(manifest.get("ii", 1)) > 1:  # an input sooner than II: refused, flagged once, nothing corrupted
        early = sim.timing.get("too_early") or {}
        refused_once = early.get("refused_flags") == 1 and early.get("outputs") == 1
        mismatches["too_early_input_not_refused"] = int(not (refused_once and early.get("output_matches_first")))
        mismatches["inputs_refused_at_ii_spacing"] = int((sim.timing.get("bulk") or {}).get("refused", 0))
    result = {
        "kind": manifest["kind"],
        "name": manifest["name"],
        "simulator": simulator,
        "vectors": int(len(inputs)),
        "stored_vectors": int(len(stored_in)),
        "cover": None if covered is None else {"tensor": covered.tensor, "values": int(covered.values)},
        "exhaustive": covered is not None,
        "mismatches": mismatches,
        "first_mismatch": first,
        "latency_cycles": int(sim.latency_cycles),
        "latency_cycles_expected": expected,
        "ii": int(sim.ii),
        "spurious_outputs": int(sim.timing.get("spurious", 0)),
        "overflows": emulated.overflow_summary(),
        "timings": timings,
        "rtl_vectors_per_s": round(len(inputs) / max(sim.seconds, 1e-9), 1),
    }
    stream = manifest["rtl"].get("stream")
    if stream:  # a streamed design: the frame's latency after its last pixel, measured, and the pixels per frame
        result["stream"] = {"pixels_per_frame": int(stream["pixels_per_frame"]), "ii_per_frame": int(sim.ii),
                            "latency_after_last_pixel": int(sim.latency_cycles) - int(stream.get(
                                "first_to_last_pixel", int(stream["pixels_per_frame"]) - 1))
                            if sim.latency_cycles >= 0 else -1,
                            "latency_after_last_pixel_expected": int(stream["latency_after_last_pixel"])}
    result["source_model"] = source
    from trigger.layers import describe as describe_layers, stored_section

    result["layers"] = stored_section(bundle, model, stored_in)  # the source model vs the firmware, layer by layer
    if result["layers"] is not None and progress:
        print(f"verify {manifest['name']}: {describe_layers(result['layers'])}", flush=True)
    result["library"] = ({"library": manifest["emulator"]["library"], "vectors": int(len(inputs)),
                          "mismatches": mismatches["library_vs_emulator"]} if library_out is not None
                         else {"skipped": library_note})
    result["pass"] = all(v == 0 for v in mismatches.values()) and result["spurious_outputs"] == 0
    write_json(bundle / "reports" / "verify.json", result)
    return result
