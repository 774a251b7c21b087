"""cocotb testbench for any design behind the standard RTL top (DESIGN.md).

Streams every input vector back to back (one per clock, II = 1), with a few
bubbles (in_valid low, random data on the bus) to check that out_valid follows
in_valid. Records every output with the cycle it appeared in. Driven by files
that trigger/rtlsim.py writes; nothing here knows about a particular model.

Environment: TRIGGER_SIM_DIR holds inputs.bin (packed little-endian bus words),
shape.json; the testbench writes outputs.bin and timing.json there.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

BUBBLE_EVERY = 4099  # a bubble after every this many vectors, and one early on


@cocotb.test()
async def stream_vectors(dut):
    work = Path(os.environ["TRIGGER_SIM_DIR"])
    shape = json.loads((work / "shape.json").read_text())
    n, in_bytes, out_bytes = shape["vectors"], shape["in_bytes"], shape["out_bytes"]
    in_bits = shape["in_bits"]
    raw = (work / "inputs.bin").read_bytes()
    words = [int.from_bytes(raw[i * in_bytes:(i + 1) * in_bytes], "little") for i in range(n)]
    rng = random.Random(1)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_data.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    sent_cycle = []  # cycle after whose edge each vector was put on the bus
    outputs, out_cycle = [], []
    spurious = 0
    cycle = 0
    i = 0
    idle_after = 0
    while i < n or len(outputs) < n:
        await RisingEdge(dut.clk)
        cycle += 1
        bubble = i < n and (i == 3 or (i > 0 and i % BUBBLE_EVERY == 0)) and idle_after < 2
        if i < n and not bubble:
            dut.in_valid.value = 1
            dut.in_data.value = words[i]
            sent_cycle.append(cycle)
            i += 1
            idle_after = 0
        else:
            dut.in_valid.value = 0
            dut.in_data.value = rng.getrandbits(in_bits)
            idle_after += 1
        await ReadOnly()
        if dut.out_valid.value == 1:
            if len(outputs) >= n:
                spurious += 1
            else:
                outputs.append(dut.out_data.value.to_unsigned())
                out_cycle.append(cycle)
        if cycle > (shape["max_latency"] + 3) * 2 + n * 2 + 100:
            break
        if i >= n and cycle - sent_cycle[-1] > shape["max_latency"] + 2:
            break

    (work / "outputs.bin").write_bytes(b"".join(w.to_bytes(out_bytes, "little") for w in outputs))
    latencies = [o - s for o, s in zip(out_cycle, sent_cycle)]
    (work / "timing.json").write_text(json.dumps({
        "outputs": len(outputs),
        "latencies": sorted(set(latencies)),
        "sent_cycle": sent_cycle[:50],
        "out_cycle": out_cycle[:50],
        "output_gaps": sorted({b - a for a, b in zip(out_cycle, out_cycle[1:])}),
        "input_gaps": sorted({b - a for a, b in zip(sent_cycle, sent_cycle[1:])}),
        "spurious": spurious,
        "cycles": cycle,
    }))
