"""cocotb testbench for any design behind the standard RTL top (DESIGN.md), in its harness.

The toplevel is the harness of firmware_templates/sim/harness.v.j2, which makes the
clock and instantiates the top. This test checks the protocol from Python, cycle by
cycle, on the first ``protocol_vectors`` vectors: out_valid low in reset, a
synchronous reset that drops vectors in flight, vectors back to back (II = 1) with
bubbles (in_valid low, random data on the bus), latency and II measured. Then it
hands the rest of the vectors to the harness, which streams them from bulk_in.bin
one per clock with no Python in the loop and writes bulk_out.hex; this test waits
for it and records what the harness counted. Nothing here knows about a particular
model; trigger/rtlsim.py writes the inputs and reads the results.

Environment: TRIGGER_SIM_DIR holds inputs.bin (packed little-endian bus words of the
protocol vectors) and shape.json; the testbench writes outputs.bin and timing.json.
"""

import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

BUBBLE_EVERY = 17  # a gap of 1-3 idle cycles after every this many vectors, and one early on


async def next_cycle(dut):
    await RisingEdge(dut.clk)


@cocotb.test()
async def stream_vectors(dut):
    work = Path(os.environ["TRIGGER_SIM_DIR"])
    shape = json.loads((work / "shape.json").read_text())
    n, in_bytes, out_bytes = shape["protocol_vectors"], shape["in_bytes"], shape["out_bytes"]
    in_bits, max_latency = shape["in_bits"], shape["max_latency"]
    raw = (work / "inputs.bin").read_bytes()
    words = [int.from_bytes(raw[i * in_bytes:(i + 1) * in_bytes], "little") for i in range(n)]
    rng = random.Random(1)
    spurious = 0

    # Reset: out_valid must be low from the first reset edge on.
    dut.rst.value = 1
    dut.tb_valid.value = 0
    for k in range(3):
        await next_cycle(dut)
        await ReadOnly()
        if k > 0 and dut.out_valid.value != 0:
            spurious += 1
    # A synchronous reset drops vectors in flight: four random vectors, then reset; no output
    # may follow the reset edge (outputs that came out before it are allowed).
    await next_cycle(dut)
    dut.rst.value = 0
    for _ in range(4):
        dut.tb_valid.value = 1
        dut.tb_data.value = rng.getrandbits(in_bits)
        await next_cycle(dut)
    dut.tb_valid.value = 0
    dut.rst.value = 1
    await next_cycle(dut)  # the reset edge
    dut.rst.value = 0
    for _ in range(max_latency + 2):
        await ReadOnly()
        if dut.out_valid.value != 0:
            spurious += 1
        await next_cycle(dut)

    sent_cycle = []  # cycle after whose edge each vector was put on the bus
    outputs, out_cycle = [], []
    cycle = 0
    i = 0
    gap = 0
    while i < n or len(outputs) < n:
        await next_cycle(dut)
        cycle += 1
        if i < n and gap == 0:
            dut.tb_valid.value = 1
            dut.tb_data.value = words[i]
            sent_cycle.append(cycle)
            i += 1
            if i == 3 or i % BUBBLE_EVERY == 0:
                gap = rng.randint(1, 3)
        else:
            dut.tb_valid.value = 0
            dut.tb_data.value = rng.getrandbits(in_bits)
            gap = max(gap - 1, 0)
        await ReadOnly()
        if dut.out_valid.value == 1:
            if len(outputs) >= n:
                spurious += 1
            else:
                outputs.append(dut.out_data.value.to_unsigned())
                out_cycle.append(cycle)
        if cycle > (max_latency + 3) * 2 + n * 4 + 100:
            break
        if i >= n and cycle - sent_cycle[-1] > max_latency + 2:
            break

    (work / "outputs.bin").write_bytes(b"".join(w.to_bytes(out_bytes, "little") for w in outputs))
    latencies = [o - s for o, s in zip(out_cycle, sent_cycle)]
    timing = {
        "outputs": len(outputs),
        "latencies": sorted(set(latencies)),
        "sent_cycle": sent_cycle[:50],
        "out_cycle": out_cycle[:50],
        "output_gaps": sorted({b - a for a, b in zip(out_cycle, out_cycle[1:])}),
        "input_gaps": sorted({b - a for a, b in zip(sent_cycle, sent_cycle[1:])}),
        "spurious": spurious,
        "cycles": cycle,
    }

    bulk = shape["bulk_vectors"]
    if bulk:
        await next_cycle(dut)
        dut.bulk_count.value = bulk
        dut.bulk_cycle_limit.value = bulk + max_latency + 16
        dut.bulk.value = 1
        wall, cpu = time.perf_counter(), time.process_time()  # this process is the simulator
        await RisingEdge(dut.bulk_done)
        await ReadOnly()
        timing["bulk"] = {name: int(getattr(dut, f"bulk_{name}").value) for name in (
            "sent", "received", "spurious", "latency_min", "latency_max", "cycles", "read_errors")}
        timing["bulk"]["wall_s"] = round(time.perf_counter() - wall, 4)
        timing["bulk"]["cpu_s"] = round(time.process_time() - cpu, 4)
    (work / "timing.json").write_text(json.dumps(timing))
