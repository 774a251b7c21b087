"""The RTL of a table in external memory: the address compression, a memory interface, a memory model.

A table too large for block RAM (``memory_lookup``) keeps its words in the board's memory.
The firmware is the compression ops (bucketize -> concat) as an ordinary standard-top design
(``{top}_address``), wrapped by ``{top}`` which drives a fixed-latency read port
(``mem_rd_en``, ``mem_addr``, ``mem_rd_data``; the interface is documented in the generated
file's header). For verification, ``sim/{top}_with_memory.v`` puts ``{top}`` and a memory
model (``sim/{top}_memory_model.v``, a window of the table loaded with $readmemh) behind the
standard top ports, so the one testbench and harness check it like any other design.
"""

from __future__ import annotations

from pathlib import Path

from trigger.ir.model import FirmwareModel
from trigger.templates import render

SIM_WINDOW_BITS = 20  # words the memory model holds at a time: the verifier's address ranges are at most this


def write_memory_table_rtl(model: FirmwareModel, out_dir: Path, top: str, **options):
    """Writes the compression RTL, the memory-interface top and the simulation wrapper; returns an RtlDesign."""
    from trigger.backends.rtl import RtlDesign, write_rtl

    lookup = model.ops[-1]
    address_model = FirmwareModel(f"{model.name}_address", model.input, list(model.ops[:-1]), kind=model.kind)
    inner = write_rtl(address_model, out_dir, top=f"{top}_address", **options)
    word = lookup.output.formats[0]
    window_bits = min(lookup.address_bits, SIM_WINDOW_BITS)
    latency = inner.latency_cycles + lookup.read_latency + 1
    ctx = {"top": top, "address_top": f"{top}_address", "description": f"{model.kind} '{model.name}'",
           "w_in": model.input.bus_width, "address_bits": lookup.address_bits, "word_bits": word.width,
           "word_format": word.cpp, "depth": 1 << lookup.address_bits, "read_latency": lookup.read_latency,
           "address_latency": inner.latency_cycles, "latency": latency, "window": 1 << window_bits,
           "window_bits": window_bits}
    out_dir = Path(out_dir)
    path = out_dir / f"{top}.v"
    path.write_text(render("rtl/memory_table_top.v.j2", **ctx))
    sim = out_dir / "sim"
    sim.mkdir(exist_ok=True)
    model_v, wrapper_v = sim / f"{top}_memory_model.v", sim / f"{top}_with_memory.v"
    model_v.write_text(render("rtl/memory_model.v.j2", **ctx))
    wrapper_v.write_text(render("rtl/memory_table_sim.v.j2", **ctx))
    design = RtlDesign(top=top, sources=[*inner.sources, path], data_files=[], latency_cycles=latency,
                       op_latency={**inner.op_latency, lookup.name: lookup.read_latency + 1},
                       pipeline=inner.pipeline, multiplier=inner.multiplier,
                       stage_delay_ns=[*inner.stage_delay_ns, *[0.0] * (lookup.read_latency + 1)],
                       max_delay_ns=inner.max_delay_ns)
    design.simulation = {"top": f"{top}_with_memory", "extra_sources": [model_v, wrapper_v],
                         "memory_image": f"{top}_memory.mem", "memory_base": f"{top}_memory_base.mem",
                         "window_words": 1 << window_bits, "read_latency": lookup.read_latency,
                         "interface": {"mem_rd_en": "out, 1 bit", "mem_addr": f"out, {lookup.address_bits} bits",
                                       "mem_rd_data": f"in, {word.width} bits, READ_LATENCY clocks after mem_rd_en"}}
    return design
