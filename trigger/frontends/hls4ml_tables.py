"""hls4ml's activation tables, computed by hls4ml's own C++ (nnet_activation.h) with g++.

nnet_activation.h fills its sigmoid, tanh and softmax tables at run time with
float math (``std::exp`` on floats, ``tanh``, the ap_fixed conversion of a
float). Re-deriving those in numpy could differ in the last bit of a float, so
the tables are not re-derived: a small C++ program includes the very header
the HLS project compiles, calls its ``init_*_table`` functions and prints every
entry as the raw integer of the table type. The C simulation and the firmware
then hold the same table by construction; hls4ml's C simulation checks it.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from trigger.errors import ToolError
from trigger.fixed import FixedFormat
from trigger.toolchain import cache_root, store_entry

TABLE_FILE = "table.txt"  # the entries as raw integers, one per line (the program's output)

# (kind, C++ call filling table t). {cfg} is the config struct, {n} its size.
_CALLS = {
    "sigmoid": "nnet::init_sigmoid_table<{cfg}, {n}>(t);",
    "tanh": "nnet::init_tanh_table<{cfg}, {n}>(t);",
    "softsign": "nnet::init_softsign_table<{cfg}, {n}>(t);",
    "elu": "nnet::init_elu_table<{cfg}, {n}>(t);",
    "selu": "nnet::init_selu_table<{cfg}, {n}>(t);",
    "invert_sqr": "nnet::init_invert_sqr_table<{cfg}, {n}>(t);",  # nnet_layernorm.h (epsilon, range: layernorm)
    "exp": "nnet::init_exp_table<{data_t}, {cfg}>(t, {negative});",
    "invert": "nnet::init_invert_table<{data_t}, {cfg}>(t);",
    "exp_legacy": "nnet::init_exp_table_legacy<{cfg}, {n}>(t);",
    "invert_legacy": "nnet::init_invert_table_legacy<{cfg}, {n}>(t);",
}


def _hls4ml_templates() -> Path:
    import hls4ml

    return Path(hls4ml.__file__).parent / "templates" / "vivado"


def _program(kind: str, size: int, table: FixedFormat, data: FixedFormat | None, negative: bool,
             exp_scale: float, layernorm: tuple[int, int] = (3, 0)) -> str:
    t = table.cpp
    d = data.cpp if data is not None else "ap_fixed<16,6>"
    call = _CALLS[kind].format(cfg="cfg", n=size, data_t=d, negative="true" if negative else "false")
    header, base = ("nnet_layernorm.h", "") if kind == "invert_sqr" else ("nnet_activation.h", " : nnet::activ_config")
    return f"""#include <cstdio>
#include "ap_fixed.h"
#include "nnet_utils/{header}"
struct cfg{base} {{
    static const unsigned epsilon_power_of_10 = {layernorm[0]};
    static const unsigned table_range_power2 = {layernorm[1]};
    static const unsigned table_size = {size};
    static const unsigned exp_table_size = {size};
    static const unsigned inv_table_size = {size};
    static constexpr float exp_scale = {float(exp_scale)!r};
    typedef {t} table_t;
    typedef {t} exp_table_t;
    typedef {t} inv_table_t;
}};
int main() {{
    static {t} t[{size}];
    {call}
    for (unsigned i = 0; i < {size}; i++) {{
        {t} v = t[i];
        std::printf("%llu\\n", (unsigned long long)v.range({table.width - 1}, 0).to_uint64());
    }}
    return 0;
}}
"""


@functools.lru_cache(maxsize=None)
def _table(kind: str, size: int, table_text: str, data_text: str | None, negative: bool,
           exp_scale: float, layernorm: tuple[int, int] = (3, 0)) -> tuple[int, ...]:
    table = FixedFormat.parse(table_text)
    data = FixedFormat.parse(data_text) if data_text else None
    compiler = shutil.which("g++")
    if compiler is None:
        raise ToolError("g++ not found: hls4ml's activation tables are computed by its own C++ (install g++)")
    root = _hls4ml_templates()
    program = _program(kind, size, table, data, negative, exp_scale, layernorm)
    # hls4ml's build_lib.sh flags (-O3, no fast-math): the same float arithmetic as its C simulation
    flags = ["-O3", "-std=c++11", f"-I{root / 'ap_types'}", f"-I{root}"]

    def compute(folder: Path) -> None:
        src, exe = folder / "table.cpp", folder / "table"
        src.write_text(program)
        done = subprocess.run([compiler, *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolError(f"compiling hls4ml's {kind} table ({size} x {table.cpp}) failed: "
                            f"{(done.stderr.strip().splitlines() or ['?'])[0][:200]}")
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        if run.returncode != 0:
            raise ToolError(f"hls4ml's {kind} table program failed with exit code {run.returncode}")
        (folder / TABLE_FILE).write_text(run.stdout)
        src.unlink()
        exe.unlink()

    cache = cache_root()
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="trigger-table-") as work:
            compute(Path(work))
            text = (Path(work) / TABLE_FILE).read_text()
    else:  # one compile per table and compiler for every build that uses it (a second each)
        import hashlib
        import importlib.metadata

        version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
        key = hashlib.sha256(json.dumps([program, flags, version, importlib.metadata.version("hls4ml")]).encode())
        entry = store_entry(cache / "tables" / key.hexdigest()[:32], key.hexdigest(), compute)
        text = (entry / TABLE_FILE).read_text()
    bits = np.array([int(v) for v in text.split()], dtype=np.int64)
    if bits.size != size:
        raise ToolError(f"hls4ml's {kind} table program printed {bits.size} entries, expected {size}")
    return tuple(int(v) for v in table.from_bits(bits))


def activation_table(kind: str, size: int, table: FixedFormat, *, data: FixedFormat | None = None,
                     negative: bool = False, exp_scale: float = 1.0, layernorm: tuple[int, int] = (3, 0)) -> np.ndarray:
    """Raw integers (in ``table``) of one of nnet_activation.h's tables, as its C++ fills it.

    ``kind``: sigmoid, tanh, softsign, elu, selu, exp / invert (softmax latency and stable: ``data`` is the
    type whose top bits address the table, ``negative`` the stable exp table), exp_legacy,
    invert_legacy; invert_sqr (nnet_layernorm.h's 1/sqrt table: ``layernorm`` is its
    (epsilon_power_of_10, table_range_power2))."""
    if kind not in _CALLS:
        raise ValueError(f"unknown table kind {kind!r}")
    return np.array(_table(kind, int(size), table.cpp, data.cpp if data is not None else None, bool(negative),
                           float(exp_scale), tuple(int(v) for v in layernorm)), dtype=np.int64)
