"""Streamed convolutions: hls4ml's io_stream line buffer in Verilog, for layers too large to unroll.

A streamed network takes its image one pixel (every channel) per clock. Each leading
convolution or pooling layer is a *stream stage*: a shift register holding the last
(kernel rows - 1) image rows plus kernel columns pixels (the line buffer of
nnet_conv_stream.h's ``shift_line_buffer``), row and column counters, and one kernel
datapath shared by every output position: the op's ``window_op`` (the same op on one
window, so the same dense arithmetic per output as the emulator and hls4ml's
``compute_output_buffer_2d`` / ``compute_pool_buffer_2d``), followed by the element-wise
ops after it (a relu, a per-channel scale) on that one pixel. A window is computed when the
pixel that completes it arrives, exactly where hls4ml's ``sX``/``sY`` stride counters fire
(valid padding: output (i, j) after input pixel (i*stride + kernel - 1, j*stride + kernel - 1)).
Output pixels stream on to the next stage with a valid and a first-pixel flag.

After the last stage a collector gathers the frame's output pixels (channels last, as the
flat tensor) and the rest of the network (the tail: flatten, dense, ...) runs fully unrolled
behind the standard top (``write_rtl`` of the tail model), once per frame. The frame's
result is released a fixed number of clocks after its last input pixel, so the latency
per frame is constant whatever pixels a valid window drops at the right or bottom edge.

A zero padding in front of the first layer (hls4ml's io_stream puts a 'same' convolution's
padding in a layer of its own, nnet_padding_stream.h) is a padding stage that emits the padded
frame; having more pixels out than in, it takes its input with valid/ready.

Frame protocol of the top (docs/streaming.md): ``in_valid``, ``in_first`` (pixel (0, 0) of a
frame), ``in_data`` (one pixel: its channels, channel 0 in the least significant bits),
pixels in raster order (``in_ready`` too with padding in front); ``out_valid`` high for one
clock per frame with the whole output tensor on ``out_data`` (the standard top's output bus).
A frame takes H x W clocks (padded H x W + 2 with padding in front): the II per frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger.backends.rtl.builder import ModuleBuilder, parse_multiplier
from trigger.errors import ConfigError
from trigger.ir.model import FirmwareModel
from trigger.ir.tensor import TensorType
from trigger.templates import render

# Element-wise ops that may follow a streamed layer inside its stage, per pixel: the op on one pixel's
# channels (``pixel_op``). Per-element arrays must repeat with the channel period (a per-channel scale).
PIXELWISE_KINDS = {"relu", "linear", "leaky_relu", "scale"}


@dataclass
class Stage:
    """One stream stage: the windowed op, the element-wise ops after it, and its line-buffer geometry."""

    ops: list  # the model's ops this stage computes (window op first)
    kernel_ops: list  # the same on one window / one pixel (the shared datapath)
    height: int
    width: int
    channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    out_height: int
    out_width: int
    window: list  # per window element (im2col order): (pixel offset from the newest pixel, channel)

    @property
    def out_channels(self) -> int:
        return self.kernel_ops[-1].output.n


@dataclass
class Pad:
    """Zero padding in front of the first streamed layer (hls4ml's io_stream ZeroPadding2D of a 'same' convolution):
    the input image (height x width x channels) and the padding before and after each axis."""

    op: object
    height: int
    width: int
    channels: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def padded(self) -> tuple[int, int]:
        return self.height + self.top + self.bottom, self.width + self.left + self.right


def leading_pad(model: FirmwareModel) -> Pad | None:
    """The zero padding of the image before the first windowed op, when the model starts with one (a ``gather``
    whose index is exactly a zero padding of that op's input geometry, without a cast); else None."""
    if len(model.ops) < 2 or model.ops[0].kind != "gather" or not _windowed(model.ops[1]):
        return None
    op, geo = model.ops[0], model.ops[1].geometry
    hp, wp = (1, *geo.spatial) if len(geo.spatial) == 1 else tuple(geo.spatial)
    c = geo.channels
    if op.output.n != hp * wp * c or not (op.input.is_uniform and op.output.is_uniform) \
            or op.input.format != op.output.format:
        return None
    index = np.asarray(op.index).reshape(hp, wp, c)
    rows = np.flatnonzero((index >= 0).any(axis=(1, 2)))
    cols = np.flatnonzero((index >= 0).any(axis=(0, 2)))
    if not rows.size:
        return None
    h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    pad = Pad(op, h, w, c, int(rows[0]), hp - int(rows[-1]) - 1, int(cols[0]), wp - int(cols[-1]) - 1)
    expected = np.full((hp, wp, c), -1, dtype=np.int64)
    expected[pad.top:pad.top + h, pad.left:pad.left + w, :] = np.arange(h * w * c).reshape(h, w, c)
    if op.input.n != h * w * c or not np.array_equal(index, expected):
        return None
    return pad


def _windowed(op) -> bool:
    return callable(getattr(op, "window_op", None)) and hasattr(op, "geometry")


def pixel_op(op, channels: int):
    """``op`` on one pixel (its first ``channels`` elements), or None when it is not the same on every pixel."""
    if op.kind not in PIXELWISE_KINDS or op.input.n != op.output.n or op.input.n % channels:
        return None
    fin, fout = op.input.formats, op.output.formats
    if any(f != fin[0] for f in fin) or any(f != fout[0] for f in fout):
        return None
    arrays = {}
    for name in op.arrays:
        a = np.asarray(getattr(op, name))
        if a.ndim == 1 and a.size == op.input.n:
            if not np.array_equal(a, np.tile(a[:channels], op.input.n // channels)):
                return None
            arrays[name] = a[:channels]
    one = dataclasses.replace(op, input=TensorType.uniform(fin[0], channels),
                              output=TensorType.uniform(fout[0], channels), **arrays)
    one.validate()
    return one


def plan_stages(model: FirmwareModel) -> tuple[list[Stage], int, Pad | None]:
    """The stream stages of ``model``, the index of the first op of the unrolled tail, and the zero padding of the
    image in front of them (or None)."""
    if not model.is_chain:
        raise ConfigError(f"{model.name}: a streamed network must be a chain (one input, one output)")
    pad = leading_pad(model)
    stages, k = [], 1 if pad else 0
    while k < len(model.ops) and _windowed(model.ops[k]):
        op = model.ops[k]
        geo = op.geometry
        if any(geo.pad_before) or any(geo.pad_after):
            op.fail("a streamed layer needs valid padding (hls4ml's io_stream pads in a layer of its own, which "
                    "trigger does not stream yet)")
        if not op.input.is_uniform:
            op.fail("a streamed layer needs one input format")
        spatial = (1, *geo.spatial) if len(geo.spatial) == 1 else tuple(geo.spatial)
        kernel = (1, *geo.kernel) if len(geo.kernel) == 1 else tuple(geo.kernel)
        stride = (1, *geo.stride) if len(geo.stride) == 1 else tuple(geo.stride)
        out = (1, *geo.out_spatial) if len(geo.out_spatial) == 1 else tuple(geo.out_spatial)
        if stages and (geo.channels != stages[-1].out_channels
                       or spatial[0] * spatial[1] != stages[-1].out_height * stages[-1].out_width):
            prev = stages[-1]
            op.fail(f"its input {'x'.join(map(str, (*geo.spatial, geo.channels)))} regroups the pixels streamed by "
                    f"{prev.ops[-1].name!r} ({prev.out_height}x{prev.out_width}x{prev.out_channels}): a reshape "
                    "between streamed layers is not streamed")
        kernel_ops = [op.window_op()]
        window = []
        for f in geo.im2col()[0]:  # position (0, 0): flat input index (row * W + col) * C + channel
            pixel, ch = divmod(int(f), geo.channels)
            row, col = divmod(pixel, spatial[1])
            window.append(((kernel[0] - 1 - row) * spatial[1] + (kernel[1] - 1 - col), ch))
        ops = [op]
        k += 1
        while k < len(model.ops):
            one = pixel_op(model.ops[k], kernel_ops[-1].output.n)
            if one is None:
                break
            ops.append(model.ops[k])
            kernel_ops.append(one)
            k += 1
        stages.append(Stage(ops, kernel_ops, spatial[0], spatial[1], geo.channels, kernel, stride, out[0], out[1],
                            window))
    for j, op in enumerate(model.ops[k:], start=k):
        if getattr(op, "stream", False):  # a streamed convolution behind an op that does not stream
            blocker = model.ops[j - 1] if j > k else model.ops[k]
            raise ConfigError(f"{model.name}: op {blocker.name!r} ({blocker.kind}) stands between the input and the "
                              f"streamed convolution {op.name!r}: only convolutions, pooling and element-wise layers "
                              "stream (hls4ml's io_stream pads a 'same' convolution in a layer of its own, which "
                              "trigger streams only in front of the first layer: use valid padding after it)")
    if not stages:
        raise ConfigError(f"{model.name}: io_stream needs the network to start with a convolution or pooling layer "
                          f"(its first op is {model.ops[0].name!r}, {model.ops[0].kind})")
    return stages, k, pad


def kernel_module(name: str, ops: list, every, max_delay, dsp_above_bits) -> ModuleBuilder:
    """The shared datapath of a stage: one window in, one output pixel out, registered at the end."""
    from trigger.backends.rtl import finish_module

    m = ModuleBuilder(name, max_delay=max_delay, dsp_above_bits=dsp_above_bits)
    first, last = ops[0], ops[-1]
    xs = [m.unpack(f"x{i}", lsb, fmt) for i, (lsb, fmt) in enumerate(zip(first.input.offsets, first.input.formats))]
    for op in ops:
        xs = op.emit_rtl(m, xs, {"pipeline_every": every, "ii": 1, "hold": True})
        if len(xs) != op.output.n:
            op.fail(f"RTL gave {len(xs)} outputs, expected {op.output.n}")
    stage = max((y.stage for y in xs if y.const is None), default=0)
    ys = [m.delay(y, stage - y.stage) if y.const is None else y for y in xs]
    ys = [m.reg(f"q{i}", y) for i, y in enumerate(ys)]
    m.has_clock = True
    m.out_delay = 0.0
    finish_module(m, ys, first.input, last.output, " + ".join(f"{op.name} ({op.kind})" for op in ops) + ", one window",
                  "+".join(op.kind for op in ops), stage + 1)
    return m


def _mask(n: int, k: int, s: int, out: int) -> int:
    """Bit i set where input row/column i completes a window (hls4ml's stride counters fire)."""
    bits = 0
    for i in range(n):
        if i >= k - 1 and (i - (k - 1)) % s == 0 and (i - (k - 1)) // s < out:
            bits |= 1 << i
    return bits


def write_stream_rtl(model: FirmwareModel, out_dir: Path, top: str, pipeline="layer", clock_period_ns: float = 5.0,
                     multiplier="shift_add", ii: int = 1, op_ii: dict | None = None):
    """The streamed design of ``model`` behind the frame-protocol top ``top`` (module docstring); an RtlDesign
    whose ``latency_cycles`` runs from a frame's first pixel to its out_valid and whose ``ii`` is the clocks per
    frame (its pixels; the padded pixels + 2 with padding in front).

    ``ii`` > 1 shares the arithmetic of the unrolled tail over ii clocks (``op_ii`` per op, trigger/backends/rtl/
    serial.py): it runs once per frame, so any ii up to the pixels per frame keeps up with the stream. The stream
    stages take a pixel per clock whatever ii is."""
    from trigger.backends.rtl import (RtlDesign, parse_pipeline, write_adder_module, write_module, write_rom,
                                      write_rom_modules, write_rtl)

    stages, tail_at, pad = plan_stages(model)
    op_ii = {op.name: 1 for op in model.ops} if ii == 1 else dict(op_ii or {})
    pixels = pad.height * pad.width if pad else stages[0].height * stages[0].width
    streamed_ops = [op.name for st in stages for op in st.ops] + ([pad.op.name] if pad else [])
    if ii > pixels or any(op_ii.get(name, 1) != 1 for name in streamed_ops):
        raise ConfigError(f"{model.name}: resource sharing (ii {ii}) applies to the layers after the streamed ones "
                          f"({', '.join(op.name for op in model.ops[tail_at:]) or 'none'}), over at most the "
                          f"{pixels} pixels of a frame; the streamed layers take one pixel per clock")
    every = parse_pipeline(pipeline)
    _, dsp_above_bits = parse_multiplier(multiplier)
    max_delay = float(clock_period_ns) if every == "auto" else None
    if every == "auto":
        every = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources, data_files, kernels, entries = [], [], [], []
    latencies, offset = {}, 0
    for s, st in enumerate(stages):
        m = kernel_module(f"{top}_k{s}", st.kernel_ops, every, max_delay, dsp_above_bits)
        kernels.append(m)
        sources += write_rom_modules(m, out_dir, top)
        sources.append(write_module(m, out_dir, top))
        for rom in m.roms:
            data_files.append(write_rom(out_dir / rom.file, rom))
        in_bits = st.kernel_ops[0].input.widths[0]
        out_fmt = st.kernel_ops[-1].output
        pix_in, pix_out = st.channels * in_bits, out_fmt.bus_width
        window = [(off * pix_in + ch * in_bits, in_bits) for off, ch in st.window]
        entry = {"name": f"{top}_s{s}", "kernel": m.name, "W": st.width, "H": st.height, "KH": st.kernel[0],
                 "KW": st.kernel[1], "pix_in": pix_in, "pix_out": pix_out, "depth": (st.kernel[0] - 1) * st.width + st.kernel[1],
                 "window": list(reversed(window)), "w_window": sum(w for _, w in window), "latency": m.latency,
                 "cols": format(_mask(st.width, st.kernel[1], st.stride[1], st.out_width), f"0{st.width}b"),
                 "rows": format(_mask(st.height, st.kernel[0], st.stride[0], st.out_height), f"0{st.height}b"),
                 "cb": max(1, (st.width - 1).bit_length()), "rb": max(1, (st.height - 1).bit_length()),
                 "ops": ", ".join(f"{op.name} ({op.kind})" for op in st.ops),
                 "geometry": f"{st.height}x{st.width}x{st.channels} -> {st.out_height}x{st.out_width}x{st.out_channels}, "
                             f"kernel {st.kernel[0]}x{st.kernel[1]}, stride {st.stride[0]}x{st.stride[1]}"}
        path = out_dir / f"{entry['name']}.v"
        path.write_text(render("rtl/stream_stage.v.j2", st=entry, top=top))
        sources.append(path)
        entries.append(entry)
        for op in st.ops:
            latencies[op.name] = 0
        latencies[st.ops[0].name] = 1 + m.latency  # the window register, then the datapath
        offset += 1 + m.latency
    last = stages[-1]
    n_out_pixels = last.out_height * last.out_width
    streamed = last.kernel_ops[-1].output
    collected = model.ops[tail_at - 1].output  # the flat tensor the collector holds (channels last)
    tail = model.ops[tail_at:]
    tail_latency, tail_design = 0, None
    if tail:
        sub = FirmwareModel(f"{model.name}_tail", collected, tail, kind=model.kind)
        tail_ii = {op.name: op_ii.get(op.name, 1) for op in tail}
        tail_design = write_rtl(sub, out_dir, top=f"{top}_tail", pipeline=pipeline, clock_period_ns=clock_period_ns,
                                multiplier=multiplier, ii=ii, op_ii=tail_ii)
        sources += [p for p in tail_design.sources if p not in sources]
        data_files += tail_design.data_files
        tail_latency = tail_design.latency_cycles
        latencies.update(tail_design.op_latency)
    if any(m.uses_adder_module for m in kernels):
        adder = write_adder_module(out_dir, top)
        if adder not in sources:
            sources.append(adder)
    first_stage = stages[0]
    in_bits = first_stage.kernel_ops[0].input.widths[0]
    in_pix = first_stage.channels * in_bits
    pad_entry = None
    if pad:  # zero padding in front (stream_pad.v.j2): the input is taken with valid/ready, no input register
        hp, wp = pad.padded
        real = [(pad.top + r) * wp + pad.left + c for r in range(pad.height) for c in range(pad.width)]
        prev = real[-2] if len(real) > 1 else None  # the real pixel consumed when the last one is taken
        pad_entry = {"name": f"{top}_pad", "ops": f"{pad.op.name} ({pad.op.kind})", "H": pad.height, "W": pad.width,
                     "Hp": hp, "Wp": wp, "pt": pad.top, "pl": pad.left, "pix": in_pix,
                     "rb": max(1, hp.bit_length()), "cb": max(1, wp.bit_length())}
        path = out_dir / f"{pad_entry['name']}.v"
        path.write_text(render("rtl/stream_pad.v.j2", st=pad_entry, top=top))
        sources.append(path)
        latencies[pad.op.name] = 0
        # from taking the last pixel to the padding's last output pixel; from the first pixel to taking the last
        pad_after_last = hp * wp - (prev if prev is not None else -2)
        to_last = 2 + prev if prev is not None else 0
        release = pad_after_last + offset + 2
        after_last = release + tail_latency
        latency = to_last + after_last
        frame_ii = hp * wp + 2  # the padded frame, and the clocks to start it
        first_to_last = to_last
    else:
        release = offset + 2  # clocks from the input register's last pixel to the frame's release (the hold)
        # from the first pixel on in_data to out_valid: the pixels, the input register, the stages, the release
        # (hold register) and the tail behind its own input register
        after_last = 1 + release + tail_latency
        latency = pixels - 1 + after_last
        frame_ii = pixels
        first_to_last = pixels - 1
    top_path = out_dir / f"{top}.v"
    top_path.write_text(render(
        "rtl/stream_top.v.j2", top=top, description=f"{model.kind} '{model.name}'", stages=entries,
        pixels=pixels, pb=max(1, (pixels - 1).bit_length()), in_pix=in_pix, channels=first_stage.channels,
        in_bits=in_bits, n_out_pixels=n_out_pixels, pad=pad_entry, frame_ii=frame_ii,
        ob=max(1, (n_out_pixels - 1).bit_length()), pix_out=streamed.bus_width, collected_bits=collected.bus_width,
        release=release, tail=f"{top}_tail" if tail else None, tail_ii=ii, w_out=model.output.bus_width,
        outputs=model.output.elements(), frame_format=model.input.formats[0].cpp,
        frame_shape=f"{pad.height if pad else first_stage.height}x{pad.width if pad else first_stage.width}x"
                    f"{first_stage.channels}"))
    sources = [p for p in sources if p != top_path] + [top_path]
    design = RtlDesign(top, sources, data_files, latency, latencies, "auto" if max_delay is not None else
                       (pipeline if every else "layer"),
                       "dsp" if dsp_above_bits == 0 else ("shift_add" if dsp_above_bits is None else str(dsp_above_bits)),
                       [], max_delay, frame_ii, {op.name: op_ii.get(op.name, 1) for op in model.ops})
    design.stream = {
        "protocol": "frame", "pixels_per_frame": pixels, "pixel_bits": in_pix, "channels": first_stage.channels,
        "frame_shape": [pad.height if pad else first_stage.height, pad.width if pad else first_stage.width,
                        first_stage.channels],
        "latency_after_last_pixel": after_last, "ii_per_frame": frame_ii, "ready": bool(pad),
        # clocks from taking a frame's first pixel to taking its last, each offered as soon as the top takes it
        "first_to_last_pixel": first_to_last,
        "padding": None if pad is None else {"op": pad.op.name, "top": pad.top, "bottom": pad.bottom, "left": pad.left,
                                             "right": pad.right, "padded_pixels": pad.padded[0] * pad.padded[1]},
        "stages": [{"ops": [op.name for op in st.ops], "geometry": e["geometry"], "line_buffer_pixels": e["depth"],
                    "kernel_latency": e["latency"]} for st, e in zip(stages, entries)],
        "tail_ops": [op.name for op in tail], "tail_latency": tail_latency, "tail_ii": ii}
    return design
