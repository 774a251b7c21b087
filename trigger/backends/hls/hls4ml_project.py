"""The hls4ml project of a network bundle, and its C simulation.

hls4ml writes the project from its converted model; this module makes it
relocatable and byte-identical across builds, and runs the C simulation of a
bundle's own project (recompiled in a scratch copy) on raw integers.

hls4ml writes every weight array twice: the initialised array of ``firmware/weights/NAME.h``
that synthesis reads (under ``__SYNTHESIS__``) and ``weights/NAME.txt`` that the C simulation
loads (compiling thousands of initialised ap_fixed values takes g++ minutes; loading them takes
milliseconds). So that the verified arithmetic is the synthesised one, ``check_weight_copies``
proves the two copies equal, value for value, before every C simulation, and fails naming the
array and the first element that differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from trigger.backends.hls.gxx_csim import ap_types_pch, run_in_parts
from trigger.errors import BundleChanged, BundleError, ToolError
from trigger.quiet import quiet_stdout


def write_project(model, folder: Path, *, top: str, part: str, clock_period_ns: float, hls_model=None,
                  stamp: str = "") -> dict:
    """Write hls4ml's project (of ``hls_model``, the conversion ``model`` was read from) into ``folder``.

    hls4ml names the project and holds part and clock itself; ``top`` etc. are its own settings."""
    if hls_model is None:
        raise ValueError("the hls4ml backend writes the project of an hls4ml model: pass hls_model")
    folder = Path(folder)
    hls_model.config.config["OutputDir"] = str(folder)
    with quiet_stdout():
        hls_model.write()
    make_relocatable(folder, stamp=stamp)
    check_weight_copies(folder)
    for path in list(folder.rglob("*.so")) + list(folder.rglob("*.o")):  # machine products
        path.unlink()
    settings = hls_model.config.config
    return {"backend": "hls4ml", "project": "hls", "hls4ml_backend": settings.get("Backend", "Vitis"),
            "project_name": settings.get("ProjectName", "myproject"), "part": settings.get("Part"),
            "clock_period_ns": float(settings.get("ClockPeriod")), "io_type": settings.get("IOType"),
            "strategy": "Latency", "reuse_factor": int(settings.get("HLSConfig", {}).get("Model", {}).get("ReuseFactor", 1)),
            # per layer when shared (rtl.ii): hls4ml's Latency strategy with this ReuseFactor computes the same C++
            "layer_reuse_factor": {layer.name: int(layer.get_attr("reuse_factor", 1)) for layer in hls_model.get_layers()
                                   if int(layer.get_attr("reuse_factor", 1) or 1) > 1}}


def make_relocatable(hls_dir: Path, output_dir: str = ".", stamp: str | None = None) -> None:
    """Point hls4ml_config.yml at the project's own folder, drop the saved Keras model and,
    given ``stamp``, replace hls4ml's random project stamp with it.

    hls4ml records absolute paths, a random stamp (it names the C-simulation library)
    and saves the Keras model with a timestamp inside; none of that belongs in a bundle
    that must be byte-identical across builds. The model's sha256 is in the manifest.
    """
    config = hls_dir / "hls4ml_config.yml"
    lines, old_stamp = [], None
    for line in config.read_text().splitlines():
        if line.startswith("OutputDir:"):
            line = f"OutputDir: {output_dir}"
        elif line.startswith("KerasModel:"):
            line = "KerasModel: null  # not shipped: see source_sha256 in manifest.json"
        elif line.startswith("Stamp:") and stamp:
            old_stamp, line = line.split(":", 1)[1].strip(), f"Stamp: {stamp}"
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")
    (hls_dir / "keras_model.keras").unlink(missing_ok=True)
    if old_stamp:  # build_lib.sh may carry a stamp of its own: set both to ours
        script = hls_dir / "build_lib.sh"
        script.write_text(re.sub(r"(?m)^LIB_STAMP=\w+$", f"LIB_STAMP={stamp}", script.read_text()))


_SYNTHESIS_ARRAY = re.compile(r"#else\s*\n[^=;]*?(\w+)\s*\[[^=;]*=\s*\{(.*?)\};", re.S)


def check_weight_copies(project: Path) -> None:
    """Prove each weight array's two copies equal, value for value (hls4ml prints both from the same
    strings: ``vivado_writer.print_array_to_cpp``): the ``#else`` (synthesis) definition of
    ``weights/NAME.h`` and ``weights/NAME.txt`` that the C simulation loads. A header without a
    ``__SYNTHESIS__`` branch holds the only copy, which both read."""
    weights = Path(project) / "firmware" / "weights"
    for header in sorted(weights.glob("*.h")):
        text = header.read_text(errors="replace")
        if "__SYNTHESIS__" not in text:
            continue
        match = _SYNTHESIS_ARRAY.search(text)
        if match is None:
            raise BundleChanged(f"{header}: the array synthesis reads cannot be found (edited?); rebuild the bundle")
        name, values = match.group(1), [v.strip() for v in match.group(2).split(",")]
        loaded = header.with_suffix(".txt")
        if not loaded.is_file():
            raise BundleChanged(f"{header}: {loaded.name}, the copy the C simulation loads, is missing")
        copy = [v.strip() for v in loaded.read_text(errors="replace").split(",")]
        if len(copy) != len(values):
            raise BundleChanged(f"weights of {name}: {len(values)} values for synthesis ({header.name}) but "
                                f"{len(copy)} in the C simulation's {loaded.name}")
        for k, (synthesised, simulated) in enumerate(zip(values, copy)):
            if synthesised != simulated and _value(synthesised) != _value(simulated):
                raise BundleChanged(f"weights of {name}: element {k} is {synthesised} for synthesis ({header.name}) "
                                    f"but {simulated} in the C simulation ({loaded.name}); what is verified would "
                                    "not be what is synthesised")


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def csim_project(project: Path, model, raw: np.ndarray) -> tuple[np.ndarray, dict]:
    """Compile an hls4ml project folder (in place) and run its C simulation on raw inputs.

    Inputs go in as doubles exactly representable in the input format (so the
    conversion is exact); outputs come back as doubles that must be values of the
    output format, which is checked."""
    from trigger.ir.model import check_inputs

    raw = check_inputs(model, raw)  # out-of-range raw values would reach the C++ as other numbers
    x = np.ascontiguousarray(model.input.to_float(raw), dtype=np.float64)
    t0 = time.perf_counter()
    ports = ([n for _, n in model.input_ports], [n for _, _, n in model.output_slices()])
    driver = _cached_driver(Path(project), ports)
    if driver is not None:  # the project's own C++, compiled once per content (see _cached_driver)
        t1 = time.perf_counter()
        y = _predict(driver, x, model.output.n, Path(project))
    elif len(ports[0]) + len(ports[1]) > 2:
        raise ToolError(f"the C simulation of {project} needs the compiled driver (g++ and a cache folder) for a "
                        "model with several inputs or outputs")
    else:  # (hls4ml is imported only here: it takes seconds, TensorFlow included)
        import hls4ml

        with quiet_stdout():
            linked = hls4ml.converters.link_existing_project(str(project))
            try:
                linked.compile()
            except Exception as err:  # noqa: BLE001 - hls4ml raises bare Exceptions for compiler failures
                first = str(err).splitlines()[0]
                raise ToolError(f"the C simulation of {project} failed to compile: {first}") from None
        t1 = time.perf_counter()
        y = np.asarray(linked.predict(x), dtype=np.float64).reshape(len(raw), -1)
    out_type = model.output
    out = out_type.quantize(y)
    back = out_type.to_float(out) if len(out) else y
    if not np.array_equal(back, y):
        bad = np.argwhere(back != y)[0]
        raise ToolError(f"C simulation output {y[tuple(bad)]!r} at {tuple(bad)} is not a value of "
                        f"{out_type.formats[bad[1]]}")
    return out, {"csim_build_s": t1 - t0, "csim_s": time.perf_counter() - t1}


def _config_value(project: Path, key: str) -> str | None:
    for line in (project / "hls4ml_config.yml").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    return None


# trigger's driver of an hls4ml project's C simulation: the bridge's top function (the one hls4ml's
# predict calls through ctypes, row by row) called on every row of a file in a compiled loop. A row holds
# every input port one after another (the input bus); the outputs are written one after another likewise.
DRIVER = r"""// Generated by trigger (hls4ml_project.py): rows of doubles in, rows of doubles out.
#include <cstdio>
#include <cstdlib>
#include <vector>
extern "C" void TOP_double(PARAMS);
int main(int argc, char **argv) {
    if (argc != 5) { std::fprintf(stderr, "usage: %s IN OUT N_IN N_OUT\n", argv[0]); return 2; }
    std::FILE *in = std::fopen(argv[1], "rb"), *out = std::fopen(argv[2], "wb");
    if (!in || !out) { std::fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]); return 2; }
    std::size_t n_in = std::strtoul(argv[3], 0, 10), n_out = std::strtoul(argv[4], 0, 10);
    std::vector<double> x(n_in), y(n_out);
    while (std::fread(x.data(), sizeof(double), n_in, in) == n_in) {
        TOP_double(ARGS);
        if (std::fwrite(y.data(), sizeof(double), n_out, out) != n_out) return 3;
    }
    return std::fclose(out) == 0 ? 0 : 3;
}
"""


@functools.lru_cache(maxsize=1)
def _cxx_flags() -> tuple[str, ...]:
    """hls4ml's build_lib.sh flags (its C++ standard probe included), at -O1: -O0 runs ~25x slower, and
    -O2 costs more compile than it saves in the run (jetTagger_Conv2D_Small: 7.3 CPU-s of g++ at -O2, 5.2 at
    -O1, and 2,000 rows run in 0.53 s and 0.48 s; the reference MLP: 4.2 and 3.6 CPU-s, 10,000 rows in 0.73 s and
    0.80 s; the same outputs)."""
    flags = ["-O1", "-fPIC"]
    for extra in (["-std=c++23"], ["-fno-gnu-unique"]):
        probe = subprocess.run(["g++", "-Werror", "-fsyntax-only", *extra, "-xc++", "-", "-o", "/dev/null"],
                               input="", capture_output=True, text=True)
        flags += extra if probe.returncode == 0 else (["-std=c++11"] if extra[0].startswith("-std") else [])
    return tuple(flags)


def driver_source(name: str, ports: tuple[list[int], list[int]]) -> str:
    """``DRIVER`` for a top with inputs and outputs of these element counts (bridge argument order:
    the inputs, then the outputs)."""
    args, at = [], 0
    for n in ports[0]:
        args.append(f"x.data() + {at}")
        at += n
    at = 0
    for n in ports[1]:
        args.append(f"y.data() + {at}")
        at += n
    params = ", ".join("double *" for _ in args)
    return DRIVER.replace("TOP_double", f"{name}_double").replace("PARAMS", params).replace("ARGS", ", ".join(args))


def _cached_driver(project: Path, ports: tuple[list[int], list[int]] = ([0], [0])) -> Path | None:
    """An executable running the project's C simulation on a file of rows (``DRIVER``), compiled
    once per content of its C++ into the cache (``csim_cache_dir``), or None when the project
    does not fit that (then hls4ml compiles and predicts it).

    hls4ml's own compile takes seconds of g++ on every verification, and its predict calls the
    bridge from Python row by row; the driver makes the same call on every row, in C++."""
    from trigger.toolchain import csim_cache_dir, find_tool, store_entry, usable_entry

    name = _config_value(project, "ProjectName") or "myproject"
    bridge = project / f"{name}_bridge.cpp"
    root = csim_cache_dir()
    gxx = find_tool("g++")
    if root is None or gxx is None or not bridge.exists() or not re.fullmatch(r"[A-Za-z_]\w*", name):
        return None
    signature = re.search(rf"void\s+{re.escape(name)}_double\s*\(([^)]*)\)", bridge.read_text())
    if signature is None or signature.group(1).count(",") != len(ports[0]) + len(ports[1]) - 1:
        return None
    flags = _cxx_flags()
    version = subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    driver = driver_source(name, ports)
    digest = hashlib.sha256(json.dumps([version, flags, name, driver]).encode())
    for path in sorted([bridge, *(project / "firmware").rglob("*")]):
        if path.is_file():
            digest.update(f"{path.relative_to(project)}:{path.stat().st_size}:".encode())
            digest.update(path.read_bytes())
    final = root / digest.hexdigest()[:32]
    if not usable_entry(final, digest.hexdigest()):  # missing, or not what was built: (re)built

        def compile_into(tmp: Path) -> None:
            shutil.copytree(project / "firmware" / "weights", tmp / "weights", dirs_exist_ok=True) \
                if (project / "firmware" / "weights").is_dir() else (tmp / "weights").mkdir()
            # One translation unit (the top, the bridge, the driver): ap_fixed's and nnet_utils' headers are
            # parsed once, not three times (a third of the CPU, the same wall time as the top alone).
            (tmp / "csim.cpp").write_text(f'#include "{(project / "firmware" / f"{name}.cpp").resolve()}"\n'
                                          f'#include "{bridge.resolve()}"\n{driver}')
            pch = ap_types_pch(gxx, flags, project / "firmware" / "ap_types")
            run = subprocess.run([gxx, *flags, *pch, "-Ifirmware/ap_types/", f'-DWEIGHTS_DIR="{final / "weights"}"',
                                  str(tmp / "csim.cpp"), "-o", str(tmp / "csim")],
                                 cwd=project, capture_output=True, text=True)
            if run.returncode != 0:
                log = run.stdout + run.stderr
                first = next((line for line in log.splitlines() if "error" in line), "(no output)")
                raise ToolError(f"g++ failed to compile the C simulation of {project}: {first}")
            (tmp / "csim.cpp").unlink()

        store_entry(final, digest.hexdigest(), compile_into)
    return final / "csim"


def _predict(driver: Path, x: np.ndarray, n_out: int, work: Path) -> np.ndarray:
    """Runs the compiled ``driver`` on every row of ``x``, split over one process per core: each
    process makes its own first call (which loads weights and fills tables) and the rows are
    independent, as they are for hls4ml's predict."""
    x = np.ascontiguousarray(x, dtype="<f8")
    y = run_in_parts(driver, x, work, lambda rows_in, rows_out: [str(rows_in), str(rows_out), str(x.shape[1]), str(n_out)],
                     out_dtype="<f8", rows_per_process=2000, what=f"the C simulation {driver}")
    if y.size != len(x) * n_out:
        raise ToolError(f"the C simulation {driver} returned {y.size} values for {len(x)} rows x {n_out} outputs")
    return y.reshape(len(x), n_out)


def csim(bundle: Path, manifest: dict, model, raw: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """hls4ml's C simulation of the bundle's own project, compiled in a scratch copy."""
    project = Path(work) / "hls"
    shutil.copytree(Path(bundle) / manifest["hls"].get("project", "hls"), project)
    check_weight_copies(project)  # the C simulation loads the weights synthesis reads, value for value
    make_relocatable(project, str(project))
    tail = _ops_after(model, manifest.get("hls_output_op"))
    if not tail:
        return csim_project(project, model, raw)
    # The argmax output option: hls4ml's project computes the op before the appended ops; they are applied
    # to the C simulation's outputs with their own (integer) semantics, so csim_vs_rtl still checks the RTL.
    from dataclasses import replace

    kept = model.ops[:len(model.ops) - len(tail)]
    head = replace(model, ops=kept, reads={k: v for k, v in model.reads.items() if k in {op.name for op in kept}},
                   outputs=[] if model.is_chain else [manifest["hls_output_op"]])
    out, timings = csim_project(project, head, raw)
    for op in tail:
        out = op.emulate(out, {})
    return out, timings


def _ops_after(model, name: str | None) -> list:
    """The ops after ``name`` (which hls4ml's project does not compute); none when name is None."""
    if name is None:
        return []
    names = [op.name for op in model.ops]
    if name not in names:
        raise ToolError(f"manifest hls_output_op {name!r} is not an op of the firmware model")
    if not model.is_chain:  # a graph's appended output op (argmax) is its last op
        return model.ops[-1:] if model.ops[-1].name != name else []
    return model.ops[names.index(name) + 1:]
