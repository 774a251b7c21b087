"""cocotb testbench for any design behind the standard RTL top (DESIGN.md), in its harness.

The toplevel is the harness of firmware_templates/sim/harness.v.j2, which makes the
clock and instantiates the top. This test checks the protocol from Python, cycle by
cycle, on the first ``protocol_vectors`` vectors: out_valid low in reset, a
synchronous reset that drops vectors in flight, vectors back to back (exactly II clocks
apart when the design shares resources, shape.json's ``ii``) with bubbles (in_valid low,
random data on the bus), latency and II measured; for II > 1 also an input sooner than II
clocks, which must be refused and flagged on ``in_refused``. Then it
hands the rest of the vectors to the harness, which streams them from bulk_in.bin
one every II clocks with no Python in the loop and writes bulk_out.hex; this test waits
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
from cocotb.triggers import ReadOnly, RisingEdge, Timer

BUBBLE_EVERY = 17  # a gap of 1-3 idle cycles after every this many vectors, and one early on


async def next_cycle(dut):
    await RisingEdge(dut.clk)


async def too_early(dut, word: int, rng, in_bits: int, max_latency: int, ii: int) -> dict:
    """II > 1: a vector, then another one clock later (too early). The second must be refused: in_refused
    high for exactly one cycle, one output only (compared later with the first vector's own output)."""
    dut.tb_valid.value = 1
    dut.tb_data.value = word
    await next_cycle(dut)
    dut.tb_data.value = rng.getrandbits(in_bits)  # in_valid stays high: too early
    await next_cycle(dut)
    dut.tb_valid.value = 0
    flags, outputs, output = 0, 0, None
    for _ in range(max_latency + ii + 4):
        await ReadOnly()
        flags += int(dut.in_refused.value)
        if dut.out_valid.value == 1:
            outputs += 1
            output = dut.out_data.value.to_unsigned()
        await next_cycle(dut)
    return {"refused_flags": flags, "outputs": outputs, "output": output}


@cocotb.test()
async def stream_vectors(dut):
    work = Path(os.environ["TRIGGER_SIM_DIR"])
    shape = json.loads((work / "shape.json").read_text())
    n, in_bytes, out_bytes = shape["protocol_vectors"], shape["in_bytes"], shape["out_bytes"]
    in_bits, max_latency = shape["in_bits"], shape["max_latency"]
    ii = int(shape.get("ii", 1))  # the design takes an input every ii clocks: vectors go exactly ii apart
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

    early = await too_early(dut, words[0], rng, in_bits, max_latency, ii) if ii > 1 else None

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
            gap = max(gap, ii - 1)
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
        if cycle > (max_latency + 3) * 2 + n * (3 + ii) + 100:
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
    if early is not None:  # the too-early input: refused, flagged, and the first one's output unchanged
        early["output_matches_first"] = bool(outputs) and early.pop("output") == outputs[0]
        timing["too_early"] = early

    bulk = shape["bulk_vectors"]
    if bulk:
        await next_cycle(dut)
        dut.bulk_count.value = bulk
        dut.bulk_cycle_limit.value = bulk * ii + max_latency + 16
        dut.bulk.value = 1
        wall, cpu = time.perf_counter(), time.process_time()  # this process is the simulator
        # The harness is done within bulk_cycle_limit clocks (10 ns each): one timer for the whole
        # bulk instead of a value-change callback, which the simulator would check at every step.
        await Timer((bulk * ii + max_latency + 16 + 2) * 10, "ns")
        while not int(dut.bulk_done.value):
            await RisingEdge(dut.clk)
        await ReadOnly()
        timing["bulk"] = {name: int(getattr(dut, f"bulk_{name}").value) for name in (
            "sent", "received", "spurious", "latency_min", "latency_max", "cycles", "read_errors", "refused")}
        timing["bulk"]["wall_s"] = round(time.perf_counter() - wall, 4)
        timing["bulk"]["cpu_s"] = round(time.process_time() - cpu, 4)
    (work / "timing.json").write_text(json.dumps(timing))
