"""The emulator library: a bundle's design as a C++ shared library for the experiment's offline software.

CMS loads one library per model through the interface of hls4mlEmulatorExtras
(``hls4mlEmulator::Model`` with ``prepare_input(std::any)``, ``predict()``,
``read_result(std::any)``, and the ``extern "C"`` factories ``create_model`` /
``destroy_model`` found with dlsym). ``write_emulator`` writes the bundle's
``emulator/`` folder: ``<top>_emulator.h`` (element types, counts and the
``Emulator`` class, in namespace ``<top>``), ``<top>_emulator.cpp`` (the class
around the bundle's own HLS C++), ``interface/emulator.h`` (our declaration of
the interface) and a ``Makefile`` building ``lib<top>.so``.

The HLS C++ goes into the model's namespace by inclusion: every header it takes
from outside the project (the standard library, ap_types, hls4ml's
``nnet_utils``) is included first at global scope, so that its include guard
keeps it there, then the project's own files (``myproject.cpp`` with its
``defines.h``, ``parameters.h``, ``weights/*.h`` and the generated
``nnet_code_gen.h``; a table's or trees' top ``.cpp``) are included inside
``namespace <top> { ... }``. hls4ml's generated code inside ``namespace nnet``
then lands in ``<top>::nnet``, which is given ``using namespace ::nnet`` so that
its ``nnet::`` names still find hls4ml's templates. hls4ml's weights are compiled
in: the project is included with ``__SYNTHESIS__`` defined, the branch of
``weights/*.h`` that initialises the arrays (and skips the C simulation's loading
of ``weights/*.txt``). The library is also built with hidden visibility: only the
two factories are exported.

``build_library`` compiles it with the bundle's own Makefile, cached by content
(``$TRIGGER_CACHE/emulator``); ``run_libraries`` loads one or several libraries
into one process with a harness shaped like the framework's loader and runs them
on raw vectors; ``trigger verify`` compares that with the emulator
(``library_vs_emulator``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from trigger.errors import BundleError, ToolError
from trigger.toolchain import usable_entry

FOLDER = "emulator"
INTERFACE = "interface/emulator.h"
HARNESS_TEMPLATE = "emulator/harness.cpp.j2"
_INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def namespace(top: str) -> str:
    """The model's C++ namespace (and library name): its top name, a C identifier."""
    return top


def _ports(slices, formats, prefix: str, names=None) -> list[dict]:
    """Header typedefs per port: one type per port when uniform, else one per element."""
    out = []
    for k, (name, first, count) in enumerate(slices):
        fmts = formats[first:first + count]
        if len({f.cpp for f in fmts}) == 1:
            typedefs = [{"name": f"{prefix}_port{k}_t", "cpp": fmts[0].cpp, "comment": ""}]
        else:
            typedefs = [{"name": f"{prefix}_element{first + i}_t", "cpp": f.cpp,
                         "comment": (names[first + i] if names else "")} for i, f in enumerate(fmts)]
        out.append({"name": name, "first": first, "count": count, "typedefs": typedefs})
    return out


def _input_slices(model):
    slices, at = [], 0
    for name, n in model.input_ports:
        slices.append((name, at, n))
        at += n
    return slices


# ---------------------------------------------------------------- per backend: includes and the call
def _scan_includes(path: Path, root: Path, own: list, global_lines: list, seen: set) -> None:
    """Walks the includes of a project file: project files (under ``root`` but not nnet_utils/ or ap_types/,
    plus nnet_code_gen.h, which hls4ml generates per model) are the model's; everything else is hoisted."""
    for kind, name in _INCLUDE.findall(path.read_text(errors="replace")):
        if kind == "<":
            line = f"#include <{name}>"
            if line not in seen:
                seen.add(line)
                global_lines.append(line)
            continue
        target = (path.parent / name).resolve()
        if not target.exists():
            target = (root / name).resolve()
        if target.exists() and root in target.parents:
            rel = target.relative_to(root).as_posix()
            generated = rel.endswith("nnet_code_gen.h")
            if rel.startswith(("nnet_utils/", "ap_types/")) and not generated:
                line = f'#include "{rel}"'
                if line not in seen:
                    seen.add(line)
                    global_lines.append(line)
                continue
            if rel in seen:
                continue
            seen.add(rel)
            own.append(rel)
            _scan_includes(target, root, own, global_lines, seen)
        else:  # ap_fixed.h, hls_stream.h, ...: found through -I
            line = f'#include "{name}"'
            if line not in seen:
                seen.add(line)
                global_lines.append(line)


def _hls4ml_parts(model, bundle: Path, hls: dict, tail) -> dict:
    project = hls.get("project_name", "myproject")
    firmware = bundle / hls.get("project", "hls") / "firmware"
    top_cpp = firmware / f"{project}.cpp"
    header = firmware / f"{project}.h"
    if not top_cpp.exists() or not header.exists():
        raise BundleError(f"{firmware}: {project}.cpp / {project}.h not found")
    own, global_lines = [], []
    _scan_includes(top_cpp, firmware.resolve(), own, global_lines, set())
    m = re.search(rf"void\s+{re.escape(project)}\s*\(([^)]*)\)", header.read_text())
    if m is None:
        raise BundleError(f"{header}: prototype of {project}(...) not found")
    params, streams = [], []
    for text in m.group(1).split(","):
        p = re.fullmatch(r"\s*(?:const\s+)?([\w:<>, ]+?)\s+(\w+)\s*\[([^\]]+)\]\s*", text)
        q = re.fullmatch(r"\s*hls::stream<\s*([\w:]+)\s*>\s*&\s*(\w+)\s*", text)  # io_stream: pixel arrays
        if p is None and q is None:
            raise BundleError(f"{header}: cannot read the argument {text.strip()!r} of {project}")
        params.append(((q or p).group(1), (q or p).group(2)))
        streams.append(q is not None)
    n_in_ports = len(model.input_ports)
    out_slices = model.output_slices()
    if tail:  # the argmax output option: hls4ml's top computes the tensor in front of the argmax
        if not model.is_chain or len(tail) != 1 or tail[0].kind != "argmax":
            raise BundleError("the emulator library supports an appended argmax on a chain model only")
        out_slices = [("head", 0, tail[0].input.n)]
    if len(params) != n_in_ports + len(out_slices):
        raise BundleError(f"{header}: {project} has {len(params)} arguments, the firmware model "
                          f"{n_in_ports} inputs and {len(out_slices)} outputs")
    if any(streams) and tail:
        raise BundleError("the emulator library supports an appended argmax on an io_parallel project only")
    lines = []
    for k, ((_, first, count), (ctype, _)) in enumerate(zip(_input_slices(model), params)):
        if streams[k]:  # io_stream: one array of a pixel's channels per write, in raster order
            lines += [f"hls::stream<{ctype}> in{k};",
                      f"for (std::size_t p = 0; p < {count} / {ctype}::size; ++p) {{",
                      f"    {ctype} pixel;",
                      f"    for (std::size_t j = 0; j < {ctype}::size; ++j) "
                      f"set_raw(pixel[j], in[{first} + p * {ctype}::size + j]);",
                      f"    in{k}.write(pixel);", "}"]
        else:
            lines += [f"{ctype} in{k}[{count}];",
                      f"for (std::size_t i = 0; i < {count}; ++i) set_raw(in{k}[i], in[{first} + i]);"]
    for k, (_, _, count) in enumerate(out_slices):
        ctype = params[n_in_ports + k][0]
        lines.append(f"hls::stream<{ctype}> out{k};" if streams[n_in_ports + k] else f"{ctype} out{k}[{count}];")
    args = [f"in{k}" for k in range(n_in_ports)] + [f"out{k}" for k in range(len(out_slices))]
    lines.append(f"{project}({', '.join(args)});")
    for k, (_, first, count) in enumerate(out_slices):
        if streams[n_in_ports + k]:  # read the stream back into a flat array of the element type
            ctype = params[n_in_ports + k][0]
            lines += [f"{ctype}::value_type out{k}_flat[{count}];",
                      f"for (std::size_t p = 0; p < {count} / {ctype}::size; ++p) {{",
                      f"    {ctype} pixel = out{k}.read();",
                      f"    for (std::size_t j = 0; j < {ctype}::size; ++j) out{k}_flat[p * {ctype}::size + j] = pixel[j];",
                      "}"]
    if tail:
        fmt = tail[0].input.format
        n = tail[0].input.n
        lines += [f"std::int64_t best = get_raw(out0[0], {str(fmt.signed).lower()}), index = 0;",
                  f"for (std::size_t i = 1; i < {n}; ++i) {{",
                  f"    std::int64_t v = get_raw(out0[i], {str(fmt.signed).lower()});",
                  "    if (v > best) { best = v; index = (std::int64_t) i; }",  # ties: the first largest
                  "}", "out[0] = index;"]
    else:
        for k, (_, first, count) in enumerate(out_slices):
            flat = f"out{k}_flat" if streams[n_in_ports + k] else f"out{k}"
            lines.append(f"for (std::size_t i = 0; i < {count}; ++i) out[{first} + i] = "
                         f"get_raw({flat}[i], out_signed[{first} + i]);")
    quantize = []
    for k, ((_, first, count), (ctype, _)) in enumerate(zip(_input_slices(model), params)):
        element = f"{ctype}::value_type" if streams[k] else ctype
        quantize.append(f"for (std::size_t i = {first}; i < {first + count}; ++i) "
                        f"raw[i] = quantize<{element}>(x[i], in_signed[i]);")
    ns_lines = ["namespace nnet { using namespace ::nnet; }  // hls4ml's generated code (nnet_code_gen.h) "
                "lands in this nnet", "#define __SYNTHESIS__  // weights/*.h initialise the arrays",
                f'#include "{project}.cpp"', "#undef __SYNTHESIS__"]
    return {"global_includes": global_lines, "ns_lines": ns_lines, "predict_lines": lines,
            "quantize_lines": quantize, "hls4ml": True,
            "source_note": f"hls/firmware/{project}.cpp, weights compiled in from weights/*.h"}


def _scalar_parts(inputs: list[tuple[str, str]], call: list[str], outputs: list[tuple[str, str]]) -> tuple[list, list]:
    """Predict and quantize lines for a top taking one scalar per input element and output."""
    lines = [f"{ctype} {name}; set_raw({name}, in[{i}]);" for i, (name, ctype) in enumerate(inputs)]
    lines += [f"{ctype} {name};" for name, ctype in outputs]
    lines += call
    lines += [f"out[{i}] = get_raw({name}, out_signed[{i}]);" for i, (name, _) in enumerate(outputs)]
    quantize = [f"raw[{i}] = quantize<{ctype}>(x[{i}], in_signed[{i}]);" for i, (_, ctype) in enumerate(inputs)]
    return lines, quantize


def _table_parts(model, bundle: Path, hls: dict, top: str) -> dict:
    from trigger.backends.hls.table_cpp import context

    ctx = context(model, top, "", 1.0)
    fields = [(f["name"], f"{f['name']}_t") for f in ctx["fields"]]
    names = ", ".join(n for n, _ in fields)
    if ctx["external"]:
        lookup = model.ops[-1]
        call = [f"address_t address = {top}_address({names});",
                "word_t word = word_t(memory_->read(address.to_uint64()));"]
        lines, quantize = _scalar_parts(fields, call, [])
        lines.append("out[0] = get_raw(word, out_signed[0]);")
        extra = {"external": True, "part_words": int(lookup.part_words), "n_parts": len(lookup.parts),
                 "word_bytes": np.dtype(lookup.part_dtype).itemsize, "depth": ctx["depth"]}
    else:
        lines, quantize = _scalar_parts(fields, [f"{top}({names}, word);"], [("word", "word_t")])
        extra = {}
    return {"global_includes": [], "ns_lines": [f'#include "{top}.cpp"'], "predict_lines": lines,
            "quantize_lines": quantize, "hls4ml": False, "source_note": f"hls/{top}.cpp", **extra}


def _trees_parts(model, bundle: Path, hls: dict, top: str) -> dict:
    from trigger.backends.hls.trees_cpp import context

    ctx = context(model, top, "", 1.0)
    inputs = [(x["name"], f"{x['name']}_t") for x in ctx["inputs"]]
    outputs = [(y["name"], f"{y['name']}_t") for y in ctx["outputs"]]
    call = [f"{top}({', '.join([n for n, _ in inputs] + [n for n, _ in outputs])});"]
    lines, quantize = _scalar_parts(inputs, call, outputs)
    return {"global_includes": [], "ns_lines": [f'#include "{top}.cpp"'], "predict_lines": lines,
            "quantize_lines": quantize, "hls4ml": False, "source_note": f"hls/{top}.cpp"}


def write_emulator(model, bundle: Path, hls: dict, top: str, hls_output_op: str | None = None) -> dict:
    """Writes ``bundle/emulator/`` for the design; returns the manifest's "emulator" section (with
    ``supported: false`` and the reason when the design has no library yet: the build goes on)."""
    from trigger.templates import write

    bundle = Path(bundle)
    ns = namespace(top)
    backend = (hls or {}).get("backend")
    try:
        if backend == "hls4ml":
            from trigger.backends.hls.hls4ml_project import _ops_after

            parts = _hls4ml_parts(model, bundle, hls, _ops_after(model, hls_output_op))
        elif backend == "table_cpp":
            parts = _table_parts(model, bundle, hls, top)
        elif backend == "trees_cpp":
            parts = _trees_parts(model, bundle, hls, top)
        else:
            raise BundleError(f"no emulator library for the HLS backend {backend!r}")
    except (BundleError, ToolError) as err:
        return {"supported": False, "reason": str(err)}
    parts.setdefault("external", False)
    fin, fout = model.input.formats, model.output.formats
    ctx = {"name": model.name, "top": top, "ns": ns, "lib": ns, "guard": f"{ns.upper()}_EMULATOR_H_",
           "n_inputs": model.input.n, "n_outputs": model.output.n,
           "in_ports": _ports(_input_slices(model), fin, "in", model.input.names),
           "out_ports": _ports(model.output_slices(), fout, "out", model.output.names),
           "in_min": [int(f.min_raw) for f in fin], "in_max": [int(f.max_raw) for f in fin],
           "in_signed": [f.signed for f in fin], "in_format": [f.cpp for f in fin],
           "out_signed": [f.signed for f in fout], "out_fractional": [int(f.fractional) for f in fout],
           "env_var": f"{ns.upper()}_MEMORY", "part_words": 0, "n_parts": 0, "word_bytes": 0, "depth": 0, **parts}
    folder = bundle / FOLDER
    write(folder / f"{top}_emulator.h", "emulator/model.h.j2", **ctx)
    write(folder / f"{top}_emulator.cpp", "emulator/model.cpp.j2", **ctx)
    write(folder / INTERFACE, "emulator/emulator.h.j2")
    write(folder / "Makefile", "emulator/Makefile.j2", **ctx)
    return {"supported": True, "folder": FOLDER, "library": f"lib{ns}.so", "namespace": ns, "class": f"{ns}::Emulator",
            "header": f"{FOLDER}/{top}_emulator.h", "source": f"{FOLDER}/{top}_emulator.cpp",
            "makefile": f"{FOLDER}/Makefile", "interface": f"{FOLDER}/{INTERFACE}",
            "symbols": ["create_model", "destroy_model"], "external_memory": bool(parts["external"]),
            "inputs": "std::vector<std::int64_t> raw | std::vector<double> / std::vector<float> real (or a pointer)",
            "outputs": "std::vector<std::int64_t> * raw | std::vector<double> * real"}


# ---------------------------------------------------------------- building and running
def _gxx() -> str:
    from trigger.toolchain import find_tool

    gxx = find_tool("g++")
    if gxx is None:
        raise ToolError("g++ not found: needed to build the emulator library (run `trigger doctor`)")
    return gxx


def _gxx_version(gxx: str) -> str:
    return subprocess.run([gxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def _cache_dir() -> Path | None:
    from trigger.toolchain import cache_root

    root = cache_root()
    return None if root is None else root / "emulator"


def _store(final: Path, fill) -> Path:
    """``fill(tmp)`` stored as the cache entry ``final`` (``toolchain.store_entry``; the entry's name is its key)."""
    from trigger.toolchain import store_entry

    return store_entry(final, final.name, fill)


def section(bundle: Path, manifest: dict) -> dict:
    """The manifest's emulator section; BundleError when the bundle has none or it is unsupported."""
    em = manifest.get("emulator")
    if not em:
        raise BundleError(f"{bundle}: the bundle has no emulator/ (built before the emulator library): rebuild it")
    if not em.get("supported"):
        raise BundleError(f"{bundle}: no emulator library for this design: {em.get('reason')}")
    return em


def build_library(bundle: Path, manifest: dict, work: Path | None = None) -> tuple[Path, dict]:
    """``lib<name>.so`` of a bundle, built with its own Makefile (g++ against the bundle's ap_types for
    hls4ml projects, hls4ml's otherwise), cached by a hash of the sources, the command and g++'s version.
    Returns the library's path and {"library_build_s", "library_cached"}."""
    from trigger.toolchain import ap_types_include

    bundle = Path(bundle).resolve()
    em = section(bundle, manifest)
    gxx = _gxx()
    make = shutil.which("make")
    if make is None:
        raise ToolError("make not found: needed to build the emulator library (run `trigger doctor`)")
    folder = bundle / em["folder"]
    hls_dir = bundle / (manifest.get("hls") or {}).get("project", "hls")
    ap_types = hls_dir / "firmware" / "ap_types"
    variables = [f"CXX={gxx}", f"HLS={hls_dir}", f"AP_TYPES={ap_types if ap_types.is_dir() else ap_types_include()}"]
    if em.get("external_memory"):
        variables.append(f"MEMORY={bundle / 'memory'}")
    # the bundle's own folders are hashed below, so where the bundle lies does not matter (except for the
    # default memory image of an external table, whose path is compiled in)
    key = variables if em.get("external_memory") else [v.replace(str(bundle), "<bundle>") for v in variables]
    digest = hashlib.sha256(json.dumps([_gxx_version(gxx), key, em]).encode())
    from trigger.toolchain import hash_files as file_hashes  # (not trigger.bundle: a backend comes before it)

    for sub in (folder, hls_dir):  # what the library is compiled from, as it is now (not as the manifest says)
        for rel, sha in file_hashes(sub).items():
            digest.update(f"{sub.name}/{rel} {sha}\n".encode())
    t0 = time.perf_counter()
    name = em["library"]

    def compile_into(tmp: Path) -> None:
        run = subprocess.run([make, "-s", "-C", str(folder), f"OUT={tmp / name}", *variables],
                             capture_output=True, text=True)
        if run.returncode != 0:
            first = next((line for line in run.stderr.splitlines() if "error" in line.lower()), None) or \
                (run.stderr.strip().splitlines() or ["(no output)"])[0]
            raise ToolError(f"g++ failed to build the emulator library of {bundle}: {first}")

    root = _cache_dir()
    cached = False
    if root is None:
        work = Path(work or tempfile.mkdtemp(prefix="trigger-emulator-"))
        work.mkdir(parents=True, exist_ok=True)
        compile_into(work)
        lib = work / name
    else:
        final = root / f"lib-{digest.hexdigest()[:32]}"
        cached = usable_entry(final, final.name)  # a library is loaded only if it is what was built
        if not cached:
            _store(final, compile_into)
        lib = final / name
    return lib, {"library_build_s": round(time.perf_counter() - t0, 3), "library_cached": cached}


def harness(work: Path | None = None) -> Path:
    """The loader-shaped harness (``firmware_templates/emulator/harness.cpp.j2``), compiled once (cached)."""
    from trigger.templates import render

    gxx = _gxx()
    source = render(HARNESS_TEMPLATE)
    interface = render("emulator/emulator.h.j2")
    flags = ["-std=c++17", "-O2", "-w"]
    key = hashlib.sha256(json.dumps([_gxx_version(gxx), flags, source, interface]).encode()).hexdigest()[:32]

    def compile_into(tmp: Path) -> None:
        (tmp / "harness.cpp").write_text(source)
        (tmp / "emulator.h").write_text(interface)
        run = subprocess.run([gxx, *flags, f"-I{tmp}", str(tmp / "harness.cpp"), "-o", str(tmp / "harness"), "-ldl"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise ToolError(f"g++ failed to build the emulator library harness: {run.stderr.strip()[:300]}")

    root = _cache_dir()
    if root is None:
        work = Path(work or tempfile.mkdtemp(prefix="trigger-emulator-"))
        work.mkdir(parents=True, exist_ok=True)
        compile_into(work)
        return work / "harness"
    final = root / f"harness-{key}"
    if not usable_entry(final, final.name):
        _store(final, compile_into)
    return final / "harness"


def run_libraries(jobs: list[tuple[Path, np.ndarray, int]], work: Path, real: bool = False) -> list[np.ndarray]:
    """Loads every library of ``jobs`` ((library, inputs (n, n_in), n_out)) into ONE harness process,
    as the framework's loader does, and runs them on their inputs, events interleaved. Inputs are raw
    integers (``prepare_input(std::vector<std::int64_t>)``), or real values with ``real``
    (``std::vector<double>``); outputs are raw integers."""
    exe = harness(work)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    args, outs = [], []
    for k, (lib, x, n_out) in enumerate(jobs):
        x = np.ascontiguousarray(x, dtype="<f8" if real else "<i8")
        rows_in, rows_out = work / f"library_in_{k}.bin", work / f"library_out_{k}.bin"
        x.tofile(rows_in)
        args += [str(lib), str(rows_in), str(rows_out), str(x.shape[1]), str(n_out), "real" if real else "raw"]
        outs.append((rows_out, len(x), n_out))
    run = subprocess.run([str(exe), "run", *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise ToolError(f"the emulator library harness failed (exit {run.returncode}): "
                        f"{(run.stderr.strip().splitlines() or ['(no output)'])[0]}")
    results = []
    for rows_out, n, n_out in outs:
        y = np.fromfile(rows_out, dtype="<i8")
        if y.size != n * n_out:
            raise ToolError(f"the emulator library returned {y.size} values for {n} vectors x {n_out} outputs")
        results.append(y.reshape(n, n_out).astype(np.int64))
    return results


def check_errors(lib: Path, n_in: int, work: Path | None = None) -> tuple[int, str]:
    """The harness's wrong-input cases on a library: (exit code, its report)."""
    run = subprocess.run([str(harness(work)), "errors", str(lib), str(n_in)], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def bench(lib: Path, raw: np.ndarray, n_out: int, events: int, work: Path, wrapper: list | None = None) -> dict:
    """Events per second of one library (model created once, prepare/predict/read per event)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rows = work / "bench_in.bin"
    np.ascontiguousarray(raw, dtype="<i8").tofile(rows)
    run = subprocess.run([*(wrapper or []), str(harness(work)), "bench", str(lib), str(rows), str(raw.shape[1]),
                          str(n_out), str(events)], capture_output=True, text=True)
    if run.returncode != 0:
        raise ToolError(f"emulator library benchmark failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result["stderr"] = run.stderr
    return result

