"""The hls4ml project of a network bundle, and its C simulation.

hls4ml writes the project from its converted model; this module makes it
relocatable and byte-identical across builds, and runs the C simulation of a
bundle's own project (recompiled in a scratch copy) on raw integers.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np

from trigger.errors import ToolError
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
    for path in list(folder.rglob("*.so")) + list(folder.rglob("*.o")):  # machine products
        path.unlink()
    settings = hls_model.config.config
    return {"backend": "hls4ml", "project": "hls", "hls4ml_backend": settings.get("Backend", "Vitis"),
            "project_name": settings.get("ProjectName", "myproject"), "part": settings.get("Part"),
            "clock_period_ns": float(settings.get("ClockPeriod")), "io_type": settings.get("IOType"),
            "strategy": "Latency", "reuse_factor": 1}


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


def csim_project(project: Path, model, raw: np.ndarray) -> tuple[np.ndarray, dict]:
    """Compile an hls4ml project folder (in place) and run its C simulation on raw inputs.

    Inputs go in as doubles exactly representable in the input format (so the
    conversion is exact); outputs come back as doubles that must be values of the
    output format, which is checked."""
    import hls4ml

    from trigger.ir.model import check_inputs

    raw = check_inputs(model, raw)  # out-of-range raw values would reach the C++ as other numbers
    t0 = time.perf_counter()
    with quiet_stdout():
        linked = hls4ml.converters.link_existing_project(str(project))
        try:
            linked.compile()
        except Exception as err:  # noqa: BLE001 - hls4ml raises bare Exceptions for compiler failures
            raise ToolError(f"the C simulation of {project} failed to compile: {str(err).splitlines()[0]}") from None
    t1 = time.perf_counter()
    x = np.ascontiguousarray(model.input.to_float(raw), dtype=np.float64)
    y = np.asarray(linked.predict(x), dtype=np.float64).reshape(len(raw), -1)
    out_fmt = model.output.format
    out = out_fmt.quantize(y)
    back = out_fmt.to_float(out)
    if not np.array_equal(back, y):
        bad = np.argwhere(back != y)[0]
        raise ToolError(f"C simulation output {y[tuple(bad)]!r} at {tuple(bad)} is not a value of {out_fmt}")
    return out, {"csim_build_s": t1 - t0, "csim_s": time.perf_counter() - t1}


def csim(bundle: Path, manifest: dict, model, raw: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """hls4ml's C simulation of the bundle's own project, compiled in a scratch copy."""
    project = Path(work) / "hls"
    shutil.copytree(Path(bundle) / manifest["hls"].get("project", "hls"), project)
    make_relocatable(project, str(project))
    return csim_project(project, model, raw)
