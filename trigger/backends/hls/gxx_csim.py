"""The C simulation of our own HLS C++ (tables, tree ensembles): g++ with hls4ml's ap_types headers.

Both projects ship a testbench that reads raw int32 inputs from one file and writes
output words to another, so compiling and running it is one piece of code. (hls4ml
projects have their own bridge: ``hls4ml_project.csim_project``.)
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from trigger.errors import BundleError, ToolError
from trigger.toolchain import ap_types_include, find_tool


def run_testbench(bundle: Path, manifest: dict, raw: np.ndarray, work: Path, *, optimisation: str,
                  word_dtype: str, words_per_vector: int, extra_args: tuple = (),
                  defines: tuple = ()) -> tuple[np.ndarray, dict]:
    """Compile the bundle's HLS sources + testbench, run them on ``raw``; returns the output words
    (n, words_per_vector) as int64 bit patterns and the build/run timings. ``extra_args`` follow the two
    file names on the testbench's command line (a table's external-memory image and its base address);
    ``defines`` are g++ -D options. The vectors are split over one testbench process per core (every
    vector is computed on its own: the testbenches keep no state from one to the next)."""
    hls = manifest.get("hls") or {}
    try:
        top, sources, testbench = hls["top"], hls["sources"], hls["testbench"]
    except KeyError as err:
        raise BundleError(f"{bundle}: manifest.json hls section lacks {err}") from None
    gxx = find_tool("g++")
    if gxx is None:
        raise ToolError("g++ not found: needed for the HLS C simulation (run `trigger doctor`)")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    exe = work / f"{top}_csim"
    include = (Path(bundle) / testbench).parent
    flags = ["-std=c++14", optimisation, "-w"]
    cmd = [gxx, *flags, *ap_types_pch(gxx, flags, ap_types_include()), *(f"-D{d}" for d in defines),
           f"-I{ap_types_include()}", f"-I{include}",
           *[str(Path(bundle) / s) for s in sources], str(Path(bundle) / testbench), "-o", str(exe)]
    t0 = time.perf_counter()
    exe = _cached_testbench(cmd, bundle, top, sources, testbench) or _testbench_in(work, exe, cmd, manifest, top)
    t1 = time.perf_counter()
    raw = np.ascontiguousarray(raw, dtype="<i4")
    bits = run_in_parts(exe, raw, work, lambda rows_in, rows_out: [str(rows_in), str(rows_out), *extra_args],
                        out_dtype=word_dtype, rows_per_process=50_000, what=f"C simulation of {top}").astype(np.int64)
    t2 = time.perf_counter()
    if bits.size != len(raw) * words_per_vector:
        raise ToolError(f"C simulation of {top} returned {bits.size} words for {len(raw)} vectors "
                        f"x {words_per_vector} outputs")
    return bits.reshape(len(raw), words_per_vector), {"csim_build_s": round(t1 - t0, 3), "csim_s": round(t2 - t1, 3)}


AP_PCH_HEADERS = ("iostream", "ap_fixed.h", "ap_int.h", "hls_stream.h")  # what every C simulation includes first


def ap_types_pch(gxx: str, flags: list, ap_types: Path) -> list[str]:
    """g++ options that read hls4ml's ap_types headers precompiled (``-include <entry>/ap_pch.h``): a C
    simulation's compile spends about a fifth of its CPU parsing them (the reference MLP's at -O1: 2.95 CPU-s of
    g++, 2.34 with them precompiled). The .gch is compiled once per cache for exactly these ``flags`` (the options
    that must match for GCC to use it; -D and -I need not) and the headers' content; should GCC refuse it, it
    reads the text ap_pch.h, which includes the same headers. [] without a cache."""
    import hashlib
    import json

    from trigger.toolchain import csim_cache_dir, store_entry

    root = csim_cache_dir()
    if root is None or not (Path(ap_types) / "ap_fixed.h").exists():
        return []
    version = subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    text = "".join(f"#include <{name}>\n" if "." not in name else f'#include "{name}"\n' for name in AP_PCH_HEADERS)
    digest = hashlib.sha256(json.dumps(["ap_pch", version, list(flags), text]).encode())
    for path in sorted(Path(ap_types).rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(ap_types)}:{path.stat().st_size}:".encode())
            digest.update(path.read_bytes())
    final = root / f"pch-{digest.hexdigest()[:32]}"

    def compile_into(tmp: Path) -> None:
        (tmp / "ap_pch.h").write_text(text)
        _compile([gxx, *flags, f"-I{ap_types}", "-x", "c++-header", str(tmp / "ap_pch.h"), "-o",
                  str(tmp / "ap_pch.h.gch")], "the ap_types headers")

    store_entry(final, digest.hexdigest(), compile_into)
    return ["-include", str(final / "ap_pch.h")]


def _compile(cmd: list, top: str) -> None:
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        first = next((line for line in run.stderr.splitlines() if "error" in line), None) or \
            (run.stderr.strip().splitlines() or ["(no output)"])[0]
        raise ToolError(f"g++ failed to compile the C simulation of {top}: {first}")


def _cached_testbench(cmd: list, bundle: Path, top: str, sources: list, testbench: str) -> Path | None:
    """The testbench compiled once per content into the cache (``csim_cache_dir``), as the hls4ml projects'
    C simulations are: the key is g++'s version, the flags and defines, hls4ml's ap_types and every file of
    the bundle's HLS folders, so verifying the same table or ensemble again, in another bundle, or in each
    worker of a cluster does not compile it again. None without a cache."""
    import hashlib
    import importlib.metadata
    import json

    from trigger.toolchain import csim_cache_dir, store_entry

    root = csim_cache_dir()
    if root is None:
        return None
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    flags = [c for c in cmd[1:-2] if c.startswith("-") and not c.startswith("-I")]
    digest = hashlib.sha256(json.dumps(["testbench", version, flags, importlib.metadata.version("hls4ml"),
                                        str(ap_types_include()), sorted(sources), testbench]).encode())
    folders = sorted({(Path(bundle) / rel).parent for rel in [*sources, testbench]})
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(f"{path.relative_to(bundle)}:{path.stat().st_size}:".encode())
                digest.update(path.read_bytes())
    final = root / f"tb-{digest.hexdigest()[:32]}"
    store_entry(final, digest.hexdigest(), lambda tmp: _compile([*cmd[:-1], str(tmp / "csim")], top))
    return final / "csim"


def _testbench_in(work: Path, exe: Path, cmd: list, manifest: dict, top: str) -> Path:
    """Without a cache: compiled in the work folder, kept there for the same command and files (the
    manifest's hashes): trigger.cluster verifies address ranges one after another in each worker."""
    stamp = work / f"{top}_csim.stamp"
    files = manifest.get("files") or {}
    key = "\n".join([*cmd[:-2], *(f"{rel} {files.get(rel)}" for rel in sorted(files) if rel.startswith("hls/"))])
    if not (exe.exists() and stamp.exists() and stamp.read_text() == key and files):
        stamp.unlink(missing_ok=True)
        _compile(cmd, top)
        stamp.write_text(key)
    return exe


def run_in_parts(exe: Path, rows: np.ndarray, work: Path, args, *, out_dtype: str, rows_per_process: int,
                 what: str) -> np.ndarray:
    """Runs the compiled C simulation ``exe`` on ``rows``, split over one process per core (at most 4, at
    least ``rows_per_process`` rows each): every row is computed on its own, so the parts are independent.
    ``args(rows_in, rows_out)`` gives the command line after the executable; the rows are written to
    ``rows_in`` in their own dtype and the outputs read back from ``rows_out`` as ``out_dtype``, in order."""
    workers = max(1, min(os.cpu_count() or 1, 4, len(rows) // rows_per_process))
    bounds = np.linspace(0, len(rows), workers + 1).astype(int)
    jobs = []
    for k in range(workers):
        rows_in, rows_out = work / f"csim_in_{k}.bin", work / f"csim_out_{k}.bin"
        rows[bounds[k]:bounds[k + 1]].tofile(rows_in)
        # hls4ml's C++ reports a missing weights file on stdout: both streams go to the error message
        jobs.append((subprocess.Popen([str(exe), *args(rows_in, rows_out)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True), rows_in, rows_out))
    parts = []
    for job, rows_in, rows_out in jobs:
        output = job.communicate()[0]
        if job.returncode != 0:
            raise ToolError(f"{what} failed (exit {job.returncode}): "
                            f"{(output.strip().splitlines() or ['(no output)'])[0]}")
        parts.append(np.fromfile(rows_out, dtype=out_dtype))
        rows_in.unlink()
        rows_out.unlink()
    return np.concatenate(parts)
