"""The C simulation of our own HLS C++ (tables, tree ensembles): g++ with hls4ml's ap_types headers.

Both projects ship a testbench that reads raw int32 inputs from one file and writes
output words to another, so compiling and running it is one piece of code. (hls4ml
projects have their own bridge: ``hls4ml_project.csim_project``.)
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np

from trigger.errors import BundleError, ToolError
from trigger.toolchain import ap_types_include, find_tool


def run_testbench(bundle: Path, manifest: dict, raw: np.ndarray, work: Path, *, optimisation: str,
                  word_dtype: str, words_per_vector: int) -> tuple[np.ndarray, dict]:
    """Compile the bundle's HLS sources + testbench, run them on ``raw``; returns the output words
    (n, words_per_vector) as int64 bit patterns and the build/run timings."""
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
    cmd = [gxx, "-std=c++14", optimisation, "-w", f"-I{ap_types_include()}", f"-I{include}",
           *[str(Path(bundle) / s) for s in sources], str(Path(bundle) / testbench), "-o", str(exe)]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        first = next((line for line in run.stderr.splitlines() if "error" in line), None) or \
            (run.stderr.strip().splitlines() or ["(no output)"])[0]
        raise ToolError(f"g++ failed to compile the C simulation of {top}: {first}")
    t1 = time.perf_counter()
    inputs, outputs = work / "csim_inputs.i32", work / "csim_outputs.bin"
    inputs.write_bytes(np.ascontiguousarray(raw, dtype="<i4").tobytes())
    run = subprocess.run([str(exe), str(inputs), str(outputs)], capture_output=True, text=True)
    if run.returncode != 0:
        raise ToolError(f"C simulation of {top} failed (exit {run.returncode}): "
                        f"{(run.stderr.strip().splitlines() or ['(no output)'])[0]}")
    t2 = time.perf_counter()
    bits = np.fromfile(outputs, dtype=word_dtype).astype(np.int64)
    if bits.size != len(raw) * words_per_vector:
        raise ToolError(f"C simulation of {top} returned {bits.size} words for {len(raw)} vectors "
                        f"x {words_per_vector} outputs")
    return bits.reshape(len(raw), words_per_vector), {"csim_build_s": round(t1 - t0, 3), "csim_s": round(t2 - t1, 3)}
